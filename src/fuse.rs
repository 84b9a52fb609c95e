//! The fuser binding: translates kernel requests into calls on
//! [`SnapshotFs`] and its answers into replies. No filesystem logic here.

use crate::fs::{may_read_trusted, Attr, FsError, Kind, SnapshotFs};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEntry,
    ReplyLseek, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub struct FuseFs {
    fs: Arc<SnapshotFs>,
    /// Answer OPEN and OPENDIR with ENOSYS, after which the kernel sends
    /// neither them nor RELEASE: two round trips fewer per file read and
    /// per directory listed (half the requests of a warm `find`). Files
    /// and directories then get KEEP_CACHE and CACHE_DIR; the mount is
    /// read-only, so the kernel refuses opens for writing itself. Only
    /// with FUSE_AUTO_INVAL_DATA, which drops a cached listing of the top
    /// directories when their mtime changes (see `top_dir_attr`).
    skip_opens: bool,
    linger: Arc<OnceLock<Linger>>,
}

impl FuseFs {
    pub fn new(fs: Arc<SnapshotFs>) -> Self {
        Self { fs, skip_opens: false, linger: Arc::default() }
    }

    /// Where the mount puts the [`Linger`] once its device is open.
    pub fn linger_slot(&self) -> Arc<OnceLock<Linger>> {
        self.linger.clone()
    }

    fn linger(&self) {
        if let Some(linger) = self.linger.get() {
            linger.after_reply();
        }
    }
}

/// How long a serving thread watches for the next request after a reply.
/// A program going through many entries (`ls -l` asks each new entry
/// for its ACL) sends the next one a few microseconds after the answer.
const LINGER: Duration = Duration::from_micros(30);

/// After a watch that saw no request, this many replies go without one:
/// requests that come just too far apart cost a sixteenth of a CPU, not
/// most of one.
const SKIP_AFTER_MISS: u32 = 15;

/// After answering a metadata request, one serving thread watches the
/// device briefly instead of going to sleep: a sleeping thread is woken
/// from an idle CPU, which on a virtual machine costs more than answering
/// (first `ls -l` of 20,000 entries: 0.37 -> 0.28 s). One thread at a
/// time, at most [`LINGER`] per reply, never after reads (the readahead
/// pusher needs the CPU then).
pub struct Linger {
    device: OwnedFd,
    taken: AtomicBool,
    skip: AtomicU32,
}

impl Linger {
    /// `device`: a duplicate of the session's descriptor, polled only.
    pub fn new(device: OwnedFd) -> Self {
        Self { device, taken: AtomicBool::new(false), skip: AtomicU32::new(0) }
    }

    fn after_reply(&self) {
        if self.skip.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
            return;
        }
        if self.taken.swap(true, Ordering::Acquire) {
            return;
        }
        let start = Instant::now();
        let mut seen = self.request_waiting();
        while !seen && start.elapsed() < LINGER {
            std::hint::spin_loop();
            seen = self.request_waiting();
        }
        if !seen {
            self.skip.store(SKIP_AFTER_MISS, Ordering::Relaxed);
        }
        self.taken.store(false, Ordering::Release);
    }

    /// True also when the connection is gone: the serving loop finds out.
    fn request_waiting(&self) -> bool {
        let mut poll = libc::pollfd { fd: self.device.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, the descriptor is owned by self.
        unsafe { libc::poll(&mut poll, 1, 0) != 0 }
    }
}

fn errno(e: &FsError) -> Errno {
    Errno::from_i32(e.errno())
}

/// A saved time as the kernel gets it; one no clock can hold (records are
/// validated on decode, so only a bug gets here) is the epoch, never a
/// panic.
fn time(t: crate::format::records::Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nanos.min(999_999_999)));
    let secs = Duration::from_secs(t.secs.unsigned_abs());
    let at = if t.secs >= 0 { UNIX_EPOCH.checked_add(secs) } else { UNIX_EPOCH.checked_sub(secs) };
    at.and_then(|a| a.checked_add(nanos)).unwrap_or(UNIX_EPOCH)
}

fn file_type(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
        Kind::CharDevice => FileType::CharDevice,
        Kind::BlockDevice => FileType::BlockDevice,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: time(a.mtime),
        mtime: time(a.mtime),
        ctime: time(a.ctime),
        crtime: time(a.mtime),
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev as u32,
        blksize: 4096,
        flags: 0,
    }
}

fn xattr_reply(value: Result<Vec<u8>, FsError>, size: u32, reply: ReplyXattr) {
    match value {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::from_i32(libc::ERANGE)),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(errno(&e)),
    }
}

const GEN: Generation = Generation(0);

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // No FUSE_CACHE_SYMLINKS, although no node changes its target
        // (`latest` becomes a new node when a newer snapshot comes): with
        // it, a repeated tar of a /usr snapshot re-read every directory
        // and file (getattr, readdir and read again: 6-14 s instead of
        // 4 s), for 5,466 readlinks saved.
        // Every listing is a readdirplus, not only those the kernel sees
        // followed by lookups (READDIRPLUS_AUTO): `find | xargs cat`, tar
        // and file managers then cost no lookup round trip per entry
        // (find+cat of 20,000 files, fresh mount: 0.84 -> 0.51 s) for a
        // dearer bare `ls` (100,000 entries: about 0.3 -> 0.5 s).
        // POSIX_ACL lets the kernel keep each entry's ACL answer: `ls -l`
        // asks for it of every entry, once per entry instead of every
        // time (a repeated `ls -l` of 20,000 entries: 0.26 -> 0.05 s).
        // The kernel then checks permissions itself (the mount asks for
        // default_permissions in any case), so no ACCESS requests come.
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_ASYNC_READ,
            InitFlags::FUSE_POSIX_ACL,
        ] {
            // An older kernel without one of these still mounts.
            let _ = config.add_capabilities(cap);
        }
        self.skip_opens = config.add_capabilities(InitFlags::FUSE_AUTO_INVAL_DATA).is_ok();
        let fs = self.fs.clone();
        std::thread::Builder::new().name("chkfs-index".into()).spawn(move || fs.preload())?;
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.fs.lookup(parent.0, name.as_bytes()) {
            Ok((attr, ttl)) => reply.entry_with_ttls(&ttl.attr, &ttl.entry, &file_attr(&attr), GEN),
            Err(e) => reply.error(errno(&e)),
        }
        self.linger();
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(ino.0) {
            Ok((attr, ttl)) => reply.attr(&ttl.attr, &file_attr(&attr)),
            Err(e) => reply.error(errno(&e)),
        }
        self.linger();
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.fs.readlink(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno(&e)),
        }
        self.linger();
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if self.skip_opens {
            return reply.error(Errno::from_i32(libc::ENOSYS));
        }
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        match self.fs.open(ino.0, write) {
            Ok(true) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Ok(false) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // One buffer per serving thread: a fresh 128 KiB allocation per
        // request costs page faults on every read.
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with_borrow_mut(|buf| match self.fs.read_into(ino.0, offset, size, buf) {
            Ok(at) => {
                reply.data(buf);
                // After the reply: the reader waits for nothing else.
                self.fs.read_ahead(at);
            }
            Err(e) => reply.error(errno(&e)),
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.skip_opens {
            return reply.error(Errno::from_i32(libc::ENOSYS));
        }
        match self.fs.is_immutable_dir(ino.0) {
            // A snapshot's directories never change: let the kernel keep
            // their listings, across opens too.
            Ok(true) => reply.opened(FileHandle(0), FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE),
            Ok(false) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let result = self.fs.readdir(ino.0, offset, false, &mut |item| {
            reply.add(INodeNo(item.attr.ino), item.next_offset, file_type(item.attr.kind), OsStr::from_bytes(item.name))
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let result = self.fs.readdir(ino.0, offset, true, &mut |item| {
            reply.add(
                INodeNo(item.attr.ino),
                item.next_offset,
                OsStr::from_bytes(item.name),
                &item.ttl.entry.min(item.ttl.attr),
                &file_attr(&item.attr),
                GEN,
            )
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.fs.statfs();
        reply.statfs(s.blocks, s.free_blocks, s.free_blocks, s.files, s.free_files, s.block_size, 255, s.block_size);
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let pid = req.pid();
        xattr_reply(self.fs.getxattr(ino.0, name.as_bytes(), &|| may_read_trusted(pid)), size, reply);
        self.linger();
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let pid = req.pid();
        xattr_reply(self.fs.listxattr(ino.0, &|| may_read_trusted(pid)), size, reply);
        self.linger();
    }

    fn lseek(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek) {
        let data = match whence {
            libc::SEEK_DATA => true,
            libc::SEEK_HOLE => false,
            _ => return reply.error(Errno::from_i32(libc::EINVAL)),
        };
        let Ok(offset) = u64::try_from(offset) else { return reply.error(Errno::from_i32(libc::ENXIO)) };
        match self.fs.seek(ino.0, offset, data) {
            Ok(pos) => reply.offset(pos as i64),
            Err(e) => reply.error(errno(&e)),
        }
    }
}
