//! stat fidelity: every entry of a mounted snapshot reports what the
//! source reported at save time (type, mode, owner, size, times with
//! nanoseconds, link count, blocks), getfattr and du agree.

use crate::common::*;
use crate::harness::*;
use crate::tree;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

#[test]
fn lstat_getfattr_and_du_match_the_source() {
    require_fuse!();
    let w = World::with_repo();
    let src = tree::build(&w);
    let id = id_of(&w.save(&src, &[]));
    let m = Mount::start(&w, &w.path("mnt"));
    let snap = m.snap(&id);

    // lstat, field by field, for every path (the root included).
    let source = walk(&src);
    let mut diffs = Vec::new();
    for rel in source.keys() {
        let name = String::from_utf8_lossy(rel).into_owned();
        let (a, b) = if rel.is_empty() {
            (src.clone(), snap.clone())
        } else {
            (src.join(OsStr::from_bytes(rel)), snap.join(OsStr::from_bytes(rel)))
        };
        let x = fs::symlink_metadata(&a).unwrap();
        let y = match fs::symlink_metadata(&b) {
            Ok(y) => y,
            Err(e) => {
                diffs.push(format!("{name:?}: lstat on the mount: {e}"));
                continue;
            }
        };
        let mut d = Vec::new();
        let mut cmp = |what: &str, p: String, q: String| {
            if p != q {
                d.push(format!("{what} {p} vs {q}"));
            }
        };
        cmp("mode", format!("{:o}", x.mode()), format!("{:o}", y.mode()));
        cmp("owner", format!("{}:{}", x.uid(), x.gid()), format!("{}:{}", y.uid(), y.gid()));
        cmp("size", x.size().to_string(), y.size().to_string());
        cmp("mtime", format!("{}.{:09}", x.mtime(), x.mtime_nsec()), format!("{}.{:09}", y.mtime(), y.mtime_nsec()));
        cmp("ctime", format!("{}.{:09}", x.ctime(), x.ctime_nsec()), format!("{}.{:09}", y.ctime(), y.ctime_nsec()));
        cmp("blocks", x.blocks().to_string(), y.blocks().to_string());
        cmp("rdev", x.rdev().to_string(), y.rdev().to_string());
        if !x.is_dir() {
            cmp("nlink", x.nlink().to_string(), y.nlink().to_string());
        }
        if y.file_type().is_symlink() {
            let target = fs::read_link(&b).unwrap();
            cmp("symlink size vs target length", y.size().to_string(), target.as_os_str().len().to_string());
        }
        if !d.is_empty() {
            diffs.push(format!("{name:?}: {}", d.join("; ")));
        }
    }
    assert!(diffs.is_empty(), "lstat differs between {} and the mount:\n  {}", src.display(), diffs.join("\n  "));
    assert_eq!(fs::symlink_metadata(snap.join("links/one")).unwrap().nlink(), 2);
    assert_eq!(
        fs::symlink_metadata(snap.join("links/one")).unwrap().ino(),
        fs::symlink_metadata(snap.join("links/two")).unwrap().ino()
    );

    // The same through stat(1), one line per path, in the same order.
    let paths = relative_paths(&src);
    let format = "--printf=%f %u %g %s %Y %y %Z %z %b %t %T %N\\n";
    let stat = |root: &std::path::Path| {
        let mut args: Vec<OsString> = vec![format.into(), "--".into()];
        args.extend(paths.iter().cloned());
        let out = sh_in(root, "stat", &args);
        out.ok();
        out.stdout_str()
    };
    let (a, b) = (stat(&src), stat(&snap));
    if a != b {
        let d: Vec<String> =
            a.lines().zip(b.lines()).filter(|(p, q)| p != q).map(|(p, q)| format!("{p}\n    vs {q}")).collect();
        panic!("stat(1) differs between the source and the mount:\n  {}", d.join("\n  "));
    }

    // getfattr -d, path by path.
    let getfattr = |root: &std::path::Path| {
        let mut args: Vec<OsString> = vec!["-h".into(), "-d".into(), "-e".into(), "hex".into(), "--".into()];
        args.extend(paths.iter().cloned());
        let out = sh_in(root, "getfattr", &args);
        out.ok();
        out.stdout_str()
    };
    let (a, b) = (getfattr(&src), getfattr(&snap));
    assert!(a.contains("user.binary=0x00ff10"), "{a}");
    assert_eq!(a, b, "getfattr -d differs between the source and the mount");

    // du, allocated and apparent.
    for extra in [&[][..], &["--apparent-size"][..]] {
        let du = |root: &std::path::Path| {
            let mut args: Vec<OsString> = vec!["-s".into(), "-B1".into()];
            args.extend(extra.iter().map(OsString::from));
            args.push(root.into());
            let out = sh("du", &args);
            out.ok();
            out.stdout_str().split_whitespace().next().unwrap().parse::<u64>().unwrap()
        };
        assert_eq!(du(&src), du(&snap), "du -s -B1 {extra:?}: source vs mount");
    }
}
