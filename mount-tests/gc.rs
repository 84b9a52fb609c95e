//! gc while the repository is mounted and being read: packs are deleted
//! and rewritten under the mount, which must go on answering with the
//! right bytes (open packs stay readable, moved chunks are found after an
//! index reload), and the forgotten snapshot disappears.

use crate::common::*;
use crate::harness::*;
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
