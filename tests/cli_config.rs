//! The configuration file: repository, save settings and retention, with
//! flags and the environment above it.

mod common;

use common::*;
use std::fs;

fn write_config(w: &World, text: &str) -> std::path::PathBuf {
    let dir = w.home.join(".config/chkfs");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("config.toml"), text).unwrap();
    dir.join("config.toml")
}

fn ids(out: &Out) -> Vec<String> {
    out.json().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn the_configuration_names_the_repository_and_what_save_and_forget_do() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(src.join("node_modules")).unwrap();
    fs::write(src.join("keep.txt"), "keep").unwrap();
    fs::write(src.join("junk.tmp"), "junk").unwrap();
    fs::write(src.join("node_modules/x"), "x").unwrap();
    write_config(
        &w,
        &format!(
            "repository = {:?}\n[save]\nexclude = [\"*.tmp\", \"node_modules/\"]\ntags = [\"cfg\"]\n[forget]\nkeep_last = 1\n",
            w.repo.to_str().unwrap()
        ),
    );
    // No --repo and no CHKFS_REPO: the configuration's repository.
    let run = |args: &[&str]| run_with_timeout(w.bare_cmd().args(args), TIMEOUT);
    let saved = run(&["save", "--json", "--tag", "flag", src.to_str().unwrap()]);
    saved.ok();
    let id = saved.json()["id"].as_str().unwrap().to_string();
    let listed = run(&["ls", "-R", &id]);
    listed.ok();
    let names = listed.stdout_str();
    assert!(names.contains("/keep.txt") && !names.contains("junk.tmp") && !names.contains("node_modules"), "{names}");
    let list = run(&["list", "--json"]);
    assert_eq!(list.json()[0]["tags"], serde_json::json!(["cfg", "flag"]), "the configuration's tags and the flag's");

    // forget with nothing on the command line applies [forget].
    run(&["save", src.to_str().unwrap()]).ok();
    assert_eq!(ids(&run(&["list", "--json"])).len(), 2);
    let forgot = run(&["forget"]);
    forgot.ok();
    assert!(forgot.stderr.contains("configuration file"), "{}", forgot.stderr);
    assert_eq!(ids(&run(&["list", "--json"])).len(), 1, "keep_last = 1");

    // --repo and CHKFS_REPO win over the file.
    let other = w.path("other");
    run(&["init", other.to_str().unwrap()]).ok();
    let flagged = run_with_timeout(w.bare_cmd().arg("--repo").arg(&other).args(["list", "--json"]), TIMEOUT);
    assert_eq!(ids(&flagged).len(), 0);
    let env = run_with_timeout(w.bare_cmd().env("CHKFS_REPO", &other).args(["list", "--json"]), TIMEOUT);
    assert_eq!(ids(&env).len(), 0);
}

#[test]
fn a_wrong_configuration_is_refused_with_its_place() {
    let w = World::with_repo();
    let run = |args: &[&str]| run_with_timeout(w.cmd().args(args), TIMEOUT);
    let path = write_config(&w, "[save]\ngitignore = true\n");
    let out = run(&["list"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains(path.to_str().unwrap()) && out.stderr.contains("gitignore"), "{}", out.stderr);
    write_config(&w, "[forget]\nkeep_daily = 0\n");
    let out = run(&["forget"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("would forget everything"), "{}", out.stderr);
    write_config(&w, "");
    run(&["list"]).ok();
    // A file CHKFS_CONFIG names must exist; the default place need not.
    let missing = run_with_timeout(w.cmd().env("CHKFS_CONFIG", w.path("nope.toml")).arg("list"), TIMEOUT);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    fs::remove_file(&path).unwrap();
    run(&["list"]).ok();
}

#[test]
fn a_configuration_that_is_not_a_regular_file_never_hangs_a_command() {
    let w = World::with_repo();
    let dir = w.home.join(".config/chkfs");
    fs::create_dir_all(&dir).unwrap();
    sh("mkfifo", [dir.join("config.toml").as_os_str()]).ok();
    let out = run_with_timeout(w.cmd().arg("list"), std::time::Duration::from_secs(20));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
}
