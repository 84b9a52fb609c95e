//! `chkfs init` and `chkfs save`.

use super::args::{InitArgs, SaveArgs};
use super::exit::{ExitCode, UsageError};
use super::format::{bytes, parse_rfc3339, rfc3339};
use super::progress::{summary, Display};
use super::repo_path::RepoArgs;
use crate::chunking::ChunkSizes;
use crate::save::{dry_run, save, DryRun, SaveOptions};
use crate::store::Repository;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn init(ctx: &RepoArgs, args: &InitArgs) -> Result<ExitCode> {
    let chosen = ctx.choose(args.path.as_deref())?;
    let location = chosen.location()?;
    let repo = if args.encrypt {
        let password = super::password::REPO.new_password("password for the new repository")?;
        Repository::init_at(&location, ChunkSizes::DEFAULT, Some((&password, args.kdf.cost())))?
    } else {
        Repository::init_at(&location, ChunkSizes::DEFAULT, None)?
    };
    if args.json {
        let json = InitJson {
            location: repo.location().to_string(),
            path: repo.local_root().map(crate::text::escape_path),
            encrypted: repo.is_encrypted(),
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    let encrypted = if repo.is_encrypted() { "encrypted " } else { "" };
    summary!("chkfs: created {encrypted}repository at {}", repo.location());
    Ok(ExitCode::Ok)
}

#[derive(Serialize)]
struct InitJson {
    /// As given to --repo: a path or an s3:// URL.
    location: String,
    /// The local directory, absolute; none for an object store.
    path: Option<String>,
    encrypted: bool,
}

#[derive(Serialize)]
struct SaveJson<'a> {
    id: String,
    time: String,
    host: &'a str,
    path: String,
    message: &'a str,
    parent: Option<String>,
    files: u64,
    dirs: u64,
    other: u64,
    bytes: u64,
    bytes_read: u64,
    added_bytes: u64,
    added_blobs: u64,
    duration_ms: u64,
    partial: bool,
    errors: &'a [String],
}

/// How long a save may take to wind down after Ctrl-C or SIGTERM before
/// the process leaves anyway (a crash leaves the repository valid).
const STOP_GRACE: Duration = Duration::from_millis(700);

/// Runs the save on its own thread, so that a signal stops the process
/// within a second whatever the save is blocked on (a hung filesystem, a
/// FIFO): it is asked to stop, and if it has not stopped in time the
/// process exits with 130.
fn run_interruptibly<T: Send + 'static>(
    interrupted: Arc<AtomicBool>,
    display: &Display,
    work: impl FnOnce(&AtomicBool) -> Result<T, crate::save::SaveError> + Send + 'static,
) -> Result<T> {
    let flag = interrupted.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("chkfs-save".into()).stack_size(256 << 20).spawn(move || {
        let _ = tx.send(work(&flag));
    })?;
    let mut asked_at = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(result) => {
                display.clear();
                return Ok(result?);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => bail!("the save stopped without a result"),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if interrupted.load(Ordering::Relaxed) {
            let since = *asked_at.get_or_insert_with(Instant::now);
            if since.elapsed() > STOP_GRACE {
                display.clear();
                eprintln!("chkfs: error: interrupted; the data stored so far will be reused by the next save");
                std::process::exit(ExitCode::Interrupted as i32);
            }
        }
    }
}

pub fn run(ctx: &RepoArgs, args: &SaveArgs) -> Result<ExitCode> {
    let time = args.time.as_deref().map(parse_rfc3339).transpose().map_err(UsageError)?;
    let source = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    // A dry run creates nothing, not even the default repository.
    let repo = Arc::new(if args.dry_run { ctx.open()? } else { ctx.open_or_create_default()? });
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while the first is being handled exits at once.
        signal_hook::flag::register_conditional_shutdown(sig, 130, interrupted.clone())?;
        signal_hook::flag::register(sig, interrupted.clone())?;
    }
    let interrupted_flag = interrupted.clone();
    if let Some(h) = &args.host {
        if h.is_empty() {
            return Err(super::exit::UsageError("--host: a host name is not empty".into()).into());
        }
    }
    let opts = SaveOptions {
        source,
        message: args.message.clone(),
        // The configuration file's settings, then the flags'.
        tags: super::filter::tags(&[&ctx.config.save.tags[..], &args.tag[..]].concat())?,
        host: args.host.clone(),
        time,
        excludes: [&ctx.config.save.exclude[..], &args.exclude[..]].concat(),
        exclude_files: [&ctx.config.save.exclude_files[..], &args.exclude_file[..]].concat(),
        git_ignore: args.git_ignore || ctx.config.save.git_ignore,
        one_file_system: args.one_file_system || ctx.config.save.one_file_system,
        force_read: args.force_read,
        threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
    };
    let display = Arc::new(Display::new(args.json));
    if args.dry_run {
        let found =
            run_interruptibly(interrupted_flag, &display, move |interrupted| dry_run(repo, &opts, interrupted))?;
        return report_dry_run(&found, args.json);
    }
    let progress = display.clone();
    let outcome =
        run_interruptibly(interrupted_flag, &display, move |interrupted| save(repo, &opts, &*progress, interrupted))?;
    let s = &outcome.snapshot;
    let st = &s.stats;
    if args.json {
        let json = SaveJson {
            id: outcome.id.to_hex(),
            time: rfc3339(s.time),
            host: &s.host,
            path: String::from_utf8_lossy(&s.path).into_owned(),
            message: &s.message,
            parent: s.parent.map(|p| format!("{p:08x}")),
            files: st.files,
            dirs: st.dirs,
            other: st.other,
            bytes: st.bytes,
            bytes_read: st.bytes_read,
            added_bytes: st.added_bytes,
            added_blobs: st.added_blobs,
            duration_ms: st.duration_ms,
            partial: s.partial,
            errors: &s.errors,
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    summary!(
        "snapshot {} saved{}: {} files, {}; read {}, added {} in {:.2}s",
        outcome.id,
        if s.partial { " (partial)" } else { "" },
        st.files,
        bytes(st.bytes),
        bytes(st.bytes_read),
        bytes(st.added_bytes),
        st.duration_ms as f64 / 1000.0
    );
    if s.partial {
        eprintln!("chkfs: {} item(s) could not be saved; the snapshot is marked partial", s.errors.len());
        return Ok(ExitCode::Partial);
    }
    Ok(ExitCode::Ok)
}

#[derive(Serialize)]
struct DryRunJson<'a> {
    dry_run: bool,
    parent: Option<String>,
    files: u64,
    dirs: u64,
    other: u64,
    bytes: u64,
    files_to_read: u64,
    bytes_to_read: u64,
    /// An upper bound of the file data added (chunks already stored are
    /// not added again); trees and records add a few KiB beside it.
    added_bytes_at_most: u64,
    partial: bool,
    errors: &'a [String],
}

fn report_dry_run(found: &DryRun, json: bool) -> Result<ExitCode> {
    let st = &found.stats;
    if json {
        let out = DryRunJson {
            dry_run: true,
            parent: found.parent.map(|p| p.to_hex()),
            files: st.files,
            dirs: st.dirs,
            other: st.other,
            bytes: st.bytes,
            files_to_read: found.files_to_read,
            bytes_to_read: st.bytes_to_read,
            added_bytes_at_most: st.bytes_to_read,
            partial: !found.errors.is_empty(),
            errors: &found.errors,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    let against = match found.parent {
        Some(p) => format!(" (compared with snapshot {p})"),
        None => String::new(),
    };
    summary!(
        "dry run, nothing written: would save {} files, {}; would read {} files, {}, and add at most that \
         (and a few KiB of trees){against}",
        st.files,
        bytes(st.bytes),
        found.files_to_read,
        bytes(st.bytes_to_read),
    );
    if !found.errors.is_empty() {
        eprintln!("chkfs: {} item(s) could not be read; a save would be partial", found.errors.len());
        return Ok(ExitCode::Partial);
    }
    Ok(ExitCode::Ok)
}
