//! `history/<host>/<path…>`: every path that ever existed in a snapshot
//! of a host; at a file's place, a directory of its distinct versions,
//! named `<time>_<id><.ext>` so that they sort by time.
//!
//! A place is found from its parent's: one lookup per distinct tree the
//! parent directory had across the snapshots (snapshots sharing a
//! directory's tree share its lookup). Places are cached for as long as
//! the snapshot list does not change; a listing (the union of the names
//! of every distinct tree) is made only when the directory is listed.

use super::snapshots::Sources;
use super::{FsError, SnapshotFs};
use crate::browse::history::version_key;
use crate::format::tree::{Entry, Node};
use crate::format::{BlobId, SnapshotId};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, OnceLock};
use xxhash_rust::xxh3::xxh3_128;

/// Longest name a directory entry may have (NAME_MAX).
pub const NAME_MAX: usize = 255;

/// A directory of `by-path/` or `history/`: a host, or a path on one.
/// It names its parent rather than holding its path, so that a deep walk
/// costs memory in proportion to its depth, not to its square.
#[derive(Debug)]
pub struct ViewDir {
    pub history: bool,
    pub host: Arc<str>,
    /// The directory above; None for the host itself.
    pub parent: Option<Arc<ViewDir>>,
    /// Its name in the parent (empty for the host).
    pub name: Box<[u8]>,
    /// Its identity: from the parent's and the name.
    pub key: u128,
    /// Components of its path (0 for the host).
    pub depth: u32,
}

impl ViewDir {
    pub fn host(history: bool, host: &str) -> ViewDir {
        let mut buf = if history { b"history\0".to_vec() } else { b"by-path\0".to_vec() };
        buf.extend_from_slice(host.as_bytes());
        let key = xxh3_128(&buf);
        ViewDir { history, host: host.into(), parent: None, name: Box::default(), key, depth: 0 }
    }

    pub fn child(self: &Arc<Self>, name: &[u8]) -> ViewDir {
        let mut buf = b"view\0".to_vec();
        buf.extend_from_slice(&self.key.to_le_bytes());
        buf.extend_from_slice(name);
        ViewDir {
            history: self.history,
            host: self.host.clone(),
            parent: Some(self.clone()),
            name: name.into(),
            key: xxh3_128(&buf),
            depth: self.depth + 1,
        }
    }

    /// The absolute path it stands for, without a trailing slash (`""`
    /// for the host's `/`).
    pub fn path(&self) -> Vec<u8> {
        let mut names = Vec::with_capacity(self.depth as usize);
        let mut at = Some(self);
        while let Some(d) = at.filter(|d| d.parent.is_some()) {
            names.push(&d.name);
            at = d.parent.as_deref();
        }
        let mut path = Vec::new();
        for name in names.iter().rev() {
            path.push(b'/');
            path.extend_from_slice(name);
        }
        path
    }

    /// Directories between this one and the mount's root.
    pub fn link_depth(&self) -> u32 {
        2 + self.depth
    }
}

/// The names of the next component of the sources of `host` strictly
/// below `path`.
pub fn below(sources: &Sources, host: &str, path: &[u8]) -> BTreeSet<Vec<u8>> {
    sources
        .of_host(host)
        .iter()
        .filter_map(|s| {
            let rest = s.path.strip_prefix(path)?.strip_prefix(b"/")?;
            let next = rest.split(|&b| b == b'/').next()?;
            (!next.is_empty()).then(|| next.to_vec())
        })
        .collect()
}

/// Where one path is across the snapshots of a host.
#[derive(Default)]
pub struct Places {
    /// Snapshots in which it is a directory, by that directory's tree.
    dirs: Vec<(BlobId, Vec<SnapshotId>)>,
    /// Snapshots in which it is anything else: (snapshot, tree, index),
    /// oldest first.
    leaves: Vec<(SnapshotId, BlobId, u32)>,
    /// Next components of sources below it.
    below: BTreeSet<Vec<u8>>,
    /// Its distinct versions by name, made on first need.
    versions: OnceLock<Arc<BTreeMap<Vec<u8>, HistoryChild>>>,
    /// All its names, made on first listing.
    listing: OnceLock<Arc<Vec<Item>>>,
}

/// One name in a history directory.
#[derive(Debug, Clone)]
pub struct Item {
    pub name: Vec<u8>,
    pub what: HistoryChild,
}

#[derive(Debug, Clone, Copy)]
pub enum HistoryChild {
    /// A path below: a directory of the view.
    Path,
    /// A version: entry `index` of tree `tree`, as first saved in `snap`.
    Version { snap: SnapshotId, tree: BlobId, index: u32 },
}

impl Places {
    fn weight(&self) -> u64 {
        let dirs: usize = self.dirs.iter().map(|(_, s)| 40 + 4 * s.len()).sum();
        let named = |n: &Vec<u8>| n.len() + 64;
        let versions = self.versions.get().map_or(0, |v| v.keys().map(named).sum());
        let listed = self.listing.get().map_or(0, |l| l.iter().map(|i| named(&i.name)).sum());
        let below: usize = self.below.iter().map(named).sum();
        (dirs + self.leaves.len() * 24 + below + versions + listed + 128) as u64
    }
}

/// The extension versions of `name` are shown with (`.rs` of `main.rs`).
fn extension(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b'.') {
        Some(0) | None => b"",
        Some(i) => &name[i..],
    }
}

/// The name of a version first saved in the snapshot whose by-time name
/// is `time_name`: with the file's extension unless that makes it too
/// long for a directory entry.
fn version_name(time_name: &str, ext: &[u8]) -> Vec<u8> {
    if time_name.len() + ext.len() <= NAME_MAX {
        [time_name.as_bytes(), ext].concat()
    } else {
        time_name.as_bytes().to_vec()
    }
}

impl SnapshotFs {
    /// The places of history directory `dir`, from the cache or found
    /// from its parent's.
    pub(super) fn history_places(&self, dir: &Arc<ViewDir>) -> Result<Arc<Places>, FsError> {
        let (generation, sources) = {
            let list = self.snapshots.read();
            (list.generation, list.sources.clone())
        };
        let cached = |d: &ViewDir| self.history.get(&d.key).filter(|(g, _)| *g == generation).map(|(_, p)| p);
        // The deepest cached ancestor, then down from it.
        let mut chain = vec![dir.clone()];
        let mut places = None;
        while let Some(last) = chain.last() {
            if let Some(p) = cached(last) {
                places = Some(p);
                chain.pop();
                break;
            }
            match &last.parent {
                Some(parent) => chain.push(parent.clone()),
                None => break,
            }
        }
        for d in chain.iter().rev() {
            let found = match (&places, &d.parent) {
                (Some(parent), Some(_)) => self.child_places(&sources, parent, d)?,
                _ => self.host_places(&sources, &d.host),
            };
            let found = Arc::new(found);
            self.history.insert(d.key, (generation, found.clone()), found.weight());
            places = Some(found);
        }
        places.ok_or(FsError::NotFound)
    }

    /// The places of a host's `/`: the sources saved from `/` itself.
    fn host_places(&self, sources: &Sources, host: &str) -> Places {
        let mut places = Places { below: below(sources, host, b""), ..Default::default() };
        self.add_roots(&mut places, sources, host, b"");
        places
    }

    /// Snapshots of the source saved from `path` itself hold it as their
    /// root directory.
    fn add_roots(&self, places: &mut Places, sources: &Sources, host: &str, path: &[u8]) {
        let list = self.snapshots.read();
        let mut by_tree: BTreeMap<BlobId, Vec<SnapshotId>> = places.dirs.drain(..).collect();
        for source in sources.of_host(host).iter().filter(|s| s.path == path) {
            for (_, id) in &source.snaps {
                if let Some(Node::Dir { tree }) = list.by_id.get(id).map(|s| &s.root.node) {
                    by_tree.entry(*tree).or_default().push(*id);
                }
            }
        }
        places.dirs = by_tree.into_iter().collect();
    }

    /// The places of `dir`, whose parent's places are `parent`.
    fn child_places(&self, sources: &Sources, parent: &Places, dir: &ViewDir) -> Result<Places, FsError> {
        let path = dir.path();
        let mut places = Places { below: below(sources, &dir.host, &path), ..Default::default() };
        let mut by_tree: BTreeMap<BlobId, Vec<SnapshotId>> = BTreeMap::new();
        for (tree, snaps) in &parent.dirs {
            let (part, t, index) = match self.find_in(&self.listing_of(*tree)?, &dir.name) {
                Ok(found) => found,
                Err(FsError::NotFound) => continue,
                Err(e) => return Err(e),
            };
            match t.entries[index].node {
                Node::Dir { tree } => by_tree.entry(tree).or_default().extend(snaps),
                _ => places.leaves.extend(snaps.iter().map(|s| (*s, part, index as u32))),
            }
        }
        places.dirs = by_tree.into_iter().collect();
        self.add_roots(&mut places, sources, &dir.host, &path);
        let rank = |s: &SnapshotId| sources.rank.get(s).copied();
        places.leaves.sort_by_key(|(s, _, _)| rank(s));
        Ok(places)
    }

    /// What `name` is in history directory `dir`: a version, or a path
    /// below (a directory in some snapshot, or where a source lies).
    /// Looked up in each distinct tree, without making the listing.
    pub(super) fn history_lookup(&self, dir: &Arc<ViewDir>, name: &[u8]) -> Result<HistoryChild, FsError> {
        let places = self.history_places(dir)?;
        if let Some(what) = self.history_versions(dir, &places)?.get(name) {
            return Ok(*what);
        }
        if places.below.contains(name) {
            return Ok(HistoryChild::Path);
        }
        for (tree, _) in &places.dirs {
            match self.find_in(&self.listing_of(*tree)?, name) {
                Ok(_) => return Ok(HistoryChild::Path),
                Err(FsError::NotFound) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(FsError::NotFound)
    }

    /// The distinct versions at `dir`'s place, by name (a version is
    /// named after the oldest snapshot holding it).
    fn history_versions(
        &self,
        dir: &Arc<ViewDir>,
        places: &Arc<Places>,
    ) -> Result<Arc<BTreeMap<Vec<u8>, HistoryChild>>, FsError> {
        if let Some(v) = places.versions.get() {
            return Ok(v.clone());
        }
        let ext = extension(&dir.name);
        let names = self.snapshots.read().sources.clone();
        let mut seen = HashSet::new();
        let mut versions = BTreeMap::new();
        for &(snap, tree, index) in &places.leaves {
            let t = self.tree(tree)?;
            let e: &Entry = t
                .entries
                .get(index as usize)
                .ok_or_else(|| FsError::Io(format!("tree {tree} has no entry {index}")))?;
            if !seen.insert(version_key(e)) {
                continue;
            }
            let Some(time_name) = names.names.get(&snap) else { continue };
            versions.insert(version_name(time_name, ext), HistoryChild::Version { snap, tree, index });
        }
        let versions = places.versions.get_or_init(|| Arc::new(versions)).clone();
        self.reweigh(dir, places);
        Ok(versions)
    }

    /// Counts what a place made since it was cached.
    fn reweigh(&self, dir: &ViewDir, places: &Arc<Places>) {
        if let Some((generation, cached)) = self.history.get(&dir.key) {
            if Arc::ptr_eq(&cached, places) {
                self.history.insert(dir.key, (generation, cached), places.weight());
            }
        }
    }

    /// The names in history directory `dir`, sorted: the union of what
    /// the path held as a directory, the sources below it, and its
    /// versions where it was something else.
    pub(super) fn history_listing(&self, dir: &Arc<ViewDir>) -> Result<Arc<Vec<Item>>, FsError> {
        let places = self.history_places(dir)?;
        if let Some(listing) = places.listing.get() {
            return Ok(listing.clone());
        }
        let mut names: BTreeMap<Vec<u8>, HistoryChild> = BTreeMap::new();
        for name in &places.below {
            names.insert(name.clone(), HistoryChild::Path);
        }
        // The parts of split directories are often shared between their
        // versions: each distinct part is read once.
        let mut parts_seen = HashSet::new();
        for (tree, _) in &places.dirs {
            for (part_id, part) in self.parts_of(*tree)? {
                if !parts_seen.insert(part_id) {
                    continue;
                }
                for e in &part.entries {
                    if !names.contains_key(&e.name) {
                        names.insert(e.name.clone(), HistoryChild::Path);
                    }
                }
            }
        }
        for (name, what) in self.history_versions(dir, &places)?.iter() {
            names.insert(name.clone(), *what);
        }
        let listing = Arc::new(names.into_iter().map(|(name, what)| Item { name, what }).collect::<Vec<_>>());
        let listing = places.listing.get_or_init(|| listing).clone();
        self.reweigh(dir, &places);
        Ok(listing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_directory_knows_its_path_from_its_parents() {
        let host = Arc::new(ViewDir::host(true, "h"));
        let home = Arc::new(host.child(b"home"));
        let me = home.child(b"me");
        assert_eq!((host.path(), home.path(), me.path()), (b"".to_vec(), b"/home".to_vec(), b"/home/me".to_vec()));
        assert_eq!((me.depth, me.link_depth()), (2, 4));
        assert_eq!(me.key, home.child(b"me").key, "the same path has the same identity");
        assert_ne!(me.key, home.child(b"you").key);
        let by_path = Arc::new(ViewDir::host(false, "h"));
        assert_ne!(by_path.child(b"home").key, home.key, "by-path/ and history/ differ");
        assert_ne!(Arc::new(ViewDir::host(true, "h2")).child(b"home").key, home.key, "so do hosts");
    }

    #[test]
    fn version_names_keep_the_extension_unless_too_long() {
        let time = "2026-11-22_07-19-29_3f9a1c2e";
        assert_eq!(version_name(time, extension(b"main.rs")), b"2026-11-22_07-19-29_3f9a1c2e.rs");
        assert_eq!(version_name(time, extension(b".bashrc")), time.as_bytes());
        assert_eq!(version_name(time, extension(b"Makefile")), time.as_bytes());
        let long = [b"x.".as_slice(), &[b'e'; 250]].concat();
        let name = version_name(time, extension(&long));
        assert!(name.len() <= NAME_MAX, "{}", name.len());
        assert_eq!(name, time.as_bytes());
    }
}
