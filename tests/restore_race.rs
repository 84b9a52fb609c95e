//! Root restores into a directory an unprivileged user can write (its own
//! home, say), while that user swaps every directory restore creates for
//! a symlink to a root-owned directory. Nothing outside the target may be
//! created, written, chowned or chmodded, however the race falls.

mod common;

use common::*;
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

const ROUNDS: usize = 12;
const DIRS: usize = 150;

/// The racer, as uid 65534: swap every directory in TARGET for a symlink
/// to VICTIM (rmdir works on an empty directory of any owner in a
/// directory one may write). The release before this test's fix chmodded
/// VICTIM to 0777 on every run.
/// It says "ready" once it runs, and on SIGTERM writes how many swaps it
/// made to STATS.
const RACER: &str = r#"
import os, signal, sys
target, victim, stats = sys.argv[1], sys.argv[2], sys.argv[3]
names = [k + "%03d" % i for i in range(150) for k in "de"]
swaps = 0
def done(*_):
    open(stats, "w").write(str(swaps))
    os._exit(0)
signal.signal(signal.SIGTERM, done)
print("ready", flush=True)
while True:
    for n in names:
        p = os.path.join(target, n)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                os.rmdir(p)
                os.symlink(victim, p)
                swaps += 1
        except OSError:
            pass
"#;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn victim_state(victim: &Path) -> (u32, u32, Vec<String>, Vec<u8>) {
    let m = fs::symlink_metadata(victim).unwrap();
    let mut names: Vec<String> =
        fs::read_dir(victim).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    (m.mode() & 0o7777, m.uid(), names, fs::read(victim.join("precious")).unwrap())
}

#[test]
fn an_unprivileged_racer_cannot_make_restore_touch_anything_outside_the_target() {
    if !is_root() {
        assert!(std::env::var("CI").is_err(), "this test needs root, and CI runs as root");
        eprintln!("\n*** SKIPPING restore race test: it needs root ***\n");
        return;
    }
    let w = World::with_repo();
    chmod(w.dir.path(), 0o755);
    let src = w.path("src");
    for i in 0..DIRS {
        let d = src.join(format!("d{i:03}"));
        fs::create_dir_all(d.join("inner")).unwrap();
        fs::write(d.join("inner/file"), format!("content {i}\n")).unwrap();
        chmod(&d, 0o777);
        fs::write(src.join(format!("f{i:03}")), format!("top {i}\n")).unwrap();
        // Empty directories stay empty, so removable, until the very end.
        fs::create_dir(src.join(format!("e{i:03}"))).unwrap();
        chmod(&src.join(format!("e{i:03}")), 0o777);
        chmod(&src.join(format!("f{i:03}")), 0o4755);
    }
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let victim = w.path("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("precious"), b"root's data\n").unwrap();
    chmod(&victim, 0o755);
    let before = victim_state(&victim);
    let target = w.path("target");
    let stats_dir = w.path("racer");
    fs::create_dir(&stats_dir).unwrap();
    std::os::unix::fs::chown(&stats_dir, Some(65534), Some(65534)).unwrap();
    let mut swaps = 0;
    for round in 0..ROUNDS {
        remove_tree(&target);
        fs::create_dir(&target).unwrap();
        std::os::unix::fs::chown(&target, Some(65534), Some(65534)).unwrap();
        let stats = stats_dir.join(format!("round-{round}"));
        let mut racer = Running(
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", RACER])
                .args([target.as_os_str(), victim.as_os_str(), stats.as_os_str()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut ready = String::new();
        BufReader::new(racer.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "ready");
        let force = if round % 2 == 0 { "--force" } else { "--json" };
        let out = w.chkfs([OsStr::new("restore"), OsStr::new(force), OsStr::new(&id), target.as_os_str()]);
        // SAFETY: kill(2) on the racer this test started.
        unsafe { libc::kill(racer.id() as libc::pid_t, libc::SIGTERM) };
        wait_deadline(&mut racer, TIMEOUT).expect("the racer stops");
        swaps += fs::read_to_string(&stats).unwrap().parse::<u64>().unwrap();
        assert!(out.code == 0 || out.code == 3 || out.code == 1, "round {round}: {}", out.stderr);
        assert_eq!(victim_state(&victim), before, "round {round}: the victim directory changed\n{}", out.stderr);
    }
    // The test proves something only if the racer won some races.
    assert!(swaps > 0, "the racer never swapped a directory");
    eprintln!("restore race: {swaps} directories swapped for symlinks over {ROUNDS} rounds");
}

/// The target itself, or a directory on its path, is a symlink its owner
/// planted: root's restore is not sent through it.
#[test]
fn a_symlink_planted_at_the_target_is_not_followed() {
    if !is_root() {
        assert!(std::env::var("CI").is_err(), "this test needs root, and CI runs as root");
        eprintln!("\n*** SKIPPING target symlink test: it needs root ***\n");
        return;
    }
    let w = World::with_repo();
    chmod(w.dir.path(), 0o755);
    let src = w.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/file"), b"restored\n").unwrap();
    chmod(&src, 0o777);
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let victim = w.path("rootonly");
    fs::create_dir(&victim).unwrap();
    chmod(&victim, 0o700);
    let home = w.path("alice");
    fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::symlink(&victim, home.join("restored")).unwrap();
    std::os::unix::fs::lchown(home.join("restored"), Some(65534), Some(65534)).unwrap();
    fs::create_dir(home.join("real")).unwrap();
    std::os::unix::fs::chown(home.join("real"), Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::symlink("../../rootonly", home.join("real/via")).unwrap();
    std::os::unix::fs::lchown(home.join("real/via"), Some(65534), Some(65534)).unwrap();
    for target in [home.join("restored"), home.join("restored/deeper"), home.join("real/via/x")] {
        for force in [false, true] {
            let mut args = vec![OsStr::new("restore")];
            if force {
                args.push(OsStr::new("--force"));
            }
            args.extend([OsStr::new(&id), target.as_os_str()]);
            let out = w.chkfs(&args);
            assert_ne!(out.code, 0, "restored through a planted symlink into {}", target.display());
            let m = fs::metadata(&victim).unwrap();
            assert_eq!((m.mode() & 0o7777, m.uid()), (0o700, 0), "{}", out.stderr);
            assert!(fs::read_dir(&victim).unwrap().next().is_none(), "files appeared in the victim");
        }
    }
    // A symlink root itself made, in root's own directory, is followed.
    std::os::unix::fs::symlink(w.path("mine"), w.path("my-link")).unwrap();
    w.restore(&id, &w.path("my-link"));
    assert_eq!(fs::read(w.path("mine/sub/file")).unwrap(), b"restored\n");
}

/// The user swaps the target, in a loop, with a symlink to the repository
/// (RENAME_EXCHANGE): whatever restore opens, it never writes into the
/// repository.
#[test]
fn a_target_swapped_for_the_repository_is_refused() {
    if !is_root() {
        assert!(std::env::var("CI").is_err(), "this test needs root, and CI runs as root");
        eprintln!("\n*** SKIPPING repository swap test: it needs root ***\n");
        return;
    }
    const SWAPPER: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
print("ready", flush=True)
while True:
    libc.renameat2(-100, a, -100, b, 2)
"#;
    let w = World::with_repo();
    chmod(w.dir.path(), 0o755);
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("config"), b"EVIL CONFIG\n").unwrap();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let config = fs::read(w.repo.join("config")).unwrap();
    let home = w.path("alice");
    fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let (dir, link) = (home.join("restored"), home.join("other"));
    fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::symlink(&w.repo, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    let mut swapper = Running(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", SWAPPER])
            .args([dir.as_os_str(), link.as_os_str()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut ready = String::new();
    BufReader::new(swapper.stdout.take().unwrap()).read_line(&mut ready).unwrap();
    for _ in 0..40 {
        let _ = w.chkfs([OsStr::new("restore"), OsStr::new("--force"), OsStr::new(&id), dir.as_os_str()]);
    }
    drop(swapper);
    assert_eq!(fs::read(w.repo.join("config")).unwrap(), config, "the repository's config was replaced");
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
}
