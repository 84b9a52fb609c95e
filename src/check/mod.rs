//! `chkfs check`: prove that every snapshot can be read back.
//!
//! Without `--read-data`: every index file decodes, every indexed pack
//! exists with its size, every snapshot's trees decode and every chunk
//! they name is indexed. With it: every block of every pack is
//! decompressed and every blob hashed; damaged copies are recorded so
//! that no later save deduplicates against them.

use crate::format::pack::{check_header, open_block, BlobKind};
use crate::format::tree::{Extent, Node, Tree};
use crate::format::{BlobId, PackId, SnapshotId};
use crate::store::index::{pack_path, Index};
use crate::store::{BlobReader, Repository, StoreError};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: u64,
    pub trees: u64,
    pub packs: u64,
    pub packs_read: u64,
    pub bytes_read: u64,
    pub blobs_verified: u64,
    /// Structural damage: undecodable records, missing packs.
    pub errors: Vec<String>,
    /// Referenced blobs with no healthy copy.
    pub damaged_blobs: Vec<DamagedBlob>,
    /// Damaged copies that no snapshot needs: unused, or with a healthy
    /// copy elsewhere (reported, not an error).
    pub unreferenced_damaged: u64,
    /// Packs no index lists (left by an interrupted save; reused by the
    /// next one).
    pub unindexed_packs: u64,
}

#[derive(Debug, Serialize, Clone)]
pub struct DamagedBlob {
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

pub fn check(repo: Arc<Repository>, read_data: bool) -> Result<CheckReport, StoreError> {
    let mut report = CheckReport::default();
    let loaded = repo.load_index()?;
    for (path, e) in &loaded.bad_files {
        report.errors.push(format!("{path}: {e}"));
    }
    for (id, e) in &loaded.bad_packs {
        report.errors.push(format!("unindexed pack {id} is unreadable: {e}"));
    }
    report.unindexed_packs = (loaded.adopted.len() + loaded.bad_packs.len()) as u64;
    let index = loaded.index;
    check_packs_exist(&repo, &index, &mut report)?;
    let mut bad: HashMap<BlobId, (Vec<PackId>, String)> = HashMap::new();
    let mut superseded = 0;
    if read_data {
        let copies = read_all_packs(&repo, &index, &mut report);
        superseded = record_bad_copies(&repo, &index, &copies, &mut bad, &mut report)?;
    }
    let index = Arc::new(index);
    let reader = BlobReader::new(repo.clone(), index.clone(), 64 << 20);
    let mut walker = Walker {
        reader: &reader,
        index: &index,
        bad: &bad,
        trees: HashMap::new(),
        unreadable: HashMap::new(),
        used_by: BTreeMap::new(),
        report: &mut report,
    };
    walker.walk_snapshots(&repo)?;
    let used_by = std::mem::take(&mut walker.used_by);
    let unreadable = std::mem::take(&mut walker.unreadable);
    let referenced: HashSet<BlobId> = used_by.keys().copied().collect();
    report.unreferenced_damaged = superseded + bad.keys().filter(|b| !referenced.contains(b)).count() as u64;
    for (blob, users) in used_by {
        let (packs, reason) = match (bad.get(&blob), unreadable.get(&blob)) {
            (Some(b), _) => b.clone(),
            (None, Some(why)) => (Vec::new(), why.clone()),
            (None, None) => (Vec::new(), "missing from the repository".into()),
        };
        report.damaged_blobs.push(DamagedBlob {
            blob: blob.to_hex(),
            packs: packs.iter().map(|p| p.to_hex()).collect(),
            reason,
            used_by: users,
        });
    }
    Ok(report)
}

/// Every indexed pack must exist with its indexed size.
fn check_packs_exist(repo: &Repository, index: &Index, report: &mut CheckReport) -> Result<(), StoreError> {
    let on_disk: HashMap<String, u64> = repo.backend().list("packs")?.into_iter().collect();
    report.packs = on_disk.len() as u64;
    for pack in index.packs() {
        match on_disk.get(&pack_path(pack.id)) {
            None => report.errors.push(format!("pack {} is missing", pack.id)),
            Some(&size) if size != pack.size => {
                report.errors.push(format!("pack {} has {size} bytes, the index says {}", pack.id, pack.size))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// (pack, blob, reason) for every blob copy that fails to read back.
fn read_all_packs(repo: &Repository, index: &Index, report: &mut CheckReport) -> Vec<(PackId, BlobId, String)> {
    let results: Vec<_> =
        (0..index.packs().len() as u32).into_par_iter().map(|slot| verify_pack(repo, index, slot)).collect();
    let mut bad = Vec::new();
    for (read, verified, errs) in results {
        report.packs_read += 1;
        report.bytes_read += read;
        report.blobs_verified += verified;
        bad.extend(errs);
    }
    bad
}

fn verify_pack(repo: &Repository, index: &Index, slot: u32) -> (u64, u64, Vec<(PackId, BlobId, String)>) {
    let pack = index.pack(slot);
    let blocks: Vec<u32> = index.blocks_of_pack(slot).collect();
    let all_bad = |reason: String| -> Vec<(PackId, BlobId, String)> {
        blocks.iter().flat_map(|&b| index.blobs_in_block(b)).map(|l| (pack.id, l.id, reason.clone())).collect()
    };
    let bytes = match repo.backend().read(&pack_path(pack.id)) {
        Ok(b) => b,
        Err(e) => return (0, 0, all_bad(e.to_string())),
    };
    let mut bad = Vec::new();
    if let Err(e) = check_header(&bytes) {
        bad.push((pack.id, BlobId(0), format!("pack header: {e}")));
    }
    let mut verified = 0;
    for &b in &blocks {
        let loc = index.block(b);
        let stored = usize::try_from(loc.offset).ok().and_then(|o| bytes.get(o..o + loc.stored_len as usize));
        let raw = match stored.map(|s| open_block(loc.codec, loc.raw_len, s)) {
            Some(Ok(raw)) => raw,
            Some(Err(e)) => {
                bad.extend(
                    index.blobs_in_block(b).iter().map(|l| (pack.id, l.id, format!("block does not decompress: {e}"))),
                );
                continue;
            }
            None => {
                bad.extend(
                    index
                        .blobs_in_block(b)
                        .iter()
                        .map(|l| (pack.id, l.id, "block lies beyond the end of the pack".to_string())),
                );
                continue;
            }
        };
        for l in index.blobs_in_block(b) {
            verified += 1;
            let content = raw.get(l.offset as usize..(l.offset + l.len) as usize);
            if content.is_none_or(|c| repo.blob_id(c) != l.id) {
                bad.push((pack.id, l.id, "content does not match its hash".into()));
            }
        }
    }
    (bytes.len() as u64, verified, bad)
}

/// Records damaged copies in the repository, and keeps those blobs that
/// have no healthy copy left.
fn record_bad_copies(
    repo: &Repository,
    index: &Index,
    copies: &[(PackId, BlobId, String)],
    bad: &mut HashMap<BlobId, (Vec<PackId>, String)>,
    report: &mut CheckReport,
) -> Result<u64, StoreError> {
    let mut superseded = 0;
    let bad_copies: HashSet<(PackId, BlobId)> = copies.iter().map(|(p, b, _)| (*p, *b)).collect();
    for (pack, blob, reason) in copies {
        if blob.0 == 0 {
            report.errors.push(format!("pack {pack}: {reason}"));
            continue;
        }
        let healthy_left = index.locations(*blob).any(|l| !bad_copies.contains(&(index.pack_of(&l).id, *blob)));
        if healthy_left {
            superseded += 1;
        } else {
            let e = bad.entry(*blob).or_insert_with(|| (Vec::new(), reason.clone()));
            e.0.push(*pack);
        }
    }
    repo.record_damage(bad_copies.into_iter().filter(|(_, b)| b.0 != 0).collect())?;
    Ok(superseded)
}

struct Walker<'a> {
    reader: &'a BlobReader,
    index: &'a Index,
    bad: &'a HashMap<BlobId, (Vec<PackId>, String)>,
    trees: HashMap<BlobId, Option<Arc<Tree>>>,
    unreadable: HashMap<BlobId, String>,
    used_by: BTreeMap<BlobId, Vec<String>>,
    report: &'a mut CheckReport,
}

impl Walker<'_> {
    fn walk_snapshots(&mut self, repo: &Repository) -> Result<(), StoreError> {
        // Record names and decoding come from the repository, which also
        // skips a record forgotten while this check runs.
        for id in repo.snapshot_ids()? {
            match repo.read_snapshot(id) {
                Ok(Some(snap)) => {
                    self.report.snapshots += 1;
                    self.walk_tree(id, snap.root_tree(), b"")
                }
                Ok(None) => {}
                Err(e) if e.is_damage() => self.report.errors.push(format!("snapshot {id} is damaged: {e}")),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn problem(&self, id: BlobId) -> bool {
        self.bad.contains_key(&id) || self.index.locations(id).next().is_none()
    }

    fn walk_tree(&mut self, snap: SnapshotId, id: BlobId, path: &[u8]) {
        let tree = match self.trees.get(&id) {
            Some(t) => t.clone(),
            None => {
                let t = self.load_tree(id);
                self.trees.insert(id, t.clone());
                t
            }
        };
        let Some(tree) = tree else {
            self.note(id, snap, path);
            return;
        };
        for entry in &tree.entries {
            let mut child = path.to_vec();
            child.push(b'/');
            child.extend_from_slice(&entry.name);
            match &entry.node {
                Node::Dir { tree } => self.walk_tree(snap, *tree, &child),
                Node::File { content } => {
                    for x in content {
                        if let Extent::Data { id, .. } = x {
                            if self.problem(*id) {
                                self.note(*id, snap, &child);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn load_tree(&mut self, id: BlobId) -> Option<Arc<Tree>> {
        self.report.trees += 1;
        if self.problem(id) {
            return None;
        }
        let is_tree = self.index.locations(id).all(|l| l.kind == BlobKind::Tree);
        if !is_tree {
            self.report.errors.push(format!("blob {id} is used as a tree but stored as data"));
        }
        match self.reader.read_tree(id) {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                self.unreadable.insert(id, e.to_string());
                None
            }
        }
    }

    fn note(&mut self, blob: BlobId, snap: SnapshotId, path: &[u8]) {
        let path = if path.is_empty() { "/".to_string() } else { String::from_utf8_lossy(path).into_owned() };
        let users = self.used_by.entry(blob).or_default();
        let label = format!("{snap}:{path}");
        if users.last() != Some(&label) {
            users.push(label);
        }
    }
}
