//! Writes new blobs: each worker fills its own block, full blocks are
//! compressed (and sealed) by a pool of threads, one per core, so that
//! even a single large file, chunked and hashed on one thread, is
//! compressed on every core; sealed blocks go to one thread that appends
//! them to packs and writes each pack once it is full: packs are written
//! sequentially while workers go on chunking.

use super::index::{IdSet, Index};
use super::repo::random_bytes;
use super::{Repository, StoreError, WriterSession};
use crate::format::pack::{
    salt_pack, seal_block_owned, BlobEntry, BlobKind, PackBuilder, SealedBlock, FOOTER_TARGET, MAX_BLOCK_RAW,
};
use crate::format::records::IndexedPack;
use crate::format::tree::{encode_split_tree, encode_tree, split_entries, Part, SplitTree, Tree};
use crate::format::{BlobId, PackId};
use crossbeam_channel::{bounded, Receiver, Sender};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use xxhash_rust::xxh3::xxh3_128;

/// Raw bytes gathered before a block is compressed. Blocks are the unit
/// of compression and of reading: large enough that lz4 finds matches
/// across small files, small enough that a random read decompresses
/// little (see FORMAT.md).
pub const BLOCK_TARGET: usize = 128 << 10;

/// A pack is written once its blocks reach this size.
pub const PACK_TARGET: usize = 32 << 20;

pub struct BlockBuilder {
    kind: BlobKind,
    raw: Vec<u8>,
    blobs: Vec<BlobEntry>,
}

impl BlockBuilder {
    pub fn new(kind: BlobKind) -> Self {
        Self { kind, raw: Vec::with_capacity(BLOCK_TARGET), blobs: Vec::new() }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct WriteSummary {
    pub packs: u64,
    /// Bytes of packs and index files written.
    pub bytes_written: u64,
    pub blobs_added: u64,
    pub raw_bytes_added: u64,
}

type PackThread = JoinHandle<Result<(Vec<IndexedPack>, u64), StoreError>>;

/// The first error any writer thread met: the one the user is told about,
/// whichever thread happens to notice the failure.
#[derive(Clone, Default)]
struct FirstError(Arc<Mutex<Option<StoreError>>>);

impl FirstError {
    fn record(&self, e: StoreError) -> StoreError {
        let mut slot = self.0.lock();
        let copy = e.duplicate();
        slot.get_or_insert(e);
        copy
    }

    /// The recorded error, or a note that the writer stopped.
    fn get(&self) -> StoreError {
        match &*self.0.lock() {
            Some(e) => e.duplicate(),
            None => StoreError::io("pack writer", std::io::Error::other("stopped unexpectedly")),
        }
    }
}

/// A full block on its way to compression.
struct RawBlock {
    raw: Vec<u8>,
    blobs: Vec<BlobEntry>,
}

pub struct BlobWriter {
    repo: Arc<Repository>,
    index: Arc<Index>,
    claimed: Mutex<IdSet>,
    /// Full blocks, to the compressors (bounded: at most two blocks per
    /// compressor wait, so memory stays a few MiB).
    raw_tx: Option<Sender<RawBlock>>,
    /// Block buffers back from the compressors: a fresh 128 KiB buffer is
    /// a fresh mapping, and its pages faults.
    spare_raw: Receiver<Vec<u8>>,
    compressors: Vec<JoinHandle<()>>,
    thread: Option<PackThread>,
    first_error: FirstError,
    blobs_added: AtomicU64,
    raw_bytes_added: AtomicU64,
}

impl BlobWriter {
    pub fn new(repo: Arc<Repository>, index: Arc<Index>) -> Self {
        let (tx, rx) = bounded::<SealedBlock>(16);
        let thread_repo = repo.clone();
        let first_error = FirstError::default();
        let errors = first_error.clone();
        let thread = std::thread::Builder::new()
            .name("chkfs-packs".into())
            .spawn(move || {
                let mut packer = Packer::new(thread_repo, errors.clone());
                for block in rx {
                    if let Err(e) = packer.add(block) {
                        return Err(errors.record(e));
                    }
                }
                packer.finish().map_err(|e| errors.record(e))
            })
            .expect("spawning the pack writer thread");
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (raw_tx, raw_rx) = bounded::<RawBlock>(2 * threads);
        let (spare_tx, spare_rx) = bounded::<Vec<u8>>(4 * threads);
        let compressors = (0..threads)
            .map(|_| {
                let (rx, tx, repo, errors) = (raw_rx.clone(), tx.clone(), repo.clone(), first_error.clone());
                let spare = spare_tx.clone();
                std::thread::Builder::new()
                    .name("chkfs-compress".into())
                    .spawn(move || {
                        for block in rx {
                            let sealed = seal(&repo, block).map(|(sealed, buffer)| {
                                if let Some(mut buffer) = buffer {
                                    buffer.clear();
                                    let _ = spare.try_send(buffer);
                                }
                                sealed
                            });
                            if let Err(e) = sealed.and_then(|b| tx.send(b).map_err(|_| errors.get())) {
                                errors.record(e);
                                return;
                            }
                        }
                    })
                    .expect("spawning a compression thread")
            })
            .collect();
        Self {
            repo,
            index,
            claimed: Mutex::new(IdSet::default()),
            raw_tx: Some(raw_tx),
            spare_raw: spare_rx,
            compressors,
            thread: Some(thread),
            first_error,
            blobs_added: AtomicU64::new(0),
            raw_bytes_added: AtomicU64::new(0),
        }
    }

    /// The raw bytes of the blobs added so far (a running count).
    pub fn raw_bytes_added(&self) -> u64 {
        self.raw_bytes_added.load(Ordering::Relaxed)
    }

    pub fn repo(&self) -> &Arc<Repository> {
        &self.repo
    }

    /// True when the blob is stored or being stored by this writer.
    pub fn is_known(&self, kind: BlobKind, id: BlobId) -> bool {
        self.index.has_healthy(kind, id) || self.claimed.lock().contains(&(kind, id))
    }

    /// Stores `data` as a blob of the builder's kind unless the repository
    /// has it already.
    pub fn add(&self, builder: &mut BlockBuilder, data: &[u8]) -> Result<BlobId, StoreError> {
        if data.len() > MAX_BLOCK_RAW as usize {
            return Err(StoreError::TooLarge(data.len() as u64));
        }
        let id = self.repo.blob_id(data);
        if self.index.has_healthy(builder.kind, id) || !self.claimed.lock().insert((builder.kind, id)) {
            return Ok(id);
        }
        if !builder.raw.is_empty() && builder.raw.len() + data.len() > BLOCK_TARGET {
            self.seal(builder)?;
        }
        builder.blobs.push(BlobEntry {
            id,
            kind: builder.kind,
            offset: builder.raw.len() as u32,
            len: data.len() as u32,
        });
        builder.raw.extend_from_slice(data);
        self.blobs_added.fetch_add(1, Ordering::Relaxed);
        self.raw_bytes_added.fetch_add(data.len() as u64, Ordering::Relaxed);
        if builder.raw.len() >= BLOCK_TARGET {
            self.seal(builder)?;
        }
        Ok(id)
    }

    /// Stores a directory's tree: as one tree object, or, when it holds
    /// more entries than one part should, as a split tree and its parts.
    pub fn add_tree(&self, tree: Tree, builder: &mut BlockBuilder) -> Result<BlobId, StoreError> {
        let mut parts = split_entries(tree.entries);
        if parts.len() == 1 {
            let bytes = encode_tree(&parts[0]).map_err(|e| StoreError::format("new tree", e))?;
            return self.add(builder, &bytes);
        }
        let mut split = SplitTree { parts: Vec::with_capacity(parts.len()) };
        for part in &mut parts {
            let bytes = encode_tree(part).map_err(|e| StoreError::format("new tree", e))?;
            let id = self.add(builder, &bytes)?;
            let first = std::mem::take(&mut part.entries[0].name);
            split.parts.push(Part { first, entries: part.entries.len() as u32, tree: id });
        }
        let bytes = encode_split_tree(&split).map_err(|e| StoreError::format("new split tree", e))?;
        self.add(builder, &bytes)
    }

    /// Sends a builder's pending blobs on their way to a pack.
    pub fn flush(&self, builder: &mut BlockBuilder) -> Result<(), StoreError> {
        if builder.blobs.is_empty() {
            return Ok(());
        }
        self.seal(builder)
    }

    /// Hands the builder's block to the compressors.
    fn seal(&self, builder: &mut BlockBuilder) -> Result<(), StoreError> {
        let fresh = self.spare_raw.try_recv().unwrap_or_else(|_| Vec::with_capacity(BLOCK_TARGET));
        let raw = std::mem::replace(&mut builder.raw, fresh);
        let block = RawBlock { raw, blobs: std::mem::take(&mut builder.blobs) };
        let tx = self.raw_tx.as_ref().expect("sender lives until finish");
        tx.send(block).map_err(|_| self.first_error.get())
    }

    /// Writes the last packs and index files listing every pack written,
    /// each durable before the next step. Blobs still in a builder that
    /// was not flushed are lost.
    pub fn finish(self) -> Result<WriteSummary, StoreError> {
        let repo = self.repo.clone();
        let (packs, mut summary) = self.finish_packs()?;
        summary.bytes_written += repo.write_index(packs)?.iter().map(|(_, n)| n).sum::<u64>();
        Ok(summary)
    }

    /// `finish` for a writer that announced itself: index files are
    /// written only while its lease holds, and taken back when it ran out
    /// meanwhile (a gc may have deleted, as unused, packs they name).
    pub fn finish_for(self, session: &WriterSession) -> Result<WriteSummary, StoreError> {
        let repo = self.repo.clone();
        let (packs, mut summary) = self.finish_packs()?;
        session.ensure_alive()?;
        let written = repo.write_index(packs)?;
        if let Err(e) = session.ensure_alive() {
            for (name, _) in &written {
                let _ = repo.delete_index_file(*name);
            }
            let _ = repo.sync();
            return Err(e);
        }
        summary.bytes_written += written.iter().map(|(_, n)| n).sum::<u64>();
        Ok(summary)
    }

    /// Writes the last packs, makes them durable and returns them, leaving
    /// the index to the caller.
    pub fn finish_packs(mut self) -> Result<(Vec<IndexedPack>, WriteSummary), StoreError> {
        drop(self.raw_tx.take());
        for c in std::mem::take(&mut self.compressors) {
            c.join().map_err(|_| self.first_error.get())?;
        }
        let thread = self.thread.take().expect("finish is called once");
        let joined = thread.join().map_err(|_| self.first_error.get())?;
        let (packs, pack_bytes) = joined.map_err(|_| self.first_error.get())?;
        if !packs.is_empty() {
            self.repo.sync()?;
        }
        let summary = WriteSummary {
            packs: packs.len() as u64,
            bytes_written: pack_bytes,
            blobs_added: self.blobs_added.load(Ordering::Relaxed),
            raw_bytes_added: self.raw_bytes_added.load(Ordering::Relaxed),
        };
        Ok((packs, summary))
    }
}

/// Compresses a block and, in an encrypted repository, seals it.
/// Returns the raw buffer when it was not kept.
fn seal(repo: &Repository, block: RawBlock) -> Result<(SealedBlock, Option<Vec<u8>>), StoreError> {
    let (mut sealed, buffer) = seal_block_owned(block.raw, block.blobs);
    if let Some(cipher) = repo.cipher() {
        let kind = sealed.blobs.first().map_or(BlobKind::Data, |b| b.kind);
        let stored = std::mem::take(&mut sealed.bytes);
        let ids: Vec<BlobId> = sealed.blobs.iter().map(|b| b.id).collect();
        sealed.bytes = cipher.seal_block(kind, &ids, stored).map_err(|e| StoreError::format("new block", e))?;
    }
    Ok((sealed, buffer))
}

/// Assembles blocks into packs and hands full packs to writer threads.
struct Packer {
    data: PackBuilder,
    tree: PackBuilder,
    uploads: Option<Sender<PackBuilder>>,
    /// A buffer of a written data pack, reused: a fresh 32 MiB buffer costs
    /// the kernel 8,192 page faults to hand out zeroed pages. One at most,
    /// so that buffers waiting here add at most one pack to peak memory.
    spare: Receiver<Vec<u8>>,
    writers: Vec<PackThread>,
    errors: FirstError,
}

impl Packer {
    fn new(repo: Arc<Repository>, errors: FirstError) -> Self {
        // A rendezvous channel: at most one pack per writer thread being
        // written plus one being filled are in memory.
        let (tx, rx) = bounded::<PackBuilder>(0);
        let (spare_tx, spare) = bounded::<Vec<u8>>(1);
        // Packs being written at once (each write ends with an fsync or a
        // request's round trip): while one waits, the next is written, and
        // chunking goes on.
        let writers = (0..repo.backend().parallel_writes().max(1))
            .map(|_| {
                let rx = rx.clone();
                let repo = repo.clone();
                let spare_tx = spare_tx.clone();
                let errors = errors.clone();
                std::thread::Builder::new()
                    .name("chkfs-pack-io".into())
                    .spawn(move || {
                        let mut done = Vec::new();
                        let mut bytes = 0;
                        let mut scratch = Vec::new();
                        for pack in rx {
                            let (p, buffer) = write_pack(&repo, pack, &mut scratch).map_err(|e| errors.record(e))?;
                            bytes += p.size;
                            done.push(p);
                            if buffer.capacity() >= PACK_TARGET {
                                let _ = spare_tx.try_send(buffer);
                            }
                        }
                        Ok((done, bytes))
                    })
                    .expect("spawning a pack writer thread")
            })
            .collect();
        Packer { data: new_data_pack(None), tree: PackBuilder::new(), uploads: Some(tx), spare, writers, errors }
    }

    fn add(&mut self, block: SealedBlock) -> Result<(), StoreError> {
        let is_tree = block.blobs.first().is_some_and(|b| b.kind == BlobKind::Tree);
        let builder = if is_tree { &mut self.tree } else { &mut self.data };
        builder.add(block);
        if builder.len() >= PACK_TARGET || builder.footer_estimate() >= FOOTER_TARGET {
            let fresh = if is_tree { PackBuilder::new() } else { new_data_pack(self.spare.try_recv().ok()) };
            let full = std::mem::replace(builder, fresh);
            self.upload(full)?;
        }
        Ok(())
    }

    fn upload(&mut self, pack: PackBuilder) -> Result<(), StoreError> {
        if pack.is_empty() {
            return Ok(());
        }
        let tx = self.uploads.as_ref().expect("open until finish");
        tx.send(pack).map_err(|_| self.errors.get())
    }

    /// Writes what is left and waits for every pack to be durable.
    fn finish(mut self) -> Result<(Vec<IndexedPack>, u64), StoreError> {
        let data = std::mem::take(&mut self.data);
        let tree = std::mem::take(&mut self.tree);
        let sent = self.upload(data).and_then(|()| self.upload(tree));
        drop(self.uploads.take());
        let mut done = Vec::new();
        let mut bytes = 0;
        let mut first_error = sent.err();
        for w in self.writers {
            match w.join().map_err(|_| self.errors.get()).and_then(|r| r) {
                Ok((p, n)) => {
                    done.extend(p);
                    bytes += n;
                }
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        match first_error {
            Some(_) => Err(self.errors.get()),
            None => Ok((done, bytes)),
        }
    }
}

/// Sized for a full pack, its last block and its footer, so that filling
/// it never reallocates (a doubling would hold two copies at once).
fn new_data_pack(spare: Option<Vec<u8>>) -> PackBuilder {
    match spare {
        Some(buffer) => PackBuilder::with_buffer(buffer),
        None => PackBuilder::with_capacity(PACK_TARGET + BLOCK_TARGET * 2 + (1 << 20)),
    }
}

/// Stores a pack; returns it as indexed and its buffer for reuse. An
/// encrypted repository's pack is rebuilt in `scratch`, which gets the
/// pack's old buffer back.
fn write_pack(
    repo: &Repository,
    pack: PackBuilder,
    scratch: &mut Vec<u8>,
) -> Result<(IndexedPack, Vec<u8>), StoreError> {
    let finished = match repo.cipher() {
        Some(cipher) => {
            let mut pack = pack;
            pack.set_sealed();
            pack.finish_sealed(cipher, std::mem::take(scratch)).map(|(bytes, footer, old)| {
                *scratch = old;
                (bytes, footer)
            })
        }
        None => pack.finish(),
    };
    let (mut bytes, footer) = finished.map_err(|e| StoreError::format("new pack", e))?;
    // Every pack gets a random salt, so that a pack name is never used
    // twice: a name a gc deleted never comes back as a different object
    // (the multi-writer protocol relies on it, FORMAT.md), and a pack
    // rebuilt byte for byte to heal a damaged one gets a name of its own.
    loop {
        salt_pack(&mut bytes, u64::from_le_bytes(random_bytes::<8>()?));
        let id = PackId(xxh3_128(&bytes));
        if repo.write_pack(id, &bytes)? {
            let size = bytes.len() as u64;
            return Ok((IndexedPack { id, size, blocks: footer.blocks }, bytes));
        }
    }
}
