//! `save` never walks into chkfs's own mounts: a chkfs mount inside the
//! saved tree is saved as an empty directory, without `-x`, with a note.

use crate::common::*;
use crate::harness::*;
use std::ffi::OsStr;
use std::fs;

#[test]
fn save_stores_a_chkfs_mount_inside_the_tree_as_an_empty_directory() {
    require_fuse!();
    let w = World::with_repo();
    let first = w.path("first");
    fs::create_dir_all(&first).unwrap();
    fs::write(first.join("f"), random_bytes(20_000, 1)).unwrap();
    w.save(&first, &[]);

    let src = w.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/file"), "kept\n").unwrap();
    let m = Mount::start(&w, &src.join("sub/backups"));
    assert!(is_fuse_mounted(&m.mnt));

    let out = w.chkfs([OsStr::new("save"), OsStr::new("--json"), src.as_os_str()]);
    out.ok();
    assert!(out.stderr.contains("a chkfs mount; saved as an empty directory"), "{}", out.stderr);
    assert_eq!(out.stderr.matches("chkfs mount").count(), 1, "{}", out.stderr);
    let saved = out.json();
    assert_eq!(saved["files"], 1, "{saved}");
    assert_eq!(saved["partial"], false, "{saved}");

    let dry = w.chkfs([OsStr::new("save"), OsStr::new("--dry-run"), OsStr::new("--json"), src.as_os_str()]);
    dry.ok();
    assert_eq!(dry.json()["files"], 1, "{}", dry.stdout_str());

    drop(m);
    let out_dir = w.path("out");
    w.restore(id_of(&saved).as_str(), &out_dir);
    let mnt = out_dir.join("sub/backups");
    assert!(mnt.is_dir(), "the mount point is not in the snapshot");
    assert_eq!(fs::read_dir(&mnt).unwrap().count(), 0, "the mount point is not empty in the snapshot");
    assert_eq!(fs::read_to_string(out_dir.join("sub/file")).unwrap(), "kept\n");
}
