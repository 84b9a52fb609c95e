//! One writer at a time: every command against an S3 repository.

use super::proxy::{Faults, Proxy};
use super::*;

/// init, save, list, restore, check, forget and gc, as on a local disk.
#[test]
fn save_restore_check_forget_gc() {
    let Some(endpoint) = endpoint() else { return };
    let w = s3_world(&endpoint);
    let src = w.path("src");
    write_files(&src.join("a"), "f", 20, 300_000, 1);
    fs::write(src.join("small.txt"), "hello\n").unwrap();
    let first = id_of(&w.save(&src, &[]));
    write_files(&src.join("b"), "g", 10, 200_000, 2);
    fs::remove_dir_all(src.join("a")).unwrap();
    let second = id_of(&w.save(&src, &[]));
    assert_eq!(w.list().len(), 2);
    assert_restores(&w, &second, &src, "second");
    check_ok(&w, "two snapshots");

    // Init refuses a location that holds a repository.
    let again = w.chkfs(["init"]);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);

    w.chkfs(["forget", &first]).ok();
    let report = gc(&w, &[]);
    assert!(report["packs_deleted"].as_u64().unwrap() > 0, "{report}");
    assert!(report["bytes_reclaimed"].as_u64().unwrap() > 1_000_000, "{report}");
    check_ok(&w, "after gc");
    assert_restores(&w, &second, &src, "after-gc");

    // The local cache may go at any time.
    fs::remove_dir_all(w.home.join(".cache/chkfs")).unwrap();
    assert_restores(&w, "latest", &src, "no-cache");
}

/// A no-change save sends a handful of requests, whatever the number of
/// files and packs: the index files, trees and snapshot records come from
/// the local cache, and no pack is listed.
#[test]
fn a_no_change_save_costs_a_few_requests() {
    let Some(endpoint) = endpoint() else { return };
    let mut w = s3_world(&endpoint);
    let src = w.path("src");
    for d in 0..20 {
        write_files(&src.join(format!("d{d}")), "f", 100, 600, 100 * d);
    }
    w.save(&src, &[]);
    w.save(&src, &[]);
    let proxy = Proxy::start(&endpoint, Faults::default());
    w.env = s3_env(&proxy.endpoint);
    let saved = w.save(&src, &[]);
    assert_eq!(saved["files"], 2000);
    assert_eq!(saved["bytes_read"], 0);
    let n = proxy.requests();
    assert!(n <= 15, "a no-change save of 2,000 files sent {n} requests");
}

/// Unknown schemes are an error, never a local directory named "sftp:".
#[test]
fn an_unknown_scheme_is_refused() {
    let w = World::new();
    let out = w.bare_cmd().args(["--repo", "sftp://host/backups", "init"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not sftp://"));
    assert!(!w.home.join("sftp:").exists() && !Path::new("sftp:").exists());
}

/// copy ships local snapshots to S3; a second copy moves nothing.
#[test]
fn copy_local_snapshots_to_s3_and_again() {
    let Some(endpoint) = endpoint() else { return };
    let w = s3_world(&endpoint);
    let local = World::with_repo();
    let src = local.path("src");
    let mut states = Vec::new();
    for i in 0..10 {
        write_files(&src, &format!("v{i}-"), 3, 100_000, 1000 + i);
        local.save(&src, &["-m", &format!("state {i}")]);
        states.push(local.path(&format!("state{i}")));
        copy_tree(&src, states.last().unwrap());
    }
    let copy = |extra: &[&str]| {
        let out = run_with_timeout(
            w.cmd()
                .args([OsStr::new("copy"), OsStr::new("--json"), OsStr::new("--from"), local.repo.as_os_str()])
                .args([OsStr::new("--to"), w.repo.as_os_str()])
                .args(extra),
            TIMEOUT,
        );
        out.ok();
        out.json()
    };
    let first = copy(&[]);
    assert_eq!(first["copied"].as_array().unwrap().len(), 10, "{first}");
    let second = copy(&[]);
    assert_eq!(second["copied"].as_array().unwrap().len(), 0, "{second}");
    assert_eq!(second["chunks_read"], 0, "{second}");
    assert_eq!(second["blobs_added"], 0, "{second}");
    check_ok(&w, "copied");
    let copied = w.list();
    assert_eq!(copied.len(), 10);
    for (i, s) in copied.iter().enumerate() {
        assert_eq!(s["message"], format!("state {i}"));
        assert_restores(&w, s["id"].as_str().unwrap(), &states[i], &format!("copy{i}"));
    }
}
