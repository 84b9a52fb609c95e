//! Reads blobs: fetches a block from its pack, decompresses it, checks
//! every blob in it against its keyed hash, and caches the result, so a
//! damaged byte is an error, never a wrong answer.

use super::index::{pack_path, BlobLoc, Index};
use super::{Repository, StoreError};
use crate::format::pack::open_block;
use crate::format::tree::{decode_tree, Tree};
use crate::format::BlobId;
use std::sync::Arc;

/// A decompressed block; `bad` lists the blobs in it whose hash failed.
pub struct CheckedBlock {
    pub raw: Vec<u8>,
    pub bad: Vec<BlobId>,
}

/// A blob's bytes: a range of a cached block.
#[derive(Clone)]
pub struct BlobBytes {
    block: Arc<CheckedBlock>,
    start: usize,
    end: usize,
}

impl std::ops::Deref for BlobBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.block.raw[self.start..self.end]
    }
}

#[derive(Clone)]
struct BlockWeighter;

impl quick_cache::Weighter<u32, Arc<CheckedBlock>> for BlockWeighter {
    fn weight(&self, _: &u32, block: &Arc<CheckedBlock>) -> u64 {
        block.raw.len() as u64 + 64
    }
}

type BlockCache = quick_cache::sync::Cache<u32, Arc<CheckedBlock>, BlockWeighter>;

pub struct BlobReader {
    repo: Arc<Repository>,
    index: Arc<Index>,
    cache: BlockCache,
}

impl BlobReader {
    pub fn new(repo: Arc<Repository>, index: Arc<Index>, cache_bytes: u64) -> Self {
        let cache = BlockCache::with_weighter((cache_bytes / (64 << 10)).max(16) as usize, cache_bytes, BlockWeighter);
        Self { repo, index, cache }
    }

    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }

    pub fn repo(&self) -> &Arc<Repository> {
        &self.repo
    }

    /// The bytes of blob `id`, from the first copy that reads and verifies.
    pub fn read(&self, id: BlobId) -> Result<BlobBytes, StoreError> {
        let mut last_err = None;
        for loc in self.index.locations(id) {
            match self.read_at(&loc) {
                Ok(bytes) => return Ok(bytes),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or(StoreError::MissingBlob(id)))
    }

    fn read_at(&self, loc: &BlobLoc) -> Result<BlobBytes, StoreError> {
        let pack = self.index.pack_of(loc).id;
        let block = self.cache.get_or_insert_with(&loc.block, || self.load_block(loc.block)).map_err(|e| {
            if e.is_damage() {
                StoreError::DamagedBlob { id: loc.id, pack, reason: e.to_string() }
            } else {
                e
            }
        })?;
        if block.bad.contains(&loc.id) {
            let reason = "content does not match its hash".into();
            return Err(StoreError::DamagedBlob { id: loc.id, pack, reason });
        }
        Ok(BlobBytes { block, start: loc.offset as usize, end: (loc.offset + loc.len) as usize })
    }

    /// Reads, decompresses and verifies block `n` without caching it.
    pub fn load_block(&self, n: u32) -> Result<Arc<CheckedBlock>, StoreError> {
        let b = *self.index.block(n);
        let pack = self.index.pack(b.pack);
        let path = pack_path(pack.id);
        let stored = self.repo.backend().read_range(&path, b.offset, b.stored_len as usize)?;
        let raw = open_block(b.codec, b.raw_len, &stored).map_err(|e| StoreError::format(&path, e))?;
        Ok(Arc::new(self.verify(n, raw)))
    }

    fn verify(&self, n: u32, raw: Vec<u8>) -> CheckedBlock {
        let bad = self
            .index
            .blobs_in_block(n)
            .iter()
            .filter(|l| {
                let range = l.offset as usize..(l.offset + l.len) as usize;
                raw.get(range).is_none_or(|bytes| self.repo.blob_id(bytes) != l.id)
            })
            .map(|l| l.id)
            .collect();
        CheckedBlock { raw, bad }
    }

    pub fn read_tree(&self, id: BlobId) -> Result<Tree, StoreError> {
        let bytes = self.read(id)?;
        decode_tree(&bytes).map_err(|e| StoreError::format(format!("tree {id}"), e))
    }
}
