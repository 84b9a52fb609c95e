//! The snapshot list as the mount sees it, re-read when it may be stale
//! so that new snapshots appear and forgotten ones disappear.

use crate::format::records::{Snapshot, Timestamp};
use crate::format::SnapshotId;
use crate::store::{Repository, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How old the list may get before a lookup re-reads it, by default: a
/// local listing is cheap; on an object store each is a request.
pub const MAX_AGE_LOCAL: Duration = Duration::from_millis(500);
pub const MAX_AGE_REMOTE: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct SnapshotList {
    /// How old the list may get before a lookup re-reads it; nothing is
    /// read while nobody looks.
    pub max_age: Duration,
    pub by_id: BTreeMap<SnapshotId, Arc<Snapshot>>,
    checked: Option<Instant>,
    /// When a refresh last found the list changed: the top directories'
    /// mtime, which tells the kernel to drop their cached listings.
    pub changed_at: Option<Timestamp>,
    /// Names for the by-time view, sorted, made once per change of the list
    /// (not per lookup: a lookup in a by-time of 10,000 snapshots would
    /// format 10,000 times).
    pub time_names: Arc<Vec<(String, SnapshotId)>>,
}

impl SnapshotList {
    /// An empty list, read again at most every `max_age` while used.
    pub fn new(max_age: Duration) -> Self {
        SnapshotList { max_age, ..Default::default() }
    }

    pub fn is_stale(&self) -> bool {
        self.checked.is_none_or(|t| t.elapsed() > self.max_age)
    }

    /// Re-reads the list; returns true when snapshots were added.
    pub fn refresh(&mut self, repo: &Repository) -> Result<bool, StoreError> {
        let listed = repo.snapshot_ids()?;
        let mut added = false;
        let mut by_id = BTreeMap::new();
        for id in listed {
            match self.by_id.get(&id) {
                Some(s) => {
                    by_id.insert(id, s.clone());
                }
                None => match repo.read_snapshot(id) {
                    Ok(Some(s)) => {
                        by_id.insert(id, Arc::new(s));
                        added = true;
                    }
                    Ok(None) => {}
                    Err(e) => eprintln!("chkfs mount: snapshot {id} is unreadable: {e}"),
                },
            }
        }
        let changed = !by_id.keys().eq(self.by_id.keys());
        if self.checked.is_some() && changed {
            self.changed_at = Some(Timestamp::now());
        }
        self.by_id = by_id;
        if changed || self.checked.is_none() {
            self.time_names = Arc::new(self.make_time_names());
        }
        self.checked = Some(Instant::now());
        Ok(added)
    }

    /// The newest snapshot.
    pub fn latest(&self) -> Option<SnapshotId> {
        self.by_id.iter().max_by_key(|(id, s)| (s.time, **id)).map(|(id, _)| *id)
    }

    /// The snapshot a by-time name stands for.
    pub fn by_time_name(&self, name: &[u8]) -> Option<SnapshotId> {
        let i = self.time_names.binary_search_by(|(n, _)| n.as_bytes().cmp(name)).ok()?;
        Some(self.time_names[i].1)
    }

    /// Names for the by-time view: local time without colons, then the id.
    fn make_time_names(&self) -> Vec<(String, SnapshotId)> {
        let tz = jiff::tz::TimeZone::system();
        let mut names: Vec<_> = self
            .by_id
            .iter()
            .map(|(id, s)| {
                let ts = jiff::Timestamp::new(s.time.secs, s.time.nanos as i32).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                let local = ts.to_zoned(tz.clone()).strftime("%Y-%m-%d_%H-%M-%S").to_string();
                (format!("{local}_{id}"), *id)
            })
            .collect();
        names.sort();
        names
    }
}
