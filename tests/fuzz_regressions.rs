//! Replays fuzz inputs on stable Rust through `chkfs::fuzzing`: for every
//! target, every file under `fuzz/regressions/<target>/` (the crashes and
//! timeouts the fuzzers found) and every seed derived from the golden
//! fixtures. The functions only return or panic, so a panic fails the test
//! of its target; the input's name is printed first.
//!
//! `write_seeds` (ignored) writes the seed corpora under `fuzz/corpus/`:
//! the fixture seeds, and the seeds of a real repository it saves with the
//! chkfs binary. See fuzz/README.md.

use chkfs::format::pack::{decode_footer, footer_location, open_block, BlobKind, Codec, TRAILER_LEN};
use chkfs::fuzzing;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGETS: [&str; 15] = [
    "envelope",
    "pack_block",
    "pack_footer",
    "index",
    "tree",
    "split_tree",
    "snapshot",
    "config",
    "damage_list",
    "writer_marker",
    "condemned_list",
    "key_file",
    "sealed",
    "repository",
    "index_table",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Seed {
    target: &'static str,
    name: String,
    bytes: Vec<u8>,
}

fn seed(target: &'static str, name: String, bytes: &[u8]) -> Seed {
    Seed { target, name, bytes: bytes.to_vec() }
}

fn replay(target: &str, run: fn(&[u8])) {
    for s in fixture_seeds().iter().filter(|s| s.target == target) {
        eprintln!("seed {}", s.name);
        run(&s.bytes);
    }
    for path in regressions(target) {
        eprintln!("regression {}", path.display());
        run(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    }
}

/// The files of fuzz/regressions/<target>/, sorted; none when it is absent.
fn regressions(target: &str) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(root().join("fuzz/regressions").join(target)) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = dir.map(|e| e.expect("listing regressions").path()).collect();
    paths.sort();
    paths
}

macro_rules! replay_targets {
    ($($target:ident),*) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target), fuzzing::$target);
            }
        )*
    };
}

replay_targets!(
    envelope,
    pack_block,
    pack_footer,
    index,
    tree,
    split_tree,
    snapshot,
    config,
    damage_list,
    writer_marker,
    condemned_list,
    key_file,
    sealed,
    repository,
    index_table
);

// ----------------------------------------------------------------- seeds

/// Seeds from the golden fixtures: cheap and deterministic.
fn fixture_seeds() -> Vec<Seed> {
    let tree = read(&root().join("tests/fixtures/v1/tree.bin"));
    let split = read(&root().join("tests/fixtures/v2/split_tree.bin"));
    let mut out = vec![
        seed("tree", "fixture-tree".into(), &tree),
        seed("envelope", "fixture-tree".into(), &tree),
        seed("split_tree", "fixture-split-tree".into(), &split),
        seed("split_tree", "fixture-tree".into(), &tree),
        seed("envelope", "fixture-split-tree".into(), &split),
    ];
    for (target, file) in [("writer_marker", "writer_marker.bin"), ("condemned_list", "condemned.bin")] {
        let bytes = read(&root().join("tests/fixtures/v3").join(file));
        out.push(seed(target, format!("fixture-{target}"), &bytes));
        out.push(seed("envelope", format!("fixture-{target}"), &bytes));
    }
    out.extend(seeds_from_repo("fixture", &fixture_objects()));
    let keys = root().join("tests/fixtures/repo-v4-encrypted/keys");
    for entry in std::fs::read_dir(&keys).unwrap() {
        out.push(seed("key_file", "fixture-key-file".into(), &read(&entry.unwrap().path())));
    }
    let cipher = chkfs::format::sealed::Cipher::new(&fuzzing::FUZZ_KEY).unwrap();
    let snapshot = read(&root().join("tests/fixtures/v1/snapshot.bin"));
    let sealed =
        cipher.seal_object(chkfs::format::ObjectKind::Snapshot, b"snapshots/00000000.snap", &snapshot).unwrap();
    out.push(seed("sealed", "fixture-sealed-snapshot".into(), &sealed));
    let ids = [chkfs::format::BlobId(7)];
    let block = cipher.seal_block(chkfs::format::pack::BlobKind::Data, &ids, b"a stored block".to_vec()).unwrap();
    out.push(seed("sealed", "fixture-sealed-block".into(), &block));
    let table = read(&root().join("tests/fixtures/tables/index_table_v1.bin"));
    out.push(seed("index_table", "fixture-index-table".into(), &table));
    out
}

/// The fixtures as the objects of a repository (under names of their ids
/// where they have one; index.bin lists pack.bin as pack 0xabc).
fn fixture_objects() -> Vec<(String, Vec<u8>)> {
    let dir = root().join("tests/fixtures/v1");
    let hex = |n: u128| format!("{n:032x}");
    [
        ("config".to_string(), "config.bin"),
        ("snapshots/03f9a1c2.snap".to_string(), "snapshot.bin"),
        (format!("index/{}.idx", hex(1)), "index.bin"),
        (format!("damaged/{}.list", hex(2)), "damaged.bin"),
        (format!("packs/00/{}.pack", hex(0xabc)), "pack.bin"),
    ]
    .into_iter()
    .map(|(key, file)| (key, read(&dir.join(file))))
    .collect()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Seeds for every target from a repository's objects: the repository
/// itself (plain and sealed), each object for its decoder and as an
/// envelope, and the blocks and trees inside each pack.
fn seeds_from_repo(prefix: &str, objects: &[(String, Vec<u8>)]) -> Vec<Seed> {
    let pairs = || objects.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
    let mut out = vec![
        seed("repository", format!("{prefix}-repo"), &fuzzing::repository_input(0, pairs())),
        seed("repository", format!("{prefix}-repo-sealed"), &fuzzing::repository_input(fuzzing::SEAL, pairs())),
    ];
    for (key, bytes) in objects {
        let name = format!("{prefix}-{}", key.replace('/', "-"));
        let target = match key.split('/').next() {
            Some("config") => "config",
            Some("snapshots") => "snapshot",
            Some("index") => "index",
            Some("damaged") => "damage_list",
            Some("writers") => "writer_marker",
            Some("condemned") => "condemned_list",
            Some("packs") => {
                pack_seeds(&name, bytes, &mut out);
                continue;
            }
            _ => continue,
        };
        out.push(seed(target, name.clone(), bytes));
        out.push(seed("envelope", name, bytes));
    }
    out
}

/// A pack, its footer (an envelope), its blocks, and the trees in them.
fn pack_seeds(name: &str, pack: &[u8], out: &mut Vec<Seed>) {
    out.push(seed("pack_footer", name.into(), pack));
    let n = pack.len();
    let (start, len) = footer_location(&pack[n - TRAILER_LEN..], n as u64).expect("a seed pack has a trailer");
    let footer_bytes = &pack[start as usize..][..len];
    out.push(seed("envelope", format!("{name}-footer"), footer_bytes));
    let footer = decode_footer(footer_bytes, start).expect("a seed pack has a footer");
    for (i, b) in footer.blocks.iter().enumerate() {
        let stored = &pack[b.offset as usize..][..b.stored_len as usize];
        let mut input = vec![if b.codec == Codec::Raw { 0 } else { 1 }];
        input.extend_from_slice(&b.raw_len.to_le_bytes());
        input.extend_from_slice(stored);
        out.push(seed("pack_block", format!("{name}-block{i}"), &input));
        let raw = open_block(b.codec, b.raw_len, stored).expect("a seed block opens");
        for (j, blob) in b.blobs.iter().enumerate().filter(|(_, x)| x.kind == BlobKind::Tree) {
            let tree = &raw[blob.offset as usize..][..blob.len as usize];
            out.push(seed("tree", format!("{name}-block{i}-tree{j}"), tree));
            out.push(seed("envelope", format!("{name}-block{i}-tree{j}"), tree));
        }
    }
}

/// Writes every seed into fuzz/corpus/<target>/.
#[test]
#[ignore = "writes fuzz/corpus/ and runs the chkfs binary; see fuzz/README.md"]
fn write_seeds() {
    let mut seeds = fixture_seeds();
    seeds.extend(seeds_from_repo("real", &real_repository()));
    for target in TARGETS {
        std::fs::create_dir_all(root().join("fuzz/corpus").join(target)).expect("creating fuzz/corpus");
    }
    for s in &seeds {
        let path = root().join("fuzz/corpus").join(s.target).join(&s.name);
        std::fs::write(&path, &s.bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    eprintln!("wrote {} seeds", seeds.len());
}

/// The objects of a repository saved twice by the chkfs binary (CHKFS_BIN,
/// or the one cargo built for this test) from a small tree.
fn real_repository() -> Vec<(String, Vec<u8>)> {
    let bin = std::env::var_os("CHKFS_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_chkfs")), PathBuf::from);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let (src, repo) = (tmp.path().join("src"), tmp.path().join("repo"));
    make_source(&src);
    chkfs(&bin, &["init".as_ref(), repo.as_os_str()]);
    chkfs(&bin, &["--repo".as_ref(), repo.as_os_str(), "save".as_ref(), src.as_os_str()]);
    std::fs::write(src.join("sub/added.txt"), "added in the second snapshot\n").expect("writing the source");
    chkfs(&bin, &["--repo".as_ref(), repo.as_os_str(), "save".as_ref(), src.as_os_str()]);
    let mut objects = Vec::new();
    collect(&repo, &repo, &mut objects);
    objects.sort();
    objects
}

fn chkfs(bin: &Path, args: &[&std::ffi::OsStr]) {
    let status = Command::new(bin).args(args).status().unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    assert!(status.success(), "chkfs {args:?} failed");
}

/// Files, a subdirectory, a symlink, a hard link, a sparse file, a FIFO,
/// an empty file, an extended attribute where the filesystem allows one.
fn make_source(src: &Path) {
    let write = |rel: &str, bytes: &[u8]| std::fs::write(src.join(rel), bytes).expect("writing the source");
    std::fs::create_dir_all(src.join("sub/deeper")).expect("creating the source");
    write("a.txt", b"hello\n");
    write("empty", b"");
    write("text.txt", "chkfs seeds the fuzzers with this line.\n".repeat(600).as_bytes());
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..6000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    write("sub/noise.bin", &noise);
    write("sub/deeper/c.txt", b"deeper\n");
    std::os::unix::fs::symlink("a.txt", src.join("link")).expect("a symlink");
    std::fs::hard_link(src.join("sub/deeper/c.txt"), src.join("hard")).expect("a hard link");
    let sparse = std::fs::File::create(src.join("sparse")).expect("a sparse file");
    std::os::unix::fs::FileExt::write_at(&sparse, b"end", 1 << 20).expect("writing the sparse file");
    let fifo = std::ffi::CString::new(src.join("fifo").into_os_string().into_encoded_bytes()).expect("a path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0, "mkfifo");
    let _ = xattr::set(src.join("a.txt"), "user.chkfs-seed", b"value");
}

/// Every file under `dir` as (key relative to `repo`, bytes); the lock
/// file is no object.
fn collect(repo: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).expect("listing the repository") {
        let path = entry.expect("listing the repository").path();
        if path.is_dir() {
            collect(repo, &path, out);
            continue;
        }
        let key = path.strip_prefix(repo).expect("inside the repository").to_string_lossy().into_owned();
        if key != "lock" {
            out.push((key, read(&path)));
        }
    }
}
