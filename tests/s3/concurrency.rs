//! Many writers on one S3 repository: no locks, nobody waits, nothing lost.

use super::*;
use std::process::{Command, Stdio};
use std::time::Instant;

fn spawn(cmd: &mut Command, log: &Path) -> Running {
    let f = fs::File::create(log).unwrap();
    Running(cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(f).spawn().unwrap())
}

fn finish(child: &mut Running, log: &Path) -> i32 {
    let status = wait_deadline(child, TIMEOUT).unwrap_or_else(|| panic!("did not end\n{}", read(log)));
    status_code(status)
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

/// The server gives a name to exactly one of many concurrent creators:
/// 24 `init`s of one location at once, three times, each with exactly
/// one winner, and the winner's repository works.
#[test]
fn concurrent_creates_of_one_name_have_exactly_one_winner() {
    let Some(endpoint) = endpoint() else { return };
    for round in 0..3 {
        let mut w = World::new();
        w.repo = format!("s3://{}", new_location(&endpoint)).into();
        w.env = s3_env(&endpoint);
        let logs: Vec<PathBuf> = (0..24).map(|i| w.path(&format!("init{i}.log"))).collect();
        let mut inits: Vec<Running> = logs.iter().map(|l| spawn(w.cmd().arg("init"), l)).collect();
        let codes: Vec<i32> = inits.iter_mut().zip(&logs).map(|(c, l)| finish(c, l)).collect();
        let winners = codes.iter().filter(|&&c| c == 0).count();
        assert_eq!(winners, 1, "round {round}: exit codes {codes:?}");
        for (code, log) in codes.iter().zip(&logs) {
            if *code != 0 {
                assert!(read(log).contains("already exists"), "round {round}: {}", read(log));
            }
        }
        let src = w.path("src");
        write_files(&src, "f", 2, 1000, round);
        w.save(&src, &[]);
        check_ok(&w, "race winner");
    }
}

/// Four hosts save into one repository at once while gc runs in a loop
/// beside them and old snapshots are forgotten: every save succeeds,
/// every snapshot restores exactly, check finds nothing wrong.
#[test]
fn four_hosts_save_at_once_beside_a_gc_loop() {
    let Some(endpoint) = endpoint() else { return };
    let w = s3_world(&endpoint);
    let dirs: Vec<PathBuf> = (0..4)
        .map(|i| {
            let d = w.path(&format!("host{i}"));
            write_files(&d.join("shared"), "s", 4, 500_000, 7);
            write_files(&d.join("own"), "o", 4, 500_000, 100 * (i + 1));
            d
        })
        .collect();
    for round in 0..2u64 {
        let logs: Vec<PathBuf> = (0..4).map(|i| w.path(&format!("save{round}-{i}.log"))).collect();
        let mut saves: Vec<Running> = dirs
            .iter()
            .zip(&logs)
            .enumerate()
            .map(|(i, (d, l))| spawn(w.cmd().args(["save", "--host", &format!("h{i}")]).arg(d), l))
            .collect();
        let mut gcs = 0;
        let started = Instant::now();
        while saves.iter_mut().any(|s| s.try_wait().unwrap().is_none()) {
            assert!(started.elapsed() < TIMEOUT, "saves did not finish");
            gc(&w, &["--grace", "0s"]);
            gcs += 1;
        }
        for (s, l) in saves.iter_mut().zip(&logs) {
            assert_eq!(finish(s, l), 0, "round {round}: {}", read(l));
        }
        assert!(gcs > 0);
        // Change every tree for the next round; forget the first round.
        for (i, d) in dirs.iter().enumerate() {
            write_files(&d.join("own"), &format!("r{round}-"), 2, 300_000, 1000 * (round + 1) + i as u64);
        }
    }
    let all = w.list();
    assert_eq!(all.len(), 8);
    let first_round: Vec<String> = all.iter().take(4).map(|s| s["id"].as_str().unwrap().to_string()).collect();
    w.chkfs([&["forget"][..], &first_round.iter().map(String::as_str).collect::<Vec<_>>()].concat()).ok();
    gc(&w, &[]);
    check_ok(&w, "after the writers");
    for (i, d) in dirs.iter().enumerate() {
        let latest = w.list().into_iter().find(|s| s["host"] == format!("h{i}")).unwrap();
        let out = w.path(&format!("out{i}"));
        w.restore(latest["id"].as_str().unwrap(), &out);
        // The last round saved the tree before its last change.
        let newest: Vec<_> = fs::read_dir(d.join("own")).unwrap().flatten().map(|e| e.file_name()).collect();
        let restored: Vec<_> = fs::read_dir(out.join("own")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(restored.len() + 2, newest.len(), "host {i}");
        for name in restored {
            assert_eq!(fs::read(out.join("own").join(&name)).unwrap(), fs::read(d.join("own").join(&name)).unwrap());
        }
        assert_diff_equal(&d.join("shared"), &out.join("shared"), &[]);
    }
}

/// kill -9 of a save and of a gc at any moment leaves a repository that
/// passes check --read-data; a later gc reclaims what the dead save left.
#[test]
fn kill_9_of_writers_leaves_a_sound_repository() {
    let Some(endpoint) = endpoint() else { return };
    let w = s3_world(&endpoint);
    let src = w.path("src");
    write_files(&src, "k", 8, 4 << 20, 77);
    let kept = w.path("kept");
    write_files(&kept, "x", 3, 100_000, 78);
    w.save(&kept, &[]);
    for delay_ms in [50u64, 300, 900] {
        let log = w.path("save.log");
        let mut save = spawn(w.cmd().arg("save").arg(&src), &log);
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(save.id() as i32, libc::SIGKILL) };
        finish(&mut save, &log);
        check_ok(&w, &format!("save killed after {delay_ms} ms"));
    }
    let log = w.path("gc.log");
    let mut g = spawn(w.cmd().arg("gc"), &log);
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: as above.
    unsafe { libc::kill(g.id() as i32, libc::SIGKILL) };
    finish(&mut g, &log);
    check_ok(&w, "gc killed");
    let report = gc(&w, &[]);
    assert_eq!(report["packs_condemned"], 0, "dead writers hold nothing back: {report}");
    check_ok(&w, "after a full gc");
    // Each killed save wrote no snapshot, or a complete one.
    for s in w.list() {
        let from = if s["path"].as_str() == src.to_str() { &src } else { &kept };
        assert_restores(&w, s["id"].as_str().unwrap(), from, s["id"].as_str().unwrap());
    }
}
