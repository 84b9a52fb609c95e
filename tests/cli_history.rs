//! `chkfs versions PATH` and `chkfs find PATTERN`.

mod common;

use common::*;
use std::fs;

#[test]
fn versions_lists_each_distinct_version_once_with_the_snapshots_holding_it() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("docs")).unwrap();
    let f = src.join("docs/notes.txt");
    fs::write(&f, "first\n").unwrap();
    set_mtime(&f, 1_700_000_000, 0);
    let s1 = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    fs::write(&f, "second\n").unwrap();
    set_mtime(&f, 1_700_000_100, 0);
    let s2 = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let s3 = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    chmod(&f, 0o600);
    let s4 = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    fs::remove_file(&f).unwrap();
    w.save(&src, &[]);

    for path in ["docs/notes.txt", f.to_str().unwrap()] {
        let json = w.chkfs(["versions", "--json", path]).json();
        let v = json.as_array().unwrap();
        assert_eq!(v.len(), 3, "{path}: {json}");
        assert_eq!(v[0]["snapshots"], serde_json::json!([s1]));
        assert_eq!(v[1]["snapshots"], serde_json::json!([s2, s3]));
        assert_eq!(v[2]["snapshots"], serde_json::json!([s4]));
        assert_eq!(v[1]["size"], 7);
    }
    let out = w.chkfs(["versions", "docs/notes.txt"]);
    out.ok();
    assert_eq!(out.stdout_str().lines().count(), 3);
    assert_eq!(w.chkfs(["versions", "docs/never.txt"]).code, 1);
    // An absolute path outside the saved directory is in no snapshot.
    assert_eq!(w.chkfs(["versions", "/elsewhere/docs/notes.txt"]).code, 1);
}

#[test]
fn find_names_the_snapshots_holding_matching_paths() {
    let w = World::with_repo();
    let src = w.path("src");
    for d in ["a", "b", "b/deep"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    fs::write(src.join("a/report.pdf"), "pdf").unwrap();
    fs::write(src.join("b/deep/report.pdf"), "pdf 2").unwrap();
    fs::write(src.join("b/notes.txt"), "notes").unwrap();
    set_mtime(&src.join("b/notes.txt"), 1_600_000_000, 0);
    let s1 = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    fs::remove_file(src.join("a/report.pdf")).unwrap();
    let s2 = w.save(&src, &[])["id"].as_str().unwrap().to_string();

    let json = w.chkfs(["find", "--json", "*.pdf"]).json();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let paths = |row: &serde_json::Value| -> Vec<String> {
        row["matches"].as_array().unwrap().iter().map(|m| m["path"].as_str().unwrap().to_string()).collect()
    };
    let first = rows.iter().find(|r| r["snapshot"] == s1.as_str()).unwrap();
    let mut p = paths(first);
    p.sort();
    assert_eq!(p, ["/a/report.pdf", "/b/deep/report.pdf"]);
    let second = rows.iter().find(|r| r["snapshot"] == s2.as_str()).unwrap();
    assert_eq!(paths(second), ["/b/deep/report.pdf"]);

    // Whole paths, and times.
    let json = w.chkfs(["find", "--json", "--full-path", "/b/*"]).json();
    for row in json.as_array().unwrap() {
        let mut p = paths(row);
        p.sort();
        assert_eq!(p, ["/b/deep", "/b/notes.txt"], "a * does not cross /");
    }
    let json = w.chkfs(["find", "--json", "--older", "2000-01-01T00:00:00Z", "*"]).json();
    for row in json.as_array().unwrap() {
        assert_eq!(paths(row), ["/b/notes.txt"]);
    }
    assert_eq!(w.chkfs(["find", "*.docx"]).code, 1);
    assert_eq!(w.chkfs(["find", "[unclosed"]).code, 2);
}
