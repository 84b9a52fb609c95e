//! save → restore round trips: content (diff -r) and every piece of
//! metadata chkfs promises to keep, sparse files over 4 GiB, partial
//! restores of a subtree or a single file, and --force.

mod common;

use common::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileExt, MetadataExt};
use std::path::{Path, PathBuf};

const NONUTF8: &[u8] = b"bad\xff\xfename";
const NEWLINE: &str = "new\nline";
/// diff(1) cannot compare these; the metadata comparison does.
const SPECIAL: &[&str] = &["a-fifo", "a-socket", "a-chardev", "a-blockdev"];

/// Builds the awkward tree. Returns its root.
fn build_tree(w: &World) -> PathBuf {
    let src = w.path("src");
    let p = |rel: &str| src.join(rel);
    fs::create_dir_all(&src).unwrap();
    fs::write(p("plain.txt"), "hello, world\n").unwrap();
    fs::write(p("empty"), "").unwrap();

    fs::create_dir_all(p("nested/deep/er")).unwrap();
    fs::write(p("nested/deep/er/random.bin"), random_bytes(300_000, 1)).unwrap();
    fs::write(p("nested/deep/notes.txt"), "x".repeat(70_000)).unwrap();
    fs::create_dir_all(p("empty-dir")).unwrap();
    chmod(&p("empty-dir"), 0o750);

    // A read-only directory holding files.
    fs::create_dir_all(p("ro-dir")).unwrap();
    fs::write(p("ro-dir/a"), "a\n").unwrap();
    fs::write(p("ro-dir/b"), "bb\n").unwrap();

    // Symlinks: relative, absolute, dangling.
    symlink("plain.txt", p("link-rel")).unwrap();
    symlink("/etc/hostname", p("link-abs")).unwrap();
    symlink("does/not/exist", p("link-dangling")).unwrap();

    // Hard links: three names in two directories, and one name whose
    // other link is outside the saved tree.
    fs::create_dir_all(p("links")).unwrap();
    fs::create_dir_all(p("other")).unwrap();
    fs::write(p("links/one"), "linked content\n").unwrap();
    fs::hard_link(p("links/one"), p("links/two")).unwrap();
    fs::hard_link(p("links/one"), p("other/three")).unwrap();
    fs::write(p("external-link"), "outside too\n").unwrap();
    fs::hard_link(p("external-link"), w.path("outside-name")).unwrap();

    // Awkward names.
    fs::write(src.join(OsStr::from_bytes(NONUTF8)), "not utf-8\n").unwrap();
    fs::write(p(NEWLINE), "newline in name\n").unwrap();
    fs::create_dir_all(src.join(OsStr::from_bytes(b"dir\xfe\nx"))).unwrap();
    fs::write(src.join(OsStr::from_bytes(b"dir\xfe\nx/inner")), "in\n").unwrap();

    // A fifo.
    sh("mkfifo", [OsStr::new("-m"), OsStr::new("0640"), p("a-fifo").as_os_str()]).ok();

    // A unix socket, and (where the container allows mknod) devices.
    drop(std::os::unix::net::UnixListener::bind(p("a-socket")).unwrap());
    let mknod = |name: &str, kind: libc::mode_t, major: u32, minor: u32| {
        let c = std::ffi::CString::new(p(name).as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        unsafe { libc::mknod(c.as_ptr(), kind | 0o640, libc::makedev(major, minor)) == 0 }
    };
    if !(mknod("a-chardev", libc::S_IFCHR, 1, 3) && mknod("a-blockdev", libc::S_IFBLK, 7, 200)) {
        eprintln!("note: mknod not permitted here; device nodes not tested");
        let _ = fs::remove_file(p("a-chardev"));
    }

    // Extended attributes on a file, a directory and the root.
    fs::write(p("xattr.txt"), "has attributes\n").unwrap();
    for (name, value) in [("user.comment", "hello"), ("user.binary", "0x00ff10"), ("user.empty", "")] {
        let mut args = vec!["-n".to_string(), name.to_string()];
        if !value.is_empty() {
            args.push("-v".into());
            args.push(value.into());
        }
        args.push(p("xattr.txt").to_string_lossy().into_owned());
        sh("setfattr", &args).ok();
    }
    sh(
        "setfattr",
        [
            OsStr::new("-n"),
            OsStr::new("user.dir"),
            OsStr::new("-v"),
            OsStr::new("on a directory"),
            p("nested").as_os_str(),
        ],
    )
    .ok();
    xattr::set(&src, "user.root", b"on the saved directory").unwrap();

    // Ownership and special mode bits.
    fs::write(p("owned.txt"), "someone else's\n").unwrap();
    std::os::unix::fs::chown(p("owned.txt"), Some(1234), Some(5678)).unwrap();
    fs::write(p("setuid"), "#!/bin/sh\n").unwrap();
    std::os::unix::fs::chown(p("setuid"), Some(1234), Some(5678)).unwrap();
    chmod(&p("setuid"), 0o4755);
    fs::create_dir_all(p("setgid-dir")).unwrap();
    std::os::unix::fs::chown(p("setgid-dir"), Some(1234), Some(5678)).unwrap();
    chmod(&p("setgid-dir"), 0o2775);
    fs::create_dir_all(p("sticky")).unwrap();
    chmod(&p("sticky"), 0o1777);
    std::os::unix::fs::lchown(p("link-rel"), Some(1234), Some(5678)).unwrap();
    fs::write(p("private"), "secret\n").unwrap();
    chmod(&p("private"), 0o600);

    // Odd nanosecond mtimes on everything, directories last (deepest
    // first) so that creating their content does not move them.
    let all = walk(&src);
    let mut paths: Vec<&Vec<u8>> = all.keys().collect();
    paths.sort_by_key(|k| std::cmp::Reverse(k.len()));
    for (i, rel) in paths.iter().enumerate() {
        let full = if rel.is_empty() { src.clone() } else { src.join(OsStr::from_bytes(rel)) };
        set_mtime(&full, 1_577_934_245 + i as i64 * 1000, 123_456_789 + i as u32 * 7);
    }
    // One through touch(1), as a user would.
    sh(
        "touch",
        [
            OsStr::new("-h"),
            OsStr::new("-d"),
            OsStr::new("2020-01-02 03:04:05.987654321"),
            p("link-dangling").as_os_str(),
        ],
    )
    .ok();
    // Times before 1970 and after 2038.
    fs::write(p("old"), "old\n").unwrap();
    set_mtime(&p("old"), -946_771_200, 500_000_001);
    fs::write(p("future"), "future\n").unwrap();
    set_mtime(&p("future"), 10_413_792_000, 250_000_000);
    chmod(&p("ro-dir"), 0o555);
    set_mtime(&p("ro-dir"), 1_600_000_000, 555_555_555);
    set_mtime(&src, 1_600_000_001, 1);
    src
}

#[test]
fn full_tree_round_trip_keeps_content_and_metadata() {
    let w = World::with_repo();
    let src = build_tree(&w);
    let saved = w.save(&src, &[]);
    assert_eq!(saved["partial"], false, "{saved}");
    assert_eq!(saved["errors"].as_array().unwrap().len(), 0);
    // Regular files, counting every name of a hard-linked file.
    let files = walk(&src).values().filter(|m| m.kind == "file").count() as u64;
    assert_eq!(saved["files"], files, "{saved}");
    // Symlinks, the fifo, the socket and devices.
    let other = walk(&src).values().filter(|m| m.kind != "file" && m.kind != "dir").count() as u64;
    assert_eq!(saved["other"], other, "{saved}");
    // Logical size: hard-linked content counted once.
    let mut inodes = std::collections::HashMap::new();
    for m in walk(&src).values().filter(|m| m.kind == "file") {
        inodes.insert(m.ino, m.size);
    }
    assert_eq!(saved["bytes"], inodes.values().sum::<u64>(), "{saved}");

    let id = saved["id"].as_str().unwrap().to_string();
    let out = w.path("out");
    let r = w.chkfs(["restore", "--json", &id, out.to_str().unwrap()]);
    r.ok();
    let r = r.json();
    assert_eq!(r["snapshot"], id.as_str());
    assert_eq!(r["files"], files, "{r}");
    assert_eq!(r["errors"].as_array().unwrap().len(), 0, "{r}");
    assert_diff_equal(&src, &out, SPECIAL);
    assert_same_tree(&src, &out, true);

    // Spot checks with tools other than the comparison above.
    let m = fs::symlink_metadata(out.join("a-fifo")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()));
    let g = sh("getfattr", [OsStr::new("-d"), OsStr::new("-e"), OsStr::new("hex"), out.join("xattr.txt").as_os_str()]);
    g.ok();
    let text = g.stdout_str();
    assert!(text.contains("user.comment=0x68656c6c6f"), "{text}");
    assert!(text.contains("user.binary=0x00ff10"), "{text}");
    assert!(text.contains("user.empty"), "{text}");
    let st = sh("stat", [OsStr::new("-c"), OsStr::new("%y"), out.join("link-dangling").as_os_str()]);
    st.ok();
    assert!(st.stdout_str().contains("03:04:05.987654321"), "{}", st.stdout_str());
    let one = fs::metadata(out.join("links/one")).unwrap();
    let three = fs::metadata(out.join("other/three")).unwrap();
    assert_eq!(one.ino(), three.ino());
    assert_eq!(one.nlink(), 3);
    assert_eq!(fs::metadata(out.join("external-link")).unwrap().nlink(), 1);
    assert_eq!(fs::read_link(out.join("link-dangling")).unwrap(), Path::new("does/not/exist"));
    assert_eq!(fs::symlink_metadata(out.join("ro-dir")).unwrap().mode() & 0o7777, 0o555);
    assert_eq!(fs::metadata(out.join("setuid")).unwrap().mode() & 0o7777, 0o4755);

    // A second save of the unchanged tree reads nothing, and restores the same.
    let again = w.save(&src, &[]);
    assert_eq!(again["bytes_read"], 0, "{again}");
    assert_eq!(again["parent"].as_str(), Some(id.as_str()));
    let out2 = w.path("out2");
    w.restore(again["id"].as_str().unwrap(), &out2);
    assert_diff_equal(&src, &out2, SPECIAL);
    assert_same_tree(&src, &out2, true);

    let (code, report, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
    assert_eq!(report["ok"], true);
}

const GIB: u64 = 1 << 30;

#[test]
fn sparse_file_over_4_gib_is_saved_and_restored_sparse() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    let big = src.join("big.sparse");
    sh("truncate", [OsStr::new("-s"), OsStr::new("5G"), big.as_os_str()]).ok();
    let pieces: [(u64, &[u8]); 3] = [
        (GIB + 12_345, b"first piece of data"),
        (4 * GIB + GIB / 2 + 777, b"second, beyond 4 GiB"),
        (5 * GIB - 5, b"tail!"),
    ];
    {
        let f = fs::OpenOptions::new().write(true).open(&big).unwrap();
        for (off, data) in pieces {
            f.write_all_at(data, off).unwrap();
        }
    }
    let src_meta = fs::metadata(&big).unwrap();
    assert_eq!(src_meta.len(), 5 * GIB);
    assert!(src_meta.blocks() * 512 < (1 << 20), "the source is not sparse");

    let saved = w.save(&src, &[]);
    assert_eq!(saved["bytes"], 5 * GIB, "{saved}");
    // Holes are found with SEEK_DATA/SEEK_HOLE, not read.
    let read = saved["bytes_read"].as_u64().unwrap();
    assert!(read < (1 << 20), "save read {read} bytes of a sparse file");
    assert!(saved["added_bytes"].as_u64().unwrap() < (1 << 20), "{saved}");

    let out = w.path("out");
    w.restore(saved["id"].as_str().unwrap(), &out);
    let restored = out.join("big.sparse");
    let m = fs::metadata(&restored).unwrap();
    assert_eq!(m.len(), 5 * GIB);
    assert!(m.blocks() * 512 < (1 << 20), "restored file uses {} blocks: holes were written", m.blocks());
    let f = fs::File::open(&restored).unwrap();
    for (off, data) in pieces {
        let mut buf = vec![0u8; data.len() + 20];
        let start = off - 10;
        let n = f.read_at(&mut buf, start).unwrap();
        let mut want = vec![0u8; n];
        let end = (10 + data.len()).min(n);
        want[10..end].copy_from_slice(&data[..end - 10]);
        assert_eq!(&buf[..n], &want[..], "content around offset {off}");
    }
    // Elsewhere, zeros.
    for off in [0, 3 * GIB, 4 * GIB + 17] {
        let mut buf = [1u8; 64];
        f.read_exact_at(&mut buf, off).unwrap();
        assert_eq!(buf, [0u8; 64], "at offset {off}");
    }
    assert_same_tree(&src, &out, true);
}

#[test]
fn restore_of_a_subtree_and_of_a_single_file() {
    let w = World::with_repo();
    let src = build_tree(&w);
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();

    // A directory: its content goes into TARGET, its metadata onto TARGET.
    let sub = w.path("sub");
    let out = w.restore(&format!("{id}:nested/deep"), &sub);
    assert!(out.stderr.contains("restored"), "{}", out.stderr);
    assert_diff_equal(&src.join("nested/deep"), &sub, &[]);
    assert_same_tree(&src.join("nested/deep"), &sub, true);
    assert!(!sub.join("plain.txt").exists());

    // A leading slash and a trailing one mean the same.
    let sub2 = w.path("sub2");
    w.restore(&format!("{id}:/nested/deep/"), &sub2);
    assert_same_tree(&src.join("nested/deep"), &sub2, true);

    // A directory holding hard links to a name outside it.
    let links = w.path("links");
    w.restore(&format!("{id}:links"), &links);
    assert_diff_equal(&src.join("links"), &links, &[]);
    assert_same_tree(&src.join("links"), &links, true);

    // A single file goes into TARGET/name.
    let one = w.path("one");
    w.restore(&format!("{id}:nested/deep/er/random.bin"), &one);
    let names: Vec<_> = fs::read_dir(&one).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![OsStr::new("random.bin").to_owned()]);
    assert_eq!(fs::read(one.join("random.bin")).unwrap(), fs::read(src.join("nested/deep/er/random.bin")).unwrap());
    let (a, b) = (meta_of(&src.join("nested/deep/er/random.bin")), meta_of(&one.join("random.bin")));
    assert_eq!((a.perm, a.uid, a.gid, a.size, a.mtime), (b.perm, b.uid, b.gid, b.size, b.mtime));

    // A symlink.
    let l = w.path("l");
    w.restore(&format!("{id}:link-dangling"), &l);
    assert_eq!(fs::read_link(l.join("link-dangling")).unwrap(), Path::new("does/not/exist"));

    // A path that is not in the snapshot.
    let missing = w.chkfs(["restore", &format!("{id}:nested/nope"), w.path("missing").to_str().unwrap()]);
    assert_ne!(missing.code, 0);
    assert!(missing.stderr.contains("nested/nope"), "{}", missing.stderr);
}

#[test]
fn restore_into_a_non_empty_target_adds_what_is_missing_and_replaces_only_when_told() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("dir1")).unwrap();
    fs::write(src.join("a.txt"), "snapshot content\n").unwrap();
    fs::write(src.join("dir1/inner"), "inner\n").unwrap();
    fs::write(src.join("file2"), "file two\n").unwrap();
    symlink("a.txt", src.join("sym")).unwrap();
    fs::create_dir_all(src.join("dir1-link")).unwrap();
    fs::write(src.join("dir1-link/inner"), "snapshot inner\n").unwrap();
    fs::write(src.join("a2.txt"), "snapshot a2\n").unwrap();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();

    // In the way: different content, a file where a directory goes, a
    // directory (with content) where a file goes, a file where a symlink goes.
    let target = w.path("target");
    fs::create_dir_all(target.join("file2/deeper")).unwrap();
    fs::write(target.join("file2/deeper/x"), "x").unwrap();
    fs::write(target.join("a.txt"), "old content that is longer\n").unwrap();
    fs::write(target.join("dir1"), "not a directory").unwrap();
    fs::write(target.join("sym"), "not a symlink").unwrap();
    // Symlinks in the way that lead outside the target: restore must
    // replace them, never write through them.
    let outside = w.path("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("inner"), "outside, must survive\n").unwrap();
    fs::write(outside.join("victim"), "outside file, must survive\n").unwrap();
    symlink(&outside, target.join("dir1-link")).unwrap();
    symlink(outside.join("victim"), target.join("a2.txt")).unwrap();
    let before = walk(&target);

    // Without --overwrite: every conflict is reported and left alone;
    // what is missing is added.
    let kept = w.chkfs(["restore", "--json", &id, target.to_str().unwrap()]);
    assert_eq!(kept.code, 3, "conflicts make a partial restore: {}", kept.stderr);
    assert!(kept.stderr.contains("--overwrite"), "{}", kept.stderr);
    let conflicts = kept.json()["errors"].as_array().unwrap().len();
    assert_eq!(conflicts, 6, "a.txt, dir1, sym, dir1-link, a2.txt and file2 are in the way: {}", kept.stderr);
    let after = walk(&target);
    for (path, what) in before.iter().filter(|(p, _)| !p.is_empty()) {
        assert_eq!(after.get(path), Some(what), "{:?} was in the way and changed", String::from_utf8_lossy(path));
    }
    assert_eq!(fs::read(target.join("a.txt")).unwrap(), b"old content that is longer\n");
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"outside file, must survive\n");

    // if-changed replaces what differs and leaves what is equal.
    fs::remove_dir_all(&target).unwrap();
    fs::create_dir_all(&target).unwrap();
    w.restore(&id, &target);
    fs::write(target.join("file2"), "edited meanwhile\n").unwrap();
    let equal = fs::metadata(target.join("a.txt")).unwrap().ino();
    let out = w.chkfs(["restore", "--overwrite", "if-changed", &id, target.to_str().unwrap()]);
    out.ok();
    assert!(out.stderr.contains("there already"), "{}", out.stderr);
    assert_eq!(fs::read(target.join("file2")).unwrap(), b"file two\n");
    assert_eq!(fs::metadata(target.join("a.txt")).unwrap().ino(), equal, "an equal file is not rewritten");
    assert_diff_equal(&src, &target, &[]);

    // Put the obstacles back: --force (or --overwrite always) replaces them.
    fs::remove_dir_all(&target).unwrap();
    fs::create_dir_all(target.join("file2/deeper")).unwrap();
    fs::write(target.join("file2/deeper/x"), "x").unwrap();
    fs::write(target.join("a.txt"), "old content that is longer\n").unwrap();
    fs::write(target.join("dir1"), "not a directory").unwrap();
    fs::write(target.join("sym"), "not a symlink").unwrap();
    symlink(&outside, target.join("dir1-link")).unwrap();
    symlink(outside.join("victim"), target.join("a2.txt")).unwrap();
    w.chkfs(["restore", "--force", &id, target.to_str().unwrap()]).ok();
    assert_diff_equal(&src, &target, &[]);
    assert_same_tree(&src, &target, true);
    assert_eq!(fs::read(outside.join("inner")).unwrap(), b"outside, must survive\n");
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"outside file, must survive\n");

    // An empty existing target needs no --force.
    let empty = w.path("empty");
    fs::create_dir_all(&empty).unwrap();
    w.restore(&id, &empty);
    assert_diff_equal(&src, &empty, &[]);
}

/// Snapshots keep non-UTF-8 names (see the full round trip); restoring one
/// of them alone must work too.
#[test]
fn restore_of_a_single_file_with_a_non_utf8_name() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join(OsStr::from_bytes(NONUTF8)), "not utf-8\n").unwrap();
    fs::write(src.join("other"), "other\n").unwrap();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let odd = w.path("odd");
    let mut spec = format!("{id}:").into_bytes();
    spec.extend_from_slice(NONUTF8);
    let r = w.chkfs([OsStr::new("restore"), OsStr::from_bytes(&spec), odd.as_os_str()]);
    r.ok();
    assert_eq!(fs::read(odd.join(OsStr::from_bytes(NONUTF8))).unwrap(), b"not utf-8\n");
    assert!(!odd.join("other").exists());
}

/// The comparison the tests rely on must notice each kind of difference.
#[test]
fn tree_comparison_notices_differences() {
    let w = World::new();
    let src = build_tree(&w);
    let copy = w.path("copy");
    copy_tree(&src, &copy);
    assert_same_tree(&src, &copy, true);
    assert_diff_equal(&src, &copy, SPECIAL);

    let expect = |what: &str, needle: &str| {
        let d = tree_differences(&src, &copy, true);
        assert!(d.iter().any(|l| l.contains(needle)), "{what} not noticed: {d:?}");
    };
    let m = meta_of(&copy.join("plain.txt"));
    set_mtime(&copy.join("plain.txt"), m.mtime.0, m.mtime.1 as u32 + 1);
    expect("an mtime one nanosecond off", "mtime");
    set_mtime(&copy.join("plain.txt"), m.mtime.0, m.mtime.1 as u32);
    assert_same_tree(&src, &copy, true);

    chmod(&copy.join("private"), 0o644);
    expect("a mode", "mode");
    chmod(&copy.join("private"), 0o600);

    std::os::unix::fs::chown(copy.join("owned.txt"), Some(1), None).unwrap();
    expect("an owner", "owner");
    std::os::unix::fs::chown(copy.join("owned.txt"), Some(1234), None).unwrap();

    let x = copy.join("xattr.txt");
    let mt = meta_of(&x).mtime;
    xattr::set(&x, "user.comment", b"changed").unwrap();
    expect("an xattr", "xattrs");
    xattr::set(&x, "user.comment", b"hello").unwrap();
    set_mtime(&x, mt.0, mt.1 as u32);

    // A hard link turned into a copy.
    let two = copy.join("links/two");
    let m2 = meta_of(&two);
    fs::remove_file(&two).unwrap();
    fs::write(&two, "linked content\n").unwrap();
    set_mtime(&two, m2.mtime.0, m2.mtime.1 as u32);
    expect("a broken hard link", "hard-link group");
    assert_diff_equal(&src, &copy, SPECIAL);

    fs::remove_file(copy.join("link-dangling")).unwrap();
    symlink("elsewhere", copy.join("link-dangling")).unwrap();
    expect("a symlink target", "symlink target");

    fs::remove_file(copy.join("empty")).unwrap();
    expect("a missing file", "missing from the restore");
}

#[test]
fn one_lost_file_is_restored_back_in_place_among_the_others() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    for (f, body) in [("sub/lost", "lost one\n"), ("sub/kept", "kept\n"), ("top", "top\n")] {
        fs::write(src.join(f), body).unwrap();
    }
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    fs::remove_file(src.join("sub/lost")).unwrap();
    fs::write(src.join("sub/kept"), "edited since\n").unwrap();
    let out = run_with_timeout(
        w.cmd().current_dir(src.join("sub")).args(["restore", &format!("{id}:sub/lost"), "."]),
        TIMEOUT,
    );
    out.ok();
    assert_eq!(fs::read(src.join("sub/lost")).unwrap(), b"lost one\n");
    assert_eq!(fs::read(src.join("sub/kept")).unwrap(), b"edited since\n", "nothing else touched");
    // The whole directory, back in place: only the missing file is
    // written; the edited one is a conflict, reported and kept.
    fs::remove_file(src.join("sub/lost")).unwrap();
    let out = run_with_timeout(w.cmd().current_dir(&src).args(["restore", &format!("{id}:sub"), "sub"]), TIMEOUT);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("kept") && out.stderr.contains("--overwrite"), "{}", out.stderr);
    assert_eq!(fs::read(src.join("sub/lost")).unwrap(), b"lost one\n");
    assert_eq!(fs::read(src.join("sub/kept")).unwrap(), b"edited since\n");
}

#[test]
fn a_hard_link_already_in_place_is_left_alone_not_reported() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "linked content").unwrap();
    fs::hard_link(src.join("f"), src.join("hl")).unwrap();
    fs::write(src.join("other"), "other").unwrap();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let target = w.path("t");
    w.restore(&id, &target);
    // Everything there already: nothing restored, nothing reported.
    let again = w.chkfs(["restore", "--json", &id, target.to_str().unwrap()]);
    again.ok();
    let report = again.json();
    assert_eq!((report["files"].as_u64(), report["unchanged"].as_u64()), (Some(0), Some(3)), "{report}");
    // One name lost: it comes back; the other name, equal, is left alone.
    fs::remove_file(target.join("f")).unwrap();
    let out = w.chkfs(["restore", &id, target.to_str().unwrap()]);
    out.ok();
    assert_eq!(fs::read(target.join("f")).unwrap(), b"linked content");
    assert_eq!(fs::read(target.join("hl")).unwrap(), b"linked content");
}
