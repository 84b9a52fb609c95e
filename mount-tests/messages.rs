//! What `chkfs mount` says when the mount point is not what it expects,
//! and what the mount tells `df`.

use crate::common::*;
use crate::harness::*;
use std::fs;
use std::time::Duration;

fn saved(w: &World) {
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "x").unwrap();
    w.save(&src, &[]);
}

#[test]
fn a_live_mount_is_named_as_such_and_a_dead_one_says_how_to_clear_it() {
    require_fuse!();
    let w = World::with_repo();
    saved(&w);
    let mnt = w.path("mnt");
    let mut live = Mount::start(&w, &mnt);
    let again = w.chkfs([std::ffi::OsStr::new("mount"), mnt.as_os_str()]);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("already a chkfs mount"), "{}", again.stderr);

    // The serving process dies: the kernel keeps a dead mount behind.
    signal(live.pid(), libc::SIGKILL);
    live.wait_exit(Duration::from_secs(10));
    let dead = w.chkfs([std::ffi::OsStr::new("mount"), mnt.as_os_str()]);
    force_unmount(&live.mnt);
    assert_ne!(dead.code, 0);
    assert!(dead.stderr.contains("dead mount") && dead.stderr.contains("umount"), "{}", dead.stderr);
    assert!(!dead.stderr.contains("not a directory"), "{}", dead.stderr);
}

#[test]
fn df_reports_free_inodes_so_the_mount_never_looks_full() {
    require_fuse!();
    let w = World::with_repo();
    saved(&w);
    let m = Mount::start(&w, &w.path("mnt"));
    let out = sh(
        "df",
        ["--output=itotal,iused,iavail,ipcent"].map(std::ffi::OsStr::new).into_iter().chain([m.mnt.as_os_str()]),
    );
    out.ok();
    let line = out.stdout_str().lines().nth(1).unwrap_or_default().to_string();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "{line}");
    let free: u64 = fields[2].parse().unwrap();
    assert!(free > 0, "no free inodes reported: {line}");
    assert!(fields[3] != "100%", "df -i shows the mount full: {line}");
}
