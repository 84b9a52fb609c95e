//! `chkfs mount [REPO] MOUNTPOINT`.

use super::args::MountArgs;
use super::exit::{ExitCode, UsageError};
use super::repo_path::RepoArgs;
use crate::fs::{FsOptions, SnapshotFs};
use crate::fuse::{FuseFs, Linger};
use crate::store::Repository;
use crate::text::escape_path;
use anyhow::{bail, Context, Result};
use fuser::{Config, MountOption, SessionACL};
use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub fn run(ctx: &RepoArgs, args: &MountArgs) -> Result<ExitCode> {
    let (repo_arg, mountpoint) = (args.repo.as_deref(), args.mountpoint.clone());
    let allow_other = parse_options(&args.options)?;
    let chosen = ctx.choose(repo_arg)?;
    let repo = Arc::new(Repository::open_at(&chosen.location()?, &super::password::REPO)?);
    let mountpoint = check_mountpoint(&mountpoint, repo.local_root())?;
    let ready = if args.daemon { Some(daemonize()?) } else { None };

    // Cached blocks come and go all the time, freed by whichever thread
    // evicts them: per-thread malloc arenas would each keep their own free
    // memory, well beyond the cache budget. One arena keeps RSS near the
    // budget (measured: 363 -> 286 MB with a 256 MiB cache) and was no
    // slower here.
    // SAFETY: mallopt only tunes the allocator; called before any thread.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let snapshot_refresh = match args.refresh {
        Some(secs) => std::time::Duration::from_secs_f64(secs),
        None if repo.lists_cheaply() => crate::fs::snapshots::MAX_AGE_LOCAL,
        None => crate::fs::snapshots::MAX_AGE_REMOTE,
    };
    let opts = FsOptions { cache_bytes: args.cache_size, snapshot_refresh, uid, gid };
    let fs = Arc::new(SnapshotFs::new(repo.clone(), opts)?);
    // The kernel checks the saved modes and ACLs, as the filesystem they
    // were saved from did, for the owner too (FUSE_POSIX_ACL requires it).
    let options = vec![
        MountOption::FSName(format!("chkfs:{}", repo.location())),
        MountOption::Subtype("chkfs".into()),
        MountOption::RO,
        MountOption::NoAtime,
        MountOption::DefaultPermissions,
    ];
    let mut config = Config::default();
    config.mount_options = options;
    config.acl = if allow_other { SessionACL::All } else { SessionACL::Owner };
    config.n_threads = Some(usize::from(args.threads));
    config.clone_fd = true;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let fuse_fs = FuseFs::new(fs.clone());
    let linger = fuse_fs.linger_slot();
    let session = fuser::Session::new(fuse_fs, &mountpoint, &config)
        .map_err(|e| mount_failure(e, &mountpoint, &|| open_fuse_device().map(drop)))?;
    // Without a duplicate of the device, serving goes on without lingering.
    if let Ok(device) = session.as_fd().try_clone_to_owned() {
        let _ = linger.set(Linger::new(device));
    }
    let session = session.spawn().context("cannot start serving the mount")?;
    let notifier = session.notifier();
    fs.start_readahead(Box::new(move |ino, content| notifier.store(fuser::INodeNo(ino), 0, content).is_ok()))?;
    // The device of this mount, to tell it from a later one on the same
    // path (a device number is not reused while this mount lives).
    let our_dev = std::fs::metadata(&mountpoint).map(|m| m.dev()).ok();
    raise_readahead(our_dev);
    if args.json {
        // Before the daemon leaves the terminal: the pid is the serving
        // process's, the one to signal.
        let line = serde_json::json!({
            "message_type": "mounted",
            "mountpoint": escape_path(&mountpoint),
            "repository": repo.location(),
            "pid": std::process::id(),
        });
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
    match ready {
        Some(pipe) => announce_ready(pipe),
        None => super::progress::summary!(
            "chkfs: {} mounted at {} (Ctrl-C or umount to leave)",
            repo.location(),
            escape_path(&mountpoint)
        ),
    }
    while !stop.load(Ordering::Relaxed) && !session.guard.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
    }
    if session.guard.is_finished() {
        return Ok(leave_ended_session(session, &mountpoint));
    }
    if our_dev.is_some_and(|dev| top_mount_at(&mountpoint) != Some(dev)) {
        // Detached from outside (umount -l) while busy, the path maybe
        // mounted anew: unmounting by path would take the wrong mount. The
        // detached one goes when this process closes its connection.
        std::mem::forget(session);
        return Ok(ExitCode::Ok);
    }
    if let Err(e) = session.umount_and_join() {
        eprintln!("chkfs: unmounting {} failed ({e}); detaching it lazily", escape_path(&mountpoint));
        lazy_unmount(&mountpoint);
    }
    Ok(ExitCode::Ok)
}

/// Leaves once the serving threads ended. Dropping the session unmounts
/// by path. The threads end without error only once the kernel closed
/// the connection, that is once unmounted from outside: the path may hold
/// a new mount by then, so the session is left to the process's exit.
/// After an error the mount is still there, and dropping it unmounts it.
fn leave_ended_session(mut session: fuser::BackgroundSession, mountpoint: &Path) -> ExitCode {
    let finished = std::mem::replace(&mut session.guard, std::thread::spawn(|| Ok(())));
    let failure = match finished.join() {
        Ok(Ok(())) => {
            std::mem::forget(session);
            return ExitCode::Ok;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => "a serving thread panicked".to_string(),
    };
    eprintln!("chkfs: serving {} failed: {failure}; unmounting it", escape_path(mountpoint));
    drop(session);
    ExitCode::Failure
}

/// Sequential reads through FUSE come as readahead requests, 128 KiB each
/// by default, and each costs a round trip to this process: 1 MiB
/// requests read a 2 GiB image about 1.8 times as fast. The kernel takes
/// the larger window only from its per-mount sysfs knob (root only);
/// without it the default stays.
const READAHEAD_KB: u32 = 1024;

fn raise_readahead(dev: Option<u64>) {
    let Some(dev) = dev else { return };
    let knob = format!("/sys/class/bdi/{}:{}/read_ahead_kb", libc::major(dev), libc::minor(dev));
    let _ = std::fs::write(knob, READAHEAD_KB.to_string());
}

/// The device of the topmost mount at `path`, from the mount table
/// (never a call into a mount that may no longer answer).
fn top_mount_at(path: &Path) -> Option<u64> {
    crate::mounts::table().into_iter().rev().find(|m| m.at == path).map(|m| m.dev)
}

/// True when `path` is where a chkfs filesystem is mounted.
fn is_chkfs_mount(path: &Path) -> bool {
    crate::mounts::table().iter().any(|m| m.at == path && m.is_chkfs())
}

fn open_fuse_device() -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse")
}

/// Why mounting failed: the call that failed may have been opening the
/// FUSE device (`open_device` tries it again), and then the mount point
/// is not the problem.
fn mount_failure(e: std::io::Error, mountpoint: &Path, open_device: &dyn Fn() -> std::io::Result<()>) -> anyhow::Error {
    use std::io::ErrorKind::{NotFound, PermissionDenied};
    match open_device() {
        Err(dev) if e.kind() == PermissionDenied || dev.kind() == NotFound => anyhow::anyhow!(
            "cannot mount on {}: cannot open /dev/fuse ({dev}); FUSE needs that device readable and writable \
             (load the fuse module, or ask the administrator for access)",
            escape_path(mountpoint)
        ),
        _ => anyhow::Error::new(e).context(format!("cannot mount on {}", escape_path(mountpoint))),
    }
}

/// Returns whether allow_other was asked for.
fn parse_options(options: &[String]) -> Result<bool> {
    let mut allow_other = false;
    for o in options.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
        match o {
            "allow_other" => allow_other = true,
            "ro" | "default_permissions" => {}
            other => return Err(UsageError(format!("unknown mount option {other:?} (known: allow_other)")).into()),
        }
    }
    Ok(allow_other)
}

/// The mount point must be an existing, empty directory outside the
/// repository.
fn check_mountpoint(mnt: &Path, repo_root: Option<&Path>) -> Result<PathBuf> {
    let dead = || {
        anyhow::anyhow!(
            "mount point {0} is, or lies in, a dead mount (the process that served it has ended): \
             `umount` of that mount (as a normal user: `fusermount3 -u`) clears it",
            escape_path(mnt)
        )
    };
    let not_connected = |e: &std::io::Error| e.raw_os_error() == Some(libc::ENOTCONN);
    let canonical = match std::fs::canonicalize(mnt) {
        Err(e) if not_connected(&e) => return Err(dead()),
        r => r.with_context(|| format!("mount point {}", escape_path(mnt)))?,
    };
    if is_chkfs_mount(&canonical) {
        // The kernel may answer a stat, even an open, of a dead mount
        // from its cache; reading its entries asks the server.
        return Err(match std::fs::read_dir(&canonical).and_then(|mut d| d.next().transpose()) {
            Err(e) if not_connected(&e) => dead(),
            _ => {
                anyhow::anyhow!("{} is already a chkfs mount: `umount` it first to mount again there", escape_path(mnt))
            }
        });
    }
    if !canonical.is_dir() {
        bail!("mount point {} is not a directory", escape_path(mnt));
    }
    if std::fs::read_dir(&canonical)?.next().is_some() {
        bail!("mount point {} is not empty", escape_path(mnt));
    }
    let Some(repo_root) = repo_root else { return Ok(canonical) };
    let repo_root = std::fs::canonicalize(repo_root)?;
    if canonical.starts_with(&repo_root) {
        bail!("mount point {} is inside the repository {}", escape_path(mnt), escape_path(&repo_root));
    }
    Ok(canonical)
}

/// Forks: the parent waits until the child says the mount is ready (or
/// dies), then exits; the child goes on in a new session. Only the forking
/// thread survives a fork, so it must be the only one: a thread started
/// before (a pool, a timer) would be missing in the child with whatever
/// lock it held.
fn daemonize() -> Result<OwnedFd> {
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse::<u32>().ok()));
    if threads.is_some_and(|n| n > 1) {
        bail!("cannot detach: {} threads are running already (a bug in chkfs)", threads.unwrap_or(0));
    }
    let mut fds = [0; 2];
    // SAFETY: pipe fills two descriptors on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other thread exists yet, so the child may go on freely.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error().into()),
        0 => {
            drop(read_end);
            // SAFETY: setsid has no preconditions; failure is harmless here.
            unsafe { libc::setsid() };
            // A daemon must not keep the filesystem it was started from busy.
            let _ = std::env::set_current_dir("/");
            Ok(write_end)
        }
        _ => {
            drop(write_end);
            let mut byte = [0u8; 1];
            let mut pipe = std::fs::File::from(read_end);
            match pipe.read(&mut byte) {
                Ok(1) => std::process::exit(0),
                _ => std::process::exit(ExitCode::Failure as i32),
            }
        }
    }
}

/// Tells the waiting parent the mount is up, then leaves the terminal.
fn announce_ready(pipe: OwnedFd) {
    let _ = std::fs::File::from(pipe).write_all(b"1");
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: duplicating a valid descriptor onto the standard ones.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

fn lazy_unmount(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) {
        // SAFETY: valid path; MNT_DETACH only detaches.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_device_that_cannot_be_opened_is_named_instead_of_the_mount_point() {
        use std::io::{Error, ErrorKind};
        let mnt = std::path::Path::new("/mnt/x");
        let denied = || Err(Error::from(ErrorKind::PermissionDenied));
        let msg = super::mount_failure(Error::from(ErrorKind::PermissionDenied), mnt, &denied).to_string();
        assert!(msg.contains("cannot open /dev/fuse") && msg.contains("/mnt/x"), "{msg}");
        let missing = || Err(Error::from(ErrorKind::NotFound));
        let msg = super::mount_failure(Error::other("no such device"), mnt, &missing).to_string();
        assert!(msg.contains("/dev/fuse"), "{msg}");
        // The device opens: the mount point is what failed.
        let fine = || Ok(());
        let msg = format!("{:#}", super::mount_failure(Error::from(ErrorKind::PermissionDenied), mnt, &fine));
        assert!(!msg.contains("/dev/fuse") && msg.contains("cannot mount on /mnt/x"), "{msg}");
    }

    #[test]
    fn the_root_filesystem_is_found_in_mountinfo() {
        use std::os::unix::fs::MetadataExt;
        let root = std::fs::metadata("/").unwrap().dev();
        assert_eq!(super::top_mount_at(std::path::Path::new("/")), Some(root));
    }
}
