//! Comparing a directory with a manifest written by
//! `tests/fixtures/manifest.py`: every path, its type, permission bits,
//! mtime, size, SHA-256, symlink target and user.* xattrs.

use super::*;
use std::collections::BTreeMap;

/// Names in the manifest are raw bytes read as Latin-1.
fn raw(name: &str) -> Vec<u8> {
    name.chars().map(|c| c as u32 as u8).collect()
}

fn sha256(path: &Path) -> String {
    let out = sh("sha256sum", [path.as_os_str()]);
    out.ok();
    out.stdout_str().split_whitespace().next().unwrap_or_default().to_string()
}

/// Every difference between `dir` and the manifest `expected`.
pub fn differences(dir: &Path, expected: &serde_json::Value) -> Vec<String> {
    let mut found: BTreeMap<Vec<u8>, Meta> = walk(dir);
    found.remove(&Vec::new());
    let mut diffs = Vec::new();
    let want = expected.as_object().expect("a manifest is an object");
    for (name, item) in want {
        let path = raw(name);
        let shown = String::from_utf8_lossy(&path).into_owned();
        let Some(m) = found.remove(&path) else {
            diffs.push(format!("{shown}: missing"));
            continue;
        };
        let full = dir.join(OsStr::from_bytes(&path));
        if m.kind != item["type"].as_str().unwrap() {
            diffs.push(format!("{shown}: type {} instead of {}", m.kind, item["type"]));
            continue;
        }
        if m.kind != "symlink" && u64::from(m.perm) != item["mode"].as_u64().unwrap() {
            diffs.push(format!("{shown}: mode {:o}", m.perm));
        }
        let mtime_ns = m.mtime.0 as i128 * 1_000_000_000 + m.mtime.1 as i128;
        if mtime_ns != item["mtime"].as_i64().unwrap() as i128 {
            diffs.push(format!("{shown}: mtime {mtime_ns}"));
        }
        if m.kind == "symlink" && m.link_target.as_deref() != Some(&raw(item["target"].as_str().unwrap())[..]) {
            diffs.push(format!("{shown}: symlink target {:?}", m.link_target));
        }
        if m.kind == "file" {
            if m.size != item["size"].as_u64().unwrap() {
                diffs.push(format!("{shown}: size {}", m.size));
            }
            if sha256(&full) != item["sha256"].as_str().unwrap() {
                diffs.push(format!("{shown}: content differs"));
            }
            let user: Vec<(Vec<u8>, Vec<u8>)> =
                m.xattrs.iter().filter(|(n, _)| n.starts_with(b"user.")).cloned().collect();
            let want: Vec<(Vec<u8>, Vec<u8>)> =
                item["xattrs"].as_object().unwrap().iter().map(|(k, v)| (raw(k), raw(v.as_str().unwrap()))).collect();
            if user != want {
                diffs.push(format!("{shown}: xattrs {user:?}"));
            }
        }
    }
    for extra in found.keys() {
        diffs.push(format!("{}: not in the manifest", String::from_utf8_lossy(extra)));
    }
    diffs
}

/// The fixture manifest of format version 1.
pub fn repo_v1_manifest() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo-v1.manifest.json");
    serde_json::from_slice(&fs::read(path).expect("the v1 manifest")).expect("JSON")
}

/// A private copy of the format-1 repository fixture at `to`.
pub fn copy_repo_v1(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo-v1");
    copy_tree(&from, to);
}
