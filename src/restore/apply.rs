//! Creating special files and applying saved metadata to a restored path.

use crate::format::tree::{Entry, Node};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use xattr::FileExt;

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::other("path contains a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// With `force`, removes whatever is at `path`.
pub fn make_way(path: &Path, force: bool) -> io::Result<()> {
    if !force {
        return Ok(());
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates a symlink, fifo, socket or device node.
pub fn create_special(path: &Path, node: &Node, mode: u32) -> io::Result<()> {
    let c = cpath(path)?;
    let perm = (mode & 0o7777) as libc::mode_t;
    // SAFETY: `c` is a valid NUL-terminated path for the calls below.
    let rc = unsafe {
        match node {
            Node::Symlink { target } => {
                let t =
                    CString::new(target.clone()).map_err(|_| io::Error::other("symlink target contains a NUL byte"))?;
                libc::symlink(t.as_ptr(), c.as_ptr())
            }
            Node::Fifo => libc::mkfifo(c.as_ptr(), perm),
            Node::Socket => libc::mknod(c.as_ptr(), libc::S_IFSOCK | perm, 0),
            Node::CharDevice { rdev } => libc::mknod(c.as_ptr(), libc::S_IFCHR | perm, *rdev as libc::dev_t),
            Node::BlockDevice { rdev } => libc::mknod(c.as_ptr(), libc::S_IFBLK | perm, *rdev as libc::dev_t),
            Node::File { .. } | Node::Dir { .. } => return Err(io::Error::other("not a special file")),
        }
    };
    check(rc)
}

fn is_root() -> bool {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: geteuid has no preconditions.
    *ROOT.get_or_init(|| unsafe { libc::geteuid() == 0 })
}

fn times(entry: &Entry) -> [libc::timespec; 2] {
    let t = libc::timespec { tv_sec: entry.mtime.secs as libc::time_t, tv_nsec: entry.mtime.nanos as libc::c_long };
    [t, t]
}

/// Ownership (when root), mode, xattrs, then times, in that order.
pub fn apply_metadata(path: &Path, entry: &Entry) -> io::Result<()> {
    let c = cpath(path)?;
    let is_symlink = matches!(entry.node, Node::Symlink { .. });
    if is_root() {
        // SAFETY: valid path; lchown does not follow symlinks.
        check(unsafe { libc::lchown(c.as_ptr(), entry.uid, entry.gid) })?;
    }
    if !is_symlink {
        // SAFETY: valid path.
        check(unsafe { libc::chmod(c.as_ptr(), entry.mode as libc::mode_t) })?;
    }
    for x in &entry.xattrs {
        let name = std::ffi::OsStr::from_bytes(&x.name);
        if let Err(e) = xattr::set(path, name, &x.value) {
            // Linux refuses user.* attributes on symlinks.
            let refused_on_symlink = is_symlink && e.raw_os_error() == Some(libc::EPERM);
            if !refused_on_symlink {
                return Err(e);
            }
        }
    }
    let times = times(entry);
    // SAFETY: valid path and a two-element timespec array.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
}

/// [`apply_metadata`] for a regular file through its open descriptor,
/// which spares the path lookups; ownership and mode are only changed
/// where the created file differs (usually it does not).
pub fn apply_file_metadata(file: &File, entry: &Entry) -> io::Result<()> {
    let fd = file.as_raw_fd();
    let created = file.metadata()?;
    let chown = is_root() && (created.uid() != entry.uid || created.gid() != entry.gid);
    if chown {
        // SAFETY: `fd` is open for the duration of these calls.
        check(unsafe { libc::fchown(fd, entry.uid, entry.gid) })?;
    }
    // chown clears set-user-ID and set-group-ID bits.
    if chown || created.mode() & 0o7777 != entry.mode & 0o7777 {
        // SAFETY: as above.
        check(unsafe { libc::fchmod(fd, entry.mode as libc::mode_t) })?;
    }
    for x in &entry.xattrs {
        file.set_xattr(std::ffi::OsStr::from_bytes(&x.name), &x.value)?;
    }
    let times = times(entry);
    // SAFETY: as above, with a two-element timespec array.
    check(unsafe { libc::futimens(fd, times.as_ptr()) })
}
