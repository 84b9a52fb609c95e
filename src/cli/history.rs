//! `chkfs versions PATH` and `chkfs find PATTERN`.

use super::args::{FilterArgs, FindArgs, VersionsArgs};
use super::exit::{ExitCode, UsageError};
use super::format::{bytes, local, rfc3339};
use super::repo_path::RepoArgs;
use crate::browse::history::{versions, Finder, Found};
use crate::browse::walk;
use crate::format::tree::Node;
use crate::store::{BlobReader, Repository, SnapshotEntry};
use crate::text::escape_bytes;
use anyhow::Result;
use serde::Serialize;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

const CACHE_BYTES: u64 = 128 << 20;

#[derive(Serialize)]
struct VersionJson {
    snapshot: String,
    time: String,
    #[serde(rename = "type")]
    kind: &'static str,
    size: u64,
    mtime: String,
    /// Every snapshot holding this version, oldest first.
    snapshots: Vec<String>,
}

#[derive(Serialize)]
struct FoundJson {
    path: String,
    dir: bool,
    size: u64,
    mtime: String,
}

#[derive(Serialize)]
struct SnapshotMatches {
    snapshot: String,
    time: String,
    host: String,
    path: String,
    matches: Vec<FoundJson>,
}

fn open(ctx: &RepoArgs, filter: &FilterArgs) -> Result<(Arc<Repository>, Vec<SnapshotEntry>, BlobReader)> {
    let filter = super::filter::SnapshotFilter::new(filter)?;
    let repo = Arc::new(ctx.open()?);
    let mut snapshots =
        repo.readable_snapshots(&mut |id, e| eprintln!("chkfs: warning: snapshot {id} is unreadable: {e}"))?;
    snapshots.retain(|s| filter.keeps(s));
    let reader = super::spec::blob_reader(&repo, CACHE_BYTES)?;
    Ok((repo, snapshots, reader))
}

pub fn versions_cmd(ctx: &RepoArgs, args: &VersionsArgs) -> Result<ExitCode> {
    let (_repo, snapshots, reader) = open(ctx, &args.filter)?;
    let path = args.path.as_os_str().as_bytes();
    let path = if path.len() > 1 { path.strip_suffix(b"/").unwrap_or(path) } else { path };
    let found = versions(&reader, &snapshots, path)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    if args.json {
        let rows: Vec<VersionJson> = found
            .iter()
            .map(|v| {
                let first = &snapshots[v.snapshots[0]];
                VersionJson {
                    snapshot: first.id.to_hex(),
                    time: rfc3339(first.snapshot.time),
                    kind: kind(&v.entry.node),
                    size: v.entry.size,
                    mtime: rfc3339(v.entry.mtime),
                    snapshots: v.snapshots.iter().map(|&i| snapshots[i].id.to_hex()).collect(),
                }
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
    } else {
        for v in &found {
            let first = &snapshots[v.snapshots[0]];
            writeln!(
                out,
                "{}  {}  {:>10}  {:<7}  modified {}  in {} snapshot(s)",
                local(first.snapshot.time),
                first.id.to_hex(),
                bytes(v.entry.size),
                kind(&v.entry.node),
                local(v.entry.mtime),
                v.snapshots.len()
            )?;
        }
    }
    if found.is_empty() {
        eprintln!("chkfs: no snapshot holds {}", escape_bytes(path));
        return Ok(ExitCode::Failure);
    }
    Ok(ExitCode::Ok)
}

pub fn find_cmd(ctx: &RepoArgs, args: &FindArgs) -> Result<ExitCode> {
    // Paths are named from the snapshot's root ("/dir/file"): a pattern
    // written without the leading "/" (or with a trailing one) means the
    // same place.
    let pattern = match args.full_path {
        true => {
            let p = args.pattern.trim_end_matches('/');
            if p.starts_with('/') || p.starts_with('*') {
                p.to_string()
            } else {
                format!("/{p}")
            }
        }
        false => args.pattern.clone(),
    };
    let glob = globset::GlobBuilder::new(&pattern)
        .literal_separator(args.full_path)
        .build()
        .map_err(|e| UsageError(format!("pattern {:?}: {e}", args.pattern)))?
        .compile_matcher();
    let (_repo, snapshots, reader) = open(ctx, &args.filter)?;
    let in_time =
        |t: crate::format::records::Timestamp| args.newer.is_none_or(|n| t > n) && args.older.is_none_or(|o| t < o);
    let mut finder = Finder::new(&reader);
    let mut results = Vec::new();
    for s in &snapshots {
        let Node::Dir { tree } = s.snapshot.root.node else { continue };
        let found: Vec<Found> = if args.full_path {
            let mut found = Vec::new();
            walk(&reader, b"", &s.snapshot.root, true, &mut |p, e| {
                if glob.is_match(std::ffi::OsStr::from_bytes(p)) && in_time(e.mtime) {
                    found.push(Found {
                        path: p.to_vec(),
                        is_dir: matches!(e.node, Node::Dir { .. }),
                        size: e.size,
                        mtime: e.mtime,
                    });
                }
                Ok(())
            })?;
            found
        } else {
            let all = finder.by_name(tree, &|name, _| glob.is_match(std::ffi::OsStr::from_bytes(name)))?;
            all.iter().filter(|f| in_time(f.mtime)).cloned().collect()
        };
        if !found.is_empty() {
            results.push((s, found));
        }
    }
    let out = std::io::stdout();
    let mut out = out.lock();
    if args.json {
        let rows: Vec<SnapshotMatches> = results
            .iter()
            .map(|(s, found)| SnapshotMatches {
                snapshot: s.id.to_hex(),
                time: rfc3339(s.snapshot.time),
                host: s.snapshot.host.clone(),
                path: escape_bytes(&s.snapshot.path),
                matches: found
                    .iter()
                    .map(|f| FoundJson {
                        path: escape_bytes(&f.path),
                        dir: f.is_dir,
                        size: f.size,
                        mtime: rfc3339(f.mtime),
                    })
                    .collect(),
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
    } else {
        for (s, found) in &results {
            writeln!(
                out,
                "snapshot {} of {}:{} at {}",
                s.id.to_hex(),
                crate::text::escape_str(&s.snapshot.host),
                escape_bytes(&s.snapshot.path),
                local(s.snapshot.time)
            )?;
            for f in found {
                writeln!(out, "  {}{}", escape_bytes(&f.path), if f.is_dir { "/" } else { "" })?;
            }
        }
    }
    Ok(if results.is_empty() { ExitCode::Failure } else { ExitCode::Ok })
}

fn kind(n: &Node) -> &'static str {
    match n {
        Node::File { .. } => "file",
        Node::Dir { .. } => "dir",
        Node::Symlink { .. } => "symlink",
        _ => "special",
    }
}
