//! Several readers at once: two sha256sum of different large files and
//! an ls -lR, all correct.

use crate::common::*;
use crate::harness::*;
use std::fs;
use std::path::Path;

fn sha(p: &Path) -> String {
    let out = sh("sha256sum", [p.as_os_str()]);
    out.ok();
    out.stdout_str().split_whitespace().next().unwrap_or_default().to_string()
}

/// `ls -lRn` with full times, run inside `root`, without the link counts
/// (directories have none to report on the mount).
fn ls_lr(root: &Path) -> String {
    let out = sh_in(root, "ls", ["-lRn", "--time-style=full-iso", "."]);
    out.ok();
    out.stdout_str()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() > 2 && f[0].len() >= 10 && "-dlpscb".contains(&f[0][..1]) {
                let mut g = f.clone();
                g.remove(1);
                g.join(" ")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn parallel_readers_all_get_the_right_bytes() {
    require_fuse!();
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), random_bytes(24 << 20, 81)).unwrap();
    fs::write(src.join("b.bin"), random_bytes(20 << 20, 82)).unwrap();
    for d in 0..20 {
        let dir = src.join(format!("d{d:02}/sub"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..25 {
            fs::write(dir.join(format!("f{f}")), format!("{d}/{f}\n").repeat(f + 1)).unwrap();
        }
    }
    let want_a = sha(&src.join("a.bin"));
    let want_b = sha(&src.join("b.bin"));
    let want_ls = ls_lr(&src);
    let id = id_of(&w.save(&src, &[]));

    // A small cache, so that the readers also evict each other's chunks.
    let m = Mount::start_with(&w, &w.path("mnt"), &["--cache-size", "8M"]);
    let snap = m.snap(&id);
    for round in 0..2 {
        let (a, b, l) = std::thread::scope(|s| {
            let ta = s.spawn(|| sha(&snap.join("a.bin")));
            let tb = s.spawn(|| sha(&snap.join("b.bin")));
            let tl = s.spawn(|| ls_lr(&snap));
            (ta.join().unwrap(), tb.join().unwrap(), tl.join().unwrap())
        });
        assert_eq!(a, want_a, "round {round}: sha256 of a.bin read from the mount");
        assert_eq!(b, want_b, "round {round}: sha256 of b.bin read from the mount");
        assert_eq!(l, want_ls, "round {round}: ls -lR of the mount differs from the source's");
    }
    assert!(m.stderr().lines().all(|l| !l.contains("chunk")), "{}", m.stderr());
}
