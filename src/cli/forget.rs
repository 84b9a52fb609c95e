//! `chkfs forget`.

use super::args::ForgetArgs;
use super::exit::{ExitCode, UsageError};
use super::format::{count, local};
use super::repo_path::RepoArgs;
use crate::forget::{self, Policy};
use crate::format::SnapshotId;
use crate::text::{escape_bytes, escape_str};
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct DecisionJson {
    id: String,
    time: String,
    host: String,
    path: String,
    keep: bool,
    reasons: Vec<String>,
}

/// The `[forget]` section as a policy; a count of 0 (which would forget
/// everything) is refused, as on the command line.
fn configured_policy(c: &super::config::ForgetConfig) -> Result<Policy> {
    let counts = [c.keep_last, c.keep_hourly, c.keep_daily, c.keep_weekly, c.keep_monthly, c.keep_yearly];
    if counts.contains(&Some(0)) {
        let msg = "a keep_* of 0 in the configuration file would forget everything: leave it out instead";
        return Err(UsageError(msg.into()).into());
    }
    Ok(Policy {
        last: c.keep_last,
        hourly: c.keep_hourly,
        daily: c.keep_daily,
        weekly: c.keep_weekly,
        monthly: c.keep_monthly,
        yearly: c.keep_yearly,
        within: c.keep_within.as_deref().map(forget::parse_duration).transpose().map_err(UsageError)?,
    })
}

pub fn run(ctx: &RepoArgs, args: &ForgetArgs) -> Result<ExitCode> {
    let mut policy = Policy {
        last: args.keep_last,
        hourly: args.keep_hourly,
        daily: args.keep_daily,
        weekly: args.keep_weekly,
        monthly: args.keep_monthly,
        yearly: args.keep_yearly,
        within: args.keep_within.as_deref().map(forget::parse_duration).transpose().map_err(UsageError)?,
    };
    if policy.is_empty() && args.snapshots.is_empty() {
        policy = configured_policy(&ctx.config.forget)?;
        if !policy.is_empty() {
            eprintln!("chkfs: the retention of the configuration file applies");
        }
    }
    if policy.is_empty() == args.snapshots.is_empty() {
        let msg = "give snapshot ids or a --keep-* policy (not both), or a [forget] section in the configuration file";
        return Err(UsageError(msg.into()).into());
    }
    let filter = super::filter::SnapshotFilter::new(&args.filter)?;
    let repo = ctx.open()?;
    let mut candidates =
        forget::candidates(&repo, &mut |id, e| eprintln!("chkfs: warning: snapshot {id} is unreadable: {e}"))?;
    // Snapshots the options leave out are neither candidates nor listed.
    candidates.retain(|c| filter.matches(&c.host, &c.path, &c.tags));
    let decisions = if policy.is_empty() {
        let mut drop = Vec::new();
        for spec in &args.snapshots {
            drop.push(super::filter::resolve_id(&repo, spec, &filter)?);
        }
        let mut decisions: Vec<forget::Decision> = candidates
            .iter()
            .map(|c| forget::Decision { id: c.id, keep: !drop.contains(&c.id), reasons: vec!["not named".into()] })
            .collect();
        // Named records that cannot be read (damaged) go too.
        for id in drop.iter().filter(|id| !candidates.iter().any(|c| c.id == **id)) {
            decisions.push(forget::Decision { id: *id, keep: false, reasons: Vec::new() });
        }
        decisions
    } else {
        forget::apply(&policy, &candidates, &jiff::tz::TimeZone::system())
    };
    let doomed: Vec<_> = decisions.iter().filter(|d| !d.keep).map(|d| d.id).collect();
    if args.json {
        let rows: Vec<DecisionJson> = candidates
            .iter()
            .zip(&decisions)
            .map(|(c, d)| DecisionJson {
                id: c.id.to_hex(),
                time: super::format::rfc3339(c.time),
                host: c.host.clone(),
                path: String::from_utf8_lossy(&c.path).into_owned(),
                keep: d.keep,
                reasons: if d.keep { d.reasons.clone() } else { Vec::new() },
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    let describe = |id: SnapshotId| match candidates.iter().find(|c| c.id == id) {
        Some(c) => format!("{}  {}  {}  {}", c.id, local(c.time), escape_str(&c.host), escape_bytes(&c.path)),
        None => format!("{id}  (unreadable record)"),
    };
    if !policy.is_empty() || args.dry_run {
        for d in &decisions {
            let what = if d.keep { format!("keep    ({})", d.reasons.join(", ")) } else { "forget".to_string() };
            super::progress::summary!("{}  {what}", describe(d.id));
        }
    }
    match args.dry_run {
        false => {
            forget::remove(&repo, &doomed)?;
            for id in &doomed {
                super::progress::summary!("forgot {}", describe(*id));
            }
            super::progress::summary!(
                "forgot {}, kept {}; run `chkfs gc` to reclaim space",
                count(doomed.len() as u64, "snapshot", "snapshots"),
                decisions.len() - doomed.len()
            );
        }
        true => {
            super::progress::summary!(
                "dry run: would forget {}, keep {}",
                count(doomed.len() as u64, "snapshot", "snapshots"),
                decisions.len() - doomed.len()
            )
        }
    }
    Ok(ExitCode::Ok)
}
