//! Shared helpers for the command-line tests: running commands with a
//! deadline, temporary directories under CARGO_TARGET_TMPDIR (a real
//! filesystem, so `user.*` xattrs and sparse files work), a chkfs runner
//! that never touches the real home, and a recursive comparison of trees.

#![allow(dead_code)]

pub mod forge;
pub mod manifest;
pub mod pty;

#[allow(dead_code)]
pub mod s3;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const CHKFS: &str = env!("CARGO_BIN_EXE_chkfs");

/// Deadline for an ordinary command.
pub const TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------- running

/// The result of a command: `code` is the exit status, or minus the
/// signal number when a signal ended it.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub what: String,
}

impl Out {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!("{}: stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.what, self.stdout_str(), self.stderr)
        })
    }

    /// Panics with the whole output unless the exit status is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "{}: expected exit status {code}, got {}\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.code,
            self.stdout_str(),
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }
}

pub fn status_code(s: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => -sig,
        (None, None) => i32::MIN,
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion, killing it (and failing the test) when it
/// takes longer than `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Out {
    use std::os::unix::process::CommandExt;
    let what = describe(cmd);
    // Its own process group, so a timeout also kills what it started
    // (the program under /usr/bin/time keeps the output pipes open).
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let mut so = child.stdout.take().expect("piped");
    let mut se = child.stderr.take().expect("piped");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let status = match wait_deadline(&mut child, timeout) {
        Some(s) => s,
        None => {
            // SAFETY: kill(2) on the group this child leads; no memory involved.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            let err = t_err.join().unwrap_or_default();
            panic!("{what}: still running after {timeout:?}; killed\nstderr:\n{}", String::from_utf8_lossy(&err));
        }
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    Out { code: status_code(status), stdout, stderr, what }
}

/// A child process that is killed (SIGKILL, which also ends a stopped
/// process) and reaped when dropped, so a failing test leaves nothing
/// running.
pub struct Running(pub Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs a command to completion; returns its output and peak memory
/// (KiB), which GNU time writes to `report`.
pub fn run_measured(cmd: &mut std::process::Command, report: &Path) -> (Out, u64) {
    let mut timed = std::process::Command::new("/usr/bin/time");
    timed.arg("-f").arg("%M").arg("-o").arg(report).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let out = run_with_timeout(&mut timed, TIMEOUT);
    let kib = fs::read_to_string(report).unwrap().trim().lines().last().unwrap().parse().unwrap();
    (out, kib)
}

/// Waits for `child` until `timeout`; None when it is still running.
pub fn wait_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits for a condition, polling; panics with `what` after `timeout`.
pub fn poll_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs an external tool with the default deadline.
pub fn sh<I, S>(program: &str, args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with_timeout(Command::new(program).args(args), TIMEOUT)
}

/// `diff -r --no-dereference`, leaving out the given base names (fifos
/// always differ for diff, and huge sparse files are compared otherwise).
#[track_caller]
pub fn assert_diff_equal(a: &Path, b: &Path, exclude: &[&str]) {
    let mut args: Vec<OsString> = vec!["-r".into(), "--no-dereference".into()];
    for x in exclude {
        args.push("-x".into());
        args.push(x.into());
    }
    args.push(a.into());
    args.push(b.into());
    let out = sh("diff", &args);
    assert_eq!(
        out.code,
        0,
        "diff -r {} {} found differences:\n{}{}",
        a.display(),
        b.display(),
        out.stdout_str(),
        out.stderr
    );
}

// ---------------------------------------------------------------- temp dirs

/// A temporary directory under CARGO_TARGET_TMPDIR (not tmpfs).
pub fn tempdir() -> tempfile::TempDir {
    fs::create_dir_all(env!("CARGO_TARGET_TMPDIR")).expect("CARGO_TARGET_TMPDIR");
    tempfile::Builder::new()
        .prefix("chkfs-test-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("creating a temporary directory")
}

/// One test's world: a temporary directory holding the repository, a
/// private XDG_DATA_HOME and HOME, and whatever sources the test makes.
pub struct World {
    pub dir: tempfile::TempDir,
    /// A local path, or an s3:// URL (then `env` says how to reach it).
    pub repo: PathBuf,
    pub xdg: PathBuf,
    pub home: PathBuf,
    /// Set for every chkfs command (the S3 endpoint and credentials).
    pub env: Vec<(String, String)>,
}

/// Empties the world with chkfs's own iterative removal before the
/// temporary directory's drop, whose recursive removal overflows the
/// stack on the 100,000-deep trees some tests make (and would hide the
/// failure that left them behind).
impl Drop for World {
    fn drop(&mut self) {
        let Ok(root) = chkfs::dirfd::Dir::open_path(self.dir.path()) else { return };
        for name in root.names().unwrap_or_default() {
            let _ = root.remove_all(&name, &[]);
        }
    }
}

impl World {
    /// A world whose repository is not created yet.
    pub fn new() -> World {
        let dir = tempdir();
        let repo = dir.path().join("repo");
        let xdg = dir.path().join("xdg");
        let home = dir.path().join("home");
        fs::create_dir_all(&xdg).unwrap();
        fs::create_dir_all(&home).unwrap();
        World { dir, repo, xdg, home, env: Vec::new() }
    }

    /// A world with an initialised repository.
    pub fn with_repo() -> World {
        let w = World::new();
        w.chkfs(["init"]).ok();
        assert!(w.repo.join("config").is_file());
        w
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The chkfs command with a clean environment: no CHKFS_REPO, no
    /// fault hook, XDG_DATA_HOME and HOME inside the world. No --repo.
    pub fn bare_cmd(&self) -> Command {
        let mut c = Command::new(CHKFS);
        c.env_remove("CHKFS_REPO")
            .env_remove("CHKFS_FAULT_ABORT_AFTER_WRITES")
            .env("XDG_DATA_HOME", &self.xdg)
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env("HOME", &self.home);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// The chkfs command with `--repo REPO`.
    pub fn cmd(&self) -> Command {
        let mut c = self.bare_cmd();
        c.arg("--repo").arg(&self.repo);
        c
    }

    pub fn chkfs<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_with_timeout(self.cmd().args(args), TIMEOUT)
    }

    /// `save --json DIR extra...`, which must exit 0; returns its JSON.
    pub fn save(&self, src: &Path, extra: &[&str]) -> serde_json::Value {
        let out = self.chkfs(
            [OsStr::new("save"), OsStr::new("--json"), src.as_os_str()].into_iter().chain(extra.iter().map(OsStr::new)),
        );
        out.ok();
        out.json()
    }

    /// `restore SPEC TARGET`, which must exit 0.
    pub fn restore(&self, spec: &str, target: &Path) -> Out {
        let out = self.chkfs([OsStr::new("restore"), OsStr::new(spec), target.as_os_str()]);
        out.ok();
        out
    }

    /// `check --read-data --json`; returns (exit status, report).
    pub fn check(&self) -> (i32, serde_json::Value, Out) {
        let out = self.chkfs(["check", "--read-data", "--json"]);
        let json = out.json();
        (out.code, json, out)
    }

    /// `list --json`.
    pub fn list(&self) -> Vec<serde_json::Value> {
        let out = self.chkfs(["list", "--json"]);
        out.ok();
        out.json().as_array().expect("list --json is an array").clone()
    }
}

/// Non-directories under `root` (recursively) for which `pred` holds.
pub fn find_files(root: &Path, pred: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) if pred(&p) => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

pub fn pack_files(repo: &Path) -> Vec<PathBuf> {
    find_files(&repo.join("packs"), &|p| {
        p.extension() == Some(OsStr::new("pack")) && !p.file_name().unwrap().as_bytes().starts_with(b".tmp-")
    })
}

pub fn temp_files(repo: &Path) -> Vec<PathBuf> {
    find_files(repo, &|p| p.file_name().unwrap().as_bytes().starts_with(b".tmp-"))
}

/// Deterministic incompressible bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Sets a path's mtime (and atime) with nanoseconds; does not follow
/// symlinks.
pub fn set_mtime(path: &Path, secs: i64, nanos: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let t = libc::timespec { tv_sec: secs as libc::time_t, tv_nsec: nanos as libc::c_long };
    let times = [t, t];
    // SAFETY: valid NUL-terminated path and a two-element array.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    assert_eq!(rc, 0, "utimensat {}: {}", path.display(), std::io::Error::last_os_error());
}

pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// chown -R, not following symlinks.
pub fn chown_r(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for e in fs::read_dir(path).unwrap() {
            chown_r(&e.unwrap().path(), uid, gid);
        }
    }
}

// ---------------------------------------------------------------- trees

/// What the comparison looks at for one path (lstat, link target, xattrs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub kind: &'static str,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, i64),
    pub rdev: u64,
    pub link_target: Option<Vec<u8>>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub ino: u64,
    pub nlink: u64,
}

fn kind_of(ft: &fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else {
        "unknown"
    }
}

pub fn xattrs_of(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(_) => return out,
    };
    for name in names {
        let value = xattr::get(path, &name).ok().flatten().unwrap_or_default();
        out.push((name.as_bytes().to_vec(), value));
    }
    out.sort();
    out
}

pub fn meta_of(path: &Path) -> Meta {
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    let kind = kind_of(&m.file_type());
    let link_target = (kind == "symlink").then(|| fs::read_link(path).unwrap().as_os_str().as_bytes().to_vec());
    Meta {
        kind,
        perm: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        rdev: m.rdev(),
        link_target,
        xattrs: if kind == "symlink" { Vec::new() } else { xattrs_of(path) },
        ino: m.ino(),
        nlink: m.nlink(),
    }
}

/// Every path below `root` (relative, raw bytes) with its metadata; the
/// root itself is the empty path.
pub fn walk(root: &Path) -> BTreeMap<Vec<u8>, Meta> {
    let mut out = BTreeMap::new();
    fn go(root: &Path, rel: &[u8], out: &mut BTreeMap<Vec<u8>, Meta>) {
        let full = if rel.is_empty() { root.to_path_buf() } else { root.join(OsStr::from_bytes(rel)) };
        let m = meta_of(&full);
        let is_dir = m.kind == "dir";
        out.insert(rel.to_vec(), m);
        if is_dir {
            for e in fs::read_dir(&full).unwrap() {
                let e = e.unwrap();
                let mut child = rel.to_vec();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(e.file_name().as_bytes());
                go(root, &child, out);
            }
        }
    }
    go(root, b"", &mut out);
    out
}

fn show(p: &[u8]) -> String {
    if p.is_empty() {
        "<root>".into()
    } else {
        format!("{:?}", String::from_utf8_lossy(p))
    }
}

/// Compares two trees' metadata (not content: see `assert_diff_equal`):
/// the same paths with the same type, permission bits (not for symlinks),
/// owner, size, mtime with nanoseconds, device numbers, symlink targets,
/// xattrs, and the same hard-link groups (paths sharing an inode), with a
/// link count equal to the group's size in `restored`. The roots are
/// compared too unless `compare_root` is false. Returns the differences.
pub fn tree_differences(source: &Path, restored: &Path, compare_root: bool) -> Vec<String> {
    let a = walk(source);
    let b = walk(restored);
    let mut diffs = Vec::new();
    let names_a: BTreeSet<_> = a.keys().collect();
    let names_b: BTreeSet<_> = b.keys().collect();
    for p in names_a.difference(&names_b) {
        diffs.push(format!("{} missing from the restore", show(p)));
    }
    for p in names_b.difference(&names_a) {
        diffs.push(format!("{} only in the restore", show(p)));
    }
    for p in names_a.intersection(&names_b) {
        if p.is_empty() && !compare_root {
            continue;
        }
        let (x, y) = (&a[*p], &b[*p]);
        let mut d = Vec::new();
        if x.kind != y.kind {
            d.push(format!("type {} vs {}", x.kind, y.kind));
        }
        if x.kind != "symlink" && x.perm != y.perm {
            d.push(format!("mode {:o} vs {:o}", x.perm, y.perm));
        }
        if (x.uid, x.gid) != (y.uid, y.gid) {
            d.push(format!("owner {}:{} vs {}:{}", x.uid, x.gid, y.uid, y.gid));
        }
        if x.kind != "dir" && x.size != y.size {
            d.push(format!("size {} vs {}", x.size, y.size));
        }
        if x.mtime != y.mtime {
            d.push(format!("mtime {:?} vs {:?}", x.mtime, y.mtime));
        }
        if (x.kind == "char" || x.kind == "block") && x.rdev != y.rdev {
            d.push(format!("rdev {} vs {}", x.rdev, y.rdev));
        }
        if x.link_target != y.link_target {
            d.push(format!(
                "symlink target {:?} vs {:?}",
                x.link_target.as_deref().map(String::from_utf8_lossy),
                y.link_target.as_deref().map(String::from_utf8_lossy)
            ));
        }
        if x.xattrs != y.xattrs {
            d.push(format!("xattrs {:?} vs {:?}", x.xattrs, y.xattrs));
        }
        if !d.is_empty() {
            diffs.push(format!("{}: {}", show(p), d.join("; ")));
        }
    }
    // Hard links: the same groups of names, and as many links as names.
    let groups = |t: &BTreeMap<Vec<u8>, Meta>| -> HashMap<Vec<u8>, BTreeSet<Vec<u8>>> {
        let mut by_ino: HashMap<u64, BTreeSet<Vec<u8>>> = HashMap::new();
        for (p, m) in t {
            if m.kind != "dir" {
                by_ino.entry(m.ino).or_default().insert(p.clone());
            }
        }
        let mut out = HashMap::new();
        for set in by_ino.values() {
            for p in set {
                out.insert(p.clone(), set.clone());
            }
        }
        out
    };
    let (ga, gb) = (groups(&a), groups(&b));
    for (p, set_a) in &ga {
        if let Some(set_b) = gb.get(p) {
            if set_a != set_b {
                diffs.push(format!(
                    "{}: hard-link group {:?} vs {:?}",
                    show(p),
                    set_a.iter().map(|s| show(s)).collect::<Vec<_>>(),
                    set_b.iter().map(|s| show(s)).collect::<Vec<_>>()
                ));
            }
            let m = &b[p];
            if m.kind == "file" && m.nlink != set_b.len() as u64 {
                diffs.push(format!("{}: {} links in the restore for {} names", show(p), m.nlink, set_b.len()));
            }
        }
    }
    diffs.sort();
    diffs
}

#[track_caller]
pub fn assert_same_tree(source: &Path, restored: &Path, compare_root: bool) {
    let d = tree_differences(source, restored, compare_root);
    assert!(d.is_empty(), "{} and {} differ:\n  {}", source.display(), restored.display(), d.join("\n  "));
}

/// `cp -a` with a deadline.
pub fn copy_tree(from: &Path, to: &Path) {
    sh("cp", [OsStr::new("-a"), from.as_os_str(), to.as_os_str()]).ok();
}

/// `rm -rf` with a deadline (handles read-only directories as root).
pub fn remove_tree(p: &Path) {
    if p.exists() || fs::symlink_metadata(p).is_ok() {
        sh("rm", [OsStr::new("-rf"), p.as_os_str()]).ok();
    }
}
