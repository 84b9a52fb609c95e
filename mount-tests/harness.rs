//! The mount harness: a `Mount` guard that starts `chkfs mount` as a
//! child, waits (polling, with a deadline) until the mount answers, and
//! always tears it down again, even when the test panics; the FUSE skip
//! rule; /proc/mounts; small helpers shared by the mount tests.

use crate::common::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a mount may take to become usable.
pub const READY: Duration = Duration::from_secs(30);
/// How long the mount process may take to exit once told to.
pub const EXIT: Duration = Duration::from_secs(20);
/// Poll interval for every wait.
pub const POLL: Duration = Duration::from_millis(5);

// ------------------------------------------------------------ skip rule

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// True when /dev/fuse can be opened. Otherwise prints a loud SKIPPING
/// message and returns false, except under CI=true, where it panics.
pub fn fuse_available() -> bool {
    match fs::OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        Ok(_) => true,
        Err(e) => {
            let test = std::thread::current().name().unwrap_or("?").to_string();
            if in_ci() {
                panic!("{test}: cannot open /dev/fuse ({e}) and CI=true: FUSE mount tests must run in CI");
            }
            eprintln!(
                "\n**********\n*** SKIPPING FUSE MOUNT TEST {test}: cannot open /dev/fuse ({e}) ***\n**********\n"
            );
            false
        }
    }
}

/// Returns from the test (after a loud message) when FUSE is unusable.
macro_rules! require_fuse {
    () => {
        if !$crate::harness::fuse_available() {
            return;
        }
    };
}
pub(crate) use require_fuse;

// ------------------------------------------------------------ /proc/mounts

/// Undoes the octal escapes of /proc/mounts (`\040` for a space...).
fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The filesystem type `mnt` is mounted with, if it is a mount point
/// (the last mount on it wins).
pub fn mount_type(mnt: &Path) -> Option<String> {
    let text = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut found = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() >= 3 && unescape(f[1]) == mnt.as_os_str().as_bytes() {
            found = Some(f[2].to_string());
        }
    }
    found
}

/// Whether `mnt` appears in /proc/mounts as a FUSE mount.
pub fn is_fuse_mounted(mnt: &Path) -> bool {
    mount_type(mnt).is_some_and(|t| t == "fuse" || t.starts_with("fuse."))
}

/// Whether `mnt` appears in /proc/mounts at all.
pub fn is_mounted(mnt: &Path) -> bool {
    mount_type(mnt).is_some()
}

// ------------------------------------------------------------ quiet runs

/// Runs a command with a deadline, never panicking (for cleanup code):
/// returns its exit status, or None when it could not start or was killed.
pub fn run_quietly(program: &str, args: &[&OsStr], timeout: Duration) -> Option<i32> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    match wait_quietly(&mut child, timeout) {
        Some(code) => Some(code),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

/// Waits for `child` until `timeout` without panicking; its exit status
/// (minus the signal number for a signal), or None while it runs.
pub fn wait_quietly(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(status_code(s)),
            Ok(None) => {}
            Err(_) => return None,
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Unmounts `mnt` if it is mounted: `umount`, then `umount -l`.
pub fn force_unmount(mnt: &Path) {
    if is_mounted(mnt) {
        run_quietly("umount", &[mnt.as_os_str()], EXIT);
    }
    if is_mounted(mnt) {
        eprintln!("mount harness: umount {} failed; detaching lazily", mnt.display());
        run_quietly("umount", &[OsStr::new("-l"), mnt.as_os_str()], EXIT);
    }
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a process id we started.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

// ------------------------------------------------------------ watchdog

/// The longest a mount may live in a test. A broken server can block a
/// system call of the test itself (not only an external tool) forever;
/// past this, the watchdog kills the server, which makes every pending
/// request on the mount fail, and detaches the mount, so the test fails
/// and cleans up instead of hanging.
pub const LIFETIME: Duration = Duration::from_secs(240);

pub struct Watchdog {
    cancel: Option<std::sync::mpsc::Sender<()>>,
    pids: std::sync::Arc<std::sync::Mutex<Vec<u32>>>,
}

impl Watchdog {
    pub fn start(mnt: &Path, limit: Duration) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let pids = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
        let (mnt, watched) = (mnt.to_path_buf(), pids.clone());
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!(
                    "\n*** mount watchdog: {} still mounted after {limit:?}; killing the server and detaching ***\n",
                    mnt.display()
                );
                for &pid in watched.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    signal(pid, libc::SIGKILL);
                }
                run_quietly("umount", &[OsStr::new("-l"), mnt.as_os_str()], EXIT);
            }
        });
        Watchdog { cancel: Some(tx), pids }
    }

    pub fn watch(&self, pid: u32) {
        self.pids.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    }

    /// Stops watching a process that has been reaped (its id may be reused).
    pub fn forget(&self, pid: u32) {
        self.pids.lock().unwrap_or_else(|e| e.into_inner()).retain(|&p| p != pid);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Disconnecting ends the watchdog's wait.
        self.cancel.take();
    }
}

// ------------------------------------------------------------ the guard

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running `chkfs --repo R mount MNT`. Dropping it stops the process
/// (SIGTERM, then a deadline), unmounts whatever is left (umount, then
/// umount -l) and kills the process (SIGKILL) if it still runs.
pub struct Mount {
    /// The mount point, canonical (as /proc/mounts shows it).
    pub mnt: PathBuf,
    child: Option<Child>,
    stderr_path: PathBuf,
    watchdog: Watchdog,
}

impl Mount {
    /// Mounts `w`'s repository on `mnt` (created if missing) and waits
    /// until it is usable.
    pub fn start(w: &World, mnt: &Path) -> Mount {
        Mount::start_with(w, mnt, &[])
    }

    /// As `start`, with extra arguments for `mount` (before MNT).
    pub fn start_with(w: &World, mnt: &Path, extra: &[&str]) -> Mount {
        let mut m = Mount::spawn(w, mnt, extra);
        m.wait_ready();
        m
    }

    /// Starts the process without waiting for anything.
    pub fn spawn(w: &World, mnt: &Path, extra: &[&str]) -> Mount {
        Mount::spawn_cmd(w, w.cmd(), mnt, extra)
    }

    /// Starts `cmd mount extra... MNT` without waiting for anything.
    pub fn spawn_cmd(w: &World, mut cmd: Command, mnt: &Path, extra: &[&str]) -> Mount {
        fs::create_dir_all(mnt).ok();
        let mnt = fs::canonicalize(mnt).unwrap_or_else(|_| mnt.to_path_buf());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let stderr_path = w.path(&format!("mount-{n}.stderr"));
        let err = fs::File::create(&stderr_path).expect("stderr file");
        let out = err.try_clone().expect("stderr file");
        cmd.arg("mount").args(extra).arg(&mnt).stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start chkfs mount: {e}"));
        let watchdog = Watchdog::start(&mnt, LIFETIME);
        watchdog.watch(child.id());
        Mount { mnt, child: Some(child), stderr_path, watchdog }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("mount process").id()
    }

    /// What the mount process wrote so far (stdout and stderr).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }

    /// Polls until MNT is a FUSE mount in /proc/mounts and MNT/snapshots
    /// can be listed; panics (cleaning up) after READY or if the process
    /// exits first.
    pub fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(code) = self.try_wait() {
                panic!("chkfs mount exited with status {code} before the mount was ready; output:\n{}", self.stderr());
            }
            // Only look inside once mounted, and through ls with a
            // deadline, so that a hung server cannot hang the test.
            if is_fuse_mounted(&self.mnt) {
                let ls = run_with_timeout(Command::new("ls").arg(self.mnt.join("snapshots")), Duration::from_secs(10));
                if ls.code == 0 {
                    return;
                }
            }
            assert!(
                start.elapsed() < READY,
                "{} not mounted and listable after {READY:?}; /proc/mounts type {:?}; output:\n{}",
                self.mnt.display(),
                mount_type(&self.mnt),
                self.stderr()
            );
            std::thread::sleep(POLL);
        }
    }

    /// The exit status if the process has ended.
    pub fn try_wait(&mut self) -> Option<i32> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().ok().flatten()?;
        self.watchdog.forget(child.id());
        Some(status_code(status))
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_wait().is_none()
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let code = self.child.as_mut().and_then(|c| wait_quietly(c, timeout));
        if code.is_some() {
            self.watchdog.forget(self.pid());
        }
        code
    }

    /// SIGTERM, then waits EXIT for the exit status (None: still running).
    pub fn terminate(&mut self) -> Option<i32> {
        if self.try_wait().is_none() {
            signal(self.pid(), libc::SIGTERM);
        }
        self.wait_exit(EXIT)
    }

    /// A snapshot's directory.
    pub fn snap(&self, id: &str) -> PathBuf {
        self.mnt.join("snapshots").join(id)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // The watchdog stays armed until the end of this function.
        let Some(mut child) = self.child.take() else {
            force_unmount(&self.mnt);
            return;
        };
        if let Ok(None) = child.try_wait() {
            signal(child.id(), libc::SIGTERM);
            wait_quietly(&mut child, EXIT);
        }
        force_unmount(&self.mnt);
        if let Ok(None) = child.try_wait() {
            eprintln!("mount harness: chkfs mount (pid {}) ignored SIGTERM; killing it", child.id());
            let _ = child.kill();
            wait_quietly(&mut child, EXIT);
        }
        // A server killed while mounted leaves a dead mount behind.
        force_unmount(&self.mnt);
    }
}

// ------------------------------------------------------------ helpers

/// Runs `program args` in directory `dir`, with the default deadline.
pub fn sh_in<I, S>(dir: &Path, program: &str, args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with_timeout(Command::new(program).current_dir(dir).args(args), TIMEOUT)
}

/// The snapshot id of a `save --json` result.
pub fn id_of(saved: &serde_json::Value) -> String {
    saved["id"].as_str().unwrap_or_else(|| panic!("no id in {saved}")).to_string()
}

/// Every path below `root` (relative, sorted, the root as "."), as OS
/// strings for command lines.
pub fn relative_paths(root: &Path) -> Vec<std::ffi::OsString> {
    walk(root)
        .keys()
        .map(|k| {
            if k.is_empty() {
                ".".into()
            } else {
                let mut p = b"./".to_vec();
                p.extend_from_slice(k);
                std::ffi::OsStr::from_bytes(&p).to_os_string()
            }
        })
        .collect()
}

/// A listing of every file under `dir` with its type, size, mtime (ns)
/// and an xxh3 of its content: equal listings mean untouched files.
pub fn fingerprint(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (rel, m) in walk(dir) {
        let full = if rel.is_empty() { dir.to_path_buf() } else { dir.join(OsStr::from_bytes(&rel)) };
        let hash = if m.kind == "file" {
            format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&fs::read(&full).unwrap()))
        } else {
            String::new()
        };
        let ino = fs::symlink_metadata(&full).map(|m| m.ino()).unwrap_or(0);
        out.push(format!(
            "{} {} size={} mtime={}.{:09} mode={:o} ino={ino} {hash}",
            String::from_utf8_lossy(&rel),
            m.kind,
            m.size,
            m.mtime.0,
            m.mtime.1,
            m.perm
        ));
    }
    out
}

/// Data regions of an open file found with SEEK_DATA/SEEK_HOLE, rounded
/// out to 4 KiB and merged.
pub fn data_regions(f: &fs::File, size: u64) -> Result<Vec<(u64, u64)>, String> {
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    let mut raw = Vec::new();
    let mut pos: i64 = 0;
    while (pos as u64) < size {
        // SAFETY: lseek on a descriptor owned by `f`.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break;
            }
            return Err(format!("lseek(SEEK_DATA, {pos}): {e}"));
        }
        if data < pos {
            return Err(format!("lseek(SEEK_DATA, {pos}) went backwards to {data}"));
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(format!("lseek(SEEK_HOLE, {data}): {}", std::io::Error::last_os_error()));
        }
        if hole <= data {
            return Err(format!("lseek(SEEK_HOLE, {data}) = {hole}: no progress"));
        }
        raw.push((data as u64, hole as u64));
        pos = hole;
    }
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (a, b) in raw {
        let (a, b) = (a / 4096 * 4096, b.div_ceil(4096) * 4096);
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    Ok(merged)
}

/// pread until `len` bytes or end of file.
pub fn pread_full(f: &fs::File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = f.read_at(&mut buf[got..], offset + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

/// A small deterministic generator for offsets and sizes.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The raw errno of a failed call, or a panic naming `what` if it worked.
#[track_caller]
pub fn errno_of<T: std::fmt::Debug>(what: &str, r: std::io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("{what} succeeded on the read-only mount ({v:?})"),
        Err(e) => e.raw_os_error().unwrap_or_else(|| panic!("{what}: error without errno: {e}")),
    }
}

impl Mount {
    /// The mount's own counters (`user.chkfs.stats` on its root).
    pub fn stats(&self) -> serde_json::Value {
        let raw = xattr::get(&self.mnt, "user.chkfs.stats").expect("reading the mount's stats").expect("stats present");
        serde_json::from_slice(&raw).expect("stats are JSON")
    }
}

/// Requests of every kind the mount has answered.
pub fn requests(stats: &serde_json::Value) -> u64 {
    stats["requests"].as_object().expect("requests").values().map(|v| v.as_u64().expect("a count")).sum()
}
