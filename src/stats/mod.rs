//! `chkfs stats`: how big the repository is, and why.
//!
//! One walk over the trees of every snapshot (whatever the selection: a
//! chunk is unique to a snapshot only if no other snapshot, selected or
//! not, uses it). Each distinct tree is read and decoded once; what it
//! holds is kept as a small node of an in-memory graph (its subtrees and
//! the chunks its files use, as table indices). Sharing is then found by
//! marking: every tree and chunk carries the one snapshot that reaches it,
//! or "shared" once a second one does, and whether a selected snapshot
//! reaches it. Marks only ever grow (none, owned, shared; unselected,
//! selected) and a tree's subtrees are visited again only when its mark
//! grew, so the marking costs at most three visits per edge of the graph,
//! however many snapshots share a subtree.
//!
//! Memory, for C distinct chunks, T distinct trees and R references from
//! trees to chunks (files with the same chunk in one tree count once): a
//! table from chunk id to index (32 bytes a slot, at most 7/8 full after
//! it grows: 37 to 73 bytes a chunk) and 12 bytes of mark and length per
//! chunk; per tree about 64 bytes and a table slot like a chunk's; 4
//! bytes per chunk reference and per subdirectory entry. A repository of
//! ten million chunks needs well under a gigabyte; no chunk is read.

use crate::format::pack::BlobKind;
use crate::format::tree::{Extent, Node};
use crate::format::{BlobId, SnapshotId};
use crate::store::index::IdHasher;
use crate::store::{BlobReader, Index, SnapshotEntry, StoreError};
use crate::text::escape_bytes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasherDefault;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StatsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A tree a snapshot needs cannot be read: its sizes are unknown.
    /// (The source, which names the tree, follows in the error's chain.)
    #[error("snapshot {snapshot}: directory {path}/ cannot be read")]
    Unreadable { snapshot: SnapshotId, path: String, tree: BlobId, source: StoreError },
    #[error("snapshot {snapshot}: tree {tree} contains itself")]
    Cycle { snapshot: SnapshotId, tree: BlobId },
}

/// Sizes of a set of blobs: how many, their length as read back (raw),
/// and an estimate of what they take in the packs (each blob's share of
/// its compressed block).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Blobs {
    pub count: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

impl Blobs {
    fn add(&mut self, raw: u64, stored: u64) {
        self.count += 1;
        self.raw_bytes += raw;
        self.stored_bytes += stored;
    }
}

/// One snapshot's figures.
#[derive(Debug, Clone)]
pub struct SnapshotFigures {
    pub id: SnapshotId,
    /// Files a restore writes (every name of a hard-linked file counts).
    pub files: u64,
    /// Their sizes added up, a hard-link group's once (as `save` counts):
    /// what a restore writes.
    pub bytes: u64,
    /// Data chunks this snapshot uses and no other does: what forgetting
    /// it alone lets gc reclaim (besides its own trees).
    pub unique: Blobs,
}

#[derive(Debug, Clone, Default)]
pub struct RepoStats {
    /// Snapshots in the repository, and how many of them are selected.
    pub snapshots: u64,
    pub selected: u64,
    /// Packs the index lists, and their sizes added up.
    pub packs: u64,
    pub pack_bytes: u64,
    /// Over the selected snapshots: files and bytes a restore of every
    /// one would write.
    pub logical_files: u64,
    pub logical_bytes: u64,
    /// The distinct data chunks and trees the selected snapshots use.
    pub chunks: Blobs,
    pub trees: Blobs,
    /// Chunks a selected snapshot names that the index does not list
    /// (damage: their size is taken from the tree, nothing as stored).
    pub missing_chunks: u64,
    /// Every blob copy in the packs, used or not.
    pub packed_chunks: Blobs,
    pub packed_trees: Blobs,
    /// Blob copies no snapshot needs (left by forget, or second copies):
    /// what gc reclaims.
    pub unused: Blobs,
    /// Per selected snapshot, oldest first.
    pub per_snapshot: Vec<SnapshotFigures>,
}

impl RepoStats {
    /// logical / unique raw: how many times each byte stored is used.
    pub fn dedup_ratio(&self) -> Option<f64> {
        ratio(self.logical_bytes, self.chunks.raw_bytes)
    }

    /// unique raw / stored: what compression saves on the chunks used.
    pub fn compression_ratio(&self) -> Option<f64> {
        ratio(self.chunks.raw_bytes, self.chunks.stored_bytes)
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

type IdTable = HashMap<BlobId, u32, BuildHasherDefault<IdHasher>>;

/// Who reaches a tree or chunk: nobody yet, one snapshot (its position),
/// or several. Plus whether a selected snapshot does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    owner: u32,
    selected: bool,
}

const NOBODY: u32 = u32::MAX;
const SHARED: u32 = u32::MAX - 1;

impl Mark {
    const NONE: Mark = Mark { owner: NOBODY, selected: false };

    fn merge(self, other: Mark) -> Mark {
        let owner = match (self.owner, other.owner) {
            (NOBODY, o) | (o, NOBODY) => o,
            (a, b) if a == b => a,
            _ => SHARED,
        };
        Mark { owner, selected: self.selected || other.selected }
    }
}

/// A distinct tree, once read.
struct TreeNode {
    id: BlobId,
    /// None until read.
    loaded: Option<Loaded>,
    mark: Mark,
}

struct Loaded {
    /// Subtrees, one per directory entry (two entries with the same
    /// content both count for the restore size), as positions in `trees`.
    children: std::ops::Range<u32>,
    /// Distinct chunks its files use, as positions in `chunks`.
    chunks: std::ops::Range<u32>,
    files: u64,
    /// Sizes of its files that are not hard links.
    bytes: u64,
    /// Its hard-linked files, (group, size), as positions in `links`.
    links: std::ops::Range<u32>,
}

struct Graph<'a> {
    reader: &'a BlobReader,
    tree_ids: IdTable,
    trees: Vec<TreeNode>,
    edges: Vec<u32>,
    chunk_refs: Vec<u32>,
    chunk_ids: IdTable,
    /// Per chunk: its mark, and its length as the tree gives it.
    chunks: Vec<(Mark, u32)>,
    /// Hard-linked files: (group, size). Groups are numbered per snapshot,
    /// so a group's size is counted once per snapshot, by a walk of the
    /// subtrees that hold some.
    links: Vec<(u64, u64)>,
    /// Parts of split trees (tree blobs no entry names directly), with
    /// the tree they belong to.
    parts: Vec<(u32, BlobId)>,
}

impl<'a> Graph<'a> {
    fn tree(&mut self, id: BlobId) -> u32 {
        let next = self.trees.len() as u32;
        *self.tree_ids.entry(id).or_insert_with(|| {
            self.trees.push(TreeNode { id, loaded: None, mark: Mark::NONE });
            next
        })
    }

    fn load(&mut self, t: u32) -> Result<(), StoreError> {
        let id = self.trees[t as usize].id;
        let (tree, parts) = self.reader.read_tree_with_parts(id)?;
        self.parts.extend(parts.into_iter().map(|p| (t, p)));
        let (mut files, mut bytes) = (0u64, 0u64);
        let edges_start = self.edges.len() as u32;
        let refs_start = self.chunk_refs.len();
        let links_start = self.links.len() as u32;
        for e in &tree.entries {
            match &e.node {
                Node::Dir { tree } => {
                    let child = self.tree(*tree);
                    self.edges.push(child);
                }
                Node::File { content } => {
                    files += 1;
                    match e.hard_link {
                        Some(l) => self.links.push((l.group, e.size)),
                        None => bytes = bytes.saturating_add(e.size),
                    }
                    for x in content {
                        if let Extent::Data { id, len } = x {
                            let next = self.chunks.len() as u32;
                            let c = *self.chunk_ids.entry(*id).or_insert(next);
                            if c == next {
                                self.chunks.push((Mark::NONE, *len));
                            }
                            self.chunk_refs.push(c);
                        }
                    }
                }
                _ => {}
            }
        }
        self.chunk_refs[refs_start..].sort_unstable();
        let mut kept = refs_start;
        for i in refs_start..self.chunk_refs.len() {
            if i == refs_start || self.chunk_refs[i] != self.chunk_refs[kept - 1] {
                self.chunk_refs[kept] = self.chunk_refs[i];
                kept += 1;
            }
        }
        self.chunk_refs.truncate(kept);
        let loaded = Loaded {
            children: edges_start..self.edges.len() as u32,
            chunks: refs_start as u32..kept as u32,
            files,
            bytes,
            links: links_start..self.links.len() as u32,
        };
        self.trees[t as usize].loaded = Some(loaded);
        Ok(())
    }

    /// Marks everything under `root` as reached by `mark`, reading the
    /// trees met for the first time.
    fn mark(&mut self, snap: &SnapshotEntry, root: u32, mark: Mark) -> Result<(), StatsError> {
        let mut stack = vec![(root, mark)];
        while let Some((t, m)) = stack.pop() {
            let node = &self.trees[t as usize];
            let merged = node.mark.merge(m);
            if merged == node.mark && node.loaded.is_some() {
                continue;
            }
            self.trees[t as usize].mark = merged;
            if self.trees[t as usize].loaded.is_none() {
                if let Err(source) = self.load(t) {
                    let tree = self.trees[t as usize].id;
                    let path = escape_bytes(&self.path_to(root, t));
                    return Err(StatsError::Unreadable { snapshot: snap.id, path, tree, source });
                }
            }
            if let Some(l) = &self.trees[t as usize].loaded {
                // Children learn the tree's whole mark: a tree two
                // snapshots reach makes everything under it shared.
                stack.extend(
                    self.edges[l.children.start as usize..l.children.end as usize].iter().map(|&c| (c, merged)),
                );
            }
        }
        Ok(())
    }

    /// The path from `root` to tree `t` (for a message): the trees read
    /// so far are searched, then the names read again.
    fn path_to(&self, root: u32, t: u32) -> Vec<u8> {
        let mut parent: HashMap<u32, u32> = HashMap::new();
        let mut queue = VecDeque::from([root]);
        while let Some(at) = queue.pop_front() {
            if at == t {
                break;
            }
            let Some(l) = &self.trees[at as usize].loaded else { continue };
            for &c in &self.edges[l.children.start as usize..l.children.end as usize] {
                if c != root && !parent.contains_key(&c) {
                    parent.insert(c, at);
                    queue.push_back(c);
                }
            }
        }
        let mut chain = vec![t];
        while let Some(&p) = parent.get(chain.last().unwrap_or(&root)) {
            chain.push(p);
        }
        chain.reverse();
        let mut path = Vec::new();
        for pair in chain.windows(2) {
            let child = self.trees[pair[1] as usize].id;
            let name = match self.reader.read_tree(self.trees[pair[0] as usize].id) {
                Ok(tree) => tree
                    .entries
                    .into_iter()
                    .find(|e| matches!(e.node, Node::Dir { tree } if tree == child))
                    .map(|e| e.name),
                Err(_) => None,
            };
            path.push(b'/');
            path.extend(name.unwrap_or_else(|| b"?".to_vec()));
        }
        path
    }

    /// Per tree, subtrees included: its files, the bytes of those that
    /// are not hard links, and whether it holds hard links. Computed once
    /// per distinct tree (after every snapshot was marked).
    fn restore_sizes(&self, snap_of: &[(SnapshotId, u32)]) -> Result<Vec<Sizes>, StatsError> {
        const TODO: u8 = 0;
        const OPEN: u8 = 1;
        const DONE: u8 = 2;
        let mut state = vec![TODO; self.trees.len()];
        let mut sizes = vec![Sizes::default(); self.trees.len()];
        for &(snapshot, root) in snap_of {
            let mut stack = vec![(root, false)];
            while let Some((t, children_done)) = stack.pop() {
                let Some(l) = &self.trees[t as usize].loaded else { continue };
                let children = &self.edges[l.children.start as usize..l.children.end as usize];
                if !children_done {
                    match state[t as usize] {
                        DONE => continue,
                        OPEN => return Err(StatsError::Cycle { snapshot, tree: self.trees[t as usize].id }),
                        _ => {}
                    }
                    state[t as usize] = OPEN;
                    stack.push((t, true));
                    for &c in children {
                        match state[c as usize] {
                            DONE => {}
                            OPEN => return Err(StatsError::Cycle { snapshot, tree: self.trees[c as usize].id }),
                            _ => stack.push((c, false)),
                        }
                    }
                    continue;
                }
                let mut total = Sizes { files: l.files, bytes: l.bytes, links: !l.links.is_empty() };
                for &c in children {
                    let sub = sizes[c as usize];
                    total.files = total.files.saturating_add(sub.files);
                    total.bytes = total.bytes.saturating_add(sub.bytes);
                    total.links |= sub.links;
                }
                sizes[t as usize] = total;
                state[t as usize] = DONE;
            }
        }
        Ok(sizes)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Sizes {
    files: u64,
    bytes: u64,
    links: bool,
}

impl Graph<'_> {
    /// The sizes of the hard-link groups under `root`, each once: the
    /// subtrees holding none are not entered.
    fn linked_bytes(&self, root: u32, sizes: &[Sizes]) -> u64 {
        let mut groups: HashMap<u64, u64> = HashMap::new();
        let mut seen: HashSet<u32> = HashSet::new();
        let mut stack = vec![root];
        while let Some(t) = stack.pop() {
            if !sizes[t as usize].links || !seen.insert(t) {
                continue;
            }
            let Some(l) = &self.trees[t as usize].loaded else { continue };
            for &(group, size) in &self.links[l.links.start as usize..l.links.end as usize] {
                groups.entry(group).or_insert(size);
            }
            stack.extend(&self.edges[l.children.start as usize..l.children.end as usize]);
        }
        groups.values().fold(0, |a, &b| a.saturating_add(b))
    }
}

/// The raw length and the estimated stored length of the blob's copy a
/// reader would use.
fn sizes_in(index: &Index, kind: BlobKind, id: BlobId) -> Option<(u64, u64)> {
    let loc = index.locations(kind, id).find(|l| index.is_usable(l)).or_else(|| index.locations(kind, id).next())?;
    Some((u64::from(loc.len), stored_share(index, loc.block, loc.len)))
}

/// A blob's share of its block's stored bytes, in proportion to its raw
/// length.
fn stored_share(index: &Index, block: u32, len: u32) -> u64 {
    let b = index.block(block);
    if b.raw_len == 0 {
        return 0;
    }
    u64::from(b.stored_len) * u64::from(len) / u64::from(b.raw_len)
}

/// Figures for the repository `reader` reads, whose snapshots are `all`
/// (oldest first); `selected` says which of them the figures describe.
pub fn stats(
    reader: &BlobReader,
    all: &[SnapshotEntry],
    selected: &HashSet<SnapshotId>,
) -> Result<RepoStats, StatsError> {
    let index = reader.index();
    let mut g = Graph {
        reader,
        tree_ids: IdTable::default(),
        trees: Vec::new(),
        edges: Vec::new(),
        chunk_refs: Vec::new(),
        chunk_ids: IdTable::default(),
        chunks: Vec::new(),
        links: Vec::new(),
        parts: Vec::new(),
    };
    let mut roots = Vec::with_capacity(all.len());
    for (n, snap) in all.iter().enumerate() {
        let root = g.tree(snap.snapshot.root_tree());
        let mark = Mark { owner: n as u32, selected: selected.contains(&snap.id) };
        g.mark(snap, root, mark)?;
        roots.push((snap.id, root));
    }
    // Chunks take the marks of the trees that use them.
    for t in &g.trees {
        let Some(l) = &t.loaded else { continue };
        for &c in &g.chunk_refs[l.chunks.start as usize..l.chunks.end as usize] {
            let slot = &mut g.chunks[c as usize].0;
            *slot = slot.merge(t.mark);
        }
    }
    let sizes = g.restore_sizes(&roots)?;

    let mut out = RepoStats { snapshots: all.len() as u64, ..Default::default() };
    let mut unique = vec![Blobs::default(); all.len()];
    for (&id, &c) in &g.chunk_ids {
        let (mark, len) = g.chunks[c as usize];
        let (raw, stored) = match sizes_in(&index, BlobKind::Data, id) {
            Some(s) => s,
            None => {
                if mark.selected {
                    out.missing_chunks += 1;
                }
                (u64::from(len), 0)
            }
        };
        if mark.selected {
            out.chunks.add(raw, stored);
        }
        if let Some(u) = unique.get_mut(mark.owner as usize) {
            u.add(raw, stored);
        }
    }
    for t in &g.trees {
        if t.mark.selected {
            if let Some((raw, stored)) = sizes_in(&index, BlobKind::Tree, t.id) {
                out.trees.add(raw, stored);
            }
        }
    }
    // A part two split trees share counts once, selected if either is.
    let mut parts: HashMap<BlobId, bool, BuildHasherDefault<IdHasher>> = HashMap::default();
    for &(t, p) in &g.parts {
        *parts.entry(p).or_default() |= g.trees[t as usize].mark.selected;
    }
    for (&p, &selected) in &parts {
        if let Some((raw, stored)) = sizes_in(&index, BlobKind::Tree, p).filter(|_| selected) {
            out.trees.add(raw, stored);
        }
    }
    for (n, (snap, &(_, root))) in all.iter().zip(&roots).enumerate() {
        if !selected.contains(&snap.id) {
            continue;
        }
        let files = sizes[root as usize].files;
        let bytes = sizes[root as usize].bytes.saturating_add(g.linked_bytes(root, &sizes));
        out.selected += 1;
        out.logical_files = out.logical_files.saturating_add(files);
        out.logical_bytes = out.logical_bytes.saturating_add(bytes);
        out.per_snapshot.push(SnapshotFigures { id: snap.id, files, bytes, unique: unique[n] });
    }
    count_packs(&index, &g, &parts, &mut out);
    Ok(out)
}

/// Every copy in the packs, and which of them no snapshot needs: a copy
/// is used when its blob is and it is the copy a reader takes.
fn count_packs(
    index: &Index,
    g: &Graph,
    parts: &HashMap<BlobId, bool, BuildHasherDefault<IdHasher>>,
    out: &mut RepoStats,
) {
    for (slot, meta) in index.packs() {
        index.release_pages();
        out.packs += 1;
        out.pack_bytes += meta.size;
        for block in index.blocks_of_pack(slot) {
            for b in index.blobs_in_block(block) {
                let stored = stored_share(index, block, b.len);
                let used = match b.kind {
                    BlobKind::Data => {
                        out.packed_chunks.add(u64::from(b.len), stored);
                        g.chunk_ids.contains_key(&b.id)
                    }
                    BlobKind::Tree => {
                        out.packed_trees.add(u64::from(b.len), stored);
                        g.tree_ids.contains_key(&b.id) || parts.contains_key(&b.id)
                    }
                };
                let chosen = index
                    .locations(b.kind, b.id)
                    .find(|l| index.is_usable(l))
                    .or_else(|| index.locations(b.kind, b.id).next());
                let this_copy = chosen.is_some_and(|l| l.block == block && l.offset == b.offset);
                if !(used && this_copy) {
                    out.unused.add(u64::from(b.len), stored);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_only_grow() {
        let a = Mark { owner: 0, selected: false };
        let b = Mark { owner: 1, selected: true };
        assert_eq!(Mark::NONE.merge(a), a);
        assert_eq!(a.merge(a), a);
        assert_eq!(a.merge(Mark::NONE), a);
        assert_eq!(a.merge(b), Mark { owner: SHARED, selected: true });
        assert_eq!(b.merge(a).merge(a), Mark { owner: SHARED, selected: true });
        assert_eq!(ratio(3, 0), None);
        assert_eq!(ratio(3, 2), Some(1.5));
    }
}
