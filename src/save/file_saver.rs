//! The second stage of a save: read the files that changed, cut them into
//! chunks and hand the chunks to the blob writer, on every core.
//!
//! Each file is opened relative to its directory (reached by a cursor that
//! checks every directory on the way), without following a symlink,
//! without blocking on a FIFO swapped in since the scan; its type, owner,
//! mode, size and times are taken from `fstat` on the descriptor that is
//! read, and its extended attributes from that descriptor too, so what is
//! stored always belongs together.

use super::meta::{change_clock, may_be_sparse, may_change_unseen, read_xattrs_fd, Stat};
use super::scan::{FileJob, Scan};
use crate::chunking::{ChunkSizes, StreamChunker};
use crate::dirfd::cursor::Cursor;
use crate::dirfd::{self, Dir};
use crate::format::pack::BlobKind;
use crate::format::tree::{Extent, Xattr};
use crate::format::BlobId;
use crate::store::{BlobWriter, BlockBuilder, StoreError};
use crate::text::escape_path;
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub struct SavedFile {
    pub content: Vec<Extent>,
    /// The file's stat as read: its size is the sum of `content`.
    pub stat: Stat,
    pub xattrs: Vec<Xattr>,
    pub bytes_read: u64,
    /// The file read is not the one the scan found under this name (it was
    /// replaced meanwhile); its other hard-linked names must be read apart.
    pub replaced: bool,
}

pub enum FileError {
    /// The file could not be read: it is left out of the snapshot.
    Source(String),
    /// The repository failed: the save fails.
    Store(StoreError),
    Interrupted,
}

pub struct FileSaver<'a> {
    pub writer: &'a BlobWriter,
    pub sizes: ChunkSizes,
    pub threads: usize,
    pub interrupted: &'a AtomicBool,
    /// The source's root directory (scanned directory 0).
    pub root: &'a Dir,
    pub scan: &'a Scan,
    pub progress: &'a dyn crate::progress::Progress,
}

impl FileSaver<'_> {
    /// Saves every job; `on_done` runs on the calling thread for each
    /// finished file, in completion order.
    pub fn run(
        &self,
        jobs: &[FileJob],
        mut on_done: impl FnMut(usize, Result<SavedFile, FileError>),
    ) -> Result<(), StoreError> {
        let next = AtomicUsize::new(0);
        let (tx, rx) = unbounded();
        std::thread::scope(|scope| {
            let mut workers = Vec::new();
            for _ in 0..self.threads.max(1) {
                let tx = tx.clone();
                let next = &next;
                workers.push(scope.spawn(move || -> Result<(), StoreError> {
                    let mut builder = BlockBuilder::new(BlobKind::Data);
                    let mut chunker = StreamChunker::new(self.sizes);
                    let mut cursor = self.root.try_clone().map(|d| Cursor::new(d, 0));
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        if self.interrupted.load(Ordering::Relaxed) {
                            let _ = tx.send((i, Err(FileError::Interrupted)));
                            break;
                        }
                        let result = match &mut cursor {
                            Ok(c) => self.save_file(c, job, &mut builder, &mut chunker),
                            Err(e) => Err(self.source_error(job, e)),
                        };
                        let fatal = matches!(result, Err(FileError::Store(_)) | Err(FileError::Interrupted));
                        let _ = tx.send((i, result));
                        if fatal {
                            break;
                        }
                    }
                    self.writer.flush(&mut builder)
                }));
            }
            drop(tx);
            for (i, result) in rx {
                on_done(i, result);
            }
            workers.into_iter().try_for_each(|w| w.join().expect("file saver thread panicked"))
        })
    }

    fn source_error(&self, job: &FileJob, e: &dyn std::fmt::Display) -> FileError {
        FileError::Source(format!("{}: {e}", escape_path(&self.scan.path_of(job.dir, &job.name))))
    }

    fn save_file(
        &self,
        cursor: &mut Cursor,
        job: &FileJob,
        builder: &mut BlockBuilder,
        chunker: &mut StreamChunker,
    ) -> Result<SavedFile, FileError> {
        let source = |e: io::Error| self.source_error(job, &e);
        cursor.move_to(self.scan, job.dir).map_err(source)?;
        if self.progress.wants_paths(0) {
            self.progress.current(&self.scan.path_of(job.dir, &job.name));
        }
        let first = self.read_once(cursor.dir(), job, builder, chunker)?;
        if !first.changed {
            let n = first.bytes_read;
            return Ok(first.into_saved(n));
        }
        let second = self.read_once(cursor.dir(), job, builder, chunker)?;
        let total = first.bytes_read + second.bytes_read;
        if second.changed {
            self.progress.message(&format!(
                "warning: {} changed while it was being read; stored as last read",
                escape_path(&self.scan.path_of(job.dir, &job.name))
            ));
        }
        Ok(second.into_saved(total))
    }

    fn read_once(
        &self,
        dir: &Dir,
        job: &FileJob,
        builder: &mut BlockBuilder,
        chunker: &mut StreamChunker,
    ) -> Result<ReadResult, FileError> {
        let source = |e: io::Error| self.source_error(job, &e);
        let clock = change_clock();
        let mut file = dir.open_read(&job.name).map_err(source)?;
        let before = dirfd::fstat(&file).map_err(source)?;
        if before.file_type() != libc::S_IFREG {
            return Err(source(io::Error::other("no longer a regular file")));
        }
        let regions = if may_be_sparse(&before) {
            data_regions(&file, before.size).map_err(source)?
        } else {
            vec![(0, u64::MAX)]
        };
        let mut content = Vec::new();
        let mut pos = 0u64;
        let mut bytes_read = 0u64;
        let mut store_error = None;
        for (start, end) in regions {
            if start > pos {
                content.push(Extent::Hole { len: start - pos });
            }
            file.seek(SeekFrom::Start(start)).map_err(source)?;
            let limit = end.saturating_sub(start);
            if limit.min(before.size.saturating_sub(start)) >= LARGE_REGION && self.threads > 1 {
                let n = self.store_in_parallel(&mut file, limit, chunker, &mut content).map_err(|e| match e {
                    Stopped::Store(e) => FileError::Store(e),
                    Stopped::Interrupted => FileError::Interrupted,
                    Stopped::Source(e) => source(e),
                })?;
                bytes_read += n;
                pos = start + n;
                continue;
            }
            let n = chunker
                .run(&mut file, limit, |chunk| {
                    if self.interrupted.load(Ordering::Relaxed) {
                        return Err(io::Error::other("interrupted"));
                    }
                    match self.writer.add(builder, chunk) {
                        Ok(id) => {
                            self.progress.advance(0, chunk.len() as u64);
                            content.push(Extent::Data { id, len: chunk.len() as u32 });
                            Ok(())
                        }
                        Err(e) => {
                            store_error = Some(e);
                            Err(io::Error::other("repository write failed"))
                        }
                    }
                })
                .map_err(|e| {
                    if let Some(se) = store_error.take() {
                        FileError::Store(se)
                    } else if self.interrupted.load(Ordering::Relaxed) {
                        FileError::Interrupted
                    } else {
                        source(e)
                    }
                })?;
            bytes_read += n;
            pos = start + n;
        }
        let after = dirfd::fstat(&file).map_err(source)?;
        if after.size > pos && may_be_sparse(&before) {
            content.push(Extent::Hole { len: after.size - pos });
            pos = after.size;
        }
        let xattrs = read_xattrs_fd(&file).map_err(source)?;
        let changed = !same_version(&before, &after) || pos != after.size;
        let replaced = before.id() != job.expected;
        let racy = may_change_unseen(&after, clock);
        Ok(ReadResult { replaced, content, after, xattrs, covered: pos, bytes_read, changed, racy })
    }
}

/// A region of a file at least this long is chunked on the reading thread
/// while its chunks are hashed and stored on the others.
const LARGE_REGION: u64 = 8 << 20;
/// Chunks go to the other threads in batches of about this many bytes.
const BATCH: usize = 1 << 20;

enum Stopped {
    Store(StoreError),
    Interrupted,
    Source(io::Error),
}

type Batch = (usize, Vec<u8>, Vec<u32>);
type Stored = (usize, Result<Vec<(BlobId, u32)>, StoreError>);

impl FileSaver<'_> {
    /// Chunks `limit` bytes of `file` on this thread (the cuts are the
    /// chunker's, as ever) and hands the chunks, in batches, to helper
    /// threads that hash and store them; the extents come back in order.
    /// Memory: a few batches in flight.
    fn store_in_parallel(
        &self,
        file: &mut File,
        limit: u64,
        chunker: &mut StreamChunker,
        content: &mut Vec<Extent>,
    ) -> Result<u64, Stopped> {
        let failed = AtomicBool::new(false);
        let helpers = self.threads.max(2);
        std::thread::scope(|scope| {
            let (batches, to_store) = bounded::<Batch>(2 * helpers);
            let (stored_tx, stored) = unbounded::<Stored>();
            for _ in 0..helpers {
                let (to_store, stored_tx, failed) = (to_store.clone(), stored_tx.clone(), &failed);
                scope.spawn(move || self.store_batches(to_store, stored_tx, failed));
            }
            drop((to_store, stored_tx));
            let mut sent = 0;
            let (mut bytes, mut lens) = (Vec::with_capacity(BATCH), Vec::new());
            let read = chunker.run(file, limit, |chunk| {
                if self.interrupted.load(Ordering::Relaxed) || failed.load(Ordering::Relaxed) {
                    return Err(io::Error::other("stopped"));
                }
                bytes.extend_from_slice(chunk);
                lens.push(chunk.len() as u32);
                self.progress.advance(0, chunk.len() as u64);
                if bytes.len() >= BATCH {
                    let batch =
                        (sent, std::mem::replace(&mut bytes, Vec::with_capacity(BATCH)), std::mem::take(&mut lens));
                    batches.send(batch).map_err(|_| io::Error::other("stopped"))?;
                    sent += 1;
                }
                Ok(())
            });
            if read.is_ok() && !lens.is_empty() && batches.send((sent, bytes, lens)).is_ok() {
                sent += 1;
            }
            drop(batches);
            let mut ordered: Vec<Option<Vec<(BlobId, u32)>>> = (0..sent).map(|_| None).collect();
            let mut store_error = None;
            for (i, result) in stored {
                match result {
                    Ok(ids) => {
                        if let Some(slot) = ordered.get_mut(i) {
                            *slot = Some(ids);
                        }
                    }
                    Err(e) => {
                        store_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = store_error {
                return Err(Stopped::Store(e));
            }
            if self.interrupted.load(Ordering::Relaxed) {
                return Err(Stopped::Interrupted);
            }
            let n = read.map_err(Stopped::Source)?;
            for ids in ordered {
                let ids =
                    ids.ok_or(Stopped::Store(StoreError::io("file saver", io::Error::other("a batch was lost"))))?;
                content.extend(ids.into_iter().map(|(id, len)| Extent::Data { id, len }));
            }
            Ok(n)
        })
    }

    /// A helper of [`FileSaver::store_in_parallel`]: hashes and stores
    /// each batch's chunks into its own block.
    fn store_batches(&self, to_store: Receiver<Batch>, stored: Sender<Stored>, failed: &AtomicBool) {
        let mut builder = BlockBuilder::new(BlobKind::Data);
        for (i, bytes, lens) in to_store {
            let mut at = 0;
            let result: Result<Vec<(BlobId, u32)>, StoreError> = lens
                .iter()
                .map(|&len| {
                    let chunk = &bytes[at..at + len as usize];
                    at += len as usize;
                    self.writer.add(&mut builder, chunk).map(|id| (id, len))
                })
                .collect();
            if result.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            let _ = stored.send((i, result));
        }
        if let Err(e) = self.writer.flush(&mut builder) {
            failed.store(true, Ordering::Relaxed);
            let _ = stored.send((usize::MAX, Err(e)));
        }
    }
}

struct ReadResult {
    replaced: bool,
    content: Vec<Extent>,
    after: Stat,
    xattrs: Vec<Xattr>,
    covered: u64,
    bytes_read: u64,
    changed: bool,
    /// A change after the read could keep the times it was read with.
    racy: bool,
}

impl ReadResult {
    fn into_saved(self, bytes_read: u64) -> SavedFile {
        let mut stat = self.after;
        stat.size = self.covered;
        let replaced = self.replaced;
        if self.changed || self.racy {
            // The stored content may match no version of the file, or a
            // later version with the same times: never let a later save
            // take it as unchanged (inode 0 matches no file).
            stat.ino = 0;
        }
        SavedFile { content: self.content, stat, xattrs: self.xattrs, bytes_read, replaced }
    }
}

fn same_version(a: &Stat, b: &Stat) -> bool {
    a.size == b.size && a.mtime == b.mtime && a.ino == b.ino
}

/// The data ranges of a sparse file, found with SEEK_DATA/SEEK_HOLE.
fn data_regions(file: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let fd = file.as_raw_fd();
    let mut regions = Vec::new();
    let mut pos = 0i64;
    while (pos as u64) < size {
        // SAFETY: lseek on a descriptor we own.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break;
            }
            if e.raw_os_error() == Some(libc::EINVAL) {
                // The filesystem cannot tell: read everything.
                return Ok(vec![(0, u64::MAX)]);
            }
            return Err(e);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        regions.push((data as u64, hole as u64));
        pos = hole;
    }
    Ok(regions)
}
