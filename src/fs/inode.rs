//! Inode numbers: stable across mounts, derived from what a node is.
//!
//! * A directory gets one number per snapshot and path (derived from its
//!   parent's identity and its name, so no node holds a path).
//! * A file, symlink or special file gets a number derived from everything
//!   `stat` shows plus its content, xattrs and source inode: the same
//!   unchanged file has the same number in every snapshot, so GNU
//!   `diff -r` between two snapshots skips it without reading.
//! * The names of a hard-link group share one number per snapshot and group.
//!
//! Derived numbers have the top bit clear; a collision (two different
//! nodes deriving the same number) is detected and the newcomer gets a
//! number from a counter with the top bit set, so no number is ever
//! served for two nodes.

use super::changes::ChangeSet;
use super::history::ViewDir;
use crate::format::tree::{Entry, Extent, Node};
use crate::format::{BlobId, SnapshotId};
use std::collections::HashMap;
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_128;

pub const ROOT: u64 = 1;
pub const SNAPSHOTS: u64 = 2;
pub const BY_TIME: u64 = 3;
pub const BY_PATH: u64 = 4;
pub const CHANGES: u64 = 5;
pub const HISTORY: u64 = 6;
const FIRST_DERIVED: u64 = 16;
const FALLBACK_BIT: u64 = 1 << 63;

/// What an inode number stands for. Kept small: the kernel may hold a
/// million of them, so a node inside a snapshot says where its entry is
/// rather than holding a copy.
#[derive(Debug, Clone)]
pub enum NodeKind {
    Root,
    Snapshots,
    ByTime,
    /// `snapshots/latest`, pointing at this snapshot: a new newest
    /// snapshot makes a new node, so the kernel may cache every link.
    Latest(SnapshotId),
    /// A symlink in by-time/ pointing at a snapshot.
    TimeLink(SnapshotId),
    ByPath,
    Changes,
    History,
    /// A directory of by-path/ or history/ below the top.
    View(Arc<ViewDir>),
    /// A symlink in by-path/, `depth` directories below the root,
    /// pointing at a snapshot.
    SourceLink {
        snap: SnapshotId,
        depth: u32,
    },
    /// `changes/<id>`: the roots of the snapshot and of the one before it,
    /// whose change set is made when first listed.
    ChangesRoot {
        snap: SnapshotId,
        base: SnapshotId,
        roots: Arc<(Entry, Entry)>,
    },
    /// A directory of a change set below its root.
    ChangedDir(Arc<ChangeSet>, u32),
    /// `changes/<id>.removed`.
    Removed(Arc<ChangeSet>),
    /// A directory inside a snapshot (or the snapshot itself).
    Dir(InSnapshot),
    /// A file, symlink or special file inside a snapshot.
    Leaf(InSnapshot),
}

#[derive(Debug, Clone)]
pub struct InSnapshot {
    pub snap: SnapshotId,
    pub at: EntryAt,
    /// The directory it was first found in.
    pub parent: u64,
    /// Whether the entry has extended attributes.
    pub xattrs: bool,
}

/// Where a node's entry is.
#[derive(Debug, Clone)]
pub enum EntryAt {
    /// A snapshot's root, from its record (which may be forgotten while
    /// the kernel still holds the directory).
    Held(Arc<Entry>),
    /// Entry `index` of tree `tree`, found again through the tree cache.
    InTree { tree: Packed, index: u32 },
}

/// A 128-bit value aligned to 8 bytes: a u128 is aligned to 16, which
/// pads every node and table slot (the kernel may hold a million).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packed([u64; 2]);

impl From<u128> for Packed {
    fn from(v: u128) -> Packed {
        Packed([v as u64, (v >> 64) as u64])
    }
}

impl From<Packed> for u128 {
    fn from(p: Packed) -> u128 {
        u128::from(p.0[0]) | (u128::from(p.0[1]) << 64)
    }
}

impl From<BlobId> for Packed {
    fn from(id: BlobId) -> Packed {
        id.0.into()
    }
}

impl From<Packed> for BlobId {
    fn from(p: Packed) -> BlobId {
        BlobId(p.into())
    }
}

/// A registered node, packed: the kernel may hold a million, most of them
/// entries of trees, which are kept as the tree's handle (see `Trees`)
/// and the entry's place; any other node is kept whole in `others`.
struct Slot {
    key: Packed,
    lookups: u64,
    parent: u64,
    snap: u32,
    /// A handle in `trees`, or `OTHER`.
    tree: u32,
    index: u32,
    flags: u8,
}

const OTHER: u32 = u32::MAX;
const DIR: u8 = 1;
const XATTRS: u8 = 2;

/// The trees that registered entries are in, each held once with a count
/// of the slots that use it (16 bytes per slot saved).
#[derive(Default)]
struct Trees {
    handles: HashMap<u128, (u32, u64)>,
    ids: Vec<Packed>,
    free: Vec<u32>,
}

impl Trees {
    fn hold(&mut self, tree: Packed) -> u32 {
        if let Some((h, n)) = self.handles.get_mut(&u128::from(tree)) {
            *n += 1;
            return *h;
        }
        let h = match self.free.pop() {
            Some(h) => {
                self.ids[h as usize] = tree;
                h
            }
            None => {
                self.ids.push(tree);
                (self.ids.len() - 1) as u32
            }
        };
        self.handles.insert(tree.into(), (h, 1));
        h
    }

    fn release(&mut self, h: u32) {
        let Some(&tree) = self.ids.get(h as usize) else { return };
        if let Some((_, n)) = self.handles.get_mut(&u128::from(tree)) {
            *n -= 1;
            if *n == 0 {
                self.handles.remove(&u128::from(tree));
                self.free.push(h);
            }
        }
    }

    fn id(&self, h: u32) -> Packed {
        self.ids[h as usize]
    }
}

/// Another place of a file found in several snapshots (one inode for
/// all): its snapshot, tree handle, index there and directory.
#[derive(Debug, Clone, Copy)]
struct Home {
    snap: u32,
    tree: u32,
    index: u32,
    parent: u64,
}

/// The places of a file beside its slot's own: one for most (two
/// snapshots compared), held inline.
enum Homes {
    One(Home),
    Many(Vec<Home>),
}

impl Homes {
    fn as_slice(&self) -> &[Home] {
        match self {
            Homes::One(h) => std::slice::from_ref(h),
            Homes::Many(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Home] {
        match self {
            Homes::One(h) => std::slice::from_mut(h),
            Homes::Many(v) => v,
        }
    }

    fn push(&mut self, home: Home) {
        match self {
            Homes::One(h) => *self = Homes::Many(vec![*h, home]),
            Homes::Many(v) => v.push(home),
        }
    }
}

#[derive(Default)]
pub struct InodeTable {
    slots: HashMap<u64, Slot>,
    /// For files looked up in more than one snapshot, the places beside
    /// the slot's own, one per snapshot: when the slot's snapshot is
    /// forgotten and its trees collected, the file is still read from
    /// another (as many places as the kernel holds names for it).
    homes: HashMap<u64, Homes>,
    /// Places in `homes`, for the memory they take.
    places: usize,
    /// Nodes that are not entries of a tree (snapshot roots, links).
    others: HashMap<u64, NodeKind>,
    trees: Trees,
    fallback: HashMap<u128, u64>,
    next_fallback: u64,
}

/// The identity of a snapshot's root directory.
pub fn root_key(snap: SnapshotId) -> u128 {
    let mut buf = b"dir\0".to_vec();
    buf.extend_from_slice(&snap.0.to_le_bytes());
    xxh3_128(&buf)
}

/// The identity of directory `name` in the directory whose key is `parent`.
pub fn dir_key(parent: u128, name: &[u8]) -> u128 {
    let mut buf = b"subdir\0".to_vec();
    buf.extend_from_slice(&parent.to_le_bytes());
    buf.extend_from_slice(name);
    xxh3_128(&buf)
}

pub fn leaf_key(snap: SnapshotId, e: &Entry) -> u128 {
    if let Some(link) = e.hard_link {
        let mut buf = b"link\0".to_vec();
        buf.extend_from_slice(&snap.0.to_le_bytes());
        buf.extend_from_slice(&link.group.to_le_bytes());
        return xxh3_128(&buf);
    }
    // Streamed field by field: copying the entry to drop its name cost an
    // allocation per listed entry.
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    h.update(b"leaf\0");
    hash_node(&mut h, &e.node);
    for v in [u64::from(e.mode), u64::from(e.uid), u64::from(e.gid), e.size, e.blocks, e.inode] {
        h.update(&v.to_le_bytes());
    }
    for t in [e.mtime, e.ctime] {
        h.update(&t.secs.to_le_bytes());
        h.update(&t.nanos.to_le_bytes());
    }
    for x in &e.xattrs {
        for part in [&x.name, &x.value] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
    }
    h.digest128()
}

/// Feeds what `node` is into `h`, each variable-length part preceded by
/// its length (an encoder would allocate for every entry hashed).
fn hash_node(h: &mut xxhash_rust::xxh3::Xxh3Default, node: &Node) {
    fn number(h: &mut xxhash_rust::xxh3::Xxh3Default, tag: u8, v: u64) {
        h.update(&[tag]);
        h.update(&v.to_le_bytes());
    }
    match node {
        Node::File { content } => {
            number(h, 0, content.len() as u64);
            for x in content {
                match *x {
                    Extent::Data { id, len } => {
                        number(h, 1, u64::from(len));
                        h.update(&id.0.to_le_bytes());
                    }
                    Extent::Hole { len } => number(h, 2, len),
                }
            }
        }
        Node::Dir { tree } => {
            number(h, 3, 0);
            h.update(&tree.0.to_le_bytes());
        }
        Node::Symlink { target } => {
            number(h, 4, target.len() as u64);
            h.update(target);
        }
        Node::Fifo => number(h, 5, 0),
        Node::Socket => number(h, 6, 0),
        Node::CharDevice { rdev } => number(h, 7, *rdev),
        Node::BlockDevice { rdev } => number(h, 8, *rdev),
    }
}

pub fn latest_key(snap: SnapshotId) -> u128 {
    let mut buf = b"latest\0".to_vec();
    buf.extend_from_slice(&snap.0.to_le_bytes());
    xxh3_128(&buf)
}

/// The identity of a link named `name` in by-path directory `dir`.
pub fn source_link_key(dir: &ViewDir, name: &[u8], snap: SnapshotId) -> u128 {
    let mut buf = b"source-link\0".to_vec();
    buf.extend_from_slice(&dir.key.to_le_bytes());
    buf.extend_from_slice(&snap.0.to_le_bytes());
    buf.extend_from_slice(name);
    xxh3_128(&buf)
}

/// The identity of `changes/<snap>` (or, with `removed`, of its
/// `.removed` list) when compared with `base`.
pub fn changes_key(snap: SnapshotId, base: Option<SnapshotId>, removed: bool) -> u128 {
    let mut buf = if removed { b"removed\0".to_vec() } else { b"changes\0".to_vec() };
    buf.extend_from_slice(&snap.0.to_le_bytes());
    if let Some(b) = base {
        buf.extend_from_slice(&b.0.to_le_bytes());
    }
    xxh3_128(&buf)
}

pub fn time_link_key(snap: SnapshotId) -> u128 {
    let mut buf = b"time\0".to_vec();
    buf.extend_from_slice(&snap.0.to_le_bytes());
    xxh3_128(&buf)
}

fn derived(key: u128) -> u64 {
    let n = (key as u64) & !FALLBACK_BIT;
    if n < FIRST_DERIVED {
        n + FIRST_DERIVED
    } else {
        n
    }
}

impl InodeTable {
    /// The number for `key`, registering the node if the kernel does not
    /// know it yet; `counted` adds one kernel lookup reference.
    pub fn register(&mut self, key: u128, make: impl FnOnce() -> NodeKind, counted: bool) -> u64 {
        let mut ino = derived(key);
        if self.slots.get(&ino).is_some_and(|s| u128::from(s.key) != key) {
            ino = *self.fallback.entry(key).or_insert_with(|| {
                self.next_fallback += 1;
                FALLBACK_BIT | self.next_fallback
            });
        }
        let (trees, others) = (&mut self.trees, &mut self.others);
        let slot = match self.slots.entry(ino) {
            std::collections::hash_map::Entry::Vacant(v) => v.insert(pack(trees, others, key, make(), ino)),
            std::collections::hash_map::Entry::Occupied(o) => {
                let slot = o.into_mut();
                if slot.tree != OTHER && slot.flags & DIR == 0 {
                    if let NodeKind::Leaf(n) = make() {
                        self.places += add_home(&mut self.homes, trees, slot, ino, n);
                    }
                }
                slot
            }
        };
        if counted {
            slot.lookups += 1;
        }
        ino
    }

    /// The places of file `ino` beside the one `get` gives.
    pub fn other_homes(&self, ino: u64) -> Vec<InSnapshot> {
        let Some(slot) = self.slots.get(&ino) else { return Vec::new() };
        let xattrs = slot.flags & XATTRS != 0;
        let homes = self.homes.get(&ino).map_or(&[][..], Homes::as_slice);
        let at = |h: &Home| EntryAt::InTree { tree: self.trees.id(h.tree), index: h.index };
        homes.iter().map(|h| InSnapshot { snap: SnapshotId(h.snap), at: at(h), parent: h.parent, xattrs }).collect()
    }

    /// Makes the place of `ino` in snapshot `snap` the one `get` gives
    /// (the slot's own failed: its trees are gone).
    pub fn rehome(&mut self, ino: u64, snap: SnapshotId) {
        let (Some(slot), Some(homes)) = (self.slots.get_mut(&ino), self.homes.get_mut(&ino)) else { return };
        let Some(h) = homes.as_mut_slice().iter_mut().find(|h| h.snap == snap.0) else { return };
        let own = Home { snap: slot.snap, tree: slot.tree, index: slot.index, parent: slot.parent };
        (slot.snap, slot.tree, slot.index, slot.parent) = (h.snap, h.tree, h.index, h.parent);
        *h = own;
    }

    fn unpack(&self, ino: u64, slot: &Slot) -> Option<NodeKind> {
        if slot.tree == OTHER {
            return self.others.get(&ino).cloned();
        }
        let node = InSnapshot {
            snap: SnapshotId(slot.snap),
            at: EntryAt::InTree { tree: self.trees.id(slot.tree), index: slot.index },
            parent: slot.parent,
            xattrs: slot.flags & XATTRS != 0,
        };
        Some(if slot.flags & DIR != 0 { NodeKind::Dir(node) } else { NodeKind::Leaf(node) })
    }

    /// The number `key` has or would have, without registering anything.
    pub fn peek(&self, key: u128) -> u64 {
        let ino = derived(key);
        match self.slots.get(&ino) {
            Some(s) if u128::from(s.key) != key => self.fallback.get(&key).copied().unwrap_or(ino),
            _ => ino,
        }
    }

    /// The number of `key` if the kernel holds it.
    pub fn find(&self, key: u128) -> Option<u64> {
        let ino = self.peek(key);
        self.slots.get(&ino).filter(|s| u128::from(s.key) == key).map(|_| ino)
    }

    pub fn get(&self, ino: u64) -> Option<NodeKind> {
        match ino {
            ROOT => Some(NodeKind::Root),
            SNAPSHOTS => Some(NodeKind::Snapshots),
            BY_TIME => Some(NodeKind::ByTime),
            BY_PATH => Some(NodeKind::ByPath),
            CHANGES => Some(NodeKind::Changes),
            HISTORY => Some(NodeKind::History),
            _ => self.slots.get(&ino).and_then(|s| self.unpack(ino, s)),
        }
    }

    /// The identity key of a registered node.
    pub fn key(&self, ino: u64) -> Option<u128> {
        self.slots.get(&ino).map(|s| s.key.into())
    }

    /// The kernel dropped `n` references; a node with none left is freed.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if let Some(slot) = self.slots.get_mut(&ino) {
            slot.lookups = slot.lookups.saturating_sub(n);
            if slot.lookups == 0 {
                let (key, tree) = (u128::from(slot.key), slot.tree);
                self.slots.remove(&ino);
                if let Some(homes) = self.homes.remove(&ino) {
                    self.places -= homes.as_slice().len();
                    homes.as_slice().iter().for_each(|h| self.trees.release(h.tree));
                }
                if tree == OTHER {
                    self.others.remove(&ino);
                } else {
                    self.trees.release(tree);
                }
                if ino & FALLBACK_BIT != 0 {
                    self.fallback.remove(&key);
                }
            }
        }
    }

    pub fn count(&self) -> usize {
        self.slots.len()
    }

    /// Places of files found in several snapshots, beside their slots'.
    pub fn extra_places(&self) -> usize {
        self.places
    }
}

/// Records `n`, a place of the file in `slot`, if its snapshot is new to
/// the file; returns the number of places added (0 or 1).
fn add_home(homes: &mut HashMap<u64, Homes>, trees: &mut Trees, slot: &Slot, ino: u64, n: InSnapshot) -> usize {
    let EntryAt::InTree { tree, index } = n.at else { return 0 };
    let known = homes.get(&ino).is_some_and(|hs| hs.as_slice().iter().any(|h| h.snap == n.snap.0));
    if n.snap.0 == slot.snap || known {
        return 0;
    }
    let home = Home { snap: n.snap.0, tree: trees.hold(tree), index, parent: n.parent };
    match homes.get_mut(&ino) {
        Some(hs) => hs.push(home),
        None => {
            homes.insert(ino, Homes::One(home));
        }
    }
    1
}

/// A new slot for `kind`; a node that is not an entry of a tree is kept
/// whole in `others`.
fn pack(trees: &mut Trees, others: &mut HashMap<u64, NodeKind>, key: u128, kind: NodeKind, ino: u64) -> Slot {
    let mut slot = Slot { key: key.into(), lookups: 0, parent: 0, snap: 0, tree: OTHER, index: 0, flags: 0 };
    match kind {
        NodeKind::Dir(InSnapshot { snap, at: EntryAt::InTree { tree, index }, parent, xattrs })
        | NodeKind::Leaf(InSnapshot { snap, at: EntryAt::InTree { tree, index }, parent, xattrs }) => {
            let dir = matches!(kind, NodeKind::Dir(_));
            slot.tree = trees.hold(tree);
            (slot.parent, slot.snap, slot.index) = (parent, snap.0, index);
            slot.flags = if dir { DIR } else { 0 } | if xattrs { XATTRS } else { 0 };
        }
        other => {
            others.insert(ino, other);
        }
    }
    slot
}

/// True for entries that are directories.
pub fn is_dir(e: &Entry) -> bool {
    matches!(e.node, Node::Dir { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf() -> NodeKind {
        NodeKind::Root
    }

    #[test]
    fn same_key_same_number_and_forget_frees() {
        let mut t = InodeTable::default();
        let a = t.register(42, leaf, true);
        assert_eq!(t.register(42, leaf, true), a);
        assert!(a >= FIRST_DERIVED && a & FALLBACK_BIT == 0);
        t.forget(a, 1);
        assert!(t.get(a).is_some());
        t.forget(a, 1);
        assert!(t.get(a).is_none());
    }

    fn in_tree(tree: u128, index: u32, dir: bool) -> NodeKind {
        let node = InSnapshot {
            snap: SnapshotId(9),
            at: EntryAt::InTree { tree: tree.into(), index },
            parent: 77,
            xattrs: index % 2 == 1,
        };
        if dir {
            NodeKind::Dir(node)
        } else {
            NodeKind::Leaf(node)
        }
    }

    fn same(a: &NodeKind, b: &NodeKind) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn packed_nodes_come_back_whole_and_trees_are_held_while_used() {
        let mut t = InodeTable::default();
        let kinds = [in_tree(5, 0, false), in_tree(5, 1, true), in_tree(6, 3, false), NodeKind::Latest(SnapshotId(4))];
        let inos: Vec<u64> =
            kinds.iter().enumerate().map(|(i, k)| t.register(100 + i as u128, || k.clone(), true)).collect();
        for (ino, k) in inos.iter().zip(&kinds) {
            assert!(same(&t.get(*ino).unwrap(), k), "{:?} came back as {:?}", k, t.get(*ino));
        }
        assert_eq!(t.trees.handles.len(), 2, "tree 5 is held once");
        // Tree 5's last user goes: its handle is reused for another tree,
        // and the nodes left still name their own.
        t.forget(inos[0], 1);
        t.forget(inos[1], 1);
        t.forget(inos[3], 1);
        assert!(t.others.is_empty());
        let seven = t.register(200, || in_tree(7, 2, false), true);
        assert!(same(&t.get(seven).unwrap(), &in_tree(7, 2, false)));
        assert!(same(&t.get(inos[2]).unwrap(), &kinds[2]));
        assert_eq!(t.trees.ids.len(), 2, "the freed handle was reused");
    }

    fn in_snapshot(snap: u32, tree: u128) -> NodeKind {
        let at = EntryAt::InTree { tree: tree.into(), index: 1 };
        NodeKind::Leaf(InSnapshot { snap: SnapshotId(snap), at, parent: u64::from(snap), xattrs: false })
    }

    fn place(n: &InSnapshot) -> (u32, u128) {
        let EntryAt::InTree { tree, .. } = n.at else { panic!("held") };
        (n.snap.0, tree.into())
    }

    #[test]
    fn a_file_found_in_several_snapshots_keeps_each_place_until_forgotten() {
        let mut t = InodeTable::default();
        let ino = t.register(42, || in_snapshot(1, 10), true);
        for _ in 0..3 {
            assert_eq!(t.register(42, || in_snapshot(2, 20), true), ino);
        }
        t.register(42, || in_snapshot(1, 10), true);
        let others: Vec<_> = t.other_homes(ino).iter().map(place).collect();
        assert_eq!(others, [(2, 20)], "one place per other snapshot");
        assert_eq!(t.extra_places(), 1);
        t.register(42, || in_snapshot(3, 30), true);
        assert_eq!(t.other_homes(ino).iter().map(place).collect::<Vec<_>>(), [(2, 20), (3, 30)]);
        assert_eq!(t.extra_places(), 2);
        t.rehome(ino, SnapshotId(2));
        let Some(NodeKind::Leaf(n)) = t.get(ino) else { panic!("not a leaf") };
        assert_eq!(place(&n), (2, 20));
        assert_eq!(n.parent, 2);
        assert_eq!(t.other_homes(ino).iter().map(place).collect::<Vec<_>>(), [(1, 10), (3, 30)]);
        t.forget(ino, 6);
        assert!(t.get(ino).is_none() && t.other_homes(ino).is_empty());
        assert!(t.trees.handles.is_empty() && t.homes.is_empty(), "trees of every place released");
        assert_eq!(t.extra_places(), 0);
    }

    #[test]
    fn colliding_keys_never_share_a_number() {
        let mut t = InodeTable::default();
        // Same low 63 bits, different keys.
        let k1 = 1000u128;
        let k2 = 1000u128 | (1u128 << 100);
        let a = t.register(k1, leaf, true);
        let b = t.register(k2, leaf, true);
        assert_ne!(a, b);
        assert!(b & FALLBACK_BIT != 0);
        assert_eq!(t.register(k2, leaf, true), b, "stable within a mount");
        assert_eq!(t.peek(k2), b);
        assert_eq!(t.peek(k1), a);
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// The kernel may hold a million nodes: each byte here is a megabyte.
    #[test]
    fn nodes_stay_small() {
        assert!(std::mem::size_of::<NodeKind>() <= 56, "{}", std::mem::size_of::<NodeKind>());
        assert!(std::mem::size_of::<Slot>() <= 48, "{}", std::mem::size_of::<Slot>());
    }
}
