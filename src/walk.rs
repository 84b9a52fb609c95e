//! Walking snapshot trees, without recursion, for restore, check and gc.
//!
//! Trees are content-addressed, so one tree may be reached by many paths
//! (identical directories share it) and, in a hostile repository, by a
//! chain of trees each naming the next twice, which doubles the number of
//! paths per level. Two walks, then:
//!
//! * [`each_distinct_tree`] visits every distinct tree once, whatever the
//!   number of paths to it: what gc and check need.
//! * [`expand`] lists every path, as restore needs, but refuses to list
//!   more entries than the snapshot record says it has, and stops at a
//!   tree that contains itself.
//!
//! Depth costs heap, never stack.

use crate::format::tree::{Entry, Node, Tree};
use crate::format::BlobId;
use crate::store::StoreError;
use std::collections::HashSet;
use std::sync::Arc;

/// What a walk does with each tree: its id, the path it was first reached
/// by, and the tree or why it could not be read.
pub type TreeVisitor<'a, E> = dyn FnMut(BlobId, &[u8], Result<&Tree, StoreError>) -> Result<(), E> + 'a;

/// Visits every distinct tree reachable from `roots` that is not in
/// `visited` yet, each once, with the path it was first reached by (for
/// messages) and its decoded tree or why it could not be read. `visit`
/// may stop the walk by returning an error.
pub fn each_distinct_tree<E>(
    roots: impl IntoIterator<Item = BlobId>,
    visited: &mut HashSet<BlobId>,
    load: &mut dyn FnMut(BlobId) -> Result<Arc<Tree>, StoreError>,
    visit: &mut TreeVisitor<E>,
) -> Result<(), E> {
    let mut stack: Vec<(BlobId, Vec<u8>)> = roots.into_iter().map(|id| (id, Vec::new())).collect();
    stack.reverse();
    while let Some((id, path)) = stack.pop() {
        if !visited.insert(id) {
            continue;
        }
        let tree = match load(id) {
            Ok(t) => t,
            Err(e) => {
                visit(id, &path, Err(e))?;
                continue;
            }
        };
        visit(id, &path, Ok(&tree))?;
        for entry in tree.entries.iter().rev() {
            if let Node::Dir { tree: child } = entry.node {
                if !visited.contains(&child) {
                    stack.push((child, join(&path, &entry.name)));
                }
            }
        }
    }
    Ok(())
}

/// `parent/name`, '/'-separated raw bytes.
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    p.extend_from_slice(parent);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// An entry of an expanded tree: the root entry, or an entry of a tree.
#[derive(Clone)]
pub enum EntryRef {
    Root(Arc<Entry>),
    InTree(Arc<Tree>, u32),
}

impl EntryRef {
    pub fn entry(&self) -> &Entry {
        match self {
            EntryRef::Root(e) => e,
            EntryRef::InTree(t, i) => &t.entries[*i as usize],
        }
    }
}

/// One path of an expanded tree.
#[derive(Clone)]
pub struct Item {
    /// Index of the directory holding it; the root has none.
    pub parent: Option<u32>,
    pub entry: EntryRef,
}

/// Every path below a root, in pre-order (a directory before what it
/// holds), with the directories whose content could not be listed.
pub struct Expanded {
    pub items: Vec<Item>,
    /// (index of the directory, why its content is missing).
    pub unlisted: Vec<(u32, StoreError)>,
}

impl Expanded {
    /// The path of item `i` relative to the root ("" for the root).
    pub fn path(&self, i: u32) -> Vec<u8> {
        let mut names = Vec::new();
        let mut at = i;
        while let Some(parent) = self.items[at as usize].parent {
            names.push(&self.items[at as usize].entry.entry().name);
            at = parent;
        }
        let mut path = Vec::new();
        for (n, name) in names.iter().rev().enumerate() {
            if n > 0 {
                path.push(b'/');
            }
            path.extend_from_slice(name);
        }
        path
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExpandError {
    #[error("the tree holds more than the {limit} entries its snapshot record counts: it is damaged or forged")]
    TooMany { limit: u64 },
}

enum Step {
    Enter { parent: Option<u32>, entry: EntryRef },
    Leave(BlobId),
}

/// Expands `root` into every path below it, reading each distinct tree
/// once. More than `limit` paths is an error, and so the walk never runs
/// away on a forged tree. A tree that contains itself (possible only with
/// a forged hash) is listed once and reported as unlisted where it recurs.
pub fn expand(
    root: Entry,
    limit: u64,
    load: &mut dyn FnMut(BlobId) -> Result<Arc<Tree>, StoreError>,
) -> Result<Expanded, ExpandError> {
    let mut out = Expanded { items: Vec::new(), unlisted: Vec::new() };
    let mut on_path: HashSet<BlobId> = HashSet::new();
    let mut stack = vec![Step::Enter { parent: None, entry: EntryRef::Root(Arc::new(root)) }];
    while let Some(step) = stack.pop() {
        let (parent, entry) = match step {
            Step::Leave(id) => {
                on_path.remove(&id);
                continue;
            }
            Step::Enter { parent, entry } => (parent, entry),
        };
        if out.items.len() as u64 >= limit {
            return Err(ExpandError::TooMany { limit });
        }
        let index = out.items.len() as u32;
        let dir = match entry.entry().node {
            Node::Dir { tree } => Some(tree),
            _ => None,
        };
        out.items.push(Item { parent, entry });
        let Some(tree_id) = dir else { continue };
        if !on_path.insert(tree_id) {
            let what = format!("tree {tree_id}");
            let reason = "it contains itself".into();
            out.unlisted.push((index, StoreError::Inconsistent { what, reason }));
            continue;
        }
        stack.push(Step::Leave(tree_id));
        match load(tree_id) {
            Ok(tree) => {
                for i in (0..tree.entries.len() as u32).rev() {
                    stack.push(Step::Enter { parent: Some(index), entry: EntryRef::InTree(tree.clone(), i) });
                }
            }
            Err(e) => out.unlisted.push((index, e)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::records::Timestamp;
    use std::collections::HashMap;

    fn entry(name: &str, node: Node) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            node,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            blocks: 0,
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            inode: 0,
            hard_link: None,
            xattrs: vec![],
        }
    }

    fn dir(name: &str, id: u128) -> Entry {
        entry(name, Node::Dir { tree: BlobId(id) })
    }

    fn loader(trees: HashMap<u128, Tree>) -> impl FnMut(BlobId) -> Result<Arc<Tree>, StoreError> {
        move |id| {
            trees
                .get(&id.0)
                .cloned()
                .map(Arc::new)
                .ok_or(StoreError::MissingBlob { kind: crate::format::pack::BlobKind::Tree, id })
        }
    }

    /// Tree n holds two directories that are both tree n+1: 2^depth paths.
    fn doubling_chain(depth: u128) -> HashMap<u128, Tree> {
        (1..=depth).map(|n| (n, Tree { entries: vec![dir("a", n + 1), dir("b", n + 1)] })).collect()
    }

    #[test]
    fn distinct_walk_reads_each_tree_once_even_when_paths_double() {
        let mut load = loader(doubling_chain(60));
        let mut loads = 0;
        let mut counted = |id| {
            loads += 1;
            load(id)
        };
        let mut seen = Vec::new();
        each_distinct_tree::<()>([BlobId(1)], &mut HashSet::new(), &mut counted, &mut |id, path, _| {
            seen.push((id.0, path.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(loads, 61, "60 trees and the missing 61st");
        assert_eq!(seen[2], (3, b"/a/a".to_vec()));
    }

    #[test]
    fn expansion_is_bounded_by_the_record() {
        let mut load = loader(doubling_chain(60));
        let err = expand(dir("", 1), 10_000, &mut load).err().expect("2^60 paths must be refused");
        assert!(matches!(err, ExpandError::TooMany { limit: 10_000 }));
        let mut load = loader(doubling_chain(3));
        let e = expand(dir("", 1), 1_000, &mut load).unwrap();
        // 1 + 2 + 4 + 8 directories, and the 8 deepest have no tree.
        assert_eq!(e.items.len(), 15);
        assert_eq!(e.unlisted.len(), 8);
        assert_eq!(e.path(2), b"a/a");
    }

    #[test]
    fn a_tree_that_contains_itself_stops_and_is_reported() {
        let trees = HashMap::from([(1, Tree { entries: vec![dir("loop", 1), entry("f", Node::Fifo)] })]);
        let e = expand(dir("", 1), 1_000, &mut loader(trees.clone())).unwrap();
        assert_eq!(e.items.len(), 3, "the root, loop (not entered again) and f");
        assert_eq!(e.unlisted.len(), 1);
        let mut visits = 0;
        each_distinct_tree::<()>([BlobId(1)], &mut HashSet::new(), &mut loader(trees), &mut |_, _, _| {
            visits += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(visits, 1);
    }

    #[test]
    fn a_deep_chain_needs_no_stack() {
        let depth = 200_000u128;
        let trees: HashMap<u128, Tree> = (1..=depth).map(|n| (n, Tree { entries: vec![dir("d", n + 1)] })).collect();
        let e = expand(dir("", 1), u64::MAX, &mut loader(trees)).unwrap();
        assert_eq!(e.items.len() as u128, depth + 1);
    }
}
