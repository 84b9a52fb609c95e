//! The command line: parse arguments, run one command, map the outcome
//! to an exit status. The only layer that uses `anyhow`.

mod args;
mod check;
mod config;
mod copy;
mod diff;
mod dump;
mod exit;
mod filter;
mod forget;
mod format;
mod gc;
mod history;
mod key;
mod list;
mod ls;
pub mod man;
mod mount;
mod password;
mod progress;
mod repo_path;
mod restore;
mod save;
mod spec;
mod stats;
mod tag;

pub use args::Cli;
pub use exit::ExitCode;

use args::Command;
use clap::{CommandFactory, FromArgMatches};

/// Runs chkfs with the process arguments; returns the exit status.
pub fn main() -> i32 {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::Usage as i32 } else { ExitCode::Ok as i32 };
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::Usage as i32;
        }
    };
    progress::set_verbosity(progress::Verbosity { quiet: cli.global.quiet, verbose: cli.global.verbose });
    let repo_from_flag = matches!(matches.value_source("repo"), Some(clap::parser::ValueSource::CommandLine));
    let config = match config::load() {
        Ok(c) => std::sync::Arc::new(c),
        Err(e) => {
            eprintln!("chkfs: error: {e:#}");
            return ExitCode::Usage as i32;
        }
    };
    let repo = cli.global.repo.clone().or_else(|| config.repository.clone());
    let ctx = repo_path::RepoArgs { repo, from_flag: repo_from_flag, config };
    let result = match cli.command {
        // mount may fork, so it stays on the process's only thread, and no
        // thread pool is started for it.
        Command::Mount(a) => mount::run(&ctx, &a),
        command => with_deep_stack(move || {
            // The walk recurses per directory level on rayon's threads: give
            // them room for deep trees (untouched stack costs no memory).
            let _ = rayon::ThreadPoolBuilder::new().stack_size(256 << 20).build_global();
            run_command(&ctx, command)
        }),
    };
    match result {
        Ok(code) => code as i32,
        // The reader of our output went away (`| head`): quietly, with the
        // status a process killed by SIGPIPE has.
        Err(e) if exit::is_broken_pipe(&e) => 128 + libc::SIGPIPE,
        Err(e) => {
            let code = exit::classify(&e);
            eprintln!("chkfs: error: {e:#}");
            code as i32
        }
    }
}

fn run_command(ctx: &repo_path::RepoArgs, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init(a) => save::init(ctx, &a),
        Command::Save(a) => save::run(ctx, &a),
        Command::List(a) => list::run(ctx, &a),
        Command::Restore(a) => restore::run(ctx, &a),
        Command::Check(a) => check::run(ctx, &a),
        Command::Forget(a) => forget::run(ctx, &a),
        Command::Gc(a) => gc::run(ctx, &a),
        Command::Copy(a) => copy::run(ctx, &a),
        Command::Diff(a) => diff::run(ctx, &a),
        Command::Stats(a) => stats::run(ctx, &a),
        Command::Ls(a) => ls::run(ctx, &a),
        Command::Versions(a) => history::versions_cmd(ctx, &a),
        Command::Find(a) => history::find_cmd(ctx, &a),
        Command::Dump(a) => dump::run(ctx, &a),
        Command::Key(k) => key::run(ctx, k),
        Command::Tag(a) => tag::run(ctx, &a),
        Command::Man => man::print(),
        Command::Completions(a) => man::completions(a.shell),
        Command::Help(a) => man::help(&a.command),
        Command::Mount(a) => mount::run(ctx, &a),
    }
}

/// Runs `f` on a thread with a deep stack: walking, restoring and checking
/// recurse once per directory level (untouched stack costs no memory).
fn with_deep_stack(f: impl FnOnce() -> anyhow::Result<ExitCode> + Send + 'static) -> anyhow::Result<ExitCode> {
    let worker = std::thread::Builder::new().name("chkfs".into()).stack_size(256 << 20).spawn(f)?;
    match worker.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
