//! `chkfs check [--read-data]`.

use super::args::CheckArgs;
use super::exit::ExitCode;
use super::format::{bytes, count};
use super::progress::{summary, Display};
use super::repo_path::RepoArgs;
use crate::check::check_with;
use anyhow::Result;
use std::sync::Arc;

pub fn run(ctx: &RepoArgs, args: &CheckArgs) -> Result<ExitCode> {
    let repo = Arc::new(if args.read_data { ctx.open_uncached()? } else { ctx.open()? });
    let display = Display::new(args.json);
    let report = check_with(repo, args.read_data, &display);
    drop(display);
    let report = report?;
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["ok"] = serde_json::Value::Bool(report.is_ok());
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    for d in &report.damaged_blobs {
        let packs = if d.packs.is_empty() { String::new() } else { format!(" in pack {}", d.packs.join(", ")) };
        eprintln!("damaged: {} {}{packs}: {}", d.kind, d.blob, d.reason);
        for user in &d.used_by {
            eprintln!("    used by {user}");
        }
    }
    if report.unreferenced_damaged > 0 {
        eprintln!("note: {} damaged chunk(s) no snapshot uses", report.unreferenced_damaged);
    }
    if report.unindexed_packs > 0 {
        eprintln!(
            "note: {} pack(s) not listed by any index file (an interrupted save); the next save indexes them",
            report.unindexed_packs
        );
    }
    let read = if args.read_data {
        format!(
            ", {} packs read ({}), {} chunks verified",
            report.packs_read,
            bytes(report.bytes_read),
            report.blobs_verified
        )
    } else {
        String::new()
    };
    let verdict = match (report.is_ok(), args.read_data) {
        (true, true) => "no damage found",
        // Only the structure was checked: say what was not.
        (true, false) => "no damage found in the structure (chunk contents were not read: `--read-data` reads them)",
        (false, _) => "DAMAGE FOUND",
    };
    summary!(
        "{}, {}, {}{read}: {verdict}",
        count(report.snapshots, "snapshot", "snapshots"),
        count(report.trees, "tree", "trees"),
        count(report.packs, "pack", "packs")
    );
    Ok(if report.is_ok() { ExitCode::Ok } else { ExitCode::Damage })
}
