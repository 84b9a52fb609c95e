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
    /// The snapshots grouped by where they were taken, made with
    /// `time_names`.
    pub sources: Arc<Sources>,
    /// Counts the changes of the list: what views built from it were
    /// built from.
    pub generation: u64,
}

/// Snapshots by (host, source path): (by-time name, id), oldest first.
type Groups<'a> = BTreeMap<(&'a str, &'a [u8]), Vec<(String, SnapshotId)>>;

/// One saved directory of one host: its snapshots, oldest first.
#[derive(Debug, Default)]
pub struct Source {
    /// The source path without its trailing slash (`""` for `/`).
    pub path: Vec<u8>,
    /// (by-time name, id), oldest first.
    pub snaps: Vec<(String, SnapshotId)>,
}

/// Every source, by host, sorted by path.
#[derive(Debug, Default)]
pub struct Sources {
    pub hosts: BTreeMap<String, Vec<Source>>,
    /// For each snapshot, the one before it of the same source.
    pub previous: BTreeMap<SnapshotId, SnapshotId>,
    /// For each snapshot, its by-time name.
    pub names: BTreeMap<SnapshotId, String>,
    /// For each snapshot, its place in time order (by time, then id).
    pub rank: BTreeMap<SnapshotId, u32>,
}

impl Sources {
    fn new(time_names: &[(String, SnapshotId)], by_id: &BTreeMap<SnapshotId, Arc<Snapshot>>) -> Sources {
        let mut sources = Sources::default();
        let mut order: Vec<(&Arc<Snapshot>, &String, SnapshotId)> =
            time_names.iter().filter_map(|(name, id)| Some((by_id.get(id)?, name, *id))).collect();
        order.sort_by_key(|(s, _, id)| (s.time, *id));
        let mut groups: Groups = BTreeMap::new();
        for (rank, (s, name, id)) in order.into_iter().enumerate() {
            sources.rank.insert(id, rank as u32);
            let group = groups.entry((&s.host, source_path(&s.path))).or_default();
            if let Some(&(_, before)) = group.last() {
                sources.previous.insert(id, before);
            }
            group.push((name.clone(), id));
            sources.names.insert(id, name.clone());
        }
        for ((host, path), snaps) in groups {
            sources.hosts.entry(host.to_string()).or_default().push(Source { path: path.to_vec(), snaps });
        }
        sources
    }

    /// The sources of `host`, sorted by path.
    pub fn of_host(&self, host: &str) -> &[Source] {
        self.hosts.get(host).map_or(&[], Vec::as_slice)
    }
}

/// A source path as the views use it: without its trailing slashes.
pub fn source_path(path: &[u8]) -> &[u8] {
    let mut p = path;
    while let Some(rest) = p.strip_suffix(b"/") {
        p = rest;
    }
    p
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
            self.sources = Arc::new(Sources::new(&self.time_names, &self.by_id));
            self.generation += 1;
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
