//! What `save` leaves out and when it refuses: unreadable files (partial
//! snapshots), the writer lock, ignore files, --exclude and the
//! repository itself.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::process::Command;

#[test]
fn unreadable_file_makes_a_partial_snapshot() {
    let w = World::with_repo();
    // uid 65534 must reach the repository and the source.
    chmod(w.dir.path(), 0o755);
    chown_r(&w.repo, 65534, 65534);
    let src = w.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("readable.txt"), "anyone may read this\n").unwrap();
    fs::write(src.join("sub/also.txt"), random_bytes(40_000, 9)).unwrap();
    fs::write(src.join("secret"), "root only\n").unwrap();
    chmod(&src.join("secret"), 0o000);
    fs::create_dir_all(src.join("zzz-locked")).unwrap();
    fs::write(src.join("zzz-locked/inside"), "hidden\n").unwrap();
    chmod(&src.join("zzz-locked"), 0o000);

    // Every ancestor of CARGO_TARGET_TMPDIR must be searchable by others.
    let reach = sh(
        "setpriv",
        [
            OsStr::new("--reuid=65534"),
            OsStr::new("--regid=65534"),
            OsStr::new("--clear-groups"),
            OsStr::new("test"),
            OsStr::new("-r"),
            src.join("readable.txt").as_os_str(),
        ],
    );
    assert_eq!(
        reach.code,
        0,
        "uid 65534 cannot reach {}: make the directories above CARGO_TARGET_TMPDIR searchable",
        src.display()
    );

    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", CHKFS])
        .env_remove("CHKFS_REPO")
        .env_remove("CHKFS_FAULT_ABORT_AFTER_WRITES")
        .env("XDG_DATA_HOME", &w.xdg)
        .env("HOME", &w.home)
        .arg("--repo")
        .arg(&w.repo)
        .args([OsStr::new("save"), OsStr::new("--json"), src.as_os_str()]);
    let out = run_with_timeout(&mut cmd, TIMEOUT);
    out.expect_code(3);
    let saved = out.json();
    assert_eq!(saved["partial"], true, "{saved}");
    let errors: Vec<&str> = saved["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("secret")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("zzz-locked")), "{errors:?}");
    assert!(out.stderr.contains("secret"), "{}", out.stderr);

    let list = w.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["partial"], true, "{:?}", list);
    assert_eq!(list[0]["id"], saved["id"]);

    // Everything else restores exactly.
    let out_dir = w.path("out");
    w.restore(saved["id"].as_str().unwrap(), &out_dir);
    assert!(!out_dir.join("secret").exists(), "an unreadable file was restored");
    assert!(!out_dir.join("zzz-locked/inside").exists());
    assert_diff_equal(&src, &out_dir, &["secret", "zzz-locked"]);
    let diffs: Vec<String> = tree_differences(&src, &out_dir, true)
        .into_iter()
        .filter(|d| !d.contains("secret") && !d.contains("zzz-locked"))
        .collect();
    assert!(diffs.is_empty(), "{diffs:?}");

    let (code, report, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
    assert_eq!(report["ok"], true);
}

#[test]
fn ignore_files_excludes_and_the_repository_itself_are_left_out() {
    let mut w = World::new();
    let src = w.path("src");
    // The repository lives inside the saved directory.
    w.repo = src.join("repo-inside");
    w.chkfs(["init"]).ok();

    let file = |rel: &str, content: &str| {
        let p = src.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    };
    file(".chkfsignore", "*.log\n!keep.log\n/anchored.txt\n");
    file("anchored.txt", "ignored: anchored at the top\n");
    file("sub2/anchored.txt", "kept: the pattern is anchored at the top\n");
    file("sub1/only-here.txt", "ignored by /only-here.txt in sub1\n");
    file("sub1/deeper/only-here.txt", "kept: anchored to sub1\n");
    file("a.log", "ignored\n");
    file("keep.log", "kept by !keep.log\n");
    file("x.tmp", "excluded by --exclude\n");
    file("notes.txt", "kept\n");
    file("build/out.o", "a top-level build/ is not ignored\n");
    file("cache/c", "excluded by --exclude cache/\n");
    file("sub1/.chkfsignore", "build/\n!special.log\n/only-here.txt\n");
    file("sub1/build/obj", "ignored by sub1/.chkfsignore\n");
    file("sub1/deep.log", "ignored by the root file\n");
    file("sub1/keep.log", "kept\n");
    file("sub1/special.log", "re-included by the deeper file\n");
    file("sub1/y.tmp", "excluded\n");
    file("sub1/deeper/build", "a file named build is not a directory\n");
    file("sub1/deeper/nested/build/obj", "ignored: rules apply below\n");
    file("sub1/deeper/nested/kept", "kept\n");
    file("sub2/build/file.txt", "sub1's rules do not apply to its sibling\n");
    file("sub2/z.log", "ignored by the root file\n");
    file("sub2/cache/c", "excluded at any depth\n");
    file("sub2/special.log", "sub1's re-include does not apply here\n");

    let save = || w.save(&src, &["--exclude", "*.tmp", "-e", "cache/"]);
    let first = save();
    let out = w.path("out");
    w.restore(first["id"].as_str().unwrap(), &out);
    let got: BTreeSet<String> =
        walk(&out).keys().filter(|k| !k.is_empty()).map(|k| String::from_utf8(k.clone()).unwrap()).collect();
    let expected: BTreeSet<String> = [
        ".chkfsignore",
        "keep.log",
        "notes.txt",
        "build",
        "build/out.o",
        "sub1",
        "sub1/.chkfsignore",
        "sub1/keep.log",
        "sub1/special.log",
        "sub1/deeper",
        "sub1/deeper/build",
        "sub1/deeper/nested",
        "sub1/deeper/nested/kept",
        "sub2",
        "sub2/build",
        "sub2/build/file.txt",
        "sub2/anchored.txt",
        "sub1/deeper/only-here.txt",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(
        got,
        expected,
        "unexpected: {:?}\nmissing: {:?}",
        got.difference(&expected).collect::<Vec<_>>(),
        expected.difference(&got).collect::<Vec<_>>()
    );
    for p in &expected {
        let (a, b) = (src.join(p), out.join(p));
        if a.is_file() {
            assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{p}");
        }
    }
    assert_eq!(first["files"], 12, "{first}");

    // Saving again, with the repository grown inside the source, reads
    // nothing: the repository is not part of the tree.
    let second = save();
    assert_eq!(second["bytes_read"], 0, "{second}");
    assert_eq!(second["files"], 12, "{second}");
    assert!(!out.join("repo-inside").exists());
    let (code, _, o) = w.check();
    assert_eq!(code, 0, "{}", o.stderr);
}

/// "The repository itself is never saved" (chkfs(1)), also when the
/// directory given to save is the repository or lies inside it.
#[test]
fn saving_the_repository_itself_saves_none_of_it() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), random_bytes(10_000, 1)).unwrap();
    w.save(&src, &[]);
    for dir in [w.repo.clone(), w.repo.join("packs")] {
        let out = w.chkfs([OsStr::new("save"), OsStr::new("--json"), dir.as_os_str()]);
        if out.code == 0 {
            let saved = out.json();
            assert_eq!(saved["files"], 0, "save {} stored repository files in the repository: {saved}", dir.display());
        } else {
            assert_eq!(w.list().len(), 1, "a refused save wrote a snapshot");
        }
    }
}
