//! What a new user meets first: help, the manual, completions, and
//! messages that say what happened in plain words.

mod common;

use common::*;
use std::fs;
use std::process::Command;
use std::time::Duration;

#[test]
fn help_is_reachable_every_way_and_names_arguments_as_the_usage_does() {
    let w = World::new();
    let top = w.chkfs(["--help"]);
    top.ok();
    assert!(top.stdout_str().contains("chkfs man"), "--help points to the manual:\n{}", top.stdout_str());
    for cmd in ["man", "completions", "help"] {
        assert!(
            top.stdout_str().lines().any(|l| l.trim_start().starts_with(cmd)),
            "{cmd} listed:\n{}",
            top.stdout_str()
        );
    }
    let help_help = w.chkfs(["help", "--help"]);
    help_help.ok();
    assert!(help_help.stdout_str().contains("Usage: chkfs help"), "{}", help_help.stdout_str());
    let mount = w.chkfs(["help", "mount"]);
    mount.ok();
    let text = mount.stdout_str();
    assert!(!text.contains('\x1b'), "no terminal escapes when piped");
    assert!(text.contains("Usage: chkfs mount [OPTIONS] [REPO] <MOUNTPOINT>"), "{text}");
    assert!(text.contains("[REPO]") && text.contains("<MOUNTPOINT>") && !text.contains("<PATH>"), "{text}");
    assert_eq!(w.chkfs(["mount", "--help"]).stdout_str(), w.chkfs(["help", "mount"]).stdout_str());
    let nosuch = w.chkfs(["help", "nosuch"]);
    assert_eq!(nosuch.code, 2, "{}", nosuch.stderr);
    assert!(nosuch.stderr.contains("no command \"nosuch\""), "{}", nosuch.stderr);
    let man = w.chkfs(["man"]);
    man.ok();
    assert!(man.stdout_str().starts_with(".ie") || man.stdout_str().contains(".TH chkfs"), "a man page");
}

#[test]
fn completions_load_into_bash_and_generate_for_zsh_and_fish() {
    let w = World::new();
    let script = w.path("chkfs.bash");
    let out = w.chkfs(["completions", "bash"]);
    out.ok();
    fs::write(&script, &out.stdout).unwrap();
    // Loaded by bash, asked to complete `chkfs sa`: the completion
    // function must offer `save` and nothing that does not start so.
    let probe = format!(
        "source {}; COMP_WORDS=(chkfs sa); COMP_CWORD=1; COMP_LINE='chkfs sa'; COMP_POINT=8; _chkfs chkfs sa chkfs; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let bash = run_with_timeout(Command::new("bash").arg("--norc").arg("-c").arg(&probe), Duration::from_secs(20));
    bash.ok();
    let offered: Vec<String> = bash.stdout_str().lines().map(str::to_string).collect();
    assert_eq!(offered, ["save"], "bash offered {offered:?}; stderr: {}", bash.stderr);
    for shell in ["zsh", "fish"] {
        let out = w.chkfs(["completions", shell]);
        out.ok();
        assert!(out.stdout_str().contains("restore"), "{shell} completions name the commands");
    }
    assert_eq!(w.chkfs(["completions", "tcsh"]).code, 2, "an unknown shell is a usage error");
}

#[test]
fn counts_agree_and_plain_check_says_what_it_did_not_read() {
    let w = World::with_repo();
    let empty = w.chkfs(["restore", "latest", w.path("out").to_str().unwrap()]);
    assert_eq!(empty.code, 1);
    assert!(empty.stderr.contains("no snapshots yet"), "{}", empty.stderr);
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("one"), "1").unwrap();
    w.save(&src, &[]);
    let list = w.chkfs(["list"]);
    list.ok();
    assert!(list.stderr.lines().any(|l| l == "1 snapshot"), "{}", list.stderr);
    let restored = w.chkfs(["restore", "latest", w.path("out").to_str().unwrap()]);
    restored.ok();
    assert!(restored.stderr.starts_with("restored 1 file, 1 directory, 1 B"), "{}", restored.stderr);
    let check = w.chkfs(["check"]);
    check.ok();
    assert!(check.stderr.contains("1 snapshot, 1 tree, "), "{}", check.stderr);
    assert!(check.stderr.contains("--read-data"), "plain check says what it did not read: {}", check.stderr);
    let full = w.chkfs(["check", "--read-data"]);
    full.ok();
    assert!(!full.stderr.contains("were not read"), "{}", full.stderr);
    let id = w.chkfs(["list", "--json"]).json()[0]["id"].as_str().unwrap().to_string();
    let forget = w.chkfs(["forget", &id]);
    forget.ok();
    assert!(forget.stderr.contains("forgot 1 snapshot, kept 0"), "{}", forget.stderr);
}

#[test]
fn gc_speaks_in_one_tense() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("one"), "1").unwrap();
    let id = w.save(&src, &[])["id"].as_str().unwrap().to_string();
    w.chkfs(["forget", &id]).ok();
    let dry = w.chkfs(["gc", "-n"]);
    dry.ok();
    let last = dry.stderr.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("would delete 2 packs, rewrite 0, reclaim about "), "{last}");
    let real = w.chkfs(["gc"]);
    real.ok();
    let last = real.stderr.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("deleted 2 packs, rewrote 0 into 0, reclaimed "), "{last}");
}

#[test]
fn gc_dry_run_estimates_what_gc_reclaims() {
    let w = World::with_repo();
    let d = w.path("d");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("r1"), random_bytes(300_000, 1)).unwrap();
    fs::write(d.join("r2"), random_bytes(200_000, 2)).unwrap();
    fs::write(d.join("txt"), "hello\n".repeat(20_000)).unwrap();
    let first = w.save(&d, &[])["id"].as_str().unwrap().to_string();
    fs::write(d.join("r3"), random_bytes(100_000, 3)).unwrap();
    let second = w.save(&d, &[])["id"].as_str().unwrap().to_string();
    fs::remove_file(d.join("r2")).unwrap();
    w.save(&d, &[]);
    w.chkfs(["forget", &first, &second]).ok();
    let estimate = w.chkfs(["gc", "--json", "-n", "--max-waste", "0"]);
    estimate.ok();
    let real = w.chkfs(["gc", "--json", "--max-waste", "0"]);
    real.ok();
    let (e, r) =
        (estimate.json()["bytes_reclaimed"].as_f64().unwrap(), real.json()["bytes_reclaimed"].as_f64().unwrap());
    assert!(r > 150_000.0, "the removed file's chunks are reclaimed: {r}");
    assert!((e - r).abs() <= 0.25 * r, "dry run said {e} bytes, gc reclaimed {r}");
}
