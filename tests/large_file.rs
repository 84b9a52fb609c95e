//! One large file is chunked on one thread and compressed on every core:
//! its chunks must be cut exactly where the chunker alone cuts them (the
//! pinned boundaries every repository's deduplication depends on), in
//! order, and restore to the same bytes.

mod common;

use chkfs::chunking::chunk_lengths;
use chkfs::format::tree::{Extent, Node};
use chkfs::store::{BlobReader, Repository};
use common::*;
use std::sync::Arc;

/// The chunking module's golden input: xorshift bytes from seed 7.
fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The first boundaries of that input, pinned in the chunking module.
const GOLDEN: &[usize] = &[7406, 15405, 21347, 4676, 16400, 18006, 27080, 20016, 17076, 16156, 24812, 18365, 6956];

#[test]
fn a_large_file_is_cut_where_the_chunker_cuts_and_restores_whole() {
    let w = World::with_repo();
    let src = w.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let data = pseudo_random(48 << 20, 7);
    std::fs::write(src.join("image.bin"), &data).unwrap();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();

    let repo = Arc::new(Repository::open_local(&w.repo).unwrap());
    let snapshot = repo.read_snapshot(repo.resolve_snapshot_id(&id).unwrap()).unwrap().unwrap();
    let reader = BlobReader::new(repo.clone(), Arc::new(repo.load_index().unwrap().index), 64 << 20);
    let root = reader.read_tree(snapshot.root_tree()).unwrap();
    let Node::File { content } = &root.entries[0].node else { panic!("not a file") };
    let saved: Vec<usize> = content
        .iter()
        .map(|x| match x {
            Extent::Data { len, .. } => *len as usize,
            Extent::Hole { .. } => panic!("no holes in random data"),
        })
        .collect();
    let expected: Vec<usize> = chunk_lengths(&data, repo.chunk_sizes()).collect();
    assert_eq!(&saved[..GOLDEN.len()], GOLDEN);
    assert_eq!(saved, expected, "the save cut the file elsewhere than the chunker");
    assert!(saved.len() > 2000, "{} chunks", saved.len());

    let out = w.path("out");
    w.restore(&id, &out).ok();
    assert!(std::fs::read(out.join("image.bin")).unwrap() == data, "restored bytes differ");
}
