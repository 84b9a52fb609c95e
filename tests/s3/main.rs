//! Repositories on a real S3 server: SeaweedFS on loopback, started by
//! `./test.sh` (which exports CHKFS_TEST_S3=http://HOST:PORT). Without it
//! these tests skip with a loud message, and fail under CI=true.

#[path = "../common/mod.rs"]
mod common;
mod proxy;

use common::s3::*;
use common::*;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod basics;
mod concurrency;
mod faults;

pub fn write_files(dir: &Path, prefix: &str, n: usize, size: usize, seed: u64) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        fs::write(dir.join(format!("{prefix}{i:03}")), random_bytes(size, seed + i as u64)).unwrap();
    }
}

pub fn id_of(v: &serde_json::Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// Restores `spec` into a new directory and compares it with `src`.
pub fn assert_restores(w: &World, spec: &str, src: &Path, label: &str) {
    let out = w.path(&format!("restored-{label}"));
    w.restore(spec, &out);
    assert_diff_equal(src, &out, &[]);
    remove_tree(&out);
}

pub fn check_ok(w: &World, label: &str) {
    let (code, report, out) = w.check();
    assert_eq!(code, 0, "{label}: check --read-data:\n{}", out.stderr);
    assert_eq!(report["ok"], true, "{label}: {report}");
}

pub fn gc(w: &World, extra: &[&str]) -> serde_json::Value {
    let out = w.chkfs([OsStr::new("gc"), OsStr::new("--json")].into_iter().chain(extra.iter().map(OsStr::new)));
    out.ok();
    out.json()
}
