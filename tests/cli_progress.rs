//! What save, restore and gc tell the person running them: a bar on a
//! terminal (cleared before the summary), nothing when piped, nothing but
//! errors with -q, JSON status lines with --json, file names with -v.

mod common;

use common::pty::{render, run_on_pty, PtyRun};
use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;

/// 300 files of 200 KiB of random bytes (58.59 MiB), in two directories.
const FILES: usize = 300;
const TOTAL: &str = "58.59 MiB";

fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("sub")).unwrap();
    for i in 0..FILES {
        let dir = if i % 3 == 0 { root.join("sub") } else { root.to_path_buf() };
        fs::write(dir.join(format!("file{i:03}.bin")), random_bytes(200 << 10, i as u64 + 1)).unwrap();
    }
}

fn on_pty(w: &World, args: &[&str]) -> PtyRun {
    let mut cmd: Command = w.cmd();
    cmd.args(args);
    let run = run_on_pty(cmd, "\u{0}never", &[], TIMEOUT);
    assert_eq!(run.code, 0, "{args:?} on a terminal failed; screen:\n{}", run.screen);
    run
}

/// The last frame: what the terminal shows once the command ended.
#[track_caller]
fn assert_clean_end(run: &PtyRun, last: &str) {
    let shown = render(&run.screen);
    let end = shown.last().cloned().unwrap_or_default();
    assert!(end.starts_with(last), "the last line should be the summary ({last}...), got {end:?}; screen:\n{shown:#?}");
    for line in &shown {
        assert!(
            !line.contains("[=") && !line.contains(" eta ") && !line.contains("scanning:"),
            "a bar was left on the screen: {line:?}; screen:\n{shown:#?}"
        );
    }
}

#[test]
fn save_restore_and_gc_draw_a_bar_on_a_terminal_and_clear_it() {
    let w = World::with_repo();
    let src = w.path("src");
    make_tree(&src);

    let save = on_pty(&w, &["save", src.to_str().unwrap()]);
    // The total of bytes to read, files done of the total and the bytes
    // added (the file being read: the next test).
    assert!(save.screen.contains(&format!("/{TOTAL}")), "no total on the bar:\n{}", save.screen);
    assert!(save.screen.contains(&format!("/{FILES} files")), "no file count:\n{}", save.screen);
    assert!(save.screen.contains(", added "), "no bytes added:\n{}", save.screen);
    assert!(save.screen.contains("/s eta "), "no rate and time left:\n{}", save.screen);
    assert!(!save.screen.contains("0 B/0 B"), "an empty bar was drawn:\n{}", save.screen);
    assert_clean_end(&save, "snapshot ");

    // An unchanged save reads nothing: no empty bar, just the summary.
    let again = on_pty(&w, &["save", src.to_str().unwrap()]);
    assert!(!again.screen.contains("0 B/0 B") && !again.screen.contains("[="), "{}", again.screen);
    assert_clean_end(&again, "snapshot ");

    let target = w.path("restored");
    let restore = on_pty(&w, &["restore", "latest", target.to_str().unwrap()]);
    assert!(restore.screen.contains(&format!("/{TOTAL}")), "no total on the restore bar:\n{}", restore.screen);
    assert!(restore.screen.contains(&format!("/{FILES} files")), "no file count:\n{}", restore.screen);
    assert_clean_end(&restore, "restored 300 files");
    assert_diff_equal(&src, &target, &[]);

    w.chkfs(["forget", "--keep-last", "1"]).ok();
    w.chkfs(["forget", "latest"]).ok();
    let gc = on_pty(&w, &["gc"]);
    assert!(gc.screen.contains(" snapshots") || gc.screen.contains(" packs"), "no gc bar:\n{}", gc.screen);
    assert_clean_end(&gc, "deleted ");
}

/// The bar names the file being read or written. A frame is drawn ten
/// times a second and a fast machine saves 58 MiB in one, so the data grows
/// until a save and a restore last several frames.
#[test]
fn the_bar_names_the_file_being_saved_and_restored() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    let (mut named_in_save, mut named_in_restore) = (false, false);
    for (round, mib) in [48usize, 160, 480].into_iter().enumerate() {
        let name = format!("big{round}.bin");
        fs::write(src.join(&name), random_bytes(mib << 20, round as u64 + 7)).unwrap();
        let save = on_pty(&w, &["save", src.to_str().unwrap()]);
        assert_clean_end(&save, "snapshot ");
        named_in_save |= save.screen.contains(&name);
        let target = w.path(&format!("restored{round}"));
        let restore = on_pty(&w, &["restore", "latest", target.to_str().unwrap()]);
        assert_clean_end(&restore, "restored ");
        named_in_restore |= restore.screen.contains(&format!("restored{round}/big"));
        fs::remove_dir_all(&target).unwrap();
        if named_in_save && named_in_restore {
            return;
        }
    }
    panic!("the bar never named a file being read ({named_in_save}) or written ({named_in_restore})");
}

#[test]
fn piped_commands_print_no_progress_and_quiet_ones_nothing() {
    let w = World::with_repo();
    let src = w.path("src");
    make_tree(&src);
    let target = w.path("restored");
    let src_s = src.to_str().unwrap();
    let target_s = target.to_str().unwrap();

    let save = w.chkfs(["save", src_s]);
    save.ok();
    let restore = w.chkfs(["restore", "latest", target_s]);
    restore.ok();
    for (what, out, summary) in [("save", &save, "snapshot "), ("restore", &restore, "restored ")] {
        assert!(!out.stderr.contains('\u{1b}') && !out.stderr.contains('\r'), "{what}: escape codes:\n{}", out.stderr);
        assert!(!out.stderr.contains("eta") && !out.stderr.contains("[="), "{what}: a bar:\n{}", out.stderr);
        assert!(!out.stderr.contains("message_type"), "{what}: status lines without --json:\n{}", out.stderr);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: only the summary:\n{}", out.stderr);
        assert!(lines[0].starts_with(summary), "{what}: {}", out.stderr);
    }

    fs::write(src.join("new.txt"), b"x").unwrap();
    for args in [
        vec!["-q", "save", src_s],
        vec!["save", "--quiet", src_s],
        vec!["restore", "-q", "--overwrite", "always", "latest", target_s],
        vec!["check", "-q"],
        vec!["forget", "-q", "--keep-last", "1"],
        vec!["gc", "-q"],
        vec!["diff", "-q", "latest", "latest"],
    ] {
        let out = w.chkfs(&args);
        out.ok();
        assert_eq!(out.stderr, "", "{args:?} printed on standard error with -q");
    }
    // On a terminal too: -q draws no bar.
    let run = on_pty(&w, &["-q", "save", src_s]);
    assert_eq!(render(&run.screen), Vec::<String>::new(), "-q drew on the terminal:\n{}", run.screen);
    // -q with --json: the JSON on standard output, nothing else.
    let out = w.chkfs(["save", "-q", "--json", src_s]);
    out.ok();
    assert_eq!(out.stderr, "");
    assert!(out.json()["id"].is_string());
    // -q and -v together are refused.
    w.chkfs(["-q", "-v", "list"]).expect_code(2);
}

fn status_lines(stderr: &str, action: &str) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    // The summary line stays on standard error; status lines are the
    // lines that begin with '{'.
    for line in stderr.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line on stderr ({e}): {line:?}"));
        assert_eq!(v["message_type"], "status", "{line}");
        for key in ["percent_done", "bytes_done", "total_bytes", "seconds_elapsed"] {
            assert!(v[key].is_number(), "{key} missing in {line}");
        }
        if v["action"] == action {
            found.push(v);
        }
    }
    found
}

#[test]
fn json_status_lines_on_stderr_and_the_summary_on_stdout() {
    let w = World::with_repo();
    let src = w.path("src");
    make_tree(&src);
    let out = w.chkfs(["save", "--json", src.to_str().unwrap()]);
    out.ok();
    let summary = out.json();
    assert_eq!(summary["files"], FILES as u64);
    let saving = status_lines(&out.stderr, "save");
    assert!(saving.len() >= 2, "at least a first and a last status line:\n{}", out.stderr);
    let bytes: Vec<u64> = saving.iter().map(|v| v["bytes_done"].as_u64().unwrap()).collect();
    assert!(bytes.windows(2).all(|p| p[0] <= p[1]), "bytes_done went down: {bytes:?}");
    assert!(bytes[0] < *bytes.last().unwrap(), "bytes_done never grew: {bytes:?}");
    let last = saving.last().unwrap();
    assert_eq!(last["bytes_done"], last["total_bytes"]);
    assert_eq!(last["total_bytes"], (FILES as u64) * (200 << 10));
    assert_eq!(last["files_done"], FILES as u64);
    assert_eq!(last["total_files"], FILES as u64);
    assert_eq!(last["percent_done"], 1.0);
    assert!(last["bytes_added"].as_u64().unwrap() > 0);
    assert!(!status_lines(&out.stderr, "scan").is_empty(), "no scan status:\n{}", out.stderr);

    let target = w.path("restored");
    let out = w.chkfs(["restore", "--json", "latest", target.to_str().unwrap()]);
    out.ok();
    assert_eq!(out.json()["files"], FILES as u64);
    let restoring = status_lines(&out.stderr, "restore");
    let last = restoring.last().expect("restore status lines");
    assert_eq!(last["files_done"], FILES as u64);
    assert_eq!(last["bytes_done"], (FILES as u64) * (200 << 10));

    let out = w.chkfs(["check", "--read-data", "--json"]);
    out.ok();
    assert!(out.json()["ok"].as_bool().unwrap());
    let read = status_lines(&out.stderr, "read_packs");
    assert!(read.last().is_some_and(|v| v["percent_done"] == 1.0), "{}", out.stderr);
}

#[test]
fn init_json_describes_the_new_repository() {
    let w = World::new();
    let out = w.chkfs(["init", "--json"]);
    out.ok();
    let v = out.json();
    assert_eq!(v["encrypted"], false);
    let repo = fs::canonicalize(&w.repo).unwrap();
    let path = v["path"].as_str().expect("a local repository has a path");
    assert_eq!(fs::canonicalize(path).unwrap(), repo);
    assert!(v["location"].as_str().unwrap().ends_with("repo"));
    assert!(out.stderr.contains("created repository"), "{}", out.stderr);
}

#[test]
fn verbose_names_new_and_changed_files_and_very_verbose_the_rest() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    for name in ["a.txt", "b.txt", "d/c.txt"] {
        fs::write(src.join(name), name).unwrap();
    }
    let src_s = src.to_str().unwrap();
    let first = w.chkfs(["save", "-v", src_s]);
    first.ok();
    for name in ["a.txt", "b.txt", "d/c.txt"] {
        assert!(first.stderr.contains(&format!("new       {src_s}/{name}\n")), "{name} not listed:\n{}", first.stderr);
    }
    // One file changed, one added, two left alone.
    fs::write(src.join("b.txt"), "changed, and longer").unwrap();
    fs::write(src.join("d/e.txt"), "e").unwrap();
    let again = w.chkfs(["save", "-v", src_s]);
    again.ok();
    assert!(again.stderr.contains(&format!("changed   {src_s}/b.txt\n")), "{}", again.stderr);
    assert!(again.stderr.contains(&format!("new       {src_s}/d/e.txt\n")), "{}", again.stderr);
    assert!(!again.stderr.contains("a.txt") && !again.stderr.contains("c.txt"), "unchanged listed:\n{}", again.stderr);
    let very = w.chkfs(["save", "-vv", src_s]);
    very.ok();
    assert!(very.stderr.contains(&format!("unchanged {src_s}/a.txt\n")), "{}", very.stderr);

    let target = w.path("out");
    let restore = w.chkfs(["restore", "-v", "latest", target.to_str().unwrap()]);
    restore.ok();
    let target_s = target.to_str().unwrap();
    for name in ["a.txt", "b.txt", "d/c.txt", "d/e.txt"] {
        assert!(restore.stderr.contains(&format!("restored  {target_s}/{name}\n")), "{}", restore.stderr);
    }
}

/// Ctrl-C typed at the terminal while the bar is drawn: the bar goes
/// before the message that says what happened.
#[test]
fn ctrl_c_clears_the_bar_before_the_message() {
    let w = World::with_repo();
    let src = w.path("big");
    fs::create_dir_all(&src).unwrap();
    // Large enough to be mid-way when the first frame is drawn; a machine
    // that saves it all before ^C lands gets more data to save.
    let mut seed = 100;
    let run = (1..=3)
        .find_map(|round| {
            for _ in 0..48 * round {
                fs::write(src.join(format!("f{seed:03}")), random_bytes(4 << 20, seed)).unwrap();
                seed += 1;
            }
            let mut cmd: Command = w.cmd();
            cmd.args(["save", src.to_str().unwrap()]);
            // "eta" is on the first frame of the bar; ^C is then typed (the
            // pty's line discipline turns it into SIGINT for the command).
            let run = run_on_pty(cmd, " eta ", &["\u{3}"], TIMEOUT);
            if run.code == 0 {
                w.chkfs(["forget", "latest"]).ok();
                return None;
            }
            Some(run)
        })
        .unwrap_or_else(|| panic!("^C never interrupted the save"));
    let shown: Vec<String> =
        render(&run.screen).into_iter().filter(|l| !l.trim().is_empty() && l.trim() != "^C").collect();
    let end = shown.last().cloned().unwrap_or_default();
    assert!(end.contains("interrupted"), "the last line should say the save was interrupted: {shown:#?}");
    for line in &shown {
        assert!(!line.contains("[=") && !line.contains(" eta "), "a bar was left on the screen: {line:?}\n{shown:#?}");
    }
    let listed = w.chkfs(["list", "--json"]);
    assert_eq!(listed.json().as_array().map(|a| a.len()), Some(0), "an interrupted save makes no snapshot");
}
