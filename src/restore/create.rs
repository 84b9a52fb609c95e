//! Creating one restored item inside an open directory, and giving it its
//! saved metadata: ownership (as root), mode, extended attributes, times,
//! in that order (chown clears set-user-ID bits; any write changes times).
//!
//! A regular file is written under a temporary name through the
//! descriptor that created it, and gets its real name only once its
//! content is complete: a file that cannot be restored fully never exists
//! under its name. Other items are checked through an `O_PATH` descriptor
//! before they are chowned, so a name swapped for a hard link to another
//! file in the meantime is refused, never changed.

use super::content::write_content;
use super::Overwrite;
use crate::dirfd::{self, Dir, FileId};
use crate::format::tree::{Entry, Node, Xattr};
use crate::store::{BlobReader, StoreError};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why one item could not be restored (fully).
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
}

fn is_root() -> bool {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(|| dirfd::euid() == 0)
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// What was created for a regular file.
pub struct RestoredFile {
    pub bytes: u64,
    /// Metadata that could not be applied (the content is complete).
    pub metadata_error: Option<io::Error>,
    /// An equal file was there already and was left as it was.
    pub unchanged: bool,
}

fn temp_name() -> Vec<u8> {
    static N: AtomicU64 = AtomicU64::new(0);
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let pid = *PID.get_or_init(std::process::id);
    format!(".chkfs-restore-{pid}-{}", N.fetch_add(1, Ordering::Relaxed)).into_bytes()
}

/// Restores a regular file as `name` in `dir`: written as a file without a
/// name (or, where the filesystem cannot make one, under a temporary name)
/// and named only once complete.
pub fn file(
    reader: &BlobReader,
    dir: &Dir,
    entry: &Entry,
    overwrite: Overwrite,
    keep: &[FileId],
) -> Result<RestoredFile, ItemError> {
    let Node::File { content } = &entry.node else { return Err(io::Error::other("not a regular file").into()) };
    if already_there(dir, entry, overwrite)? {
        return Ok(RestoredFile { bytes: 0, metadata_error: None, unchanged: true });
    }
    let force = overwrite != Overwrite::Never;
    let mode = entry.mode & 0o777;
    // An unnamed file can be named by root, or through /proc.
    let unnamed = if is_root() || Dir::proc_available() { dir.create_unnamed(mode)? } else { None };
    let (f, tmp) = match unnamed {
        Some(f) => (f, None),
        None => {
            let tmp = temp_name();
            (dir.create_file(&tmp, mode)?, Some(tmp))
        }
    };
    let discard = |tmp: &Option<Vec<u8>>| {
        if let Some(t) = tmp {
            let _ = dir.unlink(t);
        }
    };
    if let Err(e) = write_content(reader, &f, content, entry.size) {
        discard(&tmp);
        return Err(e);
    }
    let metadata_error = file_metadata(&f, entry).err();
    let named = match &tmp {
        None => place(|| dir.link_unnamed(&f, &entry.name), dir, &entry.name, force, keep),
        Some(t) => place(|| dir.rename_noreplace(t, &entry.name), dir, &entry.name, force, keep),
    };
    if let Err(e) = named {
        discard(&tmp);
        return Err(e.into());
    }
    Ok(RestoredFile { bytes: entry.size, metadata_error, unchanged: false })
}

/// Whether an entry equal to `entry` is at its name in `dir` and is to be
/// left as it is; an error when something else is there and may not be
/// replaced. Checked again when the new entry is named (`place`), so a
/// race only turns into a conflict.
fn already_there(dir: &Dir, entry: &Entry, overwrite: Overwrite) -> io::Result<bool> {
    let same = match dir.stat_at(&entry.name) {
        Ok(st) => equal(dir, &st, entry),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
        Err(e) => return Err(e),
    };
    match overwrite {
        Overwrite::Always => Ok(false),
        Overwrite::IfChanged => Ok(same),
        Overwrite::Never if same => Ok(true),
        Overwrite::Never => Err(conflict()),
    }
}

/// Whether what `st` describes, at `entry`'s name in `dir`, equals the
/// saved entry: the same type; for a file the same size and modification
/// time; for a symlink the same target; for a device the same number.
fn equal(dir: &Dir, st: &dirfd::Stat, entry: &Entry) -> bool {
    st.file_type() == special_type(&entry.node)
        && match &entry.node {
            Node::File { .. } => st.size == entry.size && st.mtime == entry.mtime,
            Node::Symlink { target } => dir.readlink(&entry.name).is_ok_and(|t| t == *target),
            Node::CharDevice { rdev } | Node::BlockDevice { rdev } => st.rdev == *rdev,
            Node::Fifo | Node::Socket | Node::Dir { .. } => true,
        }
}

/// Whether an entry equal to `entry` is at its name in `dir`.
pub fn equal_at(dir: &Dir, entry: &Entry) -> io::Result<bool> {
    Ok(equal(dir, &dir.stat_at(&entry.name)?, entry))
}

/// Something other than the saved entry is where it belongs.
pub fn conflict() -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        "something else is there, left as it is (--overwrite if-changed or always replaces it)",
    )
}

/// Names the file with `give_name`, replacing what is in the way with
/// `force`.
fn place(
    give_name: impl Fn() -> io::Result<()>,
    dir: &Dir,
    name: &[u8],
    force: bool,
    keep: &[FileId],
) -> io::Result<()> {
    match give_name() {
        Err(e) if force && e.raw_os_error() == Some(libc::EEXIST) => {
            dir.remove_all(name, keep)?;
            give_name()
        }
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Err(conflict()),
        other => other,
    }
}

/// Ownership and mode only where they differ from what creation gave.
fn file_metadata(f: &File, entry: &Entry) -> io::Result<()> {
    let created = dirfd::fstat(f)?;
    let chown = is_root() && (created.uid != entry.uid || created.gid != entry.gid);
    if chown {
        dirfd::fchown(f, entry.uid, entry.gid)?;
    }
    if chown || created.mode & 0o7777 != entry.mode & 0o7777 {
        dirfd::fchmod(f, entry.mode & 0o7777)?;
    }
    set_xattrs_fd(f, &entry.xattrs)?;
    dirfd::set_times(f, entry.mtime)
}

fn set_xattrs_fd(f: &File, xattrs: &[Xattr]) -> io::Result<()> {
    use xattr::FileExt;
    for x in xattrs {
        f.set_xattr(std::ffi::OsStr::from_bytes(&x.name), &x.value)?;
    }
    Ok(())
}

/// Creates a symlink, fifo, socket or device node, with its metadata.
/// Returns true when an equal one was there already and left as it was.
pub fn special(dir: &Dir, entry: &Entry, overwrite: Overwrite, keep: &[FileId]) -> io::Result<bool> {
    if already_there(dir, entry, overwrite)? {
        return Ok(true);
    }
    match make_special(dir, entry) {
        Err(e) if overwrite != Overwrite::Never && e.raw_os_error() == Some(libc::EEXIST) => {
            dir.remove_all(&entry.name, keep)?;
            make_special(dir, entry)?;
        }
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Err(conflict()),
        other => other?,
    }
    special_metadata(dir, entry).map(|()| false)
}

fn make_special(dir: &Dir, entry: &Entry) -> io::Result<()> {
    let perm = entry.mode & 0o7777;
    match &entry.node {
        Node::Symlink { target } => dir.symlink(target, &entry.name),
        Node::Fifo => dir.mknod(&entry.name, libc::S_IFIFO, perm, 0),
        Node::Socket => dir.mknod(&entry.name, libc::S_IFSOCK, perm, 0),
        Node::CharDevice { rdev } => dir.mknod(&entry.name, libc::S_IFCHR, perm, *rdev),
        Node::BlockDevice { rdev } => dir.mknod(&entry.name, libc::S_IFBLK, perm, *rdev),
        Node::File { .. } | Node::Dir { .. } => Err(io::Error::other("not a special file")),
    }
}

fn special_type(node: &Node) -> u32 {
    match node {
        Node::Symlink { .. } => libc::S_IFLNK,
        Node::Fifo => libc::S_IFIFO,
        Node::Socket => libc::S_IFSOCK,
        Node::CharDevice { .. } => libc::S_IFCHR,
        Node::BlockDevice { .. } => libc::S_IFBLK,
        Node::File { .. } => libc::S_IFREG,
        Node::Dir { .. } => libc::S_IFDIR,
    }
}

fn special_metadata(dir: &Dir, entry: &Entry) -> io::Result<()> {
    let name = entry.name.as_slice();
    // The item just created, checked: the right type, one name only.
    let fd = rfs::openat(dir, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()).map_err(errno)?;
    let st = dirfd::Stat::from_rustix(&rfs::fstat(&fd).map_err(errno)?);
    if st.file_type() != special_type(&entry.node) || st.nlink != 1 {
        return Err(io::Error::other("it was replaced by something else while being restored"));
    }
    if is_root() && (st.uid != entry.uid || st.gid != entry.gid) {
        let (u, g) = (Some(rfs::Uid::from_raw(entry.uid)), Some(rfs::Gid::from_raw(entry.gid)));
        rfs::chownat(&fd, "", u, g, AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
    }
    if !Dir::proc_available() {
        if !entry.xattrs.is_empty() {
            return Err(io::Error::other("extended attributes not restored: /proc is not mounted"));
        }
        return dir.set_times_at(name, entry.mtime);
    }
    // An O_PATH descriptor takes no fchmod, fsetxattr or futimens; its
    // /proc link leads to exactly its inode (a symlink itself, not what it
    // points to), whatever is at the name by now.
    use std::os::fd::AsRawFd;
    let own = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let is_symlink = matches!(entry.node, Node::Symlink { .. });
    if !is_symlink && dirfd::Stat::from_rustix(&rfs::fstat(&fd).map_err(errno)?).mode & 0o7777 != entry.mode {
        rfs::chmod(own.as_str(), Mode::from_raw_mode(entry.mode & 0o7777)).map_err(errno)?;
    }
    for x in &entry.xattrs {
        let set = rfs::setxattr(own.as_str(), x.name.as_slice(), &x.value, rfs::XattrFlags::empty());
        match set {
            // Linux refuses user.* attributes on symlinks.
            Err(rustix::io::Errno::PERM) if is_symlink => {}
            other => other.map_err(errno)?,
        }
    }
    let t = dirfd::timespec(entry.mtime);
    rfs::utimensat(rfs::CWD, own.as_str(), &rfs::Timestamps { last_access: t, last_modification: t }, AtFlags::empty())
        .map_err(errno)
}

/// A directory's own metadata, through its open descriptor.
pub fn dir_metadata(dir: &Dir, entry: &Entry) -> io::Result<()> {
    let f = dir.as_file()?;
    if is_root() {
        dirfd::fchown(&f, entry.uid, entry.gid)?;
    }
    dirfd::fchmod(&f, entry.mode & 0o7777)?;
    set_xattrs_fd(&f, &entry.xattrs)?;
    dirfd::set_times(&f, entry.mtime)
}

/// Creates directory `name` in `dir` (owner-only while it is filled) and
/// opens it. One that exists already is used if it is a directory; with
/// `overwrite` other than never, anything else is replaced. A directory
/// chkfs created must be owned by it: another owner means someone swapped
/// in their own.
pub fn directory(dir: &Dir, name: &[u8], overwrite: Overwrite, keep: &[FileId]) -> io::Result<Dir> {
    match dir.mkdir(name, 0o700) {
        Ok(()) => {
            let d = dir.child(name)?;
            let st = d.stat()?;
            if st.uid != dirfd::euid() || st.mode & 0o077 != 0 {
                return Err(io::Error::other("it was replaced by another directory while being restored"));
            }
            Ok(d)
        }
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            let st = dir.stat_at(name)?;
            if keep.contains(&st.id()) {
                return Err(io::Error::other("it is (part of) the repository, which is never restored into"));
            }
            if st.is_dir() {
                let d = dir.child(name)?;
                if d.stat()?.id() != st.id() {
                    return Err(crate::dirfd::cursor::replaced());
                }
                return Ok(d);
            }
            if overwrite == Overwrite::Never {
                return Err(conflict());
            }
            dir.remove_all(name, keep)?;
            dir.mkdir(name, 0o700)?;
            dir.child(name)
        }
        Err(e) => Err(e),
    }
}
