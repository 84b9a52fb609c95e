//! What `stat` shows for a node, independent of fuser.

use crate::format::records::Timestamp;
use crate::format::tree::{Entry, Node};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// 512-byte units, as the source reported.
    pub blocks: u64,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub rdev: u64,
}

pub fn kind_of(node: &Node) -> Kind {
    match node {
        Node::File { .. } => Kind::File,
        Node::Dir { .. } => Kind::Dir,
        Node::Symlink { .. } => Kind::Symlink,
        Node::Fifo => Kind::Fifo,
        Node::Socket => Kind::Socket,
        Node::CharDevice { .. } => Kind::CharDevice,
        Node::BlockDevice { .. } => Kind::BlockDevice,
    }
}

/// The attributes of a saved entry.
pub fn entry_attr(ino: u64, e: &Entry) -> Attr {
    let (size, rdev) = match &e.node {
        Node::Symlink { target } => (target.len() as u64, 0),
        Node::CharDevice { rdev } | Node::BlockDevice { rdev } => (e.size, *rdev),
        _ => (e.size, 0),
    };
    let nlink = match (&e.node, e.hard_link) {
        // Unknown subdirectory count: 1 tells find not to rely on it.
        (Node::Dir { .. }, _) => 1,
        (_, Some(link)) => link.nlink,
        _ => 1,
    };
    Attr {
        ino,
        kind: kind_of(&e.node),
        perm: (e.mode & 0o7777) as u16,
        nlink,
        uid: e.uid,
        gid: e.gid,
        size,
        blocks: e.blocks,
        mtime: e.mtime,
        ctime: e.ctime,
        rdev,
    }
}
