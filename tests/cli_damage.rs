//! Damage: a flipped byte in a pack is found by `check --read-data`, named
//! with the file that needs it, never restored as wrong bytes, and healed
//! by the next save of the unchanged source.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::FileExt;

const HEADER_LEN: u64 = 16;

#[test]
fn flipped_byte_in_a_pack_is_found_refused_and_healed() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    let original = random_bytes(300_000, 77);
    fs::write(src.join("sub/victim.bin"), &original).unwrap();
    let s1 = w.save(&src, &[]);
    let id1 = s1["id"].as_str().unwrap().to_string();

    // The data pack is the big one (the other holds the trees). Its first
    // block starts right after the header and, the data being
    // incompressible, is stored raw and is far longer than 1000 bytes.
    let mut packs: Vec<_> = pack_files(&w.repo).into_iter().map(|p| (fs::metadata(&p).unwrap().len(), p)).collect();
    packs.sort();
    let (size, data_pack) = packs.pop().expect("no pack");
    assert!(size > 300_000, "data pack of {size} bytes");
    let offset = HEADER_LEN + 1000;
    {
        let f = fs::OpenOptions::new().read(true).write(true).open(&data_pack).unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, offset).unwrap();
        b[0] ^= 0x5a;
        f.write_all_at(&b, offset).unwrap();
    }

    // check --read-data finds it and names the file.
    let (code, report, out) = w.check();
    assert_eq!(code, 4, "check --read-data on a damaged pack:\n{}", out.stderr);
    assert_eq!(report["ok"], false);
    let user = format!("{id1}:/sub/victim.bin");
    let damaged = report["damaged_blobs"].as_array().unwrap();
    assert!(!damaged.is_empty(), "{report}");
    for d in damaged {
        let used_by: Vec<&str> = d["used_by"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
        assert_eq!(used_by, vec![user.as_str()], "{report}");
        let pack_name = data_pack.file_stem().unwrap().to_str().unwrap();
        assert!(d["packs"].as_array().unwrap().iter().any(|p| p == pack_name), "{report}");
    }
    assert!(out.stderr.contains(&format!("used by {user}")), "{}", out.stderr);
    assert!(out.stderr.contains("DAMAGE FOUND"), "{}", out.stderr);

    // Restoring the file (or the whole snapshot) fails loudly.
    let mut flipped = original.clone();
    flipped[1000] ^= 0x5a;
    for (spec, dir) in [(format!("{id1}:sub/victim.bin"), "bad-file"), (id1.clone(), "bad-all")] {
        let target = w.path(dir);
        let r = w.chkfs(["restore", &spec, target.to_str().unwrap()]);
        assert_ne!(r.code, 0, "restore {spec} of damaged data succeeded");
        assert!(r.stderr.contains("victim.bin"), "{}", r.stderr);
        let restored = if dir == "bad-file" { target.join("victim.bin") } else { target.join("sub/victim.bin") };
        if let Ok(got) = fs::read(&restored) {
            assert_ne!(got, flipped, "the damaged bytes were restored");
            assert_ne!(got, original, "correct content but a failing exit status?");
        }
    }

    // The next save of the unchanged source does not trust the damaged
    // copy: it reads the file again and stores a fresh copy.
    let s2 = w.save(&src, &[]);
    assert_eq!(s2["parent"].as_str(), Some(id1.as_str()));
    assert_eq!(s2["bytes_read"], 300_000, "{s2}");
    assert!(s2["added_blobs"].as_u64().unwrap() >= 1, "{s2}");
    assert!(s2["added_bytes"].as_u64().unwrap() > 0, "{s2}");
    let good = w.path("good");
    w.restore("latest", &good);
    assert_eq!(fs::read(good.join("sub/victim.bin")).unwrap(), original);

    // Healed: the chunk has a healthy copy, which the old snapshot uses
    // too (same chunk id). The code then reports nothing: the damaged copy
    // is recorded in damaged/ and never used, check passes.
    let (code, report, out) = w.check();
    assert_eq!(code, 0, "check after healing:\n{}", out.stderr);
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["damaged_blobs"].as_array().unwrap().is_empty());
    let old = w.path("old");
    w.restore(&id1, &old);
    assert_eq!(fs::read(old.join("sub/victim.bin")).unwrap(), original);
    // The pack with the damaged copy is still there (nothing is deleted).
    assert!(data_pack.exists());
}

#[test]
fn a_missing_pack_is_damage() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), random_bytes(50_000, 3)).unwrap();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let mut packs: Vec<_> = pack_files(&w.repo).into_iter().map(|p| (fs::metadata(&p).unwrap().len(), p)).collect();
    packs.sort();
    let (_, data_pack) = packs.pop().unwrap();
    fs::remove_file(&data_pack).unwrap();
    let name = data_pack.file_stem().unwrap().to_str().unwrap().to_string();

    for args in [&["check", "--json"][..], &["check", "--read-data", "--json"][..]] {
        let out = w.chkfs(args);
        assert_eq!(out.code, 4, "{args:?}: {}", out.stderr);
        let report = out.json();
        assert_eq!(report["ok"], false);
        assert!(report["errors"].as_array().unwrap().iter().any(|e| e.as_str().unwrap().contains(&name)), "{report}");
        if args.contains(&"--read-data") {
            // Reading the data names the files that lose content.
            assert!(out.stderr.contains(&format!("used by {id}:/f")), "{}", out.stderr);
        }
    }
    let r = w.chkfs(["restore", &id, w.path("out").to_str().unwrap()]);
    assert_ne!(r.code, 0);
}

#[test]
fn a_truncated_pack_is_damage() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), random_bytes(50_000, 4)).unwrap();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let mut packs: Vec<_> = pack_files(&w.repo).into_iter().map(|p| (fs::metadata(&p).unwrap().len(), p)).collect();
    packs.sort();
    let (len, data_pack) = packs.pop().unwrap();
    // Cut the pack in half: the end of the data, the footer and the
    // trailer are gone.
    let f = fs::OpenOptions::new().write(true).open(&data_pack).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let name = data_pack.file_stem().unwrap().to_str().unwrap().to_string();
    let out = w.chkfs(["check", "--read-data", "--json"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    let report = out.json();
    assert!(report["errors"].as_array().unwrap().iter().any(|e| e.as_str().unwrap().contains(&name)), "{report}");
    let r = w.chkfs(["restore", &id, w.path("out").to_str().unwrap()]);
    assert_ne!(r.code, 0);
}

/// Damage in a tree (directory listing) rather than in file data: found
/// by a plain check already, named by directory, and healed by the next
/// save, which then cannot reuse the previous snapshot's lists.
#[test]
fn damaged_tree_is_found_and_healed() {
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
    assert_eq!(packs.len(), 2, "{packs:?}");
    let tree_pack = packs[0].1.clone();
    {
        let f = fs::OpenOptions::new().read(true).write(true).open(&tree_pack).unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, HEADER_LEN + 4).unwrap();
        b[0] ^= 0xff;
        f.write_all_at(&b, HEADER_LEN + 4).unwrap();
    }

    let plain = w.chkfs(["check", "--json"]);
    assert_eq!(plain.code, 4, "plain check of a damaged tree:\n{}", plain.stderr);
    let (code, report, out) = w.check();
    assert_eq!(code, 4, "{}", out.stderr);
    let users: Vec<String> = report["damaged_blobs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["used_by"].as_array().unwrap().clone())
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    assert!(users.iter().any(|u| u.starts_with(&format!("{id1}:/"))), "{report}");
    let r = w.chkfs(["restore", &id1, w.path("bad").to_str().unwrap()]);
    assert_ne!(r.code, 0, "a snapshot with a damaged tree restored");

    let s2 = w.save(&src, &[]);
    assert!(s2["added_blobs"].as_u64().unwrap() >= 1, "{s2}");
    let good = w.path("good");
    w.restore("latest", &good);
    assert_diff_equal(&src, &good, &[]);
    assert_same_tree(&src, &good, true);
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "check after healing:\n{}", out.stderr);
}

/// When every chunk of a pack is damaged (here: the start of its only,
/// compressed, block is zeroed), the healing save stores all of them
/// again, in the same order: the new pack must still be written.
#[test]
fn healing_a_pack_whose_chunks_are_all_damaged() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    let text: String = (0..3000).map(|i| format!("line {i} of a compressible file\n")).collect();
    assert!(text.len() < 120_000);
    fs::write(src.join("text.txt"), &text).unwrap();
    let id1 = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let mut packs: Vec<_> = pack_files(&w.repo).into_iter().map(|p| (fs::metadata(&p).unwrap().len(), p)).collect();
    packs.sort();
    let (size, data_pack) = packs.pop().unwrap();
    assert!(size < text.len() as u64 / 2, "the block is not compressed");
    {
        let f = fs::OpenOptions::new().write(true).open(&data_pack).unwrap();
        f.write_all_at(&[0u8; 64], HEADER_LEN).unwrap();
    }
    let (code, report, out) = w.check();
    assert_eq!(code, 4, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("used by {id1}:/text.txt")), "{}", out.stderr);
    assert!(!report["damaged_blobs"].as_array().unwrap().is_empty());

    let s2 = w.save(&src, &[]);
    assert_eq!(s2["bytes_read"], text.len() as u64, "{s2}");
    let good = w.path("good");
    w.restore("latest", &good);
    assert_eq!(fs::read_to_string(good.join("text.txt")).unwrap(), text);
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "check after healing:\n{}", out.stderr);
}

/// A damaged index file is reported by check, does not stop restores
/// (packs are indexed from their own footers), and the next save repairs
/// it, after which check passes.
#[test]
fn damaged_index_file_is_survived_and_repaired() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("one"), random_bytes(60_000, 11)).unwrap();
    let s1 = w.save(&src, &[]);
    let v1 = w.path("v1");
    copy_tree(&src, &v1);
    fs::write(src.join("two"), random_bytes(60_000, 12)).unwrap();
    let s2 = w.save(&src, &[]);

    let indexes = find_files(&w.repo.join("index"), &|p| p.extension() == Some(std::ffi::OsStr::new("idx")));
    assert_eq!(indexes.len(), 2, "{indexes:?}");
    for idx in &indexes {
        let len = fs::metadata(idx).unwrap().len();
        let f = fs::OpenOptions::new().read(true).write(true).open(idx).unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, len / 2).unwrap();
        b[0] ^= 0xff;
        f.write_all_at(&b, len / 2).unwrap();
    }

    let out = w.chkfs(["check", "--json"]);
    assert_eq!(out.code, 4, "a damaged index file is not reported:\n{}", out.stderr);
    let report = out.json();
    let errors = report["errors"].to_string();
    for idx in &indexes {
        let name = idx.file_name().unwrap().to_str().unwrap();
        assert!(errors.contains(name), "{name} not named: {report}");
    }

    for (snap, expect) in [(&s1, &v1), (&s2, &src)] {
        let out = w.path(&format!("out-{}", snap["id"].as_str().unwrap()));
        w.restore(snap["id"].as_str().unwrap(), &out);
        assert_diff_equal(expect, &out, &[]);
    }

    let s3 = w.chkfs([std::ffi::OsStr::new("save"), std::ffi::OsStr::new("--json"), src.as_os_str()]);
    s3.ok();
    assert_eq!(s3.json()["bytes_read"], 0, "{}", s3.stdout_str());
    let (code, report, out) = w.check();
    assert_eq!(code, 0, "check after the repairing save:\n{}", out.stderr);
    assert_eq!(report["unindexed_packs"], 0, "{report}");
    let out = w.path("after");
    w.restore(s1["id"].as_str().unwrap(), &out);
    assert_diff_equal(&v1, &out, &[]);
}
