//! Which repository a command uses, the default repository, snapshot ids
//! and prefixes, and what `list --json` reports.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;

fn small_source(w: &World) -> std::path::PathBuf {
    let src = w.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("a.txt"), "alpha\n").unwrap();
    fs::write(src.join("d/b.txt"), "beta\n").unwrap();
    src
}

fn is_repo(p: &Path) -> bool {
    p.join("config").is_file()
}

#[test]
fn init_positional_and_repo_flag() {
    let w = World::new();
    let a = w.path("a");
    let b = w.path("b");

    // Two different repositories: a usage error, nothing created.
    let out = run_with_timeout(
        w.bare_cmd().args([OsStr::new("init"), a.as_os_str()]).args([OsStr::new("--repo"), b.as_os_str()]),
        TIMEOUT,
    );
    out.expect_code(2);
    assert!(!a.exists() && !b.exists(), "a refused init created something");

    // The same one twice (once relative): fine.
    let out = run_with_timeout(
        w.bare_cmd().current_dir(w.dir.path()).args([OsStr::new("--repo"), a.as_os_str()]).args(["init", "a"]),
        TIMEOUT,
    );
    out.ok();
    assert!(is_repo(&a));
    assert!(out.stderr.contains("created repository"), "{}", out.stderr);

    // CHKFS_REPO plus a positional: the positional wins.
    let out = run_with_timeout(
        w.bare_cmd().env("CHKFS_REPO", &b).args([OsStr::new("init"), w.path("c").as_os_str()]),
        TIMEOUT,
    );
    out.ok();
    assert!(is_repo(&w.path("c")));
    assert!(!b.exists(), "init used CHKFS_REPO instead of its argument");

    // CHKFS_REPO alone is used.
    run_with_timeout(w.bare_cmd().env("CHKFS_REPO", &b).arg("init"), TIMEOUT).ok();
    assert!(is_repo(&b));

    // A repository is never created twice, nor in a non-empty directory.
    run_with_timeout(w.bare_cmd().arg("init").arg(&a), TIMEOUT).expect_code(1);
    let full = w.path("full");
    fs::create_dir_all(&full).unwrap();
    fs::write(full.join("x"), "x").unwrap();
    run_with_timeout(w.bare_cmd().arg("init").arg(&full), TIMEOUT).expect_code(1);
    assert!(!full.join("config").exists());
}

#[test]
fn save_to_a_missing_repository_fails_and_creates_nothing() {
    let w = World::new();
    let src = small_source(&w);
    let missing = w.path("nonexistent/x");
    let out = run_with_timeout(
        w.bare_cmd().args([OsStr::new("save"), src.as_os_str()]).args([OsStr::new("--repo"), missing.as_os_str()]),
        TIMEOUT,
    );
    out.expect_code(1);
    assert!(out.stderr.contains("chkfs init"), "{}", out.stderr);
    assert!(!w.path("nonexistent").exists(), "save created the repository");
    // Nor the default one.
    assert!(!w.xdg.join("chkfs").exists());

    // Same through CHKFS_REPO.
    let out =
        run_with_timeout(w.bare_cmd().env("CHKFS_REPO", &missing).args([OsStr::new("save"), src.as_os_str()]), TIMEOUT);
    out.expect_code(1);
    assert!(!w.path("nonexistent").exists());
}

#[test]
fn default_repository_is_created_by_the_first_save_only() {
    let w = World::new();
    let src = small_source(&w);
    let default = w.xdg.join("chkfs/repo");
    let out = run_with_timeout(w.bare_cmd().args([OsStr::new("save"), src.as_os_str()]), TIMEOUT);
    out.ok();
    assert!(is_repo(&default), "no repository at {}", default.display());
    assert!(
        out.stderr.contains("created repository") && out.stderr.contains(default.to_str().unwrap()),
        "{}",
        out.stderr
    );
    let out = run_with_timeout(w.bare_cmd().args([OsStr::new("save"), src.as_os_str()]), TIMEOUT);
    out.ok();
    assert!(!out.stderr.contains("created repository"), "{}", out.stderr);
    let list = run_with_timeout(w.bare_cmd().args(["list", "--json"]), TIMEOUT);
    list.ok();
    assert_eq!(list.json().as_array().unwrap().len(), 2);
    assert!(!w.home.join(".local").exists());

    // Without XDG_DATA_HOME: under $HOME/.local/share.
    let out =
        run_with_timeout(w.bare_cmd().env_remove("XDG_DATA_HOME").args([OsStr::new("save"), src.as_os_str()]), TIMEOUT);
    out.ok();
    assert!(is_repo(&w.home.join(".local/share/chkfs/repo")), "{}", out.stderr);

    // A default location that holds something else is not taken over.
    let w2 = World::new();
    let squat = w2.xdg.join("chkfs/repo");
    fs::create_dir_all(&squat).unwrap();
    fs::write(squat.join("mine"), "not a repository").unwrap();
    let out = run_with_timeout(w2.bare_cmd().args([OsStr::new("save"), src.as_os_str()]), TIMEOUT);
    assert_ne!(out.code, 0);
    assert!(!squat.join("config").exists());
}

#[test]
fn snapshot_ids_prefixes_latest_and_list() {
    let w = World::with_repo();
    let src = small_source(&w);
    // 17 snapshots, so two ids share their first hex digit. Times are
    // given out of creation order; the newest by time is made in the middle.
    let mut made = Vec::new();
    for i in 0..17u32 {
        let minute = (i * 7) % 17;
        let time = format!("2024-03-04T05:{minute:02}:09.5+02:00");
        let host = format!("host-{i}");
        let msg = format!("message {i}");
        let s = w.save(&src, &["--time", &time, "--host", &host, "-m", &msg]);
        assert_eq!(s["host"], host.as_str());
        assert_eq!(s["message"], msg.as_str());
        assert_eq!(s["time"], format!("2024-03-04T03:{minute:02}:09.5Z").as_str(), "{s}");
        let id = s["id"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 8);
        assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        made.push((minute, id, host, msg));
    }

    // list --json: oldest first by the recorded time, with every key.
    let list = w.list();
    assert_eq!(list.len(), 17);
    let mut by_time = made.clone();
    by_time.sort();
    let listed: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let expected: Vec<&str> = by_time.iter().map(|m| m.1.as_str()).collect();
    assert_eq!(listed, expected, "list is not ordered by time");
    let canonical = fs::canonicalize(&src).unwrap();
    for (s, (minute, id, host, msg)) in list.iter().zip(&by_time) {
        let obj = s.as_object().unwrap();
        for key in ["id", "time", "host", "path", "files", "bytes", "added_bytes", "message", "partial", "parent"] {
            assert!(obj.contains_key(key), "list --json lacks {key}: {s}");
        }
        assert_eq!(s["id"], id.as_str());
        assert_eq!(s["time"], format!("2024-03-04T03:{minute:02}:09.5Z").as_str());
        assert_eq!(s["host"], host.as_str());
        assert_eq!(s["message"], msg.as_str());
        assert_eq!(s["path"], canonical.to_str().unwrap());
        assert_eq!(s["files"], 2);
        assert_eq!(s["bytes"], 11);
        assert_eq!(s["partial"], false);
        assert!(s["added_bytes"].as_u64().unwrap() > 0);
    }

    // latest: the newest by time, not the last made.
    let newest = &by_time.last().unwrap().1;
    assert_ne!(newest, &made.last().unwrap().1);
    let out = w.chkfs(["restore", "--json", "latest", w.path("latest").to_str().unwrap()]);
    out.ok();
    assert_eq!(out.json()["snapshot"], newest.as_str());
    assert_eq!(fs::read(w.path("latest/d/b.txt")).unwrap(), b"beta\n");

    // Unique prefixes, as short as possible, and the full id.
    let ids: Vec<&String> = made.iter().map(|m| &m.1).collect();
    for (n, id) in ids.iter().enumerate() {
        let len = (1..=8).find(|&l| ids.iter().filter(|o| o.starts_with(&id[..l])).count() == 1).unwrap();
        for spec in [&id[..len], id.as_str()] {
            let target = w.path(&format!("prefix-{n}-{}", spec.len()));
            let out = w.chkfs(["restore", "--json", spec, target.to_str().unwrap()]);
            out.ok();
            assert_eq!(out.json()["snapshot"], id.as_str(), "prefix {spec}");
        }
    }

    // An ambiguous prefix: an error listing every candidate.
    let mut by_digit: BTreeMap<char, Vec<&String>> = BTreeMap::new();
    for id in &ids {
        by_digit.entry(id.chars().next().unwrap()).or_default().push(id);
    }
    let (digit, candidates) = by_digit.iter().find(|(_, v)| v.len() >= 2).expect("17 ids share a first digit");
    let target = w.path("ambiguous");
    let out = w.chkfs(["restore", &digit.to_string(), target.to_str().unwrap()]);
    assert_ne!(out.code, 0, "an ambiguous prefix was accepted");
    assert!(out.stderr.contains("ambiguous"), "{}", out.stderr);
    for c in candidates {
        assert!(out.stderr.contains(c.as_str()), "{c} not listed: {}", out.stderr);
    }
    assert!(!target.join("a.txt").exists());

    // No match, and things that are not ids.
    let unused = (0..16u32).map(|d| format!("{d:x}")).find(|d| !by_digit.contains_key(&d.chars().next().unwrap()));
    if let Some(d) = unused {
        let out = w.chkfs(["restore", &d, w.path("none").to_str().unwrap()]);
        assert_ne!(out.code, 0);
        assert!(out.stderr.contains("no snapshot"), "{}", out.stderr);
    }
    for bad in ["", "xyz", "123456789"] {
        let out = w.chkfs(["restore", bad, w.path("bad").to_str().unwrap()]);
        assert_ne!(out.code, 0, "snapshot spec {bad:?} was accepted");
    }

    // Without DIR, save takes the current directory.
    let out = run_with_timeout(w.cmd().current_dir(&src).args(["save", "--json", "--host", "cwd"]), TIMEOUT);
    out.ok();
    assert_eq!(out.json()["path"], canonical.to_str().unwrap());
    assert_eq!(out.json()["files"], 2);

    // A bad --time is a usage error and writes nothing.
    let out = w.chkfs([OsStr::new("save"), src.as_os_str(), OsStr::new("--time"), OsStr::new("yesterday")]);
    out.expect_code(2);
    assert_eq!(w.list().len(), 18);
}
