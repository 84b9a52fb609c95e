//! Trees forged by someone who holds the repository: valid envelopes and
//! hashes around contents chkfs never writes. Each must be refused with
//! the exact reason, by check (exit 4) and restore (exit 3, everything
//! else restored), and restore must write nothing outside TARGET.

mod common;

use chkfs::format::tree::Extent;
use common::forge::*;
use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Every path under the world's directory outside the repository and the
/// restore target, to prove a restore wrote nothing else.
fn outside(w: &World) -> BTreeSet<Vec<u8>> {
    walk(w.dir.path()).keys().filter(|p| !p.starts_with(b"repo") && !p.starts_with(b"out")).cloned().collect()
}

fn restore_out(w: &World, spec: &str) -> Out {
    let before = outside(w);
    let out = w.chkfs(["restore", spec, w.path("out").to_str().unwrap()]);
    assert_eq!(outside(w), before, "restore wrote outside its target");
    out
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn check(w: &World) -> Out {
    w.chkfs(["check", "--read-data"])
}

/// A snapshot whose root holds a good file `a` and a directory `sub`
/// whose tree has the given (forged) entries.
fn with_bad_subtree(w: &World, entries: impl FnOnce(&mut Forge) -> Vec<chkfs::format::tree::Entry>) -> String {
    let mut f = Forge::open(&w.repo);
    let good = f.chunk(b"good content\n");
    let bad_entries = entries(&mut f);
    let sub = f.tree(bad_entries);
    let root = f.tree(vec![file(b"a", vec![good]), dir(b"sub", sub)]);
    let repo = f.commit();
    snapshot(&repo, root, 3).to_hex()
}

fn bad_subtree_is_refused(
    name: &str,
    reason: &str,
    entries: impl FnOnce(&mut Forge) -> Vec<chkfs::format::tree::Entry>,
) {
    let w = World::with_repo();
    w.chkfs(["list"]).ok();
    let id = with_bad_subtree(&w, entries);
    let c = check(&w);
    assert_eq!(c.code, 4, "{name}: check: {}", c.stderr);
    assert!(c.stderr.contains(reason), "{name}: check should say {reason:?}:\n{}", c.stderr);
    let r = restore_out(&w, &id);
    assert_eq!(r.code, 3, "{name}: restore: {}", r.stderr);
    assert!(r.stderr.contains(reason) && r.stderr.contains("out/sub"), "{name}: restore:\n{}", r.stderr);
    assert_eq!(fs::read(w.path("out/a")).unwrap(), b"good content\n", "{name}: the rest is restored");
    assert!(names(&w.path("out/sub")).is_empty(), "{name}: nothing of the forged tree is restored");
}

#[test]
fn forged_names_are_refused() {
    for bad in [&b".."[..], b".", b"", b"a/b", b"nul\0byte", &[b'x'; 256]] {
        let shown = String::from_utf8_lossy(bad).into_owned();
        bad_subtree_is_refused(&shown, "an entry has an invalid name", |f| {
            let c = f.chunk(b"x");
            vec![file(bad, vec![c])]
        });
    }
}

#[test]
fn duplicate_and_unsorted_names_are_refused() {
    bad_subtree_is_refused("duplicate", "entries are not sorted or not unique", |f| {
        let c = f.chunk(b"x");
        vec![file(b"same", vec![c]), file(b"same", vec![c])]
    });
    bad_subtree_is_refused("unsorted", "entries are not sorted or not unique", |f| {
        let c = f.chunk(b"x");
        vec![file(b"b", vec![c]), file(b"a", vec![c])]
    });
}

#[test]
fn size_that_disagrees_with_the_extents_is_refused() {
    bad_subtree_is_refused("size", "extents do not add up to its size", |f| {
        let mut e = file(b"f", vec![f.chunk(b"12345")]);
        e.size = 1 << 40;
        vec![e]
    });
}

#[test]
fn a_payload_that_is_not_a_tree_is_refused() {
    let w = World::with_repo();
    let mut f = Forge::open(&w.repo);
    let junk = f.raw_tree(b"\xff\xff\xff\xff not bitcode at all");
    let root = f.tree(vec![dir(b"sub", junk)]);
    let repo = f.commit();
    let id = snapshot(&repo, root, 2).to_hex();
    let c = check(&w);
    assert_eq!(c.code, 4, "{}", c.stderr);
    assert!(c.stderr.contains(&junk.to_hex()), "{}", c.stderr);
    let r = restore_out(&w, &id);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("cannot decode tree"), "{}", r.stderr);
}

#[test]
fn an_extent_longer_or_shorter_than_its_chunk_is_damage() {
    let w = World::with_repo();
    let mut f = Forge::open(&w.repo);
    let Extent::Data { id, .. } = f.chunk(&random_bytes(5000, 1)) else { unreachable!() };
    let ok = f.chunk(b"fine\n");
    let long = file(b"claims-more", vec![Extent::Data { id, len: 9000 }]);
    let short = file(b"claims-less", vec![Extent::Data { id, len: 100 }]);
    let root = f.tree(vec![short, long, file(b"fine", vec![ok])]);
    let repo = f.commit();
    let snap = snapshot(&repo, root, 4).to_hex();
    let c = check(&w);
    assert_eq!(c.code, 4, "{}", c.stderr);
    assert!(c.stderr.contains("has 5000 bytes where the tree says 9000"), "{}", c.stderr);
    assert!(c.stderr.contains("has 5000 bytes where the tree says 100"), "{}", c.stderr);
    let r = restore_out(&w, &snap);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("it has 5000 bytes where its file's tree says 9000"), "{}", r.stderr);
    assert!(r.stderr.contains("it has 5000 bytes where its file's tree says 100"), "{}", r.stderr);
    // Neither file exists, not even partly; no temporary file is left.
    assert_eq!(names(&w.path("out")), vec!["fine".to_string()]);
}

#[test]
fn a_hard_link_group_whose_names_disagree_is_refused_whole() {
    let w = World::with_repo();
    let mut f = Forge::open(&w.repo);
    let (x, y) = (f.chunk(b"one content\n"), f.chunk(b"another content\n"));
    let root = f.tree(vec![
        linked(file(b"first", vec![x]), 7, 3),
        linked(file(b"second", vec![y]), 7, 3),
        linked(file(b"third", vec![x]), 7, 3),
    ]);
    let repo = f.commit();
    let snap = snapshot(&repo, root, 4).to_hex();
    let c = check(&w);
    assert_eq!(c.code, 4, "{}", c.stderr);
    assert!(c.stderr.contains("hard-link group 7: /first and /second disagree"), "{}", c.stderr);
    let r = restore_out(&w, &snap);
    assert_eq!(r.code, 3, "{}", r.stderr);
    for name in ["first", "second", "third"] {
        assert!(r.stderr.contains(&format!("out/{name}: its hard-link group")), "{name}:\n{}", r.stderr);
    }
    assert!(names(&w.path("out")).is_empty());
}

#[test]
fn a_file_naming_a_tree_and_a_directory_naming_a_chunk_are_damage() {
    let w = World::with_repo();
    let mut f = Forge::open(&w.repo);
    let inner = f.tree(vec![]);
    let tree_bytes = chkfs::format::tree::encode_tree(&chkfs::format::tree::Tree::default()).unwrap();
    let data = f.chunk(b"plain file content\n");
    let Extent::Data { id: data_id, .. } = data else { unreachable!() };
    let root = f.tree(vec![
        dir(b"dir-of-a-chunk", data_id),
        file(b"file-of-a-tree", vec![Extent::Data { id: inner, len: tree_bytes.len() as u32 }]),
    ]);
    let repo = f.commit();
    let snap = snapshot(&repo, root, 3).to_hex();
    let c = check(&w);
    assert_eq!(c.code, 4, "{}", c.stderr);
    assert!(c.stderr.contains(&format!("chunk {inner} is stored as a tree, not as file content")), "{}", c.stderr);
    assert!(c.stderr.contains(&format!("tree {data_id}: missing from the repository")), "{}", c.stderr);
    let r = restore_out(&w, &snap);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("chunk {inner} is missing from the repository")), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("tree {data_id} is missing from the repository")), "{}", r.stderr);
    assert!(!w.path("out/file-of-a-tree").exists());
}

/// Tree n holds two directories that are both tree n+1: 2^60 paths in
/// 60 trees. Check and gc visit each tree once; restore refuses before
/// writing anything, because the record counts 121 entries.
#[test]
fn exponentially_many_paths_are_refused_fast() {
    let w = World::with_repo();
    let mut f = Forge::open(&w.repo);
    let mut below = f.tree(vec![]);
    for _ in 0..60 {
        below = f.tree(vec![dir(b"a", below), dir(b"b", below)]);
    }
    let repo = f.commit();
    let snap = snapshot(&repo, below, 121).to_hex();
    // The same tree under a record that claims every entry there is.
    let forged = snapshot(&repo, below, u64::MAX).to_hex();
    let c = check(&w);
    assert_eq!(c.code, 0, "{}", c.stderr);
    w.chkfs(["gc"]).ok();
    let r = restore_out(&w, &snap);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("nothing was restored: the tree holds more than 122 entries"), "{}", r.stderr);
    assert!(!w.path("out").exists() || names(&w.path("out")).is_empty());
    let r = restore_out(&w, &forged);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("needs more memory than is available"), "{}", r.stderr);
}

/// 20,000 directories deep: restore, check and gc walk it without
/// recursion, in bounded memory, with quiet output.
#[test]
fn a_tree_twenty_thousand_deep_restores_in_bounded_memory() {
    const DEPTH: usize = 20_000;
    let w = World::with_repo();
    let mut f = Forge::open(&w.repo);
    let leaf = f.chunk(b"at the bottom\n");
    let mut below = f.tree(vec![file(b"f", vec![leaf])]);
    for _ in 0..DEPTH {
        below = f.tree(vec![dir(b"d", below)]);
    }
    let repo = f.commit();
    let snap = snapshot(&repo, below, DEPTH as u64 + 2);
    let out = w.path("out");
    let mut cmd = w.cmd();
    cmd.args(["restore", "--json", &snap.to_hex()]).arg(&out);
    let (r, max_rss_kib) = run_measured(&mut cmd, &w.path("time.txt"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.len() < 4096, "restore wrote {} bytes to stderr", r.stderr.len());
    assert!(max_rss_kib < 400 << 10, "restore used {max_rss_kib} KiB");
    assert_eq!(r.json()["dirs"], DEPTH as u64 + 1);
    // The file at the bottom, reached one directory at a time.
    let mut d = chkfs::dirfd::Dir::open_path(&out).unwrap();
    for _ in 0..DEPTH {
        d = d.child(b"d").unwrap();
    }
    assert_eq!(d.names().unwrap(), vec![b"f".to_vec()]);
    let c = check(&w);
    assert_eq!(c.code, 0, "{}", c.stderr);
    // The test's own cleanup cannot recurse 20,000 levels either.
    chkfs::dirfd::Dir::open_path(w.dir.path()).unwrap().remove_all(b"out", &[]).unwrap();
}

#[test]
fn a_snapshot_record_with_an_impossible_time_is_damage_not_a_panic() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    w.save(&src, &[]);
    // A record sealed by hand with a time at the end of i64.
    let repo = chkfs::store::Repository::open_local(&w.repo).unwrap();
    let good = repo.snapshot_ids().unwrap()[0];
    let mut rec = repo.read_snapshot(good).unwrap().unwrap();
    rec.time.secs = i64::MAX;
    let bytes = chkfs::format::records::encode_snapshot(&rec).unwrap();
    fs::write(w.repo.join("snapshots/0badc0de.snap"), bytes).unwrap();
    let l = w.chkfs(["list"]);
    assert_eq!(l.code, 0, "{}", l.stderr);
    assert!(l.stderr.contains("snapshot 0badc0de is unreadable") && l.stderr.contains("a time is out of range"));
    let c = w.chkfs(["check"]);
    assert_eq!(c.code, 4, "{}", c.stderr);
    let r = w.chkfs(["restore", "0badc0de", w.path("out").to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("a time is out of range"), "{}", r.stderr);
    w.chkfs(["forget", "--keep-within", "1d"]).ok();
}

/// An index file whose block claims to expand 10 stored bytes into a
/// gigabyte is refused before anything is allocated for it; its packs are
/// read from their own footers instead.
#[test]
fn an_index_claiming_impossible_lengths_is_refused_and_the_packs_read_anyway() {
    use chkfs::format::pack::{BlobEntry, BlobKind, BlockInfo, Codec};
    use chkfs::format::records::{IndexFile, IndexedPack};
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), random_bytes(30_000, 4)).unwrap();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let pack = pack_files(&w.repo)[0].clone();
    let pack_id = chkfs::format::PackId::from_hex(pack.file_stem().unwrap().to_str().unwrap()).unwrap();
    let blob = BlobEntry { id: chkfs::format::BlobId(1), kind: BlobKind::Data, offset: 0, len: 1 << 30 };
    let block = BlockInfo { offset: 16, stored_len: 10, raw_len: 1 << 30, codec: Codec::Lz4, blobs: vec![blob] };
    let index = IndexFile { packs: vec![IndexedPack { id: pack_id, size: 1 << 40, blocks: vec![block] }] };
    let bytes = chkfs::format::records::encode_index(&index).unwrap();
    // Named as index files are, by the hash of its bytes.
    let name = xxhash_rust::xxh3::xxh3_128(&bytes);
    fs::write(w.repo.join(format!("index/{name:032x}.idx")), bytes).unwrap();
    let c = w.chkfs(["check", "--read-data"]);
    assert_eq!(c.code, 4, "{}", c.stderr);
    assert!(c.stderr.contains("impossible lengths"), "{}", c.stderr);
    w.restore(&id, &w.path("out"));
    assert_same_tree(&src, &w.path("out"), false);
}

/// Objects that claim huge lengths, in sparse files that cost nothing on
/// disk: a pack whose trailer claims a terabyte footer, index files and a
/// damage list whose envelopes claim 4 GiB. Every command refuses them
/// before reading or allocating what they claim (a terabyte allocation
/// used to abort every command).
#[test]
fn sparse_objects_claiming_huge_lengths_cost_nothing() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), random_bytes(40_000, 8)).unwrap();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let tb = 1u64 << 40;
    let pack = w.repo.join(format!("packs/ee/ee{}.pack", "0".repeat(30)));
    fs::create_dir_all(pack.parent().unwrap()).unwrap();
    let f = fs::File::create(&pack).unwrap();
    f.set_len(tb).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"CHKFPACK\x01\0\0\0\0\0\0\0", 0).unwrap();
    let mut trailer = (tb - 40).to_le_bytes().to_vec();
    trailer.extend_from_slice(b"CHKFTAIL");
    f.write_all_at(&trailer, tb - 16).unwrap();
    let mut head = b"CHKF\x03\x01\0\0".to_vec();
    head.extend_from_slice(&u32::MAX.to_le_bytes());
    head.extend_from_slice(&[0; 8]);
    for (dir, ext, kind) in [("index", "idx", 3u8), ("damaged", "list", 6)] {
        for n in 0..2 {
            let p = w.repo.join(format!("{dir}/{n:032x}.{ext}"));
            let f = fs::File::create(&p).unwrap();
            f.set_len(4 << 30).unwrap();
            head[4] = kind;
            f.write_all_at(&head, 0).unwrap();
        }
    }
    for (args, want) in [
        (vec!["check", "--read-data"], 4),
        (vec!["restore", &id, w.path("out").to_str().unwrap()], 0),
        (vec!["save", src.to_str().unwrap()], 0),
        (vec!["gc"], 0),
    ] {
        let mut cmd = w.cmd();
        cmd.args(&args);
        let (out, kib) = run_measured(&mut cmd, &w.path("time.txt"));
        assert_eq!(out.code, want, "{args:?}: {}", out.stderr);
        assert!(kib < 256 << 10, "{args:?} used {kib} KiB");
    }
    let c = w.chkfs(["check"]);
    assert!(c.stderr.contains("impossible"), "{}", c.stderr);
}

/// A block whose index entry mixes a huge "chunk" with a tree to dodge
/// the limit on blocks of chunks is refused (it used to make restore of a
/// 4 MB repository allocate 64 GiB).
#[test]
fn a_block_mixing_chunks_and_trees_is_refused() {
    use chkfs::format::pack::{BlobEntry, BlobKind, BlockInfo, Codec};
    let tree = BlobEntry { id: chkfs::format::BlobId(2), kind: BlobKind::Tree, offset: 0, len: 1 };
    let chunk = BlobEntry { id: chkfs::format::BlobId(1), kind: BlobKind::Data, offset: 0, len: 1 << 30 };
    let block =
        BlockInfo { offset: 16, stored_len: 5 << 20, raw_len: 1 << 30, codec: Codec::Lz4, blobs: vec![chunk, tree] };
    assert!(chkfs::format::pack::validate_blocks(&[block], 1 << 40).is_err());
}

/// Absurd sizes that are consistent (a hole of 4 EiB) are not damage; a
/// restore fails on that file alone, cleanly, and leaves nothing of it.
#[test]
fn an_absurdly_large_sparse_file_fails_alone() {
    let w = World::with_repo();
    let mut f = Forge::open(&w.repo);
    let ok = f.chunk(b"fine\n");
    let root = f.tree(vec![file(b"exabytes", vec![ok, Extent::Hole { len: 1 << 62 }]), file(b"fine", vec![ok])]);
    let repo = f.commit();
    let snap = snapshot(&repo, root, 3).to_hex();
    let c = check(&w);
    assert_eq!(c.code, 0, "{}", c.stderr);
    let r = restore_out(&w, &snap);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("out/exabytes"), "{}", r.stderr);
    assert_eq!(names(&w.path("out")), vec!["fine".to_string()]);
}

/// One missing chunk named 30,000 times by one file, and by 20,000 files:
/// check and restore report it once per file, name at most a hundred
/// users, keep at most ten thousand messages, and stay small (this used to
/// write gigabytes to stderr).
#[test]
fn a_problem_repeated_without_end_is_reported_within_bounds() {
    let w = World::with_repo();
    let mut f = Forge::open(&w.repo);
    let missing = Extent::Data { id: chkfs::format::BlobId(0xdead), len: 100 };
    let many_extents = file(b"repeats", vec![missing; 30_000]);
    let many_files: Vec<_> = (0..20_000).map(|i| file(format!("f{i:05}").as_bytes(), vec![missing])).collect();
    let sub = f.tree(many_files);
    let root = f.tree(vec![many_extents, dir(b"sub", sub)]);
    let repo = f.commit();
    let snap = snapshot(&repo, root, 20_003).to_hex();
    let mut cmd = w.cmd();
    cmd.args(["check"]);
    let (c, kib) = run_measured(&mut cmd, &w.path("check.time"));
    assert_eq!(c.code, 4);
    assert!(c.stderr.len() < 64 << 10, "check wrote {} bytes", c.stderr.len());
    assert!(kib < 256 << 10, "check used {kib} KiB");
    let mut cmd = w.cmd();
    cmd.args(["restore", &snap]).arg(w.path("out"));
    let (r, kib) = run_measured(&mut cmd, &w.path("restore.time"));
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("20001 items could not be restored"), "{}", &r.stderr[r.stderr.len() - 300..]);
    assert!(r.stderr.lines().count() < 10_100, "{} lines", r.stderr.lines().count());
    assert!(kib < 256 << 10, "restore used {kib} KiB");
}

/// A doubling chain whose every level holds a fifo with a 4 MB (but
/// compressible) extended attribute, under a record that claims fifty
/// million entries: each tree is decoded once, however many paths lead to
/// it (each used to be decoded once per path: gigabytes).
#[test]
fn a_tree_reached_by_many_paths_is_decoded_once_by_restore() {
    let w = World::with_repo();
    let mut f = Forge::open(&w.repo);
    let mut fifo = entry(b"fifo", chkfs::format::tree::Node::Fifo);
    fifo.xattrs = vec![chkfs::format::tree::Xattr { name: b"user.big".to_vec(), value: vec![b'x'; 4 << 20] }];
    let mut below = f.tree(vec![fifo.clone()]);
    for _ in 0..9 {
        below = f.tree(vec![dir(b"a", below), dir(b"b", below), fifo.clone()]);
    }
    let repo = f.commit();
    let snap = snapshot(&repo, below, 50_000_000).to_hex();
    let mut cmd = w.cmd();
    cmd.args(["restore", &snap]).arg(w.path("out"));
    let (r, kib) = run_measured(&mut cmd, &w.path("restore.time"));
    assert!(r.code == 0 || r.code == 3, "{}", r.stderr);
    assert!(kib < 512 << 10, "restore used {kib} KiB");
}
