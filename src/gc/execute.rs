//! Carrying out a gc plan, in the order that keeps every step safe.

use super::plan::{Action, GcPlan};
use crate::format::pack::BlobKind;
use crate::format::PackId;
use crate::store::{BlobReader, BlobWriter, BlockBuilder, Index, Repository, StoreError};
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
    pub fn planned(plan: &GcPlan, live: usize, started: Instant) -> Self {
        let before: u64 = plan.packs.iter().map(|p| p.size).sum();
        GcReport {
            dry_run: true,
            live_blobs: live as u64,
            packs_before: plan.packs.len() as u64,
            packs_deleted: plan.count(Action::Delete) as u64,
            packs_rewritten: plan.count(Action::Rewrite) as u64,
            bytes_before: before,
            bytes_copied: plan.bytes_to_copy(),
            bytes_unused: plan.bytes_unused(),
            // An estimate: rewritten data comes back compressed.
            bytes_reclaimed: plan.bytes_removed().saturating_sub(plan.bytes_to_copy()),
            bytes_after: before.saturating_sub(plan.bytes_removed()) + plan.bytes_to_copy(),
            duration_ms: started.elapsed().as_millis() as u64,
            ..Default::default()
        }
    }
}

pub fn execute(
    repo: &Arc<Repository>,
    index: &Arc<Index>,
    reader: &BlobReader,
    plan: &GcPlan,
    live: usize,
    started: Instant,
) -> Result<GcReport, StoreError> {
    let bytes_before = repo.stored_bytes()?;
    // 1. Copy the live blobs of rewritten packs into new packs, deduplicating
    //    only against the packs that stay.
    let mut staying = Index::new(index.damaged().iter().copied());
    for p in plan.packs.iter().filter(|p| p.action == Action::Keep) {
        staying.add_pack(&index.indexed_pack(p.slot));
    }
    let writer = BlobWriter::new(repo.clone(), Arc::new(staying));
    let mut data = BlockBuilder::new(BlobKind::Data);
    let mut trees = BlockBuilder::new(BlobKind::Tree);
    let mut copied = 0u64;
    for p in plan.packs.iter().filter(|p| p.action == Action::Rewrite) {
        for block in index.blocks_of_pack(p.slot) {
            for b in index.blobs_in_block(block) {
                if !plan.is_live_copy((b.kind, b.id), block) {
                    continue;
                }
                let bytes = reader.read(b.kind, b.id)?;
                let builder = if b.kind == BlobKind::Tree { &mut trees } else { &mut data };
                writer.add(builder, &bytes)?;
                copied += bytes.len() as u64;
            }
        }
    }
    writer.flush(&mut data)?;
    writer.flush(&mut trees)?;
    let (new_packs, written) = writer.finish_packs()?;

    // 2. Index files for everything that stays, durable before anything
    //    goes (the new packs are durable already).
    let old_index_files = repo.index_files()?;
    let mut all = new_packs;
    all.extend(plan.packs.iter().filter(|p| p.action == Action::Keep).map(|p| index.indexed_pack(p.slot)));
    let new_index: HashSet<PackId> = repo.write_index(all)?.into_iter().map(|(name, _)| name).collect();

    // 3. The old index files, durably, and only then the packs nothing
    //    lists any more: an old index file that came back after a crash
    //    would name packs that are gone.
    for name in old_index_files.iter().filter(|n| !new_index.contains(n)) {
        repo.delete_index_file(*name)?;
    }
    repo.sync()?;
    let gone: HashSet<_> = plan.packs.iter().filter(|p| p.action != Action::Keep).map(|p| p.id).collect();
    for id in &gone {
        repo.delete_pack(*id)?;
    }
    repo.sync()?;
    repo.prune_damage_lists(&gone, false)?;

    let bytes_after = repo.stored_bytes()?;
    Ok(GcReport {
        dry_run: false,
        live_blobs: live as u64,
        packs_before: plan.packs.len() as u64,
        packs_deleted: plan.count(Action::Delete) as u64,
        packs_rewritten: plan.count(Action::Rewrite) as u64,
        packs_written: written.packs,
        bytes_before,
        bytes_after,
        bytes_reclaimed: bytes_before.saturating_sub(bytes_after),
        bytes_copied: copied,
        bytes_unused: plan.bytes_unused(),
        duration_ms: started.elapsed().as_millis() as u64,
    })
}
