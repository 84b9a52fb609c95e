//! The scheduled-checkpoint examples in contrib/: the systemd units pass
//! `systemd-analyze verify`, and the crontab line takes a checkpoint.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const UNITS: [&str; 2] = ["chkfs-save.service", "chkfs-save.timer"];

/// The units with chkfs where the test built it (the unit expects it in
/// ~/.cargo/bin), written into `dir`.
fn units_in(dir: &Path) {
    let chkfs = Path::new(CHKFS).canonicalize().unwrap();
    for name in UNITS {
        let text =
            fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd").join(name)).unwrap();
        fs::write(dir.join(name), text.replace("%h/.cargo/bin/chkfs", chkfs.to_str().unwrap())).unwrap();
    }
}

fn verify(dir: &Path) -> Out {
    let paths: Vec<_> = UNITS.iter().map(|n| dir.join(n)).collect();
    // The manual is installed apart (`chkfs man > ~/.local/share/man/man1/chkfs.1`).
    run_with_timeout(Command::new("systemd-analyze").args(["verify", "--man=no"]).args(&paths), Duration::from_secs(60))
}

#[test]
fn the_systemd_units_verify_and_a_broken_one_would_not() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "systemd-analyze is missing; CI must have it");
        eprintln!("\n*** SKIPPING systemd unit test: systemd-analyze is missing ***\n");
        return;
    }
    let w = World::new();
    let dir = w.path("units");
    fs::create_dir_all(&dir).unwrap();
    units_in(&dir);
    let out = verify(&dir);
    assert_eq!(out.code, 0, "systemd-analyze verify: {}{}", out.stdout_str(), out.stderr);
    // The same check on a unit with a mistake fails: the test can tell.
    let service = dir.join(UNITS[0]);
    let text = fs::read_to_string(&service).unwrap();
    fs::write(&service, text.replace("ExecStart=", "ExecStart=/nonexistent/")).unwrap();
    assert_ne!(verify(&dir).code, 0, "a unit naming a missing program passed verify");
    let calendar =
        run_with_timeout(Command::new("systemd-analyze").args(["calendar", "hourly"]), Duration::from_secs(30));
    calendar.ok();
}

#[test]
fn the_crontab_line_takes_a_checkpoint_and_applies_the_retention() {
    let w = World::with_repo();
    let bin = w.home.join(".cargo/bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(Path::new(CHKFS).canonicalize().unwrap(), bin.join("chkfs")).unwrap();
    let config = w.home.join(".config/chkfs");
    fs::create_dir_all(&config).unwrap();
    let repo = w.repo.to_str().unwrap();
    fs::write(config.join("config.toml"), format!("repository = {repo:?}\n[forget]\nkeep_last = 1\n")).unwrap();
    fs::write(w.home.join("notes.txt"), "remember").unwrap();
    let crontab = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/crontab")).unwrap();
    let line = crontab.lines().find(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap();
    let command = line.split_whitespace().skip(5).collect::<Vec<_>>().join(" ");
    for _ in 0..2 {
        let out = run_with_timeout(
            Command::new("/bin/sh")
                .arg("-c")
                .arg(&command)
                .env_clear()
                .env("HOME", &w.home)
                .env("PATH", "/usr/bin:/bin"),
            TIMEOUT,
        );
        assert_eq!(out.code, 0, "{}\n{}", out.stdout_str(), out.stderr);
    }
    let list = w.chkfs(["list", "--json"]);
    let snaps = list.json();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 1, "two checkpoints, the retention keeps one: {snaps:?}");
    assert_eq!(snaps[0]["path"], w.home.canonicalize().unwrap().to_str().unwrap());
}
