//! A source tree 1,500 directories deep saves, restores and checks
//! (each of them recurses once per directory level).

mod common;
use common::*;
use std::fs;

#[test]
fn a_very_deep_tree_round_trips() {
    let w = World::with_repo();
    let src = w.path("src");
    let mut leaf = src.clone();
    for _ in 0..1500 {
        leaf.push("d");
    }
    fs::create_dir_all(&leaf).unwrap();
    fs::write(leaf.join("f"), b"deep").unwrap();
    let saved = w.save(&src, &[]);
    assert_eq!(saved["dirs"].as_u64(), Some(1501), "{saved}");
    let out = w.path("out");
    w.restore("latest", &out).ok();
    assert_same_tree(&src, &out, false);
    let (code, _, check) = w.check();
    assert_eq!(code, 0, "{}", check.stderr);
}
