//! `chkfs diff A B [PATH]`: the changed set is exactly what `diff -qr` of
//! the two source trees reports, in O(changed) trees read.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// A tree of 40 directories of 25 files each.
fn make_tree(root: &Path) {
    for d in 0..40 {
        let dir = root.join(format!("dir{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..25 {
            fs::write(dir.join(format!("f{f:02}.txt")), format!("file {d} {f}\n").repeat(50 + f)).unwrap();
        }
    }
    fs::write(root.join("big.bin"), random_bytes(1 << 20, 5)).unwrap();
}

/// What `diff -qr` says, as (+/-/M/T, path relative to the roots).
fn diff_qr(a: &Path, b: &Path) -> BTreeSet<(char, String)> {
    let out = sh("diff", [std::ffi::OsStr::new("-qr"), a.as_os_str(), b.as_os_str()]);
    assert!(out.code <= 1, "diff -qr failed: {}", out.stderr);
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let mut set = BTreeSet::new();
    for line in out.stdout_str().lines() {
        if let Some(rest) = line.strip_prefix("Only in ") {
            let (dir, name) = rest.split_once(": ").unwrap();
            let (mark, rel) = match dir.strip_prefix(a) {
                Some(rel) => ('-', rel),
                None => ('+', dir.strip_prefix(b).unwrap()),
            };
            set.insert((mark, format!("{}/{name}", rel.trim_start_matches('/')).trim_start_matches('/').to_string()));
        } else if let Some(rest) = line.strip_prefix("Files ") {
            let left = rest.split(" and ").next().unwrap();
            set.insert(('M', left.strip_prefix(a).unwrap().trim_start_matches('/').to_string()));
        } else if line.starts_with("File ") {
            let left = line.trim_start_matches("File ").split(" is a ").next().unwrap();
            set.insert(('T', left.strip_prefix(a).unwrap().trim_start_matches('/').to_string()));
        }
    }
    set
}

fn chkfs_diff(w: &World, a: &str, b: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = w.chkfs(["diff", "--json", a, b].iter().copied().chain(extra.iter().copied()));
    assert!(out.code <= 1, "chkfs diff failed ({}): {}", out.code, out.stderr);
    (out.code, out.json())
}

fn as_set(json: &serde_json::Value) -> BTreeSet<(char, String)> {
    json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| {
            let mark = match c["change"].as_str().unwrap() {
                "added" => '+',
                "removed" => '-',
                "modified" => 'M',
                "type" => 'T',
                _ => return None,
            };
            Some((mark, c["path"].as_str().unwrap().trim_start_matches('/').to_string()))
        })
        .collect()
}

#[test]
fn diff_reports_exactly_what_diff_qr_reports() {
    let w = World::with_repo();
    let src = w.path("src");
    make_tree(&src);
    let first = w.save(&src, &[]);
    let before = w.path("before");
    copy_tree(&src, &before);

    // Edit, add, remove, and turn a file into a directory.
    fs::write(src.join("dir03/f07.txt"), "changed\n").unwrap();
    fs::write(src.join("dir17/f00.txt"), "also changed\n").unwrap();
    fs::write(src.join("dir17/new.txt"), "new\n").unwrap();
    fs::remove_file(src.join("dir21/f11.txt")).unwrap();
    remove_tree(&src.join("dir30"));
    fs::create_dir_all(src.join("newdir/sub")).unwrap();
    fs::write(src.join("newdir/sub/x"), "x".repeat(1000)).unwrap();
    fs::remove_file(src.join("dir05/f01.txt")).unwrap();
    fs::create_dir(src.join("dir05/f01.txt")).unwrap();
    let mut big = fs::read(src.join("big.bin")).unwrap();
    big[500_000] ^= 1;
    fs::write(src.join("big.bin"), big).unwrap();
    // Metadata only: diff -qr does not see it, chkfs says so apart.
    chmod(&src.join("dir09/f02.txt"), 0o600);
    let second = w.save(&src, &[]);

    let (a, b) = (first["id"].as_str().unwrap(), second["id"].as_str().unwrap());
    let (code, json) = chkfs_diff(&w, a, b, &[]);
    assert_eq!(code, 1, "they differ");
    assert_eq!(as_set(&json), diff_qr(&before, &src));
    let meta: Vec<_> = json["changes"].as_array().unwrap().iter().filter(|c| c["change"] == "metadata").collect();
    assert_eq!(meta.len(), 1, "{meta:?}");
    assert_eq!(meta[0]["path"], "/dir09/f02.txt");
    // 25 files of dir30 and the directory; the new directory, its
    // subdirectory and file; one new file.
    assert_eq!(json["removed"], 27, "{json}");
    assert_eq!(json["added"], 4, "{json}");
    assert_eq!(json["modified"], 3);
    assert_eq!(json["type_changed"], 1);

    // The same snapshot: nothing, status 0.
    let (code, json) = chkfs_diff(&w, a, a, &[]);
    assert_eq!(code, 0);
    assert!(json["changes"].as_array().unwrap().is_empty());

    // One directory only.
    let (code, json) = chkfs_diff(&w, a, b, &["dir17"]);
    assert_eq!(code, 1);
    let set = as_set(&json);
    assert_eq!(
        set,
        diff_qr(&before.join("dir17"), &src.join("dir17"))
            .into_iter()
            .map(|(m, p)| (m, format!("dir17/{p}")))
            .collect()
    );

    // Text output: one line per change, summary on stderr.
    let out = w.chkfs(["diff", a, b]);
    assert_eq!(out.code, 1);
    assert!(out.stdout_str().lines().any(|l| l == "M  /dir03/f07.txt"), "{}", out.stdout_str());
    assert!(out.stdout_str().lines().any(|l| l == "-  /dir30/"), "{}", out.stdout_str());
    assert!(out.stderr.contains("added"), "{}", out.stderr);

    // A path in one snapshot only is added or removed.
    let (code, json) = chkfs_diff(&w, a, b, &["./newdir/"]);
    assert_eq!(code, 1);
    assert_eq!(json["changes"][0]["path"], "/newdir");
    assert_eq!(json["changes"][0]["change"], "added");
    assert_eq!(json["added"], 3);

    // Trouble is 2: an unknown snapshot, a path in neither.
    assert_eq!(w.chkfs(["diff", a, "ffffffff"]).code, 2);
    assert_eq!(w.chkfs(["diff", a, b, "no/such/dir"]).code, 2);
}
