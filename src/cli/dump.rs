//! `chkfs dump SNAPSHOT:PATH`: a file's content, or a directory as a tar
//! stream, on standard output.

use super::args::DumpArgs;
use super::exit::{ExitCode, UsageError};
use super::repo_path::RepoArgs;
use super::spec::open_entry;
use crate::browse::{write_tar, ContentReader};
use crate::format::tree::Node;
use anyhow::{Context, Result};
use std::io::{IsTerminal, Write};

const CACHE_BYTES: u64 = 64 << 20;

pub fn run(ctx: &RepoArgs, args: &DumpArgs) -> Result<ExitCode> {
    let (reader, entry, path) = open_entry(ctx, &args.spec, &args.filter, CACHE_BYTES)?;
    let stdout = std::io::stdout();
    if matches!(entry.node, Node::Dir { .. }) && stdout.is_terminal() {
        return Err(
            UsageError("a directory is dumped as a tar stream: pipe it (`| tar x`) or redirect it".into()).into()
        );
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    match &entry.node {
        Node::File { content } => {
            let mut content = ContentReader::new(&reader, content);
            std::io::copy(&mut content, &mut out).context("dumping the file")?;
        }
        Node::Dir { .. } => {
            // Named after the directory, as `tar c dir` names it; the root
            // of a snapshot as ".".
            let name = path.rsplit(|&b| b == b'/').find(|p| !p.is_empty()).unwrap_or(b".");
            write_tar(&reader, name, &entry, &mut out)?;
        }
        Node::Symlink { target } => out.write_all(target)?,
        _ => return Err(UsageError("only files, directories and symlinks can be dumped".into()).into()),
    }
    out.flush()?;
    Ok(ExitCode::Ok)
}
