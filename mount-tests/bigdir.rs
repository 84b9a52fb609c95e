//! A directory of 100,000 entries: listings through many readdir calls
//! are complete, without duplicates.

use crate::common::*;
use crate::harness::*;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;

const N: usize = 100_000;

#[test]
fn directory_of_100k_files_lists_completely() {
    require_fuse!();
    let w = World::with_repo();
    let src = w.path("src");
    let big = src.join("bigdir");
    fs::create_dir_all(&big).unwrap();
    for i in 0..N {
        // Names of varying length, so entries straddle reply buffers.
        let name = format!("f{i:06}{}", "x".repeat(i % 37));
        fs::File::create(big.join(name)).unwrap();
    }
    fs::write(src.join("beside"), "b\n").unwrap();
    let want: BTreeSet<Vec<u8>> =
        fs::read_dir(&big).unwrap().map(|e| e.unwrap().file_name().as_bytes().to_vec()).collect();
    assert_eq!(want.len(), N);
    let id = id_of(&w.save(&src, &[]));

    let m = Mount::start(&w, &w.path("mnt"));
    let dir = m.snap(&id).join("bigdir");

    let ls = sh("ls", [OsStr::new("-f"), dir.as_os_str()]);
    ls.ok();
    let lines: Vec<&[u8]> = ls.stdout.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), N + 2, "ls -f | wc -l");
    let got: BTreeSet<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
    assert_eq!(got.len(), N + 2, "ls -f listed some names twice");
    let mut expect = want.clone();
    expect.insert(b".".to_vec());
    expect.insert(b"..".to_vec());
    if got != expect {
        let missing: Vec<_> =
            expect.difference(&got).take(5).map(|n| String::from_utf8_lossy(n).into_owned()).collect();
        let extra: Vec<_> = got.difference(&expect).take(5).map(|n| String::from_utf8_lossy(n).into_owned()).collect();
        panic!("ls -f names differ from the source: missing {missing:?}..., extra {extra:?}...");
    }

    let find = sh("find", [dir.as_os_str(), OsStr::new("-type"), OsStr::new("f")]);
    find.ok();
    let found: Vec<&[u8]> = find.stdout.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(found.len(), N, "find -type f | wc -l");
    let names: BTreeSet<Vec<u8>> = found.iter().map(|l| l.rsplit(|&c| c == b'/').next().unwrap().to_vec()).collect();
    assert_eq!(names, want, "find's names differ from the source");

    // And in-process, through readdir(3).
    let rd: Vec<Vec<u8>> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().as_bytes().to_vec()).collect();
    assert_eq!(rd.len(), N);
    assert_eq!(rd.into_iter().collect::<BTreeSet<_>>(), want);
}
