//! gc while the repository is mounted and being read: packs are deleted
//! and rewritten under the mount, which must go on answering with the
//! right bytes (open packs stay readable, moved chunks are found after an
//! index reload), and the forgotten snapshot disappears.

use crate::common::*;
use crate::harness::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn gc_under_a_mount_that_is_being_read() {
    require_fuse!();
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("small")).unwrap();
    let a = random_bytes(6 << 20, 1);
    let b = random_bytes(6 << 20, 2);
    fs::write(src.join("a.bin"), &a).unwrap();
    fs::write(src.join("b.bin"), &b).unwrap();
    for i in 0..50 {
        fs::write(src.join("small").join(format!("f{i}")), format!("file {i}\n").repeat(i + 1)).unwrap();
    }
    let first = id_of(&w.save(&src, &[]));
    fs::remove_file(src.join("a.bin")).unwrap();
    let second = id_of(&w.save(&src, &[]));

    let m = Mount::start(&w, &w.path("mnt"));
    let b_path = m.snap(&second).join("b.bin");
    // A handle opened before gc, read in part before and in part after.
    let held = fs::File::open(&b_path).unwrap();
    let mut head = vec![0u8; 1 << 20];
    held.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(head, b[..1 << 20]);

    // Readers that keep going through the whole gc.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, path, want) = (stop.clone(), b_path.clone(), b.clone());
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) || rounds == 0 {
                let got = fs::read(&path).map_err(|e| e.to_string());
                assert!(got.as_deref() == Ok(&want[..]), "b.bin read wrong during gc: {:?}", got.map(|g| g.len()));
                rounds += 1;
            }
            rounds
        })
    };
    w.chkfs(["forget", &first]).ok();
    let gc = w.chkfs(["gc", "--max-waste", "0", "--json"]);
    gc.ok();
    let report = gc.json();
    assert!(report["packs_deleted"].as_u64().unwrap() + report["packs_rewritten"].as_u64().unwrap() > 0, "{report}");
    stop.store(true, Ordering::Relaxed);
    let rounds = reader.join().expect("reader thread");
    assert!(rounds > 0);

    // The rest of the held handle: chunks whose packs are gone or moved.
    let mut tail = vec![0u8; b.len() - (1 << 20)];
    held.read_exact_at(&mut tail, 1 << 20).unwrap();
    assert_eq!(tail, b[1 << 20..], "held handle reads wrong bytes after gc");
    // Fresh names, never read before, resolve through the new index.
    for i in [7, 33, 49] {
        let got = fs::read(m.snap(&second).join("small").join(format!("f{i}"))).unwrap();
        assert_eq!(got, format!("file {i}\n").repeat(i + 1).into_bytes());
    }
    // The forgotten snapshot leaves the listing.
    let start = Instant::now();
    while fs::read_dir(m.mnt.join("snapshots")).unwrap().any(|e| e.unwrap().file_name().to_string_lossy() == first) {
        assert!(start.elapsed() < Duration::from_secs(5), "forgotten snapshot {first} still listed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "check after gc: {}", out.stderr);
    assert!(!m.stderr().contains("panicked"), "{}", m.stderr());
}

/// Drops the kernel's cached pages of `path`, so the next read reaches
/// the mount.
fn drop_pages(path: &std::path::Path) {
    use std::os::fd::AsRawFd;
    let f = fs::File::open(path).unwrap();
    // SAFETY: a valid descriptor; fadvise only drops clean cached pages.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0, "fadvise");
}

/// An unchanged file is one inode in every snapshot. Found first in a
/// snapshot that is then forgotten and collected, it still reads through
/// the snapshot that keeps it (it gave EIO once the collected snapshot's
/// trees had left the mount's cache).
#[test]
fn a_file_first_found_in_a_collected_snapshot_reads_through_the_kept_one() {
    require_fuse!();
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::write(src.join("dir/kept"), b"unchanged content\n").unwrap();
    fs::write(src.join("dir/changed"), b"first\n").unwrap();
    fs::write(src.join("junk"), random_bytes(2 << 20, 5)).unwrap();
    let first = id_of(&w.save(&src, &[]));
    fs::write(src.join("dir/changed"), b"second, longer\n").unwrap();
    fs::remove_file(src.join("junk")).unwrap();
    // Directories of many long names, to push the first snapshot's trees
    // out of the smallest tree cache (8 MiB) later.
    for d in 0..4 {
        let sub = src.join(format!("many{d}"));
        fs::create_dir_all(&sub).unwrap();
        for i in 0..10_000 {
            fs::write(sub.join(format!("{}{i:06}", "long-name-".repeat(10))), b"").unwrap();
        }
    }
    let second = id_of(&w.save(&src, &[]));

    let m = Mount::start_with(&w, &w.path("mnt"), &["--cache-size", "8M"]);
    let (old, new) = (m.snap(&first).join("dir/kept"), m.snap(&second).join("dir/kept"));
    assert_eq!(fs::read(&old).unwrap(), b"unchanged content\n");
    assert_eq!(fs::read(&new).unwrap(), b"unchanged content\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&old).unwrap().ino(), fs::metadata(&new).unwrap().ino(), "one inode for both");

    w.chkfs(["forget", &first]).ok();
    w.chkfs(["gc", "--max-waste", "0"]).ok();
    // A new snapshot makes the mount load the index again, without the
    // collected trees (until then it reads them from the packs it holds
    // open).
    fs::write(
        src.join("dir/changed"),
        b"third
",
    )
    .unwrap();
    let third = id_of(&w.save(&src, &[]));
    let listed = || fs::read_dir(m.mnt.join("snapshots")).unwrap().any(|e| e.unwrap().file_name() == *third);
    let start = Instant::now();
    while !listed() {
        assert!(start.elapsed() < Duration::from_secs(5), "new snapshot {third} not listed");
        std::thread::sleep(Duration::from_millis(50));
    }
    for d in 0..4 {
        sh("ls", [OsStr::new("-l"), m.snap(&second).join(format!("many{d}")).as_os_str()]).ok();
    }
    drop_pages(&new);
    let got = fs::read(&new).map_err(|e| e.to_string());
    assert_eq!(got.as_deref(), Ok(&b"unchanged content\n"[..]), "the kept snapshot's file: {}", m.stderr());
    assert_eq!(fs::read(m.snap(&second).join("dir/changed")).unwrap(), b"second, longer\n");
}
