//! Filesystem access through directory descriptors.
//!
//! Save reads trees that other users can write, and restore writes into
//! directories that other users may write: a path that is resolved twice
//! can lead somewhere else the second time (a directory swapped for a
//! symlink between two calls). So every operation here is relative to an
//! open directory, on one name, never following a symlink: `openat` with
//! `O_NOFOLLOW`, `*at` calls with `AT_SYMLINK_NOFOLLOW`. Directories are
//! identified by device and inode, and [`cursor::Cursor`] checks that
//! identity at every step it takes through a tree.

pub mod cursor;
pub mod path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use crate::format::records::Timestamp;

/// The lstat fields chkfs uses.
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
    // The field types differ between architectures: the casts are needed.
    #[allow(clippy::unnecessary_cast)]
    pub fn from_rustix(s: &rfs::Stat) -> Stat {
        Stat {
            mode: s.st_mode as u32,
            uid: s.st_uid,
            gid: s.st_gid,
            size: s.st_size as u64,
            blocks: s.st_blocks as u64,
            mtime: Timestamp { secs: s.st_mtime as i64, nanos: s.st_mtime_nsec as u32 },
            ctime: Timestamp { secs: s.st_ctime as i64, nanos: s.st_ctime_nsec as u32 },
            ino: s.st_ino as u64,
            dev: s.st_dev as u64,
            nlink: s.st_nlink as u64,
            rdev: s.st_rdev as u64,
        }
    }

    pub fn file_type(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    pub fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }

    pub fn id(&self) -> FileId {
        FileId { dev: self.dev, ino: self.ino }
    }
}

/// What identifies a file on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

fn err(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// An open directory.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC).union(OFlags::RDONLY);

impl Dir {
    /// Opens a directory the user named. The path is followed as given
    /// (the user chose it); what lies below is reached without following.
    pub fn open_path(path: &Path) -> io::Result<Dir> {
        let fd = rfs::open(path, OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY, Mode::empty()).map_err(err)?;
        Ok(Dir { fd })
    }

    /// The subdirectory `name`; a symlink or anything else is an error.
    pub fn child(&self, name: &[u8]) -> io::Result<Dir> {
        let fd = rfs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()).map_err(err)?;
        Ok(Dir { fd })
    }

    /// The directory `rel` ('/'-separated, no `..`) below this one, with
    /// no symlink anywhere on the way and never leaving this directory.
    pub fn descendant(&self, rel: &[u8]) -> io::Result<Dir> {
        if rel.is_empty() {
            return self.try_clone();
        }
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rfs::openat2(&self.fd, rel, DIR_FLAGS, Mode::empty(), resolve) {
            Ok(fd) => Ok(Dir { fd }),
            // Before Linux 5.6: one name at a time.
            Err(rustix::io::Errno::NOSYS) => {
                let mut d = self.try_clone()?;
                for name in rel.split(|&b| b == b'/').filter(|n| !n.is_empty()) {
                    d = d.child(name)?;
                }
                Ok(d)
            }
            Err(e) => Err(err(e)),
        }
    }

    /// This directory's parent (`..` cannot be a symlink).
    pub fn parent(&self) -> io::Result<Dir> {
        self.child(b"..")
    }

    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir { fd: self.fd.try_clone()? })
    }

    pub fn stat(&self) -> io::Result<Stat> {
        rfs::fstat(&self.fd).map(|s| Stat::from_rustix(&s)).map_err(err)
    }

    /// The kind of filesystem this directory is on (statfs's f_type).
    pub fn fs_type(&self) -> io::Result<u64> {
        // The field's type differs between architectures.
        #[allow(clippy::unnecessary_cast)]
        rfs::fstatfs(&self.fd).map(|s| s.f_type as u64).map_err(err)
    }

    /// lstat of `name`.
    pub fn stat_at(&self, name: &[u8]) -> io::Result<Stat> {
        rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).map(|s| Stat::from_rustix(&s)).map_err(err)
    }

    /// The names in this directory, without `.` and `..`.
    pub fn names(&self) -> io::Result<Vec<Vec<u8>>> {
        Ok(self.typed_names()?.into_iter().map(|(name, _)| name).collect())
    }

    /// The names in this directory, without `.` and `..`, each with
    /// whether the listing says it is a directory (None where the
    /// filesystem does not say): what is known without an lstat.
    pub fn typed_names(&self) -> io::Result<Vec<(Vec<u8>, Option<bool>)>> {
        let mut dir = rfs::Dir::read_from(&self.fd).map_err(err)?;
        let mut out = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(err)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                let is_dir = match entry.file_type() {
                    rfs::FileType::Unknown => None,
                    t => Some(t == rfs::FileType::Directory),
                };
                out.push((name.to_vec(), is_dir));
            }
        }
        Ok(out)
    }

    pub fn mkdir(&self, name: &[u8], mode: u32) -> io::Result<()> {
        rfs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)).map_err(err)
    }

    /// Creates `name`, which must not exist, for writing.
    pub fn create_file(&self, name: &[u8], mode: u32) -> io::Result<File> {
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC;
        let fd = rfs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode)).map_err(err)?;
        Ok(File::from(fd))
    }

    /// A file in this directory that has no name yet (`O_TMPFILE`), for
    /// writing; None where the filesystem cannot make one.
    pub fn create_unnamed(&self, mode: u32) -> io::Result<Option<File>> {
        let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
        match rfs::openat(&self.fd, ".", flags, Mode::from_raw_mode(mode)) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// Gives a file made by [`Dir::create_unnamed`] its name here; fails if
    /// the name exists. Linking the descriptor itself needs
    /// CAP_DAC_READ_SEARCH; otherwise it goes through its /proc link.
    pub fn link_unnamed(&self, file: &File, name: &[u8]) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        match rfs::linkat(file, "", &self.fd, name, AtFlags::EMPTY_PATH) {
            Err(rustix::io::Errno::PERM | rustix::io::Errno::NOENT) => {
                let path = format!("/proc/self/fd/{}", file.as_raw_fd());
                rfs::linkat(rfs::CWD, path.as_str(), &self.fd, name, AtFlags::SYMLINK_FOLLOW).map_err(err)
            }
            other => other.map_err(err),
        }
    }

    /// Opens `name` for reading without following a symlink, without
    /// blocking on a FIFO, without taking a terminal, and (where allowed)
    /// without touching its access time. Whatever it opened, the caller
    /// checks its type with `fstat` on the descriptor.
    pub fn open_read(&self, name: &[u8]) -> io::Result<File> {
        let base = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = match rfs::openat(&self.fd, name, base | OFlags::NOATIME, Mode::empty()) {
            // Only the owner (or root) may ask for O_NOATIME.
            Err(rustix::io::Errno::PERM) => rfs::openat(&self.fd, name, base, Mode::empty()),
            other => other,
        }
        .map_err(err)?;
        Ok(File::from(fd))
    }

    /// Opens the directory for listing attributes and the like, as a File.
    pub fn as_file(&self) -> io::Result<File> {
        Ok(File::from(self.fd.try_clone()?))
    }

    pub fn symlink(&self, target: &[u8], name: &[u8]) -> io::Result<()> {
        rfs::symlinkat(target, &self.fd, name).map_err(err)
    }

    pub fn readlink(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        let target = rfs::readlinkat(&self.fd, name, Vec::new()).map_err(err)?;
        Ok(target.into_bytes())
    }

    /// Creates a fifo, socket or device node.
    pub fn mknod(&self, name: &[u8], file_type: u32, mode: u32, rdev: u64) -> io::Result<()> {
        let ft = rfs::FileType::from_raw_mode(file_type);
        rfs::mknodat(&self.fd, name, ft, Mode::from_raw_mode(mode), rdev as rfs::Dev).map_err(err)
    }

    /// A hard link `name` here to `from_name` in `from`, which is not
    /// followed if it is a symlink.
    pub fn link_from(&self, from: &Dir, from_name: &[u8], name: &[u8]) -> io::Result<()> {
        rfs::linkat(&from.fd, from_name, &self.fd, name, AtFlags::empty()).map_err(err)
    }

    /// Renames `from` to `to` in this directory, failing if `to` exists.
    pub fn rename_noreplace(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        rfs::renameat_with(&self.fd, from, &self.fd, to, rfs::RenameFlags::NOREPLACE).map_err(err)
    }

    pub fn unlink(&self, name: &[u8]) -> io::Result<()> {
        rfs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(err)
    }

    /// chown of `name` itself (a symlink is not followed).
    pub fn chown_at(&self, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
        let (u, g) = (Some(rfs::Uid::from_raw(uid)), Some(rfs::Gid::from_raw(gid)));
        rfs::chownat(&self.fd, name, u, g, AtFlags::SYMLINK_NOFOLLOW).map_err(err)
    }

    /// Sets the access and modification times of `name` itself.
    pub fn set_times_at(&self, name: &[u8], mtime: Timestamp) -> io::Result<()> {
        let t = timespec(mtime);
        let times = rfs::Timestamps { last_access: t, last_modification: t };
        rfs::utimensat(&self.fd, name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(err)
    }

    /// True when `/proc/self/fd` exists (a rescue system or a container may
    /// lack it): [`Dir::proc_path`] and linking through it need it.
    pub fn proc_available() -> bool {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| Path::new("/proc/self/fd").is_dir())
    }

    /// A path naming `name` in exactly this directory, for the calls that
    /// have no `*at` form (extended attributes of symlinks and special
    /// files): `/proc/self/fd/N` is this open directory itself, whatever
    /// happened to the path that led to it.
    pub fn proc_path(&self, name: &[u8]) -> PathBuf {
        use std::os::fd::AsRawFd;
        let mut p = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
        p.push(OsStr::from_bytes(name));
        p
    }

    /// Removes `name` and, if it is a directory, everything in it, never
    /// following a symlink; refuses to remove anything whose identity is in
    /// `keep` (the repository) or a directory holding it. Holds one
    /// descriptor whatever the depth, and checks every directory it climbs
    /// back to.
    pub fn remove_all(&self, name: &[u8], keep: &[FileId]) -> io::Result<()> {
        let st = self.stat_at(name)?;
        if keep.contains(&st.id()) {
            return Err(io::Error::other("it is (or holds) the repository"));
        }
        if !st.is_dir() {
            return self.unlink(name);
        }
        let replaced = || io::Error::other("it was replaced while being removed");
        let top = self.stat()?.id();
        let mut cur = self.child(name)?;
        if cur.stat()?.id() != st.id() {
            return Err(replaced());
        }
        // (name, identity, names not yet removed) of each directory from
        // `name` down to the current one.
        let mut levels = vec![(name.to_vec(), st.id(), cur.names()?)];
        while let Some((_, _, pending)) = levels.last_mut() {
            if let Some(child) = pending.pop() {
                let cst = cur.stat_at(&child)?;
                if keep.contains(&cst.id()) {
                    return Err(io::Error::other("it holds the repository"));
                }
                if cst.is_dir() {
                    let sub = cur.child(&child)?;
                    if sub.stat()?.id() != cst.id() {
                        return Err(replaced());
                    }
                    let names = sub.names()?;
                    levels.push((child, cst.id(), names));
                    cur = sub;
                } else {
                    cur.unlink(&child)?;
                }
                continue;
            }
            let (done, _, _) = levels.pop().expect("not empty");
            let above = levels.last().map_or(top, |l| l.1);
            let parent = cur.parent()?;
            if parent.stat()?.id() != above {
                return Err(replaced());
            }
            rfs::unlinkat(&parent.fd, done.as_slice(), AtFlags::REMOVEDIR).map_err(err)?;
            cur = parent;
        }
        Ok(())
    }
}

pub fn timespec(t: Timestamp) -> rfs::Timespec {
    rfs::Timespec { tv_sec: t.secs as _, tv_nsec: t.nanos as _ }
}

/// Sets the times of an open file.
pub fn set_times(file: &File, mtime: Timestamp) -> io::Result<()> {
    let t = timespec(mtime);
    rfs::futimens(file, &rfs::Timestamps { last_access: t, last_modification: t }).map_err(err)
}

pub fn fchown(file: &File, uid: u32, gid: u32) -> io::Result<()> {
    rfs::fchown(file, Some(rfs::Uid::from_raw(uid)), Some(rfs::Gid::from_raw(gid))).map_err(err)
}

pub fn fchmod(file: &File, mode: u32) -> io::Result<()> {
    rfs::fchmod(file, Mode::from_raw_mode(mode)).map_err(err)
}

pub fn fstat(file: &File) -> io::Result<Stat> {
    rfs::fstat(file).map(|s| Stat::from_rustix(&s)).map_err(err)
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}
