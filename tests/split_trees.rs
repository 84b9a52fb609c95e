//! Directories of more than 8,192 entries are stored as split trees: their
//! entries in parts, so that a save rewrites only the parts that changed
//! and the mount holds only the parts in use. Saved, restored, checked and
//! collected like any tree; forged ones are damage, never a panic.

mod common;

use chkfs::format::pack::BlobKind;
use chkfs::format::tree::{Part, TreeObject};
use chkfs::format::BlobId;
use chkfs::store::{BlobReader, Repository};
use common::forge::*;
use common::*;
use std::fs;
use std::path::Path;
use std::sync::Arc;

const N: usize = 30_000;

fn name(i: usize) -> String {
    format!("{}-{i:06}.txt", ["report", "image", "data", "log"][i % 4])
}

/// A source holding `big/` with N small files and a file beside it.
fn large_source(w: &World) -> std::path::PathBuf {
    let src = w.path("src");
    let big = src.join("big");
    fs::create_dir_all(&big).unwrap();
    for i in 0..N {
        fs::write(big.join(name(i)), format!("file {i}\n")).unwrap();
    }
    fs::write(src.join("beside"), b"beside\n").unwrap();
    src
}

fn reader(repo: &Path) -> (BlobReader, Arc<Repository>) {
    let repo = Arc::new(Repository::open_local(repo).unwrap());
    let index = Arc::new(repo.load_index().unwrap().index);
    (BlobReader::new(repo.clone(), index.clone(), 64 << 20), repo)
}

/// The tree object of `big/` in the newest snapshot.
fn big_tree(w: &World) -> TreeObject {
    let (reader, repo) = reader(&w.repo);
    let snap = repo.snapshots().unwrap().into_iter().max_by_key(|s| s.snapshot.time).unwrap();
    let root = reader.read_tree(snap.snapshot.root_tree()).unwrap();
    let big = root.find(b"big").unwrap();
    let chkfs::format::tree::Node::Dir { tree } = big.node else { panic!("big is not a directory") };
    reader.read_tree_object(tree).unwrap()
}

fn tree_blobs(repo: &Path) -> usize {
    let (reader, _) = reader(repo);
    let index = reader.index();
    (0..index.pack_count())
        .flat_map(|slot| index.blocks_of_pack(slot))
        .map(|n| index.blobs_in_block(n).iter().filter(|b| b.kind == BlobKind::Tree).count())
        .sum()
}

#[test]
fn a_large_directory_is_saved_in_parts_and_restored_whole() {
    let w = World::with_repo();
    let src = large_source(&w);
    w.save(&src, &[]);
    let TreeObject::Split(split) = big_tree(&w) else { panic!("a directory of {N} entries is one tree") };
    assert!(split.parts.len() >= 5, "{} parts", split.parts.len());
    assert_eq!(split.entry_count(), N as u64);
    let (code, report, out) = w.check();
    assert_eq!(code, 0, "check: {report} {}", out.stderr);
    w.restore("latest", &w.path("out"));
    assert_diff_equal(&src, &w.path("out"), &[]);
    // One file of the directory, by path.
    let spec = format!("latest:big/{}", name(12_345));
    w.restore(&spec, &w.path("one"));
    assert_eq!(fs::read(w.path("one").join(name(12_345))).unwrap(), b"file 12345\n");
}

#[test]
fn a_change_in_a_large_directory_rewrites_one_part_and_gc_keeps_the_parts() {
    let w = World::with_repo();
    let src = large_source(&w);
    w.save(&src, &[]);
    let TreeObject::Split(before) = big_tree(&w) else { panic!("not split") };
    let trees_before = tree_blobs(&w.repo);
    fs::write(src.join("big").join(name(20_000)), b"changed\n").unwrap();
    fs::write(src.join("big").join("new-file"), b"new\n").unwrap();
    w.save(&src, &[]);
    let TreeObject::Split(after) = big_tree(&w) else { panic!("not split") };
    let new_parts = after.parts.iter().filter(|p| !before.parts.iter().any(|q| q.tree == p.tree)).count();
    assert!(new_parts <= 2, "{new_parts} of {} parts rewritten", after.parts.len());
    // The new parts, the split tree and the root: nothing else.
    let added = tree_blobs(&w.repo) - trees_before;
    assert!(added <= new_parts + 2, "{added} trees added for {new_parts} new parts");

    // The first snapshot forgotten and collected: every part of the
    // second stays readable.
    let first = w.list()[0]["id"].as_str().unwrap().to_string();
    w.chkfs(["forget", &first]).ok();
    w.chkfs(["gc"]).ok();
    let (code, report, out) = w.check();
    assert_eq!(code, 0, "check after gc: {report} {}", out.stderr);
    w.restore("latest", &w.path("out"));
    assert_diff_equal(&src, &w.path("out"), &[]);
}

/// A snapshot whose root holds a good file `a` and `sub`, a forged split
/// tree made of parts the closure stores.
fn with_forged_split(w: &World, parts: impl FnOnce(&mut Forge) -> Vec<Part>) -> String {
    let mut f = Forge::open(&w.repo);
    let good = f.chunk(b"good content\n");
    let parts = parts(&mut f);
    let sub = f.split_tree(parts);
    let root = f.tree(vec![file(b"a", vec![good]), dir(b"sub", sub)]);
    let repo = f.commit();
    snapshot(&repo, root, 3).to_hex()
}

fn part(f: &mut Forge, names: &[&str]) -> Part {
    let c = f.chunk(b"x");
    let tree = f.tree(names.iter().map(|n| file(n.as_bytes(), vec![c])).collect());
    Part { first: names[0].as_bytes().to_vec(), entries: names.len() as u32, tree }
}

#[test]
fn forged_split_trees_are_damage_and_the_rest_is_restored() {
    type Parts = fn(&mut Forge) -> Vec<Part>;
    let cases: [(&str, &str, Parts); 6] = [
        ("count", "another number of entries", |f| {
            let mut p = part(f, &["a", "b"]);
            p.entries = 3;
            vec![p, part(f, &["c"])]
        }),
        ("first name", "starts with another name", |f| {
            let mut p = part(f, &["b", "c"]);
            p.first = b"a".to_vec();
            vec![p, part(f, &["d"])]
        }),
        ("overlap", "reaches into the next one", |f| vec![part(f, &["a", "m"]), part(f, &["c", "z"])]),
        ("order", "not in name order", |f| vec![part(f, &["m"]), part(f, &["a"])]),
        ("one part", "fewer than two parts", |f| vec![part(f, &["a"])]),
        ("nested", "split tree where a tree was expected", |f| {
            let inner = vec![part(f, &["a"]), part(f, &["b"])];
            let tree = f.split_tree(inner);
            vec![Part { first: b"a".to_vec(), entries: 2, tree }, part(f, &["c"])]
        }),
    ];
    for (what, reason, parts) in cases {
        let w = World::with_repo();
        let id = with_forged_split(&w, parts);
        let c = w.chkfs(["check", "--read-data"]);
        assert_eq!(c.code, 4, "{what}: check: {}", c.stderr);
        assert!(c.stderr.contains(reason), "{what}: check should say {reason:?}:\n{}", c.stderr);
        let r = w.chkfs(["restore", &id, w.path("out").to_str().unwrap()]);
        assert_eq!(r.code, 3, "{what}: restore: {}", r.stderr);
        assert!(r.stderr.contains(reason), "{what}: restore should say {reason:?}:\n{}", r.stderr);
        assert_eq!(fs::read(w.path("out/a")).unwrap(), b"good content\n", "{what}: the rest is restored");
        // gc cannot prove what a damaged split tree references dead.
        let g = w.chkfs(["gc"]);
        assert_ne!(g.code, 0, "{what}: gc went ahead over a damaged split tree: {}", g.stderr);
    }
}

#[test]
fn a_missing_part_is_damage() {
    let w = World::with_repo();
    let id = with_forged_split(&w, |f| {
        vec![part(f, &["a"]), Part { first: b"b".to_vec(), entries: 1, tree: BlobId(0xdead) }]
    });
    // Check names the missing part, not the split tree that lists it.
    let (code, report, out) = w.check();
    assert_eq!(code, 4, "{}", out.stderr);
    let damaged = report["damaged_blobs"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{report}");
    assert_eq!(damaged[0]["blob"], format!("{:032x}", 0xdead), "{report}");
    assert_eq!(damaged[0]["reason"], "missing from the repository", "{report}");
    assert_eq!(report["unreferenced_damaged"], 0, "{report}");
    let r = w.chkfs(["restore", &id, w.path("out").to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(fs::read(w.path("out/a")).unwrap(), b"good content\n");
}
