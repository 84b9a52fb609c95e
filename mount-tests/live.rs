//! The top level follows the repository while mounted: a new snapshot
//! appears (and becomes `latest`) and a removed one disappears, each
//! within two seconds.

use crate::common::*;
use crate::harness::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// Must be met this soon after the repository changed.
const PROMPT: Duration = Duration::from_secs(2);
/// Polling goes on this long, to tell "slow" from "never".
const PATIENCE: Duration = Duration::from_secs(10);

fn ls(dir: &Path) -> Vec<String> {
    let out = sh("ls", [dir.as_os_str()]);
    out.ok();
    let mut v: Vec<String> = out.stdout_str().lines().map(str::to_string).collect();
    v.sort();
    v
}

fn readlink(p: &Path) -> String {
    let out = sh("readlink", [p.as_os_str()]);
    if out.code != 0 {
        return format!("<readlink failed: {}>", out.stderr.trim());
    }
    out.stdout_str().trim_end_matches('\n').to_string()
}

/// Polls `state` until `done` holds; returns the time since `start` (when
/// the repository changed), or panics with the last state after PATIENCE.
fn time_until<S: std::fmt::Debug>(
    start: Instant,
    what: &str,
    mut state: impl FnMut() -> S,
    done: impl Fn(&S) -> bool,
) -> Duration {
    loop {
        let s = state();
        if done(&s) {
            return start.elapsed();
        }
        assert!(start.elapsed() < PATIENCE, "after {PATIENCE:?}, still not {what}; last seen: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn new_and_removed_snapshots_show_up_within_two_seconds() {
    require_fuse!();
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), "version one\n").unwrap();
    let old = id_of(&w.save(&src, &[]));

    let m = Mount::start(&w, &w.path("mnt"));
    let snapshots = m.mnt.join("snapshots");
    let by_time = m.mnt.join("by-time");
    // Look at everything once, so that the kernel has it cached.
    assert_eq!(ls(&snapshots), vec![old.clone(), "latest".to_string()]);
    assert_eq!(readlink(&snapshots.join("latest")), old);
    let times = ls(&by_time);
    assert_eq!(times.len(), 1);
    assert!(times[0].ends_with(&format!("_{old}")), "{times:?}");
    assert_eq!(readlink(&by_time.join(&times[0])), format!("../snapshots/{old}"));
    assert_eq!(fs::read(snapshots.join("latest/a.txt")).unwrap(), b"version one\n");

    // A save while mounted.
    fs::write(src.join("a.txt"), "version two, longer\n").unwrap();
    fs::write(src.join("b.txt"), "new file\n").unwrap();
    let new = id_of(&w.save(&src, &[]));
    let saved = Instant::now();
    let took = time_until(
        saved,
        &format!("listed with latest pointing at the new {new} (the old one is {old})"),
        || (ls(&snapshots), readlink(&snapshots.join("latest"))),
        |(names, latest)| names.contains(&new) && *latest == new,
    );
    assert!(took < PROMPT, "the new snapshot {new} took {took:?} to appear (ls + readlink latest)");
    let took = time_until(
        saved,
        "in by-time/",
        || ls(&by_time),
        |names| names.iter().any(|n| n.ends_with(&format!("_{new}"))),
    );
    assert!(took < PROMPT, "by-time/ took {took:?} to show {new}");
    assert_diff_equal(&src, &snapshots.join(&new), &[]);
    assert_eq!(fs::read(snapshots.join("latest/a.txt")).unwrap(), b"version two, longer\n");
    assert_eq!(fs::read(snapshots.join(&old).join("a.txt")).unwrap(), b"version one\n");

    // Removing the older snapshot's record.
    fs::remove_file(w.repo.join("snapshots").join(format!("{old}.snap"))).unwrap();
    let removed = Instant::now();
    let took = time_until(removed, "gone from snapshots/", || ls(&snapshots), |names| !names.contains(&old));
    assert!(took < PROMPT, "the removed snapshot {old} took {took:?} to disappear from snapshots/");
    let took =
        time_until(removed, "gone from by-time/", || ls(&by_time), |names| !names.iter().any(|n| n.contains(&old)));
    assert!(took < PROMPT, "the removed snapshot {old} took {took:?} to disappear from by-time/");
    let took = time_until(
        removed,
        "unreachable by name",
        || fs::symlink_metadata(snapshots.join(&old)).map(|m| m.is_dir()),
        |r| r.is_err(),
    );
    assert!(took < PROMPT, "snapshots/{old} could still be looked up {took:?} after its removal");
    assert_eq!(ls(&snapshots), vec![new.clone(), "latest".to_string()]);
    assert_eq!(readlink(&snapshots.join("latest")), new);
    assert!(m.stderr().lines().all(|l| !l.contains("panick")), "{}", m.stderr());
}
