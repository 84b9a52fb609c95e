//! The mount against forged and old repositories, and what it shows to
//! whom: a format-1 repository reads exactly; trees that contradict their
//! chunks or hard-link groups whose names disagree give EIO, never bytes
//! the tree does not describe; a record with an impossible time is left
//! out, not a crash; `trusted.*` attributes are shown only to callers that
//! could read them natively.

use crate::common::forge::*;
use crate::common::manifest::{copy_repo_v1, differences, repo_v1_manifest};
use crate::common::*;
use crate::harness::*;
use chkfs::format::tree::{Extent, Part};
use std::ffi::OsStr;
use std::fs;

#[test]
fn a_format_1_repository_mounts_exactly() {
    require_fuse!();
    let w = World::new();
    copy_repo_v1(&w.repo);
    let m = Mount::start(&w, &w.path("mnt"));
    for (name, snap) in repo_v1_manifest().as_object().unwrap() {
        let id = snap["id"].as_str().unwrap();
        let d = differences(&m.snap(id), &snap["tree"]);
        assert!(d.is_empty(), "mounted snapshot {name} ({id}) differs from its manifest:\n  {}", d.join("\n  "));
    }
}

fn cat(path: &std::path::Path) -> Out {
    sh("cat", [path.as_os_str()])
}

#[test]
fn contradicting_trees_give_eio_and_nothing_else() {
    require_fuse!();
    let w = World::with_repo();
    let mut f = Forge::open(&w.repo);
    let content = random_bytes(5000, 3);
    let chunk = f.chunk(&content);
    let Extent::Data { id, .. } = chunk else { unreachable!() };
    let (x, y) = (f.chunk(b"one content\n"), f.chunk(b"another content\n"));
    let root = f.tree(vec![
        file(b"claims-less", vec![Extent::Data { id, len: 100 }]),
        file(b"claims-more", vec![Extent::Data { id, len: 9000 }]),
        linked(file(b"link-a", vec![x]), 9, 2),
        linked(file(b"link-b", vec![y]), 9, 2),
        file(b"true", vec![chunk]),
    ]);
    let repo = f.commit();
    let snap = snapshot(&repo, root, 6).to_hex();
    let mut m = Mount::start(&w, &w.path("mnt"));
    let dir = m.snap(&snap);
    assert_eq!(fs::read(dir.join("true")).unwrap(), content);
    for name in ["claims-less", "claims-more"] {
        let c = cat(&dir.join(name));
        assert_ne!(c.code, 0, "{name}: read {} bytes", c.stdout.len());
        assert!(c.stderr.contains("Input/output error"), "{name}: {}", c.stderr);
        assert!(c.stdout.is_empty(), "{name}: {} bytes served", c.stdout.len());
    }
    // Both names looked up: the group is known to disagree, neither reads.
    let _ = fs::symlink_metadata(dir.join("link-a"));
    let _ = fs::symlink_metadata(dir.join("link-b"));
    for name in ["link-a", "link-b"] {
        let c = cat(&dir.join(name));
        assert_ne!(c.code, 0, "{name} read as {:?}", String::from_utf8_lossy(&c.stdout));
        assert!(c.stdout.is_empty(), "{name}: served bytes");
    }
    assert!(m.is_running(), "the mount survived: {}", m.stderr());
}

/// One part shared by a sound split tree and one that miscounts it: the
/// sound directory lists and reads, the other gives EIO, in either order.
#[test]
fn a_forged_split_tree_gives_eio_beside_a_sound_one_sharing_its_part() {
    require_fuse!();
    let w = World::with_repo();
    let mut f = Forge::open(&w.repo);
    let c = f.chunk(b"x\n");
    let first = f.tree(vec![file(b"a", vec![c]), file(b"b", vec![c])]);
    let second = f.tree(vec![file(b"c", vec![c])]);
    let part = |first: &[u8], entries: u32, tree| Part { first: first.to_vec(), entries, tree };
    let bad = f.split_tree(vec![part(b"a", 3, first), part(b"c", 1, second)]);
    let good = f.split_tree(vec![part(b"a", 2, first), part(b"c", 1, second)]);
    let root = f.tree(vec![dir(b"bad", bad), dir(b"good", good)]);
    let repo = f.commit();
    let snap = snapshot(&repo, root, 6).to_hex();
    let mut m = Mount::start(&w, &w.path("mnt"));
    let dir = m.snap(&snap);
    for round in 0..2 {
        let ls = sh("ls", [dir.join("good").as_os_str()]);
        ls.ok();
        assert_eq!(ls.stdout_str(), "a\nb\nc\n", "round {round}");
        assert_eq!(fs::read(dir.join("good/b")).unwrap(), b"x\n");
        let bad_ls = sh("ls", [dir.join("bad").as_os_str()]);
        assert_ne!(bad_ls.code, 0, "round {round}: listed {}", bad_ls.stdout_str());
        assert!(bad_ls.stderr.contains("Input/output error"), "{}", bad_ls.stderr);
        let e = fs::symlink_metadata(dir.join("bad/a")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "round {round}: bad/a");
    }
    assert!(m.is_running(), "the mount survived: {}", m.stderr());
}

#[test]
fn a_record_with_an_impossible_time_is_left_out() {
    require_fuse!();
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"fine\n").unwrap();
    let good = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let repo = chkfs::store::Repository::open_local(&w.repo).unwrap();
    let mut rec = repo.read_snapshot(chkfs::format::SnapshotId::from_hex(&good).unwrap()).unwrap().unwrap();
    for (name, secs) in [("0badc0de", i64::MAX), ("0badc0df", i64::MIN)] {
        rec.time.secs = secs;
        fs::write(
            w.repo.join(format!("snapshots/{name}.snap")),
            chkfs::format::records::encode_snapshot(&rec).unwrap(),
        )
        .unwrap();
    }
    let mut m = Mount::start(&w, &w.path("mnt"));
    let listed = sh("ls", [m.mnt.join("snapshots").as_os_str()]);
    listed.ok();
    assert!(listed.stdout_str().contains(&good));
    assert!(!listed.stdout_str().contains("0badc0de"), "{}", listed.stdout_str());
    sh("ls", [m.mnt.join("by-time").as_os_str()]).ok();
    assert_eq!(fs::read(m.snap(&good).join("f")).unwrap(), b"fine\n");
    assert!(m.is_running(), "{}", m.stderr());
    assert!(m.stderr().contains("0badc0de"), "the mount says why: {}", m.stderr());
}

#[test]
fn trusted_attributes_only_for_callers_who_could_read_them() {
    require_fuse!();
    let w = World::with_repo();
    // uid 65534 must reach the mount point.
    chmod(w.dir.path(), 0o755);
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    let f = src.join("f");
    fs::write(&f, b"x").unwrap();
    sh(
        "setfattr",
        [OsStr::new("-n"), OsStr::new("trusted.secret"), OsStr::new("-v"), OsStr::new("hidden"), f.as_os_str()],
    )
    .ok();
    sh("setfattr", [OsStr::new("-n"), OsStr::new("user.open"), OsStr::new("-v"), OsStr::new("shown"), f.as_os_str()])
        .ok();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    let m = Mount::start_with(&w, &w.path("mnt"), &["-o", "allow_other"]);
    let mounted = m.snap(&id).join("f");
    let as_root = sh("getfattr", [OsStr::new("-d"), OsStr::new("-m"), OsStr::new("-"), mounted.as_os_str()]);
    assert!(as_root.stdout_str().contains("trusted.secret=\"hidden\""), "root sees it: {}", as_root.stdout_str());
    let nobody = |args: &[&OsStr]| as_nobody(OsStr::new("getfattr"), args);
    let listed = nobody(&[OsStr::new("-d"), OsStr::new("-m"), OsStr::new("-"), mounted.as_os_str()]);
    assert!(listed.stdout_str().contains("user.open=\"shown\""), "{} {}", listed.stdout_str(), listed.stderr);
    assert!(!listed.stdout_str().contains("trusted"), "an unprivileged caller sees {}", listed.stdout_str());
    let asked = nobody(&[OsStr::new("-n"), OsStr::new("trusted.secret"), mounted.as_os_str()]);
    assert_ne!(asked.code, 0);
    assert!(!asked.stdout_str().contains("hidden"));
    // Root of a user namespace the caller made itself: no privilege here.
    let in_namespace = sh(
        "setpriv",
        [
            OsStr::new("--reuid=65534"),
            OsStr::new("--regid=65534"),
            OsStr::new("--clear-groups"),
            OsStr::new("unshare"),
            OsStr::new("-U"),
            OsStr::new("-r"),
            OsStr::new("getfattr"),
            OsStr::new("-d"),
            OsStr::new("-m"),
            OsStr::new("-"),
            mounted.as_os_str(),
        ],
    );
    assert!(in_namespace.stdout_str().contains("user.open"), "{} {}", in_namespace.stdout_str(), in_namespace.stderr);
    assert!(!in_namespace.stdout_str().contains("trusted"), "{}", in_namespace.stdout_str());
}

/// A POSIX access ACL in its xattr form: owner rw-, user `denied` ---,
/// group r--, mask r--, others r--.
fn acl_denying(denied: u32) -> String {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in
        [(0x01u16, 6u16, u32::MAX), (0x02, 0, denied), (0x04, 4, u32::MAX), (0x10, 4, u32::MAX), (0x20, 4, u32::MAX)]
    {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    format!("0x{}", v.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn setfattr(path: &std::path::Path, name: &str, value: &str) {
    sh("setfattr", [OsStr::new("-n"), OsStr::new(name), OsStr::new("-v"), OsStr::new(value), path.as_os_str()]).ok();
}

/// `cmd args…` run as user and group 65534, without supplementary groups.
fn as_nobody(cmd: &OsStr, args: &[&OsStr]) -> Out {
    let mut all: Vec<&OsStr> = ["--reuid=65534", "--regid=65534", "--clear-groups"].map(OsStr::new).to_vec();
    all.push(cmd);
    all.extend_from_slice(args);
    sh("setpriv", all)
}

/// The kernel enforces saved modes and ACLs, caches the ACL answers (a
/// repeated `ls -l` costs no round trip per entry), `ls -l` still marks
/// exactly the entries that have an ACL, and a saved security label is
/// shown while an entry without one answers "not supported".
#[test]
fn saved_permissions_and_acls_hold_and_ls_marks_them() {
    require_fuse!();
    let w = World::with_repo();
    chmod(w.dir.path(), 0o755);
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    chmod(&src, 0o755);
    // Sorted so that ACL-less entries come first in `ls`.
    for name in ["a-plain", "b-private", "c-acl", "d-labelled"] {
        fs::write(src.join(name), name).unwrap();
        chmod(&src.join(name), 0o644);
    }
    chmod(&src.join("b-private"), 0o600);
    setfattr(&src.join("c-acl"), "system.posix_acl_access", &acl_denying(65534));
    setfattr(&src.join("d-labelled"), "security.selinux", "system_u:object_r:etc_t:s0");
    assert_ne!(as_nobody(OsStr::new("cat"), &[src.join("c-acl").as_os_str()]).code, 0, "the ACL denies natively");
    let id = id_of(&w.save(&src, &[]));
    let m = Mount::start_with(&w, &w.path("mnt"), &["-o", "allow_other"]);
    let dir = m.snap(&id);

    assert_eq!(as_nobody(OsStr::new("cat"), &[dir.join("a-plain").as_os_str()]).stdout_str(), "a-plain");
    for denied in ["b-private", "c-acl"] {
        let c = as_nobody(OsStr::new("cat"), &[dir.join(denied).as_os_str()]);
        assert_ne!(c.code, 0, "{denied} read by nobody: {}", c.stdout_str());
        assert!(c.stderr.contains("Permission denied"), "{denied}: {}", c.stderr);
    }
    let marks = |out: &Out| -> Vec<(String, char)> {
        out.stdout_str()
            .lines()
            .filter_map(|l| Some((l.split_whitespace().last()?.to_string(), l.chars().nth(10)?)))
            .collect()
    };
    let ls = sh("ls", [OsStr::new("-l"), dir.as_os_str()]);
    // `ls` stops asking for labels once one entry has none (that is the
    // point), so d-labelled's mark is not asserted.
    for (name, mark) in marks(&ls).into_iter().filter(|(n, _)| n != "d-labelled") {
        let want = if name == "c-acl" { '+' } else { ' ' };
        assert_eq!(mark, want, "ls -l marks {name} with {mark:?}: {}", ls.stdout_str());
    }
    let label = |name: &str| {
        let p = dir.join(name);
        sh("getfattr", [OsStr::new("--only-values"), OsStr::new("-n"), OsStr::new("security.selinux"), p.as_os_str()])
    };
    assert_eq!(label("d-labelled").stdout_str(), "system_u:object_r:etc_t:s0");
    assert!(label("a-plain").stderr.contains("Operation not supported"), "{}", label("a-plain").stderr);
    assert_eq!(marks(&ls).len(), 4, "{}", ls.stdout_str());
    let before = requests(&m.stats());
    sh("ls", [OsStr::new("-l"), dir.as_os_str()]).ok();
    // Only the stats read itself remains.
    assert!(requests(&m.stats()) - before <= 2, "a repeated ls -l went to the mount: {}", m.stats());
}
