//! `chkfs forget` and `chkfs gc` through the command line: retention
//! policies, exact reclamation, rewriting of partly live packs, crash
//! safety (fault hook and kill -9), locking against a concurrent save, and
//! refusal on damage.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------- helpers

/// One entry of a repository listing: a directory, or a file with its size
/// and mtime (nanoseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File { size: u64, mtime_ns: i128 },
}

/// Everything under `root`, by relative path.
fn listing(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("read_dir {}: {e}", d.display())) {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                out.insert(rel, Entry::Dir);
                stack.push(p);
            } else {
                let mtime_ns = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
                out.insert(rel, Entry::File { size: m.len(), mtime_ns });
            }
        }
    }
    out
}

/// Sum of the sizes of every file in the repository (temporary files
/// included: they take space too).
fn repo_bytes(root: &Path) -> u64 {
    listing(root)
        .values()
        .map(|e| match e {
            Entry::File { size, .. } => *size,
            Entry::Dir => 0,
        })
        .sum()
}

/// Paths and sizes only, without mtimes.
fn shape(l: &BTreeMap<String, Entry>) -> BTreeMap<String, Option<u64>> {
    l.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                match v {
                    Entry::Dir => None,
                    Entry::File { size, .. } => Some(*size),
                },
            )
        })
        .collect()
}

fn describe_listing_diff(a: &BTreeMap<String, Entry>, b: &BTreeMap<String, Entry>) -> String {
    let mut s = String::new();
    for (k, v) in a {
        match b.get(k) {
            None => s.push_str(&format!("  gone:    {k} {v:?}\n")),
            Some(w) if w != v => s.push_str(&format!("  changed: {k} {v:?} -> {w:?}\n")),
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            s.push_str(&format!("  new:     {k} {v:?}\n"));
        }
    }
    s
}

fn write_small_files(dir: &Path, n: usize, tag: &str) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        fs::write(dir.join(format!("s{i:03}.txt")), format!("{tag} small file {i}\n").repeat(1 + i % 7)).unwrap();
    }
}

fn id_of(saved: &Value) -> String {
    saved["id"].as_str().expect("save --json has an id").to_string()
}

fn list_ids(w: &World) -> BTreeSet<String> {
    w.list().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

fn gc_json(w: &World, extra: &[&str]) -> Value {
    let mut args = vec!["gc", "--json"];
    args.extend_from_slice(extra);
    let out = w.chkfs(&args);
    out.ok();
    out.json()
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no number {key:?} in {v}"))
}

/// `forget ARGS...` with TZ=UTC, so that calendar buckets do not depend on
/// the machine's time zone.
fn forget(w: &World, args: &[&str]) -> Out {
    run_with_timeout(w.cmd().env("TZ", "UTC").arg("forget").args(args), TIMEOUT)
}

/// The packs under `repo` as a set of relative paths.
fn pack_set(repo: &Path) -> BTreeSet<PathBuf> {
    pack_files(repo).into_iter().map(|p| p.strip_prefix(repo).unwrap().to_path_buf()).collect()
}

/// Restores `id` and compares it with `src`; returns the problems.
fn restore_problems(w: &World, id: &str, src: &Path, label: &str) -> Vec<String> {
    let target = w.path(&format!("restore-{label}-{id}"));
    remove_tree(&target);
    let out = w.chkfs([OsStr::new("restore"), OsStr::new(id), target.as_os_str()]);
    let mut problems = Vec::new();
    if out.code != 0 {
        problems.push(format!("{label}: restore {id} exited {}: {}", out.code, out.stderr.trim()));
    } else {
        let d = sh("diff", [OsStr::new("-r"), OsStr::new("--no-dereference"), src.as_os_str(), target.as_os_str()]);
        if d.code != 0 {
            problems.push(format!("{label}: restore of {id} differs from its source:\n{}{}", d.stdout_str(), d.stderr));
        }
    }
    remove_tree(&target);
    problems
}

/// `check --read-data`; returns the problems.
fn check_problems(w: &World, label: &str) -> Vec<String> {
    let out = w.chkfs(["check", "--read-data"]);
    if out.code == 0 {
        Vec::new()
    } else {
        vec![format!("{label}: check --read-data exited {}:\n{}", out.code, out.stderr.trim())]
    }
}

fn reset_repo(w: &World, baseline: &Path) {
    remove_tree(&w.repo);
    copy_tree(baseline, &w.repo);
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Running {
    let f = fs::File::create(log).unwrap();
    Running(cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(f).spawn().expect("spawning chkfs"))
}

fn read_log(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

/// Polls `cond` until it holds; panics when the child ends first or after
/// a minute.
fn wait_while_running(child: &mut Running, log: &Path, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if cond() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("waiting for {what}: the process ended first ({status})\n{}", read_log(log));
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: signalling our own child, which has not been reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0, "kill({pid}, {sig})");
}

#[track_caller]
fn finish(child: &mut Running, log: &Path, what: &str) -> i32 {
    let status = wait_deadline(child, TIMEOUT).unwrap_or_else(|| panic!("{what} did not end\n{}", read_log(log)));
    status_code(status)
}

// ---------------------------------------------------------------- 1. forget

struct Planned {
    label: u32,
    host: &'static str,
    time: &'static str,
}

/// Snapshots 1..=12 of two hosts, oldest first within each host.
const PLAN: [Planned; 12] = [
    Planned { label: 1, host: "alpha", time: "2025-09-15T10:00:00Z" },
    Planned { label: 9, host: "beta", time: "2025-10-05T12:00:00Z" },
    Planned { label: 2, host: "alpha", time: "2025-10-20T10:00:00Z" },
    Planned { label: 3, host: "alpha", time: "2025-11-03T10:00:00Z" },
    Planned { label: 4, host: "alpha", time: "2025-11-25T10:00:00Z" },
    Planned { label: 10, host: "beta", time: "2025-11-28T12:00:00Z" },
    Planned { label: 5, host: "alpha", time: "2025-12-01T09:00:00Z" },
    Planned { label: 6, host: "alpha", time: "2025-12-01T18:00:00Z" },
    Planned { label: 11, host: "beta", time: "2025-12-02T12:00:00Z" },
    Planned { label: 7, host: "alpha", time: "2025-12-08T10:00:00Z" },
    Planned { label: 8, host: "alpha", time: "2025-12-09T10:00:00Z" },
    Planned { label: 12, host: "beta", time: "2025-12-09T12:00:00Z" },
];

/// Decisions of a `forget --json`, by snapshot id: (keep, reasons).
fn decisions(out: &Out) -> BTreeMap<String, (bool, Vec<String>)> {
    out.json()
        .as_array()
        .expect("forget --json is an array")
        .iter()
        .map(|d| {
            let reasons = d["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
            (d["id"].as_str().unwrap().to_string(), (d["keep"].as_bool().unwrap(), reasons))
        })
        .collect()
}

#[test]
fn forget_retention_policies_by_host_dry_run_ids_and_usage() {
    let w = World::with_repo();
    let src = w.path("src");
    write_small_files(&src.join("d"), 20, "v0");
    // label -> id
    let mut ids: BTreeMap<u32, String> = BTreeMap::new();
    for (n, p) in PLAN.iter().enumerate() {
        fs::write(src.join("changing.txt"), format!("version {n}\n")).unwrap();
        let saved = w.save(&src, &["--host", p.host, "--time", p.time]);
        assert_eq!(saved["host"], p.host, "{saved}");
        assert_eq!(saved["time"], p.time, "{saved}");
        ids.insert(p.label, id_of(&saved));
    }
    let label_of: BTreeMap<String, u32> = ids.iter().map(|(l, i)| (i.clone(), *l)).collect();
    let all: BTreeSet<String> = ids.values().cloned().collect();
    assert_eq!(list_ids(&w), all);
    let ids_of = |labels: &[u32]| -> BTreeSet<String> { labels.iter().map(|l| ids[l].clone()).collect() };
    let snapshots_before = listing(&w.repo.join("snapshots"));

    // Dry run: decisions and reasons, nothing changes.
    let policy = ["--keep-daily", "3", "--keep-monthly", "2"];
    let dry = forget(&w, &[&policy[..], &["--dry-run", "--json"]].concat());
    dry.ok();
    let planned = decisions(&dry);
    assert_eq!(planned.keys().cloned().collect::<BTreeSet<_>>(), all, "every snapshot gets a decision");
    let kept: BTreeSet<u32> = planned.iter().filter(|(_, (k, _))| *k).map(|(id, _)| label_of[id]).collect();
    // alpha (newest first 8,7,6,5,4,3,2,1): daily 12-09, 12-08, 12-01 (the
    // later one, 6); monthly 2025-12 (8) and 2025-11 (4). beta (12,11,10,9):
    // daily 12, 11, 10; monthly 12, 10. Grouping both hosts together would
    // keep 12, 7 and 11 as the daily ones instead.
    assert_eq!(kept, BTreeSet::from([4, 6, 7, 8, 10, 11, 12]), "kept by the dry run\n{}", dry.stderr);
    let reasons = |l: u32| planned[&ids[&l]].1.clone();
    assert_eq!(reasons(8), vec!["daily 2025-12-09", "monthly 2025-12"]);
    assert_eq!(reasons(7), vec!["daily 2025-12-08"]);
    assert_eq!(reasons(6), vec!["daily 2025-12-01"]);
    assert_eq!(reasons(4), vec!["monthly 2025-11"]);
    assert_eq!(reasons(10), vec!["daily 2025-11-28", "monthly 2025-11"]);
    assert!(reasons(5).is_empty() && reasons(1).is_empty(), "forgotten snapshots have no reasons");
    assert!(dry.stderr.contains("dry run"), "{}", dry.stderr);
    assert_eq!(list_ids(&w), all, "forget --dry-run removed snapshots");
    assert_eq!(listing(&w.repo.join("snapshots")), snapshots_before, "forget --dry-run touched snapshot records");

    // The real run removes exactly what the dry run said.
    let real = forget(&w, &[&policy[..], &["--json"]].concat());
    real.ok();
    assert_eq!(decisions(&real), planned, "the real run decided differently from the dry run");
    let kept_ids: BTreeSet<String> = planned.iter().filter(|(_, (k, _))| *k).map(|(id, _)| id.clone()).collect();
    assert_eq!(list_ids(&w), kept_ids, "snapshots left after forget\n{}", real.stderr);
    assert_eq!(fs::read_dir(w.repo.join("snapshots")).unwrap().count(), 7);

    // Usage errors: neither ids nor a policy, and both.
    let before = list_ids(&w);
    let neither = forget(&w, &[]);
    neither.expect_code(2);
    let both = forget(&w, &["--keep-last", "1", &ids[&7]]);
    both.expect_code(2);
    assert!(both.stderr.contains("not both"), "{}", both.stderr);
    let bad_duration = forget(&w, &["--keep-within", "ten days"]);
    bad_duration.expect_code(2);
    assert_eq!(list_ids(&w), before, "a usage error removed snapshots");

    // By id: the shortest prefix of snapshot 7's id that is unique.
    let target = &ids[&7];
    let prefix =
        (1..=8).map(|n| &target[..n]).find(|p| before.iter().filter(|i| i.starts_with(p)).count() == 1).unwrap();
    let by_id = forget(&w, &[prefix]);
    by_id.ok();
    assert_eq!(list_ids(&w), &before - &ids_of(&[7]), "forget {prefix} (prefix of {target})\n{}", by_id.stderr);
    let missing = forget(&w, &["ffffffff"]);
    assert_ne!(missing.code, 0, "forget of an unknown id succeeded");

    // --keep-within 10d, relative to each group's newest snapshot (all of
    // them are long past): alpha keeps 6 and 8 (not 4, 14 days older than
    // 8), beta keeps 11 and 12 (not 10, 11 days older than 12).
    let within = forget(&w, &["--keep-within", "10d", "--json"]);
    within.ok();
    let d = decisions(&within);
    for (id, (keep, reasons)) in &d {
        if *keep {
            assert_eq!(reasons, &vec!["within 10d".to_string()], "snapshot {}", label_of[id]);
        }
    }
    assert_eq!(list_ids(&w), ids_of(&[6, 8, 11, 12]), "after --keep-within 10d\n{}", within.stderr);

    // The repository is still sound and the kept snapshots restore.
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
    let target = w.path("out");
    w.restore(&ids[&12], &target);
    assert_eq!(fs::read_to_string(target.join("changing.txt")).unwrap(), "version 11\n");
}

// ---------------------------------------------------------------- 2. reclaim all

#[test]
fn gc_after_forgetting_everything_leaves_a_fresh_repository() {
    let w = World::with_repo();
    let fresh = listing(&w.repo);
    let fresh_bytes = repo_bytes(&w.repo);

    let mut ids = Vec::new();
    for k in 0..3u64 {
        let src = w.path(&format!("src{k}"));
        write_small_files(&src.join("sub"), 30, &format!("source {k}"));
        fs::write(src.join("data.bin"), random_bytes(300_000 + k as usize * 1000, 40 + k)).unwrap();
        ids.push(id_of(&w.save(&src, &[])));
    }
    let args: Vec<&str> = ids.iter().map(String::as_str).collect();
    forget(&w, &args).ok();
    assert!(w.list().is_empty());

    let report = gc_json(&w, &[]);
    assert!(u(&report, "bytes_reclaimed") > 0, "{report}");
    assert_eq!(u(&report, "bytes_after"), 0, "{report}");
    assert_eq!(u(&report, "live_blobs"), 0, "{report}");
    assert_eq!(u(&report, "packs_deleted"), u(&report, "packs_before"), "{report}");
    assert!(u(&report, "packs_before") >= 6, "three saves wrote a data and a tree pack each: {report}");

    // The same files as a fresh repository.
    let after = listing(&w.repo);
    let fresh_shape = shape(&fresh);
    assert_eq!(
        shape(&after),
        fresh_shape,
        "the repository after gc differs from a fresh one:\n{}",
        describe_listing_diff(&fresh, &after)
    );
    assert_eq!(repo_bytes(&w.repo), fresh_bytes);
    assert_eq!(fresh["config"], after["config"], "gc touched the config");

    let (code, report, out) = w.check();
    assert_eq!(code, 0, "check --read-data on the emptied repository:\n{}", out.stderr);
    assert_eq!(report["ok"], true, "{report}");
}

// ---------------------------------------------------------------- 3. rewrite

const BIG: usize = 4 * MIB;

/// A source with two big random files A and B and many small ones, saved
/// once (A and B share a data pack); then A is deleted, the source saved
/// again and the first snapshot forgotten. Returns (source, kept id).
fn partly_live(w: &World) -> (PathBuf, String) {
    let src = w.path("src");
    write_small_files(&src.join("small"), 200, "partly live");
    fs::write(src.join("A.bin"), random_bytes(BIG, 1)).unwrap();
    fs::write(src.join("B.bin"), random_bytes(BIG, 2)).unwrap();
    let first = id_of(&w.save(&src, &[]));
    let data_packs: Vec<_> =
        pack_files(&w.repo).into_iter().filter(|p| fs::metadata(p).unwrap().len() > 2 * BIG as u64).collect();
    assert_eq!(data_packs.len(), 1, "A and B are expected to share one data pack: {:?}", pack_files(&w.repo));
    fs::remove_file(src.join("A.bin")).unwrap();
    let second = id_of(&w.save(&src, &[]));
    forget(w, &[&first]).ok();
    assert_eq!(list_ids(w), BTreeSet::from([second.clone()]));
    (src, second)
}

const COUNTS: [&str; 6] =
    ["live_blobs", "packs_before", "packs_deleted", "packs_rewritten", "bytes_unused", "bytes_copied"];

#[test]
fn gc_rewrites_partly_live_packs_and_dry_run_changes_nothing() {
    let w = World::with_repo();
    let (src, kept) = partly_live(&w);
    let prepared = w.path("prepared");
    copy_tree(&w.repo, &prepared);

    // Dry run: no file changes; it plans a rewrite.
    let before = listing(&w.repo);
    let size_before = repo_bytes(&w.repo);
    let dry = gc_json(&w, &["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    let after_dry = listing(&w.repo);
    assert!(
        after_dry == before,
        "gc --dry-run changed the repository:\n{}",
        describe_listing_diff(&before, &after_dry)
    );

    // The real run does what the dry run said.
    let real = gc_json(&w, &[]);
    assert_eq!(real["dry_run"], false);
    for key in COUNTS {
        assert_eq!(dry[key], real[key], "{key}: dry run {dry}\nreal run {real}");
    }
    assert!(u(&real, "packs_rewritten") >= 1, "{real}");
    assert!(u(&real, "packs_written") >= 1, "{real}");
    assert!(u(&real, "bytes_unused") >= BIG as u64, "A is unused: {real}");
    let size_after = repo_bytes(&w.repo);
    let dropped = size_before - size_after;
    let tolerance = 64 * 1024;
    assert!(
        dropped.abs_diff(BIG as u64) <= tolerance,
        "the repository shrank by {dropped} bytes ({size_before} -> {size_after}); A is {BIG}\n{real}"
    );
    assert_eq!(u(&real, "bytes_reclaimed"), dropped, "reported against measured reclamation: {real}");
    assert!(temp_files(&w.repo).is_empty(), "{:?}", temp_files(&w.repo));

    let out = w.path("out");
    w.restore(&kept, &out);
    assert_diff_equal(&src, &out, &[]);
    assert_same_tree(&src, &out, true);
    let (code, _, check) = w.check();
    assert_eq!(code, 0, "{}", check.stderr);

    // A second gc has nothing left to do.
    let again = gc_json(&w, &[]);
    assert_eq!((u(&again, "packs_deleted"), u(&again, "packs_rewritten")), (0, 0), "{again}");

    // --max-waste 100 on the same starting point rewrites nothing.
    reset_repo(&w, &prepared);
    let packs_before = pack_set(&w.repo);
    let lenient = gc_json(&w, &["--max-waste", "100"]);
    assert_eq!(u(&lenient, "packs_rewritten"), 0, "{lenient}");
    assert_eq!(u(&lenient, "packs_written"), 0, "{lenient}");
    let packs_after = pack_set(&w.repo);
    assert!(packs_after.is_subset(&packs_before), "gc --max-waste 100 wrote packs: {packs_after:?}");
    let big_pack = pack_files(&w.repo).into_iter().find(|p| fs::metadata(p).unwrap().len() > 2 * BIG as u64);
    assert!(big_pack.is_some(), "the pack holding A and B is gone after gc --max-waste 100");
    let out2 = w.path("out2");
    w.restore(&kept, &out2);
    assert_diff_equal(&src, &out2, &[]);

    // Out of range.
    w.chkfs(["gc", "--max-waste", "101"]).expect_code(2);
}

// ---------------------------------------------------------------- 4. fault hook

/// Three snapshots of a flat source (so the first snapshot's tree pack
/// holds only its root tree): 1 = {A, smalls}, 2 = {B, smalls},
/// 3 = {B, C, smalls with one changed}. Forgetting 1 makes gc delete its
/// tree pack and rewrite its data pack (A dead, smalls live).
struct ThreeSnapshots {
    /// (id, copy of the source as saved)
    kept: Vec<(String, PathBuf)>,
    prepared: PathBuf,
}

fn three_snapshots(w: &World, big: usize) -> ThreeSnapshots {
    let src = w.path("src");
    write_small_files(&src, 120, "flat");
    fs::write(src.join("A.bin"), random_bytes(big, 11)).unwrap();
    let s1 = id_of(&w.save(&src, &[]));
    fs::remove_file(src.join("A.bin")).unwrap();
    fs::write(src.join("B.bin"), random_bytes(big / 2, 12)).unwrap();
    let s2 = id_of(&w.save(&src, &[]));
    let v2 = w.path("v2");
    copy_tree(&src, &v2);
    fs::write(src.join("C.bin"), random_bytes(big / 2, 13)).unwrap();
    fs::write(src.join("s005.txt"), "changed\n").unwrap();
    let s3 = id_of(&w.save(&src, &[]));
    let v3 = w.path("v3");
    copy_tree(&src, &v3);
    forget(w, &[&s1]).ok();
    let prepared = w.path("prepared");
    copy_tree(&w.repo, &prepared);
    ThreeSnapshots { kept: vec![(s2, v2), (s3, v3)], prepared }
}

/// After an interrupted gc: check passes, every kept snapshot restores
/// exactly, a plain gc completes and leaves the size an uninterrupted gc
/// leaves (within `slack`), and all of that still holds afterwards.
fn after_crash_problems(w: &World, kept: &[(String, PathBuf)], reference: u64, label: &str) -> Vec<String> {
    let mut problems = check_problems(w, &format!("{label}, after the crash"));
    for (id, src) in kept {
        problems.extend(restore_problems(w, id, src, &format!("{label}-crashed")));
    }
    let second = w.chkfs(["gc", "--json"]);
    if second.code != 0 {
        problems.push(format!("{label}: the gc after the crash exited {}:\n{}", second.code, second.stderr));
        return problems;
    }
    let temps = temp_files(&w.repo);
    if !temps.is_empty() {
        let sizes: Vec<_> = temps
            .iter()
            .map(|p| (p.strip_prefix(&w.repo).unwrap().to_path_buf(), fs::metadata(p).unwrap().len()))
            .collect();
        problems.push(format!("{label}: temporary files left after the gc that followed the crash: {sizes:?}"));
    }
    let size = repo_bytes(&w.repo);
    let slack = 8 * 1024;
    if size.abs_diff(reference) > slack {
        problems.push(format!(
            "{label}: the repository holds {size} bytes after crash + gc, {reference} after an uninterrupted gc \
             (difference {})",
            size as i64 - reference as i64
        ));
    }
    problems.extend(check_problems(w, &format!("{label}, after the second gc")));
    for (id, src) in kept {
        problems.extend(restore_problems(w, id, src, &format!("{label}-regc")));
    }
    problems
}

#[test]
fn gc_aborted_at_every_storage_operation_leaves_a_sound_repository() {
    let w = World::with_repo();
    let fx = three_snapshots(&w, 3 * MIB);

    // The uninterrupted gc: the reference size.
    let full = gc_json(&w, &[]);
    assert!(u(&full, "packs_deleted") >= 1, "the setup should make gc delete a pack: {full}");
    assert!(u(&full, "packs_rewritten") >= 1, "the setup should make gc rewrite a pack: {full}");
    let reference = repo_bytes(&w.repo);
    assert!(temp_files(&w.repo).is_empty());

    let mut problems = Vec::new();
    let mut aborted = 0;
    for n in 0.. {
        assert!(n < 50, "gc never got through");
        reset_repo(&w, &fx.prepared);
        let out = run_with_timeout(w.cmd().env("CHKFS_FAULT_ABORT_AFTER_WRITES", n.to_string()).arg("gc"), TIMEOUT);
        if out.code == 0 {
            assert_eq!(repo_bytes(&w.repo), reference, "gc with the fault hook set high enough is a plain gc");
            break;
        }
        assert_eq!(out.code, -libc::SIGABRT, "operation {n}: expected the fault hook to abort gc\n{}", out.stderr);
        assert!(out.stderr.contains("fault hook"), "{}", out.stderr);
        aborted += 1;
        problems.extend(after_crash_problems(&w, &fx.kept, reference, &format!("abort at operation {n}")));
    }
    eprintln!("gc interrupted at each of its {aborted} storage operations");
    // A new data pack, the new index, three old index files, two packs.
    assert!(aborted >= 7, "only {aborted} storage operations were interrupted");
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

// ---------------------------------------------------------------- 5. kill -9

#[test]
fn kill_9_during_gc_leaves_a_sound_repository() {
    let w = World::with_repo();
    // 96 random files of 2 MiB; half of them deleted before the second
    // snapshot, the first forgotten: gc rewrites ~96 MiB of live data.
    let src = w.path("src");
    let files = 96;
    fs::create_dir_all(&src).unwrap();
    for i in 0..files {
        fs::write(src.join(format!("f{i:03}")), random_bytes(2 * MIB, 1000 + i as u64)).unwrap();
    }
    let s1 = id_of(&w.save(&src, &[]));
    for i in (1..files).step_by(2) {
        fs::remove_file(src.join(format!("f{i:03}"))).unwrap();
    }
    let s2 = id_of(&w.save(&src, &[]));
    forget(&w, &[&s1]).ok();
    let prepared = w.path("prepared");
    copy_tree(&w.repo, &prepared);
    let old_packs = pack_set(&prepared);
    let old_index: BTreeSet<String> = fs::read_dir(prepared.join("index"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    let kept = vec![(s2, src.clone())];

    let full = gc_json(&w, &[]);
    assert!(u(&full, "bytes_copied") >= 90 * MIB as u64, "{full}");
    let reference = repo_bytes(&w.repo);

    let repo = w.repo.clone();
    let new_pack_temp = || {
        find_files(&repo.join("packs"), &|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp-"))
            .iter()
            .any(|p| fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
    };
    let new_pack_written = || pack_set(&repo).difference(&old_packs).next().is_some();
    let new_index_file = |temp: bool| {
        fs::read_dir(repo.join("index"))
            .map(|rd| {
                rd.flatten().any(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.starts_with(".tmp-") == temp && !old_index.contains(&name)
                })
            })
            .unwrap_or(false)
    };
    let index_writing = || new_index_file(true);
    let index_written = || new_index_file(false);
    let pack_deleted = || old_packs.iter().any(|p| !repo.join(p).exists());
    let points: [(&str, &dyn Fn() -> bool, bool); 6] = [
        ("at-once", &|| true, true),
        ("new-pack-writing", &new_pack_temp, true),
        ("new-pack-written", &new_pack_written, true),
        // These come late: gc may be done before the kill lands.
        ("new-index-writing", &index_writing, false),
        ("new-index-written", &index_written, false),
        ("old-pack-deleted", &pack_deleted, false),
    ];
    let mut problems = Vec::new();
    let log = w.path("gc.log");
    for (label, cond, must_catch) in points {
        reset_repo(&w, &prepared);
        let mut child = spawn_logged(w.cmd().arg("gc"), &log);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut finished = None;
        while !cond() {
            if let Some(status) = child.try_wait().unwrap() {
                finished = Some(status);
                break;
            }
            assert!(Instant::now() < deadline, "{label}: timed out");
            std::thread::sleep(Duration::from_micros(100));
        }
        if let Some(status) = finished {
            assert!(!must_catch, "{label}: gc ended ({status}) before the kill point\n{}", read_log(&log));
            assert!(status.success(), "{label}: {status}\n{}", read_log(&log));
            eprintln!("{label}: gc finished before the kill point was seen");
            continue;
        }
        child.kill().unwrap();
        let code = finish(&mut child, &log, "killed gc");
        if code == 0 {
            assert!(!must_catch, "{label}: gc completed before SIGKILL arrived");
            eprintln!("{label}: gc completed before SIGKILL arrived");
        } else {
            assert_eq!(code, -libc::SIGKILL, "{label}\n{}", read_log(&log));
        }
        problems.extend(after_crash_problems(&w, &kept, reference, &format!("kill -9 {label}")));
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

// ---------------------------------------------------------------- 6. many writers

fn add_random_files(dir: &Path, prefix: &str, n: usize, seed: u64) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        fs::write(dir.join(format!("{prefix}{i:02}")), random_bytes(2 * MIB, seed + i as u64)).unwrap();
    }
}

fn remove_odd(dir: &Path, prefix: &str, n: usize) {
    for i in (1..n).step_by(2) {
        fs::remove_file(dir.join(format!("{prefix}{i:02}"))).unwrap();
    }
}

/// Writer markers in place (not the temporary files they are written as).
fn markers(w: &World) -> usize {
    let named = |e: &fs::DirEntry| e.file_name().to_string_lossy().ends_with(".wrt");
    fs::read_dir(w.repo.join("writers")).map(|d| d.flatten().filter(named).count()).unwrap_or(0)
}

/// A save suspended for as long as a gc runs (twice) keeps everything it
/// uses, even the chunks of its parent, forgotten meanwhile; saves from
/// other terminals go on beside it; the unused packs go once it is done.
#[test]
fn gc_beside_a_suspended_save_deletes_nothing_it_uses() {
    let w = World::with_repo();
    let src = w.path("src");
    add_random_files(&src, "f", 24, 100);
    let s1 = id_of(&w.save(&src, &[]));
    remove_odd(&src, "f", 24);
    // Two packs' worth of new data: the first pack is written mid-save.
    add_random_files(&src, "g", 32, 200);
    let save_log = w.path("save.log");
    let packs_before = pack_files(&w.repo).len();
    let mut save = spawn_logged(w.cmd().arg("save").arg(&src), &save_log);
    let pid = save.id();
    // Suspended once it has stored some new data: its packs are in no
    // snapshot yet, and the parent it reuses unchanged files from goes.
    wait_while_running(&mut save, &save_log, "the save to write a pack", || {
        markers(&w) > 0 && pack_files(&w.repo).len() > packs_before
    });
    signal(pid, libc::SIGSTOP);
    forget(&w, &[&s1]).ok();
    let first = gc_json(&w, &["--grace", "0s"]);
    assert_eq!(u(&first, "packs_deleted"), 0, "gc deleted packs a running save may use: {first}");
    assert!(u(&first, "packs_condemned") > 0, "{first}");
    assert!(first["writers_running"].to_string().contains("save on"), "{first}");
    // Another terminal's save goes through meanwhile, and so does a
    // second gc (which still deletes nothing).
    let other = w.path("other");
    add_random_files(&other, "o", 3, 300);
    w.save(&other, &[]);
    let second = gc_json(&w, &["--grace", "0s"]);
    assert_eq!(u(&second, "packs_deleted"), 0, "{second}");

    signal(pid, libc::SIGCONT);
    assert_eq!(finish(&mut save, &save_log, "save"), 0, "{}", read_log(&save_log));
    assert_eq!(markers(&w), 0, "a finished save removes its marker");
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
    let out = w.path("out");
    let latest = w.list().into_iter().find(|s| s["path"].as_str() == src.to_str()).unwrap();
    w.restore(latest["id"].as_str().unwrap(), &out);
    assert_diff_equal(&src, &out, &[]);

    // With no writer left, the next gc deletes what stayed unused.
    let before = repo_bytes(&w.repo);
    let third = gc_json(&w, &["--grace", "0s"]);
    assert!(u(&third, "packs_deleted") > 0, "{third}");
    assert_eq!(u(&third, "packs_condemned"), 0, "{third}");
    assert!(repo_bytes(&w.repo) < before);
    assert_eq!(fs::read_dir(w.repo.join("condemned")).unwrap().count(), 0, "carried-out lists are removed");
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
    let out2 = w.path("out2");
    w.restore(latest["id"].as_str().unwrap(), &out2);
    assert_diff_equal(&src, &out2, &[]);
}

/// Saves from several terminals at once all succeed, none waits.
#[test]
fn concurrent_saves_into_one_repository_all_succeed() {
    let w = World::with_repo();
    let dirs: Vec<PathBuf> = (0..4)
        .map(|i| {
            let d = w.path(&format!("src{i}"));
            add_random_files(&d, "shared", 3, 500);
            add_random_files(&d, "own", 3, 600 + 10 * i as u64);
            d
        })
        .collect();
    let logs: Vec<PathBuf> = (0..4).map(|i| w.path(&format!("save{i}.log"))).collect();
    let mut saves: Vec<Running> =
        dirs.iter().zip(&logs).map(|(d, log)| spawn_logged(w.cmd().arg("save").arg(d), log)).collect();
    for (i, s) in saves.iter_mut().enumerate() {
        assert_eq!(finish(s, &logs[i], "save"), 0, "{}", read_log(&logs[i]));
    }
    assert_eq!(w.list().len(), 4);
    assert_eq!(markers(&w), 0);
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
    gc_json(&w, &[]);
    for (i, d) in dirs.iter().enumerate() {
        let id = w.list().into_iter().find(|s| s["path"].as_str() == d.to_str()).unwrap();
        let out = w.path(&format!("out{i}"));
        w.restore(id["id"].as_str().unwrap(), &out);
        assert_diff_equal(d, &out, &[]);
    }
}

/// A save killed with -9 leaves its marker behind; a gc on the same
/// machine sees that its process is gone, removes the marker and
/// reclaims what the save stored.
#[test]
fn a_killed_save_holds_nothing_back() {
    let w = World::with_repo();
    let src = w.path("src");
    // Three packs' worth: the first is written with most of the save to go.
    add_random_files(&src, "k", 48, 700);
    let log = w.path("save.log");
    let mut save = spawn_logged(w.cmd().arg("save").arg(&src), &log);
    let pid = save.id();
    wait_while_running(&mut save, &log, "the save to write a pack", || !pack_files(&w.repo).is_empty());
    signal(pid, libc::SIGKILL);
    finish(&mut save, &log, "killed save");
    assert_eq!(markers(&w), 1, "kill -9 leaves the marker");
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
    let report = gc_json(&w, &[]);
    assert!(u(&report, "packs_deleted") > 0, "{report}");
    assert_eq!(markers(&w), 0, "the dead writer's marker is removed");
    assert!(pack_files(&w.repo).is_empty(), "everything the killed save stored was unused");
}

/// Two gcs at once: the second sees the first and changes nothing.
#[test]
fn a_gc_beside_a_running_gc_changes_nothing() {
    let w = World::with_repo();
    let src = w.path("src");
    add_random_files(&src, "f", 8, 800);
    let s1 = id_of(&w.save(&src, &[]));
    forget(&w, &[&s1]).ok();
    let log = w.path("gc.log");
    let mut first = spawn_logged(w.cmd().arg("gc"), &log);
    let pid = first.id();
    wait_while_running(&mut first, &log, "the gc's marker", || markers(&w) > 0);
    signal(pid, libc::SIGSTOP);
    let second = gc_json(&w, &[]);
    assert_eq!(second["skipped"], true, "{second}");
    assert_eq!(u(&second, "packs_deleted"), 0, "{second}");
    signal(pid, libc::SIGCONT);
    assert_eq!(finish(&mut first, &log, "gc"), 0, "{}", read_log(&log));
    assert!(pack_files(&w.repo).is_empty());
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
}

// ---------------------------------------------------------------- 7. damage

#[test]
fn gc_refuses_when_a_kept_snapshot_is_damaged() {
    let w = World::with_repo();
    let src = w.path("src");
    write_small_files(&src.join("small"), 100, "damage");
    fs::write(src.join("A.bin"), random_bytes(BIG, 21)).unwrap();
    let s1 = id_of(&w.save(&src, &[]));
    let packs1 = pack_set(&w.repo);
    fs::remove_file(src.join("A.bin")).unwrap();
    fs::write(src.join("B.bin"), random_bytes(MIB, 22)).unwrap();
    id_of(&w.save(&src, &[]));
    let packs2: BTreeSet<_> = pack_set(&w.repo).difference(&packs1).cloned().collect();
    forget(&w, &[&s1]).ok();
    let prepared = w.path("prepared");
    copy_tree(&w.repo, &prepared);

    let size = |p: &PathBuf| fs::metadata(w.repo.join(p)).unwrap().len();
    let biggest = |set: &BTreeSet<PathBuf>| set.iter().max_by_key(|p| size(p)).unwrap().clone();
    let smallest = |set: &BTreeSet<PathBuf>| set.iter().min_by_key(|p| size(p)).unwrap().clone();
    // Snapshot 1 wrote a data pack (A and the small files) and a tree
    // pack; snapshot 2 a data pack (B) and a tree pack (its root).
    assert_eq!((packs1.len(), packs2.len()), (2, 2), "{packs1:?} {packs2:?}");
    let shared_data = biggest(&packs1);
    let new_data = biggest(&packs2);
    let new_tree = smallest(&packs2);

    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Damage)> = vec![
        // Only the kept snapshot uses it, and gc would keep it.
        ("data pack of B deleted", Box::new(move |repo: &Path| fs::remove_file(repo.join(&new_data)).unwrap())),
        // Partly live: gc would rewrite it.
        ("shared data pack deleted", Box::new(move |repo: &Path| fs::remove_file(repo.join(&shared_data)).unwrap())),
        (
            "tree pack of the kept snapshot corrupted",
            Box::new(move |repo: &Path| {
                use std::os::unix::fs::FileExt;
                let f = fs::OpenOptions::new().read(true).write(true).open(repo.join(&new_tree)).unwrap();
                // Inside the first block, just after the 16-byte header.
                let mut b = [0u8; 4];
                f.read_exact_at(&mut b, 20).unwrap();
                for x in &mut b {
                    *x ^= 0xa5;
                }
                f.write_all_at(&b, 20).unwrap();
            }),
        ),
    ];
    let mut problems = Vec::new();
    for (label, damage) in cases {
        reset_repo(&w, &prepared);
        damage(&w.repo);
        let before = listing(&w.repo);
        let out = w.chkfs(["gc"]);
        let after = listing(&w.repo);
        if out.code == 0 {
            problems.push(format!("{label}: gc exited 0\n{}", out.stderr.trim()));
        } else if !out.stderr.to_lowercase().contains("refus") {
            problems.push(format!("{label}: gc exited {} without saying it refuses:\n{}", out.code, out.stderr.trim()));
        }
        let gone: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
        if !gone.is_empty() {
            problems.push(format!("{label}: gc deleted {gone:?}\n{}", describe_listing_diff(&before, &after)));
        }
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n\n"));
}
