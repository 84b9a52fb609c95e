//! Inode numbers: an unchanged file keeps its number across snapshots, a
//! changed one does not, directories are per snapshot, and numbers
//! survive a remount; du counts shared files once.

use crate::common::*;
use crate::harness::*;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn inodes(root: &Path) -> BTreeMap<String, u64> {
    walk(root).into_iter().map(|(k, m)| (String::from_utf8_lossy(&k).into_owned(), m.ino)).collect()
}

fn ino(p: &Path) -> u64 {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display())).ino()
}

#[test]
fn unchanged_files_share_inode_numbers_stable_across_remounts() {
    require_fuse!();
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("keep.bin"), random_bytes(2 << 20, 41)).unwrap();
    fs::write(src.join("sub/inner.bin"), random_bytes(1 << 20, 42)).unwrap();
    fs::write(src.join("change.txt"), "first version\n").unwrap();
    std::os::unix::fs::symlink("keep.bin", src.join("link")).unwrap();
    let a = id_of(&w.save(&src, &[]));
    fs::write(src.join("change.txt"), "second, longer version\n").unwrap();
    fs::write(src.join("new.txt"), "added\n").unwrap();
    let b = id_of(&w.save(&src, &[]));
    assert_ne!(a, b);

    let mnt = w.path("mnt");
    let (first_a, first_b) = {
        let m = Mount::start(&w, &mnt);
        let (sa, sb) = (m.snap(&a), m.snap(&b));
        for unchanged in ["keep.bin", "sub/inner.bin", "link"] {
            assert_eq!(
                ino(&sa.join(unchanged)),
                ino(&sb.join(unchanged)),
                "{unchanged}: st_ino differs between snapshots"
            );
        }
        assert_ne!(
            ino(&sa.join("change.txt")),
            ino(&sb.join("change.txt")),
            "change.txt: same st_ino in both snapshots"
        );
        for dir in ["", "sub"] {
            assert_ne!(ino(&sa.join(dir)), ino(&sb.join(dir)), "directory {dir:?}: same st_ino in both snapshots");
        }
        // Numbers are unique inside a snapshot.
        let ia = inodes(&sa);
        let mut seen = std::collections::HashMap::new();
        for (p, n) in &ia {
            if let Some(q) = seen.insert(*n, p.clone()) {
                panic!("{p:?} and {q:?} share inode {n} in one snapshot");
            }
        }

        // du counts the shared files once: the second figure is small.
        let du = sh("du", [OsStr::new("-s"), OsStr::new("-B1"), sa.as_os_str(), sb.as_os_str()]);
        du.ok();
        let figures: Vec<u64> =
            du.stdout_str().lines().map(|l| l.split_whitespace().next().unwrap().parse().unwrap()).collect();
        assert_eq!(figures.len(), 2, "{}", du.stdout_str());
        assert!(figures[0] >= 3 << 20, "du of the first snapshot: {figures:?}");
        assert!(figures[1] <= 64 << 10, "du counts the shared files again in the second snapshot: {figures:?}");
        (ia, inodes(&sb))
    };
    assert!(!is_mounted(&mnt), "still mounted after the guard was dropped");

    // After unmount and remount: the same numbers.
    let m = Mount::start(&w, &mnt);
    assert_eq!(inodes(&m.snap(&a)), first_a, "inode numbers of {a} changed across a remount");
    assert_eq!(inodes(&m.snap(&b)), first_b, "inode numbers of {b} changed across a remount");
}
