//! A source tree that fights back: files replaced while the save reads
//! them (by an editor's rename-over save, or an attacker), FIFOs swapped
//! in after the scan, ignore files that are FIFOs, symlinks to /dev/zero,
//! huge or invalid; and a save that must stop within a second of SIGTERM
//! whatever it waits for.

mod common;

use chkfs::format::pack::BlobKind;
use chkfs::format::tree::{Extent, Node};
use chkfs::store::{BlobReader, Repository};
use common::*;
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &[u8] = b"root-only secret\n";
const PUBLIC: &[u8] = b"anyone may read this, it is public\n";

/// Replaces `f` over and over: a root-only 0600 file, a user's 0644 file,
/// a FIFO, each renamed over the name, as editors and attackers do.
const SWAPPER: &str = r#"
import os, sys
d = sys.argv[1]
print("ready", flush=True)
n = 0
while True:
    n += 1
    t = os.path.join(d, ".swap-%d" % n)
    kind = n % 3
    if kind == 0:
        open(t, "wb").write(b"root-only secret\n"); os.chmod(t, 0o600)
    elif kind == 1:
        open(t, "wb").write(b"anyone may read this, it is public\n"); os.chown(t, 1000, 1000); os.chmod(t, 0o644)
    else:
        os.mkfifo(t, 0o644)
    os.rename(t, os.path.join(d, "f"))
"#;

/// The stored `f`: (uid, mode, content), or None when it is not a file.
fn stored_f(repo: &Arc<Repository>, id: &str) -> Option<(u32, u32, Vec<u8>)> {
    let snap = repo.read_snapshot(chkfs::format::SnapshotId::from_hex(id).unwrap()).unwrap().unwrap();
    let index = Arc::new(repo.load_index().unwrap().index);
    let reader = BlobReader::new(repo.clone(), index, 1 << 20);
    let tree = reader.read_tree(snap.root_tree()).unwrap();
    let e = tree.find(b"f")?;
    let Node::File { content } = &e.node else { return None };
    let mut bytes = Vec::new();
    for x in content {
        if let Extent::Data { id, .. } = x {
            bytes.extend_from_slice(&reader.read(BlobKind::Data, *id).unwrap());
        }
    }
    Some((e.uid, e.mode, bytes))
}

/// Defect 2: what is stored for a file was all read from one descriptor:
/// the content of the root-only file is never stored under the user's
/// owner and mode, and a FIFO swapped in never hangs the save.
#[test]
fn a_file_replaced_during_the_save_is_stored_with_its_own_owner_and_mode() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("many")).unwrap();
    // Many files widen the window between the scan and the reads.
    for i in 0..3000 {
        fs::write(src.join(format!("many/{i:04}")), format!("{i}\n")).unwrap();
    }
    fs::write(src.join("f"), PUBLIC).unwrap();
    let swapper = Command::new("/usr/bin/python3")
        .args(["-c", SWAPPER])
        .arg(&src)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut swapper = Running(swapper);
    let mut line = String::new();
    BufReader::new(swapper.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let repo = Arc::new(Repository::open_local(&w.repo).unwrap());
    let mut seen = [0; 3];
    for _ in 0..25 {
        let out = w.chkfs(["save", "--json", "--force-read", src.to_str().unwrap()]);
        assert!(out.code == 0 || out.code == 3, "{}", out.stderr);
        let id = out.json()["id"].as_str().unwrap().to_string();
        match stored_f(&repo, &id) {
            Some((uid, mode, content)) if content == SECRET => {
                assert_eq!((uid, mode), (0, 0o600), "the root-only content is stored as the user's file");
                seen[0] += 1;
            }
            Some((uid, mode, content)) if content == PUBLIC => {
                assert_eq!((uid, mode), (1000, 0o644), "the user's file is stored with the wrong owner");
                seen[1] += 1;
            }
            Some((_, _, content)) => panic!("f stored as {content:?}"),
            None => seen[2] += 1,
        }
    }
    eprintln!("stored: {} secret, {} public, {} not a file", seen[0], seen[1], seen[2]);
}

fn save_ignoring(w: &World, src: &std::path::Path) -> Out {
    let mut cmd = w.cmd();
    cmd.args(["save", "--json"]).arg(src);
    run_with_timeout(&mut cmd, Duration::from_secs(60))
}

fn saved_names(w: &World, id: &str) -> Vec<String> {
    let out = w.path(&format!("restored-{id}"));
    w.restore(id, &out);
    let mut names: Vec<String> = walk(&out).keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    names.sort();
    names
}

/// Puts a hostile ignore file into a directory.
type Plant = dyn Fn(&std::path::Path);

/// Defect 3: an ignore file that is a FIFO, a symlink (to /dev/zero), too
/// large, or has a bad or non-UTF-8 line never stops or hangs the save:
/// a warning names the file (and line), the rest applies, exit status 3.
#[test]
fn hostile_ignore_files_are_warnings() {
    let w = World::with_repo();
    let src = w.path("src");
    let cases: [(&str, &Plant, &str); 5] = [
        (
            "fifo",
            &|d| sh("mkfifo", [d.join(".chkfsignore").as_os_str()]).ok().code.eq(&0).then_some(()).unwrap(),
            "not a regular file",
        ),
        (
            "zero",
            &|d| std::os::unix::fs::symlink("/dev/zero", d.join(".chkfsignore")).unwrap(),
            "Too many levels of symbolic links",
        ),
        ("huge", &|d| fs::write(d.join(".chkfsignore"), vec![b'#'; 2 << 20]).unwrap(), "larger than"),
        (
            "bad-line",
            &|d| fs::write(d.join(".chkfsignore"), "*.log\na{b\n").unwrap(),
            "line 2: pattern not used: error parsing glob",
        ),
        (
            "not-utf8",
            &|d| fs::write(d.join(".chkfsignore"), b"*.log\n\xff\xfe\n").unwrap(),
            "line 2: pattern not used: it is not UTF-8",
        ),
    ];
    for (name, make, says) in cases {
        let d = src.join(name);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("kept.txt"), b"kept\n").unwrap();
        fs::write(d.join("left-out.log"), b"log\n").unwrap();
        make(&d);
        let out = save_ignoring(&w, &src);
        assert_eq!(out.code, 3, "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{name}/.chkfsignore")) && out.stderr.contains(says),
            "{name}: {}",
            out.stderr
        );
        let names = saved_names(&w, out.json()["id"].as_str().unwrap());
        assert!(names.contains(&format!("{name}/kept.txt")), "{name}: {names:?}");
        if name == "bad-line" || name == "not-utf8" {
            assert!(!names.contains(&format!("{name}/left-out.log")), "{name}: the good line applies: {names:?}");
        }
        remove_tree(&d);
    }
}

/// Defect 2: SIGTERM stops a save within a second, and the save takes
/// its writer marker with it.
#[test]
fn sigterm_stops_a_save_within_a_second() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big"), random_bytes(64 << 20, 9)).unwrap();
    let mut cmd = w.cmd();
    cmd.args([OsStr::new("save"), src.as_os_str()]);
    let mut save = Running(cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap());
    let pid = save.id();
    let named = |e: &fs::DirEntry| e.file_name().to_string_lossy().ends_with(".wrt");
    let markers = || fs::read_dir(w.repo.join("writers")).map(|d| d.flatten().filter(named).count()).unwrap_or(0);
    poll_until(Duration::from_secs(30), "the save's marker", || markers() > 0);
    // SAFETY: kill(2) on the save this test started.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
    let sent = Instant::now();
    // SAFETY: as above.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
        libc::kill(pid as libc::pid_t, libc::SIGCONT);
    }
    let status = wait_deadline(&mut save, Duration::from_secs(10)).expect("the save ignored SIGTERM");
    let took = sent.elapsed();
    assert!(took < Duration::from_millis(1500), "the save took {took:?} to stop");
    assert_eq!(status_code(status), 130);
    assert_eq!(markers(), 0, "an interrupted save leaves no marker");
}

/// Swaps `b/first` between a new file and a hard link to `c/second`,
/// which keeps its content: a save must never give `c/second` the new
/// file's content, nor drop it.
const LINK_SWAPPER: &str = r#"
import os, sys
d = sys.argv[1]
first, second = os.path.join(d, "b", "first"), os.path.join(d, "c", "second")
print("ready", flush=True)
n = 0
while True:
    n += 1
    t = os.path.join(d, "b", ".t%d" % n)
    if n % 2:
        open(t, "wb").write(b"NEW VERSION\n")
    else:
        os.link(second, t)
    os.rename(t, first)
"#;

fn stored_content(repo: &Arc<Repository>, id: &str, dir: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let snap = repo.read_snapshot(chkfs::format::SnapshotId::from_hex(id).unwrap()).unwrap().unwrap();
    let index = Arc::new(repo.load_index().unwrap().index);
    let reader = BlobReader::new(repo.clone(), index, 1 << 20);
    let root = reader.read_tree(snap.root_tree()).unwrap();
    let Node::Dir { tree } = root.find(dir)?.node else { return None };
    let e = reader.read_tree(tree).unwrap().find(name)?.clone();
    let Node::File { content } = &e.node else { return None };
    let mut bytes = Vec::new();
    for x in content {
        if let Extent::Data { id, .. } = x {
            bytes.extend_from_slice(&reader.read(BlobKind::Data, *id).unwrap());
        }
    }
    Some(bytes)
}

#[test]
fn a_hard_link_whose_first_name_changes_keeps_the_other_names_content() {
    let w = World::with_repo();
    let src = w.path("src");
    for d in ["a", "b", "c"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    // Files read before the group widen the window.
    for i in 0..2000 {
        fs::write(src.join(format!("a/{i:04}")), format!("{i}\n")).unwrap();
    }
    fs::write(src.join("c/second"), b"ORIGINAL\n").unwrap();
    fs::hard_link(src.join("c/second"), src.join("b/first")).unwrap();
    let mut swapper = Running(
        Command::new("/usr/bin/python3")
            .args(["-c", LINK_SWAPPER])
            .arg(&src)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(swapper.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let repo = Arc::new(Repository::open_local(&w.repo).unwrap());
    for _ in 0..25 {
        let out = w.chkfs(["save", "--json", "--force-read", src.to_str().unwrap()]);
        assert!(out.code == 0 || out.code == 3, "{}", out.stderr);
        let id = out.json()["id"].as_str().unwrap().to_string();
        let second = stored_content(&repo, &id, b"c", b"second");
        assert_eq!(second.as_deref(), Some(&b"ORIGINAL\n"[..]), "c/second stored wrong or dropped:\n{}", out.stderr);
    }
}

/// One 1 MiB ignore file hard-linked into every level of a deep tree: the
/// save's ignore files together are bounded, so it costs no more than a
/// few of them (it used to need gigabytes).
#[test]
fn an_ignore_file_in_every_level_is_bounded_as_a_whole() {
    let w = World::with_repo();
    let src = w.path("src");
    let mut d = src.clone();
    fs::create_dir_all(&d).unwrap();
    let patterns: String = (0..70_000).map(|i| format!("n{i:08}\n")).collect();
    assert!(patterns.len() < 1 << 20);
    fs::write(src.join(".chkfsignore"), &patterns).unwrap();
    for _ in 0..40 {
        d.push("d");
        fs::create_dir(&d).unwrap();
        fs::hard_link(src.join(".chkfsignore"), d.join(".chkfsignore")).unwrap();
    }
    fs::write(d.join("kept"), b"kept\n").unwrap();
    let mut cmd = w.cmd();
    cmd.args(["save", "--json"]).arg(&src);
    let (out, kib) = run_measured(&mut cmd, &w.path("time.txt"));
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("the ignore files of this save together exceed"), "{}", out.stderr);
    assert!(kib < 1 << 20, "the save used {kib} KiB");
}

/// A kernel filesystem inside the source (here /proc, bound in) is saved
/// as an empty directory: reading /proc/*/pagemap alone would never end.
#[test]
fn kernel_filesystems_are_saved_empty() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(std::env::var("CI").is_err(), "this test needs root to bind-mount, and CI runs as root");
        eprintln!("\n*** SKIPPING kernel filesystem test: bind mounts need root ***\n");
        return;
    }
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("proc")).unwrap();
    fs::write(src.join("file"), b"kept\n").unwrap();
    sh("mount", [OsStr::new("--bind"), OsStr::new("/proc"), src.join("proc").as_os_str()]).ok();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = sh("umount", [OsStr::new("-l"), self.0.as_os_str()]);
        }
    }
    let _unmount = Unmount(src.join("proc"));
    let out = save_ignoring(&w, &src);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("a proc filesystem; its contents are not saved"), "{}", out.stderr);
    let names = saved_names(&w, out.json()["id"].as_str().unwrap());
    assert_eq!(names, vec!["".to_string(), "file".to_string(), "proc".to_string()]);
}
