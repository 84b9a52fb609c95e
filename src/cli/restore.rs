//! `chkfs restore SNAPSHOT[:PATH] TARGET`.

use super::args::{OverwriteArg, RestoreArgs};
use super::exit::ExitCode;
use super::format::{bytes, count};
use super::progress::{summary, Display};
use super::repo_path::RepoArgs;
use crate::restore::{find_path, restore, Overwrite, RestoreOptions};
use crate::store::BlobReader;
use crate::text::escape_path;
use anyhow::Result;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

#[derive(Serialize)]
struct RestoreJson<'a> {
    snapshot: String,
    files: u64,
    dirs: u64,
    other: u64,
    bytes: u64,
    /// Entries found already there, equal to the saved ones, left alone.
    unchanged: u64,
    duration_ms: u64,
    errors: &'a [String],
}

/// Restore reads each block's chunks one after another, so a small cache
/// of decompressed blocks suffices: a few blocks per worker thread.
const RESTORE_CACHE_BYTES: u64 = 32 << 20;

/// What planning one entry of a restore costs, about.
const PLAN_BYTES_PER_ENTRY: u64 = 96;

/// The most entries one restore plans: what half the available memory
/// holds. A larger snapshot is restored in parts, SNAPSHOT:PATH at a time.
fn affordable_entries() -> u64 {
    let available_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(4 << 20);
    available_kib.saturating_mul(1024) / 2 / PLAN_BYTES_PER_ENTRY
}

pub fn run(ctx: &RepoArgs, args: &RestoreArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let filter = super::filter::SnapshotFilter::new(&args.filter)?;
    let repo = Arc::new(ctx.open()?);
    let (spec, path) = super::spec::snapshot_and_path(&args.snapshot)?;
    let snap = super::filter::resolve(&repo, spec, &filter)?;
    let loaded = repo.load_index()?;
    for w in loaded.warnings() {
        eprintln!("chkfs: warning: {w}");
    }
    let reader = BlobReader::new(repo.clone(), Arc::new(loaded.index), RESTORE_CACHE_BYTES);
    let entry = find_path(&reader, &snap.snapshot.root, path)?;
    let st = &snap.snapshot.stats;
    let recorded = st.files.saturating_add(st.dirs).saturating_add(st.other).saturating_add(1);
    let affordable = affordable_entries();
    let whole = path.iter().all(|&b| b == b'/' || b == b'.');
    if whole && recorded > affordable {
        let msg = format!(
            "snapshot {} holds {recorded} entries; restoring it at once needs more memory than is available: \
             restore it in parts, SNAPSHOT:PATH at a time",
            snap.id
        );
        return Err(anyhow::anyhow!(msg));
    }
    let (max_entries, too_many) = if recorded <= affordable {
        (recorded, "more than its snapshot record counts: it is damaged or forged".to_string())
    } else {
        (affordable, "more than memory allows at once: restore it in parts, SNAPSHOT:PATH at a time".to_string())
    };
    let opts = RestoreOptions {
        overwrite: match (args.force, args.overwrite) {
            (true, _) | (_, OverwriteArg::Always) => Overwrite::Always,
            (false, OverwriteArg::IfChanged) => Overwrite::IfChanged,
            (false, OverwriteArg::Never) => Overwrite::Never,
        },
        repository: repo.local_root().map(|p| p.to_path_buf()),
        max_entries,
        too_many,
        max_tree_bytes: affordable.saturating_mul(PLAN_BYTES_PER_ENTRY),
    };
    let display = Display::new(args.json);
    let report = restore(&reader, &entry, &args.target, &opts, &display)?;
    drop(display);
    for e in &report.errors {
        eprintln!("chkfs: not restored: {e}");
    }
    let duration_ms = started.elapsed().as_millis() as u64;
    if args.json {
        let json = RestoreJson {
            snapshot: snap.id.to_hex(),
            files: report.files,
            dirs: report.dirs,
            other: report.other,
            bytes: report.bytes,
            unchanged: report.unchanged,
            duration_ms,
            errors: &report.errors,
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    let mut restored = format!(
        "{}, {}, {} in {:.2}s into {}",
        count(report.files, "file", "files"),
        count(report.dirs, "directory", "directories"),
        bytes(report.bytes),
        duration_ms as f64 / 1000.0,
        escape_path(&args.target)
    );
    if report.unchanged > 0 {
        restored.push_str(&format!("; {} there already", count(report.unchanged, "entry was", "entries were")));
    }
    if report.errors.is_empty() {
        summary!("restored {restored}");
        Ok(ExitCode::Ok)
    } else {
        // One summary: what could not be restored first, then the rest.
        eprintln!(
            "chkfs: {} could not be restored (fully); restored the rest: {restored}",
            count(report.failed as u64, "item", "items")
        );
        if repo.read_snapshot(snap.id).ok().flatten().is_none() {
            eprintln!("chkfs: snapshot {} was forgotten while it was being restored", snap.id);
        }
        Ok(ExitCode::Partial)
    }
}
