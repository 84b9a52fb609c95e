//! Round trip through the mount: diff -r against the source, cp -a out
//! of it keeping every piece of metadata, tar seeing hard links.

use crate::common::*;
use crate::harness::*;
use crate::tree;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

#[test]
fn saved_tree_reads_back_through_diff_cp_and_tar() {
    require_fuse!();
    let w = World::with_repo();
    let src = tree::build(&w);
    let id = id_of(&w.save(&src, &[]));
    let m = Mount::start(&w, &w.path("mnt"));
    let snap = m.snap(&id);

    // diff -r --no-dereference finds nothing (fifos: see below).
    assert_diff_equal(&src, &snap, tree::FIFOS);
    let fifo = fs::symlink_metadata(snap.join("a-fifo")).unwrap();
    assert!(fifo.file_type().is_fifo(), "a-fifo is {:?} on the mount", fifo.file_type());

    // cp -a out of the mount: content and all metadata as in the source.
    let out = w.path("out");
    copy_tree(&snap, &out);
    assert_diff_equal(&src, &out, tree::FIFOS);
    assert_same_tree(&src, &out, true);
    let one = fs::symlink_metadata(out.join("links/one")).unwrap();
    let two = fs::symlink_metadata(out.join("links/two")).unwrap();
    assert_eq!(one.ino(), two.ino(), "cp -a did not keep links/one and links/two as hard links");
    assert_eq!(one.nlink(), 2);
    assert_eq!(fs::read(out.join("big.bin")).unwrap(), fs::read(src.join("big.bin")).unwrap());

    // tar sees the pair as a hard link.
    let archive = w.path("snap.tar");
    sh("tar", [OsStr::new("-cf"), archive.as_os_str(), OsStr::new("-C"), snap.as_os_str(), OsStr::new(".")]).ok();
    let listing = sh("tar", [OsStr::new("-tvf"), archive.as_os_str()]);
    listing.ok();
    let text = listing.stdout_str();
    let links: Vec<&str> = text.lines().filter(|l| l.starts_with('h') && l.contains(" link to ")).collect();
    assert_eq!(links.len(), 1, "tar should list exactly one hard link (links/one <-> links/two):\n{text}");
    assert!(links[0].contains("./links/"), "{}", links[0]);
    // And the archive unpacks to the same content.
    let untar = w.path("untar");
    fs::create_dir_all(&untar).unwrap();
    sh("tar", [OsStr::new("-xpf"), archive.as_os_str(), OsStr::new("-C"), untar.as_os_str()]).ok();
    assert_diff_equal(&src, &untar, tree::FIFOS);

    assert!(is_fuse_mounted(&m.mnt));
}
