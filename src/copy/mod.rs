//! `chkfs copy`: snapshots from one repository into another (a local one
//! shipped off-site to S3, say), deduplicated against what the target
//! holds.
//!
//! Blob ids are keyed by each repository's secret, so a chunk's id in the
//! target is computed from its bytes there; trees are rewritten with the
//! target's ids. Two things keep a repeated copy cheap: a snapshot the
//! target already has (same time, host, path and message) is skipped
//! without reading anything, and each distinct tree is copied once per
//! run. The target is written as a save writes: marker first, packs and
//! index durable before the snapshot records.

use crate::format::pack::BlobKind;
use crate::format::records::Snapshot;
use crate::format::tree::{Extent, Node, Tree};
use crate::format::{BlobId, SnapshotId};
use crate::progress::{Phase, Progress};
use crate::store::writers::SAVE_LEASE;
use crate::store::{BlobReader, BlobWriter, BlockBuilder, Repository, SnapshotEntry, StoreError};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("interrupted; nothing was recorded in the target (the data copied so far is reused next time)")]
    Interrupted,
}

#[derive(Debug, Default, Serialize)]
pub struct CopyReport {
    /// (source id, target id) of each snapshot copied.
    pub copied: Vec<(String, String)>,
    /// Source snapshots the target already had.
    pub skipped: Vec<String>,
    /// Chunks and trees the target did not have, and their raw bytes.
    pub blobs_added: u64,
    pub bytes_added: u64,
    /// Chunks read from the source.
    pub chunks_read: u64,
}

/// Copies `ids` (every snapshot when empty) from `src` into `dst`.
pub fn copy(
    src: &Arc<Repository>,
    dst: &Arc<Repository>,
    ids: &[SnapshotId],
    interrupted: &AtomicBool,
    on_snapshot: &mut dyn FnMut(&SnapshotEntry, bool),
    progress: &dyn Progress,
) -> Result<CopyReport, CopyError> {
    let session = dst.begin_writing("copy", SAVE_LEASE)?;
    let mut dst_loaded = dst.load_index()?;
    dst.index_adopted(&mut dst_loaded)?;
    let present: Vec<Snapshot> = dst.readable_snapshots(&mut |_, _| {})?.into_iter().map(|s| s.snapshot).collect();
    let src_index = Arc::new(src.load_index()?.index);
    let mut wanted = src.snapshots()?;
    if !ids.is_empty() {
        wanted.retain(|s| ids.contains(&s.id));
    }
    let mut report = CopyReport::default();
    let writer = BlobWriter::new(dst.clone(), Arc::new(dst_loaded.index));
    let mut copier = TreeCopier {
        reader: BlobReader::new(src.clone(), src_index, 64 << 20),
        writer: &writer,
        same_ids: src.same_blob_ids(dst),
        trees: HashMap::new(),
        chunks: HashMap::new(),
        open: Default::default(),
        data: BlockBuilder::new(BlobKind::Data),
        tree_blocks: BlockBuilder::new(BlobKind::Tree),
        chunks_read: 0,
        interrupted,
        progress,
    };
    let mut records = Vec::new();
    progress.begin(Phase::Copy, wanted.len() as u64, 0);
    for s in wanted {
        let there = present.iter().any(|p| same_origin(p, &s.snapshot));
        on_snapshot(&s, there);
        progress.advance(1, 0);
        if there {
            report.skipped.push(s.id.to_hex());
            continue;
        }
        let root = match copier.tree(s.snapshot.root_tree()) {
            Ok(root) => root,
            Err(e) => {
                // What was copied is indexed, so the next copy reuses it.
                copier.finish()?;
                drop(copier);
                writer.finish_for(&session)?;
                return Err(e);
            }
        };
        let mut snapshot = s.snapshot.clone();
        snapshot.root.node = Node::Dir { tree: root };
        // The parent is a source snapshot id, which means nothing here.
        snapshot.parent = None;
        records.push((s.id, snapshot));
    }
    copier.finish()?;
    report.chunks_read = copier.chunks_read;
    drop(copier);
    let written = writer.finish_for(&session)?;
    report.blobs_added = written.blobs_added;
    report.bytes_added = written.raw_bytes_added;
    for (from, mut snapshot) in records {
        let id = dst.commit_snapshot(&session, &mut snapshot, |_, _| {})?;
        report.copied.push((from.to_hex(), id.to_hex()));
    }
    Ok(report)
}

/// Two records of the same checkpoint: the same time, source, message
/// and counts (a record names trees by ids that differ between
/// repositories).
fn same_origin(a: &Snapshot, b: &Snapshot) -> bool {
    let counts = |s: &Snapshot| (s.stats.files, s.stats.dirs, s.stats.other, s.stats.bytes);
    a.time == b.time && a.host == b.host && a.path == b.path && a.message == b.message && counts(a) == counts(b)
}

struct TreeCopier<'a> {
    reader: BlobReader,
    writer: &'a BlobWriter,
    /// Both repositories name blobs alike (the same secret): an id the
    /// target has needs no reading.
    same_ids: bool,
    /// Source tree id -> target tree id.
    trees: HashMap<BlobId, BlobId>,
    /// Source chunk id -> target chunk id.
    chunks: HashMap<BlobId, BlobId>,
    /// Trees being copied (on the way down): a tree that contains itself
    /// is damage, never an endless copy.
    open: std::collections::HashSet<BlobId>,
    data: BlockBuilder,
    tree_blocks: BlockBuilder,
    chunks_read: u64,
    interrupted: &'a AtomicBool,
    progress: &'a dyn Progress,
}

impl TreeCopier<'_> {
    /// The target id of source tree `id`, copying it and everything
    /// below it that the target lacks.
    fn tree(&mut self, id: BlobId) -> Result<BlobId, CopyError> {
        if let Some(done) = self.trees.get(&id) {
            return Ok(*done);
        }
        if self.interrupted.load(Ordering::Relaxed) {
            return Err(CopyError::Interrupted);
        }
        if !self.open.insert(id) {
            let reason = "it contains itself".into();
            return Err(StoreError::Inconsistent { what: format!("tree {id}"), reason }.into());
        }
        let tree = self.reader.read_tree(id)?;
        let mut out = Tree { entries: Vec::with_capacity(tree.entries.len()) };
        for mut entry in tree.entries {
            match &mut entry.node {
                Node::Dir { tree } => *tree = self.tree(*tree)?,
                Node::File { content } => {
                    for x in content.iter_mut() {
                        if let Extent::Data { id, len } = x {
                            *id = self.chunk(*id, *len)?;
                        }
                    }
                }
                _ => {}
            }
            out.entries.push(entry);
        }
        let new = self.writer.add_tree(out, &mut self.tree_blocks)?;
        self.open.remove(&id);
        self.trees.insert(id, new);
        Ok(new)
    }

    fn chunk(&mut self, id: BlobId, len: u32) -> Result<BlobId, CopyError> {
        if let Some(done) = self.chunks.get(&id) {
            return Ok(*done);
        }
        if self.same_ids && self.writer.is_known(BlobKind::Data, id) {
            return Ok(id);
        }
        let bytes = self.reader.read_chunk(id, len)?;
        self.chunks_read += 1;
        self.progress.advance(0, bytes.len() as u64);
        let new = self.writer.add(&mut self.data, &bytes)?;
        self.chunks.insert(id, new);
        Ok(new)
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        self.writer.flush(&mut self.data)?;
        self.writer.flush(&mut self.tree_blocks)
    }
}
