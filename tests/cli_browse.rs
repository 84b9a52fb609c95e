//! `chkfs ls` and `chkfs dump`: a snapshot looked into without mounting.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

fn saved_tree(w: &World) -> (std::path::PathBuf, String) {
    let src = w.path("src");
    fs::create_dir_all(src.join("dir/sub")).unwrap();
    fs::create_dir_all(src.join("empty")).unwrap();
    fs::write(src.join("dir/a.txt"), "alpha\n").unwrap();
    fs::write(src.join("dir/sub/big.bin"), random_bytes(700_000, 9)).unwrap();
    fs::hard_link(src.join("dir/a.txt"), src.join("dir/sub/a-again.txt")).unwrap();
    std::os::unix::fs::symlink("../dir/a.txt", src.join("empty/../link")).unwrap();
    sh("mkfifo", [src.join("fifo").as_os_str()]).ok();
    let sparse = fs::File::create(src.join("sparse")).unwrap();
    sparse.set_len(5 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"end", (5 << 20) - 3).unwrap();
    chmod(&src.join("dir/a.txt"), 0o640);
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    (src, id)
}

#[test]
fn ls_lists_exactly_the_entries_of_a_directory_or_all_under_it() {
    let w = World::with_repo();
    let (_src, id) = saved_tree(&w);
    let paths = |args: &[&str]| -> BTreeSet<String> {
        let out = w.chkfs(args);
        out.ok();
        out.stdout_str().lines().map(str::to_string).collect()
    };
    let top: BTreeSet<String> = ["/dir", "/empty", "/fifo", "/link", "/sparse"].iter().map(|s| s.to_string()).collect();
    assert_eq!(paths(&["ls", &id]), top);
    let all = paths(&["ls", "-R", &id]);
    for p in ["/dir/a.txt", "/dir/sub", "/dir/sub/big.bin", "/dir/sub/a-again.txt"] {
        assert!(all.contains(p), "{p} missing from {all:?}");
    }
    assert_eq!(all.len(), 9);
    assert_eq!(paths(&["ls", &format!("{id}:dir/sub")]).len(), 2);

    let out = w.chkfs(["ls", "-l", &format!("{id}:/")]);
    out.ok();
    let text = out.stdout_str();
    assert!(text.lines().any(|l| l.starts_with("lrwxrwxrwx") && l.ends_with("/link -> ../dir/a.txt")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("prw") && l.ends_with("/fifo")), "{text}");
    let out = w.chkfs(["ls", "-l", &format!("{id}:dir/a.txt")]);
    assert!(out.stdout_str().starts_with("-rw-r-----"), "{}", out.stdout_str());

    let json = w.chkfs(["ls", "--json", "-R", &id]).json();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 9);
    let big = rows.iter().find(|r| r["path"] == "/dir/sub/big.bin").unwrap();
    assert_eq!(big["size"], 700_000);
    assert_eq!(big["type"], "file");

    let out = w.chkfs(["ls", &format!("{id}:no/such")]);
    assert_ne!(out.code, 0);
    // Paths are made plain; a trailing / asks for a directory.
    assert_eq!(paths(&["ls", &format!("{id}:./dir/sub/../sub/")]), paths(&["ls", &format!("{id}:dir/sub")]));
    assert_ne!(w.chkfs(["ls", &format!("{id}:dir/a.txt/")]).code, 0);
    assert_eq!(w.chkfs(["ls", &format!("{id}:../x")]).code, 2);

    // A reader that stops early (700 kB into a 64 kB pipe) is no error
    // worth a message.
    let script = format!("{CHKFS} --repo '{}' dump {id}:dir/sub/big.bin | head -c 10 | wc -c", w.repo.display());
    let head = sh("sh", ["-c", &script]);
    assert_eq!(head.stdout_str().trim(), "10");
    assert!(!head.stderr.contains("error"), "{}", head.stderr);
}

#[test]
fn dump_writes_a_file_and_a_directory_as_a_tar_stream() {
    let w = World::with_repo();
    let (src, id) = saved_tree(&w);
    let out = w.chkfs(["dump", &format!("{id}:dir/sub/big.bin")]);
    out.ok();
    assert_eq!(out.stdout, fs::read(src.join("dir/sub/big.bin")).unwrap());
    let out = w.chkfs(["dump", &format!("{id}:sparse")]);
    assert_eq!(out.stdout, fs::read(src.join("sparse")).unwrap());

    // dump | tar x restores the tree: content, modes, times, links.
    let target = w.path("untarred");
    fs::create_dir_all(&target).unwrap();
    let tar_file = w.path("snap.tar");
    let out = w.chkfs(["dump", &id]);
    out.ok();
    fs::write(&tar_file, &out.stdout).unwrap();
    let untar = run_with_timeout(
        Command::new("tar").arg("xpf").arg(&tar_file).arg("-C").arg(&target).stdin(Stdio::null()),
        TIMEOUT,
    );
    assert_eq!(untar.code, 0, "tar x: {}", untar.stderr);
    assert_diff_equal(&src, &target, &["fifo"]);
    let names = sh("tar", [std::ffi::OsStr::new("tf"), tar_file.as_os_str()]).stdout_str();
    assert!(names.lines().any(|l| l == "dir/a.txt"), "{names}");
    assert!(!names.lines().any(|l| l.starts_with("./")), "names of a root dump carry ./:\n{names}");
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(target.join("fifo")).unwrap().file_type().is_fifo());
    let a = fs::metadata(target.join("dir/a.txt")).unwrap();
    let again = fs::metadata(target.join("dir/sub/a-again.txt")).unwrap();
    assert_eq!(a.ino(), again.ino(), "a hard link came out as a copy");
    assert_eq!(a.mode() & 0o7777, 0o640);
    assert_eq!(a.mtime(), fs::metadata(src.join("dir/a.txt")).unwrap().mtime());
    assert_eq!(fs::read_link(target.join("link")).unwrap(), std::path::Path::new("../dir/a.txt"));

    // A subdirectory is archived under its own name.
    let listing = {
        let out = w.chkfs(["dump", &format!("{id}:dir/sub")]);
        out.ok();
        fs::write(&tar_file, &out.stdout).unwrap();
        sh("tar", [std::ffi::OsStr::new("tf"), tar_file.as_os_str()])
    };
    let names: BTreeSet<String> = listing.stdout_str().lines().map(|l| l.trim_end_matches('/').to_string()).collect();
    let want: BTreeSet<String> = ["sub", "sub/a-again.txt", "sub/big.bin"].iter().map(|s| s.to_string()).collect();
    assert_eq!(names, want);
}
