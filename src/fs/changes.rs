//! `changes/<id>/`: what a snapshot added or changed the content of since
//! the snapshot before it of the same source (host and path), and the
//! directories leading there; `changes/<id>.removed` lists what went.
//!
//! Made once per pair of snapshots by comparing tree ids, so the cost
//! follows what changed: directories whose trees are equal are not read.
//! Metadata-only changes are not shown (as `diff -r` ignores them);
//! `chkfs diff` reports them.

use super::{FsError, SnapshotFs};
use crate::format::tree::{Entry, Node, Tree};
use crate::format::{BlobId, SnapshotId};
use crate::text::escape_bytes;
use crate::walk::join;
use std::sync::Arc;

/// What one snapshot changed, as a tree of directories.
#[derive(Debug)]
pub struct ChangeSet {
    pub snap: SnapshotId,
    /// The directories shown; the first is the snapshot's root. A
    /// directory's parent comes before it.
    pub dirs: Vec<ChangedDir>,
    /// The `.removed` list: one escaped path per line, directories with
    /// a trailing slash, sorted.
    pub removed: Vec<u8>,
}

/// A directory holding changes: its entry in the new snapshot, and what
/// it shows, sorted by name.
#[derive(Debug)]
pub struct ChangedDir {
    pub entry: Entry,
    pub children: Vec<ChangedChild>,
}

#[derive(Debug)]
pub struct ChangedChild {
    pub name: Vec<u8>,
    pub what: Child,
}

#[derive(Debug, Clone, Copy)]
pub enum Child {
    /// A directory with changes somewhere below: `dirs[n]`.
    Partial(u32),
    /// An entry shown whole (added, or a changed file): entry `index` of
    /// tree `tree` of the new snapshot.
    Whole { tree: BlobId, index: u32 },
}

/// A pair of directories still to compare: the new one is `dirs[dir]`.
struct Pending {
    dir: u32,
    path: Vec<u8>,
    new: BlobId,
    old: BlobId,
}

impl ChangeSet {
    /// Memory it takes, roughly, for the cache's weight.
    pub fn weight(&self) -> u64 {
        let names: usize = self.dirs.iter().flat_map(|d| &d.children).map(|c| c.name.len() + 48).sum();
        (names + self.dirs.len() * 160 + self.removed.len() + 64) as u64
    }

    /// The change set of a snapshot with nothing before it: nothing
    /// removed; its view is the whole snapshot.
    pub fn first(snap: SnapshotId) -> ChangeSet {
        ChangeSet { snap, dirs: Vec::new(), removed: Vec::new() }
    }
}

fn tree_of(e: &Entry) -> Option<BlobId> {
    match e.node {
        Node::Dir { tree } => Some(tree),
        _ => None,
    }
}

/// True when `new` shows in the view beside an `old` of the same name:
/// a different type or different content.
fn content_differs(new: &Entry, old: &Entry) -> bool {
    std::mem::discriminant(&new.node) != std::mem::discriminant(&old.node) || new.node != old.node
}

impl SnapshotFs {
    /// What snapshot `snap` (root `new`) changed since the snapshot whose
    /// root is `old`.
    pub(super) fn change_set(&self, snap: SnapshotId, new: &Entry, old: &Entry) -> Result<ChangeSet, FsError> {
        let (Some(new_tree), Some(old_tree)) = (tree_of(new), tree_of(old)) else { return Err(FsError::NotDir) };
        let mut set = ChangeSet {
            snap,
            dirs: vec![ChangedDir { entry: new.clone(), children: Vec::new() }],
            removed: Vec::new(),
        };
        let mut removed: Vec<Vec<u8>> = Vec::new();
        let mut pending = vec![Pending { dir: 0, path: Vec::new(), new: new_tree, old: old_tree }];
        while let Some(p) = pending.pop() {
            if p.new == p.old {
                continue;
            }
            let (new_parts, old_parts) = (self.parts_of(p.new)?, self.parts_of(p.old)?);
            let mut old = entries(&old_parts).peekable();
            let mut gone = |o: &Entry| {
                let mut path = join(&p.path, &o.name);
                if tree_of(o).is_some() {
                    path.push(b'/');
                }
                removed.push(path);
            };
            let mut children = Vec::new();
            // Both sides are sorted by name: one merge, no search.
            for (tree, index, e) in entries(&new_parts) {
                while let Some((_, _, o)) = old.next_if(|(_, _, o)| o.name < e.name) {
                    gone(o);
                }
                let before = old.next_if(|(_, _, o)| o.name == e.name).map(|(_, _, o)| o);
                if let Some(o) = before.filter(|o| std::mem::discriminant(&o.node) != std::mem::discriminant(&e.node)) {
                    gone(o);
                }
                let whole = Child::Whole { tree, index: index as u32 };
                match (before, tree_of(e), before.and_then(tree_of)) {
                    (None, _, _) => children.push(ChangedChild { name: e.name.clone(), what: whole }),
                    (Some(_), Some(a), Some(b)) if a == b => {}
                    (Some(_), Some(a), Some(b)) => {
                        let dir = set.dirs.len() as u32;
                        set.dirs.push(ChangedDir { entry: e.clone(), children: Vec::new() });
                        pending.push(Pending { dir, path: join(&p.path, &e.name), new: a, old: b });
                        children.push(ChangedChild { name: e.name.clone(), what: Child::Partial(dir) });
                    }
                    (Some(o), _, _) if content_differs(e, o) => {
                        children.push(ChangedChild { name: e.name.clone(), what: whole })
                    }
                    _ => {}
                }
            }
            old.for_each(|(_, _, o)| gone(o));
            set.dirs[p.dir as usize].children = children;
        }
        prune(&mut set.dirs);
        removed.sort();
        removed.dedup();
        for path in removed {
            set.removed.extend_from_slice(escape_bytes(&path).as_bytes());
            set.removed.push(b'\n');
        }
        Ok(set)
    }
}

/// The entries of a directory's parts in name order, each with the id
/// of the tree holding it and its index there.
fn entries(parts: &[(BlobId, Arc<Tree>)]) -> impl Iterator<Item = (BlobId, usize, &Entry)> {
    parts.iter().flat_map(|(id, t)| t.entries.iter().enumerate().map(move |(i, e)| (*id, i, e)))
}

/// Drops directories with nothing changed below them (their trees
/// differed only in metadata or removals): children come after their
/// parents, so one pass from the end settles each before its parent.
fn prune(dirs: &mut [ChangedDir]) {
    let mut shown = vec![false; dirs.len()];
    for i in (0..dirs.len()).rev() {
        dirs[i].children.retain(|c| match c.what {
            Child::Partial(d) => shown[d as usize],
            Child::Whole { .. } => true,
        });
        shown[i] = !dirs[i].children.is_empty();
    }
}
