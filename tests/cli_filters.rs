//! `--host` and `--path` on the commands that take snapshots, and `latest`
//! resolved per source (host and saved directory).

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// A repository holding two sources of this host, `a` and `b`, saved in
/// turn: a1, b1, a2, b2 (so the newest snapshot of all is b's).
struct TwoSources {
    w: World,
    a: PathBuf,
    b: PathBuf,
    a1: String,
    b1: String,
    a2: String,
    b2: String,
}

fn at(second: u32) -> String {
    format!("2026-01-01T00:00:{second:02}Z")
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn two_sources() -> TwoSources {
    let w = World::with_repo();
    let (a, b) = (w.path("a"), w.path("b"));
    fs::create_dir_all(a.join("sub")).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("a.txt"), "a one\n").unwrap();
    fs::write(a.join("sub/inner.txt"), "inner\n").unwrap();
    fs::write(b.join("b.txt"), "b one\n").unwrap();
    let a1 = id(&w.save(&a, &["--time", &at(0)]));
    let b1 = id(&w.save(&b, &["--time", &at(1)]));
    fs::write(a.join("a.txt"), "a two\n").unwrap();
    let a2 = id(&w.save(&a, &["--time", &at(2)]));
    fs::write(b.join("b2.txt"), "b two\n").unwrap();
    let b2 = id(&w.save(&b, &["--time", &at(3)]));
    let (a, b) = (fs::canonicalize(a).unwrap(), fs::canonicalize(b).unwrap());
    TwoSources { w, a, b, a1, b1, a2, b2 }
}

fn ids_of(rows: &Value, key: &str) -> BTreeSet<String> {
    rows.as_array().unwrap().iter().map(|r| r[key].as_str().unwrap().to_string()).collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// chkfs with --repo, run in `dir`.
fn chkfs_in(w: &World, dir: &Path, args: &[&std::ffi::OsStr]) -> Out {
    run_with_timeout(w.cmd().current_dir(dir).args(args), TIMEOUT)
}

/// `restore --json SPEC TARGET extra...` in `dir`, which must succeed;
/// returns the id of the snapshot restored and the output.
fn restore_in(w: &World, dir: &Path, spec: &str, target: &Path, extra: &[&str]) -> (String, Out) {
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["restore".as_ref(), "--json".as_ref(), spec.as_ref(), target.as_os_str()];
    args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
    let out = chkfs_in(w, dir, &args);
    out.ok();
    (out.json()["snapshot"].as_str().unwrap().to_string(), out)
}

#[test]
fn list_keeps_the_snapshots_of_a_host_a_path_or_both() {
    let t = two_sources();
    let w = &t.w;
    // The same directory as saved from another host.
    let other = id(&w.save(&t.a, &["--host", "other-host", "--time", &at(4)]));
    let a = t.a.to_str().unwrap();

    let json = w.chkfs(["list", "--json", "--path", a]).json();
    assert_eq!(ids_of(&json, "id"), set(&[&t.a1, &t.a2, &other]));
    for row in json.as_array().unwrap() {
        assert_eq!(row["path"], a);
    }
    let json = w.chkfs(["list", "--json", "--host", "other-host"]).json();
    assert_eq!(ids_of(&json, "id"), set(&[&other]));
    let here = w.list().iter().find(|r| r["id"] == t.a1.as_str()).unwrap()["host"].as_str().unwrap().to_string();
    let json = w.chkfs(["list", "--json", "--host", &here, "--path", a]).json();
    assert_eq!(ids_of(&json, "id"), set(&[&t.a1, &t.a2]), "both options must hold");
    let json = w.chkfs(["list", "--json", "--host", "nobody"]).json();
    assert_eq!(json, serde_json::json!([]));

    // A relative path, with `.`, `..` and a trailing slash, is taken from
    // the current directory.
    let out = chkfs_in(w, w.dir.path(), &["list".as_ref(), "--path".as_ref(), "./x/../b/".as_ref()]);
    out.ok();
    let text = out.stdout_str();
    for b in [&t.b1, &t.b2] {
        assert!(text.contains(b.as_str()), "{text}");
    }
    for a in [&t.a1, &t.a2, &other] {
        assert!(!text.contains(a.as_str()), "{text}");
    }
    assert!(out.stderr.contains("2 snapshots"), "{}", out.stderr);
}

#[test]
fn forget_keeps_the_newest_of_each_source() {
    let t = two_sources();
    let w = &t.w;
    let out = w.chkfs(["forget", "--keep-last", "1", "--json"]);
    out.ok();
    let kept: BTreeSet<String> = w.list().iter().map(id).collect();
    assert_eq!(kept, set(&[&t.a2, &t.b2]), "one snapshot per source stays");
}

#[test]
fn forget_with_path_touches_only_that_source() {
    let t = two_sources();
    let w = &t.w;
    let json = w.chkfs(["forget", "--keep-last", "1", "--json", "--path", t.a.to_str().unwrap()]).json();
    // Only the source's snapshots are decided on.
    assert_eq!(ids_of(&json, "id"), set(&[&t.a1, &t.a2]));
    let kept: BTreeSet<String> = w.list().iter().map(id).collect();
    assert_eq!(kept, set(&[&t.a2, &t.b1, &t.b2]));

    // An id the options leave out is not forgotten.
    let out = w.chkfs(["forget", t.b1.as_str(), "--path", t.a.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(t.b1.as_str()) && out.stderr.contains("leaves out"), "{}", out.stderr);
    assert!(w.list().iter().any(|r| r["id"] == t.b1.as_str()));
    // And one it keeps is.
    w.chkfs(["forget", t.b1.as_str(), "--path", t.b.to_str().unwrap()]).ok();
    assert!(!w.list().iter().any(|r| r["id"] == t.b1.as_str()));
}

#[test]
fn diff_and_find_take_the_options() {
    let t = two_sources();
    let w = &t.w;
    let a = t.a.to_str().unwrap();
    // latest of a is a2, not b2 (the newest of all).
    let out = w.chkfs(["diff", "--json", &t.a1, "latest", "--path", a]);
    out.expect_code(1);
    let json = out.json();
    assert_eq!(json["b"], t.a2.as_str());
    let changes: Vec<(String, String)> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["path"].as_str().unwrap().to_string(), c["change"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(changes, [("/a.txt".to_string(), "modified".to_string())]);
    // An id of the other source is refused, not compared.
    let out = w.chkfs(["diff", &t.b1, "latest", "--path", a]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains(t.b1.as_str()), "{}", out.stderr);

    let json = w.chkfs(["find", "--json", "--path", t.b.to_str().unwrap(), "*.txt"]).json();
    assert_eq!(ids_of(&json, "snapshot"), set(&[&t.b1, &t.b2]));
    let json = w.chkfs(["find", "--json", "*.txt"]).json();
    assert_eq!(ids_of(&json, "snapshot").len(), 4);
    let out = w.chkfs(["find", "--host", "nobody", "*.txt"]);
    assert_eq!(out.code, 1);
    // find's whole-path matching is --full-path.
    let json = w.chkfs(["find", "--json", "--full-path", "--path", a, "/sub/*"]).json();
    assert_eq!(ids_of(&json, "snapshot"), set(&[&t.a1, &t.a2]));
}

#[test]
fn latest_inside_a_source_is_that_source() {
    let t = two_sources();
    let w = &t.w;
    let target = w.path("r1");
    let (snap, out) = restore_in(w, &t.a.join("sub"), "latest", &target, &[]);
    assert_eq!(snap, t.a2, "inside a, latest is a's newest, not b's");
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    assert_eq!(fs::read_to_string(target.join("a.txt")).unwrap(), "a two\n");
    assert!(!target.join("b.txt").exists());

    // A source inside another: the deepest one that holds the current
    // directory wins, even when the outer one is newer.
    let sub = id(&w.save(&t.a.join("sub"), &["--time", &at(5)]));
    let outer = id(&w.save(&t.a, &["--time", &at(6)]));
    let (snap, _) = restore_in(w, &t.a.join("sub"), "latest", &w.path("r2"), &[]);
    assert_eq!(snap, sub);
    let (snap, _) = restore_in(w, &t.a, "latest", &w.path("r3"), &[]);
    assert_eq!(snap, outer);

    // ls and dump follow the same rule.
    let out = chkfs_in(w, &t.b, &["ls".as_ref(), "latest".as_ref()]);
    out.ok();
    assert_eq!(out.stdout_str(), "/b.txt\n/b2.txt\n");
    let out = chkfs_in(w, &t.a, &["dump".as_ref(), "latest:a.txt".as_ref()]);
    out.ok();
    assert_eq!(out.stdout, b"a two\n");
}

#[test]
fn latest_with_path_is_that_source_and_without_a_choice_warns() {
    let t = two_sources();
    let w = &t.w;
    let outside = w.dir.path();
    let a = t.a.to_str().unwrap();
    let (snap, out) = restore_in(w, outside, "latest", &w.path("r1"), &["--path", a]);
    assert_eq!(snap, t.a2);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    assert_eq!(fs::read_to_string(w.path("r1/a.txt")).unwrap(), "a two\n");
    // Relative to the current directory.
    let (snap, _) = restore_in(w, outside, "latest", &w.path("r2"), &["--path", "a/"]);
    assert_eq!(snap, t.a2);
    let (snap, _) = restore_in(w, &t.a, "latest", &w.path("r3"), &["--path", "../b"]);
    assert_eq!(snap, t.b2);

    // Outside every source and no option: the newest of all, and a
    // warning naming it and how to choose.
    let (snap, out) = restore_in(w, outside, "latest", &w.path("r4"), &[]);
    assert_eq!(snap, t.b2);
    let warnings: Vec<&str> = out.stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{}", out.stderr);
    assert!(warnings[0].contains(t.b.to_str().unwrap()) && warnings[0].contains("--path"), "{}", warnings[0]);

    // One source: no warning.
    let w1 = World::with_repo();
    let src = w1.path("only");
    fs::create_dir_all(&src).unwrap();
    w1.save(&src, &[]);
    let out = w1.chkfs(["ls", "latest"]);
    out.ok();
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);

    // A filter that keeps nothing is an error.
    let out = chkfs_in(w, outside, &["ls".as_ref(), "latest".as_ref(), "--path".as_ref(), "nowhere".as_ref()]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("no snapshot matches"), "{}", out.stderr);
}

#[test]
fn an_option_leaving_out_a_named_snapshot_is_an_error() {
    let t = two_sources();
    let w = &t.w;
    let b = t.b.to_str().unwrap();
    let target = w.path("r");
    let out = w.chkfs(["restore", &t.a1, target.to_str().unwrap(), "--path", b]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(t.a1.as_str()) && out.stderr.contains("leaves out"), "{}", out.stderr);
    assert!(!target.exists(), "nothing is restored");
    let out = w.chkfs(["ls", &t.a1, "--host", "nobody"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(t.a1.as_str()), "{}", out.stderr);
    // The same id with options that keep it works.
    w.chkfs(["ls", &t.a1, "--path", t.a.to_str().unwrap()]).ok();
}

/// The current directory is a source saved under another host name (a
/// renamed machine): `latest` says which one it used and how to get that
/// source's.
#[test]
fn latest_warns_of_a_deeper_source_saved_under_another_host_name() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("inner")).unwrap();
    fs::write(src.join("top"), "top").unwrap();
    fs::write(src.join("inner/f"), "inner").unwrap();
    w.save(&src, &[]);
    w.save(&src.join("inner"), &["--host", "oldname"]);
    let out = run_with_timeout(w.cmd().current_dir(src.join("inner")).args(["ls", "latest"]), TIMEOUT);
    out.ok();
    assert!(out.stderr.contains("another host name") && out.stderr.contains("--host oldname"), "{}", out.stderr);
    let chosen =
        run_with_timeout(w.cmd().current_dir(src.join("inner")).args(["ls", "--host", "oldname", "latest"]), TIMEOUT);
    chosen.ok();
    assert!(chosen.stdout_str().lines().any(|l| l == "/f"), "{}", chosen.stdout_str());
    let empty = w.chkfs(["save", "--host", "", src.to_str().unwrap()]);
    assert_eq!(empty.code, 2, "{}", empty.stderr);
}
