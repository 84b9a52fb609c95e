//! `mount --json`: one line on standard output once the mount is ready.

use crate::common::*;
use crate::harness::*;

#[test]
fn mount_json_announces_the_ready_mount() {
    require_fuse!();
    let w = World::with_repo();
    let mnt = w.path("mnt");
    let m = Mount::start_with(&w, &mnt, &["--json"]);
    // The mount answers before its main thread has printed the line.
    let deadline = std::time::Instant::now() + READY;
    let out = loop {
        let out = m.stderr();
        if out.lines().any(|l| l.starts_with('{') && l.ends_with('}')) || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(POLL);
    };
    let line = out.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON line:\n{out}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["message_type"], "mounted");
    assert_eq!(v["mountpoint"], m.mnt.to_str().unwrap());
    assert_eq!(v["pid"], m.pid());
    let repo = std::fs::canonicalize(&w.repo).unwrap();
    assert_eq!(std::fs::canonicalize(v["repository"].as_str().unwrap()).unwrap(), repo);
}
