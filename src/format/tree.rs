//! Tree objects: one per directory, listing its entries sorted by name.
//! A tree is a blob like any chunk: content-addressed, so an unchanged
//! directory is stored once and shared by every snapshot that contains it.

use super::envelope::{decode_payload, open_envelope, open_envelope_of, seal_envelope, ObjectKind};
use super::records::Timestamp;
use super::{BlobId, FormatError};
use xxhash_rust::xxh3::xxh3_64;

#[derive(Debug, Clone, PartialEq, Eq, Default, bitcode::Encode, bitcode::Decode)]
pub struct Tree {
    /// Sorted by name (raw bytes), names unique.
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub struct Entry {
    /// Raw bytes: names need not be UTF-8.
    pub name: Vec<u8>,
    pub node: Node,
    /// Permission bits including setuid, setgid and sticky (st_mode & 0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// st_blocks of the source, in 512-byte units.
    pub blocks: u64,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    /// Source inode number: with size, mtime and ctime it tells a later
    /// save that the file is unchanged.
    pub inode: u64,
    /// Set when the source had several names for this inode.
    pub hard_link: Option<HardLink>,
    pub xattrs: Vec<Xattr>,
}

#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub enum Node {
    File { content: Vec<Extent> },
    Dir { tree: BlobId },
    Symlink { target: Vec<u8> },
    Fifo,
    Socket,
    CharDevice { rdev: u64 },
    BlockDevice { rdev: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub enum Extent {
    Data {
        id: BlobId,
        len: u32,
    },
    /// A hole of a sparse file: reads as zeros, nothing stored.
    Hole {
        len: u64,
    },
}

impl Extent {
    pub fn len(&self) -> u64 {
        match *self {
            Extent::Data { len, .. } => u64::from(len),
            Extent::Hole { len } => len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, bitcode::Encode, bitcode::Decode)]
pub struct HardLink {
    /// Identifies the group within one snapshot.
    pub group: u64,
    /// Number of names the group has within the snapshot.
    pub nlink: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

impl Entry {
    /// An entry of `node` named `name`, every other field zero: for tests.
    #[cfg(test)]
    pub fn bare(name: &[u8], node: Node) -> Entry {
        Entry {
            name: name.to_vec(),
            node,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            blocks: 0,
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            inode: 0,
            hard_link: None,
            xattrs: Vec::new(),
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self.node {
            Node::File { .. } => "file",
            Node::Dir { .. } => "dir",
            Node::Symlink { .. } => "symlink",
            Node::Fifo => "fifo",
            Node::Socket => "socket",
            Node::CharDevice { .. } => "char device",
            Node::BlockDevice { .. } => "block device",
        }
    }
}

impl Tree {
    /// About how much memory the decoded tree takes, for caches that must
    /// stay within a budget.
    pub fn memory_size(&self) -> u64 {
        let entry = |e: &Entry| {
            let extents = match &e.node {
                Node::File { content } => content.len() as u64,
                _ => 0,
            };
            let xattrs: u64 = e.xattrs.iter().map(|x| 48 + (x.name.len() + x.value.len()) as u64).sum();
            std::mem::size_of::<Entry>() as u64 + e.name.len() as u64 + 32 * extents + xattrs
        };
        64 + self.entries.iter().map(entry).sum::<u64>()
    }

    pub fn find(&self, name: &[u8]) -> Option<&Entry> {
        self.position(name).map(|i| &self.entries[i])
    }

    /// The index of the entry named `name`.
    pub fn position(&self, name: &[u8]) -> Option<usize> {
        self.entries.binary_search_by(|e| e.name.as_slice().cmp(name)).ok()
    }
}

pub fn encode_tree(tree: &Tree) -> Result<Vec<u8>, FormatError> {
    seal_envelope(ObjectKind::Tree, &bitcode::encode(tree))
}

/// Longest name a Linux filesystem accepts.
pub const NAME_MAX: usize = 255;
/// Longest symlink target Linux accepts.
pub const TARGET_MAX: usize = 4095;

/// Decodes a tree and checks what later code relies on: sorted, unique,
/// well-formed names, and well-formed entries (see [`validate_entry`]).
pub fn decode_tree(bytes: &[u8]) -> Result<Tree, FormatError> {
    validate_tree(decode_payload("tree", open_envelope(ObjectKind::Tree, bytes)?)?)
}

fn validate_tree(tree: Tree) -> Result<Tree, FormatError> {
    for pair in tree.entries.windows(2) {
        if pair[0].name >= pair[1].name {
            return Err(invalid("entries are not sorted or not unique"));
        }
    }
    for e in &tree.entries {
        validate_entry(e, false)?;
    }
    Ok(tree)
}

/// What every entry must be: a name a filesystem accepts (the root's is
/// empty), times in range, permission bits only, file extents that are
/// not empty and add up to the size, a symlink target Linux accepts,
/// xattrs sorted and unique by name, hard links only on files.
pub fn validate_entry(e: &Entry, is_root: bool) -> Result<(), FormatError> {
    let name_ok = if is_root { e.name.is_empty() } else { valid_name(&e.name) };
    if !name_ok {
        return Err(invalid("an entry has an invalid name"));
    }
    if !(valid_time(e.mtime) && valid_time(e.ctime)) {
        return Err(invalid("an entry has an impossible time"));
    }
    if e.mode & !0o7777 != 0 {
        return Err(invalid("an entry has mode bits beyond the permissions"));
    }
    match &e.node {
        Node::File { content } => {
            if content.iter().any(Extent::is_empty) {
                return Err(invalid("a file has an empty extent"));
            }
            let total = content.iter().try_fold(0u64, |acc, x| acc.checked_add(x.len()));
            if total != Some(e.size) {
                return Err(invalid("a file's extents do not add up to its size"));
            }
        }
        Node::Symlink { target } if target.is_empty() || target.len() > TARGET_MAX || target.contains(&0) => {
            return Err(invalid("a symlink has an invalid target"));
        }
        _ => {}
    }
    match e.hard_link {
        Some(l) if !matches!(e.node, Node::File { .. }) || l.nlink < 2 => {
            return Err(invalid("a hard link that is not a file or has fewer than two names"));
        }
        _ => {}
    }
    let xattrs_sorted = e.xattrs.windows(2).all(|p| p[0].name < p[1].name);
    let xattr_names_valid = e.xattrs.iter().all(|x| !x.name.is_empty() && !x.name.contains(&0));
    if !(xattrs_sorted && xattr_names_valid) {
        return Err(invalid("an entry's extended attributes are not sorted, unique and well named"));
    }
    Ok(())
}

/// A name a Linux filesystem accepts for a directory entry.
fn valid_name(name: &[u8]) -> bool {
    !(name.is_empty()
        || name == b"."
        || name == b".."
        || name.len() > NAME_MAX
        || name.contains(&b'/')
        || name.contains(&0))
}

/// Nanoseconds below one second, and seconds within ±10,000 years.
pub fn valid_time(t: Timestamp) -> bool {
    t.nanos < 1_000_000_000 && t.secs.unsigned_abs() < 10_000 * 366 * 86400
}

fn invalid(detail: &str) -> FormatError {
    FormatError::Invalid { what: "tree", detail: detail.into() }
}

// ------------------------------------------------------------ split trees

/// A directory too large for one tree object (version 2): its entries in
/// consecutive parts, each an ordinary tree, so that a reader holds and
/// decodes only the parts it needs, and a save rewrites only the parts
/// that changed.
#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub struct SplitTree {
    /// In name order; at least two.
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub struct Part {
    /// The name of the part's first entry.
    pub first: Vec<u8>,
    /// How many entries the part has (at least one).
    pub entries: u32,
    /// The part: a tree blob of envelope kind 5.
    pub tree: BlobId,
}

/// What a directory's tree id names: one tree, or a tree split in parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeObject {
    Whole(Tree),
    Split(SplitTree),
}

/// Directories with more entries are split by [`split_entries`].
pub const SPLIT_ABOVE: usize = 8192;
/// Bounds of a part made by [`split_entries`]; readers accept any size.
const PART_MIN: usize = 512;
const PART_MAX: usize = 8192;
/// A part ends after a name whose hash has these bits zero (past
/// PART_MIN): 2,048 entries on average. Cuts depend on names only, so a
/// file added, removed or changed rewrites one part, not the ones after.
const CUT_MASK: u64 = 2047;

/// The entries of a directory cut into the parts of a split tree; one
/// part (the entries themselves) for a directory of up to [`SPLIT_ABOVE`].
pub fn split_entries(entries: Vec<Entry>) -> Vec<Tree> {
    if entries.len() <= SPLIT_ABOVE {
        return vec![Tree { entries }];
    }
    let mut parts = Vec::new();
    let mut current = Vec::with_capacity(PART_MAX);
    for e in entries {
        let cut = current.len() + 1 >= PART_MAX || (current.len() + 1 >= PART_MIN && xxh3_64(&e.name) & CUT_MASK == 0);
        current.push(e);
        if cut {
            parts.push(Tree { entries: std::mem::replace(&mut current, Vec::with_capacity(PART_MAX)) });
        }
    }
    if !current.is_empty() {
        parts.push(Tree { entries: current });
    }
    parts
}

impl SplitTree {
    /// Entries in all parts together.
    pub fn entry_count(&self) -> u64 {
        self.parts.iter().map(|p| u64::from(p.entries)).sum()
    }

    /// The part that would hold `name`.
    pub fn part_for(&self, name: &[u8]) -> Option<usize> {
        self.parts.partition_point(|p| p.first.as_slice() <= name).checked_sub(1)
    }

    /// Checks that `tree` is part `k` as this split tree describes it: its
    /// count, its first name, and its last name below the next part's
    /// first, so the parts together are sorted and unique.
    pub fn check_part(&self, k: usize, tree: &Tree) -> Result<(), FormatError> {
        let part = self.parts.get(k).ok_or_else(|| split_invalid("no such part"))?;
        let (Some(first), Some(last)) = (tree.entries.first(), tree.entries.last()) else {
            return Err(split_invalid("a part is empty"));
        };
        if tree.entries.len() as u64 != u64::from(part.entries) {
            return Err(split_invalid("a part has another number of entries than its split tree says"));
        }
        if first.name != part.first {
            return Err(split_invalid("a part starts with another name than its split tree says"));
        }
        if self.parts.get(k + 1).is_some_and(|next| last.name >= next.first) {
            return Err(split_invalid("a part reaches into the next one"));
        }
        Ok(())
    }

    /// About how much memory the decoded split tree takes.
    pub fn memory_size(&self) -> u64 {
        64 + self.parts.iter().map(|p| std::mem::size_of::<Part>() as u64 + p.first.len() as u64).sum::<u64>()
    }
}

/// A split tree with the position of each part's first entry, so that a
/// listing resumes in the part of an offset by binary search (a forged
/// split tree of millions of one-entry parts would make a scan per call
/// quadratic).
#[derive(Debug, Clone)]
pub struct IndexedSplit {
    split: SplitTree,
    starts: Vec<u64>,
}

impl IndexedSplit {
    pub fn new(split: SplitTree) -> Self {
        let starts = split
            .parts
            .iter()
            .scan(0u64, |next, p| {
                let start = *next;
                *next += u64::from(p.entries);
                Some(start)
            })
            .collect();
        IndexedSplit { split, starts }
    }

    /// The part holding entry `position` of the directory, and the
    /// position of that part's first entry.
    pub fn part_at(&self, position: u64) -> Option<(usize, u64)> {
        let k = self.starts.partition_point(|&s| s <= position).checked_sub(1)?;
        (position < self.starts[k] + u64::from(self.split.parts[k].entries)).then(|| (k, self.starts[k]))
    }

    pub fn memory_size(&self) -> u64 {
        self.split.memory_size() + 8 * self.starts.len() as u64
    }
}

impl std::ops::Deref for IndexedSplit {
    type Target = SplitTree;
    fn deref(&self) -> &SplitTree {
        &self.split
    }
}

pub fn encode_split_tree(split: &SplitTree) -> Result<Vec<u8>, FormatError> {
    seal_envelope(ObjectKind::SplitTree, &bitcode::encode(split))
}

/// Decodes a split tree and checks it: at least two parts, first names
/// well formed and increasing, no empty part, at most 2^32 - 1 entries.
pub fn decode_split_tree(bytes: &[u8]) -> Result<SplitTree, FormatError> {
    validate_split(decode_payload("split tree", open_envelope(ObjectKind::SplitTree, bytes)?)?)
}

fn validate_split(split: SplitTree) -> Result<SplitTree, FormatError> {
    if split.parts.len() < 2 {
        return Err(split_invalid("fewer than two parts"));
    }
    if split.parts.iter().any(|p| p.entries == 0 || !valid_name(&p.first)) {
        return Err(split_invalid("a part is empty or its first name is invalid"));
    }
    if split.parts.windows(2).any(|w| w[0].first >= w[1].first) {
        return Err(split_invalid("parts are not in name order"));
    }
    if split.entry_count() > u64::from(u32::MAX) {
        return Err(split_invalid("more than 2^32 - 1 entries"));
    }
    Ok(split)
}

/// Decodes what a directory's tree id names: a tree or a split tree.
pub fn decode_tree_object(bytes: &[u8]) -> Result<TreeObject, FormatError> {
    match open_envelope_of(&[ObjectKind::Tree, ObjectKind::SplitTree], bytes)? {
        (ObjectKind::SplitTree, payload) => {
            Ok(TreeObject::Split(validate_split(decode_payload("split tree", payload)?)?))
        }
        (_, payload) => Ok(TreeObject::Whole(validate_tree(decode_payload("tree", payload)?)?)),
    }
}

fn split_invalid(detail: &str) -> FormatError {
    FormatError::Invalid { what: "split tree", detail: detail.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &[u8]) -> Entry {
        Entry::bare(name, Node::Fifo)
    }

    fn names(n: usize) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = (0..n).map(|i| format!("file-{i:07}.txt").into_bytes()).collect();
        v.sort();
        v
    }

    fn entries(names: &[Vec<u8>]) -> Vec<Entry> {
        names.iter().map(|n| entry(n)).collect()
    }

    fn split_of(parts: &[Tree]) -> SplitTree {
        let part = |(i, t): (usize, &Tree)| Part {
            first: t.entries[0].name.clone(),
            entries: t.entries.len() as u32,
            tree: BlobId(i as u128),
        };
        SplitTree { parts: parts.iter().enumerate().map(part).collect() }
    }

    #[test]
    fn small_directories_stay_whole_and_large_ones_split_within_bounds() {
        assert_eq!(split_entries(entries(&names(SPLIT_ABOVE))).len(), 1);
        let all = names(100_000);
        let parts = split_entries(entries(&all));
        assert!(parts.len() > 20 && parts.len() < 200, "{} parts", parts.len());
        assert!(parts.iter().all(|p| !p.entries.is_empty() && p.entries.len() <= PART_MAX));
        assert!(parts[..parts.len() - 1].iter().all(|p| p.entries.len() >= PART_MIN));
        let joined: Vec<Vec<u8>> = parts.iter().flat_map(|p| p.entries.iter().map(|e| e.name.clone())).collect();
        assert_eq!(joined, all, "the parts hold every entry, in order");
    }

    #[test]
    fn a_name_added_or_removed_changes_one_or_two_parts() {
        let all = names(50_000);
        let before = split_entries(entries(&all));
        let mut fewer = all.clone();
        fewer.remove(25_000);
        let mut more = all.clone();
        more.insert(10_000, b"file-0009999.txt-new".to_vec());
        for changed in [fewer, more] {
            let after = split_entries(entries(&changed));
            let new = after.iter().filter(|p| !before.contains(p)).count();
            assert!(new <= 2, "{new} parts changed of {}", after.len());
        }
    }

    #[test]
    fn split_trees_round_trip_and_find_their_parts() {
        let parts = split_entries(entries(&names(30_000)));
        let split = split_of(&parts);
        let bytes = encode_split_tree(&split).unwrap();
        assert_eq!(decode_split_tree(&bytes).unwrap(), split);
        assert_eq!(decode_tree_object(&bytes).unwrap(), TreeObject::Split(split.clone()));
        let split = IndexedSplit::new(split);
        let whole = encode_tree(&parts[0]).unwrap();
        assert_eq!(decode_tree_object(&whole).unwrap(), TreeObject::Whole(parts[0].clone()));
        assert!(decode_tree(&bytes).is_err(), "a split tree is not a tree");
        assert_eq!(split.entry_count(), 30_000);
        let mut start = 0u64;
        for (k, p) in parts.iter().enumerate() {
            split.check_part(k, p).unwrap();
            assert_eq!(split.part_at(start), Some((k, start)));
            for e in [&p.entries[0], p.entries.last().unwrap()] {
                assert_eq!(split.part_for(&e.name), Some(k));
            }
            start += p.entries.len() as u64;
        }
        assert_eq!(split.part_at(start), None);
        assert_eq!(split.part_for(b"a"), None, "a name before every part");
    }

    #[test]
    fn the_part_of_a_position_is_found_by_its_start() {
        let part =
            |(i, &entries): (usize, &u32)| Part { first: vec![b'a' + i as u8], entries, tree: BlobId(i as u128) };
        let split = IndexedSplit::new(SplitTree { parts: [3u32, 1, 5, 2].iter().enumerate().map(part).collect() });
        let want = |p: u64| match p {
            0..=2 => Some((0, 0)),
            3 => Some((1, 3)),
            4..=8 => Some((2, 4)),
            9..=10 => Some((3, 9)),
            _ => None,
        };
        for position in 0..14 {
            assert_eq!(split.part_at(position), want(position), "position {position}");
        }
    }

    #[test]
    fn parts_that_disagree_with_their_split_tree_are_refused() {
        let parts = split_entries(entries(&names(30_000)));
        let split = split_of(&parts);
        let mut short = parts[1].clone();
        short.entries.pop();
        let mut overlapping = parts[1].clone();
        overlapping.entries.push(parts[2].entries[0].clone());
        let mut late = parts[1].clone();
        late.entries.remove(0);
        for (k, bad) in [(1, short), (1, overlapping), (1, late), (0, parts[1].clone()), (1, Tree::default())] {
            assert!(split.check_part(k, &bad).is_err());
        }
        assert!(split.check_part(parts.len(), &parts[0]).is_err());
    }

    #[test]
    fn malformed_split_trees_are_refused() {
        let parts = split_entries(entries(&names(30_000)));
        let good = split_of(&parts);
        let mut one = good.clone();
        one.parts.truncate(1);
        let mut unsorted = good.clone();
        unsorted.parts.swap(0, 1);
        let mut empty = good.clone();
        empty.parts[0].entries = 0;
        let mut bad_name = good.clone();
        bad_name.parts[0].first = b"a/b".to_vec();
        let mut huge = good.clone();
        huge.parts.iter_mut().for_each(|p| p.entries = u32::MAX);
        for bad in [one, unsorted, empty, bad_name, huge] {
            let bytes = encode_split_tree(&bad).unwrap();
            assert!(matches!(decode_split_tree(&bytes), Err(FormatError::Invalid { .. })), "{bad:?}");
        }
    }
}
