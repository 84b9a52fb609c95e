//! The views through time: `history/`, `changes/` and `by-path/`, checked
//! against the snapshots they are made from and against `diff -qr`.

use crate::common::*;
use crate::harness::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const HOST: &str = "viewhost";
const PATIENCE: Duration = Duration::from_secs(10);

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Saves `src` as taken on HOST at `time`; returns the snapshot id.
fn save_at(w: &World, src: &Path, time: &str) -> String {
    id_of(&w.save(src, &["--host", HOST, "--time", time]))
}

/// The source path a snapshot recorded (as by-path/ and history/ show it).
fn recorded_path(w: &World, id: &str) -> String {
    let out = w.chkfs(["list", "--json"]);
    out.ok();
    let list = out.json();
    let row = list.as_array().unwrap().iter().find(|s| s["id"] == id).expect("listed");
    row["path"].as_str().unwrap().trim_end_matches('/').to_string()
}

fn under(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

fn wait_for<S: std::fmt::Debug>(what: &str, mut state: impl FnMut() -> S, done: impl Fn(&S) -> bool) {
    let start = Instant::now();
    loop {
        let s = state();
        if done(&s) {
            return;
        }
        assert!(start.elapsed() < PATIENCE, "after {PATIENCE:?}, still not {what}; last seen: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn history_shows_each_distinct_version_once_sorted_by_time() {
    require_fuse!();
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("lib")).unwrap();
    fs::write(src.join("lib/main.rs"), "fn main() {}\n").unwrap();
    fs::write(src.join("gone.txt"), "only at first\n").unwrap();
    fs::write(src.join("shape"), "a file first\n").unwrap();
    let s1 = save_at(&w, &src, "2026-01-01T10:00:00Z");
    let s2 = save_at(&w, &src, "2026-01-02T10:00:00Z"); // nothing changed
    fs::write(src.join("lib/main.rs"), "fn main() { println!(\"two\"); }\n").unwrap();
    fs::remove_file(src.join("gone.txt")).unwrap();
    fs::remove_file(src.join("shape")).unwrap();
    fs::create_dir(src.join("shape")).unwrap();
    fs::write(src.join("shape/inner"), "now a directory\n").unwrap();
    let s3 = save_at(&w, &src, "2026-01-03T10:00:00Z");
    fs::set_permissions(src.join("lib/main.rs"), fs::Permissions::from_mode(0o600)).unwrap();
    let s4 = save_at(&w, &src, "2026-01-04T10:00:00Z"); // metadata only
    let s5 = save_at(&w, &src, "2026-01-05T10:00:00Z"); // nothing changed

    let m = Mount::start(&w, &w.path("mnt"));
    let source = recorded_path(&w, &s1);
    let history = m.mnt.join("history");
    assert_eq!(names(&history), [HOST]);
    let place = under(&history.join(HOST), &source);
    assert_eq!(names(&place), ["gone.txt", "lib", "shape"], "the union of every snapshot's paths");

    let versions = place.join("lib/main.rs");
    let listed = names(&versions);
    assert_eq!(listed.len(), 3, "one name per distinct version (s2 and s5 changed nothing): {listed:?}");
    for (name, first) in listed.iter().zip([&s1, &s3, &s4]) {
        assert!(name.ends_with(&format!("_{first}.rs")), "{name} should be named after {first}, where it appeared");
    }
    let mut by_name = listed.clone();
    by_name.sort();
    assert_eq!(by_name, listed, "names sort by time");
    // Each version is the saved file itself: content, mode and inode.
    for (name, snap) in listed.iter().zip([&s2, &s3, &s5]) {
        let version = versions.join(name);
        let saved = m.mnt.join("snapshots").join(snap).join("lib/main.rs");
        assert_eq!(fs::read(&version).unwrap(), fs::read(&saved).unwrap(), "{name}");
        let (a, b) = (fs::metadata(&version).unwrap(), fs::metadata(&saved).unwrap());
        assert_eq!((a.ino(), a.mode(), a.mtime()), (b.ino(), b.mode(), b.mtime()), "{name}");
    }
    assert_eq!(fs::metadata(versions.join(&listed[2])).unwrap().mode() & 0o777, 0o600);
    let out = sh("diff", [versions.join(&listed[0]), versions.join(&listed[1])]);
    assert_eq!(out.code, 1, "two versions differ: {}", out.stdout_str());
    let restored = w.path("restored.rs");
    sh("cp", [versions.join(&listed[0]).as_os_str(), restored.as_os_str()]).ok();
    assert_eq!(fs::read(&restored).unwrap(), b"fn main() {}\n");

    // A file that was removed keeps its history; a path that was a file
    // and became a directory shows the file's version and the directory's
    // entries.
    assert_eq!(names(&place.join("gone.txt")).len(), 1);
    let shape = names(&place.join("shape"));
    assert_eq!(shape.len(), 2, "{shape:?}");
    assert!(shape.contains(&"inner".to_string()) && shape.iter().any(|n| n.ends_with(&format!("_{s1}"))), "{shape:?}");

    // A new version saved while mounted shows up.
    fs::write(src.join("lib/main.rs"), "fn main() { println!(\"three\"); }\n").unwrap();
    let s6 = save_at(&w, &src, "2026-01-06T10:00:00Z");
    wait_for("showing the new version", || names(&versions), |v| v.len() == 4 && v[3].contains(&s6));
    assert_eq!(fs::read(versions.join(&names(&versions)[3])).unwrap(), b"fn main() { println!(\"three\"); }\n");
    assert!(m.stderr().lines().all(|l| !l.contains("panick")), "{}", m.stderr());
}

/// The files `diff -qr` reports between snapshot directories `a` and `b`
/// (relative paths): (changed or added files, removed entries).
fn diff_qr(a: &Path, b: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let out = run_with_timeout(
        std::process::Command::new("diff").arg("-qr").arg("--no-dereference").arg(a).arg(b),
        Duration::from_secs(60),
    );
    assert!(out.code <= 1, "diff failed: {}", out.stderr);
    let (mut changed, mut removed) = (BTreeSet::new(), BTreeSet::new());
    let rel =
        |p: &str, root: &Path| p.strip_prefix(root.to_str().unwrap()).unwrap().trim_start_matches('/').to_string();
    for line in out.stdout_str().lines() {
        if let Some(rest) = line.strip_prefix("Files ") {
            let path = rest.split(" and ").next().unwrap();
            changed.insert(rel(path, a));
        } else if let Some(rest) = line.strip_prefix("Only in ") {
            let (dir, name) = rest.split_once(": ").unwrap();
            if dir.starts_with(b.to_str().unwrap()) {
                let full = Path::new(dir).join(name);
                for f in walk_files(&full) {
                    changed.insert(rel(f.to_str().unwrap(), b));
                }
            } else {
                removed.insert(rel(Path::new(dir).join(name).to_str().unwrap(), a));
            }
        } else {
            panic!("unexpected diff output: {line}");
        }
    }
    (changed, removed)
}

fn walk_files(p: &Path) -> Vec<PathBuf> {
    let meta = fs::symlink_metadata(p).unwrap();
    if !meta.is_dir() {
        return vec![p.to_path_buf()];
    }
    fs::read_dir(p).unwrap().flat_map(|e| walk_files(&e.unwrap().path())).collect()
}

fn find_files(root: &Path) -> BTreeSet<String> {
    walk_files(root)
        .iter()
        .filter(|p| *p != root)
        .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn changes_show_exactly_what_diff_reports_and_list_what_went() {
    require_fuse!();
    let w = World::with_repo();
    let src = w.path("src");
    let other = w.path("other");
    for d in ["a/deep/er", "b", "c", "doomed/sub"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    fs::create_dir_all(&other).unwrap();
    for (f, body) in [
        ("a/deep/er/one", "1"),
        ("a/deep/er/two", "2"),
        ("a/keep", "k"),
        ("b/edited", "old"),
        ("b/touched", "t"),
        ("c/mode", "m"),
        ("doomed/sub/x", "x"),
        ("gone", "g"),
        ("top", "top"),
    ] {
        fs::write(src.join(f), body).unwrap();
    }
    fs::write(other.join("o"), "o").unwrap();
    let first = save_at(&w, &src, "2026-02-01T10:00:00Z");
    // Another source saved in between is not what `src` is compared with.
    let other_id = save_at(&w, &other, "2026-02-01T11:00:00Z");
    fs::write(src.join("a/deep/er/two"), "two, edited").unwrap();
    fs::write(src.join("b/edited"), "new").unwrap();
    fs::write(src.join("b/added"), "added").unwrap();
    fs::create_dir_all(src.join("fresh/dir")).unwrap();
    fs::write(src.join("fresh/dir/f"), "f").unwrap();
    fs::remove_dir_all(src.join("doomed")).unwrap();
    fs::remove_file(src.join("gone")).unwrap();
    fs::set_permissions(src.join("c/mode"), fs::Permissions::from_mode(0o600)).unwrap();
    let t = std::time::SystemTime::now() - Duration::from_secs(3600);
    fs::File::options().write(true).open(src.join("b/touched")).unwrap().set_modified(t).unwrap();
    let second = save_at(&w, &src, "2026-02-02T10:00:00Z");

    let m = Mount::start(&w, &w.path("mnt"));
    let changes = m.mnt.join("changes");
    let snaps = m.mnt.join("snapshots");
    let mut all = vec![first.clone(), other_id.clone(), second.clone()];
    all.sort();
    assert_eq!(names(&changes), all, "one directory per snapshot; the .removed lists are not listed");

    let (changed, removed) = diff_qr(&snaps.join(&first), &snaps.join(&second));
    let shown = find_files(&changes.join(&second));
    assert_eq!(shown, changed, "find changes/<id> -type f is what diff -qr reports");
    assert_eq!(
        shown,
        ["a/deep/er/two", "b/added", "b/edited", "fresh/dir/f"].into_iter().map(String::from).collect(),
        "the metadata-only changes (c/mode, b/touched) are not shown"
    );
    assert!(!changes.join(&second).join("c").exists(), "no directory without changes below it");
    for f in &shown {
        let (a, b) = (changes.join(&second).join(f), snaps.join(&second).join(f));
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{f}");
        assert_eq!(fs::metadata(&a).unwrap().ino(), fs::metadata(&b).unwrap().ino(), "{f} is the saved file");
    }
    let du = sh(
        "du",
        ["-s", "--apparent-size", "-b"]
            .map(std::ffi::OsStr::new)
            .into_iter()
            .chain([changes.join(&second).as_os_str()]),
    );
    let bytes: u64 = du.stdout_str().split_whitespace().next().unwrap().parse().unwrap();
    let changed_bytes = shown.iter().map(|f| fs::metadata(snaps.join(&second).join(f)).unwrap().len()).sum::<u64>();
    assert!(bytes >= changed_bytes, "du counts the changed bytes: {bytes} < {changed_bytes}");

    let gone = fs::read_to_string(changes.join(format!("{second}.removed"))).unwrap();
    assert_eq!(gone, "/doomed/\n/gone\n");
    assert_eq!(removed, ["doomed", "gone"].into_iter().map(String::from).collect());

    // A snapshot with nothing before it of its source: all of it is new.
    assert_diff_equal(&snaps.join(&first), &changes.join(&first), &[]);
    assert_diff_equal(&snaps.join(&other_id), &changes.join(&other_id), &[]);
    assert_eq!(fs::read_to_string(changes.join(format!("{first}.removed"))).unwrap(), "");
    assert!(fs::metadata(changes.join("0000000z")).is_err());
    assert!(m.stderr().lines().all(|l| !l.contains("panick")), "{}", m.stderr());
}

#[test]
fn by_path_groups_each_source_with_its_own_latest() {
    require_fuse!();
    let w = World::with_repo();
    let (a, b) = (w.path("tree/a"), w.path("tree/b"));
    fs::create_dir_all(a.join("sub")).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("sub/f"), "a1").unwrap();
    fs::write(b.join("f"), "b1").unwrap();
    let a1 = save_at(&w, &a, "2026-03-01T10:00:00Z");
    let a2 = save_at(&w, &a, "2026-03-02T10:00:00Z");
    let b1 = save_at(&w, &b, "2026-03-03T10:00:00Z"); // newest overall
    let sub = save_at(&w, &a.join("sub"), "2026-03-04T10:00:00Z"); // nested source

    let m = Mount::start(&w, &w.path("mnt"));
    let by_path = m.mnt.join("by-path");
    assert_eq!(names(&by_path), [HOST]);
    let a_dir = under(&by_path.join(HOST), &recorded_path(&w, &a1));
    let listed = names(&a_dir);
    assert_eq!(listed.len(), 4, "two snapshots, latest, and the nested source's directory: {listed:?}");
    assert!(listed[0].ends_with(&a1) && listed[1].ends_with(&a2), "{listed:?}");
    assert_eq!(&listed[2..], ["latest", "sub"]);
    let canonical = |p: &Path| fs::canonicalize(p).unwrap();
    assert_eq!(canonical(&a_dir.join("latest")), m.mnt.join("snapshots").join(&a2), "a's own latest, not {b1}");
    assert_eq!(canonical(&a_dir.join(&listed[0])), m.mnt.join("snapshots").join(&a1));
    assert_eq!(fs::read(a_dir.join("latest/sub/f")).unwrap(), b"a1");
    assert_eq!(canonical(&a_dir.join("sub/latest")), m.mnt.join("snapshots").join(&sub));
    let b_dir = under(&by_path.join(HOST), &recorded_path(&w, &b1));
    assert_eq!(canonical(&b_dir.join("latest")), m.mnt.join("snapshots").join(&b1));

    // A new snapshot of a becomes a's latest while mounted.
    fs::write(a.join("sub/f"), "a3").unwrap();
    let a3 = save_at(&w, &a, "2026-03-05T10:00:00Z");
    wait_for(
        "a's latest moving to the new snapshot",
        || fs::read_link(a_dir.join("latest")).ok(),
        |l| l.as_ref().is_some_and(|l| l.to_string_lossy().ends_with(&a3)),
    );
    assert_eq!(fs::read(a_dir.join("latest/sub/f")).unwrap(), b"a3");
    assert_eq!(canonical(&b_dir.join("latest")), m.mnt.join("snapshots").join(&b1));
    assert!(m.stderr().lines().all(|l| !l.contains("panick")), "{}", m.stderr());
}

#[test]
fn a_version_is_named_after_the_oldest_snapshot_holding_it_even_within_one_second() {
    require_fuse!();
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f.txt"), "same\n").unwrap();
    // Saved first, but taken later in the same second.
    let later = save_at(&w, &src, "2026-04-01T10:00:00.9Z");
    let earlier = save_at(&w, &src, "2026-04-01T10:00:00.1Z");
    let m = Mount::start(&w, &w.path("mnt"));
    let versions = under(&m.mnt.join("history").join(HOST), &recorded_path(&w, &later)).join("f.txt");
    let listed = names(&versions);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].ends_with(&format!("_{earlier}.txt")), "{listed:?} should name {earlier}, not {later}");
    let changes = m.mnt.join("changes");
    assert_eq!(find_files(&changes.join(&later)), BTreeSet::new(), "{later} is compared with the earlier {earlier}");
    assert_eq!(find_files(&changes.join(&earlier)), ["f.txt".to_string()].into_iter().collect());
}
