//! `chkfs copy`.

use super::args::CopyArgs;
use super::exit::ExitCode;
use super::format::{bytes, local};
use super::progress::{quiet, summary, Display};
use super::repo_path::{Chosen, RepoArgs};
use crate::copy::copy;
use crate::store::{Location, Repository};
use crate::text::escape_bytes;
use anyhow::Result;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub fn run(ctx: &RepoArgs, args: &CopyArgs) -> Result<ExitCode> {
    let from = match &args.from {
        Some(p) => Chosen { path: p.clone(), is_default: false },
        None => ctx.choose(None)?,
    };
    let src = Arc::new(Repository::open_at(&from.location()?, &super::password::FROM)?);
    let dst = Arc::new(Repository::open_at(&Location::parse(args.to.as_os_str())?, &super::password::REPO)?);
    if src.is_encrypted() && !dst.is_encrypted() {
        eprintln!(
            "chkfs: warning: copying from an encrypted repository into an unencrypted one: {} will hold what it copies in the clear",
            dst.location()
        );
    }
    let filter = super::filter::SnapshotFilter::new(&args.filter)?;
    let mut ids = Vec::new();
    for spec in &args.snapshots {
        ids.push(super::filter::resolve_id(&src, spec, &filter)?);
    }
    if ids.is_empty() && !filter.is_empty() {
        let all = src.readable_snapshots(&mut |id, e| eprintln!("chkfs: warning: snapshot {id} is unreadable: {e}"))?;
        ids = all.iter().filter(|s| filter.keeps(s)).map(|s| s.id).collect();
        if ids.is_empty() {
            return Err(anyhow::anyhow!("no snapshot matches {}", filter.describe()));
        }
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, interrupted.clone())?;
        signal_hook::flag::register(sig, interrupted.clone())?;
    }
    // On a thread of its own with a large stack: trees are copied
    // depth-first, one frame per directory level.
    let flag = interrupted.clone();
    let (s, d) = (src.clone(), dst.clone());
    let display = Arc::new(Display::new(args.json));
    let shown = display.clone();
    let worker = std::thread::Builder::new().name("chkfs-copy".into()).stack_size(512 << 20).spawn(move || {
        let on_snapshot = &mut |s: &crate::store::SnapshotEntry, there| {
            if !quiet() {
                let what = if there { "already there" } else { "copying" };
                let line = format!("{}  {}  {}  {what}", s.id, local(s.snapshot.time), escape_bytes(&s.snapshot.path));
                shown.println(&line);
            }
        };
        copy(&s, &d, &ids, &flag, on_snapshot, &*shown)
    })?;
    let report = worker.join().map_err(|_| anyhow::anyhow!("the copy stopped unexpectedly"));
    display.clear();
    let report = report??;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    summary!(
        "copied {} snapshot(s) into {} ({} already there): {} new chunks and trees, {}; {} chunks read",
        report.copied.len(),
        dst.location(),
        report.skipped.len(),
        report.blobs_added,
        bytes(report.bytes_added),
        report.chunks_read
    );
    Ok(ExitCode::Ok)
}
