//! The mount is read-only: every change fails, with EROFS, through system
//! calls and through the usual tools; nothing in the repository changes.

use crate::common::*;
use crate::harness::*;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn utimens(p: &Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid path; a null times pointer means "now".
    match unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), std::ptr::null(), 0) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[test]
fn every_change_fails_with_erofs_and_the_repository_stays_untouched() {
    require_fuse!();
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::write(src.join("file.txt"), "original\n").unwrap();
    fs::write(src.join("dir/inner"), "inner\n").unwrap();
    xattr::set(src.join("file.txt"), "user.keep", b"v").unwrap();
    let id = id_of(&w.save(&src, &[]));
    let before = fingerprint(&w.repo);

    let m = Mount::start(&w, &w.path("mnt"));
    let snap = m.snap(&id);
    let file = snap.join("file.txt");
    let dir = snap.join("dir");
    let erofs = libc::EROFS;

    // System calls: EROFS for each.
    let mut wrong = Vec::new();
    let mut expect = |what: &str, errno: i32, allowed: &[i32]| {
        if !allowed.contains(&errno) {
            wrong.push(format!("{what}: {}", std::io::Error::from_raw_os_error(errno)));
        }
    };
    let only_erofs = &[erofs][..];
    expect("open for writing", errno_of("open O_WRONLY", fs::OpenOptions::new().write(true).open(&file)), only_erofs);
    expect(
        "open O_RDWR",
        errno_of("open O_RDWR", fs::OpenOptions::new().read(true).write(true).open(&file)),
        only_erofs,
    );
    expect("open O_APPEND", errno_of("open O_APPEND", fs::OpenOptions::new().append(true).open(&file)), only_erofs);
    expect(
        "open O_TRUNC",
        errno_of("open O_TRUNC", fs::OpenOptions::new().write(true).truncate(true).open(&file)),
        only_erofs,
    );
    expect("create", errno_of("create", fs::File::create(snap.join("new.txt"))), only_erofs);
    expect("mkdir", errno_of("mkdir", fs::create_dir(snap.join("newdir"))), only_erofs);
    expect("unlink", errno_of("unlink", fs::remove_file(&file)), only_erofs);
    expect("rmdir", errno_of("rmdir", fs::remove_dir(snap.join("dir"))), only_erofs);
    expect(
        "chmod",
        errno_of("chmod", fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o777))),
        only_erofs,
    );
    expect("chown", errno_of("chown", std::os::unix::fs::chown(&file, Some(1), Some(1))), only_erofs);
    expect("utimensat", errno_of("utimensat", utimens(&file)), only_erofs);
    expect(
        "truncate",
        errno_of("truncate", {
            let c = std::ffi::CString::new(file.as_os_str().as_bytes()).unwrap();
            // SAFETY: valid path.
            match unsafe { libc::truncate(c.as_ptr(), 0) } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        }),
        only_erofs,
    );
    // The rest must fail; EROFS is expected, a permission error tolerated.
    let tolerated = &[erofs, libc::EPERM, libc::EACCES, libc::EXDEV, libc::ENOTSUP][..];
    expect("rename", errno_of("rename", fs::rename(&file, snap.join("moved"))), tolerated);
    expect("link", errno_of("link", fs::hard_link(&file, snap.join("hard"))), tolerated);
    expect("symlink", errno_of("symlink", std::os::unix::fs::symlink("file.txt", snap.join("sym"))), tolerated);
    expect("setxattr", errno_of("setxattr", xattr::set(&file, "user.new", b"x")), tolerated);
    expect("removexattr", errno_of("removexattr", xattr::remove(&file, "user.keep")), tolerated);
    // The top level is read-only too.
    expect("mkdir at the top", errno_of("mkdir top", fs::create_dir(m.mnt.join("snapshots/new"))), tolerated);
    expect("unlink latest", errno_of("unlink latest", fs::remove_file(m.mnt.join("snapshots/latest"))), tolerated);
    expect("create at the root", errno_of("create root", fs::File::create(m.mnt.join("x"))), tolerated);
    assert!(wrong.is_empty(), "wrong errors on the read-only mount:\n  {}", wrong.join("\n  "));

    // The same through the tools: each fails; the first five say so.
    let os = |p: &Path| p.as_os_str().to_os_string();
    let of = OsString::from(format!("of={}", file.display()));
    let tools: Vec<(&str, Vec<OsString>, bool)> = vec![
        ("dd", vec!["if=/dev/zero".into(), of, "count=1".into(), "conv=notrunc".into(), "status=none".into()], true),
        ("mkdir", vec![os(&dir.join("sub"))], true),
        ("rm", vec!["-f".into(), os(&file)], true),
        ("chmod", vec!["0777".into(), os(&file)], true),
        ("touch", vec![os(&file)], true),
        ("touch", vec![os(&snap.join("brand-new"))], true),
        ("mv", vec![os(&file), os(&snap.join("moved"))], false),
        ("ln", vec![os(&file), os(&snap.join("hard"))], false),
        ("setfattr", vec!["-n".into(), "user.new".into(), "-v".into(), "x".into(), os(&file)], false),
    ];
    let mut bad = Vec::new();
    for (tool, args, must_say_erofs) in tools {
        let out = sh(tool, &args);
        let said = out.stderr.contains("Read-only file system");
        if out.code == 0 || (must_say_erofs && !said) {
            bad.push(format!("{}: exit {}, stderr {:?}", out.what, out.code, out.stderr.trim()));
        } else if !said {
            eprintln!("note: {} failed with {:?}", out.what, out.stderr.trim());
        }
    }
    assert!(bad.is_empty(), "tools did not fail with EROFS on the mount:\n  {}", bad.join("\n  "));

    // Nothing changed on the mount...
    assert_eq!(fs::read(&file).unwrap(), b"original\n");
    assert_eq!(xattr::get(&file, "user.keep").unwrap().as_deref(), Some(&b"v"[..]));
    let names: Vec<_> = fs::read_dir(&snap).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_diff_equal(&src, &snap, &[]);
    // ...nor in the repository, mounted or not.
    assert_eq!(fingerprint(&w.repo), before, "the repository changed while mounted");
    drop(m);
    assert_eq!(fingerprint(&w.repo), before, "the repository changed after unmounting");
}
