//! A directory of 20,000 files, looked up, stat'ed and read whole: each
//! entry costs a bounded number of round trips and the directory's tree
//! is decoded once, even with a cache far smaller than the tree (it used
//! to be decoded again for every name looked up: 11 s for `ls -l` of
//! 18,000 man pages).

use crate::common::*;
use crate::harness::*;
use std::ffi::OsStr;
use std::fs;

const N: usize = 20_000;

fn content(i: usize) -> Vec<u8> {
    format!("page {i}\n{}", "text ".repeat(i % 50)).into_bytes()
}

fn name(i: usize) -> String {
    // Man-page-like names of varying length.
    format!("{}{i}.{}.gz", "cmd-".repeat(1 + i % 5), 1 + i % 8)
}

#[test]
fn every_entry_of_a_large_directory_costs_a_few_round_trips_and_one_decode() {
    require_fuse!();
    let w = World::with_repo();
    let src = w.path("src");
    let big = src.join("man1");
    fs::create_dir_all(&big).unwrap();
    for i in 0..N {
        fs::write(big.join(name(i)), content(i)).unwrap();
    }
    let id = id_of(&w.save(&src, &[]));
    // A tree cache of 1 MiB, several times smaller than this tree.
    let m = Mount::start_with(&w, &w.path("mnt"), &["--cache-size", "8M"]);
    let dir = m.snap(&id).join("man1");

    let before = m.stats();
    let ls = sh("ls", [OsStr::new("-l"), dir.as_os_str()]);
    ls.ok();
    assert_eq!(ls.stdout.split(|&c| c == b'\n').filter(|l| !l.is_empty()).count(), N + 1, "ls -l | wc -l");
    let after = m.stats();
    let decoded = |s: &serde_json::Value| s["trees_decoded"].as_u64().unwrap();
    assert!(decoded(&after) - decoded(&before) <= 2, "ls -l decoded trees again and again: {after}");
    // Readdirplus answers the lookups in bulk; what remains is the
    // kernel asking each entry's ACL once (ls asks for a security label
    // only until one entry has none).
    let per_entry = (requests(&after) - requests(&before)) as f64 / N as f64;
    assert!(per_entry <= 1.1, "ls -l cost {per_entry:.2} requests per entry: {after}");

    // Again: nothing decoded, and the kernel answers nearly everything.
    sh("ls", [OsStr::new("-l"), dir.as_os_str()]).ok();
    let again = m.stats();
    assert_eq!(decoded(&again), decoded(&after), "a second ls -l decoded trees: {again}");
    let per_entry = (requests(&again) - requests(&after)) as f64 / N as f64;
    assert!(per_entry <= 0.05, "a second ls -l cost {per_entry:.2} requests per entry: {again}");

    // Every file, looked up by name and read whole.
    for i in 0..N {
        assert_eq!(fs::read(dir.join(name(i))).unwrap(), content(i), "{}", name(i));
    }
    let read = m.stats();
    assert_eq!(decoded(&read), decoded(&after), "reading the files decoded trees: {read}");
    let per_file = (requests(&read) - requests(&again)) as f64 / N as f64;
    assert!(per_file <= 4.0, "reading cost {per_file:.2} requests per file: {read}");
}
