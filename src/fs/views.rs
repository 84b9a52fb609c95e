//! The views through time beside `snapshots/`:
//!
//! ```text
//! by-path/<host>/<path…>/<time>_<id> -> …/snapshots/<id>   each source's snapshots
//! by-path/<host>/<path…>/latest      -> …/snapshots/<id>   and its newest
//! changes/<id>/                      what <id> added or changed since the
//!                                    snapshot before it of its source
//! changes/<id>.removed               what it removed (not listed; open it)
//! history/<host>/<path…>/            every path ever saved on the host;
//! history/<host>/<path…>/<file>/<time>_<id><.ext>   a file's versions
//! ```
//! Nothing is computed before it is looked at, and all of it follows the
//! snapshot list as `snapshots/` does.

use super::changes::{ChangeSet, Child};
use super::history::{below, HistoryChild, ViewDir, NAME_MAX};
use super::inode::{changes_key, dir_key, leaf_key, source_link_key, EntryAt, InSnapshot};
use super::inode::{NodeKind, CHANGES};
use super::snapshots::Sources;
use super::{FsError, SnapshotFs};
use crate::format::tree::Entry;
use crate::format::SnapshotId;
use std::sync::Arc;

/// What a listing calls for each item from where it resumes:
/// (position, name, identity, node) -> reply full?
pub(super) type Emit<'a> = dyn FnMut(usize, &[u8], Option<u128>, NodeKind) -> Result<bool, FsError> + 'a;

/// The suffix of the list of what a snapshot removed.
const REMOVED: &str = ".removed";

/// True for names a view can show as a directory entry (a host name
/// that is not one, such as `a/b` or `..`, is left out of the views).
fn plain_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name != b"."
        && name != b".."
        && !name.contains(&b'/')
        && !name.contains(&0)
}

/// The node of a view directory.
fn view(dir: ViewDir) -> (Option<u128>, NodeKind) {
    (Some(dir.key), NodeKind::View(Arc::new(dir)))
}

impl SnapshotFs {
    fn sources(&self) -> Arc<Sources> {
        self.refresh_snapshots();
        self.snapshots.read().sources.clone()
    }

    /// What `name` is in view directory `parent` (of kind `kind`).
    pub(super) fn view_child(
        &self,
        parent: u64,
        kind: &NodeKind,
        name: &[u8],
    ) -> Result<(Option<u128>, NodeKind), FsError> {
        match kind {
            NodeKind::ByPath | NodeKind::History => {
                let host = std::str::from_utf8(name).map_err(|_| FsError::NotFound)?;
                if !plain_name(name) || !self.sources().hosts.contains_key(host) {
                    return Err(FsError::NotFound);
                }
                Ok(view(ViewDir::host(matches!(kind, NodeKind::History), host)))
            }
            NodeKind::View(dir) if dir.history => self.history_child(parent, dir, name),
            NodeKind::View(dir) => self.by_path_child(dir, name),
            NodeKind::Changes => self.changes_child(name),
            NodeKind::ChangesRoot { snap, base, roots } => {
                let set = self.change_set_of(*snap, *base, roots)?;
                self.changed_child(parent, &set, 0, name)
            }
            NodeKind::ChangedDir(set, d) => self.changed_child(parent, set, *d, name),
            _ => Err(FsError::NotDir),
        }
    }

    /// Lists view directory `ino` (of kind `kind`) from position `skip`.
    pub(super) fn view_entries(&self, ino: u64, kind: &NodeKind, skip: usize, emit: &mut Emit) -> Result<(), FsError> {
        match kind {
            NodeKind::ByPath | NodeKind::History => {
                let sources = self.sources();
                let hosts = sources.hosts.keys().filter(|h| plain_name(h.as_bytes()));
                for (i, host) in hosts.enumerate().skip(skip) {
                    let (key, node) = view(ViewDir::host(matches!(kind, NodeKind::History), host));
                    if emit(i, host.as_bytes(), key, node)? {
                        break;
                    }
                }
            }
            NodeKind::View(dir) if dir.history => {
                let items = self.history_listing(dir)?;
                for (i, item) in items.iter().enumerate().skip(skip) {
                    let (key, node) = self.history_node(ino, dir, &item.name, item.what)?;
                    if emit(i, &item.name, key, node)? {
                        break;
                    }
                }
            }
            NodeKind::View(dir) => {
                for (i, (name, key, node)) in self.by_path_items(dir).into_iter().enumerate().skip(skip) {
                    if emit(i, &name, key, node)? {
                        break;
                    }
                }
            }
            NodeKind::Changes => {
                self.refresh_snapshots();
                let ids: Vec<SnapshotId> = self.snapshots.read().by_id.keys().copied().collect();
                for (i, id) in ids.into_iter().enumerate().skip(skip) {
                    let Ok((key, node)) = self.changes_root(id) else { continue };
                    if emit(i, id.to_hex().as_bytes(), key, node)? {
                        break;
                    }
                }
            }
            NodeKind::ChangesRoot { snap, base, roots } => {
                let set = self.change_set_of(*snap, *base, roots)?;
                self.changed_entries(ino, &set, 0, skip, emit)?;
            }
            NodeKind::ChangedDir(set, d) => self.changed_entries(ino, set, *d, skip, emit)?,
            _ => return Err(FsError::NotDir),
        }
        Ok(())
    }

    // ------------------------------------------------------------- by-path

    /// The links of by-path directory `dir` (its source's snapshots, then
    /// `latest`) and the directories below it; a directory named like a
    /// link is hidden by it.
    fn by_path_items(&self, dir: &Arc<ViewDir>) -> Vec<(Vec<u8>, Option<u128>, NodeKind)> {
        let sources = self.sources();
        let (path, depth) = (dir.path(), dir.link_depth());
        let mut items = Vec::new();
        if let Some(source) = sources.of_host(&dir.host).iter().find(|s| s.path == path) {
            let latest = source.snaps.last().map(|(_, id)| (String::from("latest"), *id));
            for (name, snap) in source.snaps.iter().cloned().chain(latest) {
                let key = source_link_key(dir, name.as_bytes(), snap);
                items.push((name.into_bytes(), Some(key), NodeKind::SourceLink { snap, depth }));
            }
        }
        let links = items.len();
        for name in below(&sources, &dir.host, &path) {
            if plain_name(&name) && !items[..links].iter().any(|(n, _, _)| *n == name) {
                let (key, node) = view(dir.child(&name));
                items.push((name, key, node));
            }
        }
        items
    }

    /// One name of by-path directory `dir`, found without making the
    /// listing (a source may have ten thousand snapshots, and `ls -l`
    /// looks up each).
    fn by_path_child(&self, dir: &Arc<ViewDir>, name: &[u8]) -> Result<(Option<u128>, NodeKind), FsError> {
        let sources = self.sources();
        let path = dir.path();
        if let Some(source) = sources.of_host(&dir.host).iter().find(|s| s.path == path) {
            // Time names sort as the snapshots do, but for the hour a clock
            // goes back: search, then look through.
            let snap = match name {
                b"latest" => source.snaps.last().map(|(_, id)| *id),
                _ => match source.snaps.binary_search_by(|(n, _)| n.as_bytes().cmp(name)) {
                    Ok(i) => Some(source.snaps[i].1),
                    Err(_) => source.snaps.iter().find(|(n, _)| n.as_bytes() == name).map(|(_, id)| *id),
                },
            };
            if let Some(snap) = snap {
                let node = NodeKind::SourceLink { snap, depth: dir.link_depth() };
                return Ok((Some(source_link_key(dir, name, snap)), node));
            }
        }
        if plain_name(name) && below(&sources, &dir.host, &path).contains(name) {
            return Ok(view(dir.child(name)));
        }
        Err(FsError::NotFound)
    }

    // ------------------------------------------------------------- history

    fn history_child(&self, parent: u64, dir: &Arc<ViewDir>, name: &[u8]) -> Result<(Option<u128>, NodeKind), FsError> {
        let what = self.history_lookup(dir, name)?;
        self.history_node(parent, dir, name, what)
    }

    /// The node of item `name` of history directory `dir` (inode `parent`):
    /// a directory of the view, or a version, which is the saved file
    /// itself (the same inode as in its snapshot).
    fn history_node(
        &self,
        parent: u64,
        dir: &Arc<ViewDir>,
        name: &[u8],
        what: HistoryChild,
    ) -> Result<(Option<u128>, NodeKind), FsError> {
        match what {
            HistoryChild::Path => Ok(view(dir.child(name))),
            HistoryChild::Version { snap, tree, index } => {
                let t = self.tree(tree)?;
                let e = t.entries.get(index as usize).ok_or(FsError::NotFound)?;
                // A hard-link group whose names disagree is listed;
                // reading it fails, as under snapshots/.
                let _ = self.links.admit(snap, e);
                let at = EntryAt::InTree { tree: tree.into(), index };
                let node = InSnapshot { snap, at, parent, xattrs: !e.xattrs.is_empty() };
                Ok((Some(leaf_key(snap, e)), NodeKind::Leaf(node)))
            }
        }
    }

    // ------------------------------------------------------------- changes

    /// `changes/<id>` of snapshot `id`: the whole snapshot when nothing of
    /// its source came before it.
    fn changes_root(&self, id: SnapshotId) -> Result<(Option<u128>, NodeKind), FsError> {
        let list = self.snapshots.read();
        let snap = list.by_id.get(&id).ok_or(FsError::NotFound)?;
        let base = list.sources.previous.get(&id).and_then(|b| Some((*b, list.by_id.get(b)?)));
        Ok(match base {
            None => {
                let root = Arc::new(snap.root.clone());
                let xattrs = !root.xattrs.is_empty();
                let node = InSnapshot { snap: id, at: EntryAt::Held(root), parent: CHANGES, xattrs };
                (Some(changes_key(id, None, false)), NodeKind::Dir(node))
            }
            Some((base, b)) => {
                let roots = Arc::new((snap.root.clone(), b.root.clone()));
                (Some(changes_key(id, Some(base), false)), NodeKind::ChangesRoot { snap: id, base, roots })
            }
        })
    }

    fn changes_child(&self, name: &[u8]) -> Result<(Option<u128>, NodeKind), FsError> {
        self.refresh_snapshots();
        let name = std::str::from_utf8(name).map_err(|_| FsError::NotFound)?;
        let (hex, removed) = match name.strip_suffix(REMOVED) {
            Some(hex) => (hex, true),
            None => (name, false),
        };
        let id = SnapshotId::from_hex(hex).map_err(|_| FsError::NotFound)?;
        let (key, node) = self.changes_root(id)?;
        if !removed {
            return Ok((key, node));
        }
        let (set, base) = match node {
            NodeKind::ChangesRoot { snap, base, roots } => (self.change_set_of(snap, base, &roots)?, Some(base)),
            _ => (Arc::new(ChangeSet::first(id)), None),
        };
        Ok((Some(changes_key(id, base, true)), NodeKind::Removed(set)))
    }

    /// The change set of `snap` since `base`, made on first need.
    fn change_set_of(
        &self,
        snap: SnapshotId,
        base: SnapshotId,
        roots: &(Entry, Entry),
    ) -> Result<Arc<ChangeSet>, FsError> {
        if let Some(set) = self.change_sets.get(&(snap, base)) {
            return Ok(set);
        }
        let set = match self.change_set(snap, &roots.0, &roots.1) {
            Ok(set) => Arc::new(set),
            // The base was forgotten (and collected) since this directory
            // was looked up: what it showed is gone, not damaged.
            Err(_) if !self.snapshots.read().by_id.contains_key(&base) => return Err(FsError::NotFound),
            Err(e) => return Err(e),
        };
        self.change_sets.insert((snap, base), set.clone(), set.weight());
        Ok(set)
    }

    fn changed_child(
        &self,
        parent: u64,
        set: &Arc<ChangeSet>,
        d: u32,
        name: &[u8],
    ) -> Result<(Option<u128>, NodeKind), FsError> {
        let dir = set.dirs.get(d as usize).ok_or(FsError::NotFound)?;
        let i = dir.children.binary_search_by(|c| c.name.as_slice().cmp(name)).map_err(|_| FsError::NotFound)?;
        self.changed_node(parent, set, dir.children[i].what, name)
    }

    fn changed_node(
        &self,
        parent: u64,
        set: &Arc<ChangeSet>,
        what: Child,
        name: &[u8],
    ) -> Result<(Option<u128>, NodeKind), FsError> {
        let parent_key = self.inodes.lock().key(parent).ok_or(FsError::NotFound)?;
        match what {
            Child::Partial(n) => Ok((Some(dir_key(parent_key, name)), NodeKind::ChangedDir(set.clone(), n))),
            Child::Whole { tree, index, .. } => {
                let t = self.tree(tree)?;
                let e = t.entries.get(index as usize).ok_or(FsError::NotFound)?;
                let _ = self.links.admit(set.snap, e);
                Ok(self.inside(set.snap, parent_key, parent, tree, index as usize, e))
            }
        }
    }

    fn changed_entries(
        &self,
        ino: u64,
        set: &Arc<ChangeSet>,
        d: u32,
        skip: usize,
        emit: &mut Emit,
    ) -> Result<(), FsError> {
        let dir = set.dirs.get(d as usize).ok_or(FsError::NotFound)?;
        for (i, child) in dir.children.iter().enumerate().skip(skip) {
            let (key, node) = self.changed_node(ino, set, child.what, &child.name)?;
            if emit(i, &child.name, key, node)? {
                break;
            }
        }
        Ok(())
    }
}
