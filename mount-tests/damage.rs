//! A damaged chunk: reading the file fails with EIO (never short or wrong
//! bytes), other files still read, the mount stays up and says why.

use crate::common::*;
use crate::harness::*;
use std::fs;
use std::io::Read;
use std::os::unix::fs::FileExt;

const HEADER_LEN: u64 = 16;
const FLIP_AT: u64 = 1000;
const BIG: usize = 3 << 20;

#[test]
fn damaged_chunk_gives_eio_and_the_mount_survives() {
    require_fuse!();
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    let original = random_bytes(BIG, 1234);
    fs::write(src.join("big.bin"), &original).unwrap();
    let first = id_of(&w.save(&src, &[]));
    // The small file comes in a later snapshot, so in another pack.
    fs::write(src.join("note.txt"), "a small text file\n").unwrap();
    let second = id_of(&w.save(&src, &[]));

    // The biggest pack holds big.bin's chunks; its first block starts
    // after the header and, the data being random, is stored raw.
    let mut packs: Vec<_> = pack_files(&w.repo).into_iter().map(|p| (fs::metadata(&p).unwrap().len(), p)).collect();
    packs.sort();
    let (size, data_pack) = packs.pop().expect("no pack");
    assert!(size > BIG as u64 / 2, "biggest pack has {size} bytes");
    {
        let f = fs::OpenOptions::new().read(true).write(true).open(&data_pack).unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, HEADER_LEN + FLIP_AT).unwrap();
        b[0] ^= 0x5a;
        f.write_all_at(&b, HEADER_LEN + FLIP_AT).unwrap();
    }

    let mut m = Mount::start(&w, &w.path("mnt"));
    for id in [&second, &first] {
        let damaged = m.snap(id).join("big.bin");

        // cat: fails with EIO; whatever it wrote before is a true prefix.
        let cat = sh("cat", [damaged.as_os_str()]);
        assert_ne!(cat.code, 0, "cat of the damaged file succeeded ({} bytes)", cat.stdout.len());
        assert!(cat.stderr.contains("Input/output error"), "cat: {}", cat.stderr);
        assert!(cat.stdout.len() < BIG, "cat printed the whole file");
        assert!(original.starts_with(&cat.stdout), "cat printed wrong bytes before failing");

        // read(2) of the whole file and pread of the damaged range: EIO.
        let mut f = fs::File::open(&damaged).unwrap();
        let mut got = Vec::new();
        let r = f.read_to_end(&mut got);
        assert_eq!(r.as_ref().map_err(|e| e.raw_os_error()), Err(Some(libc::EIO)), "read of the damaged file");
        assert!(original.starts_with(&got), "read returned wrong bytes before failing");
        // Blocks go into a pack in the order they were compressed, so
        // which part of the file the flip hit is not known: every page is
        // EIO or the file's own bytes, some page is EIO, and again when
        // asked again (nothing is healed with wrong bytes).
        let mut failed = None;
        for at in (0..BIG as u64).step_by(4096) {
            match pread_full(&f, at, 4096) {
                Ok(v) => assert_eq!(v, original[at as usize..at as usize + 4096], "pread at {at}: wrong bytes"),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EIO), "pread at {at}");
                    failed.get_or_insert(at);
                }
            }
        }
        let at = failed.expect("every page of the damaged file read");
        let r = pread_full(&f, at, 4096);
        assert_eq!(r.map(|v| v.len()).map_err(|e| e.raw_os_error()), Err(Some(libc::EIO)), "pread at {at} again");
    }

    // The other file, from the other pack, reads fine.
    assert_eq!(fs::read(m.snap(&second).join("note.txt")).unwrap(), b"a small text file\n");
    let cat = sh("cat", [m.snap(&second).join("note.txt").as_os_str()]);
    cat.ok();
    assert_eq!(cat.stdout, b"a small text file\n");

    // Still running, still mounted, and it said what is damaged.
    assert!(m.is_running(), "chkfs mount exited after a damaged read:\n{}", m.stderr());
    assert!(is_fuse_mounted(&m.mnt));
    assert!(fs::read_dir(m.mnt.join("snapshots")).unwrap().count() >= 3);
    let log = m.stderr();
    assert!(
        log.contains("big.bin") || log.contains("chunk"),
        "the mount's stderr names neither the path nor the chunk:\n{log}"
    );
}
