//! What a save records of a file besides its content: lstat fields and
//! extended attributes, turned into a tree entry.

use crate::format::records::Timestamp;
use crate::format::tree::{Entry, Node, Xattr};
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The lstat fields a save uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub blocks: u64,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub ino: u64,
    pub dev: u64,
    pub nlink: u64,
    pub rdev: u64,
}

impl Stat {
    pub fn from_metadata(m: &Metadata) -> Stat {
        Stat {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            blocks: m.blocks(),
            mtime: Timestamp { secs: m.mtime(), nanos: m.mtime_nsec() as u32 },
            ctime: Timestamp { secs: m.ctime(), nanos: m.ctime_nsec() as u32 },
            ino: m.ino(),
            dev: m.dev(),
            nlink: m.nlink(),
            rdev: m.rdev(),
        }
    }

    pub fn file_type(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    /// Allocated space below the size means holes worth looking for.
    pub fn may_be_sparse(&self) -> bool {
        self.blocks.saturating_mul(512) < self.size
    }

    /// The entry for this stat, with the given name and node.
    pub fn to_entry(&self, name: Vec<u8>, node: Node, xattrs: Vec<Xattr>) -> Entry {
        Entry {
            name,
            node,
            mode: self.mode & 0o7777,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            blocks: self.blocks,
            mtime: self.mtime,
            ctime: self.ctime,
            inode: self.ino,
            hard_link: None,
            xattrs,
        }
    }
}

/// Extended attributes of `path` itself (symlinks are not followed),
/// sorted by name. A filesystem without xattr support has none.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<Xattr>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if is_unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        use std::os::unix::ffi::OsStrExt;
        match xattr::get(path, &name) {
            Ok(Some(value)) => out.push(Xattr { name: name.as_bytes().to_vec(), value }),
            Ok(None) => {}
            Err(e) if is_unsupported(&e) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENODATA))
}
