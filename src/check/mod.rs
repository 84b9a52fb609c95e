//! `chkfs check`: prove that every snapshot can be read back.
//!
//! Without `--read-data`: every index file decodes, every indexed pack
//! exists, every snapshot's trees decode, every chunk they name is indexed
//! as a chunk with the length the tree gives it, and hard-link groups
//! agree. With it: every byte of every pack is read and verified
//! ([`packs`]); damaged copies are recorded so that no later save
//! deduplicates against them.
//!
//! Check takes no lock and runs beside saves, forgets and gcs. It reads
//! the snapshot records before the index (a record is written only once
//! everything it refers to is indexed), confirms against a freshly loaded
//! index before calling a pack missing, drops the findings of a snapshot
//! forgotten meanwhile, and records as damaged only copies whose bytes it
//! read and found wrong.

mod packs;
mod trees;

use crate::format::pack::BlobKind;
use crate::format::records::Snapshot;
use crate::format::{BlobId, PackId, SnapshotId};
use crate::progress::{Phase, Progress, Silent};
use crate::store::index::{BlobKey, Index};
use crate::store::{BlobReader, Repository, StoreError};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use trees::TreeChecker;

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: u64,
    pub trees: u64,
    pub packs: u64,
    pub packs_read: u64,
    pub bytes_read: u64,
    pub blobs_verified: u64,
    /// Structural damage: undecodable records, missing packs, damaged pack
    /// footers, trees that contradict their blobs.
    pub errors: Vec<String>,
    /// Referenced blobs with no healthy copy.
    pub damaged_blobs: Vec<DamagedBlob>,
    /// Damaged copies that no snapshot needs: unused, or with a healthy
    /// copy elsewhere (reported, not an error).
    pub unreferenced_damaged: u64,
    /// Packs no index lists (left by an interrupted save; reused by the
    /// next one).
    pub unindexed_packs: u64,
    /// Notes that are not damage.
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize, Clone)]
pub struct DamagedBlob {
    pub kind: &'static str,
    pub blob: String,
    pub packs: Vec<String>,
    pub reason: String,
    /// "SNAPSHOT:PATH" of every file or directory that needs the blob.
    pub used_by: Vec<String>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty() && self.damaged_blobs.is_empty()
    }
}

/// Blobs with no healthy copy left: where the bad copies are, and why.
type Bad = HashMap<BlobKey, (Vec<PackId>, String)>;

pub fn check(repo: Arc<Repository>, read_data: bool) -> Result<CheckReport, StoreError> {
    check_with(repo, read_data, &Silent)
}

/// [`check`], telling `progress` about the packs read and the snapshots
/// walked.
pub fn check_with(repo: Arc<Repository>, read_data: bool, progress: &dyn Progress) -> Result<CheckReport, StoreError> {
    let mut report = CheckReport::default();
    let records = read_records(&repo, &mut report)?;
    // Damaged tables are dropped first, so the load below makes them
    // again from the index files.
    let bad_tables = repo.verify_index_tables();
    if bad_tables > 0 {
        report.notes.push(format!("{bad_tables} of the local index tables were damaged; they were made again"));
    }
    let loaded = repo.load_index_verified()?;
    for (key, e) in &loaded.bad_files {
        report.errors.push(format!("index file {key}: {}", e.detail()));
    }
    for (id, e) in &loaded.bad_packs {
        report.errors.push(format!("unindexed pack {id} is unreadable: {}", e.detail()));
    }
    let damage_list_errors: Vec<String> = loaded
        .bad_damage_lists
        .iter()
        .map(|(key, e)| {
            format!(
                "damage list {key} is unreadable ({}); it is ignored, and `check --read-data` replaces it",
                e.detail()
            )
        })
        .collect();
    report.unindexed_packs = (loaded.adopted.len() + loaded.bad_packs.len()) as u64;
    let index = Arc::new(loaded.index);
    let missing = check_packs_exist(&repo, &index, &mut report)?;
    let mut bad = Bad::new();
    let mut superseded = 0;
    let mut damage_lists_replaced = false;
    if read_data {
        let complete;
        (superseded, complete) = read_all_packs(&repo, &index, &missing, &mut bad, &mut report, progress)?;
        if complete && !loaded.bad_damage_lists.is_empty() {
            repo.prune_damage_lists(&HashSet::new(), true)?;
            damage_lists_replaced = true;
        }
    }
    if damage_lists_replaced {
        report.notes.push(format!("{} unreadable damage list(s) replaced", damage_list_errors.len()));
    } else {
        report.errors.extend(damage_list_errors);
    }
    let reader = BlobReader::new(repo.clone(), index.clone(), 64 << 20);
    let mut walker = TreeChecker::new(&reader, &index, &bad);
    let mut used: BTreeMap<BlobKey, (String, Vec<String>)> = BTreeMap::new();
    progress.begin(Phase::CheckTrees, records.len() as u64, 0);
    for (id, snapshot) in &records {
        let found = walker.snapshot(*id, snapshot.root_tree());
        progress.advance(1, 0);
        let has_findings = !(found.problems.is_empty() && found.contradictions.is_empty());
        // A snapshot forgotten (and collected) meanwhile lost its blobs
        // legitimately.
        if has_findings && repo.read_snapshot(*id)?.is_none() {
            report.snapshots -= 1;
            continue;
        }
        report.errors.extend(found.contradictions);
        for (key, (why, users)) in found.problems {
            let named = &mut used.entry(key).or_insert_with(|| (why, Vec::new())).1;
            // Each snapshot names at most a hundred users; so do all together.
            let room = 101usize.saturating_sub(named.len());
            named.extend(users.into_iter().take(room));
        }
    }
    report.trees = walker.trees_checked();
    report.unreferenced_damaged = superseded + bad.keys().filter(|k| !used.contains_key(k)).count() as u64;
    for (key, (why, users)) in used {
        let (packs, reason) = match bad.get(&key) {
            Some((packs, reason)) => (packs.iter().map(|p| p.to_hex()).collect(), reason.clone()),
            None => (Vec::new(), why),
        };
        let kind = crate::store::kind_name(key.0);
        report.damaged_blobs.push(DamagedBlob { kind, blob: key.1.to_hex(), packs, reason, used_by: users });
    }
    Ok(report)
}

/// Every snapshot record, read before the index; damaged ones reported.
fn read_records(repo: &Repository, report: &mut CheckReport) -> Result<Vec<(SnapshotId, Snapshot)>, StoreError> {
    let mut out = Vec::new();
    for id in repo.snapshot_ids()? {
        match repo.read_snapshot(id) {
            Ok(Some(s)) => out.push((id, s)),
            Ok(None) => {}
            Err(e) if e.is_damage() => report.errors.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    report.snapshots = out.len() as u64;
    Ok(out)
}

/// Of `packs`, those that are really missing: absent from a listing, and
/// still indexed by an index loaded after that listing. A gc makes an
/// index without a pack durable before it deletes the pack, so a pack
/// missing from the listing that a later index still names is damage,
/// never a concurrent gc.
fn confirm_missing(repo: &Repository, packs: &[PackId]) -> Result<Vec<PackId>, StoreError> {
    if packs.is_empty() {
        return Ok(Vec::new());
    }
    let on_disk: HashSet<PackId> = repo.list_packs()?.into_iter().map(|(p, _)| p).collect();
    let absent: Vec<PackId> = packs.iter().copied().filter(|p| !on_disk.contains(p)).collect();
    if absent.is_empty() {
        return Ok(absent);
    }
    let index = repo.load_index_full()?.index;
    Ok(absent.into_iter().filter(|p| index.contains_pack(*p)).collect())
}

/// Every indexed pack must exist with its indexed size; returns the
/// missing ones.
fn check_packs_exist(repo: &Repository, index: &Index, report: &mut CheckReport) -> Result<Vec<PackId>, StoreError> {
    let on_disk: HashMap<PackId, u64> = repo.list_packs()?.into_iter().collect();
    report.packs = on_disk.len() as u64;
    let mut absent = Vec::new();
    for (_, pack) in index.packs() {
        match on_disk.get(&pack.id) {
            None => absent.push(pack.id),
            Some(&size) if size != pack.size => {
                report.errors.push(format!("pack {} has {size} bytes, the index says {}", pack.id, pack.size))
            }
            Some(_) => {}
        }
    }
    let missing = confirm_missing(repo, &absent)?;
    for id in &missing {
        report.errors.push(format!("pack {id} is missing"));
    }
    Ok(missing)
}

/// Reads every pack; records the damaged copies; returns how many damaged
/// copies have a healthy copy elsewhere, and whether every pack was read.
fn read_all_packs(
    repo: &Repository,
    index: &Index,
    known_missing: &[PackId],
    bad: &mut Bad,
    report: &mut CheckReport,
    progress: &dyn Progress,
) -> Result<(u64, bool), StoreError> {
    let total: u64 = index.packs().map(|(_, p)| p.size).sum();
    let slots: Vec<u32> = index.pack_slots().collect();
    progress.begin(Phase::ReadPacks, slots.len() as u64, total);
    let results: Vec<Result<packs::PackResult, StoreError>> = slots
        .par_iter()
        .copied()
        .map(|slot| {
            let result = packs::verify_pack(repo, index, slot);
            progress.advance(1, index.pack(slot).size);
            result
        })
        .collect();
    let mut copies: Vec<(PackId, BlobKind, BlobId, String)> = Vec::new();
    let mut vanished = Vec::new();
    for (&slot, result) in slots.iter().zip(results) {
        let result = result?;
        let pack = index.pack(slot).id;
        report.packs_read += 1;
        report.bytes_read += result.bytes_read;
        report.blobs_verified += result.blobs_verified;
        if result.vanished {
            vanished.push(slot);
            continue;
        }
        for s in result.structure {
            report.errors.push(format!("pack {pack}: {s}"));
        }
        copies.extend(result.bad_copies.into_iter().map(|(k, b, why)| (pack, k, b, why)));
    }
    let complete = vanished.is_empty();
    let vanished_ids: Vec<PackId> = vanished.iter().map(|&s| index.pack(s).id).collect();
    let missing: HashSet<PackId> = confirm_missing(repo, &vanished_ids)?.into_iter().collect();
    for &slot in &vanished {
        let pack = index.pack(slot).id;
        if !missing.contains(&pack) {
            continue;
        }
        if !known_missing.contains(&pack) {
            report.errors.push(format!("pack {pack} is missing"));
        }
        for b in index.blocks_of_pack(slot) {
            let why = "its pack is missing".to_string();
            copies.extend(index.blobs_in_block(b).iter().map(|l| (pack, l.kind, l.id, why.clone())));
        }
    }
    let bad_copies: HashSet<(PackId, BlobId)> = copies.iter().map(|(p, _, b, _)| (*p, *b)).collect();
    let mut superseded = 0;
    for (pack, kind, blob, reason) in &copies {
        let healthy_left = index.locations(*kind, *blob).any(|l| !bad_copies.contains(&(index.pack_of(&l).id, *blob)));
        if healthy_left {
            superseded += 1;
        } else {
            bad.entry((*kind, *blob)).or_insert_with(|| (Vec::new(), reason.clone())).0.push(*pack);
        }
    }
    repo.record_damage(bad_copies.into_iter().collect())?;
    Ok((superseded, complete))
}
