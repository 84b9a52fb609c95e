//! `chkfs tag`.

use super::args::TagArgs;
use super::exit::{ExitCode, UsageError};
use super::filter::{self, SnapshotFilter};
use super::progress::summary;
use super::repo_path::RepoArgs;
use crate::tag::{retag, TagChange};
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct TaggedJson {
    old: String,
    /// The record's new id; null when its tags were already so.
    new: Option<String>,
    tags: Vec<String>,
}

pub fn run(ctx: &RepoArgs, args: &TagArgs) -> Result<ExitCode> {
    let change = TagChange {
        set: if args.set.is_empty() { None } else { Some(filter::tags(&args.set)?) },
        add: filter::tags(&args.add)?,
        remove: filter::tags(&args.remove)?,
    };
    if change.set.is_none() && change.add.is_empty() && change.remove.is_empty() {
        return Err(UsageError("say what to change: --add, --remove or --set".into()).into());
    }
    let filter = SnapshotFilter::new(&args.filter)?;
    if args.snapshots.is_empty() && filter.is_empty() {
        let msg = "name the snapshots (ids, or `latest`), or choose them with --host, --path or --tag";
        return Err(UsageError(msg.into()).into());
    }
    let repo = ctx.open()?;
    let ids = match args.snapshots.is_empty() {
        true => {
            let all =
                repo.readable_snapshots(&mut |id, e| eprintln!("chkfs: warning: snapshot {id} is unreadable: {e}"))?;
            all.iter().filter(|s| filter.keeps(s)).map(|s| s.id).collect()
        }
        false => {
            args.snapshots.iter().map(|spec| filter::resolve_id(&repo, spec, &filter)).collect::<Result<Vec<_>>>()?
        }
    };
    if ids.is_empty() {
        summary!("no snapshot matches {}: nothing to change", filter.describe());
    }
    let done = retag(&repo, &ids, &change)?;
    if args.json {
        let rows: Vec<TaggedJson> = done
            .iter()
            .map(|r| TaggedJson { old: r.old.to_hex(), new: r.new.map(|n| n.to_hex()), tags: r.tags.clone() })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    for r in &done {
        let tags = crate::text::escape_str(&r.tags.join(","));
        match r.new {
            Some(new) => summary!("{} is now {new}: tags [{tags}]", r.old),
            None => summary!("{}: tags [{tags}], unchanged", r.old),
        }
    }
    Ok(ExitCode::Ok)
}
