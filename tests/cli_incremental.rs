//! Incremental saves: unchanged files are recognised from their metadata
//! and never read again; changed ones (content or only mtime) are read.

mod common;

use common::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const DIRS: usize = 400;
const FILES_PER_DIR: usize = 200;

fn file_path(root: &Path, d: usize, f: usize) -> std::path::PathBuf {
    root.join(format!("d{d:03}")).join(format!("f{f:03}.txt"))
}

/// 80,000 small files; returns their total size.
fn make_tree(root: &Path) -> u64 {
    let mut total = 0u64;
    for d in 0..DIRS {
        let dir = root.join(format!("d{d:03}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..FILES_PER_DIR {
            let content = format!("{d}/{f}{}\n", "+".repeat((d * 7 + f) % 23));
            total += content.len() as u64;
            fs::write(file_path(root, d, f), content).unwrap();
        }
    }
    total
}

fn id(v: &serde_json::Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

#[test]
fn unchanged_files_are_not_read_again() {
    let w = World::with_repo();
    let src = w.path("src");
    let total = make_tree(&src);
    let n = (DIRS * FILES_PER_DIR) as u64;

    let first = w.save(&src, &[]);
    assert_eq!(first["files"], n, "{first}");
    assert_eq!(first["bytes"], total);
    assert_eq!(first["bytes_read"], total);
    assert!(first["parent"].is_null(), "{first}");

    let second = w.save(&src, &[]);
    assert_eq!(second["bytes_read"], 0, "{second}");
    assert_eq!(second["parent"].as_str(), Some(id(&first).as_str()));
    assert_eq!(second["files"], n);
    assert_eq!(second["bytes"], total);
    // Nothing changed: no new chunk, no new tree.
    assert_eq!(second["added_blobs"], 0, "{second}");

    // Content changes (one growing, one keeping its size) and a touch.
    let grown = file_path(&src, 3, 17);
    let same_size = file_path(&src, 250, 199);
    let touched = file_path(&src, 399, 0);
    let old_sizes: u64 = [&grown, &same_size, &touched].iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    fs::write(&grown, "this file grew quite a bit longer than before\n").unwrap();
    let old = fs::read(&same_size).unwrap();
    let mut flipped = old.clone();
    flipped[0] = b'#';
    fs::write(&same_size, &flipped).unwrap();
    assert_eq!(fs::metadata(&same_size).unwrap().len(), old.len() as u64);
    set_mtime(&touched, 1_700_000_000, 42);
    let expect: u64 = [&grown, &same_size, &touched].iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    let new_total = total - old_sizes + expect;

    let third = w.save(&src, &[]);
    assert_eq!(third["bytes_read"], expect, "{third}");
    assert_eq!(third["parent"].as_str(), Some(id(&second).as_str()));
    assert_eq!(third["files"], n);
    assert_eq!(third["bytes"], new_total, "{third}");

    // The snapshot holds the new content and the new mtime.
    let out = w.path("out");
    for (i, p) in [&grown, &same_size, &touched].iter().enumerate() {
        let rel = p.strip_prefix(&src).unwrap().to_str().unwrap();
        let t = out.join(i.to_string());
        w.restore(&format!("{}:{rel}", id(&third)), &t);
        let r = t.join(p.file_name().unwrap());
        assert_eq!(fs::read(&r).unwrap(), fs::read(p).unwrap(), "{rel}");
        assert_eq!(meta_of(&r).mtime, meta_of(p).mtime, "{rel}");
    }
    // ... and the old snapshot the old content.
    let t = out.join("old");
    w.restore(&format!("{}:d250/f199.txt", id(&second)), &t);
    assert_eq!(fs::read(t.join("f199.txt")).unwrap(), old);

    // --force-read reads everything, reuses nothing, stores nothing new.
    let forced = w.save(&src, &["--force-read"]);
    assert_eq!(forced["bytes_read"], new_total, "{forced}");
    assert!(forced["parent"].is_null(), "{forced}");
    assert_eq!(forced["added_blobs"], 0, "{forced}");

    // After a forced save, the next one is incremental again.
    let after = w.save(&src, &[]);
    assert_eq!(after["bytes_read"], 0, "{after}");
    assert_eq!(after["parent"].as_str(), Some(id(&forced).as_str()));
}

/// The names of one inode share content, times and xattrs. When its first
/// name is reused unchanged, a name moved since (so without an entry of its
/// own in the last snapshot) takes all of them from that name.
#[test]
fn a_moved_hard_link_keeps_the_xattrs_of_its_inode() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("c")).unwrap();
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("c/a"), "shared\n").unwrap();
    fs::hard_link(src.join("c/a"), src.join("d/b")).unwrap();
    xattr::set(src.join("c/a"), "user.tag", b"keep").unwrap();
    w.save(&src, &[]);
    fs::rename(src.join("d"), src.join("e")).unwrap();
    let second = w.save(&src, &[]);
    assert_eq!(second["bytes_read"], 0, "the inode was reused: {second}");
    // Each name on its own: restored together, they are one inode again.
    for name in ["c/a", "e/b"] {
        let out = w.path(&format!("out-{}", name.replace('/', "-")));
        w.restore(&format!("{}:{name}", id(&second)), &out);
        let file = out.join(&name[2..]);
        assert_eq!(fs::read_to_string(&file).unwrap(), "shared\n", "{name}");
        let tag = xattr::get(&file, "user.tag").unwrap();
        assert_eq!(tag.as_deref(), Some(&b"keep"[..]), "{name} lost its inode's xattr");
        assert_eq!(meta_of(&file).mtime, meta_of(&src.join(name)).mtime, "{name}");
    }
}

/// A file saved within its filesystem's time granule of its last change
/// could change again without a new ctime (before Linux 6.13, or on a
/// filesystem that keeps coarse times). On ext4 with 128-byte inodes
/// (whole seconds), such a file is read again by the next save, until a
/// save sees it past its granule; a rewrite of the same size is stored.
#[test]
fn a_file_saved_within_its_time_granule_is_read_again() {
    // SAFETY: a plain system call without arguments.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: a loop-mounted ext4 with whole-second times needs root");
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        return;
    }
    let w = World::with_repo();
    let (image, mnt) = (w.path("seconds.img"), w.path("seconds"));
    fs::File::create(&image).unwrap().set_len(16 << 20).unwrap();
    fs::create_dir_all(&mnt).unwrap();
    sh("mkfs.ext4", [OsStr::new("-q"), OsStr::new("-F"), OsStr::new("-I"), OsStr::new("128"), image.as_os_str()]).ok();
    sh("mount", [OsStr::new("-o"), OsStr::new("loop"), image.as_os_str(), mnt.as_os_str()]).ok();
    let _unmount = Unmount(mnt.clone());
    let file = mnt.join("notes.txt");
    let read_by = |label: &str| {
        let saved = w.save(&mnt, &[]);
        eprintln!("{label}: {saved}");
        (saved["bytes_read"].as_u64().unwrap(), id(&saved))
    };

    fs::write(&file, "version one\n").unwrap();
    assert_eq!(fs::metadata(&file).unwrap().ctime_nsec(), 0, "not a filesystem of whole seconds");
    assert_eq!(read_by("first").0, 12);
    assert_eq!(read_by("unchanged, within the granule").0, 12, "a racily clean file was trusted");
    fs::write(&file, "version two\n").unwrap();
    let (read, rewritten) = read_by("rewritten");
    assert_eq!(read, 12);
    let out = w.path("out");
    w.restore(&format!("{rewritten}:notes.txt"), &out);
    assert_eq!(fs::read_to_string(out.join("notes.txt")).unwrap(), "version two\n");

    // Past the granule (FAT's two seconds, the widest allowed for), the
    // file is read once more and then trusted.
    let changed = fs::metadata(&file).unwrap().ctime();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while now_secs() < changed + 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(read_by("past the granule").0, 12);
    assert_eq!(read_by("trusted").0, 0, "an old unchanged file was read again");
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = sh("umount", [self.0.as_os_str()]);
    }
}
