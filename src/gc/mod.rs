//! `chkfs gc`: reclaim the space that no kept snapshot uses.
//!
//! Mark: walk the trees of every snapshot (reading trees only) to find
//! the live blobs. Plan ([`plan`]): per pack, delete it when nothing in it
//! is live, rewrite it when its dead share exceeds `--max-waste`. Execute:
//! copy live blobs of rewritten packs into new packs; write one index
//! listing every pack that stays; remove the old index files; only then
//! delete packs. A crash at any point leaves a valid repository: packs no
//! index lists are read from their footers by the next reader and deleted
//! by the next gc.

mod execute;
pub mod plan;

pub use execute::GcReport;
pub use plan::{Action, GcPlan};

use crate::format::pack::BlobKind;
use crate::format::tree::{Extent, Node};
use crate::format::{BlobId, PackId, SnapshotId};
use crate::store::index::IdSet;
use crate::store::{BlobReader, Index, Repository, StoreError};
use crate::text::escape_bytes;
use crate::walk::each_distinct_tree;
use std::collections::HashSet;
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum GcError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something a kept snapshot needs cannot be found or read.
    #[error("refusing to delete anything: {0}")]
    Unprovable(String),
}

pub struct GcOptions {
    /// Rewrite packs whose dead share of bytes exceeds this (0.0..=1.0).
    pub max_waste: f64,
    pub dry_run: bool,
}

/// Runs a gc; the caller holds the write lock. Returns the plan, the
/// report and what the index repair did (for the user).
pub fn gc(repo: &Arc<Repository>, opts: &GcOptions) -> Result<(GcPlan, GcReport, Vec<String>), GcError> {
    let started = std::time::Instant::now();
    let mut loaded = repo.load_index()?;
    let mut notes = loaded.warnings();
    if !opts.dry_run {
        repo.remove_stale_temps()?;
        notes.extend(repo.repair_index(&mut loaded)?);
    }
    let index = Arc::new(loaded.index);
    let reader = BlobReader::new(repo.clone(), index.clone(), 64 << 20);
    let live = mark(repo, &reader, &index)?;
    let plan = plan::plan(&index, &live, opts.max_waste);
    require_live_packs(repo, &plan)?;
    let report = if opts.dry_run {
        GcReport::planned(&plan, live.len(), started)
    } else {
        execute::execute(repo, &index, &reader, &plan, live.len(), started)?
    };
    Ok((plan, report, notes))
}

/// Every blob a snapshot needs, each distinct tree read once. Any tree
/// that cannot be read stops the gc: what it references cannot be proven
/// dead.
fn mark(repo: &Repository, reader: &BlobReader, index: &Index) -> Result<IdSet, GcError> {
    let mut live = IdSet::default();
    let mut visited = HashSet::new();
    // The parts of split trees: blobs no entry names directly.
    let mut parts = Vec::new();
    for snap in repo.snapshots()? {
        let id = snap.id;
        let mut load = |t| {
            let (tree, its_parts) = reader.read_tree_with_parts(t)?;
            parts.extend(its_parts);
            Ok(Arc::new(tree))
        };
        each_distinct_tree::<GcError>(
            [snap.snapshot.root_tree()],
            &mut visited,
            &mut load,
            &mut |tree_id, node, paths, tree| {
                let tree = tree.map_err(|e| {
                    let path = escape_bytes(&paths.path(node));
                    GcError::Unprovable(format!("snapshot {id}: tree {tree_id} at {path}/: {e}"))
                })?;
                live.insert((BlobKind::Tree, tree_id));
                for entry in &tree.entries {
                    let Node::File { content } = &entry.node else { continue };
                    for x in content {
                        if let Extent::Data { id: chunk, .. } = x {
                            require(index, *chunk, id, || paths.path(node), &entry.name)?;
                            live.insert((BlobKind::Data, *chunk));
                        }
                    }
                }
                Ok(())
            },
        )?;
    }
    live.extend(parts.into_iter().map(|p| (BlobKind::Tree, p)));
    Ok(live)
}

/// Every pack holding a live blob must exist: a gc over a missing pack
/// would write an index naming it and delete what it was compared with.
fn require_live_packs(repo: &Repository, plan: &GcPlan) -> Result<(), GcError> {
    let on_disk: HashSet<PackId> = repo.list_packs()?.into_iter().map(|(p, _)| p).collect();
    for p in plan.packs.iter().filter(|p| p.live_blobs > 0) {
        if !on_disk.contains(&p.id) {
            let why =
                format!("pack {} holds {} chunk(s) that kept snapshots need, but it is missing", p.id, p.live_blobs);
            return Err(GcError::Unprovable(why));
        }
    }
    Ok(())
}

fn require(index: &Index, id: BlobId, snap: SnapshotId, dir: impl Fn() -> Vec<u8>, name: &[u8]) -> Result<(), GcError> {
    if index.contains(BlobKind::Data, id) {
        return Ok(());
    }
    Err(GcError::Unprovable(format!(
        "snapshot {snap}: chunk {id} of {}/{} is missing from the index",
        escape_bytes(&dir()),
        escape_bytes(name)
    )))
}
