//! A 3 GiB sparse file: random reads, SEEK_DATA/SEEK_HOLE, and a sparse
//! copy out of the mount.

use crate::common::*;
use crate::harness::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};

const SIZE: u64 = 3 << 30;

#[test]
fn sparse_file_reads_seeks_and_copies_sparsely() {
    require_fuse!();
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    let path = src.join("sparse.img");
    let f = fs::File::create(&path).unwrap();
    f.set_len(SIZE).unwrap();
    let mut rng = Rng(0x5eed_1234_5678_9abc);
    let mut written = Vec::new();
    for i in 0..10u64 {
        let len = 1 + rng.below(200_000);
        let off = rng.below(SIZE - len);
        f.write_all_at(&random_bytes(len as usize, 100 + i), off).unwrap();
        written.push((off, len));
    }
    // Data right at the end, too.
    f.write_all_at(&random_bytes(5000, 99), SIZE - 5000).unwrap();
    written.push((SIZE - 5000, 5000));
    f.sync_all().unwrap();
    drop(f);
    let src_blocks = fs::metadata(&path).unwrap().blocks();
    assert!(src_blocks * 512 < 64 << 20, "the source is not sparse here ({src_blocks} blocks)");

    let id = id_of(&w.save(&src, &[]));
    let m = Mount::start(&w, &w.path("mnt"));
    let mounted = m.snap(&id).join("sparse.img");
    let a = fs::File::open(&path).unwrap();
    let b = fs::File::open(&mounted).unwrap();
    assert_eq!(b.metadata().unwrap().len(), SIZE);

    // 200 reads of 4 KiB: half at random, half on or around written data.
    let mut ranges = Vec::new();
    for i in 0..200u64 {
        let off = if i % 2 == 0 {
            rng.below(SIZE)
        } else {
            let (o, l) = written[rng.below(written.len() as u64) as usize];
            (o + rng.below(l + 8192)).saturating_sub(4096)
        };
        ranges.push(off);
    }
    ranges.push(SIZE - 100); // crosses the end
    let mut bad = Vec::new();
    for &off in &ranges {
        let x = pread_full(&a, off, 4096).unwrap();
        let y = pread_full(&b, off, 4096).unwrap_or_else(|e| panic!("pread at {off} on the mount: {e}"));
        if x != y {
            bad.push(format!("at {off}: {} bytes from the source, {} from the mount, same={}", x.len(), y.len(), {
                let n = x.len().min(y.len());
                x[..n] == y[..n]
            }));
        }
    }
    assert!(bad.is_empty(), "reads of the sparse file differ:\n  {}", bad.join("\n  "));

    // SEEK_DATA/SEEK_HOLE find the same regions, at 4 KiB granularity.
    let ra = data_regions(&a, SIZE).unwrap();
    let rb = data_regions(&b, SIZE).unwrap_or_else(|e| panic!("SEEK_DATA/SEEK_HOLE on the mount: {e}"));
    assert!(ra.len() >= 2 && ra.len() <= written.len(), "source regions {ra:?}");
    assert_eq!(ra, rb, "data regions: source vs mount");
    // From inside a hole and inside data, too.
    use std::os::fd::AsRawFd;
    for &(start, end) in &ra {
        let from = start.saturating_sub(1000);
        // SAFETY: lseek on an open descriptor.
        let d = unsafe { libc::lseek(b.as_raw_fd(), from as i64, libc::SEEK_DATA) };
        assert!(d >= 0 && (d as u64) / 4096 * 4096 == start, "SEEK_DATA from {from} on the mount: {d}, want {start}");
        let mid = (start + end) / 2;
        // SAFETY: as above.
        let h = unsafe { libc::lseek(b.as_raw_fd(), mid as i64, libc::SEEK_HOLE) };
        assert!(
            h > mid as i64 && (h as u64).div_ceil(4096) * 4096 == end,
            "SEEK_HOLE from {mid} on the mount: {h}, want {end}"
        );
    }

    // A sparse copy out of the mount stays small and has the same bytes.
    let out = w.path("out");
    fs::create_dir_all(&out).unwrap();
    let copy = out.join("sparse.img");
    sh("cp", [OsStr::new("--sparse=always"), mounted.as_os_str(), copy.as_os_str()]).ok();
    let cm = fs::metadata(&copy).unwrap();
    assert_eq!(cm.len(), SIZE);
    assert!(cm.blocks() * 512 <= 16 << 20, "cp --sparse=always from the mount allocated {} bytes", cm.blocks() * 512);
    let c = fs::File::open(&copy).unwrap();
    for &off in &ranges {
        assert_eq!(pread_full(&c, off, 4096).unwrap(), pread_full(&a, off, 4096).unwrap(), "copy at {off}");
    }
    for &(o, l) in &written {
        assert_eq!(pread_full(&c, o, l as usize).unwrap(), pread_full(&a, o, l as usize).unwrap(), "copy at {o}+{l}");
    }
}
