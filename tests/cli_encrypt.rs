//! Encrypted repositories (`init --encrypt`): what a reader of the
//! repository learns (nothing of names or contents), what a writer to it
//! can do (nothing that decrypts into wrong bytes), and the keys.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};

const PASSWORD: &str = "correct horse battery staple";
/// Cheap key derivation: the tests open repositories hundreds of times.
const CHEAP_KDF: [&str; 4] = ["--kdf-memory", "64", "--kdf-iterations", "1"];
const SECRET_NAME: &str = "quarterly-salaries-zq7x.txt";
const SECRET_TEXT: &str = "the password of the vault is swordfish-91827";

fn encrypted_world() -> World {
    let mut w = World::new();
    let pw = w.path("pw");
    fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    w.env.push(("CHKFS_PASSWORD_FILE".into(), pw.to_string_lossy().into()));
    let out = w.chkfs(["init", "--encrypt"].into_iter().chain(CHEAP_KDF));
    out.ok();
    assert!(out.stderr.contains("encrypted"), "{}", out.stderr);
    w
}

fn secret_tree(w: &World) -> PathBuf {
    let src = w.path("src");
    fs::create_dir_all(src.join("docs")).unwrap();
    fs::write(src.join("docs").join(SECRET_NAME), SECRET_TEXT.repeat(50)).unwrap();
    fs::write(src.join("big.bin"), random_bytes(3 << 20, 7)).unwrap();
    fs::write(src.join("text"), "line of text\n".repeat(20_000)).unwrap();
    src
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    find_files(dir, &|_| true)
}

fn with_password(w: &World, password_file: &Path) -> std::process::Command {
    let mut c = w.cmd();
    c.env("CHKFS_PASSWORD_FILE", password_file);
    c
}

#[test]
fn an_encrypted_repository_round_trips_and_shows_no_name_or_content() {
    let w = encrypted_world();
    let src = secret_tree(&w);
    let saved = w.save(&src, &[]);
    let target = w.path("out");
    w.restore(saved["id"].as_str().unwrap(), &target);
    assert_same_tree(&src, &target, false);
    let (code, report, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
    assert!(
        report["blobs_verified"].as_u64().unwrap_or(0) > 0 || out.stdout_str().contains("verified"),
        "{}",
        out.stdout_str()
    );

    // Nothing in storage carries a name, a path or content in the clear.
    let needles: [&[u8]; 4] = [SECRET_NAME.as_bytes(), b"swordfish", b"line of text", src.to_str().unwrap().as_bytes()];
    for file in files_under(&w.repo) {
        let bytes = fs::read(&file).unwrap();
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|win| win == needle),
                "{} holds {:?} in the clear",
                file.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
    // The same save into a plain repository does show them: the search
    // above can fail.
    let plain = World::with_repo();
    plain.save(&src, &[]);
    let shows = files_under(&plain.repo).iter().any(|f| {
        let b = fs::read(f).unwrap();
        b.windows(SECRET_NAME.len()).any(|win| win == SECRET_NAME.as_bytes())
    });
    assert!(shows, "a plain repository keeps names in the clear (lz4 leaves short literals)");
}

#[test]
fn a_wrong_or_missing_password_is_its_own_error() {
    let w = encrypted_world();
    let src = secret_tree(&w);
    w.save(&src, &[]);
    let wrong = w.path("wrong");
    fs::write(&wrong, "not it\n").unwrap();
    let out = run_with_timeout(with_password(&w, &wrong).arg("list"), TIMEOUT);
    out.expect_code(6);
    assert!(out.stderr.contains("wrong password"), "{}", out.stderr);
    assert!(!out.stderr.contains("damaged"), "{}", out.stderr);

    let mut none = w.cmd();
    none.env_remove("CHKFS_PASSWORD_FILE").stdin(std::process::Stdio::null());
    let out = run_with_timeout(none.arg("list"), TIMEOUT);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("CHKFS_PASSWORD_FILE"), "{}", out.stderr);

    // A command gives it too; its trailing newline is not part of it.
    let mut cmd = w.cmd();
    cmd.env_remove("CHKFS_PASSWORD_FILE").env("CHKFS_PASSWORD_COMMAND", format!("printf '%s\\r\\n' '{PASSWORD}'"));
    run_with_timeout(cmd.arg("list"), TIMEOUT).ok();
    let mut failing = w.cmd();
    failing.env_remove("CHKFS_PASSWORD_FILE").env("CHKFS_PASSWORD_COMMAND", "exit 3");
    let out = run_with_timeout(failing.arg("list"), TIMEOUT);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("CHKFS_PASSWORD_COMMAND"), "{}", out.stderr);
}

#[test]
fn keys_can_be_added_changed_and_removed_but_never_the_last() {
    let w = encrypted_world();
    let src = secret_tree(&w);
    w.save(&src, &[]);
    let keys = |w: &World| w.chkfs(["key", "list", "--json"]).json().as_array().unwrap().clone();
    let first = keys(&w);
    assert_eq!(first.len(), 1);
    let first_id = first[0]["id"].as_str().unwrap().to_string();

    let out = w.chkfs(["key", "remove", &first_id[..8]]);
    assert_ne!(out.code, 0, "the only key must not go");
    assert!(out.stderr.contains("only key") || out.stderr.contains("opened the repository with"), "{}", out.stderr);

    let second_pw = w.path("second");
    fs::write(&second_pw, "second password\n").unwrap();
    let mut add = w.cmd();
    add.env("CHKFS_NEW_PASSWORD_FILE", &second_pw).args(["key", "add"]).args(CHEAP_KDF);
    run_with_timeout(&mut add, TIMEOUT).ok();
    assert_eq!(keys(&w).len(), 2);
    run_with_timeout(with_password(&w, &second_pw).arg("list"), TIMEOUT).ok();

    // passwd replaces the key that opened the repository.
    let third_pw = w.path("third");
    fs::write(&third_pw, "third password\n").unwrap();
    let mut passwd = with_password(&w, &second_pw);
    passwd.env("CHKFS_NEW_PASSWORD_FILE", &third_pw).args(["key", "passwd"]).args(CHEAP_KDF);
    run_with_timeout(&mut passwd, TIMEOUT).ok();
    run_with_timeout(with_password(&w, &second_pw).arg("list"), TIMEOUT).expect_code(6);
    run_with_timeout(with_password(&w, &third_pw).arg("list"), TIMEOUT).ok();
    w.chkfs(["list"]).ok();

    // The key a command opened the repository with is not removed by it;
    // with another key it is, and leaves the repository to the third.
    let out = w.chkfs(["key", "remove", &first_id]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("opened the repository with"), "{}", out.stderr);
    run_with_timeout(with_password(&w, &third_pw).args(["key", "remove", &first_id]), TIMEOUT).ok();
    w.chkfs(["list"]).expect_code(6);
    let target = w.path("out");
    let out = run_with_timeout(with_password(&w, &third_pw).args(["restore", "latest"]).arg(&target), TIMEOUT);
    out.ok();
    assert_same_tree(&src, &target, false);
}

#[test]
fn flipped_bytes_anywhere_are_damage_never_wrong_bytes() {
    let w = encrypted_world();
    let src = secret_tree(&w);
    w.save(&src, &[]);
    let pristine = w.path("pristine");
    copy_tree(&w.repo, &pristine);
    let packs = pack_files(&w.repo);
    assert!(!packs.is_empty());
    let mut tried = 0;
    for pack in &packs {
        let len = fs::metadata(pack).unwrap().len();
        // The first block, the middle, the footer's end.
        for at in [40, len / 2, len - 20] {
            remove_tree(&w.repo);
            copy_tree(&pristine, &w.repo);
            let bytes = fs::read(pack).unwrap();
            let mut flipped = bytes.clone();
            flipped[at as usize] ^= 0x10;
            fs::write(pack, &flipped).unwrap();
            let (code, _, out) = w.check();
            assert_eq!(code, 4, "a flip at {at} of {} went unseen: {}", pack.display(), out.stderr);
            let target = w.path(&format!("out-{tried}"));
            let out = w.chkfs([std::ffi::OsStr::new("restore"), "latest".as_ref(), target.as_os_str()]);
            if out.code == 0 {
                assert_same_tree(&src, &target, false);
            }
            assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
            tried += 1;
        }
    }
    assert!(tried >= 3);
}

#[test]
fn a_snapshot_record_moved_under_another_name_does_not_open() {
    let w = encrypted_world();
    let src = secret_tree(&w);
    w.save(&src, &[]);
    fs::write(src.join("later"), "a later file").unwrap();
    w.save(&src, &[]);
    let snaps = find_files(&w.repo.join("snapshots"), &|p| p.extension().is_some_and(|e| e == "snap"));
    assert_eq!(snaps.len(), 2);
    // The first record's bytes replace the second's.
    fs::copy(&snaps[0], &snaps[1]).unwrap();
    let out = w.chkfs(["check"]);
    assert_eq!(out.code, 4, "a replayed record is damage: {}{}", out.stdout_str(), out.stderr);
    assert!(
        out.stdout_str().contains("authenticate") || out.stderr.contains("authenticate"),
        "{}{}",
        out.stdout_str(),
        out.stderr
    );
}

#[test]
fn objects_from_another_repository_or_a_plain_pack_are_refused() {
    let a = encrypted_world();
    let src = secret_tree(&a);
    a.save(&src, &[]);
    let b = encrypted_world();
    b.save(&src, &[]);
    // b's index files replace a's: sealed with another key.
    let a_index = find_files(&a.repo.join("index"), &|_| true);
    for f in &a_index {
        fs::remove_file(f).unwrap();
    }
    for f in find_files(&b.repo.join("index"), &|_| true) {
        fs::copy(&f, a.repo.join("index").join(f.file_name().unwrap())).unwrap();
    }
    let out = a.chkfs(["check"]);
    assert_ne!(out.code, 0, "{}", out.stdout_str());
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);

    // A plain repository's pack put into an encrypted one.
    let c = encrypted_world();
    c.save(&src, &[]);
    let plain = World::with_repo();
    plain.save(&src, &[]);
    let victim = pack_files(&c.repo).into_iter().max_by_key(|p| fs::metadata(p).unwrap().len()).unwrap();
    let intruder = pack_files(&plain.repo).into_iter().max_by_key(|p| fs::metadata(p).unwrap().len()).unwrap();
    fs::copy(&intruder, &victim).unwrap();
    let (code, _, out) = c.check();
    assert_eq!(code, 4, "{}", out.stderr);
    let target = c.path("out");
    let out = c.chkfs([std::ffi::OsStr::new("restore"), "latest".as_ref(), target.as_os_str()]);
    assert_ne!(out.code, 0, "restore from a foreign pack must fail");
}

#[test]
fn a_plain_config_put_in_place_of_the_encrypted_one_is_refused() {
    let w = encrypted_world();
    let src = secret_tree(&w);
    w.save(&src, &[]);
    let plain = World::with_repo();
    let index_before = find_files(&w.repo.join("index"), &|_| true);
    fs::copy(plain.repo.join("config"), w.repo.join("config")).unwrap();
    let out = w.chkfs([std::ffi::OsStr::new("save"), src.as_os_str()]);
    assert_ne!(out.code, 0, "a save wrote into a downgraded repository");
    assert!(out.stderr.contains("config was replaced"), "{}", out.stderr);
    assert_eq!(find_files(&w.repo.join("index"), &|_| true), index_before, "index files were touched");
    for f in files_under(&w.repo.join("packs")) {
        let b = fs::read(&f).unwrap();
        assert!(!b.windows(9).any(|win| win == b"swordfish"), "plaintext written to {}", f.display());
    }
    // With the key files gone too, a sealed index file is still never
    // taken for damage and removed.
    fs::remove_dir_all(w.repo.join("keys")).unwrap();
    let out = w.chkfs([std::ffi::OsStr::new("save"), src.as_os_str()]);
    assert_ne!(out.code, 0);
    assert_eq!(find_files(&w.repo.join("index"), &|_| true), index_before, "index files were removed");
}

#[test]
fn copy_goes_both_ways_between_plain_and_encrypted() {
    let enc = encrypted_world();
    let src = secret_tree(&enc);
    enc.save(&src, &[]);
    let plain = World::with_repo();
    // Encrypted -> plain: the source's password is CHKFS_FROM_PASSWORD_FILE.
    let mut copy = plain.cmd();
    copy.env("CHKFS_FROM_PASSWORD_FILE", enc.path("pw"))
        .args(["copy", "--from"])
        .arg(&enc.repo)
        .arg("--to")
        .arg(&plain.repo);
    run_with_timeout(&mut copy, TIMEOUT).ok();
    let target = plain.path("out");
    plain.restore("latest", &target);
    assert_same_tree(&src, &target, false);

    // Plain -> another encrypted repository.
    let enc2 = encrypted_world();
    let mut copy = enc2.cmd();
    copy.args(["copy", "--from"]).arg(&plain.repo).arg("--to").arg(&enc2.repo);
    run_with_timeout(&mut copy, TIMEOUT).ok();
    let target = enc2.path("out2");
    enc2.restore("latest", &target);
    assert_same_tree(&src, &target, false);
    let (code, _, out) = enc2.check();
    assert_eq!(code, 0, "{}", out.stderr);
}

#[test]
fn gc_and_incremental_saves_work_encrypted() {
    let w = encrypted_world();
    let src = secret_tree(&w);
    let first = w.save(&src, &[]);
    fs::write(src.join("big.bin"), random_bytes(3 << 20, 8)).unwrap();
    let second = w.save(&src, &[]);
    let again = w.save(&src, &[]);
    assert_eq!(again["added_blobs"], 0, "an unchanged re-save adds nothing");
    w.chkfs(["forget", first["id"].as_str().unwrap()]).ok();
    w.chkfs(["gc", "--max-waste", "0"]).ok();
    let (code, _, out) = w.check();
    assert_eq!(code, 0, "{}", out.stderr);
    let target = w.path("out");
    w.restore(second["id"].as_str().unwrap(), &target);
    assert_same_tree(&src, &target, false);
}

#[test]
fn the_committed_format_4_repository_still_opens_and_restores() {
    let w = World::new();
    copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo-v4-encrypted"), &w.repo);
    let pw = w.path("pw");
    fs::write(&pw, "fixture password\n").unwrap();
    let out = run_with_timeout(with_password(&w, &pw).args(["check", "--read-data"]), TIMEOUT);
    out.ok();
    let target = w.path("out");
    run_with_timeout(with_password(&w, &pw).args(["restore", "latest"]).arg(&target), TIMEOUT).ok();
    assert_eq!(fs::read_to_string(target.join("hello.txt")).unwrap(), "hello, encrypted format four\n");
    let numbers: String = (1..=50_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(fs::read_to_string(target.join("dir/numbers.txt")).unwrap(), numbers);
}

#[test]
fn the_terminal_is_asked_twice_at_init_and_once_to_open() {
    let w = World::new();
    let run = |args: &[&str], answers: &[&str], prompt: &str| {
        let mut cmd = w.cmd();
        cmd.args(args);
        pty::run_on_pty(cmd, prompt, answers, TIMEOUT)
    };
    let init = ["init", "--encrypt", "--kdf-memory", "64", "--kdf-iterations", "1"];
    let typo = run(&init, &["first try", "first tyr"], "password for the new repository");
    assert_ne!(typo.code, 0, "{}", typo.screen);
    assert!(typo.screen.contains("differ"), "{}", typo.screen);
    assert!(!w.repo.join("config").exists(), "a repository was made with mismatched passwords");

    let made = run(&init, &["typed at the terminal", "typed at the terminal"], "password for the new repository");
    assert_eq!(made.code, 0, "{}", made.screen);
    assert_eq!(made.screen.matches("password for the new repository").count(), 2, "{}", made.screen);
    assert!(!made.screen.contains("typed at the terminal"), "the password was echoed:\n{}", made.screen);

    let listed = run(&["list"], &["typed at the terminal"], "password for");
    assert_eq!(listed.code, 0, "{}", listed.screen);
    let wrong = run(&["list"], &["typed at the terminl"], "password for");
    assert_eq!(wrong.code, 6, "{}", wrong.screen);
    assert!(wrong.screen.contains("wrong password"), "{}", wrong.screen);
}

#[test]
fn a_replaced_config_is_caught_by_sealed_packs_and_records_too() {
    let w = encrypted_world();
    let src = secret_tree(&w);
    let saved = w.save(&src, &[]);
    let plain = World::with_repo();
    fs::copy(plain.repo.join("config"), w.repo.join("config")).unwrap();
    fs::remove_dir_all(w.repo.join("keys")).unwrap();
    fs::remove_dir_all(w.repo.join("index")).unwrap();
    let packs_before = pack_files(&w.repo);
    let out = w.chkfs([std::ffi::OsStr::new("save"), src.as_os_str()]);
    assert_ne!(out.code, 0, "a save wrote into a downgraded repository: {}", out.stderr);
    assert!(out.stderr.contains("config was replaced"), "{}", out.stderr);
    assert_eq!(pack_files(&w.repo), packs_before, "a pack was written");
    let snap = w.repo.join("snapshots").join(format!("{}.snap", saved["id"].as_str().unwrap()));
    let out = w.chkfs(["forget", saved["id"].as_str().unwrap()]);
    assert!(snap.exists(), "forget removed a sealed record it could not read: {}", out.stderr);
}

#[test]
fn an_index_file_put_back_after_its_packs_were_deleted_does_not_empty_the_next_save() {
    let w = encrypted_world();
    let src = secret_tree(&w);
    let first = w.save(&src, &[]);
    let other = w.path("other");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("f"), random_bytes(200_000, 3)).unwrap();
    w.save(&other, &[]);
    let old = w.path("old-index");
    copy_tree(&w.repo.join("index"), &old);
    w.chkfs(["forget", first["id"].as_str().unwrap()]).ok();
    w.chkfs(["gc", "--max-waste", "0"]).ok();
    for f in find_files(&old, &|_| true) {
        let to = w.repo.join("index").join(f.file_name().unwrap());
        if !to.exists() {
            fs::copy(&f, to).unwrap();
        }
    }
    let again = w.save(&src, &[]);
    let target = w.path("out");
    w.restore(again["id"].as_str().unwrap(), &target);
    assert_same_tree(&src, &target, false);
}
