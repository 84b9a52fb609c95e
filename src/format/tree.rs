//! Tree objects: one per directory, listing its entries sorted by name.
//! A tree is a blob like any chunk: content-addressed, so an unchanged
//! directory is stored once and shared by every snapshot that contains it.

use super::envelope::{decode_payload, open_envelope, seal_envelope, ObjectKind};
use super::records::Timestamp;
use super::{BlobId, FormatError};

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
    let tree: Tree = decode_payload("tree", open_envelope(ObjectKind::Tree, bytes)?)?;
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
    let bad_name = e.name.is_empty()
        || e.name == b"."
        || e.name == b".."
        || e.name.len() > NAME_MAX
        || e.name.contains(&b'/')
        || e.name.contains(&0);
    let name_ok = if is_root { e.name.is_empty() } else { !bad_name };
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

/// Nanoseconds below one second, and seconds within ±10,000 years.
pub fn valid_time(t: Timestamp) -> bool {
    t.nanos < 1_000_000_000 && t.secs.unsigned_abs() < 10_000 * 366 * 86400
}

fn invalid(detail: &str) -> FormatError {
    FormatError::Invalid { what: "tree", detail: detail.into() }
}
