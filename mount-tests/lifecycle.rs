//! Leaving: SIGTERM, an external umount and --daemon; refusing to mount
//! on a bad mount point or without a repository.

use crate::common::*;
use crate::harness::*;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn saved_world() -> (World, String) {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "content\n").unwrap();
    let id = id_of(&w.save(&src, &[]));
    (w, id)
}

#[test]
fn sigterm_unmounts_and_exits_0() {
    require_fuse!();
    let (w, id) = saved_world();
    let mut m = Mount::start(&w, &w.path("mnt"));
    assert_eq!(fs::read(m.snap(&id).join("f")).unwrap(), b"content\n");
    let code = m.terminate();
    assert_eq!(
        code,
        Some(0),
        "chkfs mount after SIGTERM (None: still running after {EXIT:?}); output:\n{}",
        m.stderr()
    );
    assert!(!is_mounted(&m.mnt), "{} still in /proc/mounts after the process exited", m.mnt.display());
}

#[test]
fn external_umount_makes_the_process_exit_0() {
    require_fuse!();
    let (w, _) = saved_world();
    let mut m = Mount::start(&w, &w.path("mnt"));
    sh("umount", [m.mnt.as_os_str()]).ok();
    let code = m.wait_exit(EXIT);
    assert_eq!(code, Some(0), "chkfs mount after umount (None: still running after {EXIT:?}); output:\n{}", m.stderr());
    assert!(!is_mounted(&m.mnt));
}

/// A process that leaves after an external umount must not unmount by
/// path on its way out: by then the path may hold a new mount (it used
/// to take the new mount with it whenever it was slow to leave).
#[test]
fn a_process_leaving_after_umount_leaves_a_new_mount_on_the_same_path_alone() {
    require_fuse!();
    let (w, id) = saved_world();
    let mut old = Mount::start(&w, &w.path("mnt"));
    // Held still until the new mount is up: as slow to leave as can be.
    let signal = |sig: &str, pid: u32| {
        sh("kill", [OsStr::new(sig), OsStr::new(&pid.to_string())]).ok();
    };
    signal("-STOP", old.pid());
    // Lazily: a plain umount waits for the stopped process.
    sh("umount", [OsStr::new("-l"), old.mnt.as_os_str()]).ok();
    let mut new = Mount::start(&w, &w.path("mnt"));
    signal("-CONT", old.pid());
    assert_eq!(old.wait_exit(EXIT), Some(0), "{}", old.stderr());
    assert!(is_mounted(&new.mnt), "the old process unmounted the new mount");
    assert!(new.is_running(), "{}", new.stderr());
    assert_eq!(fs::read(new.snap(&id).join("f")).unwrap(), b"content\n");
}

/// A mount detached while busy (`umount -l`) keeps its process serving;
/// stopped later, that process must not unmount by path either.
#[test]
fn a_process_stopped_after_a_lazy_umount_leaves_a_new_mount_alone() {
    require_fuse!();
    let (w, id) = saved_world();
    let mut old = Mount::start(&w, &w.path("mnt"));
    let busy = fs::File::open(old.snap(&id).join("f")).unwrap();
    sh("umount", [OsStr::new("-l"), old.mnt.as_os_str()]).ok();
    let mut new = Mount::start(&w, &w.path("mnt"));
    assert!(old.is_running(), "a busy detached mount keeps its process");
    sh("kill", [OsStr::new("-TERM"), OsStr::new(&old.pid().to_string())]).ok();
    assert_eq!(old.wait_exit(EXIT), Some(0), "{}", old.stderr());
    drop(busy);
    assert!(is_mounted(&new.mnt), "the old process unmounted the new mount");
    assert!(new.is_running(), "{}", new.stderr());
    assert_eq!(fs::read(new.snap(&id).join("f")).unwrap(), b"content\n");
}

/// Processes whose command line has all of `words`.
fn pids_with(words: &[&OsStr]) -> Vec<u32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|&c| c == 0).collect();
        use std::os::unix::ffi::OsStrExt;
        if words.iter().all(|w| args.contains(&w.as_bytes())) {
            out.push(pid);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    // A zombie has exited (its parent, init, has yet to reap it).
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rsplit(')').next().and_then(|r| r.split_whitespace().next()).is_some_and(|st| st != "Z"),
        Err(_) => false,
    }
}

/// Cleans up after a daemon: unmounts, then kills what is left; a
/// watchdog does the same if the test hangs.
struct DaemonGuard {
    mnt: PathBuf,
    watchdog: Watchdog,
}

impl DaemonGuard {
    fn daemons(&self) -> Vec<u32> {
        pids_with(&[OsStr::new("--daemon"), self.mnt.as_os_str()])
    }
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        let pids = self.daemons();
        force_unmount(&self.mnt);
        for pid in pids {
            if alive(pid) {
                eprintln!("daemon guard: killing the daemon {pid}");
                signal(pid, libc::SIGKILL);
            }
        }
        force_unmount(&self.mnt);
    }
}

#[test]
fn daemon_returns_once_mounted_and_umount_ends_it() {
    require_fuse!();
    let (w, id) = saved_world();
    let mnt = w.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let mnt = fs::canonicalize(&mnt).unwrap();
    let guard = DaemonGuard { mnt: mnt.clone(), watchdog: Watchdog::start(&mnt, LIFETIME) };
    // Output to a file: the daemon keeps its descriptors a moment.
    let log = w.path("daemon.log");
    let f = fs::File::create(&log).unwrap();
    let mut child = w
        .cmd()
        .args([OsStr::new("mount"), OsStr::new("--daemon"), mnt.as_os_str()])
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    let code = wait_quietly(&mut child, Duration::from_secs(30));
    if code.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    // Right away, without polling (ls has a deadline: a hung mount fails
    // the test rather than hanging it).
    let fuse = is_fuse_mounted(&mnt);
    let ls = run_with_timeout(Command::new("ls").arg(mnt.join("snapshots")), Duration::from_secs(20));
    let daemons = guard.daemons();
    for &pid in &daemons {
        guard.watchdog.watch(pid);
    }
    let output = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, Some(0), "chkfs mount --daemon (None: did not return in 30 s); output:\n{output}");
    assert!(fuse, "mount --daemon returned 0 but {} is not a FUSE mount", mnt.display());
    assert_eq!(ls.code, 0, "mount --daemon returned 0 but snapshots/ cannot be listed: {}", ls.stderr);
    assert!(ls.stdout_str().lines().any(|n| n == id), "{}", ls.stdout_str());
    assert_eq!(daemons.len(), 1, "expected one daemon process, found {daemons:?}");
    let daemon = daemons[0];
    assert!(alive(daemon));
    // A daemon keeps no filesystem busy with its working directory.
    assert_eq!(fs::read_link(format!("/proc/{daemon}/cwd")).unwrap(), std::path::Path::new("/"));
    let cat = sh("cat", [mnt.join("snapshots").join(&id).join("f").as_os_str()]);
    cat.ok();
    assert_eq!(cat.stdout, b"content\n");

    sh("umount", [mnt.as_os_str()]).ok();
    let start = Instant::now();
    while is_mounted(&mnt) || alive(daemon) {
        assert!(
            start.elapsed() < EXIT,
            "after umount: mounted={}, daemon {daemon} alive={}",
            is_mounted(&mnt),
            alive(daemon)
        );
        std::thread::sleep(POLL);
    }
}

/// Runs a mount that must be refused: a non-zero exit within the
/// deadline, nothing mounted; returns its output.
fn refused(w: &World, cmd: Command, mnt: &Path, what: &str) -> String {
    let mut m = Mount::spawn_cmd(w, cmd, mnt, &[]);
    let code = m.wait_exit(EXIT);
    let output = m.stderr();
    assert!(code.is_some(), "{what}: chkfs mount still running after {EXIT:?}; output:\n{output}");
    assert_ne!(code, Some(0), "{what}: chkfs mount exited 0; output:\n{output}");
    assert!(!is_mounted(&m.mnt) && !is_mounted(mnt), "{what}: something is mounted on {}", mnt.display());
    assert!(output.contains("error"), "{what}: no error message: {output:?}");
    output
}

#[test]
fn bad_mount_points_and_missing_repositories_are_refused() {
    require_fuse!();
    let (w, _) = saved_world();

    // A non-empty directory.
    let full = w.path("full");
    fs::create_dir_all(&full).unwrap();
    fs::write(full.join("already-here"), "x").unwrap();
    let out = refused(&w, w.cmd(), &full, "non-empty mount point");
    assert!(out.contains("not empty"), "{out}");
    assert_eq!(fs::read(full.join("already-here")).unwrap(), b"x");

    // A missing directory (the guard would create it: check by hand).
    let missing = w.path("no-such-dir");
    let mut c = w.cmd();
    c.arg("mount").arg(&missing);
    let out = run_with_timeout(&mut c, EXIT);
    assert_ne!(out.code, 0, "mount on a missing directory exited 0:\n{}", out.stderr);
    assert!(out.stderr.contains("no-such-dir"), "the message does not name the mount point: {}", out.stderr);
    assert!(!is_mounted(&missing));
    force_unmount(&missing);

    // A mount point inside the repository.
    let inside = w.repo.join("mnt-inside");
    fs::create_dir_all(&inside).unwrap();
    let out = refused(&w, w.cmd(), &inside, "mount point inside the repository");
    assert!(out.contains("inside the repository"), "{out}");

    // A missing repository.
    let empty = w.path("empty-mnt");
    let mut c = w.bare_cmd();
    let nowhere = w.path("no-such-repo");
    c.arg("--repo").arg(&nowhere);
    let out = refused(&w, c, &empty, "missing repository");
    assert!(out.contains("no-such-repo"), "the message does not name the repository: {out}");
    assert!(!nowhere.exists(), "mount created the missing repository");
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn an_encrypted_repository_asks_on_the_terminal_once_before_the_daemon_detaches() {
    require_fuse!();
    let mut w = World::new();
    let pw = w.path("pw");
    fs::write(&pw, "daemon password\n").unwrap();
    w.env.push(("CHKFS_PASSWORD_FILE".into(), pw.to_string_lossy().into()));
    w.chkfs(["init", "--encrypt", "--kdf-memory", "64", "--kdf-iterations", "1"]).ok();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "through the daemon\n").unwrap();
    let id = id_of(&w.save(&src, &[]));
    let mnt = w.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let mnt = fs::canonicalize(&mnt).unwrap();
    let guard = DaemonGuard { mnt: mnt.clone(), watchdog: Watchdog::start(&mnt, LIFETIME) };
    let mut cmd = w.cmd();
    cmd.env_remove("CHKFS_PASSWORD_FILE").args([OsStr::new("mount"), OsStr::new("--daemon"), mnt.as_os_str()]);
    let run = crate::common::pty::run_on_pty(cmd, "password for", &["daemon password"], Duration::from_secs(30));
    for pid in guard.daemons() {
        guard.watchdog.watch(pid);
    }
    assert_eq!(run.code, 0, "{}", run.screen);
    assert_eq!(run.screen.matches("password for").count(), 1, "asked more than once:\n{}", run.screen);
    assert!(!run.screen.contains("daemon password"), "the password was echoed:\n{}", run.screen);
    assert_eq!(fs::read_to_string(mnt.join("snapshots").join(&id).join("f")).unwrap(), "through the daemon\n");
}
