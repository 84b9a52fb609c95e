//! Snapshot tags: given at save time, changed by `chkfs tag`, and used to
//! choose snapshots everywhere `--host` and `--path` do.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;

fn ids_listed(w: &World, args: &[&str]) -> BTreeSet<String> {
    let out = w.chkfs([&["list", "--json"][..], args].concat());
    out.ok();
    out.json().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

fn id_of(saved: &serde_json::Value) -> String {
    saved["id"].as_str().unwrap().to_string()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn tags_are_saved_listed_and_choose_snapshots() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "one").unwrap();
    let daily = id_of(&w.save(&src, &["--tag", "daily"]));
    fs::write(src.join("f"), "two").unwrap();
    let both = id_of(&w.save(&src, &["--tag", "weekly,daily", "--tag", "daily"]));
    fs::write(src.join("f"), "three").unwrap();
    let none = id_of(&w.save(&src, &[]));

    let out = w.chkfs(["list", "--json"]);
    let list = out.json();
    let tags_of = |id: &str| -> Vec<String> {
        let row = list.as_array().unwrap().iter().find(|s| s["id"] == id).unwrap();
        row["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
    };
    assert_eq!(tags_of(&both), ["daily", "weekly"], "sorted, each once");
    assert!(tags_of(&none).is_empty());
    let text = w.chkfs(["list"]);
    assert!(
        text.stdout_str().lines().any(|l| l.starts_with(&both) && l.ends_with("[daily,weekly]")),
        "{}",
        text.stdout_str()
    );

    assert_eq!(ids_listed(&w, &["--tag", "daily"]), set(&[&daily, &both]));
    assert_eq!(ids_listed(&w, &["--tag", "daily,weekly"]), set(&[&both]), "every tag given must be there");
    assert_eq!(ids_listed(&w, &["--tag", "nope"]), BTreeSet::new());

    // latest among the tagged ones; a named snapshot the tag leaves out is refused.
    let out = w.chkfs(["dump", "--tag", "daily", "latest:f"]);
    out.ok();
    assert_eq!(out.stdout, b"two");
    let refused = w.chkfs(["dump", "--tag", "weekly", &format!("{daily}:f")]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("leaves out"), "{}", refused.stderr);

    // forget with a policy counts only the tagged snapshots.
    let out = w.chkfs(["forget", "--keep-last", "1", "--tag", "daily"]);
    out.ok();
    assert_eq!(ids_listed(&w, &[]), set(&[&both, &none]), "the older daily one goes; the untagged one stays");

    let bad = w.chkfs(["save", "--tag", "a\u{7}b", src.to_str().unwrap()]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("control character"), "{}", bad.stderr);
}

#[test]
fn tag_changes_records_under_new_ids_and_leaves_the_rest() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "content").unwrap();
    let a = id_of(&w.save(&src, &["--tag", "old"]));
    let b = id_of(&w.save(&src, &[]));

    let out = w.chkfs(["tag", "--json", "--add", "keep,x", "--remove", "old", &a]);
    out.ok();
    let row = &out.json()[0];
    assert_eq!(row["old"], a.as_str());
    let a2 = row["new"].as_str().unwrap().to_string();
    assert_ne!(a2, a);
    assert_eq!(row["tags"], serde_json::json!(["keep", "x"]));
    assert_eq!(ids_listed(&w, &[]), set(&[&a2, &b]), "the old record is gone, the new one listed");
    // The new record is the same snapshot: same tree, same content.
    let restored = w.path("out");
    w.restore(&format!("{a2}:f"), &restored);
    assert_eq!(fs::read(restored.join("f")).unwrap(), b"content");

    // Nothing to change: the record keeps its id.
    let out = w.chkfs(["tag", "--json", "--add", "keep", &a2]);
    out.ok();
    assert!(out.json()[0]["new"].is_null());
    // Chosen by a filter instead of ids; --set replaces all.
    let out = w.chkfs(["tag", "--json", "--set", "only", "--tag", "keep"]);
    out.ok();
    assert_eq!(out.json().as_array().unwrap().len(), 1);
    assert_eq!(ids_listed(&w, &["--tag", "only"]).len(), 1);
    assert_eq!(ids_listed(&w, &["--tag", "keep"]).len(), 0);
    // Nothing named, nothing chosen, or nothing to do: usage errors.
    assert_eq!(w.chkfs(["tag", "--add", "t"]).code, 2);
    assert_eq!(w.chkfs(["tag", &b]).code, 2);
    let (code, _, check) = w.check();
    assert_eq!(code, 0, "{}", check.stderr);
}

#[test]
fn too_many_tags_are_refused_before_anything_is_written() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "content").unwrap();
    let id = id_of(&w.save(&src, &[]));
    let many: Vec<String> = (0..1030).map(|i| format!("t{i}")).collect();
    let many = many.join(",");
    let out = w.chkfs(["tag", "--add", &many, &id]);
    assert_ne!(out.code, 0, "1030 tags accepted: {}", out.stderr);
    let saved = w.chkfs(["save", "--tag", &many, src.to_str().unwrap()]);
    assert_eq!(saved.code, 2, "{}", saved.stderr);
    // Below the bound, through several runs: refused at the record that
    // would cross it, the snapshot intact.
    let half: Vec<String> = (0..600).map(|i| format!("a{i}")).collect();
    let out = w.chkfs(["tag", "--json", "--add", &half.join(","), &id]);
    out.ok();
    let id2 = out.json()[0]["new"].as_str().unwrap().to_string();
    let more: Vec<String> = (0..600).map(|i| format!("b{i}")).collect();
    let out = w.chkfs(["tag", "--add", &more.join(","), &id2]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert_eq!(ids_listed(&w, &[]), set(&[&id2]), "the snapshot is still there, once");
    let (code, _, check) = w.check();
    assert_eq!(code, 0, "{}", check.stderr);
}

#[test]
fn one_snapshot_named_twice_is_changed_once_and_quiet_means_quiet() {
    let w = World::with_repo();
    let src = w.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "content").unwrap();
    let id = id_of(&w.save(&src, &[]));
    let out = w.chkfs(["tag", "-q", "--add", "x", &id, &id[..6], "latest"]);
    out.ok();
    assert_eq!(out.stderr, "", "-q prints nothing on success");
    assert_eq!(ids_listed(&w, &["--tag", "x"]).len(), 1);
    assert_eq!(ids_listed(&w, &[]).len(), 1);
    let list = w.chkfs(["-q", "list"]);
    list.ok();
    assert_eq!(list.stderr, "");
}
