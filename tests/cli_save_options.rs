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

/// The paths a snapshot holds, restored into `out`.
fn restored_paths(w: &World, id: &str, out: &std::path::Path) -> BTreeSet<String> {
    w.restore(id, out);
    walk(out).keys().filter(|k| !k.is_empty()).map(|k| String::from_utf8(k.clone()).unwrap()).collect()
}

fn write_file(root: &std::path::Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

fn assert_paths(got: &BTreeSet<String>, expected: &[&str]) {
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        got,
        &expected,
        "unexpected: {:?}\nmissing: {:?}",
        got.difference(&expected).collect::<Vec<_>>(),
        expected.difference(got).collect::<Vec<_>>()
    );
}

/// `--git-ignore`: `.gitignore` files in every directory, each scoped to
/// its directory, with negation, anchoring and `dir/` patterns; those
/// above the source up to the top of the work tree, and its
/// `.git/info/exclude`.
#[test]
fn git_ignore_honours_gitignore_files_and_info_exclude() {
    let w = World::with_repo();
    let wt = w.path("wt");
    let src = wt.join("proj");
    write_file(&wt, ".git/info/exclude", b"# local excludes\nsecret.key\n");
    write_file(&wt, ".git/HEAD", b"ref: refs/heads/main\n");
    write_file(&wt, ".gitignore", b"*.o\n!keep.o\nbuild/\n/only-top.txt\n");
    let files = [
        ("a.o", "ignored by the work tree's top .gitignore"),
        ("keep.o", "re-included by !keep.o"),
        ("build/x", "ignored by build/"),
        ("sub/build", "a file named build is not a directory"),
        ("secret.key", "ignored by .git/info/exclude"),
        ("sub/secret.key", "ignored by .git/info/exclude at any depth"),
        ("only-top.txt", "kept: anchored at the top of the work tree"),
        (".gitignore", "*.log\n!important.log\n/anchored\n"),
        ("x.log", "ignored by proj/.gitignore"),
        ("important.log", "re-included"),
        ("anchored", "ignored: anchored at proj"),
        ("sub/anchored", "kept: the pattern is anchored at proj"),
        ("sub/.gitignore", "!*.o\nlocal/\n"),
        ("sub/z.o", "re-included by sub/.gitignore"),
        ("sub/local/f", "ignored by local/ in sub"),
        ("local/f", "kept: sub's rules do not apply to its parent"),
        ("sub/deeper/y.log", "ignored by proj/.gitignore"),
        ("sub/deeper/y.txt", "kept"),
    ];
    for (rel, content) in files {
        write_file(&src, rel, content.as_bytes());
    }

    let saved = w.save(&src, &["--git-ignore"]);
    let got = restored_paths(&w, saved["id"].as_str().unwrap(), &w.path("out"));
    assert_paths(
        &got,
        &[
            ".gitignore",
            "keep.o",
            "only-top.txt",
            "important.log",
            "local",
            "local/f",
            "sub",
            "sub/.gitignore",
            "sub/anchored",
            "sub/build",
            "sub/z.o",
            "sub/deeper",
            "sub/deeper/y.txt",
        ],
    );
    assert_eq!(saved["partial"], false, "{saved}");

    // Without --git-ignore, .gitignore files are ordinary files.
    let all = w.save(&src, &[]);
    assert_eq!(all["files"], files.len(), "{all}");

    // Saving the top of the work tree: its own .gitignore applies from
    // the root, and .git itself is saved.
    let top = w.save(&wt, &["--git-ignore"]);
    let got = restored_paths(&w, top["id"].as_str().unwrap(), &w.path("out-top"));
    assert!(got.contains(".git/HEAD"), "{got:?}");
    assert!(got.contains(".git/info/exclude"), "{got:?}");
    assert!(got.contains("proj/keep.o") && !got.contains("proj/a.o"), "{got:?}");
    assert!(!got.contains("proj/secret.key") && !got.contains("proj/build"), "{got:?}");
    // Anchored at the top of the work tree now.
    assert!(!got.contains("proj/anchored") && got.contains("proj/only-top.txt"), "{got:?}");
}

/// With --git-ignore, nothing above the top of the work tree applies
/// (its `.git` ends the search), and the rules of the work tree's
/// directories above the source apply scoped to their own directories.
#[test]
fn git_ignore_reads_nothing_above_the_work_tree() {
    let w = World::with_repo();
    let outer = w.path("outer");
    write_file(&outer, ".gitignore", b"*\n");
    let wt = outer.join("wt");
    fs::create_dir_all(wt.join(".git")).unwrap();
    write_file(&wt, "mid/.gitignore", b"/src/top.tmp\n/src/only-mid.txt\n");
    let src = wt.join("mid/src");
    write_file(&src, "kept.txt", b"kept");
    write_file(&src, ".gitignore", b"*.tmp\n!top.tmp\n");
    write_file(&src, "x.tmp", b"ignored");
    write_file(&src, "only-mid.txt", b"ignored by mid/.gitignore");
    write_file(&src, "top.tmp", b"re-included by the source's own .gitignore, which overrides mid's");
    let saved = w.save(&src, &["--git-ignore"]);
    let got = restored_paths(&w, saved["id"].as_str().unwrap(), &w.path("out"));
    assert_paths(&got, &[".gitignore", "kept.txt", "top.tmp"]);
}

/// `--exclude-file FILE`: gitignore syntax, anchored at the source,
/// repeatable; a missing file is a usage error and saves nothing.
#[test]
fn exclude_files_are_read_and_anchored_at_the_source() {
    let w = World::with_repo();
    let src = w.path("src");
    for rel in ["top.tmp", "sub/top.tmp", "a.bak", "sub/b.bak", "keep.bak", "cache/c", "sub/cache/c", "notes", "x.one"]
    {
        write_file(&src, rel, rel.as_bytes());
    }
    let patterns = w.path("excludes.txt");
    fs::write(&patterns, "# comment\n\n/top.tmp\n*.bak\n!keep.bak\r\ncache/\n").unwrap();
    let more = w.path("more.txt");
    fs::write(&more, "*.one\n").unwrap();
    let (p, m) = (patterns.to_str().unwrap(), more.to_str().unwrap());
    let saved = w.save(&src, &["--exclude-file", p, "--exclude-file", m]);
    let got = restored_paths(&w, saved["id"].as_str().unwrap(), &w.path("out"));
    assert_paths(&got, &["keep.bak", "notes", "sub", "sub/top.tmp"]);

    let missing = w.path("no-such-file");
    let out = w.chkfs([OsStr::new("save"), src.as_os_str(), OsStr::new("--exclude-file"), missing.as_os_str()]);
    out.expect_code(2);
    assert!(out.stderr.contains("no-such-file"), "{}", out.stderr);
    assert_eq!(w.list().len(), 1);
}

/// A .gitignore that is a symlink is not followed, a FIFO is not blocked
/// on, one over 1 MiB is not read: each is a warning naming it (the
/// snapshot is partial), and the save goes on without its patterns.
#[test]
fn hostile_gitignore_files_are_neither_followed_nor_blocked_on() {
    let w = World::with_repo();
    let src = w.path("src");
    let elsewhere = w.path("elsewhere-ignore");
    fs::write(&elsewhere, "*\n").unwrap();
    write_file(&src, "link/kept", b"the symlink's target is not read");
    std::os::unix::fs::symlink(&elsewhere, src.join("link/.gitignore")).unwrap();
    write_file(&src, "fifo/kept", b"the FIFO is not opened for a blocking read");
    let fifo = src.join("fifo/.gitignore");
    let made = sh("mkfifo", [fifo.as_os_str()]);
    assert_eq!(made.code, 0, "mkfifo: {}", made.stderr);
    write_file(&src, "huge/kept", b"the huge file is not read");
    let mut huge = b"*\n".to_vec();
    huge.resize(2 << 20, b'#');
    write_file(&src, "huge/.gitignore", &huge);

    let out = w.chkfs([OsStr::new("save"), OsStr::new("--json"), OsStr::new("--git-ignore"), src.as_os_str()]);
    out.expect_code(3);
    let saved = out.json();
    let errors = saved["errors"].to_string();
    for dir in ["link", "fifo", "huge"] {
        assert!(errors.contains(&format!("{dir}/.gitignore")), "{dir}: {errors}");
    }
    assert!(errors.contains("larger than"), "{errors}");
    let got = restored_paths(&w, saved["id"].as_str().unwrap(), &w.path("out"));
    for kept in ["link/kept", "fifo/kept", "huge/kept", "link/.gitignore", "fifo/.gitignore", "huge/.gitignore"] {
        assert!(got.contains(kept), "{kept}: {got:?}");
    }
}

/// `save --dry-run` decides as a save would and writes nothing: the
/// repository's files are the same before and after, on a first save and
/// on a save with a parent, and on a repository it may only read.
#[test]
fn dry_run_writes_nothing_and_counts_what_a_save_would_read() {
    let w = World::with_repo();
    let src = w.path("src");
    write_file(&src, "a", &random_bytes(1000, 1));
    write_file(&src, "sub/b", &random_bytes(2000, 2));
    write_file(&src, "sub/c", &random_bytes(3000, 3));
    write_file(&src, "ignored.tmp", &random_bytes(5000, 4));
    write_file(&src, ".gitignore", b"*.tmp\n");
    let gi_len = fs::metadata(src.join(".gitignore")).unwrap().len();
    let dry = |w: &World| {
        let out = w.chkfs([
            OsStr::new("save"),
            OsStr::new("--dry-run"),
            OsStr::new("--json"),
            OsStr::new("--git-ignore"),
            src.as_os_str(),
        ]);
        out.ok();
        assert!(out.stderr.contains("dry run"), "{}", out.stderr);
        out.json()
    };

    let before = walk(&w.repo);
    let first = dry(&w);
    assert_eq!(walk(&w.repo), before, "a dry run changed the repository");
    assert!(w.list().is_empty());
    assert_eq!(first["dry_run"], true, "{first}");
    assert_eq!(first["parent"], serde_json::Value::Null, "{first}");
    assert_eq!(first["files"], 4, "{first}");
    assert_eq!(first["dirs"], 2, "{first}");
    assert_eq!(first["bytes"], 6000 + gi_len, "{first}");
    assert_eq!(first["files_to_read"], 4, "{first}");
    assert_eq!(first["bytes_to_read"], 6000 + gi_len, "{first}");
    assert_eq!(first["added_bytes_at_most"], 6000 + gi_len, "{first}");

    let saved = w.save(&src, &["--git-ignore"]);
    assert_eq!(saved["files"], first["files"], "{saved}");
    assert_eq!(saved["bytes"], first["bytes"], "{saved}");
    assert_eq!(saved["bytes_read"], first["bytes_to_read"], "{saved}");

    // One file changed: only it would be read.
    write_file(&src, "sub/b", &random_bytes(2500, 5));
    let before = walk(&w.repo);
    let second = dry(&w);
    assert_eq!(walk(&w.repo), before, "a dry run changed the repository");
    assert_eq!(second["parent"], saved["id"], "{second}");
    assert_eq!(second["files"], 4, "{second}");
    assert_eq!(second["bytes"], 6500 + gi_len, "{second}");
    assert_eq!(second["files_to_read"], 1, "{second}");
    assert_eq!(second["bytes_to_read"], 2500, "{second}");
    assert_eq!(w.list().len(), 1);

    // On a repository that cannot be written (as another user, every
    // directory and file without write permission).
    chmod(w.dir.path(), 0o755);
    chown_r(&w.repo, 65534, 65534);
    let ro = sh("chmod", [OsStr::new("-R"), OsStr::new("a-w"), w.repo.as_os_str()]);
    assert_eq!(ro.code, 0, "{}", ro.stderr);
    let before = walk(&w.repo);
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", CHKFS])
        .env_remove("CHKFS_REPO")
        .env("XDG_DATA_HOME", &w.xdg)
        .env("XDG_CACHE_HOME", w.path("no-cache"))
        .env("HOME", &w.home)
        .arg("--repo")
        .arg(&w.repo)
        .args([
            OsStr::new("save"),
            OsStr::new("--dry-run"),
            OsStr::new("--json"),
            OsStr::new("--git-ignore"),
            src.as_os_str(),
        ]);
    let out = run_with_timeout(&mut cmd, TIMEOUT);
    // The source must be readable by uid 65534 for this part.
    if out.code == 3 && out.stderr.contains("Permission denied") {
        eprintln!("dry run as uid 65534 could not read the source; read-only part not checked: {}", out.stderr);
    } else {
        out.ok();
        let third = out.json();
        assert_eq!(third["files_to_read"], 1, "{third}");
    }
    assert_eq!(walk(&w.repo), before, "a dry run changed a read-only repository");
}
