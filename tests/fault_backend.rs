//! Save, forget and gc against a backend that fails on purpose: at every
//! storage operation in turn an I/O error (EIO, ENOSPC), or a power cut
//! after which only what was made durable survives, plus any subset of
//! what was not. Whatever happens, the repository must open, pass
//! `check --read-data`, and keep every earlier snapshot identical. A
//! missing sync shows up here, where killing the process cannot show it.

mod common;

use chkfs::check::check;
use chkfs::format::records::{Snapshot, Timestamp};
use chkfs::format::SnapshotId;
use chkfs::gc::{gc, GcOptions};
use chkfs::save::{save, SaveOptions, Silent};
use chkfs::store::memory::{Fault, MemBackend};
use chkfs::store::{Backend, Repository};
use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

fn repo_on(b: &Arc<MemBackend>) -> Arc<Repository> {
    let dynb: Arc<dyn Backend> = b.clone();
    Arc::new(Repository::open(dynb).expect("the repository must open"))
}

fn save_opts(src: &Path) -> SaveOptions {
    SaveOptions {
        tags: Vec::new(),
        source: src.to_path_buf(),
        message: String::new(),
        host: Some("h".into()),
        time: Some(Timestamp { secs: 1_700_000_000, nanos: 0 }),
        excludes: Vec::new(),
        exclude_files: Vec::new(),
        git_ignore: false,
        one_file_system: false,
        force_read: false,
        threads: 2,
    }
}

fn records(repo: &Repository) -> BTreeMap<SnapshotId, Snapshot> {
    repo.snapshots().expect("every record decodes").into_iter().map(|s| (s.id, s.snapshot)).collect()
}

/// The repository in `b` opens, verifies completely and still holds every
/// snapshot of `must_keep` exactly (content-addressed: the same record
/// over verified blobs is the same snapshot).
fn assert_sound(b: &Arc<MemBackend>, must_keep: &BTreeMap<SnapshotId, Snapshot>, what: &str) {
    let repo = repo_on(b);
    let report = check(repo.clone(), true).unwrap_or_else(|e| panic!("{what}: check failed: {e}"));
    assert!(report.is_ok(), "{what}: check found damage: {:?} {:?}", report.errors, report.damaged_blobs);
    let now = records(&repo);
    for (id, snap) in must_keep {
        assert_eq!(now.get(id), Some(snap), "{what}: snapshot {id} changed or vanished");
    }
}

struct Base {
    backend: MemBackend,
    src: tempfile::TempDir,
}

/// Three snapshots of a changing tree; the first forgotten when `forget`.
fn base(forget_first: bool) -> Base {
    let src = tempdir();
    let b = Arc::new(MemBackend::new());
    let dynb: Arc<dyn Backend> = b.clone();
    let repo = Arc::new(Repository::init(dynb, chkfs::chunking::ChunkSizes::DEFAULT).unwrap());
    let mut ids = Vec::new();
    for round in 0..3u64 {
        fs::write(src.path().join(format!("f{round}")), random_bytes(150_000, round)).unwrap();
        fs::write(src.path().join("small"), format!("round {round}\n")).unwrap();
        ids.push(save(repo.clone(), &save_opts(src.path()), &Silent, &AtomicBool::new(false)).unwrap().id);
    }
    if forget_first {
        repo.delete_snapshots(&ids[..1]).unwrap();
    }
    assert!(b.pending() == 0);
    Base { backend: b.after_power_loss(|_| true), src }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Save,
    Forget,
    Gc,
}

fn run(op: Op, repo: Arc<Repository>, src: &Path) -> Result<(), String> {
    match op {
        Op::Save => {
            save(repo, &save_opts(src), &Silent, &AtomicBool::new(false)).map(|_| ()).map_err(|e| e.to_string())
        }
        Op::Forget => {
            let oldest = repo.snapshot_ids().map_err(|e| e.to_string())?;
            repo.delete_snapshots(&oldest[..1]).map_err(|e| e.to_string())
        }
        Op::Gc => gc(&repo, &GcOptions { max_waste: 0.0, dry_run: false, grace: Duration::ZERO })
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

/// A small deterministic generator for the subsets that survive.
fn coin(seed: u64) -> impl FnMut(usize) -> bool {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x & 1 == 1
    }
}

/// Fails operation n of `op`, for every n until the operation completes
/// untouched; returns how many points were tried.
fn every_point(op: Op, fault: Fault) -> u64 {
    let base = base(matches!(op, Op::Gc));
    if matches!(op, Op::Save) {
        fs::write(base.src.path().join("new"), random_bytes(90_000, 99)).unwrap();
    }
    let before = records(&repo_on(&Arc::new(base.backend.after_power_loss(|_| true))));
    for n in 0.. {
        let b = Arc::new(base.backend.after_power_loss(|_| true));
        let repo = repo_on(&b);
        b.inject(n, fault);
        let result = run(op, repo, base.src.path());
        if !b.fault_fired() {
            assert!(result.is_ok(), "{op:?} failed without a fault: {result:?}");
            return n;
        }
        let what = format!("{op:?} with {fault:?} at operation {n} ({result:?})");
        // What a forget removes may go; everything else must stay.
        let mut keep = before.clone();
        if matches!(op, Op::Forget) {
            keep.pop_first();
        }
        match fault {
            Fault::Errno(_) => {
                assert_sound(&b, &keep, &what);
                // And the repository takes the next operation.
                run(op, repo_on(&b), base.src.path()).unwrap_or_else(|e| panic!("{what}: then: {e}"));
                if matches!(op, Op::Forget) {
                    keep.pop_first();
                }
                assert_sound(&b, &keep, &format!("{what}, then again"));
            }
            Fault::PowerCut => {
                let survivors: [(&str, Box<Survives>); 5] = [
                    ("nothing unsynced", Box::new(|_| false)),
                    ("everything", Box::new(|_| true)),
                    ("subset 1", Box::new(coin(n * 3 + 1))),
                    ("subset 2", Box::new(coin(n * 3 + 2))),
                    ("subset 3", Box::new(coin(n * 3 + 3))),
                ];
                for (name, survives) in survivors {
                    let after = Arc::new(b.after_power_loss(survives));
                    assert_sound(&after, &keep, &format!("{what}, {name} survived"));
                }
            }
        }
    }
    unreachable!()
}

/// Whether the unsynced operation numbered so survives a power cut.
type Survives = dyn FnMut(usize) -> bool;

#[test]
fn save_survives_every_io_error_and_power_cut() {
    let mut points = 0;
    for fault in [Fault::Errno(libc::EIO), Fault::Errno(libc::ENOSPC), Fault::PowerCut] {
        points += every_point(Op::Save, fault);
    }
    eprintln!("save: {points} fault points tried");
    assert!(points > 30);
}

#[test]
fn forget_survives_every_io_error_and_power_cut() {
    let mut points = 0;
    for fault in [Fault::Errno(libc::EIO), Fault::PowerCut] {
        points += every_point(Op::Forget, fault);
    }
    eprintln!("forget: {points} fault points tried");
}

#[test]
fn gc_survives_every_io_error_and_power_cut() {
    let mut points = 0;
    for fault in [Fault::Errno(libc::EIO), Fault::Errno(libc::ENOSPC), Fault::PowerCut] {
        points += every_point(Op::Gc, fault);
    }
    eprintln!("gc: {points} fault points tried");
    assert!(points > 30);
}

/// The model itself: a repository whose writer forgets to sync before it
/// refers to what it wrote loses data in it. (An index written and made
/// durable while its pack is not.)
#[test]
fn the_power_loss_model_catches_a_missing_sync() {
    let b = Arc::new(MemBackend::new());
    b.write_if_absent("packs/00/x.pack", b"pack bytes").unwrap();
    b.write_if_absent("index/y.idx", b"names x").unwrap();
    // A sync that made only the second durable would be a broken backend;
    // the model: drop the first, keep the second.
    let mut i = 0;
    let after = b.after_power_loss(|_| {
        i += 1;
        i == 2
    });
    assert!(after.read("packs/00/x.pack", 100).is_err());
    assert!(after.read("index/y.idx", 100).is_ok());
}
