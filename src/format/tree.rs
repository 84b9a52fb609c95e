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
    pub fn find(&self, name: &[u8]) -> Option<&Entry> {
        self.entries.binary_search_by(|e| e.name.as_slice().cmp(name)).ok().map(|i| &self.entries[i])
    }
}

pub fn encode_tree(tree: &Tree) -> Vec<u8> {
    seal_envelope(ObjectKind::Tree, &bitcode::encode(tree))
}

/// Decodes a tree and checks what later code relies on: sorted, unique,
/// well-formed names, and file extents that add up to the file size.
pub fn decode_tree(bytes: &[u8]) -> Result<Tree, FormatError> {
    let tree: Tree = decode_payload("tree", open_envelope(ObjectKind::Tree, bytes)?)?;
    for pair in tree.entries.windows(2) {
        if pair[0].name >= pair[1].name {
            return Err(invalid("entries are not sorted or not unique"));
        }
    }
    for e in &tree.entries {
        let bad_name =
            e.name.is_empty() || e.name == b"." || e.name == b".." || e.name.contains(&b'/') || e.name.contains(&0);
        if bad_name {
            return Err(invalid("an entry has an invalid name"));
        }
        if !(valid_time(e.mtime) && valid_time(e.ctime)) {
            return Err(invalid("an entry has an impossible time"));
        }
        if let Node::File { content } = &e.node {
            let total = content.iter().try_fold(0u64, |acc, x| acc.checked_add(x.len()));
            if total != Some(e.size) {
                return Err(invalid("a file's extents do not add up to its size"));
            }
        }
    }
    Ok(tree)
}

/// Nanoseconds below one second, and seconds within ±10,000 years.
pub fn valid_time(t: Timestamp) -> bool {
    t.nanos < 1_000_000_000 && t.secs.unsigned_abs() < 10_000 * 366 * 86400
}

fn invalid(detail: &str) -> FormatError {
    FormatError::Invalid { what: "tree", detail: detail.into() }
}
