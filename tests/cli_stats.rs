//! `chkfs stats`: the repository's sizes (stored, restored, unique,
//! deduplicated, compressed), what each snapshot alone holds, and the
//! space gc would reclaim.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

const SHARED: [(&str, usize, u64); 3] =
    [("a.bin", 200_000, 1), ("sub/b.bin", 300_000, 2), ("sub/deep/c.bin", 50_000, 3)];
const TEXT_LEN: usize = 13 * 20_000;
const ONLY_1: usize = 120_000;
const ONLY_2: usize = 170_000;

/// A source holding the shared files, a compressible text and `unique`.
fn source(w: &World) -> PathBuf {
    let src = w.path("src");
    for (name, len, seed) in SHARED {
        let p = src.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, random_bytes(len, seed)).unwrap();
    }
    fs::write(src.join("text"), "line of text\n".repeat(20_000)).unwrap();
    src
}

fn shared_bytes() -> u64 {
    SHARED.iter().map(|s| s.1 as u64).sum::<u64>() + TEXT_LEN as u64
}

fn stats(w: &World, args: &[&str]) -> Value {
    let out = w.chkfs([&["stats", "--json"][..], args].concat());
    out.ok();
    out.json()
}

fn n(v: &Value, path: &[&str]) -> u64 {
    let mut at = v;
    for p in path {
        at = &at[*p];
    }
    at.as_u64().unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

/// Two snapshots sharing all but one file each.
fn two_snapshots(w: &World) -> (String, String) {
    let src = source(w);
    fs::write(src.join("only1.bin"), random_bytes(ONLY_1, 11)).unwrap();
    let s1 = w.save(&src, &["--time", "2026-01-01T00:00:00Z"]);
    fs::remove_file(src.join("only1.bin")).unwrap();
    fs::write(src.join("sub/only2.bin"), random_bytes(ONLY_2, 12)).unwrap();
    let s2 = w.save(&src, &["--time", "2026-01-02T00:00:00Z"]);
    (s1["id"].as_str().unwrap().to_string(), s2["id"].as_str().unwrap().to_string())
}

#[test]
fn sizes_of_two_snapshots_sharing_most_files() {
    let w = World::with_repo();
    let (id1, id2) = two_snapshots(&w);
    let st = stats(&w, &[]);
    let shared = shared_bytes();
    assert_eq!(n(&st, &["snapshots"]), 2, "{st}");
    assert_eq!(n(&st, &["selected"]), 2, "{st}");
    assert_eq!(n(&st, &["logical_files"]), 2 * 5, "{st}");
    assert_eq!(n(&st, &["logical_bytes"]), 2 * shared + (ONLY_1 + ONLY_2) as u64, "{st}");
    // Every distinct chunk once: the shared files, then each unique one.
    assert_eq!(n(&st, &["chunks", "raw_bytes"]), shared + (ONLY_1 + ONLY_2) as u64, "{st}");
    assert!(n(&st, &["chunks", "count"]) >= 6, "{st}");
    let stored = n(&st, &["chunks", "stored_bytes"]);
    assert!(stored > 0 && stored < n(&st, &["chunks", "raw_bytes"]), "the text compresses: {st}");
    assert!(st["dedup_ratio"].as_f64().unwrap() > 1.5, "{st}");
    assert!(st["compression_ratio"].as_f64().unwrap() > 1.0, "{st}");
    assert_eq!(n(&st, &["missing_chunks"]), 0);
    // Nothing is garbage yet, and every copy is used.
    assert_eq!(n(&st, &["unused", "count"]), 0, "{st}");
    assert_eq!(n(&st, &["packed_chunks", "count"]), n(&st, &["chunks", "count"]), "{st}");
    assert_eq!(n(&st, &["packed_trees", "count"]), n(&st, &["trees", "count"]), "{st}");
    let packs = pack_files(&w.repo);
    assert_eq!(n(&st, &["packs"]), packs.len() as u64);
    let on_disk: u64 = packs.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    assert_eq!(n(&st, &["stored_bytes"]), on_disk);
    // check counts the same trees and packs.
    let check = w.chkfs(["check", "--json"]);
    check.ok();
    let check = check.json();
    assert_eq!(n(&check, &["trees"]), n(&st, &["trees", "count"]), "check: {check}\nstats: {st}");
    assert_eq!(n(&check, &["packs"]), n(&st, &["packs"]), "check: {check}\nstats: {st}");

    // Per snapshot: what a restore writes (as `list` says), and what only
    // it holds: its own file.
    let per = st["per_snapshot"].as_array().unwrap();
    assert_eq!(per.len(), 2);
    let list = w.list();
    for (i, (id, only)) in [(&id1, ONLY_1), (&id2, ONLY_2)].into_iter().enumerate() {
        assert_eq!(per[i]["id"].as_str().unwrap(), id);
        assert_eq!(n(&per[i], &["files"]), 5);
        assert_eq!(n(&per[i], &["bytes"]), shared + only as u64);
        assert_eq!(n(&per[i], &["bytes"]), n(&list[i], &["bytes"]), "stats and list agree");
        assert_eq!(n(&per[i], &["unique", "raw_bytes"]), only as u64, "{st}");
        assert!(n(&per[i], &["unique", "count"]) >= 1);
        // Random bytes do not compress: stored is about raw.
        let stored = n(&per[i], &["unique", "stored_bytes"]);
        assert!(stored <= only as u64 + 64 && stored > only as u64 / 2, "{st}");
    }

    // Named snapshots: the totals are theirs, uniqueness still against all.
    let one = stats(&w, &[&id1[..6]]);
    assert_eq!(n(&one, &["selected"]), 1);
    assert_eq!(n(&one, &["logical_bytes"]), shared + ONLY_1 as u64);
    assert_eq!(n(&one, &["chunks", "raw_bytes"]), shared + ONLY_1 as u64);
    assert_eq!(n(&one["per_snapshot"][0], &["unique", "raw_bytes"]), ONLY_1 as u64);
    let latest = stats(&w, &["latest"]);
    assert_eq!(latest["per_snapshot"][0]["id"].as_str().unwrap(), id2);
    assert_eq!(n(&latest["per_snapshot"][0], &["unique", "raw_bytes"]), ONLY_2 as u64);

    // The text forms.
    let out = w.chkfs(["stats"]);
    out.ok();
    let text = out.stdout_str();
    for word in ["stored in", "Restore size", "Unique data", "Deduplication", "Compression", "Unused"] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
    assert!(!text.contains(&id1), "no table without --per-snapshot:\n{text}");
    let out = w.chkfs(["stats", "--per-snapshot"]);
    out.ok();
    let text = out.stdout_str();
    assert!(text.contains(&id1) && text.contains(&id2), "{text}");
    let out = w.chkfs(["stats", &id2]);
    out.ok();
    assert!(out.stdout_str().contains(&id2) && !out.stdout_str().contains(&id1), "{}", out.stdout_str());
    w.chkfs(["stats", "nosuchid"]).expect_code(1);
}

#[test]
fn forgotten_data_is_unused_until_gc() {
    let w = World::with_repo();
    let (id1, id2) = two_snapshots(&w);
    w.chkfs(["forget", &id2]).ok();
    let st = stats(&w, &[]);
    assert_eq!(n(&st, &["snapshots"]), 1);
    assert_eq!(n(&st, &["logical_bytes"]), shared_bytes() + ONLY_1 as u64);
    // The forgotten snapshot's own file, and its trees.
    assert!(n(&st, &["unused", "count"]) >= 2, "{st}");
    assert!(n(&st, &["unused", "raw_bytes"]) >= ONLY_2 as u64, "{st}");
    let text = w.chkfs(["stats"]);
    text.ok();
    assert!(text.stdout_str().contains("chkfs gc"), "{}", text.stdout_str());
    // Now the remaining snapshot holds everything alone.
    assert_eq!(st["per_snapshot"][0]["id"].as_str().unwrap(), id1);
    assert_eq!(n(&st["per_snapshot"][0], &["unique", "raw_bytes"]), shared_bytes() + ONLY_1 as u64);

    w.chkfs(["gc"]).ok();
    let after = stats(&w, &[]);
    assert_eq!(n(&after, &["unused", "count"]), 0, "{after}");
    assert_eq!(n(&after, &["unused", "raw_bytes"]), 0, "{after}");
    assert!(n(&after, &["stored_bytes"]) < n(&st, &["stored_bytes"]), "before {st}\nafter {after}");
    assert_eq!(n(&after, &["chunks", "raw_bytes"]), n(&st, &["chunks", "raw_bytes"]));
}

#[test]
fn an_empty_repository_has_zeros_and_no_ratios() {
    let w = World::with_repo();
    let st = stats(&w, &[]);
    for field in ["snapshots", "selected", "packs", "stored_bytes", "logical_files", "logical_bytes", "missing_chunks"]
    {
        assert_eq!(n(&st, &[field]), 0, "{field}: {st}");
    }
    assert_eq!(n(&st, &["chunks", "count"]), 0);
    assert_eq!(n(&st, &["unused", "count"]), 0);
    assert!(st["dedup_ratio"].is_null() && st["compression_ratio"].is_null(), "{st}");
    assert_eq!(st["per_snapshot"].as_array().unwrap().len(), 0);
    let out = w.chkfs(["stats", "--per-snapshot"]);
    out.ok();
    assert!(out.stdout_str().contains("0 snapshots"), "{}", out.stdout_str());
    let out = w.chkfs(["stats", "latest"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("no snapshots yet"), "{}", out.stderr);
}

#[test]
fn filters_choose_the_snapshots_counted() {
    let w = World::with_repo();
    let src = source(&w);
    w.save(&src, &["--host", "one"]);
    fs::write(src.join("extra.bin"), random_bytes(10_000, 40)).unwrap();
    let s2 = w.save(&src, &["--host", "two"]);
    let st = stats(&w, &["--host", "two"]);
    assert_eq!(n(&st, &["snapshots"]), 2);
    assert_eq!(n(&st, &["selected"]), 1);
    assert_eq!(n(&st, &["logical_bytes"]), shared_bytes() + 10_000);
    assert_eq!(st["per_snapshot"][0]["id"].as_str().unwrap(), s2["id"].as_str().unwrap());
    assert_eq!(n(&st["per_snapshot"][0], &["unique", "raw_bytes"]), 10_000);
    let none = stats(&w, &["--host", "three"]);
    assert_eq!(n(&none, &["selected"]), 0);
    assert_eq!(n(&none, &["logical_bytes"]), 0);
    let wrong = w.chkfs(["stats", "--host", "one", s2["id"].as_str().unwrap()]);
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("leaves out"), "{}", wrong.stderr);
}

/// A tree that cannot be read: a clear error naming the snapshot, not a
/// panic, and no figures.
#[test]
fn a_damaged_tree_is_an_error() {
    const HEADER_LEN: u64 = 16;
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::write(src.join("dir/a.txt"), "a\n").unwrap();
    fs::write(src.join("b.bin"), random_bytes(100_000, 5)).unwrap();
    let s1 = w.save(&src, &[]);
    let id1 = s1["id"].as_str().unwrap().to_string();
    // The tree pack is the small one.
    let mut packs: Vec<_> = pack_files(&w.repo).into_iter().map(|p| (fs::metadata(&p).unwrap().len(), p)).collect();
    packs.sort();
    let f = fs::OpenOptions::new().read(true).write(true).open(&packs[0].1).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, HEADER_LEN + 4).unwrap();
    b[0] ^= 0xff;
    f.write_all_at(&b, HEADER_LEN + 4).unwrap();

    for args in [&["stats"][..], &["stats", "--json"], &["stats", "--per-snapshot"]] {
        let out = w.chkfs(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(out.stderr.contains(&format!("snapshot {id1}")), "{}", out.stderr);
        assert!(out.stderr.contains("cannot be read"), "{}", out.stderr);
        assert!(out.stdout.is_empty(), "no figures: {}", out.stdout_str());
    }
}

#[test]
fn an_encrypted_repository_is_read_with_its_password() {
    let mut w = World::new();
    let pw = w.path("pw");
    fs::write(&pw, "stats password\n").unwrap();
    w.env.push(("CHKFS_PASSWORD_FILE".into(), pw.to_string_lossy().into()));
    w.chkfs(["init", "--encrypt", "--kdf-memory", "64", "--kdf-iterations", "1"]).ok();
    let (_, _) = two_snapshots(&w);
    let st = stats(&w, &[]);
    assert_eq!(n(&st, &["logical_bytes"]), 2 * shared_bytes() + (ONLY_1 + ONLY_2) as u64);
    assert_eq!(n(&st["per_snapshot"][1], &["unique", "raw_bytes"]), ONLY_2 as u64);
    let wrong = w.path("wrong");
    fs::write(&wrong, "not it\n").unwrap();
    let out = run_with_timeout(w.cmd().env("CHKFS_PASSWORD_FILE", &wrong).args(["stats"]), TIMEOUT);
    assert_eq!(out.code, 6, "{}", out.stderr);
}

/// A directory too big for one tree is stored split in parts: the parts
/// count as trees used, not as unused copies.
#[test]
fn split_trees_count_as_used() {
    let w = World::with_repo();
    let src = w.path("src");
    let big = src.join("big");
    fs::create_dir_all(&big).unwrap();
    for i in 0..9000 {
        fs::write(big.join(format!("f{i:05}")), format!("{i}\n")).unwrap();
    }
    w.save(&src, &[]);
    let st = stats(&w, &[]);
    assert_eq!(n(&st, &["logical_files"]), 9000, "{st}");
    assert_eq!(n(&st, &["unused", "count"]), 0, "{st}");
    assert_eq!(n(&st, &["packed_trees", "count"]), n(&st, &["trees", "count"]), "{st}");
    // check counts directories (2); stats counts tree blobs, each part too.
    let check = w.chkfs(["check", "--json"]);
    check.ok();
    assert_eq!(n(&check.json(), &["trees"]), 2, "{}", check.stdout_str());
    assert!(n(&st, &["trees", "count"]) >= 2 + 2, "{st}");
}

/// A damaged directory below a readable root is named by its path.
#[test]
fn a_damaged_subdirectory_is_named() {
    const HEADER_LEN: u64 = 16;
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("sub/inner")).unwrap();
    fs::write(src.join("sub/inner/a.txt"), "a\n").unwrap();
    fs::write(src.join("b.bin"), random_bytes(100_000, 5)).unwrap();
    let s1 = w.save(&src, &[]);
    let mut packs: Vec<_> = pack_files(&w.repo).into_iter().map(|p| (fs::metadata(&p).unwrap().len(), p)).collect();
    packs.sort();
    let first_trees = packs[0].1.clone();
    // The second snapshot's root is new (in a pack of its own); /sub is
    // the first one's.
    fs::write(src.join("c.txt"), "c\n").unwrap();
    let s2 = w.save(&src, &[]);
    w.chkfs(["forget", s1["id"].as_str().unwrap()]).ok();
    let f = fs::OpenOptions::new().read(true).write(true).open(&first_trees).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, HEADER_LEN + 4).unwrap();
    b[0] ^= 0xff;
    f.write_all_at(&b, HEADER_LEN + 4).unwrap();
    let out = w.chkfs(["stats"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let id2 = s2["id"].as_str().unwrap();
    assert!(out.stderr.contains(&format!("snapshot {id2}: directory /sub/ cannot be read")), "{}", out.stderr);
}

/// A hard-linked file's content counts once per snapshot, as `list`
/// counts it; each of its names counts as a file.
#[test]
fn hard_links_count_once() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("a")).unwrap();
    fs::create_dir_all(src.join("b")).unwrap();
    fs::write(src.join("a/data"), random_bytes(40_000, 9)).unwrap();
    fs::hard_link(src.join("a/data"), src.join("b/data")).unwrap();
    fs::hard_link(src.join("a/data"), src.join("a/again")).unwrap();
    fs::write(src.join("plain"), random_bytes(1_000, 10)).unwrap();
    w.save(&src, &[]);
    let st = stats(&w, &[]);
    assert_eq!(n(&st, &["logical_files"]), 4, "{st}");
    assert_eq!(n(&st, &["logical_bytes"]), 41_000, "{st}");
    assert_eq!(n(&st, &["logical_bytes"]), n(&w.list()[0], &["bytes"]));
}
