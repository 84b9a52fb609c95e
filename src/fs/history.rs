//! `history/<host>/<path…>`: every path that ever existed in a snapshot
//! of a host; at a file's place, a directory of its distinct versions,
//! named `<time>_<id><.ext>` so that they sort by time.
//!
//! A place is found from its parent's: one lookup per distinct tree the
//! parent directory had across the snapshots (snapshots sharing a
//! directory's tree share its lookup). Places are cached for as long as
//! the snapshot list does not change.

use super::snapshots::Sources;
use super::{FsError, SnapshotFs};
use crate::browse::history::version_key;
use crate::format::tree::{Entry, Node};
use crate::format::{BlobId, SnapshotId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

/// A directory of `by-path/` or `history/`: a host, or a path on one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ViewDir {
    pub history: bool,
    pub host: String,
    /// Absolute, without a trailing slash; `""` for the host itself.
    pub path: Vec<u8>,
}

impl ViewDir {
    pub fn child(&self, name: &[u8]) -> ViewDir {
        let mut path = self.path.clone();
        path.push(b'/');
        path.extend_from_slice(name);
        ViewDir { history: self.history, host: self.host.clone(), path }
    }

    /// Directories between this one and the mount's root.
    pub fn depth(&self) -> usize {
        2 + self.path.iter().filter(|&&b| b == b'/').count()
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
    /// Snapshots in which it is anything else: (snapshot, tree, index).
    leaves: Vec<(SnapshotId, BlobId, u32)>,
    /// Next components of sources below it.
    below: BTreeSet<Vec<u8>>,
    /// Its names, made on first listing (an error is not kept).
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
        let listed = self.listing.get().map_or(0, |l| l.len() * 80);
        (dirs + self.leaves.len() * 24 + self.below.len() * 40 + listed + 64) as u64
    }
}

/// The extension versions of `name` are shown with (`.rs` of `main.rs`).
fn extension(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b'.') {
        Some(0) | None => b"",
        Some(i) => &name[i..],
    }
}

impl SnapshotFs {
    /// The places of history directory `dir`, from the cache or found
    /// from its parent's.
    pub(super) fn history_places(&self, dir: &ViewDir) -> Result<Arc<Places>, FsError> {
        let (generation, sources) = {
            let list = self.snapshots.read();
            (list.generation, list.sources.clone())
        };
        // The deepest cached ancestor, then down from it.
        let mut chain = vec![dir.clone()];
        while let Some(last) = chain.last() {
            if self.history.get(last).is_some_and(|(g, _)| g == generation) || last.path.is_empty() {
                break;
            }
            let cut = last.path.iter().rposition(|&b| b == b'/').unwrap_or(0);
            let parent = ViewDir { path: last.path[..cut].to_vec(), ..last.clone() };
            chain.push(parent);
        }
        let mut places: Option<Arc<Places>> = None;
        for d in chain.iter().rev() {
            if let Some((_, p)) = self.history.get(d).filter(|(g, _)| *g == generation) {
                places = Some(p);
                continue;
            }
            let found = match &places {
                None => self.host_places(&sources, &d.host),
                Some(parent) => {
                    let name = &d.path[d.path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1)..];
                    self.child_places(&sources, parent, d, name)?
                }
            };
            let found = Arc::new(found);
            self.history.insert(d.clone(), (generation, found.clone()), found.weight());
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

    /// The places of `dir`, entry `name` of its parent, whose places are
    /// `parent`.
    fn child_places(&self, sources: &Sources, parent: &Places, dir: &ViewDir, name: &[u8]) -> Result<Places, FsError> {
        let mut places = Places { below: below(sources, &dir.host, &dir.path), ..Default::default() };
        let mut by_tree: BTreeMap<BlobId, Vec<SnapshotId>> = BTreeMap::new();
        for (tree, snaps) in &parent.dirs {
            let (part, t, index) = match self.find_in(&self.listing_of(*tree)?, name) {
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
        self.add_roots(&mut places, sources, &dir.host, &dir.path);
        let names = &sources.names;
        places.leaves.sort_by(|a, b| names.get(&a.0).cmp(&names.get(&b.0)));
        Ok(places)
    }

    /// The names in history directory `dir`, sorted: the union of what
    /// the path held as a directory, the sources below it, and its
    /// versions where it was something else.
    pub(super) fn history_listing(&self, dir: &ViewDir) -> Result<Arc<Vec<Item>>, FsError> {
        let places = self.history_places(dir)?;
        if let Some(listing) = places.listing.get() {
            return Ok(listing.clone());
        }
        let listing = Arc::new(self.make_history_listing(dir, &places)?);
        Ok(places.listing.get_or_init(|| listing).clone())
    }

    fn make_history_listing(&self, dir: &ViewDir, places: &Places) -> Result<Vec<Item>, FsError> {
        let mut names: BTreeMap<Vec<u8>, HistoryChild> = BTreeMap::new();
        for name in &places.below {
            names.insert(name.clone(), HistoryChild::Path);
        }
        for (tree, _) in &places.dirs {
            self.each_entry(&self.listing_of(*tree)?, 0, &mut |_, _, _, e| {
                if !names.contains_key(&e.name) {
                    names.insert(e.name.clone(), HistoryChild::Path);
                }
                Ok(false)
            })?;
        }
        let ext = extension(dir.path.rsplit(|&b| b == b'/').next().unwrap_or(b""));
        let sources = self.snapshots.read().sources.clone();
        let mut seen: HashMap<Vec<u8>, ()> = HashMap::new();
        for &(snap, tree, index) in &places.leaves {
            let t = self.tree(tree)?;
            let e: &Entry = t
                .entries
                .get(index as usize)
                .ok_or_else(|| FsError::Io(format!("tree {tree} has no entry {index}")))?;
            if seen.insert(version_key(e), ()).is_some() {
                continue;
            }
            let Some(time_name) = sources.names.get(&snap) else { continue };
            let name = [time_name.as_bytes(), ext].concat();
            names.insert(name, HistoryChild::Version { snap, tree, index });
        }
        Ok(names.into_iter().map(|(name, what)| Item { name, what }).collect())
    }
}
