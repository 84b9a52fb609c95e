//! Throughput of the save pipeline's stages, one core each:
//! chunking, keyed hashing, block compression, and reading a blob back
//! (decompress + verify).
//!
//! cargo bench --bench pipeline

mod common;

use chkfs::chunking::{chunk_lengths, ChunkSizes};
use chkfs::format::pack::{open_block, seal_block, BlobEntry, BlobKind};
use chkfs::format::BlobId;
use common::{random, text};
use divan::counter::BytesCount;
use divan::Bencher;
use xxhash_rust::xxh3::{xxh3_128_with_secret_input, SecretInput};

fn main() {
    divan::main();
}

#[divan::bench(args = ["random", "text"])]
fn chunk_8mib(b: Bencher, kind: &str) {
    let data = if kind == "random" { random(8 << 20) } else { text(8 << 20) };
    b.counter(BytesCount::of_slice(&data))
        .bench(|| chunk_lengths(divan::black_box(&data), ChunkSizes::DEFAULT).count());
}

#[divan::bench]
fn keyed_hash_16kib(b: Bencher) {
    let data = random(16 << 10);
    let secret = SecretInput::try_new(vec![7u8; 192]).unwrap();
    b.counter(BytesCount::of_slice(&data)).bench(|| xxh3_128_with_secret_input(divan::black_box(&data), &secret));
}

#[divan::bench(args = ["random", "text"])]
fn seal_block_128kib(b: Bencher, kind: &str) {
    let data = if kind == "random" { random(128 << 10) } else { text(128 << 10) };
    b.counter(BytesCount::of_slice(&data)).bench(|| seal_block(divan::black_box(&data), Vec::new()));
}

#[divan::bench]
fn open_and_verify_block_128kib(b: Bencher) {
    let data = text(128 << 10);
    let secret = SecretInput::try_new(vec![7u8; 192]).unwrap();
    let blobs: Vec<BlobEntry> = (0..8)
        .map(|i| BlobEntry { id: BlobId(i), kind: BlobKind::Data, offset: i as u32 * 16384, len: 16384 })
        .collect();
    let sealed = seal_block(&data, blobs.clone());
    b.counter(BytesCount::of_slice(&data)).bench(|| {
        let raw = open_block(sealed.codec, sealed.raw_len, &sealed.bytes).unwrap();
        blobs
            .iter()
            .map(|e| xxh3_128_with_secret_input(&raw[e.offset as usize..][..e.len as usize], &secret))
            .sum::<u128>()
    });
}
