//! `SNAPSHOT[:PATH]` arguments.

use super::exit::UsageError;
use anyhow::Result;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// The snapshot (an id prefix or `latest`) and the path inside it (raw
/// bytes, empty for its root).
pub fn snapshot_and_path(arg: &OsStr) -> Result<(&str, &[u8])> {
    let arg = arg.as_bytes();
    let (spec, path) = match arg.iter().position(|&b| b == b':') {
        Some(i) => (&arg[..i], &arg[i + 1..]),
        None => (arg, &b""[..]),
    };
    let spec = std::str::from_utf8(spec).map_err(|_| UsageError(format!("{:?} is not a snapshot id", arg)))?;
    Ok((spec, path))
}

/// A path inside a snapshot made plain: empty and `.` components
/// dropped, `..` taking the one before away (never above the root).
/// Returns it without a leading `/`, and whether the user asked for a
/// directory (a trailing `/`).
pub fn normalize(path: &[u8]) -> Result<(Vec<u8>, bool)> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err(UsageError(format!(
                        "{:?} leads above the snapshot's root",
                        String::from_utf8_lossy(path)
                    ))
                    .into());
                }
            }
            p => parts.push(p),
        }
    }
    let wants_dir = path.len() > 1 && path.ends_with(b"/");
    Ok((parts.join(&b'/'), wants_dir))
}

/// `/path` as shown (the root is empty: its entries are named `/name`).
pub fn shown(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        Vec::new()
    } else {
        [&b"/"[..], path].concat()
    }
}

/// A reader of `repo`'s blobs with a block cache of `cache` bytes; the
/// index's warnings are printed.
pub fn blob_reader(repo: &std::sync::Arc<crate::store::Repository>, cache: u64) -> Result<crate::store::BlobReader> {
    let loaded = repo.load_index()?;
    for w in loaded.warnings() {
        eprintln!("chkfs: warning: {w}");
    }
    Ok(crate::store::BlobReader::new(repo.clone(), std::sync::Arc::new(loaded.index), cache))
}

/// The entry named by a `SNAPSHOT[:PATH]` argument, its plain path (no
/// leading `/`) and a reader for what it holds.
pub fn open_entry(
    ctx: &super::repo_path::RepoArgs,
    arg: &OsStr,
    filter: &super::args::FilterArgs,
    cache: u64,
) -> Result<(crate::store::BlobReader, crate::format::tree::Entry, Vec<u8>)> {
    let filter = super::filter::SnapshotFilter::new(filter)?;
    let repo = std::sync::Arc::new(ctx.open()?);
    let (spec, path) = snapshot_and_path(arg)?;
    let snap = super::filter::resolve(&repo, spec, &filter)?;
    let reader = blob_reader(&repo, cache)?;
    let (path, wants_dir) = normalize(path)?;
    let entry = crate::restore::find_path(&reader, &snap.snapshot.root, &path)?;
    if wants_dir && !matches!(entry.node, crate::format::tree::Node::Dir { .. }) {
        let shown = crate::text::escape_bytes(&shown(&path));
        return Err(UsageError(format!("{shown} is not a directory")).into());
    }
    Ok((reader, entry, path))
}
