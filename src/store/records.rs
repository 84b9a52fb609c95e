//! Snapshot records and damage lists.

use super::record_cache::{ListedRecord, RecordCache};
use super::repo::random_bytes;
use super::{keys, Repository, StoreError, WriterSession};
use crate::format::records::{decode_damage_list, decode_snapshot, encode_damage_list, encode_snapshot};
use crate::format::records::{DamageList, Snapshot};
use crate::format::{BlobId, ObjectKind, PackId, SnapshotId};
use std::collections::HashSet;
use xxhash_rust::xxh3::xxh3_128;

/// The largest snapshot record a repository may hold (records carry the
/// save's error messages, which are capped well below this).
pub const MAX_SNAPSHOT_RECORD: u64 = 64 << 20;
const MAX_DAMAGE_LIST: u64 = 256 << 20;

#[derive(Debug, Clone)]
pub struct SnapshotEntry {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    /// Size of the record in storage.
    pub record_len: u64,
}

/// Every damaged blob copy recorded, and the lists that do not decode.
#[derive(Default)]
pub struct DamageLists {
    pub entries: Vec<(PackId, BlobId)>,
    pub bad: Vec<(String, StoreError)>,
}

impl Repository {
    /// Every snapshot that can be read, oldest first; a damaged record is
    /// reported to `on_damaged` and left out (`check` names it; `gc`, which
    /// must not miss one, uses [`Repository::snapshots`]).
    pub fn readable_snapshots(
        &self,
        on_damaged: &mut dyn FnMut(SnapshotId, StoreError),
    ) -> Result<Vec<SnapshotEntry>, StoreError> {
        self.readable_snapshots_from(true, on_damaged)
    }

    /// [`Repository::readable_snapshots`], every record read from storage
    /// (never the local cache): what `forget` decides on.
    pub fn readable_snapshots_from_storage(
        &self,
        on_damaged: &mut dyn FnMut(SnapshotId, StoreError),
    ) -> Result<Vec<SnapshotEntry>, StoreError> {
        self.readable_snapshots_from(false, on_damaged)
    }

    fn readable_snapshots_from(
        &self,
        use_cache: bool,
        on_damaged: &mut dyn FnMut(SnapshotId, StoreError),
    ) -> Result<Vec<SnapshotEntry>, StoreError> {
        let mut out = Vec::new();
        for (id, len, read) in self.all_records(use_cache)? {
            match read {
                Ok(Some(snapshot)) => out.push(SnapshotEntry { id, snapshot, record_len: len }),
                Ok(None) => {}
                // One record of a newer format (or whose version byte
                // flipped: records are not named by their hash) hides only
                // itself from readers; gc, which must see every record,
                // stops on it.
                Err(e @ StoreError::NewerFormat { .. }) => on_damaged(id, e),
                Err(e) if e.is_damage() => on_damaged(id, e),
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|s| (s.snapshot.time, s.id));
        Ok(out)
    }

    /// Every snapshot, oldest first, each record read from storage (gc
    /// decides on these). A record that cannot be decoded is an error
    /// naming it.
    pub fn snapshots(&self) -> Result<Vec<SnapshotEntry>, StoreError> {
        let mut out = Vec::new();
        for (id, len, read) in self.all_records(false)? {
            if let Some(snapshot) = read? {
                out.push(SnapshotEntry { id, snapshot, record_len: len });
            }
        }
        out.sort_by_key(|s| (s.snapshot.time, s.id));
        Ok(out)
    }

    /// Every listed record, read and decoded (None: deleted meanwhile),
    /// several at once. With `use_cache`, records the local cache holds
    /// under the size and time listed are taken from it (one that does not
    /// decode is read again from storage).
    #[allow(clippy::type_complexity)]
    fn all_records(
        &self,
        use_cache: bool,
    ) -> Result<Vec<(SnapshotId, u64, Result<Option<Snapshot>, StoreError>)>, StoreError> {
        use rayon::prelude::*;
        let listed: Vec<ListedRecord> = self
            .backend()
            .list(keys::SNAPSHOTS)?
            .iter()
            .filter_map(|l| {
                Some(ListedRecord { id: keys::parse_snapshot(&l.key)?, size: l.size, modified: l.modified })
            })
            .collect();
        let mut cache = if use_cache { RecordCache::open(self.repo_id()) } else { None };
        let mut fetched: Vec<Result<Option<Vec<u8>>, StoreError>> = listed
            .par_iter()
            .map(|r| {
                let cached = cache.as_ref().and_then(|c| c.get(r)).filter(|b| b.len() as u64 == r.size);
                if let Some(bytes) = cached {
                    return Ok(Some(bytes.to_vec()));
                }
                match self.backend().read(&keys::snapshot(r.id), MAX_SNAPSHOT_RECORD) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.is_missing() => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .collect();
        // The stored bytes are kept only when the cache is rewritten.
        let rewrite = cache.as_ref().is_some_and(|c| !c.holds_exactly(&listed));
        let decoded: Vec<Result<Option<Snapshot>, StoreError>> = if rewrite {
            listed
                .par_iter()
                .zip(&fetched)
                .map(|(r, bytes)| match bytes {
                    Ok(Some(b)) => self.decode_record(r.id, b.clone()).map(Some),
                    Ok(None) => Ok(None),
                    Err(e) => Err(e.duplicate()),
                })
                .collect()
        } else {
            let fetched = std::mem::take(&mut fetched);
            listed
                .par_iter()
                .zip(fetched.into_par_iter())
                .map(|(r, bytes)| bytes.and_then(|b| b.map(|b| self.decode_record(r.id, b)).transpose()))
                .collect()
        };
        // A cached record that does not decode is read from storage: the
        // cache's damage is not the repository's.
        let mut decoded = decoded;
        let mut reread = vec![false; listed.len()];
        for ((r, d), again) in listed.iter().zip(decoded.iter_mut()).zip(reread.iter_mut()) {
            let cached = cache.as_ref().is_some_and(|c| c.get(r).is_some());
            if cached && d.as_ref().is_err_and(|e| e.is_damage()) {
                *d = self.read_snapshot(r.id);
                *again = true;
                if let Some(c) = cache.as_mut() {
                    c.remove(r);
                }
            }
        }
        if let Some(cache) = cache.as_mut().filter(|_| rewrite) {
            let good = listed.iter().zip(fetched).zip(&decoded).zip(&reread).filter_map(|(((r, bytes), d), again)| {
                match (bytes, d) {
                    (Ok(Some(b)), Ok(Some(_))) if !again => Some((*r, b)),
                    _ => None,
                }
            });
            cache.replace(good.collect());
        }
        Ok(listed.iter().zip(decoded).map(|(r, d)| (r.id, r.size, d)).collect())
    }

    /// The ids of all snapshots and the sizes of their records, from the
    /// listing alone.
    pub fn snapshot_records(&self) -> Result<Vec<(SnapshotId, u64)>, StoreError> {
        Ok(self
            .backend()
            .list(keys::SNAPSHOTS)?
            .iter()
            .filter_map(|l| Some((keys::parse_snapshot(&l.key)?, l.size)))
            .collect())
    }

    pub fn snapshot_ids(&self) -> Result<Vec<SnapshotId>, StoreError> {
        Ok(self.snapshot_records()?.into_iter().map(|(id, _)| id).collect())
    }

    /// One snapshot record; None when it is gone (forgotten meanwhile).
    pub fn read_snapshot(&self, id: SnapshotId) -> Result<Option<Snapshot>, StoreError> {
        let key = keys::snapshot(id);
        match self.backend().read(&key, MAX_SNAPSHOT_RECORD) {
            Ok(bytes) => self.decode_record(id, bytes).map(Some),
            Err(e) if e.is_missing() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A record's stored bytes, opened (checked or authenticated) and
    /// decoded.
    fn decode_record(&self, id: SnapshotId, bytes: Vec<u8>) -> Result<Snapshot, StoreError> {
        let key = keys::snapshot(id);
        let what = format!("snapshot {id}");
        self.refuse_sealed_in_plain(&what, &bytes)?;
        let bytes = self.open_object(&what, ObjectKind::Snapshot, &key, bytes)?;
        decode_snapshot(&bytes).map_err(|e| StoreError::format(what, e))
    }

    /// The id of a snapshot given as `latest` or a unique prefix, from the
    /// record names alone (so a damaged record can still be named).
    pub fn resolve_snapshot_id(&self, spec: &str) -> Result<SnapshotId, StoreError> {
        if spec == "latest" {
            return self.resolve_snapshot(spec).map(|s| s.id);
        }
        let matches: Vec<SnapshotId> =
            self.snapshot_ids()?.into_iter().filter(|id| prefix_matches(spec, *id)).collect();
        match matches.as_slice() {
            [] => Err(StoreError::SnapshotNotFound(spec.into())),
            [one] => Ok(*one),
            many => Err(StoreError::AmbiguousSnapshot {
                prefix: spec.into(),
                candidates: many.iter().map(|s| s.to_hex()).collect(),
            }),
        }
    }

    /// Finds a snapshot by `latest` (the newest of any source) or a unique
    /// prefix of its id.
    pub fn resolve_snapshot(&self, spec: &str) -> Result<SnapshotEntry, StoreError> {
        if spec == "latest" {
            let mut all = self.readable_snapshots(&mut |_, _| {})?;
            return all.pop().ok_or_else(|| StoreError::SnapshotNotFound(spec.into()));
        }
        let id = self.resolve_snapshot_id(spec)?;
        match self.read_snapshot(id)? {
            Some(snapshot) => Ok(SnapshotEntry { id, snapshot, record_len: 0 }),
            None => Err(StoreError::SnapshotNotFound(spec.into())),
        }
    }

    /// Writes a snapshot record under a fresh random id and makes it
    /// durable; returns the id and the record's size. `finish` may
    /// complete the record knowing its size.
    pub fn write_snapshot(
        &self,
        snapshot: &mut Snapshot,
        finish: impl Fn(&mut Snapshot, u64),
    ) -> Result<(SnapshotId, u64), StoreError> {
        let mut len = 0u64;
        let mut bytes = Vec::new();
        // The record counts its own size in its stats: settle the fixpoint.
        for _ in 0..4 {
            finish(snapshot, len);
            bytes = encode_snapshot(snapshot).map_err(|e| StoreError::format("snapshot record", e))?;
            if bytes.len() as u64 == len {
                break;
            }
            len = bytes.len() as u64;
        }
        if bytes.len() as u64 > MAX_SNAPSHOT_RECORD {
            return Err(StoreError::TooLarge(bytes.len() as u64));
        }
        loop {
            let id = SnapshotId(u32::from_le_bytes(random_bytes::<4>()?));
            let key = keys::snapshot(id);
            // Sealed, the record is bound to its name: one moved under
            // another id does not open.
            let stored = self.seal_object(ObjectKind::Snapshot, &key, bytes.clone())?;
            if self.backend().write_if_absent(&key, &stored)? {
                self.sync()?;
                return Ok((id, bytes.len() as u64));
            }
        }
    }

    /// Writes the snapshot record of a writer's work, only while the
    /// writer's lease holds: a writer suspended past it may refer to packs
    /// a gc has deleted meanwhile, and its record is taken back.
    pub fn commit_snapshot(
        &self,
        session: &WriterSession,
        snapshot: &mut Snapshot,
        finish: impl Fn(&mut Snapshot, u64),
    ) -> Result<SnapshotId, StoreError> {
        session.ensure_alive()?;
        let (id, _) = self.write_snapshot(snapshot, finish)?;
        if let Err(e) = session.ensure_alive() {
            self.delete_snapshots(&[id])?;
            return Err(e);
        }
        Ok(id)
    }

    /// Deletes snapshot records and makes that durable.
    pub fn delete_snapshots(&self, ids: &[SnapshotId]) -> Result<(), StoreError> {
        for id in ids {
            self.backend().delete(&keys::snapshot(*id))?;
        }
        self.sync()
    }

    // --------------------------------------------------------- damage lists

    /// Every damage list; one that cannot be read is reported in `bad`
    /// and otherwise ignored, so that it never stops a command.
    pub fn load_damage_lists(&self) -> Result<DamageLists, StoreError> {
        let mut out = DamageLists::default();
        for key in self.backend().list(keys::DAMAGED)?.into_iter().map(|l| l.key) {
            let Some(name) = keys::parse_damage_list(&key) else { continue };
            let decoded = self
                .read_enveloped(&key, ObjectKind::DamageList, MAX_DAMAGE_LIST, Some(name))
                .and_then(|b| decode_damage_list(&b).map_err(|e| StoreError::format(format!("damage list {key}"), e)));
            match decoded {
                Ok(list) => out.entries.extend(list.entries),
                Err(e) if e.is_missing() => {}
                Err(e @ StoreError::Io { .. }) => return Err(e),
                Err(e) => out.bad.push((key, e)),
            }
        }
        Ok(out)
    }

    /// Records damaged blob copies so no later save deduplicates against
    /// them, durably.
    pub fn record_damage(&self, mut entries: Vec<(PackId, BlobId)>) -> Result<(), StoreError> {
        let known: HashSet<_> = self.load_damage_lists()?.entries.into_iter().collect();
        entries.retain(|e| !known.contains(e));
        if entries.is_empty() {
            return Ok(());
        }
        entries.sort();
        entries.dedup();
        let bytes = encode_damage_list(&DamageList { entries }).map_err(|e| StoreError::format("damage list", e))?;
        let bytes = self.seal_object(ObjectKind::DamageList, "", bytes)?;
        self.backend().write_if_absent(&keys::damage_list(PackId(xxh3_128(&bytes))), &bytes)?;
        self.sync()
    }

    /// Removes damage lists that only name packs in `gone`, and, with
    /// `unreadable`, those that cannot be decoded (after a full
    /// `check --read-data` has recorded the damage it found again).
    pub fn prune_damage_lists(&self, gone: &HashSet<PackId>, unreadable: bool) -> Result<usize, StoreError> {
        let mut removed = 0;
        for key in self.backend().list(keys::DAMAGED)?.into_iter().map(|l| l.key) {
            let Some(name) = keys::parse_damage_list(&key) else { continue };
            let read = self.read_enveloped(&key, ObjectKind::DamageList, MAX_DAMAGE_LIST, Some(name));
            let remove = match read.and_then(|b| decode_damage_list(&b).map_err(|e| StoreError::format(&key, e))) {
                Ok(list) => list.entries.iter().all(|(p, _)| gone.contains(p)),
                Err(e) if e.is_missing() => continue,
                Err(e @ StoreError::Io { .. }) => return Err(e),
                // Never remove what a newer chkfs wrote.
                Err(StoreError::NewerFormat { .. }) => false,
                Err(_) => unreadable,
            };
            if remove {
                self.backend().delete(&key)?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.sync()?;
        }
        Ok(removed)
    }
}

/// True when `spec` (up to 8 hex digits, either case) starts `id`.
fn prefix_matches(spec: &str, id: SnapshotId) -> bool {
    let valid = !spec.is_empty() && spec.len() <= 8 && spec.bytes().all(|b| b.is_ascii_hexdigit());
    valid && id.to_hex().starts_with(&spec.to_ascii_lowercase())
}
