//! A repository on S3 (SeaweedFS on loopback, started by ./test.sh),
//! mounted and read like a local one, while a gc and a save run beside it.

use crate::common::s3::{endpoint, s3_world};
use crate::common::*;
use crate::harness::*;
use std::fs;

#[test]
fn mount_of_an_s3_repository_reads_right_beside_save_and_gc() {
    require_fuse!();
    let Some(endpoint) = endpoint() else { return };
    let w = s3_world(&endpoint);
    let src = w.path("src");
    fs::create_dir_all(src.join("small")).unwrap();
    fs::write(src.join("big.bin"), random_bytes(24 << 20, 3)).unwrap();
    for i in 0..300 {
        fs::write(src.join("small").join(format!("f{i}")), format!("file {i}\n").repeat(i + 1)).unwrap();
    }
    let first = id_of(&w.save(&src, &[]));
    let m = Mount::start(&w, &w.path("mnt"));
    let out = sh("diff", [std::ffi::OsStr::new("-r"), src.as_os_str(), m.snap(&first).as_os_str()]);
    assert_eq!(out.code, 0, "diff -r through the mount: {}", out.stdout_str());

    // A new snapshot shows up; the first is forgotten and collected while
    // the second is read.
    fs::write(src.join("new.txt"), "added\n").unwrap();
    fs::remove_file(src.join("big.bin")).unwrap();
    let second = id_of(&w.save(&src, &[]));
    poll_until(std::time::Duration::from_secs(30), "the new snapshot in the mount", || m.snap(&second).exists());
    w.chkfs(["forget", &first]).ok();
    w.chkfs(["gc"]).ok();
    let out = sh("diff", [std::ffi::OsStr::new("-r"), src.as_os_str(), m.snap(&second).as_os_str()]);
    assert_eq!(out.code, 0, "diff -r after gc: {}", out.stdout_str());
}
