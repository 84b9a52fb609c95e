//! What a save records of a file besides its content: lstat fields and
//! extended attributes, turned into a tree entry.

pub use crate::dirfd::Stat;
use crate::format::tree::{Entry, Node, Xattr};
use std::fs::File;
use std::io;
use std::path::Path;

/// Allocated space below the size means holes worth looking for.
pub fn may_be_sparse(st: &Stat) -> bool {
    st.blocks.saturating_mul(512) < st.size
}

/// The entry for a stat, with the given name and node.
pub fn to_entry(st: &Stat, name: Vec<u8>, node: Node, xattrs: Vec<Xattr>) -> Entry {
    Entry {
        name,
        node,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        size: st.size,
        blocks: st.blocks,
        mtime: st.mtime,
        ctime: st.ctime,
        inode: st.ino,
        hard_link: None,
        xattrs,
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
    collect(names, |name| xattr::get(path, name))
}

/// Extended attributes of an open file or directory.
pub fn read_xattrs_fd(file: &File) -> io::Result<Vec<Xattr>> {
    use xattr::FileExt;
    let names = match file.list_xattr() {
        Ok(names) => names,
        Err(e) if is_unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    collect(names, |name| file.get_xattr(name))
}

fn collect(
    names: impl Iterator<Item = std::ffi::OsString>,
    get: impl Fn(&std::ffi::OsStr) -> io::Result<Option<Vec<u8>>>,
) -> io::Result<Vec<Xattr>> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for name in names {
        match get(&name) {
            Ok(Some(value)) => out.push(Xattr { name: name.as_bytes().to_vec(), value }),
            Ok(None) => {}
            Err(e) if is_unsupported(&e) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENODATA))
}
