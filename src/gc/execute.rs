//! Carrying out a gc plan, in the order that keeps every step safe beside
//! running writers and across a crash at any point.

use super::plan::{Action, GcPlan};
use crate::format::pack::BlobKind;
use crate::format::{PackId, SnapshotId};
use crate::progress::{Phase, Progress};
use crate::store::{BlobReader, BlobWriter, BlockBuilder, Index, Repository, StoreError, WriterSession};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub live_blobs: u64,
    pub packs_before: u64,
    pub packs_deleted: u64,
    pub packs_rewritten: u64,
    pub packs_written: u64,
    /// Packs condemned and not yet deleted: a running writer might still
    /// use them; a later gc deletes those still unused.
    pub packs_condemned: u64,
    /// Writers running beside this gc (what holds condemned packs back).
    pub writers_running: Vec<String>,
    /// True when another gc was running and this one changed nothing.
    pub skipped: bool,
    /// Bytes of packs and index files before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub bytes_reclaimed: u64,
    /// Raw bytes copied out of rewritten packs.
    pub bytes_copied: u64,
    /// Raw (uncompressed) bytes of the blobs no kept snapshot uses.
    pub bytes_unused: u64,
    pub duration_ms: u64,
}

impl GcReport {
    pub fn planned(plan: &GcPlan, live: usize, running: Vec<String>, started: Instant) -> Self {
        let before: u64 = plan.packs.iter().map(|p| p.size).sum();
        GcReport {
            dry_run: true,
            live_blobs: live as u64,
            packs_before: plan.packs.len() as u64,
            packs_deleted: plan.packs.iter().filter(|p| p.action.removes()).count() as u64,
            packs_rewritten: plan.count(Action::Rewrite) as u64,
            packs_condemned: plan.count(Action::Wait) as u64,
            writers_running: running,
            bytes_before: before,
            bytes_copied: plan.bytes_to_copy(),
            bytes_unused: plan.bytes_unused(),
            // An estimate: a rewritten pack keeps its live share of its
            // stored size (live and dead data compress alike, roughly).
            bytes_reclaimed: plan.bytes_removed().saturating_sub(plan.stored_bytes_kept()),
            bytes_after: before.saturating_sub(plan.bytes_removed()) + plan.stored_bytes_kept(),
            duration_ms: started.elapsed().as_millis() as u64,
            ..Default::default()
        }
    }

    pub fn skipped(started: Instant) -> Self {
        GcReport { skipped: true, duration_ms: started.elapsed().as_millis() as u64, ..Default::default() }
    }
}

/// What a gc run works with.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub repo: &'a Arc<Repository>,
    pub session: &'a WriterSession,
    pub index: &'a Arc<Index>,
    pub reader: &'a BlobReader,
    pub plan: &'a GcPlan,
    /// The copies kept.
    pub live: &'a super::marks::Marks,
    /// The snapshots the mark walked.
    pub marked: &'a HashSet<SnapshotId>,
    /// The index files the index was loaded from: the only ones this run
    /// replaces (a save may have written others since).
    pub index_files: &'a [PackId],
    pub progress: &'a dyn Progress,
}

/// Carries out the plan; `due` names the condemned lists whose time has
/// come (their unused packs are deleted, the others kept).
pub fn execute(run: Run, due: &[PackId], live: usize, started: Instant) -> Result<GcReport, StoreError> {
    let Run { repo, session, index, plan, .. } = run;
    let bytes_before = repo.stored_bytes()?;
    // 1. Copy the live blobs of rewritten packs into new packs (durable).
    let (new_packs, written, copied) = rewrite(&run)?;

    // 2. Condemn the unused and the rewritten packs, durably, before any
    //    index stops listing them.
    let condemning: Vec<PackId> = plan.packs.iter().filter(|p| p.action.removes_later()).map(|p| p.id).collect();
    let new_list = repo.write_condemned(condemning)?;
    let (now_too, running) = match new_list {
        Some(_) => can_carry_out_at_once(repo, session, run.marked)?,
        None => (false, Vec::new()),
    };
    let gone: HashSet<PackId> = plan
        .packs
        .iter()
        .filter(|p| p.action == Action::Delete || (now_too && p.action.removes_later()))
        .map(|p| p.id)
        .collect();

    // 3. Index files for everything that stays, durable before anything
    //    goes (the new packs are durable already).
    let old_index_files = run.index_files;
    let staying = plan.packs.iter().filter(|p| !gone.contains(&p.id)).map(|p| {
        index.release_pages();
        index.indexed_pack(p.slot)
    });
    session.ensure_alive()?;
    let new_index: HashSet<PackId> =
        repo.write_index(new_packs.into_iter().chain(staying))?.into_iter().map(|(name, _)| name).collect();

    // 4. The old index files, durably, and only then the packs nothing
    //    lists any more: an old index file that came back after a crash
    //    would name packs that are gone.
    let old: HashSet<PackId> = old_index_files.iter().copied().filter(|n| !new_index.contains(n)).collect();
    for name in &old {
        repo.delete_index_file(*name)?;
    }
    repo.sync()?;
    // The local tables follow: those of the old files go now, the new
    // ones are merged, so the next command maps a few large tables.
    repo.forget_index_tables(&old);
    // Cache upkeep: never a reason for the gc to stop here.
    let _ = repo.compact_index_tables();
    session.ensure_alive()?;
    run.progress.begin(Phase::GcDelete, gone.len() as u64, 0);
    for id in &gone {
        repo.delete_pack(*id)?;
        run.progress.advance(1, 0);
        if run.progress.wants_paths(1) {
            run.progress.item(1, "deleted", &format!("pack {id}"));
        }
    }
    repo.sync()?;

    // 5. The lists carried out: their packs are gone or live again.
    let carried_out = due.iter().copied().chain(new_list.filter(|_| now_too));
    for name in carried_out {
        repo.delete_condemned(name)?;
    }
    repo.sync()?;
    repo.prune_damage_lists(&gone, false)?;

    let bytes_after = repo.stored_bytes()?;
    let condemned_left = plan.packs.iter().filter(|p| !gone.contains(&p.id) && p.action != Action::Keep).count();
    Ok(GcReport {
        dry_run: false,
        live_blobs: live as u64,
        packs_before: plan.packs.len() as u64,
        packs_deleted: gone.len() as u64,
        packs_rewritten: plan.count(Action::Rewrite) as u64,
        packs_written: written,
        packs_condemned: condemned_left as u64,
        writers_running: if condemned_left > 0 { running } else { Vec::new() },
        skipped: false,
        bytes_before,
        bytes_after,
        bytes_reclaimed: bytes_before.saturating_sub(bytes_after),
        bytes_copied: copied,
        bytes_unused: plan.bytes_unused(),
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// Copies the live blobs of rewritten packs into new packs, deduplicating
/// only against the packs that stay. Returns the new packs, their count
/// and the raw bytes copied.
fn rewrite(run: &Run) -> Result<(Vec<crate::format::records::IndexedPack>, u64, u64), StoreError> {
    let Run { repo, index, reader, plan, live, .. } = *run;
    let staying = index.with_unusable(plan.packs.iter().filter(|p| p.action != Action::Keep).map(|p| p.id));
    let writer = BlobWriter::new((*repo).clone(), Arc::new(staying));
    let mut data = BlockBuilder::new(BlobKind::Data);
    let mut trees = BlockBuilder::new(BlobKind::Tree);
    let mut copied = 0u64;
    let progress = run.progress;
    progress.begin(Phase::GcRewrite, plan.count(Action::Rewrite) as u64, plan.bytes_to_copy());
    for p in plan.packs.iter().filter(|p| p.action == Action::Rewrite) {
        progress.advance(1, 0);
        for block in index.blocks_of_pack(p.slot) {
            for b in index.blobs_in_block(block) {
                if !live.is_marked(b.pos) {
                    continue;
                }
                let bytes = reader.read(b.kind, b.id)?;
                let builder = if b.kind == BlobKind::Tree { &mut trees } else { &mut data };
                writer.add(builder, &bytes)?;
                copied += bytes.len() as u64;
                progress.advance(0, bytes.len() as u64);
            }
        }
    }
    writer.flush(&mut data)?;
    writer.flush(&mut trees)?;
    let (new_packs, written) = writer.finish_packs()?;
    Ok((new_packs, written.packs, copied))
}

/// Whether what this run just condemned may be deleted in this run: only
/// when no other writer runs now (one that starts later reads the new
/// list first and keeps off its packs) and no snapshot appeared since the
/// mark (a writer that finished meanwhile may have used them). Returns
/// that, and the writers running (for the report).
fn can_carry_out_at_once(
    repo: &Repository,
    session: &WriterSession,
    marked: &HashSet<SnapshotId>,
) -> Result<(bool, Vec<String>), StoreError> {
    let (writers, now) = repo.writers()?;
    let running: Vec<String> =
        writers.iter().filter(|w| w.id != session.id() && w.is_running(now)).map(|w| w.describe()).collect();
    if !running.is_empty() {
        return Ok((false, running));
    }
    let unmarked = repo.snapshot_ids()?.into_iter().any(|id| !marked.contains(&id));
    Ok((!unmarked, running))
}
