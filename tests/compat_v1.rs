//! A repository written by the release that introduced format 1 (made by
//! tests/fixtures/make-repo-v1.sh, committed as tests/fixtures/repo-v1)
//! must stay readable by every later chkfs: checked, restored exactly,
//! and written to again. The mount side is in mount-tests/compat.rs.

mod common;

use common::manifest::*;
use common::*;

fn world_with_v1_repo() -> World {
    let w = World::new();
    copy_repo_v1(&w.repo);
    w
}

#[test]
fn format_1_repository_checks_and_restores_exactly() {
    let w = world_with_v1_repo();
    let manifest = repo_v1_manifest();
    let (code, report, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
    assert_eq!(report["snapshots"], 2);
    for (name, snap) in manifest.as_object().unwrap() {
        let id = snap["id"].as_str().unwrap();
        let target = w.path(&format!("out-{name}"));
        w.restore(id, &target);
        let d = differences(&target, &snap["tree"]);
        assert!(d.is_empty(), "snapshot {name} ({id}) differs from its manifest:\n  {}", d.join("\n  "));
    }
    // The comparison sees a changed byte.
    let target = w.path("out-second");
    std::fs::write(target.join("hello.txt"), "hello, format two\n").unwrap();
    assert!(!differences(&target, &manifest["second"]["tree"]).is_empty());
}

#[test]
fn format_1_repository_takes_new_snapshots_and_gc() {
    let w = world_with_v1_repo();
    let manifest = repo_v1_manifest();
    let src = w.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("new"), random_bytes(70_000, 11)).unwrap();
    w.save(&src, &[]);
    let first = manifest["first"]["id"].as_str().unwrap();
    w.chkfs(["forget", first]).ok();
    w.chkfs(["gc", "--max-waste", "0"]).ok();
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
    let second = &manifest["second"];
    let target = w.path("out");
    w.restore(second["id"].as_str().unwrap(), &target);
    let d = differences(&target, &second["tree"]);
    assert!(d.is_empty(), "{}", d.join("\n"));
}
