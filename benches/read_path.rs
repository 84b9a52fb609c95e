//! Throughput of the paths pipeline.rs does not cover, one core each:
//! - pack write: assembling a 32 MiB pack from sealed 128 KiB blocks
//!   (`PackBuilder` add + finish, into a reused or a fresh buffer), and
//!   storing it durably with `LocalBackend::write_if_absent` (and its directory sync);
//! - chunk lookup: `Index::locations` of random known blobs among ~100,000;
//! - chunk lookup + decompress: `BlobReader::read` of random blobs, hitting
//!   the block cache, or missing it (pread from the page cache, lz4, verify
//!   every blob of the block);
//! - tree decode: `decode_tree` of a directory of 1,000 entries;
//! - the FUSE read path without FUSE: `SnapshotFs::read_into` of 128 KiB at
//!   sequential offsets through a 64 MiB file, and of 4 KiB at random ones,
//!   with a warm cache.
//!
//! The repository (a 64 MiB text-like file saved through
//! `chkfs::save::save`) and the written packs live in a temporary directory
//! under $TMPDIR, removed at the end: the durable write measures that file
//! system.
//!
//! cargo bench --bench read_path

mod common;

use chkfs::chunking::ChunkSizes;
use chkfs::format::pack::{seal_block, BlobEntry, BlobKind, BlockInfo, Codec, PackBuilder, SealedBlock};
use chkfs::format::records::{IndexedPack, Timestamp};
use chkfs::format::tree::{decode_tree, encode_tree, Entry, Extent, Node, Tree};
use chkfs::format::{BlobId, PackId, SnapshotId};
use chkfs::fs::{FsOptions, SnapshotFs};
use chkfs::save::{save, SaveOptions, Silent};
use chkfs::store::writer::{BLOCK_TARGET, PACK_TARGET};
use chkfs::store::{Backend, LocalBackend};
use chkfs::store::{BlobReader, Index, Repository};
use common::{text, Rng};
use divan::counter::{BytesCount, ItemsCount};
use divan::Bencher;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

/// Size of the file saved in the benchmark repository.
const FILE_LEN: u64 = 64 << 20;
const FILE_NAME: &str = "big.txt";

fn main() {
    divan::main();
    for dir in TEMP_DIRS.lock().unwrap().drain(..) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Temporary directories to remove once every benchmark has run (a
/// `static` is never dropped, so `TempDir` cannot clean up by itself).
static TEMP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn temp_dir() -> PathBuf {
    let dir = tempfile::Builder::new().prefix("chkfs-bench-").tempdir().expect("creating a temporary directory");
    let path = dir.keep();
    TEMP_DIRS.lock().unwrap().push(path.clone());
    path
}

// ------------------------------------------------------------ pack write

/// Sealed blocks of 128 KiB of text, 8 blobs each, enough for one pack of
/// PACK_TARGET bytes (as the pack writer fills it).
fn sealed_blocks() -> Vec<SealedBlock> {
    let source = text(16 << 20);
    let mut rng = Rng::new(1);
    let mut blocks = Vec::new();
    let mut stored = 0;
    while stored < PACK_TARGET {
        // Overlapping windows of the text, shifted so that blocks differ.
        let start = (blocks.len() * (BLOCK_TARGET + 4099)) % (source.len() - BLOCK_TARGET);
        let raw = &source[start..start + BLOCK_TARGET];
        let blob_len = (BLOCK_TARGET / 8) as u32;
        let blobs = (0..8)
            .map(|i| BlobEntry {
                id: BlobId(rng.next_u128()),
                kind: BlobKind::Data,
                offset: i * blob_len,
                len: blob_len,
            })
            .collect();
        let block = seal_block(raw, blobs);
        stored += block.bytes.len();
        blocks.push(block);
    }
    blocks
}

fn pack_capacity() -> usize {
    // As the pack writer sizes a data pack: a full pack, its last block
    // and its footer without reallocating.
    PACK_TARGET + BLOCK_TARGET * 2 + (1 << 20)
}

/// PackBuilder::add of every block, then finish. `reused`: into the buffer
/// of the previous pack, as the pack writer does; `fresh`: into a new
/// allocation (page faults included).
#[divan::bench(args = ["reused", "fresh"], sample_count = 20, sample_size = 1)]
fn pack_build_32mib(b: Bencher, buffer: &str) {
    let blocks = sealed_blocks();
    // Also touches the pages of the buffer `reused` starts with.
    let mut first = PackBuilder::with_capacity(pack_capacity());
    blocks.iter().for_each(|b| first.add(b.clone()));
    let mut spare = Some(first.finish().unwrap().0);
    let pack_len = spare.as_ref().map_or(0, Vec::len);
    b.counter(BytesCount::new(pack_len)).with_inputs(|| blocks.clone()).bench_local_values(|blocks| {
        let mut builder = match buffer {
            "reused" => PackBuilder::with_buffer(spare.take().expect("buffer returned")),
            _ => PackBuilder::with_capacity(pack_capacity()),
        };
        for block in blocks {
            builder.add(block);
        }
        let (bytes, footer) = builder.finish().unwrap();
        if buffer == "reused" {
            spare = Some(bytes);
            (Vec::new(), footer)
        } else {
            (bytes, footer)
        }
    });
}

/// LocalBackend::write_if_absent of a finished 32 MiB pack (temporary
/// file, O_DIRECT writes, fsync, link, directory fsync).
#[divan::bench(sample_count = 10, sample_size = 1)]
fn pack_write_if_absent_32mib(b: Bencher) {
    let mut builder = PackBuilder::with_capacity(pack_capacity());
    sealed_blocks().into_iter().for_each(|block| builder.add(block));
    let (pack, _) = builder.finish().unwrap();
    let root = temp_dir();
    let backend = LocalBackend::new(&root);
    let path = |n: u128| format!("packs/00/{:032x}.pack", n);
    // Create the fan-out directory beforehand, as in a used repository.
    assert!(backend.write_if_absent(&path(0), b"warm-up").unwrap());
    let mut n = 0u128;
    b.counter(BytesCount::of_slice(&pack))
        .with_inputs(|| {
            // The previous sample's pack is removed outside the timing.
            let _ = std::fs::remove_file(root.join(path(n)));
            n += 1;
            path(n)
        })
        .bench_local_values(|path| {
            assert!(backend.write_if_absent(&path, &pack).unwrap());
            backend.sync().unwrap();
        });
    let _ = std::fs::remove_file(root.join(path(n)));
}

// ----------------------------------------------------------- chunk lookup

/// An index of `blobs` blobs with random ids, in packs of 256 blocks of 8
/// blobs (32 MiB of 128 KiB blocks), built from index records directly.
fn synthetic_index(blobs: usize) -> (Index, Vec<BlobId>) {
    const BLOBS_PER_BLOCK: usize = 8;
    const BLOCKS_PER_PACK: usize = 256;
    let mut rng = Rng::new(2);
    let ids: Vec<BlobId> = (0..blobs).map(|_| BlobId(rng.next_u128())).collect();
    let mut index = Index::new([]);
    let mut packs = Vec::new();
    for pack_ids in ids.chunks(BLOBS_PER_BLOCK * BLOCKS_PER_PACK) {
        let blocks: Vec<BlockInfo> = pack_ids
            .chunks(BLOBS_PER_BLOCK)
            .enumerate()
            .map(|(i, block_ids)| BlockInfo {
                offset: 16 + i as u64 * (64 << 10),
                stored_len: 64 << 10,
                raw_len: 128 << 10,
                codec: Codec::Lz4,
                blobs: block_ids
                    .iter()
                    .enumerate()
                    .map(|(j, &id)| BlobEntry {
                        id,
                        kind: BlobKind::Data,
                        offset: j as u32 * (16 << 10),
                        len: 16 << 10,
                    })
                    .collect(),
            })
            .collect();
        let size = 16 + blocks.len() as u64 * (64 << 10);
        packs.push(IndexedPack { id: PackId(rng.next_u128()), size, blocks });
    }
    index.add_packs(&packs);
    (index, ids)
}

#[divan::bench]
fn index_locations_100k(b: Bencher) {
    let (index, ids) = synthetic_index(100_000);
    assert_eq!(index.blob_count() as usize, ids.len());
    let mut rng = Rng::new(3);
    b.counter(ItemsCount::new(1usize))
        .with_inputs(|| ids[rng.below(ids.len())])
        .bench_local_values(|id| index.locations(BlobKind::Data, id).next().expect("known blob"));
}

// ------------------------------------------------ a repository, built once

struct Fixture {
    repo: Arc<Repository>,
    index: Arc<Index>,
    snapshot: SnapshotId,
    /// Every data blob (chunk) of the repository, with its length.
    chunks: Vec<(BlobId, u32)>,
}

/// A repository holding one snapshot of a directory with one 64 MiB
/// text-like file, saved through the library.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = temp_dir();
        let source = dir.join("source");
        std::fs::create_dir(&source).unwrap();
        std::fs::write(source.join(FILE_NAME), text(FILE_LEN as usize)).unwrap();
        let repo = Arc::new(Repository::init_local(&dir.join("repo"), ChunkSizes::DEFAULT).unwrap());
        let opts = SaveOptions {
            tags: Vec::new(),
            source: source.clone(),
            message: "bench".into(),
            host: Some("bench".into()),
            time: Some(Timestamp { secs: 1_700_000_000, nanos: 0 }),
            excludes: Vec::new(),
            exclude_files: Vec::new(),
            git_ignore: false,
            one_file_system: false,
            force_read: false,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let snapshot = save(repo.clone(), &opts, &Silent, &AtomicBool::new(false)).expect("saving").id;
        std::fs::remove_dir_all(&source).unwrap();
        let index = Arc::new(repo.load_index().unwrap().index);
        let mut chunks = Vec::new();
        for slot in 0..index.pack_count() {
            for block in index.blocks_of_pack(slot) {
                let blobs = index.blobs_in_block(block).into_iter().filter(|l| l.kind == BlobKind::Data);
                chunks.extend(blobs.map(|l| (l.id, l.len)));
            }
        }
        assert!(chunks.len() > 1000, "{} chunks", chunks.len());
        Fixture { repo, index, snapshot, chunks }
    })
}

/// BlobReader::read of random chunks; `hit`: every block cached; `miss`:
/// a cache smaller than one block, so each read loads, decompresses and
/// verifies a whole block (the packs are in the page cache).
// An explicit sample size: otherwise the first, cold, read ends tuning at
// one read per sample, too short to time well.
#[divan::bench(args = ["hit", "miss"], sample_size = 32)]
fn blob_read(b: Bencher, cache: &str) {
    let f = fixture();
    let cache_bytes = if cache == "hit" { 1 << 30 } else { 64 << 10 };
    let reader = BlobReader::new(f.repo.clone(), f.index.clone(), cache_bytes);
    for &(id, _) in &f.chunks {
        reader.read(BlobKind::Data, id).unwrap();
    }
    let mut rng = Rng::new(4);
    b.counter(ItemsCount::new(1usize))
        .with_inputs(|| f.chunks[rng.below(f.chunks.len())])
        .input_counter(|&(_, len)| BytesCount::new(len))
        .bench_local_values(|(id, _)| reader.read(BlobKind::Data, id).unwrap().len());
}

// ------------------------------------------------------------ tree decode

/// A directory of 1,000 entries: mostly files of one to four chunks, some
/// subdirectories and symlinks.
fn tree_of(n: usize) -> Tree {
    let mut rng = Rng::new(5);
    let entries = (0..n)
        .map(|i| {
            let (name, node, size) = match i % 20 {
                0 => (format!("dir_{i:04}"), Node::Dir { tree: BlobId(rng.next_u128()) }, 0),
                1 => {
                    let target = format!("../target/file_{i:04}.c").into_bytes();
                    let len = target.len() as u64;
                    (format!("link_{i:04}"), Node::Symlink { target }, len)
                }
                _ => {
                    let content: Vec<Extent> = (0..1 + rng.below(4))
                        .map(|_| Extent::Data { id: BlobId(rng.next_u128()), len: 4096 + rng.below(28 << 10) as u32 })
                        .collect();
                    let size = content.iter().map(Extent::len).sum();
                    (format!("source_file_{i:04}.c"), Node::File { content }, size)
                }
            };
            let t =
                Timestamp { secs: 1_700_000_000 + rng.below(1 << 24) as i64, nanos: rng.below(1_000_000_000) as u32 };
            Entry {
                name: name.into_bytes(),
                node,
                mode: 0o644,
                uid: 1000,
                gid: 1000,
                size,
                blocks: size.div_ceil(4096) * 8,
                mtime: t,
                ctime: t,
                inode: 1_000_000 + i as u64,
                hard_link: None,
                xattrs: Vec::new(),
            }
        })
        .collect::<Vec<_>>();
    let mut tree = Tree { entries };
    tree.entries.sort_by(|a, b| a.name.cmp(&b.name));
    tree
}

#[divan::bench]
fn tree_decode_1000_entries(b: Bencher) {
    let bytes = encode_tree(&tree_of(1000)).unwrap();
    assert_eq!(decode_tree(&bytes).unwrap().entries.len(), 1000);
    b.counter(BytesCount::of_slice(&bytes))
        .counter(ItemsCount::new(1000usize))
        .bench(|| decode_tree(divan::black_box(&bytes)).unwrap());
}

// --------------------------------------------------- read through the fs

/// The mounted view of the fixture and the inode of its 64 MiB file, read
/// once whole so that every block is cached.
fn warm_fs() -> (SnapshotFs, u64) {
    let f = fixture();
    let fs = SnapshotFs::new(
        f.repo.clone(),
        FsOptions { cache_bytes: 256 << 20, snapshot_refresh: chkfs::fs::snapshots::MAX_AGE_LOCAL, uid: 0, gid: 0 },
    )
    .unwrap();
    let snapshots = fs.lookup(1, b"snapshots").unwrap().0.ino;
    let root = fs.lookup(snapshots, f.snapshot.to_hex().as_bytes()).unwrap().0.ino;
    let (attr, _) = fs.lookup(root, FILE_NAME.as_bytes()).unwrap();
    assert_eq!(attr.size, FILE_LEN);
    let mut out = Vec::new();
    for offset in (0..FILE_LEN).step_by(128 << 10) {
        fs.read_into(attr.ino, offset, 128 << 10, &mut out).unwrap();
        assert_eq!(out.len(), 128 << 10);
    }
    (fs, attr.ino)
}

#[divan::bench(sample_size = 8)]
fn fs_read_sequential_128kib(b: Bencher) {
    const SIZE: u32 = 128 << 10;
    let (fs, ino) = warm_fs();
    let mut out = Vec::with_capacity(SIZE as usize);
    let mut offset = 0;
    b.counter(BytesCount::new(SIZE)).bench_local(|| {
        fs.read_into(ino, offset, SIZE, &mut out).unwrap();
        offset = (offset + u64::from(SIZE)) % FILE_LEN;
        out.len()
    });
}

#[divan::bench(sample_size = 32)]
fn fs_read_random_4kib(b: Bencher) {
    const SIZE: u32 = 4 << 10;
    let (fs, ino) = warm_fs();
    let mut out = Vec::with_capacity(SIZE as usize);
    let mut rng = Rng::new(6);
    b.counter(BytesCount::new(SIZE))
        .with_inputs(|| rng.below((FILE_LEN / u64::from(SIZE)) as usize) as u64 * u64::from(SIZE))
        .bench_local_values(|offset| {
            fs.read_into(ino, offset, SIZE, &mut out).unwrap();
            out.len()
        });
}
