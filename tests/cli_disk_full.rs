//! A real full disk: a repository on a 6 MiB tmpfs. A save of more than
//! fits fails saying "No space left on device" with the path, once; the
//! repository stays valid; gc frees what the failed save left; a smaller
//! save then succeeds.

mod common;

use common::*;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        fs::create_dir_all(at).unwrap();
        let opts = format!("size={size},mode=0755");
        sh(
            "mount",
            [
                OsStr::new("-t"),
                OsStr::new("tmpfs"),
                OsStr::new("-o"),
                OsStr::new(&opts),
                OsStr::new("tmpfs"),
                at.as_os_str(),
            ],
        )
        .ok();
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = sh("umount", [OsStr::new("-l"), self.0.as_os_str()]);
    }
}

#[test]
fn a_full_disk_fails_a_save_cleanly_and_gc_recovers() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(std::env::var("CI").is_err(), "this test needs root to mount a tmpfs, and CI runs as root");
        eprintln!("\n*** SKIPPING disk-full test: mounting a tmpfs needs root ***\n");
        return;
    }
    let mut w = World::new();
    let disk = SmallDisk::mount(&w.path("small"), "6m");
    w.repo = disk.0.join("repo");
    w.chkfs(["init"]).ok();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..5 {
        fs::write(src.join(format!("big{i}")), random_bytes(2 << 20, i)).unwrap();
    }
    let out = w.chkfs(["save", src.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let line = out.stderr.lines().find(|l| l.contains("error")).unwrap_or_default().to_string();
    assert!(line.contains("No space left on device"), "{}", out.stderr);
    assert!(line.contains(w.repo.to_str().unwrap()), "the message names the path: {line}");
    assert_eq!(line.matches("No space left on device").count(), 1, "said more than once: {line}");
    let (code, _, c) = w.check();
    assert_eq!(code, 0, "the repository is valid after a full disk:\n{}", c.stderr);
    w.chkfs(["gc"]).ok();
    for i in 1..5 {
        fs::remove_file(src.join(format!("big{i}"))).unwrap();
    }
    let saved = w.save(&src, &[]);
    w.restore(saved["id"].as_str().unwrap(), &w.path("out"));
    assert_diff_equal(&src, &w.path("out"), &[]);
    let (code, _, c) = w.check();
    assert_eq!(code, 0, "{}", c.stderr);
}
