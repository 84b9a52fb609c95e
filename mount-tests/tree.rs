//! The awkward source tree the round-trip and stat tests mount.

use crate::common::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

pub const NONUTF8: &[u8] = b"bad\xff\xfename";
pub const NEWLINE: &str = "new\nline";
/// Names diff(1) cannot compare (it reports two fifos as different).
pub const FIFOS: &[&str] = &["a-fifo"];
pub const BIG_LEN: usize = 3 * 1024 * 1024 + 12_345;

/// Builds the tree under `w`/src and returns its root.
pub fn build(w: &World) -> PathBuf {
    let src = w.path("src");
    let p = |rel: &str| src.join(rel);
    fs::create_dir_all(&src).unwrap();

    // Sizes: 0 bytes, small, a page and a bit, a few MB of random data.
    fs::write(p("empty"), "").unwrap();
    fs::write(p("small.txt"), "hello, world\n").unwrap();
    fs::write(p("page-and-a-bit"), "y".repeat(4097)).unwrap();
    fs::write(p("big.bin"), random_bytes(BIG_LEN, 11)).unwrap();

    // Nested directories and an empty one.
    fs::create_dir_all(p("nested/deep/er")).unwrap();
    fs::write(p("nested/deep/er/random.bin"), random_bytes(300_000, 12)).unwrap();
    fs::write(p("nested/deep/notes.txt"), "x".repeat(70_000)).unwrap();
    fs::create_dir_all(p("empty-dir")).unwrap();

    // Symlinks: relative, absolute, dangling.
    symlink("small.txt", p("link-rel")).unwrap();
    symlink("/etc/hostname", p("link-abs")).unwrap();
    symlink("does/not/exist", p("link-dangling")).unwrap();

    // A hard-linked pair in two directories.
    fs::create_dir_all(p("links")).unwrap();
    fs::write(p("links/one"), "linked content\n").unwrap();
    fs::hard_link(p("links/one"), p("links/two")).unwrap();

    // A fifo.
    sh("mkfifo", [OsStr::new("-m"), OsStr::new("0640"), p("a-fifo").as_os_str()]).ok();

    // Odd names.
    fs::write(src.join(OsStr::from_bytes(NONUTF8)), "not utf-8\n").unwrap();
    fs::write(p(NEWLINE), "newline in name\n").unwrap();
    fs::create_dir_all(src.join(OsStr::from_bytes(b"dir\xfe\nx"))).unwrap();
    fs::write(src.join(OsStr::from_bytes(b"dir\xfe\nx/inner")), "in\n").unwrap();

    // Modes and owners.
    fs::write(p("private"), "secret\n").unwrap();
    chmod(&p("private"), 0o600);
    fs::write(p("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    chmod(&p("script.sh"), 0o755);
    fs::write(p("setuid"), "#!/bin/sh\n").unwrap();
    std::os::unix::fs::chown(p("setuid"), Some(1234), Some(5678)).unwrap();
    chmod(&p("setuid"), 0o4755);
    fs::write(p("owned.txt"), "someone else's\n").unwrap();
    std::os::unix::fs::chown(p("owned.txt"), Some(4321), Some(8765)).unwrap();
    std::os::unix::fs::lchown(p("link-rel"), Some(1234), Some(5678)).unwrap();
    fs::create_dir_all(p("ro-dir")).unwrap();
    fs::write(p("ro-dir/a"), "a\n").unwrap();
    fs::write(p("ro-dir/b"), "bb\n").unwrap();

    // user.* extended attributes on files, a directory and the root.
    xattr::set(p("small.txt"), "user.comment", b"hello").unwrap();
    xattr::set(p("small.txt"), "user.binary", b"\x00\xff\x10").unwrap();
    xattr::set(p("small.txt"), "user.empty", b"").unwrap();
    xattr::set(p("big.bin"), "user.origin", b"random").unwrap();
    xattr::set(p("nested"), "user.dir", b"on a directory").unwrap();
    xattr::set(&src, "user.root", b"on the saved directory").unwrap();

    // Nanosecond mtimes on everything, deepest first so that setting a
    // directory's comes after its content is complete.
    let all = walk(&src);
    let mut paths: Vec<&Vec<u8>> = all.keys().collect();
    paths.sort_by_key(|k| std::cmp::Reverse(k.len()));
    for (i, rel) in paths.iter().enumerate() {
        let full = if rel.is_empty() { src.clone() } else { src.join(OsStr::from_bytes(rel)) };
        set_mtime(&full, 1_577_934_245 + i as i64 * 1000, 123_456_789 + i as u32 * 7);
    }
    chmod(&p("ro-dir"), 0o555);
    set_mtime(&p("ro-dir"), 1_600_000_000, 555_555_555);
    set_mtime(&src, 1_600_000_001, 1);
    src
}
