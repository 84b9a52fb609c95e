//! `chkfs gc`: reclaim the space that no kept snapshot uses, beside any
//! number of running saves, without a lock (FORMAT.md, "Many writers").
//!
//! Mark: walk the trees of every snapshot (reading trees only) to find
//! the live blobs. Plan ([`plan`]): per pack, condemn it when nothing in
//! it is live, rewrite it when its dead share exceeds `--max-waste`, and
//! delete what earlier gcs condemned once every writer that might still
//! use it has finished. Execute ([`execute`]): copy, condemn, re-index,
//! then delete, each step durable before the next.

mod execute;
pub mod marks;
pub mod plan;

pub use execute::GcReport;
pub use plan::{Action, GcPlan};

use crate::format::pack::BlobKind;
use crate::format::tree::{Extent, Node};
use crate::format::{PackId, SnapshotId};
use crate::progress::{Phase, Progress, Silent};
use crate::store::writers::{GC_LEASE, STALE_TEMP_AGE};
use crate::store::{BlobReader, CondemnedLists, Index, Repository, SnapshotEntry, StoreError, WriterInfo};
use crate::text::escape_bytes;
use crate::walk::each_distinct_tree;
use marks::{Marks, Missing};
use plan::Condemnation;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
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
    /// A writer that started less than this after a condemned list was
    /// written may have missed it (the clocks of a store's nodes differ,
    /// and some tick in whole seconds).
    pub grace: Duration,
}

/// Runs a gc. Returns the plan, the report and notes for the user.
pub fn gc(repo: &Arc<Repository>, opts: &GcOptions) -> Result<(GcPlan, GcReport, Vec<String>), GcError> {
    gc_with(repo, opts, &Silent)
}

/// [`gc`], telling `progress` about the snapshots marked and the packs
/// rewritten and deleted.
pub fn gc_with(
    repo: &Arc<Repository>,
    opts: &GcOptions,
    progress: &dyn Progress,
) -> Result<(GcPlan, GcReport, Vec<String>), GcError> {
    let started = std::time::Instant::now();
    // Announced before anything is read, as every writer does.
    let session = if opts.dry_run { None } else { Some(repo.begin_writing("gc", GC_LEASE)?) };
    let own = session.as_ref().map(|s| s.id());
    let survey = Survey::take(repo, own)?;
    let mut notes = Vec::new();
    if let Some(other) = survey.live.iter().find(|w| w.is_gc()) {
        notes.push(format!("another gc is running ({}): this one changes nothing", other.describe()));
        return Ok((GcPlan::default(), GcReport::skipped(started), notes));
    }
    // Snapshots before the index: a snapshot's packs are indexed before
    // its record is written, so every snapshot listed here finds its
    // chunks in the index loaded next. A save that finishes later started
    // before this survey (its marker holds back what it might use) or
    // after (it keeps off condemned packs).
    let snapshots = repo.snapshots()?;
    let mut loaded = repo.load_index_full()?;
    notes.extend(loaded.warnings());
    if !opts.dry_run {
        repo.remove_stale_temps(STALE_TEMP_AGE)?;
        notes.extend(repo.repair_index(&mut loaded)?);
        for w in &survey.dead {
            notes.push(format!("removing the marker of {}, which stopped without removing it", w.describe()));
            repo.remove_dead_writer(w)?;
        }
        for (key, _) in &loaded.condemned.bad {
            repo.delete_condemned_key(key)?;
        }
    }
    let condemned = std::mem::take(&mut loaded.condemned);
    let index_files = std::mem::take(&mut loaded.files);
    let condemnation = survey.condemnation(&condemned, opts.grace);
    let index = Arc::new(loaded.index);
    let reader = BlobReader::new(repo.clone(), index.clone(), 64 << 20);
    let (live, marked) = mark(snapshots, &reader, &index, progress)?;
    let plan = plan::plan(&index, &live, opts.max_waste, &condemnation);
    require_live_packs(repo, &plan)?;
    let running: Vec<String> = survey.live.iter().map(WriterInfo::describe).collect();
    let report = match &session {
        None => GcReport::planned(&plan, live.count(), running, started),
        Some(session) => {
            let run = execute::Run {
                repo,
                session,
                index: &index,
                reader: &reader,
                plan: &plan,
                live: &live,
                marked: &marked,
                index_files: &index_files,
                progress,
            };
            let due: Vec<PackId> =
                condemned.lists.iter().filter(|l| survey.is_due(l.written, opts.grace)).map(|l| l.name).collect();
            execute::execute(run, &due, live.count(), started)?
        }
    };
    Ok((plan, report, notes))
}

/// The other writers with markers in storage, as a gc found them before
/// it read anything else.
struct Survey {
    live: Vec<WriterInfo>,
    dead: Vec<WriterInfo>,
}

impl Survey {
    fn take(repo: &Repository, own: Option<u128>) -> Result<Survey, StoreError> {
        let (writers, now) = repo.writers()?;
        let (live, dead) = writers.into_iter().filter(|w| Some(w.id) != own).partition(|w| w.is_running(now));
        Ok(Survey { live, dead })
    }

    /// A condemned list is due when every writer still running started
    /// after it was written (by more than `grace`): those writers read it
    /// before anything else, and never use its packs; every writer that
    /// might have used them has finished, and its snapshot is marked.
    fn is_due(&self, written: SystemTime, grace: Duration) -> bool {
        self.live.iter().all(|w| w.started > written + grace)
    }

    fn condemnation(&self, lists: &CondemnedLists, grace: Duration) -> Condemnation {
        let mut out = Condemnation::default();
        for list in &lists.lists {
            let set = if self.is_due(list.written, grace) { &mut out.due } else { &mut out.waiting };
            set.extend(list.packs.iter().copied());
        }
        out.waiting.retain(|p| !out.due.contains(p));
        out
    }
}

/// Every blob a snapshot needs, each distinct tree read once. Any tree
/// that cannot be read stops the gc: what it references cannot be proven
/// dead.
fn mark(
    snapshots: Vec<SnapshotEntry>,
    reader: &BlobReader,
    index: &Index,
    progress: &dyn Progress,
) -> Result<(Marks, HashSet<SnapshotId>), GcError> {
    let mut live = Marks::new(index);
    let mut visited = HashSet::new();
    // The parts of split trees: blobs no entry names directly.
    let mut parts = Vec::new();
    let marked = snapshots.iter().map(|s| s.id).collect();
    let ids: Vec<SnapshotId> = snapshots.iter().map(|s| s.id).collect();
    // Chunks no index file lists (trees were read, so they are there).
    let mut missing = Vec::new();
    let mut note = |found: Vec<Missing>| missing.extend(found.into_iter().filter(|m| m.kind == BlobKind::Data));
    progress.begin(Phase::GcMark, snapshots.len() as u64, 0);
    for (n, snap) in snapshots.into_iter().enumerate() {
        progress.advance(1, 0);
        let id = snap.id;
        let n = n as u32;
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
                note(live.mark(index, BlobKind::Tree, tree_id, n));
                for entry in &tree.entries {
                    let Node::File { content } = &entry.node else { continue };
                    for x in content {
                        if let Extent::Data { id: chunk, .. } = x {
                            note(live.mark(index, BlobKind::Data, *chunk, n));
                        }
                    }
                }
                Ok(())
            },
        )?;
    }
    for part in parts {
        note(live.mark(index, BlobKind::Tree, part, 0));
    }
    note(live.flush(index));
    if let Some(m) = missing.first() {
        let snap = ids.get(m.needed_by as usize).map_or_else(String::new, |s| format!("snapshot {s}: "));
        return Err(GcError::Unprovable(format!(
            "{snap}chunk {} is missing from the index ({} chunk(s) in all; `chkfs check` names the files \
             that use them)",
            m.id,
            missing.len()
        )));
    }
    Ok((live, marked))
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
