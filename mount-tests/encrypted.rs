//! An encrypted repository mounts with its password (asked once, before
//! serving), reads back exactly, and a flipped byte in a sealed block is
//! EIO, never wrong bytes.

use crate::common::*;
use crate::harness::*;
use std::fs;
use std::os::unix::fs::FileExt;

const BIG: usize = 3 << 20;

#[test]
fn an_encrypted_repository_mounts_reads_exactly_and_fails_closed() {
    require_fuse!();
    let mut w = World::new();
    let pw = w.path("pw");
    fs::write(&pw, "mount password\n").unwrap();
    w.env.push(("CHKFS_PASSWORD_FILE".into(), pw.to_string_lossy().into()));
    w.chkfs(["init", "--encrypt", "--kdf-memory", "64", "--kdf-iterations", "1"]).ok();
    let src = w.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    let original = random_bytes(BIG, 99);
    fs::write(src.join("big.bin"), &original).unwrap();
    fs::write(src.join("sub/note.txt"), "an encrypted note\n").unwrap();
    let id = id_of(&w.save(&src, &[]));

    {
        let m = Mount::start(&w, &w.path("mnt"));
        let diff = sh("diff", [std::ffi::OsStr::new("-r"), src.as_os_str(), m.snap(&id).as_os_str()]);
        diff.ok();
    }

    // Without a password there is no mount, and the reason is given.
    fs::create_dir_all(w.path("mnt2")).unwrap();
    let mut bare = w.cmd();
    bare.env_remove("CHKFS_PASSWORD_FILE").stdin(std::process::Stdio::null());
    let out = run_with_timeout(bare.arg("mount").arg(w.path("mnt2")), TIMEOUT);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("CHKFS_PASSWORD_FILE"), "{}", out.stderr);

    // One flipped byte in the middle of the data pack.
    let (size, pack) =
        pack_files(&w.repo).into_iter().map(|p| (fs::metadata(&p).unwrap().len(), p)).max().expect("a pack");
    assert!(size > BIG as u64 / 2);
    let f = fs::OpenOptions::new().read(true).write(true).open(&pack).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, size / 2).unwrap();
    b[0] ^= 0x20;
    f.write_all_at(&b, size / 2).unwrap();

    let m = Mount::start(&w, &w.path("mnt3"));
    let cat = sh("cat", [m.snap(&id).join("big.bin").as_os_str()]);
    assert_ne!(cat.code, 0, "a tampered file read without error");
    assert!(cat.stderr.contains("Input/output error"), "{}", cat.stderr);
    assert!(original.starts_with(&cat.stdout), "wrong bytes before the error");
    assert_eq!(fs::read_to_string(m.snap(&id).join("sub/note.txt")).unwrap(), "an encrypted note\n");
}
