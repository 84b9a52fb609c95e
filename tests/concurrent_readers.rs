//! Defect 11: check and restore run beside saves, forgets and gcs (they
//! take no lock) and must see one consistent repository: no damage that
//! does not exist, no damage list written for what they could not prove
//! damaged, no failure because a pack directory vanished while listed.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the writers churn while the readers run.
const CHURN: Duration = Duration::from_secs(20);

fn add_files(dir: &Path, round: u64) {
    for i in 0..8 {
        fs::write(dir.join(format!("r{round}-{i}")), random_bytes(40_000 + (i as usize) * 997, round * 100 + i))
            .unwrap();
    }
    // Remove older files so that gc has whole packs and parts to reclaim.
    if round >= 2 {
        for i in 0..8 {
            let _ = fs::remove_file(dir.join(format!("r{}-{i}", round - 2)));
        }
    }
}

/// A shell loop that saves, forgets all but the newest two and collects,
/// until STOP exists.
fn writer(w: &World, src: &Path, stop: &Path, log: &Path) -> Running {
    let script = format!(
        "while [ ! -e {stop} ]; do {c} save {src} >/dev/null 2>&1; {c} forget --keep-last 2 >/dev/null 2>&1; \
         {c} gc --max-waste 0 2>&1 | grep -c deleted >> {log}; done",
        stop = stop.display(),
        log = log.display(),
        src = src.display(),
        c = format!("{} --repo {}", CHKFS, w.repo.display())
    );
    Running(Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).spawn().unwrap())
}

#[test]
fn readers_see_no_damage_while_writers_churn() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    add_files(&src, 0);
    w.save(&src, &[]);
    let stop = w.path("stop");
    let log = w.path("gc.log");
    let mut churn = writer(&w, &src, &stop, &log);
    let started = Instant::now();
    let (mut checks, mut restores, mut round) = (0, 0, 1);
    while started.elapsed() < CHURN {
        add_files(&src, round);
        round += 1;
        let args: &[&str] = if checks % 2 == 0 { &["check", "--read-data"] } else { &["check"] };
        let c = w.chkfs(args);
        assert_eq!(c.code, 0, "check during saves and gcs found damage that is not there:\n{}", c.stderr);
        checks += 1;
        let out = w.path(&format!("out-{restores}"));
        let r = w.chkfs(["restore", "latest", out.to_str().unwrap()]);
        assert_eq!(r.code, 0, "restore during saves and gcs failed:\n{}", r.stderr);
        remove_tree(&out);
        restores += 1;
    }
    fs::write(&stop, b"").unwrap();
    wait_deadline(&mut churn, TIMEOUT).expect("the writers stop");
    assert!(find_files(&w.repo.join("damaged"), &|_| true).is_empty(), "a reader wrote a damage list");
    let gcs = fs::read_to_string(&log).unwrap_or_default().lines().count();
    assert!(gcs >= 10, "only {gcs} gc runs: the readers barely overlapped the writers");
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
    eprintln!("{checks} checks and {restores} restores beside {gcs} rounds of save, forget and gc");
}
