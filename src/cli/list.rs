//! `chkfs list`.

use super::args::ListArgs;
use super::exit::ExitCode;
use super::format::{bytes, local, rfc3339};
use super::repo_path::RepoArgs;
use crate::text::{escape_bytes, escape_str};
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct ListJson {
    id: String,
    time: String,
    host: String,
    path: String,
    message: String,
    parent: Option<String>,
    files: u64,
    bytes: u64,
    added_bytes: u64,
    partial: bool,
    tags: Vec<String>,
}

pub fn run(ctx: &RepoArgs, args: &ListArgs) -> Result<ExitCode> {
    let filter = super::filter::SnapshotFilter::new(&args.filter)?;
    let repo = ctx.open()?;
    let mut snaps =
        repo.readable_snapshots(&mut |id, e| eprintln!("chkfs: warning: snapshot {id} is unreadable: {e}"))?;
    snaps.retain(|s| filter.keeps(s));
    if args.json {
        let rows: Vec<ListJson> = snaps
            .iter()
            .map(|e| {
                let s = &e.snapshot;
                ListJson {
                    id: e.id.to_hex(),
                    time: rfc3339(s.time),
                    host: s.host.clone(),
                    path: String::from_utf8_lossy(&s.path).into_owned(),
                    message: s.message.clone(),
                    parent: s.parent.map(|p| format!("{p:08x}")),
                    files: s.stats.files,
                    bytes: s.stats.bytes,
                    added_bytes: s.stats.added_bytes,
                    partial: s.partial,
                    tags: s.tags.clone(),
                }
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::Ok);
    }
    println!(
        "{:<8}  {:<19}  {:<12}  {:>8}  {:>10}  {:>10}  PATH / MESSAGE",
        "ID", "TIME", "HOST", "FILES", "SIZE", "ADDED"
    );
    for e in &snaps {
        let s = &e.snapshot;
        // Host, path and message come from the record: never let them
        // drive the terminal.
        let mut what = escape_bytes(&s.path);
        if !s.message.is_empty() {
            what = format!("{what}  \"{}\"", escape_str(&s.message));
        }
        if s.partial {
            what.push_str("  (partial)");
        }
        if !s.tags.is_empty() {
            what = format!("{what}  [{}]", escape_str(&s.tags.join(",")));
        }
        println!(
            "{:<8}  {:<19}  {:<12}  {:>8}  {:>10}  {:>10}  {what}",
            e.id.to_hex(),
            local(s.time),
            escape_str(&s.host),
            s.stats.files,
            bytes(s.stats.bytes),
            bytes(s.stats.added_bytes)
        );
    }
    super::progress::summary!("{}", super::format::count(snaps.len() as u64, "snapshot", "snapshots"));
    Ok(ExitCode::Ok)
}
