//! `chkfs stats [SNAPSHOT...]`.

use super::args::StatsArgs;
use super::exit::ExitCode;
use super::format::{bytes, count, local, rfc3339};
use super::repo_path::RepoArgs;
use crate::stats::{stats, Blobs, RepoStats};
use crate::store::SnapshotEntry;
use crate::text::{escape_bytes, escape_str};
use anyhow::Result;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::Arc;

/// Trees are read once each; a small cache is enough.
const CACHE_BYTES: u64 = 32 << 20;

#[derive(Serialize)]
struct SnapshotJson {
    id: String,
    time: String,
    host: String,
    path: String,
    files: u64,
    bytes: u64,
    unique: Blobs,
}

#[derive(Serialize)]
struct StatsJson {
    snapshots: u64,
    selected: u64,
    packs: u64,
    stored_bytes: u64,
    logical_files: u64,
    logical_bytes: u64,
    chunks: Blobs,
    trees: Blobs,
    missing_chunks: u64,
    dedup_ratio: Option<f64>,
    compression_ratio: Option<f64>,
    packed_chunks: Blobs,
    packed_trees: Blobs,
    unused: Blobs,
    per_snapshot: Vec<SnapshotJson>,
}

pub fn run(ctx: &RepoArgs, args: &StatsArgs) -> Result<ExitCode> {
    let filter = super::filter::SnapshotFilter::new(&args.filter)?;
    let repo = Arc::new(ctx.open()?);
    // Every snapshot is walked, selected or not: what a snapshot alone
    // holds depends on all the others.
    let all = repo.readable_snapshots(&mut |id, e| eprintln!("chkfs: warning: snapshot {id} is unreadable: {e}"))?;
    let named = !args.snapshots.is_empty();
    let selected: HashSet<_> = if named {
        let mut ids = HashSet::new();
        for spec in &args.snapshots {
            ids.insert(super::filter::resolve(&repo, spec, &filter)?.id);
        }
        ids
    } else {
        all.iter().filter(|s| filter.keeps(s)).map(|s| s.id).collect()
    };
    let reader = super::spec::blob_reader(&repo, CACHE_BYTES)?;
    let st = stats(&reader, &all, &selected)?;
    if st.missing_chunks > 0 {
        eprintln!(
            "chkfs: warning: {} the snapshots use are missing from the index (`chkfs check` tells more); \
             their sizes are taken from the trees",
            count(st.missing_chunks, "chunk", "chunks")
        );
    }
    let by_id: HashMap<_, &SnapshotEntry> = all.iter().map(|s| (s.id, s)).collect();
    // Written with `?`, not println!: a reader that goes away (`| head`)
    // ends the command quietly.
    let out = std::io::stdout();
    let mut out = out.lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&json(&st, &by_id))?)?;
        return Ok(ExitCode::Ok);
    }
    print_summary(&mut out, &st, &repo.location(), named || !filter.is_empty())?;
    if named || args.per_snapshot {
        writeln!(out)?;
        print_table(&mut out, &st, &by_id)?;
    }
    out.flush()?;
    Ok(ExitCode::Ok)
}

fn json(st: &RepoStats, by_id: &HashMap<crate::format::SnapshotId, &SnapshotEntry>) -> StatsJson {
    let per_snapshot = st
        .per_snapshot
        .iter()
        .filter_map(|f| {
            let s = &by_id.get(&f.id)?.snapshot;
            Some(SnapshotJson {
                id: f.id.to_hex(),
                time: rfc3339(s.time),
                host: s.host.clone(),
                path: String::from_utf8_lossy(&s.path).into_owned(),
                files: f.files,
                bytes: f.bytes,
                unique: f.unique,
            })
        })
        .collect();
    StatsJson {
        snapshots: st.snapshots,
        selected: st.selected,
        packs: st.packs,
        stored_bytes: st.pack_bytes,
        logical_files: st.logical_files,
        logical_bytes: st.logical_bytes,
        chunks: st.chunks,
        trees: st.trees,
        missing_chunks: st.missing_chunks,
        dedup_ratio: st.dedup_ratio(),
        compression_ratio: st.compression_ratio(),
        packed_chunks: st.packed_chunks,
        packed_trees: st.packed_trees,
        unused: st.unused,
        per_snapshot,
    }
}

fn times(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{r:.2}x"),
        None => "-".into(),
    }
}

/// "N chunks, X raw, Y stored".
fn blobs(b: &Blobs, one: &str, many: &str) -> String {
    format!("{}, {} raw, {} stored", count(b.count, one, many), bytes(b.raw_bytes), bytes(b.stored_bytes))
}

fn print_summary(out: &mut impl Write, st: &RepoStats, location: &str, some: bool) -> std::io::Result<()> {
    writeln!(
        out,
        "Repository {}: {} stored in {}",
        escape_str(location),
        bytes(st.pack_bytes),
        count(st.packs, "pack", "packs")
    )?;
    let considered = match some {
        true => format!("{} of {}", st.selected, count(st.snapshots, "snapshot", "snapshots")),
        false => count(st.snapshots, "snapshot", "snapshots"),
    };
    writeln!(out, "{considered}:")?;
    writeln!(
        out,
        "  Restore size:       {}, {} (every one restored)",
        count(st.logical_files, "file", "files"),
        bytes(st.logical_bytes)
    )?;
    writeln!(out, "  Unique data:        {} (distinct chunks they use)", blobs(&st.chunks, "chunk", "chunks"))?;
    writeln!(out, "  Trees:              {}", blobs(&st.trees, "tree", "trees"))?;
    writeln!(out, "  Deduplication:      {} (restore size / unique data raw)", times(st.dedup_ratio()))?;
    writeln!(out, "  Compression:        {} (unique data raw / stored)", times(st.compression_ratio()))?;
    writeln!(out, "In the packs (every copy, used or not):")?;
    writeln!(out, "  Chunks:             {}", blobs(&st.packed_chunks, "chunk", "chunks"))?;
    writeln!(out, "  Trees:              {}", blobs(&st.packed_trees, "tree", "trees"))?;
    let unused = format!(
        "{}, {} raw, {} stored",
        count(st.unused.count, "blob", "blobs"),
        bytes(st.unused.raw_bytes),
        bytes(st.unused.stored_bytes)
    );
    let gc = if st.unused.count > 0 { " (no snapshot needs them: `chkfs gc` reclaims them)" } else { "" };
    writeln!(out, "  Unused:             {unused}{gc}")?;
    if st.missing_chunks > 0 {
        writeln!(out, "  Missing:            {} (damage)", count(st.missing_chunks, "chunk", "chunks"))?;
    }
    Ok(())
}

fn print_table(
    out: &mut impl Write,
    st: &RepoStats,
    by_id: &HashMap<crate::format::SnapshotId, &SnapshotEntry>,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<8}  {:<19}  {:>8}  {:>10}  {:>10}  {:>10}  PATH",
        "ID", "TIME", "FILES", "SIZE", "UNIQUE", "STORED"
    )?;
    for f in &st.per_snapshot {
        let Some(e) = by_id.get(&f.id) else { continue };
        writeln!(
            out,
            "{:<8}  {:<19}  {:>8}  {:>10}  {:>10}  {:>10}  {}",
            f.id.to_hex(),
            local(e.snapshot.time),
            f.files,
            bytes(f.bytes),
            bytes(f.unique.raw_bytes),
            bytes(f.unique.stored_bytes),
            escape_bytes(&e.snapshot.path)
        )?;
    }
    writeln!(out, "UNIQUE: data no other snapshot uses (raw; STORED: as stored), which forgetting the snapshot alone lets gc reclaim")?;
    Ok(())
}
