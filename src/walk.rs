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
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Where each visited tree was first reached, as a tree of (parent,
/// name): a path is made only when a message needs it. (Holding one path
/// per pending tree would take memory in the square of the depth.)
pub struct Paths {
    nodes: Vec<(u32, Vec<u8>)>,
}

/// A place in [`Paths`]; 0 is the root.
pub type PathNode = u32;

impl Default for Paths {
    fn default() -> Self {
        Paths { nodes: vec![(0, Vec::new())] }
    }
}

impl Paths {
    fn add(&mut self, parent: PathNode, name: &[u8]) -> PathNode {
        self.nodes.push((parent, name.to_vec()));
        (self.nodes.len() - 1) as PathNode
    }

    /// The path of `node`, '/'-separated from the root ("" for the root).
    pub fn path(&self, node: PathNode) -> Vec<u8> {
        let mut names = Vec::new();
        let mut at = node;
        while at != 0 {
            names.push(&self.nodes[at as usize].1);
            at = self.nodes[at as usize].0;
        }
        let mut p = Vec::new();
        for name in names.iter().rev() {
            p.push(b'/');
            p.extend_from_slice(name);
        }
        p
    }

    /// The path of `name` in the directory at `node`.
    pub fn child_path(&self, node: PathNode, name: &[u8]) -> Vec<u8> {
        join(&self.path(node), name)
    }
}

/// What a walk does with each tree: its id, where it was first reached,
/// the paths so far (to name it), and the tree or why it could not be read.
pub type TreeVisitor<'a, E> = dyn FnMut(BlobId, PathNode, &Paths, Result<&Tree, StoreError>) -> Result<(), E> + 'a;

/// Visits every distinct tree reachable from `roots` that is not in
/// `visited` yet, each once, with where it was first reached (for
/// messages) and its decoded tree or why it could not be read. `visit`
/// may stop the walk by returning an error.
pub fn each_distinct_tree<E>(
    roots: impl IntoIterator<Item = BlobId>,
    visited: &mut HashSet<BlobId>,
    load: &mut dyn FnMut(BlobId) -> Result<Arc<Tree>, StoreError>,
    visit: &mut TreeVisitor<E>,
) -> Result<(), E> {
    let mut paths = Paths::default();
    let mut stack: Vec<(BlobId, PathNode)> = roots.into_iter().map(|id| (id, 0)).collect();
    stack.reverse();
    while let Some((id, node)) = stack.pop() {
        if !visited.insert(id) {
            continue;
        }
        let tree = match load(id) {
            Ok(t) => t,
            Err(e) => {
                visit(id, node, &paths, Err(e))?;
                continue;
            }
        };
        visit(id, node, &paths, Ok(&tree))?;
        for entry in tree.entries.iter().rev() {
            if let Node::Dir { tree: child } = entry.node {
                if !visited.contains(&child) {
                    let at = paths.add(node, &entry.name);
                    stack.push((child, at));
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
    #[error("the tree holds more than {limit} entries")]
    TooMany { limit: u64 },
    #[error("its trees take more than {limit} bytes of memory")]
    TooLarge { limit: u64 },
}

/// What an expansion may hold: entries, and bytes of decoded trees.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub entries: u64,
    pub tree_bytes: u64,
}

enum Step {
    Enter { parent: Option<u32>, entry: EntryRef },
    Leave(BlobId),
}

/// Expands `root` into every path below it, reading each distinct tree
/// once. More paths or decoded trees than `limits` allow is an error, and
/// so the walk never runs away on a forged tree. A tree that contains
/// itself (possible only with a forged hash) is listed once and reported
/// as unlisted where it recurs.
pub fn expand(
    root: Entry,
    limits: Limits,
    load: &mut dyn FnMut(BlobId) -> Result<Arc<Tree>, StoreError>,
) -> Result<Expanded, ExpandError> {
    let limit = limits.entries;
    let mut out = Expanded { items: Vec::new(), unlisted: Vec::new() };
    let mut on_path: HashSet<BlobId> = HashSet::new();
    let mut decoded: HashMap<BlobId, Result<Arc<Tree>, StoreError>> = HashMap::new();
    let mut tree_bytes = 0u64;
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
        let loaded = match decoded.get(&tree_id) {
            Some(t) => t.as_ref().map(Arc::clone).map_err(StoreError::duplicate),
            None => {
                let t = load(tree_id);
                if let Ok(tree) = &t {
                    tree_bytes += tree.memory_size();
                    if tree_bytes > limits.tree_bytes {
                        return Err(ExpandError::TooLarge { limit: limits.tree_bytes });
                    }
                }
                let copy = t.as_ref().map(Arc::clone).map_err(StoreError::duplicate);
                decoded.insert(tree_id, t);
                copy
            }
        };
        match loaded {
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
    use std::collections::HashMap;

    fn entry(name: &str, node: Node) -> Entry {
        Entry::bare(name.as_bytes(), node)
    }

    fn limits(entries: u64) -> Limits {
        Limits { entries, tree_bytes: u64::MAX }
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
        each_distinct_tree::<()>([BlobId(1)], &mut HashSet::new(), &mut counted, &mut |id, node, paths, _| {
            seen.push((id.0, paths.path(node)));
            Ok(())
        })
        .unwrap();
        assert_eq!(loads, 61, "60 trees and the missing 61st");
        assert_eq!(seen[2], (3, b"/a/a".to_vec()));
    }

    #[test]
    fn expansion_is_bounded_by_the_record() {
        let mut load = loader(doubling_chain(60));
        let err = expand(dir("", 1), limits(10_000), &mut load).err().expect("2^60 paths must be refused");
        assert!(matches!(err, ExpandError::TooMany { limit: 10_000 }));
        let mut loads = 0;
        let mut load = loader(doubling_chain(3));
        let mut counted = |id| {
            loads += 1;
            load(id)
        };
        let e = expand(dir("", 1), limits(1_000), &mut counted).unwrap();
        assert_eq!(loads, 4, "each distinct tree is decoded once, however many paths lead to it");
        // 1 + 2 + 4 + 8 directories, and the 8 deepest have no tree.
        assert_eq!(e.items.len(), 15);
        assert_eq!(e.unlisted.len(), 8);
        assert_eq!(e.path(2), b"a/a");
    }

    #[test]
    fn a_tree_that_contains_itself_stops_and_is_reported() {
        let trees = HashMap::from([(1, Tree { entries: vec![dir("loop", 1), entry("f", Node::Fifo)] })]);
        let e = expand(dir("", 1), limits(1_000), &mut loader(trees.clone())).unwrap();
        assert_eq!(e.items.len(), 3, "the root, loop (not entered again) and f");
        assert_eq!(e.unlisted.len(), 1);
        let mut visits = 0;
        each_distinct_tree::<()>([BlobId(1)], &mut HashSet::new(), &mut loader(trees), &mut |_, _, _, _| {
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
        let e = expand(dir("", 1), limits(u64::MAX), &mut loader(trees)).unwrap();
        assert_eq!(e.items.len() as u128, depth + 1);
    }
}
