//! `chkfs gc`.

use super::args::GcArgs;
use super::exit::{ExitCode, UsageError};
use super::format::{bytes, count};
use super::progress::{summary, Display};
use super::repo_path::RepoArgs;
use crate::gc::{gc_with, Action, GcOptions};
use anyhow::Result;
use std::sync::Arc;

pub fn run(ctx: &RepoArgs, args: &GcArgs) -> Result<ExitCode> {
    if !(0.0..=100.0).contains(&args.max_waste) {
        return Err(UsageError("--max-waste is a percentage between 0 and 100".into()).into());
    }
    let repo = Arc::new(if args.dry_run { ctx.open()? } else { ctx.open_for_writing()? });
    let opts = GcOptions { max_waste: args.max_waste / 100.0, dry_run: args.dry_run, grace: args.grace };
    let display = Display::new(args.json);
    let result = gc_with(&repo, &opts, &display);
    drop(display);
    let (plan, report, notes) = result?;
    for note in notes {
        eprintln!("chkfs: {note}");
    }
    if args.dry_run {
        for p in plan.packs.iter().filter(|p| p.action != Action::Keep) {
            let what = match p.action {
                Action::Delete | Action::Condemn => "delete ",
                Action::Rewrite => "rewrite",
                _ => "wait   ",
            };
            eprintln!(
                "{what} pack {}  {}  live {} in {} blobs, unused {} in {} blobs",
                p.id,
                bytes(p.size),
                bytes(p.live_bytes),
                p.live_blobs,
                bytes(p.dead_bytes),
                p.dead_blobs
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if report.packs_condemned > 0 && !report.writers_running.is_empty() {
        summary!(
            "{} until these writers finish (the next gc then deletes them): {}",
            count(report.packs_condemned, "unused pack waits", "unused packs wait"),
            report.writers_running.join(", ")
        );
    } else if report.packs_condemned > 0 {
        // No writer runs now, but one ran during this gc (or an earlier
        // gc's list waits for one): a later gc decides.
        summary!(
            "{} for a later gc: a writer that ran meanwhile may use them",
            count(report.packs_condemned, "unused pack waits", "unused packs wait"),
        );
    }
    // One tense throughout: what a dry run would do, or what was done.
    // A dry run cannot know how many packs a rewrite makes.
    let (delete, rewrite, reclaim) = match args.dry_run {
        true => ("would delete", format!("rewrite {}", report.packs_rewritten), "reclaim about"),
        false => ("deleted", format!("rewrote {} into {}", report.packs_rewritten, report.packs_written), "reclaimed"),
    };
    summary!(
        "{delete} {}, {rewrite}, {reclaim} {} ({} -> {}) in {:.2}s",
        count(report.packs_deleted, "pack", "packs"),
        bytes(report.bytes_reclaimed),
        bytes(report.bytes_before),
        bytes(report.bytes_after),
        report.duration_ms as f64 / 1000.0
    );
    Ok(ExitCode::Ok)
}
