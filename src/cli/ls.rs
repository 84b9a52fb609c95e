//! `chkfs ls SNAPSHOT[:PATH] [-l] [-R]`: a snapshot's entries, without
//! mounting it.

use super::args::LsArgs;
use super::exit::ExitCode;
use super::format::rfc3339;
use super::repo_path::RepoArgs;
use super::spec::{open_entry, shown};
use crate::browse::walk;
use crate::format::tree::{Entry, Node};
use crate::text::escape_bytes;
use anyhow::Result;
use serde::Serialize;
use std::io::Write;

const CACHE_BYTES: u64 = 64 << 20;

#[derive(Serialize)]
struct EntryJson {
    path: String,
    #[serde(rename = "type")]
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

pub fn run(ctx: &RepoArgs, args: &LsArgs) -> Result<ExitCode> {
    let (reader, entry, path) = open_entry(ctx, &args.snapshot, &args.filter, CACHE_BYTES)?;
    let shown = shown(&path);
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let mut rows = Vec::new();
    let mut print = |p: &[u8], e: &Entry| -> std::io::Result<()> {
        if args.json {
            rows.push(entry_json(p, e));
            Ok(())
        } else if args.long {
            writeln!(out, "{}", long_line(p, e))
        } else {
            writeln!(out, "{}", escape_bytes(p))
        }
    };
    if matches!(entry.node, Node::Dir { .. }) {
        walk(&reader, &shown, &entry, args.recursive, &mut print)?;
    } else {
        print(&shown, &entry)?;
    }
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
    }
    out.flush()?;
    Ok(ExitCode::Ok)
}

fn kind(e: &Entry) -> &'static str {
    match e.node {
        Node::File { .. } => "file",
        Node::Dir { .. } => "dir",
        Node::Symlink { .. } => "symlink",
        Node::Fifo => "fifo",
        Node::Socket => "socket",
        Node::CharDevice { .. } => "chardev",
        Node::BlockDevice { .. } => "blockdev",
    }
}

fn entry_json(p: &[u8], e: &Entry) -> EntryJson {
    EntryJson {
        path: escape_bytes(p),
        kind: kind(e),
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: e.size,
        mtime: rfc3339(e.mtime),
        target: match &e.node {
            Node::Symlink { target } => Some(escape_bytes(target)),
            _ => None,
        },
    }
}

/// `drwxr-xr-x  uid/gid  size  mtime  path[ -> target]`, as `ls -l` and
/// `tar tv` show entries.
fn long_line(p: &[u8], e: &Entry) -> String {
    let type_char = match e.node {
        Node::File { .. } => '-',
        Node::Dir { .. } => 'd',
        Node::Symlink { .. } => 'l',
        Node::Fifo => 'p',
        Node::Socket => 's',
        Node::CharDevice { .. } => 'c',
        Node::BlockDevice { .. } => 'b',
    };
    let target = match &e.node {
        Node::Symlink { target } => format!(" -> {}", escape_bytes(target)),
        _ => String::new(),
    };
    let time = super::format::local(e.mtime);
    format!(
        "{type_char}{}  {:>5}/{:<5}  {:>12}  {time}  {}{target}",
        mode_string(e.mode),
        e.uid,
        e.gid,
        e.size,
        escape_bytes(p)
    )
}

fn mode_string(mode: u32) -> String {
    let bit = |m: u32, c: char| if mode & m != 0 { c } else { '-' };
    let exec = |x: u32, special: u32, set: char, unset: char| match (mode & x != 0, mode & special != 0) {
        (true, true) => set,
        (false, true) => unset,
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        exec(0o100, 0o4000, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        exec(0o010, 0o2000, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        exec(0o001, 0o1000, 't', 'T'),
    ]
    .iter()
    .collect()
}
