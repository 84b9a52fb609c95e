//! Measures what the chunk sizes cost and buy, to choose them (FORMAT.md,
//! "Chunk sizes"): per-chunk metadata against deduplication of edited
//! source files and of a disk image with scattered overwrites.
//!
//! cargo bench --bench chunk_sizes -- TREE
//! (TREE: e.g. the unpacked Linux source; defaults to the crate's source)

use chkfs::chunking::{chunk_lengths, ChunkSizes};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_128;

/// Bytes of index entry plus tree extent that each chunk costs.
const META_PER_CHUNK: f64 = 48.0;

fn files(root: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(root) else { return };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            files(&e.path(), out);
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
}

fn chunks(data: &[u8], sizes: ChunkSizes) -> Vec<(u128, usize)> {
    let mut off = 0;
    chunk_lengths(data, sizes)
        .map(|l| {
            off += l;
            (xxh3_128(&data[off - l..off]), l)
        })
        .collect()
}

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn main() {
    let root = std::env::args().skip(1).find(|a| !a.starts_with('-')).map(PathBuf::from).unwrap_or_else(|| ".".into());
    let mut list = Vec::new();
    files(&root, &mut list);
    list.sort();
    let contents: Vec<Vec<u8>> = list.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    let total: usize = contents.iter().map(Vec::len).sum();
    let mut seed = 0x2545f4914f6cdd1du64;
    let mut image: Vec<u8> = (0..(256usize << 20) / 8).flat_map(|_| rng(&mut seed).to_le_bytes()).collect();
    println!(
        "tree {} ({} files, {:.1} MiB); image 256 MiB random, 100 overwrites of 64 KiB",
        root.display(),
        contents.len(),
        total as f64 / 1048576.0
    );
    println!(
        "{:>22} {:>10} {:>10} {:>14} {:>16}",
        "min/avg/max KiB", "chunks", "meta %", "edit new/size", "image new/changed"
    );
    let candidates = [(2, 8, 64), (4, 16, 128), (8, 32, 256), (16, 64, 256)];
    let orig_image = image.clone();
    let mut s2 = 7u64;
    let regions: Vec<usize> = (0..100).map(|_| (rng(&mut s2) as usize) % (image.len() - 65536)).collect();
    for r in &regions {
        for b in &mut image[*r..*r + 65536] {
            *b = rng(&mut s2) as u8;
        }
    }
    for (min, avg, max) in candidates {
        let sizes = ChunkSizes { min: min << 10, avg: avg << 10, max: max << 10, seed: 0 };
        let mut known = HashSet::new();
        let mut n = 0usize;
        for c in &contents {
            for (h, _) in chunks(c, sizes) {
                known.insert(h);
                n += 1;
            }
        }
        // Edit 1% of the files (every 100th) by inserting bytes in the middle.
        let (mut new_bytes, mut edited_bytes) = (0usize, 0usize);
        for c in contents.iter().step_by(100) {
            let mut e = c.clone();
            e.splice(c.len() / 2..c.len() / 2, b"/* edited */".iter().copied());
            edited_bytes += e.len();
            new_bytes += chunks(&e, sizes).iter().filter(|(h, _)| !known.contains(h)).map(|(_, l)| l).sum::<usize>();
        }
        let img_known: HashSet<u128> = chunks(&orig_image, sizes).into_iter().map(|(h, _)| h).collect();
        let img_new: usize = chunks(&image, sizes).iter().filter(|(h, _)| !img_known.contains(h)).map(|(_, l)| l).sum();
        println!(
            "{:>22} {:>10} {:>9.2}% {:>13.1}% {:>15.2}x",
            format!("{min}/{avg}/{max}"),
            n,
            100.0 * n as f64 * META_PER_CHUNK / total as f64,
            100.0 * new_bytes as f64 / edited_bytes as f64,
            img_new as f64 / (100.0 * 65536.0)
        );
    }
}
