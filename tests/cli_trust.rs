//! Regression tests for what made chkfs untrustworthy: each failed before
//! its fix. Races are in restore_race.rs and save_race.rs, forged trees in
//! hostile_trees.rs, crashes in fault_backend.rs, a full disk in
//! cli_disk_full.rs.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

const HEADER_LEN: u64 = 16;

fn flip(path: &Path, offset: u64) {
    let f = fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x5a;
    f.write_all_at(&b, offset).unwrap();
}

fn biggest_pack(repo: &Path) -> PathBuf {
    let mut packs: Vec<_> = pack_files(repo).into_iter().map(|p| (fs::metadata(&p).unwrap().len(), p)).collect();
    packs.sort();
    packs.pop().expect("a pack").1
}

/// No part of an error message says the same thing twice ("X: X").
#[track_caller]
fn assert_no_repetition(stderr: &str) {
    for line in stderr.lines() {
        let parts: Vec<&str> = line.split(": ").filter(|p| p.len() > 6).collect();
        for (i, p) in parts.iter().enumerate() {
            assert!(!parts[i + 1..].contains(p), "{p:?} is said twice in {line:?}");
        }
    }
}

/// Defect 5: the first name of a hard-link group cannot be restored (its
/// chunk is damaged): every name is reported, none exists, nothing partial
/// is left behind.
#[test]
fn a_hard_link_group_whose_content_is_damaged_is_reported_by_every_name() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("a"), random_bytes(200_000, 5)).unwrap();
    fs::hard_link(src.join("a"), src.join("b")).unwrap();
    fs::hard_link(src.join("a"), src.join("d/c")).unwrap();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    flip(&biggest_pack(&w.repo), HEADER_LEN + 1000);
    let out = w.path("out");
    let r = w.chkfs(["restore", &id, out.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    for name in ["out/a", "out/b", "out/d/c"] {
        assert!(r.stderr.contains(name), "{name} is not named:\n{}", r.stderr);
        assert!(!w.path(name).exists(), "{name} exists after a failed restore");
    }
    let left: Vec<_> = find_files(&out, &|_| true);
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Defect 6: a file whose bytes are exactly an encoded tree (the empty
/// directory's tree is the same in every repository) is a chunk, and the
/// tree a tree, though both have the same id.
#[test]
fn a_file_holding_a_trees_bytes_is_a_different_blob() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("empty")).unwrap();
    let tree = chkfs::format::tree::encode_tree(&chkfs::format::tree::Tree::default()).unwrap();
    fs::write(src.join("looks-like-a-tree"), &tree).unwrap();
    let first = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let (code, _, c) = w.check();
    assert_eq!(code, 0, "{}", c.stderr);
    w.restore(&first, &w.path("out1"));
    assert_same_tree(&src, &w.path("out1"), false);
    fs::remove_dir(src.join("empty")).unwrap();
    w.save(&src, &[]);
    w.chkfs(["forget", &first]).ok();
    w.chkfs(["gc", "--max-waste", "0"]).ok();
    let (code, _, c) = w.check();
    assert_eq!(code, 0, "{}", c.stderr);
    w.restore("latest", &w.path("out2"));
    assert_eq!(fs::read(w.path("out2/looks-like-a-tree")).unwrap(), tree);
}

/// Defect 8: a damage list with one flipped byte is reported and ignored,
/// never a reason for every command to fail; `check --read-data` replaces
/// it.
#[test]
fn a_damaged_damage_list_stops_nothing() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), random_bytes(50_000, 6)).unwrap();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let repo = chkfs::store::Repository::open_local(&w.repo).unwrap();
    repo.record_damage(vec![(chkfs::format::PackId(1), chkfs::format::BlobId(2))]).unwrap();
    let list = find_files(&w.repo.join("damaged"), &|_| true).pop().expect("a damage list");
    flip(&list, 21);
    let s = w.chkfs(["save", src.to_str().unwrap()]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert!(s.stderr.contains("damage list") && s.stderr.contains("ignored"), "{}", s.stderr);
    w.restore(&id, &w.path("out"));
    w.chkfs(["gc"]).ok();
    let c = w.chkfs(["check"]);
    assert_eq!(c.code, 4, "{}", c.stderr);
    assert!(c.stderr.contains("damage list"), "{}", c.stderr);
    let c = w.chkfs(["check", "--read-data"]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert!(!list.exists(), "check --read-data replaced the unreadable list");
    w.chkfs(["check"]).ok();
}

/// Defect 10: damage to a pack's footer or trailer (which no blob hash
/// covers) is found by `check --read-data`.
#[test]
fn damaged_pack_footers_and_trailers_are_found() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..20 {
        fs::write(src.join(format!("f{i}")), random_bytes(10_000, i)).unwrap();
    }
    w.save(&src, &[]);
    let pack = biggest_pack(&w.repo);
    let len = fs::metadata(&pack).unwrap().len();
    // Trailer magic, footer length, the footer's envelope and payload.
    for back in [1, 9, 16, 20, 60, 200] {
        flip(&pack, len - back);
        let (code, report, out) = w.check();
        assert_eq!(code, 4, "a flip {back} bytes before the end went unnoticed:\n{}", out.stderr);
        let name = pack.file_stem().unwrap().to_str().unwrap();
        assert!(report["errors"].to_string().contains(name), "{report}");
        flip(&pack, len - back);
    }
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
}

/// Defect 12: restore never writes into the repository, nor removes it
/// when it is in the way of a --force restore.
#[test]
fn restore_never_damages_the_repository() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("config"), b"would overwrite the repository's config\n").unwrap();
    fs::write(src.join("repo"), b"a file where the repository is\n").unwrap();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    for target in [w.repo.clone(), w.repo.join("packs"), w.repo.join("new-dir")] {
        let r = w.chkfs(["restore", "--force", &id, target.to_str().unwrap()]);
        assert_ne!(r.code, 0, "restored into {}", target.display());
        assert!(r.stderr.contains("inside the repository"), "{}", r.stderr);
    }
    // The repository is `repo` in the world's directory: in the way.
    let r = w.chkfs(["restore", "--force", &id, w.dir.path().to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("repository"), "{}", r.stderr);
    // A snapshot holding a directory named like it, with a `config`.
    let src2 = w.path("src2");
    fs::create_dir_all(src2.join("repo/index")).unwrap();
    fs::write(src2.join("repo/config"), b"garbage\n").unwrap();
    fs::write(src2.join("repo/index/x"), b"garbage\n").unwrap();
    let id2 = w.save(&src2, &[])["id"].as_str().unwrap().to_string();
    let r = w.chkfs(["restore", "--force", &id2, w.dir.path().to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
    assert!(w.repo.join("config").is_file());
    assert!(!w.repo.join("index/x").exists());
    // A directory of the repository mounted elsewhere is still it.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let bound = w.path("bound");
        fs::create_dir(&bound).unwrap();
        sh("mount", [std::ffi::OsStr::new("--bind"), w.repo.join("index").as_os_str(), bound.as_os_str()]).ok();
        let r = w.chkfs(["restore", &id, bound.join("t").to_str().unwrap()]);
        let _ = sh("umount", [std::ffi::OsStr::new("-l"), bound.as_os_str()]);
        assert_ne!(r.code, 0, "restored into a bind mount of the repository's index");
        assert!(r.stderr.contains("inside the repository"), "{}", r.stderr);
        assert!(!w.repo.join("index/t").exists());
    }
}

/// Defect 18: an index file of a newer format is never deleted: every
/// command says a newer chkfs wrote it. (Named, as every index file, by
/// the hash of its bytes: a version byte flipped in place is damage.)
#[test]
fn an_index_of_a_newer_format_is_kept_and_named() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    w.save(&src, &[]);
    let old = find_files(&w.repo.join("index"), &|_| true).pop().unwrap();
    let mut bytes = fs::read(&old).unwrap();
    let newer = chkfs::format::FORMAT_VERSION + 1;
    bytes[5] = newer;
    fs::remove_file(&old).unwrap();
    let index = w.repo.join(format!("index/{:032x}.idx", xxhash_rust::xxh3::xxh3_128(&bytes)));
    fs::write(&index, &bytes).unwrap();
    for args in [&["save", src.to_str().unwrap()][..], &["gc"], &["check"], &["restore", "latest", "/nonexistent-out"]]
    {
        let out = w.chkfs(args);
        assert_ne!(out.code, 0, "{args:?}");
        let said = format!("written by a newer chkfs (format version {newer}");
        assert!(out.stderr.contains(&said), "{args:?}: {}", out.stderr);
    }
    assert_eq!(fs::read(&index).unwrap(), bytes, "the newer index file was changed");
}

/// One flipped byte in an index file's header (its version) is damage, not
/// a newer format: commands go on (the packs are read from their footers),
/// check reports it, and the next writer repairs it.
#[test]
fn a_flipped_version_byte_in_an_index_file_is_damage() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let index = find_files(&w.repo.join("index"), &|_| true).pop().unwrap();
    flip(&index, 5);
    w.restore(&id, &w.path("out"));
    let c = w.chkfs(["check"]);
    assert_eq!(c.code, 4, "{}", c.stderr);
    assert!(c.stderr.contains("do not match its name"), "{}", c.stderr);
    w.save(&src, &[]);
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "the save repaired the index: {}", out.stderr);
}

/// Defect 19: `--keep-* 0` would forget everything: refused; what forget
/// removes is printed.
#[test]
fn forget_refuses_zero_and_says_what_it_forgot() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    for flag in ["--keep-last", "--keep-hourly", "--keep-daily", "--keep-weekly", "--keep-monthly", "--keep-yearly"] {
        let out = w.chkfs(["forget", flag, "0"]);
        assert_eq!(out.code, 2, "{flag} 0: {}", out.stderr);
    }
    assert_eq!(w.list().len(), 1);
    let out = w.chkfs(["forget", &id[..1]]);
    out.ok();
    assert!(out.stderr.lines().any(|l| l.starts_with(&format!("forgot {id}"))), "{}", out.stderr);
    assert!(w.list().is_empty());
}

/// Defect 20: names from a record never reach the terminal raw.
#[test]
fn list_escapes_control_characters_from_records() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    let out = w.chkfs(["save", "--host", "\u{1b}]0;owned\u{7}\u{1b}[31m", "-m", "\u{9b}2J", src.to_str().unwrap()]);
    out.ok();
    let l = w.chkfs(["list"]);
    l.ok();
    assert!(!l.stdout.contains(&0x1b) && !l.stdout.contains(&0x07), "{:?}", l.stdout_str());
    assert!(!l.stdout_str().contains('\u{9b}'), "{:?}", l.stdout_str());
    assert!(l.stdout_str().contains("\\u{1b}]0;owned"), "{}", l.stdout_str());
}

/// Defect 20: an error is said once, not once per layer.
#[test]
fn errors_do_not_repeat_their_cause() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    w.save(&src, &[]);
    let cases: Vec<Vec<String>> = vec![
        vec!["save".into(), w.path("missing").to_string_lossy().into()],
        vec!["restore".into(), "ffffffff".into(), w.path("o").to_string_lossy().into()],
        vec!["--repo".into(), w.path("nothing").to_string_lossy().into(), "list".into()],
    ];
    for args in cases {
        let out = w.chkfs(&args);
        assert_ne!(out.code, 0);
        assert_no_repetition(&out.stderr);
    }
    // A pack that cannot be read.
    let pack = biggest_pack(&w.repo);
    fs::remove_file(&pack).unwrap();
    fs::create_dir(&pack).unwrap();
    let out = w.chkfs(["restore", "latest", w.path("o2").to_str().unwrap()]);
    assert_ne!(out.code, 0);
    assert_no_repetition(&out.stderr);
}

/// Defect 21: a repository is private to its owner whatever the umask.
#[test]
fn a_new_repository_is_private() {
    let w = World::new();
    let mut cmd = w.cmd();
    cmd.arg("init");
    // A permissive umask for the child only.
    let out = run_with_timeout(
        std::process::Command::new("sh").arg("-c").arg(format!(
            "umask 000 && exec {} --repo {} init",
            CHKFS,
            w.repo.display()
        )),
        TIMEOUT,
    );
    out.ok();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"secret\n").unwrap();
    let saved = run_with_timeout(
        std::process::Command::new("sh").arg("-c").arg(format!(
            "umask 000 && exec {} --repo {} save {}",
            CHKFS,
            w.repo.display(),
            src.display()
        )),
        TIMEOUT,
    );
    saved.ok();
    for (path, meta) in walk(&w.repo) {
        let want = if meta.kind == "dir" { 0o700 } else { 0o600 };
        assert_eq!(meta.perm & 0o777, want, "{} has mode {:o}", String::from_utf8_lossy(&path), meta.perm);
    }
    assert_eq!(fs::metadata(&w.repo).unwrap().mode() & 0o777, 0o700);
    drop(cmd);
}
