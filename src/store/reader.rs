//! Reads blobs: fetches a block from its pack, decompresses it, checks
//! every blob in it against its keyed hash, and caches the result, so a
//! damaged byte is an error, never a wrong answer.
//!
//! The index can be replaced while reading (a mount sees new snapshots);
//! cached blocks are keyed by pack and offset, which no reload changes.

use super::index::{BlobLoc, Index};
use super::writer::BLOCK_TARGET;
use super::{Repository, StoreError};
use crate::format::pack::{open_block_owned, BlobKind};
use crate::format::tree::{decode_tree, decode_tree_object, SplitTree, Tree, TreeObject};
use crate::format::{BlobId, PackId};
use parking_lot::RwLock;
use std::sync::Arc;

/// A decompressed block, and the blobs in it found to hash to their ids
/// (id, offset, length; sorted).
pub struct CheckedBlock {
    pub raw: Vec<u8>,
    pub good: Vec<(BlobId, u32, u32)>,
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

type BlockKey = (PackId, u64);

impl quick_cache::Weighter<BlockKey, Arc<CheckedBlock>> for BlockWeighter {
    fn weight(&self, _: &BlockKey, block: &Arc<CheckedBlock>) -> u64 {
        block.raw.len() as u64 + 64
    }
}

type BlockCache = quick_cache::sync::Cache<BlockKey, Arc<CheckedBlock>, BlockWeighter>;

/// See [`BlobReader::pack_runs`].
pub struct PackRuns(Vec<(u32, PackId)>);

impl PackRuns {
    pub fn memory_size(&self) -> u64 {
        24 * self.0.len() as u64 + 32
    }
}

pub struct BlobReader {
    repo: Arc<Repository>,
    index: RwLock<Arc<Index>>,
    cache: BlockCache,
    reload: parking_lot::Mutex<()>,
    /// The local index tables were checked after a read failed.
    tables_checked: std::sync::atomic::AtomicBool,
}

/// True when a read failed because the blob or its pack is no longer where
/// the index says (as opposed to damage).
fn moved(e: &StoreError) -> bool {
    matches!(e, StoreError::MissingBlob { .. } | StoreError::Missing { .. })
}

impl BlobReader {
    /// A reader whose cache of decompressed blocks holds about `cache_bytes`.
    pub fn new(repo: Arc<Repository>, index: Arc<Index>, cache_bytes: u64) -> Self {
        let cache = BlockCache::with_weighter((cache_bytes / (64 << 10)).max(16) as usize, cache_bytes, BlockWeighter);
        Self { repo, index: RwLock::new(index), cache, reload: Default::default(), tables_checked: Default::default() }
    }

    /// Changes the weight the cache of decompressed blocks may hold.
    pub fn set_cache_bytes(&self, bytes: u64) {
        self.cache.set_capacity(bytes);
    }

    /// (weight held, weight allowed) of the cache of decompressed blocks.
    pub fn cache_usage(&self) -> (u64, u64) {
        (self.cache.weight(), self.cache.capacity())
    }

    pub fn index(&self) -> Arc<Index> {
        self.index.read().clone()
    }

    pub fn set_index(&self, index: Arc<Index>) {
        *self.index.write() = index;
    }

    pub fn repo(&self) -> &Arc<Repository> {
        &self.repo
    }

    /// The bytes of blob `id`, from the first copy that reads and verifies.
    /// When the blob is not where the index says (a concurrent gc moved it
    /// and deleted its pack), the index is reloaded once and the read
    /// tried again. When no copy verifies, the local index tables are
    /// checked (once per reader): a damaged table gives wrong locations,
    /// and is made again from the index files before the read is retried.
    pub fn read(&self, kind: BlobKind, id: BlobId) -> Result<BlobBytes, StoreError> {
        let index = self.index();
        match self.read_in(&index, kind, id) {
            Err(e) if moved(&e) || (e.is_damage() && index.mapped_size() > 0) => {
                let _one_at_a_time = self.reload.lock();
                // Another thread may have reloaded while this one waited.
                if Arc::ptr_eq(&index, &self.index()) {
                    let tables_bad = index.mapped_size() > 0
                        && !self.tables_checked.swap(true, std::sync::atomic::Ordering::Relaxed)
                        && self.repo.verify_index_tables() > 0;
                    if !moved(&e) && !tables_bad {
                        return Err(e);
                    }
                    self.set_index(Arc::new(self.repo.load_index()?.index));
                    if tables_bad {
                        // Blocks were loaded at the damaged locations.
                        self.cache.clear();
                    }
                }
                self.read_in(&self.index(), kind, id)
            }
            other => other,
        }
    }

    /// Where a file's content changes pack, for fetching ahead: (index of
    /// the first chunk, pack) of each run of chunks in one pack, in file
    /// order. None on a local disk, where nothing is fetched ahead.
    pub fn pack_runs(&self, chunks: impl Iterator<Item = Option<BlobId>>) -> Option<PackRuns> {
        if self.repo.lists_cheaply() {
            return None;
        }
        let index = self.index();
        let mut runs: Vec<(u32, PackId)> = Vec::new();
        for (i, id) in chunks.enumerate() {
            let Some(id) = id else { continue };
            let Some(loc) = index.locations(BlobKind::Data, id).next() else { continue };
            let pack = index.pack_of(&loc).id;
            if runs.last().is_none_or(|r| r.1 != pack) {
                runs.push((i as u32, pack));
            }
        }
        Some(PackRuns(runs))
    }

    /// Fetches ahead the next `n` packs of a file after the one holding
    /// chunk `i`, on a remote store (one stream per pack runs far below
    /// what the store serves to several).
    pub fn prefetch_after(&self, runs: &PackRuns, i: usize, n: usize) {
        let at = runs.0.partition_point(|r| r.0 as usize <= i);
        for (_, pack) in runs.0.iter().skip(at).take(n) {
            self.repo.prefetch_pack(*pack);
        }
    }

    /// A chunk of file content, which must have exactly the length the
    /// tree gives it: a tree that contradicts its chunks is damage.
    pub fn read_chunk(&self, id: BlobId, len: u32) -> Result<BlobBytes, StoreError> {
        let bytes = self.read(BlobKind::Data, id)?;
        if bytes.len() != len as usize {
            let reason = format!("it has {} bytes where its file's tree says {len}", bytes.len());
            return Err(StoreError::Inconsistent { what: format!("chunk {id}"), reason });
        }
        Ok(bytes)
    }

    fn read_in(&self, index: &Index, kind: BlobKind, id: BlobId) -> Result<BlobBytes, StoreError> {
        let mut last_err = None;
        for loc in index.locations(kind, id) {
            match self.read_at(index, &loc) {
                Ok(bytes) => return Ok(bytes),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or(StoreError::MissingBlob { kind, id }))
    }

    fn read_at(&self, index: &Index, loc: &BlobLoc) -> Result<BlobBytes, StoreError> {
        let pack = index.pack_of(loc).id;
        let key = (pack, index.block(loc.block).offset);
        let kind = loc.kind;
        let block = self.cache.get_or_insert_with(&key, || load_block(&self.repo, index, loc.block)).map_err(|e| {
            if e.is_damage() {
                StoreError::DamagedBlob { kind, id: loc.id, pack, reason: e.detail() }
            } else {
                e
            }
        })?;
        let end = loc.offset as usize + loc.len as usize;
        if end > block.raw.len() {
            let reason = "it lies outside its block".into();
            return Err(StoreError::DamagedBlob { kind, id: loc.id, pack, reason });
        }
        // Only bytes that hash to the blob's id are ever returned: checked
        // when the block was loaded, or here when this location is not one
        // the block was loaded with (an index saying otherwise than the
        // pack, or two blocks at one place).
        let checked = block.good.binary_search(&(loc.id, loc.offset, loc.len)).is_ok()
            || self.repo.blob_id(&block.raw[loc.offset as usize..end]) == loc.id;
        if !checked {
            let reason = "content does not match its hash".into();
            return Err(StoreError::DamagedBlob { kind, id: loc.id, pack, reason });
        }
        Ok(BlobBytes { block, start: loc.offset as usize, end })
    }

    /// The directory listing `id` names, a split tree's parts joined.
    pub fn read_tree(&self, id: BlobId) -> Result<Tree, StoreError> {
        self.read_tree_with_parts(id).map(|(tree, _)| tree)
    }

    /// The directory listing `id` names, and the ids of its parts if it is
    /// a split tree (what a gc must keep besides `id`).
    pub fn read_tree_with_parts(&self, id: BlobId) -> Result<(Tree, Vec<BlobId>), StoreError> {
        self.read_tree_bounded(id, u64::MAX)
    }

    /// `read_tree_with_parts`, refusing a split tree of more than
    /// `max_entries` entries before reading its parts.
    pub fn read_tree_bounded(&self, id: BlobId, max_entries: u64) -> Result<(Tree, Vec<BlobId>), StoreError> {
        match self.read_tree_object(id)? {
            TreeObject::Whole(tree) => Ok((tree, Vec::new())),
            TreeObject::Split(split) if split.entry_count() > max_entries => Err(StoreError::Inconsistent {
                what: format!("split tree {id}"),
                reason: format!("it lists {} entries, more than the {max_entries} expected", split.entry_count()),
            }),
            TreeObject::Split(split) => {
                let mut entries = Vec::new();
                for (k, part) in split.parts.iter().enumerate() {
                    entries.extend(self.read_part(id, &split, k, part.tree)?.entries);
                }
                Ok((Tree { entries }, split.parts.iter().map(|p| p.tree).collect()))
            }
        }
    }

    /// What the tree id `id` names: one tree, or a split tree.
    pub fn read_tree_object(&self, id: BlobId) -> Result<TreeObject, StoreError> {
        let bytes = self.read(BlobKind::Tree, id)?;
        decode_tree_object(&bytes).map_err(|e| StoreError::format(format!("tree {id}"), e))
    }

    /// Part `k` (tree `part`) of split tree `split` (whose id is `id`),
    /// checked against what the split tree says of it.
    fn read_part(&self, id: BlobId, split: &SplitTree, k: usize, part: BlobId) -> Result<Tree, StoreError> {
        let in_part = |err| StoreError::InPart { split: id, part, err: Box::new(err) };
        let bytes = self.read(BlobKind::Tree, part).map_err(in_part)?;
        let tree = decode_tree(&bytes).map_err(|e| in_part(StoreError::format(format!("tree {part}"), e)))?;
        // A part that disagrees with its split tree: the split tree is
        // what is wrong (the part may be sound in another).
        split.check_part(k, &tree).map_err(|e| StoreError::format(format!("split tree {id}"), e))?;
        Ok(tree)
    }
}

/// Only a tree blob gets a block of up to 1 GiB; a block of chunks holds
/// at most one chunk beyond the block target. A block claiming more is
/// refused before anything is read or allocated for it.
/// `raw_len` and `blobs` are the block's, as the index lists them.
pub fn check_block_len(repo: &Repository, raw_len: u32, blobs: &[BlobLoc]) -> Result<(), crate::format::FormatError> {
    let raw = u64::from(raw_len);
    let invalid = |detail: String| Err(crate::format::FormatError::Invalid { what: "block", detail });
    if blobs.iter().any(|l| l.kind != blobs[0].kind) {
        return invalid("it mixes chunks and trees".into());
    }
    let chunk_max = repo.chunk_sizes().max as u64;
    if blobs.iter().any(|l| l.kind == BlobKind::Data && u64::from(l.len) > chunk_max) {
        return invalid(format!("it holds a chunk longer than any chunk ({chunk_max} bytes)"));
    }
    let data_max = BLOCK_TARGET as u64 + chunk_max;
    if blobs.first().is_some_and(|l| l.kind == BlobKind::Data) && raw > data_max {
        return invalid(format!("a block of chunks claims {raw} raw bytes, more than {data_max}"));
    }
    Ok(())
}

/// Reads, decompresses and verifies block `n` of `index`.
fn load_block(repo: &Repository, index: &Index, n: u32) -> Result<Arc<CheckedBlock>, StoreError> {
    let b = index.block(n);
    let pack = index.pack(b.pack);
    let what = || format!("pack {} block at {}", pack.id, b.offset);
    let blobs = index.blobs_in_block(n);
    check_block_len(repo, b.raw_len, &blobs).map_err(|e| StoreError::format(what(), e))?;
    let stored = repo.read_pack_range(pack.id, b.offset, b.stored_len as usize)?;
    let kind = blobs.first().map_or(BlobKind::Data, |l| l.kind);
    // Only a sealed block needs its blobs' ids (its additional data): a
    // plain repository's reads allocate nothing for them.
    let ids: Vec<BlobId> = if repo.is_encrypted() { blobs.iter().map(|l| l.id).collect() } else { Vec::new() };
    let stored = repo.open_block_bytes(kind, &ids, stored).map_err(|e| StoreError::format(what(), e))?;
    let raw = open_block_owned(b.codec, b.raw_len, stored).map_err(|e| StoreError::format(what(), e))?;
    // Every blob is hashed, sealed blocks too: the seal binds the block
    // to its blobs' ids, not to where each lies in it, and the locations
    // come from the index (keyed xxh3 runs at tens of GB/s).
    let mut good: Vec<(BlobId, u32, u32)> = blobs
        .iter()
        .filter(|l| {
            let range = l.offset as usize..(l.offset as usize + l.len as usize);
            raw.get(range).is_some_and(|bytes| repo.blob_id(bytes) == l.id)
        })
        .map(|l| (l.id, l.offset, l.len))
        .collect();
    good.sort_unstable();
    Ok(Arc::new(CheckedBlock { raw, good }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::{BlobEntry, BlockInfo, Codec};
    use crate::format::records::IndexedPack;
    use crate::format::PackId;
    use crate::store::memory::MemBackend;

    #[test]
    fn a_block_of_chunks_larger_than_any_writer_makes_is_refused_unread() {
        let repo = Repository::init(Arc::new(MemBackend::new()), crate::chunking::ChunkSizes::DEFAULT).unwrap();
        let block = |kind, raw_len| {
            let blobs = vec![BlobEntry { id: BlobId(raw_len as u128), kind, offset: 0, len: 1 }];
            BlockInfo { offset: 16, stored_len: 1 << 20, raw_len, codec: Codec::Lz4, blobs }
        };
        let mut index = Index::new([]);
        let blocks =
            vec![block(BlobKind::Data, 100 << 20), block(BlobKind::Tree, 100 << 20), block(BlobKind::Data, 200 << 10)];
        index.add_pack(&IndexedPack { id: PackId(9), size: 200 << 20, blocks });
        assert!(
            check_block_len(&repo, index.block(0).raw_len, &index.blobs_in_block(0)).is_err(),
            "100 MiB of chunks in one block"
        );
        assert!(
            check_block_len(&repo, index.block(1).raw_len, &index.blobs_in_block(1)).is_ok(),
            "a tree may be that large"
        );
        assert!(check_block_len(&repo, index.block(2).raw_len, &index.blobs_in_block(2)).is_ok());
        let reader = BlobReader::new(Arc::new(repo), Arc::new(index), 1 << 20);
        let err = reader.read(BlobKind::Data, BlobId(100 << 20)).err().expect("refused");
        assert!(err.to_string().contains("more than"), "{err}");
    }
}
