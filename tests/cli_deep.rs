//! A source tree 100,000 directories deep saves, restores and checks in
//! bounded memory: no walk recurses once per directory level (a user's
//! deep tree used to overflow root's save).

mod common;
use chkfs::dirfd::Dir;
use common::*;

const DEPTH: usize = 100_000;

/// Makes `DEPTH` nested directories `d` under `root`, one descriptor at
/// a time (paths that long exceed PATH_MAX), with a file at the bottom.
fn make_deep(root: &std::path::Path) {
    std::fs::create_dir_all(root).unwrap();
    let mut d = Dir::open_path(root).unwrap();
    for _ in 0..DEPTH {
        d.mkdir(b"d", 0o755).unwrap();
        d = d.child(b"d").unwrap();
    }
    use std::io::Write;
    d.create_file(b"f", 0o644).unwrap().write_all(b"deep").unwrap();
}

/// The names in the deepest directory.
fn bottom(root: &std::path::Path) -> Vec<u8> {
    let mut d = Dir::open_path(root).unwrap();
    for _ in 0..DEPTH {
        d = d.child(b"d").unwrap();
    }
    d.names().unwrap().concat()
}

#[test]
fn a_tree_a_hundred_thousand_deep_round_trips_in_bounded_memory() {
    let w = World::with_repo();
    let src = w.path("src");
    make_deep(&src);
    let mut cmd = w.cmd();
    cmd.args(["save", "--json"]).arg(&src);
    let (saved, save_kib) = run_measured(&mut cmd, &w.path("save.time"));
    saved.ok();
    assert_eq!(saved.json()["dirs"].as_u64(), Some(DEPTH as u64 + 1));
    assert!(save_kib < 512 << 10, "save used {save_kib} KiB");
    let out = w.path("out");
    let mut cmd = w.cmd();
    cmd.args(["restore", "latest"]).arg(&out);
    let (restored, restore_kib) = run_measured(&mut cmd, &w.path("restore.time"));
    restored.ok();
    assert!(restore_kib < 512 << 10, "restore used {restore_kib} KiB");
    assert_eq!(bottom(&out), b"f");
    let (code, _, check) = w.check();
    assert_eq!(code, 0, "{}", check.stderr);
    // An unchanged deep tree is not read again.
    let again = w.save(&src, &[]);
    assert_eq!(again["bytes_read"], 0);
    let root = Dir::open_path(w.dir.path()).unwrap();
    root.remove_all(b"src", &[]).unwrap();
    root.remove_all(b"out", &[]).unwrap();
}

/// 3,000 levels of 255-byte names, with a second directory at each level:
/// nothing may hold one path per pending directory (that needed 2.5 GB;
/// the deepest path here is 768 KB long).
#[test]
fn long_names_on_a_deep_and_branching_tree_stay_in_bounded_memory() {
    const LEVELS: usize = 3_000;
    let w = World::with_repo();
    let src = w.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let name = [b'n'; 255];
    let mut d = Dir::open_path(&src).unwrap();
    for _ in 0..LEVELS {
        d.mkdir(&name, 0o755).unwrap();
        d.mkdir(b"side", 0o755).unwrap();
        d = d.child(&name).unwrap();
    }
    let mut cmd = w.cmd();
    cmd.args(["save", "--json"]).arg(&src);
    let (saved, save_kib) = run_measured(&mut cmd, &w.path("save.time"));
    saved.ok();
    assert_eq!(saved.json()["dirs"].as_u64(), Some(2 * LEVELS as u64 + 1));
    assert!(save_kib < 512 << 10, "save used {save_kib} KiB");
    for args in [&["check"][..], &["gc"]] {
        let mut cmd = w.cmd();
        cmd.args(args);
        let (out, kib) = run_measured(&mut cmd, &w.path("check.time"));
        out.ok();
        assert!(kib < 256 << 10, "{args:?} used {kib} KiB");
    }
    let mut cmd = w.cmd();
    cmd.args(["restore", "latest"]).arg(w.path("out"));
    let (restored, kib) = run_measured(&mut cmd, &w.path("restore.time"));
    restored.ok();
    assert!(kib < 512 << 10, "restore used {kib} KiB");
    let root = Dir::open_path(w.dir.path()).unwrap();
    root.remove_all(b"src", &[]).unwrap();
    root.remove_all(b"out", &[]).unwrap();
}
