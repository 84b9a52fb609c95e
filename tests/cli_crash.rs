//! Crash safety: a save that dies at any storage write (fault hook), is
//! killed with SIGKILL, or is interrupted with SIGTERM leaves a valid
//! repository whose earlier snapshots restore exactly, and the next save
//! succeeds.

mod common;

use common::*;
use std::ffi::OsStr;
use std::fs;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

const MIB: usize = 1 << 20;
const PACK_TARGET: u64 = 32 << 20;

struct Fixture {
    w: World,
    src: PathBuf,
    /// A copy of the source as snapshot A saw it.
    v1: PathBuf,
    snap_a: String,
    /// The repository holding only snapshot A.
    baseline: PathBuf,
}

/// A repository with a good snapshot A of a tree of small files; then the
/// source grows by `big_mib` MiB of incompressible data in a few files
/// and some more small files, so that saving it writes several packs.
fn fixture(big_mib: usize) -> Fixture {
    let w = World::with_repo();
    let src = w.path("src");
    for d in 0..10 {
        let dir = src.join(format!("small{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..50 {
            fs::write(dir.join(format!("{f}.txt")), format!("small {d} {f}\n")).unwrap();
        }
    }
    fs::write(src.join("medium.bin"), random_bytes(200_000, 7)).unwrap();
    let a = w.save(&src, &[]);
    let v1 = w.path("v1");
    copy_tree(&src, &v1);

    let big = src.join("big");
    fs::create_dir_all(&big).unwrap();
    let per_file = 9 * MIB;
    let mut left = big_mib * MIB;
    let mut i = 0;
    while left > 0 {
        let n = left.min(per_file);
        fs::write(big.join(format!("r{i}.bin")), random_bytes(n, 100 + i as u64)).unwrap();
        left -= n;
        i += 1;
    }
    let more = src.join("more");
    fs::create_dir_all(&more).unwrap();
    for f in 0..300 {
        fs::write(more.join(format!("{f}")), random_bytes(100 + f * 13, 5000 + f as u64)).unwrap();
    }
    let baseline = w.path("repo-baseline");
    copy_tree(&w.repo, &baseline);
    Fixture { snap_a: a["id"].as_str().unwrap().to_string(), w, src, v1, baseline }
}

impl Fixture {
    fn reset_repo(&self) {
        remove_tree(&self.w.repo);
        copy_tree(&self.baseline, &self.w.repo);
    }

    fn spawn_save(&self) -> Running {
        let log = fs::File::create(self.w.path("save.log")).unwrap();
        let child = self
            .w
            .cmd()
            .args([OsStr::new("save"), OsStr::new("--json"), self.src.as_os_str()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Running(child)
    }

    fn save_log(&self) -> String {
        fs::read_to_string(self.w.path("save.log")).unwrap_or_default()
    }

    /// What must hold after any crash: check passes, snapshot A restores
    /// exactly, a normal save succeeds and restores exactly, and leaves no
    /// temporary file behind.
    fn verify_after_crash(&self, label: &str) {
        let (code, report, out) = self.w.check();
        assert_eq!(code, 0, "{label}: check --read-data after the crash:\n{}", out.stderr);
        assert_eq!(report["ok"], true, "{label}: {report}");
        assert!(report["damaged_blobs"].as_array().unwrap().is_empty(), "{label}: {report}");

        let list = self.w.list();
        assert!(list.iter().any(|s| s["id"] == self.snap_a.as_str()), "{label}: snapshot A is gone: {list:?}");
        let out_a = self.w.path(&format!("out-{label}-a"));
        self.w.restore(&self.snap_a, &out_a);
        assert_diff_equal(&self.v1, &out_a, &[]);
        assert_same_tree(&self.v1, &out_a, true);
        remove_tree(&out_a);

        let saved = self.w.save(&self.src, &[]);
        assert_eq!(saved["partial"], false, "{label}: {saved}");
        assert_eq!(saved["parent"].as_str(), Some(self.snap_a.as_str()), "{label}");
        assert!(
            temp_files(&self.w.repo).is_empty(),
            "{label}: temporary files left after a normal save: {:?}",
            temp_files(&self.w.repo)
        );
        let out_b = self.w.path(&format!("out-{label}-b"));
        self.w.restore(saved["id"].as_str().unwrap(), &out_b);
        assert_diff_equal(&self.src, &out_b, &[]);
        assert_same_tree(&self.src, &out_b, true);
        remove_tree(&out_b);
    }
}

/// Aborts the save at its first, second, ... storage write, each time from
/// the same starting repository, until the save gets through: every write
/// of the save (packs, index, snapshot record) is a crash point once.
#[test]
fn abort_at_every_storage_write_of_a_save() {
    let fx = fixture(40);
    let mut aborted = 0;
    for n in 0.. {
        assert!(n < 40, "the save never got through");
        fx.reset_repo();
        let out = run_with_timeout(
            fx.w.cmd().env("CHKFS_FAULT_ABORT_AFTER_WRITES", n.to_string()).args([
                OsStr::new("save"),
                OsStr::new("--json"),
                fx.src.as_os_str(),
            ]),
            TIMEOUT,
        );
        if out.code == 0 {
            let done = out.json();
            assert_eq!(done["parent"].as_str(), Some(fx.snap_a.as_str()));
            break;
        }
        assert_eq!(out.code, -libc::SIGABRT, "write {n}: expected the fault hook to abort the save\n{}", out.stderr);
        assert!(out.stderr.contains("fault hook"), "{}", out.stderr);
        // Every write but the deletes (of the writer's marker) leaves a
        // partial temporary file.
        let at_delete = out.stderr.contains("at a delete");
        assert!(
            at_delete || !temp_files(&fx.w.repo).is_empty(),
            "write {n}: the aborted write left no partial temporary file"
        );
        aborted += 1;
        let (code, _, check) = fx.w.check();
        assert_eq!(code, 0, "write {n}: check after the abort:\n{}", check.stderr);
        if at_delete {
            // The last step, removing its marker: the snapshot is written.
            assert_eq!(fx.w.list().len(), 2, "write {n}: the save was complete but for its marker");
            break;
        }
        // A second crash, at the first write of the save that recovers
        // (indexing the packs the first one left, or its first pack).
        let again = run_with_timeout(
            fx.w.cmd().env("CHKFS_FAULT_ABORT_AFTER_WRITES", "0").args([OsStr::new("save"), fx.src.as_os_str()]),
            TIMEOUT,
        );
        assert_eq!(again.code, -libc::SIGABRT, "{}", again.stderr);
        fx.verify_after_crash(&format!("abort{n}"));
    }
    eprintln!("{aborted} storage writes interrupted");
    // At least two data packs, a tree pack, an index file and a snapshot.
    assert!(aborted >= 5, "only {aborted} storage writes were interrupted");
}

fn packs_beyond_baseline(fx: &Fixture) -> usize {
    pack_files(&fx.w.repo).len() - pack_files(&fx.baseline).len()
}

fn any_pack_temp(fx: &Fixture) -> bool {
    find_files(&fx.w.repo.join("packs"), &|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp-"))
        .iter()
        .any(|p| fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
}

/// SIGKILL at a few points: at once, while the first pack is being
/// written, and once it is complete. (128 MiB: with packs of 32 MiB
/// written on two threads, at least 26 MiB are still to be read when the
/// first pack is complete, so the save is still running.)
/// Whether a save has reached a point at which to kill it.
type Reached = dyn Fn(&Fixture) -> bool;

#[test]
fn kill_9_during_save() {
    let fx = fixture(128);
    let points: [(&str, &Reached); 3] = [
        ("at-once", &|_| true),
        ("first-pack-writing", &any_pack_temp),
        ("first-pack-written", &|fx| packs_beyond_baseline(fx) >= 1),
    ];
    for (label, cond) in points {
        fx.reset_repo();
        let mut child = fx.spawn_save();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !cond(&fx) {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{label}: the save ended ({status}) before the kill point\n{}", fx.save_log());
            }
            assert!(std::time::Instant::now() < deadline, "{label}: timed out");
            std::thread::sleep(Duration::from_micros(500));
        }
        child.kill().unwrap();
        let status = wait_deadline(&mut child, TIMEOUT).expect("killed save did not end");
        assert_eq!(status_code(status), -libc::SIGKILL, "{label}: the save was not killed mid-way\n{}", fx.save_log());
        fx.verify_after_crash(label);
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: signalling our own child, which has not been reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0, "kill({pid}, {sig})");
}

/// Stops the child and waits until every thread of it is stopped.
fn stop(child: &mut Running) {
    signal(child.id(), libc::SIGSTOP);
    let task_dir = PathBuf::from(format!("/proc/{}/task", child.id()));
    poll_until(Duration::from_secs(10), "the save to stop", || {
        fs::read_dir(&task_dir).unwrap().flatten().all(|t| {
            let stat = fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // The state follows the parenthesised command name.
            let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next().unwrap_or('?'));
            matches!(state, Some('T') | Some('t') | None)
        })
    });
}

/// True when the (stopped) child has a source file open and has not read
/// it to the end: it will chunk more of it when it continues.
fn reading_source(child: &Running, src: &std::path::Path) -> bool {
    let fds = PathBuf::from(format!("/proc/{}/fd", child.id()));
    let Ok(rd) = fs::read_dir(&fds) else { return false };
    for fd in rd.flatten() {
        let Ok(target) = fs::read_link(fd.path()) else { continue };
        if !target.starts_with(src) {
            continue;
        }
        let Ok(meta) = fs::metadata(&target) else { continue };
        let info = format!("/proc/{}/fdinfo/{}", child.id(), fd.file_name().to_string_lossy());
        let pos = fs::read_to_string(info)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("pos:").map(|v| v.trim().parse::<u64>().unwrap_or(u64::MAX)));
        if meta.is_file() && pos.is_some_and(|p| p < meta.len()) {
            return true;
        }
    }
    false
}

/// Runs a save and stops it once a new pack is complete while it is still
/// reading source files (so that a signal now reaches it mid-read).
fn save_stopped_mid_read(fx: &Fixture) -> Running {
    let mut child = fx.spawn_save();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the save ended ({status}) before it could be stopped mid-read\n{}", fx.save_log());
        }
        assert!(std::time::Instant::now() < deadline, "timed out");
        if packs_beyond_baseline(fx) >= 1 {
            stop(&mut child);
            if reading_source(&child, &fx.src) {
                return child;
            }
            signal(child.id(), libc::SIGCONT);
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// SIGTERM while files are being read: exit status 130, a valid
/// repository, and the chunks stored so far are reused by the next save.
/// Then, from the same starting point, two SIGTERMs in a row (the second
/// exits at once unless the kernel merges it with the first): 130 too,
/// and the repository is as valid as after any crash.
#[test]
fn sigterm_interrupts_cleanly_and_the_next_save_reuses_chunks() {
    let fx = fixture(128);
    let mut child = save_stopped_mid_read(&fx);
    signal(child.id(), libc::SIGTERM);
    signal(child.id(), libc::SIGCONT);
    let status = wait_deadline(&mut child, TIMEOUT).expect("interrupted save did not end");
    let log = fx.save_log();
    assert_eq!(status_code(status), 130, "exit status after SIGTERM\n{log}");
    assert!(log.contains("interrupted"), "{log}");
    assert_eq!(fx.w.list().len(), 1, "an interrupted save wrote a snapshot");

    let (code, report, out) = fx.w.check();
    assert_eq!(code, 0, "{}", out.stderr);
    assert_eq!(report["ok"], true, "{report}");

    // What a save of the same source into an empty repository adds.
    let fresh = World::with_repo();
    let fresh_added = fresh.save(&fx.src, &[])["added_bytes"].as_u64().unwrap();
    drop(fresh);

    let next = fx.w.save(&fx.src, &[]);
    let added = next["added_bytes"].as_u64().unwrap();
    assert!(
        added + PACK_TARGET <= fresh_added,
        "the save after SIGTERM added {added} bytes, a fresh save {fresh_added}: \
         the pack written before the signal was not reused"
    );
    let out_b = fx.w.path("out");
    fx.w.restore(next["id"].as_str().unwrap(), &out_b);
    assert_diff_equal(&fx.src, &out_b, &[]);
    assert_same_tree(&fx.src, &out_b, true);
    remove_tree(&out_b);
    let (code, _, out) = fx.w.check();
    assert_eq!(code, 0, "{}", out.stderr);

    // Twice.
    fx.reset_repo();
    let mut child = save_stopped_mid_read(&fx);
    signal(child.id(), libc::SIGTERM);
    signal(child.id(), libc::SIGCONT);
    signal(child.id(), libc::SIGTERM);
    let status = wait_deadline(&mut child, TIMEOUT).expect("interrupted save did not end");
    assert_eq!(status_code(status), 130, "{}", fx.save_log());
    assert_eq!(fx.w.list().len(), 1, "an interrupted save wrote a snapshot");
    fx.verify_after_crash("double-sigterm");
}
