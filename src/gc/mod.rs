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
use crate::format::BlobId;
use crate::store::index::IdSet;
use crate::store::{BlobReader, Index, Repository, StoreError};
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

/// Runs a gc; the caller holds the write lock.
pub fn gc(repo: &Arc<Repository>, opts: &GcOptions) -> Result<(GcPlan, GcReport), GcError> {
    let started = std::time::Instant::now();
    let mut loaded = repo.load_index()?;
    if !opts.dry_run {
        repo.remove_stale_temps()?;
        repo.repair_index(&mut loaded)?;
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
    Ok((plan, report))
}

/// Every blob a snapshot needs. Any tree that cannot be read stops the gc:
/// what it references cannot be proven dead.
fn mark(repo: &Repository, reader: &BlobReader, index: &Index) -> Result<IdSet, GcError> {
    let mut live = IdSet::default();
    for snap in repo.snapshots()? {
        let mut stack = vec![(snap.snapshot.root_tree(), String::new())];
        while let Some((tree_id, path)) = stack.pop() {
            if !live.insert(tree_id) {
                continue;
            }
            let tree = reader
                .read_tree(tree_id)
                .map_err(|e| GcError::Unprovable(format!("snapshot {}: tree {tree_id} at {path}/: {e}", snap.id)))?;
            for entry in &tree.entries {
                match &entry.node {
                    Node::Dir { tree } => {
                        stack.push((*tree, format!("{path}/{}", String::from_utf8_lossy(&entry.name))))
                    }
                    Node::File { content } => {
                        for x in content {
                            if let Extent::Data { id, .. } = x {
                                require(index, *id, &snap.id.to_hex(), &path, &entry.name)?;
                                live.insert(*id);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(live)
}

/// Every pack holding a live blob must exist: a gc over a missing pack
/// would write an index naming it and delete what it was compared with.
fn require_live_packs(repo: &Repository, plan: &GcPlan) -> Result<(), GcError> {
    let on_disk: std::collections::HashSet<String> =
        repo.backend().list("packs")?.into_iter().map(|(p, _)| p).collect();
    for p in plan.packs.iter().filter(|p| p.live_blobs > 0) {
        if !on_disk.contains(&crate::store::index::pack_path(p.id)) {
            let why =
                format!("pack {} holds {} chunk(s) that kept snapshots need, but it is missing", p.id, p.live_blobs);
            return Err(GcError::Unprovable(why));
        }
    }
    Ok(())
}

fn require(index: &Index, id: BlobId, snap: &str, dir: &str, name: &[u8]) -> Result<(), GcError> {
    match index.locations(id).next() {
        Some(l) if l.kind == BlobKind::Data => Ok(()),
        _ => Err(GcError::Unprovable(format!(
            "snapshot {snap}: chunk {id} of {dir}/{} is missing from the index",
            String::from_utf8_lossy(name)
        ))),
    }
}
