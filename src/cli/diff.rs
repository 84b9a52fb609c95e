//! `chkfs diff A B [PATH]`: what changed between two snapshots.

use super::args::DiffArgs;
use super::exit::UsageError;
use super::exit::{ExitCode, Trouble};
use super::format::bytes;
use super::repo_path::RepoArgs;
use super::spec::{blob_reader, normalize, shown};
use crate::diff::{diff_entries, diff_one_side, Change, Changed};
use crate::format::tree::Entry;
use crate::restore::find_path;
use crate::store::BlobReader;
use crate::text::escape_bytes;
use anyhow::Result;
use serde::Serialize;
use std::io::Write;
use std::sync::Arc;

const CACHE_BYTES: u64 = 64 << 20;

#[derive(Serialize)]
struct ChangeJson {
    path: String,
    change: &'static str,
    dir: bool,
    bytes_before: u64,
    bytes_after: u64,
}

#[derive(Serialize)]
struct DiffJson {
    a: String,
    b: String,
    path: String,
    changes: Vec<ChangeJson>,
    added: u64,
    removed: u64,
    modified: u64,
    metadata_only: u64,
    type_changed: u64,
    added_bytes: u64,
    removed_bytes: u64,
}

/// Exit status 0 when the two are the same, 1 when they differ, 2 when
/// they could not be compared (as diff(1)).
pub fn run(ctx: &RepoArgs, args: &DiffArgs) -> Result<ExitCode> {
    compare(ctx, args).map_err(|e| e.context(Trouble))
}

fn compare(ctx: &RepoArgs, args: &DiffArgs) -> Result<ExitCode> {
    let filter = super::filter::SnapshotFilter::new(&args.filter)?;
    let repo = Arc::new(ctx.open()?);
    let a = super::filter::resolve(&repo, &args.a, &filter)?;
    let b = super::filter::resolve(&repo, &args.b, &filter)?;
    let reader = blob_reader(&repo, CACHE_BYTES)?;
    let (path, _) = normalize(args.path.as_deref().unwrap_or("").as_bytes())?;
    let path = &path[..];
    let (ea, eb) = (find_opt(&reader, &a.snapshot.root, path)?, find_opt(&reader, &b.snapshot.root, path)?);
    let mut changes = Vec::new();
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut write_error = None;
    // Changes are named from the snapshot's root: "/dir/file".
    let shown = shown(path);
    let mut on_change = |c: Changed| {
        if args.json {
            changes.push(c);
        } else if let Err(e) = writeln!(out, "{}", line(&c)) {
            write_error.get_or_insert(e);
        }
    };
    let totals = match (&ea, &eb) {
        (Some(ea), Some(eb)) => diff_entries(&reader, &shown, ea, eb, &mut on_change)?,
        (Some(ea), None) => diff_one_side(&reader, &shown, ea, Change::Removed, &mut on_change)?,
        (None, Some(eb)) => diff_one_side(&reader, &shown, eb, Change::Added, &mut on_change)?,
        (None, None) => {
            let what = escape_bytes(&shown);
            return Err(UsageError(format!("{what} is in neither snapshot")).into());
        }
    };
    if let Some(e) = write_error {
        return Err(e.into());
    }
    if args.json {
        let json = DiffJson {
            a: a.id.to_hex(),
            b: b.id.to_hex(),
            path: escape_bytes(path),
            changes: changes.iter().map(change_json).collect(),
            added: totals.added,
            removed: totals.removed,
            modified: totals.modified,
            metadata_only: totals.metadata_only,
            type_changed: totals.type_changed,
            added_bytes: totals.added_bytes,
            removed_bytes: totals.removed_bytes,
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else if !super::progress::quiet() {
        eprintln!(
            "chkfs: {} added, {} removed, {} modified, {} metadata only, {} changed type; {} added, {} removed",
            totals.added,
            totals.removed,
            totals.modified,
            totals.metadata_only,
            totals.type_changed,
            bytes(totals.added_bytes),
            bytes(totals.removed_bytes)
        );
    }
    Ok(if totals.differ() { ExitCode::Failure } else { ExitCode::Ok })
}

/// The entry at `path`, None when the snapshot has none there.
fn find_opt(reader: &BlobReader, root: &Entry, path: &[u8]) -> Result<Option<Entry>> {
    match find_path(reader, root, path) {
        Ok(e) => Ok(Some(e)),
        Err(crate::restore::RestoreError::PathNotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `+ path`, `- path`, `M path`, `U path` (metadata), `T path` (type);
/// directories end in `/`.
fn line(c: &Changed) -> String {
    let mark = match c.change {
        Change::Added => '+',
        Change::Removed => '-',
        Change::Content => 'M',
        Change::Metadata => 'U',
        Change::Type => 'T',
    };
    format!("{mark}  {}{}", shown_path(&c.path), if c.is_dir && !c.path.is_empty() { "/" } else { "" })
}

fn shown_path(path: &[u8]) -> String {
    if path.is_empty() {
        "/".into()
    } else {
        escape_bytes(path)
    }
}

fn change_json(c: &Changed) -> ChangeJson {
    ChangeJson {
        path: shown_path(&c.path),
        change: c.change.name(),
        dir: c.is_dir,
        bytes_before: c.bytes_before,
        bytes_after: c.bytes_after,
    }
}
