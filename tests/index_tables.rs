//! The local cache of index tables: written beside each index file,
//! mapped by later commands, merged past four, dropped when stale or
//! damaged, and never a reason for a wrong byte.

mod common;

use chkfs::format::index_table::TableView;
use chkfs::format::PackId;
use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

fn tables(w: &World) -> Vec<PathBuf> {
    let root = w.home.join(".cache/chkfs");
    find_files(&root, &|p| p.extension().is_some_and(|e| e == "tbl"))
}

fn index_names(w: &World) -> BTreeSet<PackId> {
    find_files(&w.repo.join("index"), &|p| p.extension().is_some_and(|e| e == "idx"))
        .iter()
        .map(|p| PackId(u128::from_str_radix(p.file_stem().unwrap().to_str().unwrap(), 16).unwrap()))
        .collect()
}

fn covers(table: &Path) -> Vec<PackId> {
    let bytes = fs::read(table).unwrap();
    TableView::open(&bytes).unwrap().covers().collect()
}

/// Saves versions `range` of a small source, each adding one file: one
/// index file each. Returns the snapshots' ids with a copy of each version.
fn versions(w: &World, range: std::ops::Range<usize>) -> Vec<(String, PathBuf)> {
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    range
        .map(|i| {
            fs::write(src.join(format!("f{i}")), random_bytes(50_000, i as u64 + 1)).unwrap();
            let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
            let copy = w.path(&format!("v{i}"));
            copy_tree(&src, &copy);
            (id, copy)
        })
        .collect()
}

fn restores_exactly(w: &World, id: &str, expect: &Path) {
    let out = w.path(&format!("out-{id}"));
    remove_tree(&out);
    w.restore(id, &out).ok();
    assert_diff_equal(expect, &out, &[]);
}

#[test]
fn each_index_file_gets_a_table_and_past_four_they_are_merged() {
    let w = World::with_repo();
    let saved = versions(&w, 0..1);
    let t = tables(&w);
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(covers(&t[0]).into_iter().collect::<BTreeSet<_>>(), index_names(&w));

    let saved: Vec<_> = saved.into_iter().chain(versions(&w, 1..12)).collect();
    // Each save loaded the tables before writing its own: at most 4 were
    // ever searched, and the merged ones cover exactly the index files.
    let t = tables(&w);
    assert!(t.len() <= 5, "{} tables", t.len());
    w.chkfs(["check"]).ok();
    let t = tables(&w);
    assert!(t.len() <= 4, "{} tables after a load", t.len());
    let mut covered = BTreeSet::new();
    for table in &t {
        for c in covers(table) {
            assert!(covered.insert(c), "index file {c} covered twice");
        }
    }
    assert_eq!(covered, index_names(&w));
    for (id, copy) in &saved {
        restores_exactly(&w, id, copy);
    }
}

#[test]
fn a_damaged_table_never_gives_a_wrong_byte_and_check_makes_it_again() {
    let w = World::with_repo();
    let saved = versions(&w, 0..1);
    let (id, copy) = &saved[0];
    let table = tables(&w).pop().unwrap();
    let bytes = fs::read(&table).unwrap();
    let view = TableView::open(&bytes).unwrap();
    let blobs = view.blob_count() as u64;
    // Every blob's offset within its block, moved by one: a checksum
    // would not stop someone who writes the file on purpose.
    let header = 80 + 16 * covers(&table).len() as u64 + 32 * (view.pack_count() + view.block_count()) as u64;
    let f = fs::OpenOptions::new().read(true).write(true).open(&table).unwrap();
    for pos in 0..blobs {
        let at = header + 32 * pos + 20;
        let mut b = [0u8; 4];
        f.read_exact_at(&mut b, at).unwrap();
        let moved = u32::from_le_bytes(b).wrapping_add(1);
        f.write_all_at(&moved.to_le_bytes(), at).unwrap();
    }
    drop(f);
    let out = w.path("damaged-out");
    let r = w.chkfs([std::ffi::OsStr::new("restore"), std::ffi::OsStr::new(id), out.as_os_str()]);
    // The first read that fails has the tables checked and made again.
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_diff_equal(copy, &out, &[]);
    assert_eq!(tables(&w).len(), 1, "made again");
    // check finds a damaged table before any read does.
    let table = tables(&w).pop().unwrap();
    let len = fs::metadata(&table).unwrap().len();
    let f = fs::OpenOptions::new().read(true).write(true).open(&table).unwrap();
    f.write_all_at(&[0xff], len - 1).unwrap();
    let (code, report, out) = w.check();
    assert_eq!(code, 0, "the repository itself is sound: {}", out.stderr);
    assert!(report.to_string().contains("local index tables were damaged"), "{report}");
    assert_eq!(tables(&w).len(), 1, "made again");
    restores_exactly(&w, id, copy);
}

#[test]
fn foreign_truncated_and_stale_tables_are_ignored_and_removed() {
    let w = World::with_repo();
    let saved = versions(&w, 0..2);
    let dir = tables(&w)[0].parent().unwrap().to_path_buf();
    let garbage = dir.join("0123456789abcdef0123456789abcdef.tbl");
    fs::write(&garbage, b"not a table at all").unwrap();
    let mine = tables(&w).into_iter().find(|t| *t != garbage).unwrap();
    let len = fs::metadata(&mine).unwrap().len();
    fs::OpenOptions::new().write(true).open(&mine).unwrap().set_len(len / 2).unwrap();
    for (id, copy) in &saved {
        restores_exactly(&w, id, copy);
    }
    assert!(!garbage.exists(), "a file that is no table is removed");

    // A gc replaces every index file: the tables made before cover files
    // that are gone, and once old they are removed.
    w.chkfs(["forget", &saved[0].0]).ok();
    w.chkfs(["gc"]).ok();
    let before_gc: Vec<PathBuf> =
        tables(&w).into_iter().filter(|t| !covers(t).iter().all(|c| index_names(&w).contains(c))).collect();
    for t in &before_gc {
        set_mtime(t, 1_600_000_000, 0);
    }
    restores_exactly(&w, &saved[1].0, &saved[1].1);
    for t in &before_gc {
        assert!(!t.exists(), "stale table {} kept", t.display());
    }
    let covered: BTreeSet<PackId> = tables(&w).iter().flat_map(|t| covers(t)).collect();
    assert_eq!(covered, index_names(&w));
}

#[test]
fn without_a_usable_cache_every_command_works_from_memory() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), random_bytes(80_000, 3)).unwrap();
    // A cache directory another user owns is not used.
    let cache = w.home.join(".cache/chkfs");
    fs::create_dir_all(&cache).unwrap();
    chown_r(&cache, 65534, 65534);
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    restores_exactly(&w, &id, &src);
    assert!(tables(&w).is_empty(), "{:?}", tables(&w));
    chown_r(&cache, 0, 0);

    let out = w.cmd().env("CHKFS_NO_INDEX_CACHE", "1").args(["save", "--json", src.to_str().unwrap()]).output();
    assert!(out.unwrap().status.success());
    assert!(tables(&w).is_empty(), "CHKFS_NO_INDEX_CACHE writes no table");
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
}

/// Rewrites both checksums of a table, as someone editing it on purpose
/// would.
fn reseal(table: &Path) {
    let mut b = fs::read(table).unwrap();
    let body = xxhash_rust::xxh3::xxh3_128(&b[80..]);
    b[56..72].copy_from_slice(&body.to_le_bytes());
    let head = xxhash_rust::xxh3::xxh3_64(&b[..72]);
    b[72..80].copy_from_slice(&head.to_le_bytes());
    fs::write(table, b).unwrap();
}

/// A blob record pointing at another block, checksums and all: the block
/// holds other bytes, and no read may return them. check finds that the
/// table disagrees with the index file and makes it again.
#[test]
fn a_table_pointing_a_chunk_at_another_block_never_gives_its_bytes() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..6 {
        fs::write(src.join(format!("f{i}")), random_bytes(400_000, 40 + i)).unwrap();
    }
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let table = tables(&w).pop().unwrap();
    let bytes = fs::read(&table).unwrap();
    let view = TableView::open(&bytes).unwrap();
    let blobs_at = 80 + 16 * covers(&table).len() as u64 + 32 * (view.pack_count() + view.block_count()) as u64;
    let f = fs::OpenOptions::new().read(true).write(true).open(&table).unwrap();
    // Every chunk's block moved to the next one (wrapping).
    for pos in 0..view.blob_count() as u64 {
        let at = blobs_at + 32 * pos + 16;
        let mut b = [0u8; 4];
        f.read_exact_at(&mut b, at).unwrap();
        let moved = (u32::from_le_bytes(b) + 1) % view.block_count();
        f.write_all_at(&moved.to_le_bytes(), at).unwrap();
    }
    drop(f);
    reseal(&table);
    let out = w.path("out");
    let r = w.chkfs([std::ffi::OsStr::new("restore"), std::ffi::OsStr::new(&id), out.as_os_str()]);
    for i in 0..6 {
        let name = format!("f{i}");
        if let Ok(got) = fs::read(out.join(&name)) {
            assert!(got == fs::read(src.join(&name)).unwrap(), "{name}: wrong bytes restored (exit {})", r.code);
        }
    }
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "the repository is sound: {}", out.stderr);
    restores_exactly(&w, &id, &src);
}

/// The cached records are for listing; gc and forget read storage. A
/// record's cached bytes swapped for another's of the same size (the size
/// and time under which it is cached unchanged) costs gc nothing.
#[test]
fn gc_and_forget_read_records_from_storage_not_the_cache() {
    let w = World::with_repo();
    let (a, b) = (w.path("a"), w.path("b"));
    for (dir, seed) in [(&a, 1), (&b, 2)] {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("f"), random_bytes(200_000, seed)).unwrap();
    }
    let ida = w.save(&a, &[])["id"].as_str().unwrap().to_string();
    let idb = w.save(&b, &[])["id"].as_str().unwrap().to_string();
    w.chkfs(["list"]).ok();
    let records = find_files(&w.home.join(".cache/chkfs"), &|p| p.ends_with("snapshots/records")).pop().unwrap();
    let cached = fs::read(&records).unwrap();
    let stored = |id: &str| {
        fs::read(find_files(&w.repo.join("snapshots"), &|p| p.to_str().unwrap().contains(id)).pop().unwrap()).unwrap()
    };
    let (ra, rb) = (stored(&ida), stored(&idb));
    assert_eq!(ra.len(), rb.len(), "the two records have one size");
    let at = cached.windows(ra.len()).position(|x| x == ra.as_slice()).expect("record a is cached");
    let mut swapped = cached.clone();
    swapped[at..at + ra.len()].copy_from_slice(&rb);
    fs::write(&records, swapped).unwrap();
    w.chkfs(["gc"]).ok();
    restores_exactly(&w, &ida, &a);
    restores_exactly(&w, &idb, &b);
}

#[test]
fn a_fifo_in_place_of_a_table_is_passed_over() {
    let w = World::with_repo();
    let saved = versions(&w, 0..1);
    let dir = tables(&w)[0].parent().unwrap().to_path_buf();
    let fifo = dir.join("00000000000000000000000000000000.tbl");
    sh("mkfifo", [fifo.as_os_str()]).ok();
    let out = w.path("out");
    let r = run_with_timeout(w.cmd().arg("restore").arg(&saved[0].0).arg(&out), std::time::Duration::from_secs(60));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_diff_equal(&saved[0].1, &out, &[]);
}

/// A cache directory that is a symlink to a directory of another user is
/// not used, and nothing is made inside it.
#[test]
fn a_cache_directory_of_another_user_is_left_alone() {
    let w = World::with_repo();
    let theirs = w.path("theirs");
    fs::create_dir_all(&theirs).unwrap();
    chown_r(&theirs, 65534, 65534);
    fs::create_dir_all(w.home.join(".cache")).unwrap();
    std::os::unix::fs::symlink(&theirs, w.home.join(".cache/chkfs")).unwrap();
    let saved = versions(&w, 0..2);
    restores_exactly(&w, &saved[0].0, &saved[0].1);
    assert_eq!(fs::read_dir(&theirs).unwrap().count(), 0, "something was made in another user's directory");
}

/// Unmounts when dropped, so a failing test leaves no mount behind.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = sh("umount", [self.0.as_os_str()]);
    }
}

/// A cache on a full file system costs its tables, never a command.
#[test]
fn a_full_cache_disk_stops_no_command() {
    if !nix_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        return;
    }
    let w = World::with_repo();
    let cache = w.home.join(".cache");
    fs::create_dir_all(&cache).unwrap();
    sh("mount", ["-t", "tmpfs", "-o", "size=8k,mode=0700", "tmpfs", cache.to_str().unwrap()]).ok();
    let _guard = Unmount(cache.clone());
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..4 {
        fs::write(src.join(format!("f{i}")), random_bytes(3 << 20, 70 + i)).unwrap();
    }
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    assert!(tables(&w).is_empty(), "a table fitted: the test does not fill the disk");
    restores_exactly(&w, &id, &src);
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
    w.chkfs(["gc"]).ok();
    restores_exactly(&w, &id, &src);
}

fn nix_root() -> bool {
    // SAFETY: a plain system call without arguments.
    unsafe { libc::geteuid() == 0 }
}
