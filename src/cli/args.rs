//! The command line, as plain clap definitions. The man page is
//! generated from these (see `man.rs`), so help and manual never drift.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "chkfs",
    version,
    about = "Content-addressed checkpoints of a directory tree, browsable as a read-only filesystem",
    long_about = "chkfs keeps checkpoints (snapshots) of a directory tree in a repository. Files are cut into \
content-defined chunks, deduplicated across all files and snapshots and compressed into pack files; \
unchanged files are recognised from their metadata and never read again.",
    after_help = "The manual: `chkfs man` (e.g. `chkfs man | man -l -`). Shell completions: `chkfs completions bash`.",
    disable_help_subcommand = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Repository: a local path or s3://BUCKET/PREFIX [default: $XDG_DATA_HOME/chkfs/repo, or
    /// ~/.local/share/chkfs/repo]
    #[arg(long, global = true, env = "CHKFS_REPO", value_name = "PATH|URL")]
    pub repo: Option<PathBuf>,
    /// Print nothing but errors and the output asked for: no progress, no summary lines
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Name each file as it is processed (save: new and changed files; restore: each file; gc:
    /// each pack deleted); twice (-vv) for more (save: unchanged files too)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new, empty repository
    Init(InitArgs),
    /// Take a checkpoint (snapshot) of a directory
    Save(SaveArgs),
    /// List snapshots, oldest first
    List(ListArgs),
    /// Recreate a snapshot, or a path inside it, in a directory
    Restore(RestoreArgs),
    /// Verify the repository: structure, and with --read-data every chunk
    Check(CheckArgs),
    /// Drop snapshots, by id or by a retention policy (space is reclaimed by gc)
    Forget(ForgetArgs),
    /// Reclaim the space that no kept snapshot uses
    Gc(GcArgs),
    /// Copy snapshots into another repository (e.g. a local one to S3), deduplicated there
    Copy(CopyArgs),
    /// Show every snapshot as a read-only directory under MOUNTPOINT/snapshots/
    #[command(allow_missing_positional = true)]
    Mount(MountArgs),
    /// List a snapshot's entries (or a directory's in it) without mounting
    Ls(LsArgs),
    /// Write a file of a snapshot to standard output, or a directory as a tar stream
    Dump(DumpArgs),
    /// The distinct versions of one path across snapshots, oldest first
    #[command(alias = "log")]
    Versions(VersionsArgs),
    /// Which snapshots hold paths matching a pattern
    Find(FindArgs),
    /// Show what changed between two snapshots (exit status 0 same, 1 different, 2 trouble)
    Diff(DiffArgs),
    /// Sizes: stored, restored, deduplicated and compressed; what each snapshot alone holds
    Stats(StatsArgs),
    /// Manage the keys (passwords) of an encrypted repository
    #[command(subcommand)]
    Key(KeyCommand),
    /// Add, remove or set the tags of snapshots (each changed record gets a new id)
    Tag(TagArgs),
    /// Write the manual (a man page) to standard output: `chkfs man | man -l -`
    Man,
    /// Write a completion script for a shell to standard output
    Completions(CompletionsArgs),
    /// Print the help of chkfs, or of a command
    Help(HelpArgs),
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Snapshots to change (unique id prefixes, or `latest`) [default: those --host, --path and
    /// --tag choose]
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Add these tags (repeatable, or comma-separated)
    #[arg(long, value_name = "TAG", value_delimiter = ',')]
    pub add: Vec<String>,
    /// Remove these tags
    #[arg(long, value_name = "TAG", value_delimiter = ',')]
    pub remove: Vec<String>,
    /// Replace all tags with these
    #[arg(long, value_name = "TAG", value_delimiter = ',')]
    pub set: Vec<String>,
    /// Print what changed as JSON on standard output
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash (`source <(chkfs completions bash)` in ~/.bashrc), zsh or fish
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct HelpArgs {
    /// The command (and subcommand) to explain
    #[arg(value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to create the repository (overrides --repo and CHKFS_REPO)
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Encrypt everything stored (AES-256-GCM); the password is asked twice on the terminal,
    /// or read from CHKFS_PASSWORD_FILE or CHKFS_PASSWORD_COMMAND
    #[arg(long)]
    pub encrypt: bool,
    /// Print the new repository's location and whether it is encrypted as JSON on standard output
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub kdf: KdfArgs,
}

/// argon2id's costs for a new key file (hidden: for tests, and for machines
/// far slower or faster than usual).
#[derive(Debug, Args, Clone, Copy)]
pub struct KdfArgs {
    #[arg(long, hide = true, value_name = "KIB", default_value_t = crate::store::KdfCost::DEFAULT.memory_kib,
          value_parser = clap::value_parser!(u32).range(64..=4 << 20))]
    pub kdf_memory: u32,
    #[arg(long, hide = true, value_name = "N", default_value_t = crate::store::KdfCost::DEFAULT.iterations,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub kdf_iterations: u32,
}

impl KdfArgs {
    pub fn cost(&self) -> crate::store::KdfCost {
        crate::store::KdfCost { memory_kib: self.kdf_memory, iterations: self.kdf_iterations }
    }
}

/// Which snapshots a command considers: those taken on one host, those
/// of one source directory, or both. `latest` is the newest of them.
#[derive(Debug, Args, Clone, Default)]
pub struct FilterArgs {
    /// Only snapshots taken on this host (the name `save` recorded)
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Only snapshots of this source directory (a relative one is taken from the current
    /// directory)
    #[arg(long = "path", id = "source_path", value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// Only snapshots with this tag (repeatable, or comma-separated: every one must be there)
    #[arg(long = "tag", id = "filter_tag", value_name = "TAG", value_delimiter = ',')]
    pub tags: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Snapshot id (any unique prefix, or `latest`), optionally followed by :PATH
    #[arg(value_name = "SNAPSHOT[:PATH]")]
    pub snapshot: std::ffi::OsString,
    /// Type, mode, owner, size and modification time of each entry
    #[arg(short, long)]
    pub long: bool,
    /// Everything under the directory, depth first
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Print the entries as JSON on standard output
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Snapshot id (any unique prefix, or `latest`), followed by :PATH (the root if none)
    #[arg(value_name = "SNAPSHOT[:PATH]")]
    pub spec: std::ffi::OsString,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct VersionsArgs {
    /// A path inside the snapshots (`src/main.rs`), or an absolute one (`/home/me/work/src/main.rs`)
    /// looked for in the snapshots of a directory that holds it
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print the versions as JSON on standard output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FindArgs {
    /// A glob (`*.rs`, `report-202?.pdf`, `{a,b}*`), matched against names
    #[arg(value_name = "PATTERN")]
    pub pattern: String,
    /// Match the pattern against the whole path from the snapshot's root (`/src/**/*.rs`)
    #[arg(long)]
    pub full_path: bool,
    /// Only entries modified after this time (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = super::format::parse_rfc3339)]
    pub newer: Option<crate::format::records::Timestamp>,
    /// Only entries modified before this time (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = super::format::parse_rfc3339)]
    pub older: Option<crate::format::records::Timestamp>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print the matches as JSON on standard output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot (unique id prefix, or `latest`)
    #[arg(value_name = "A")]
    pub a: String,
    /// The newer snapshot
    #[arg(value_name = "B")]
    pub b: String,
    /// Compare only this path (a directory or file) in both
    #[arg(value_name = "PATH")]
    pub path: Option<String>,
    /// Print the changes and counts as JSON on standard output
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show these snapshots (unique id prefixes, or `latest`) one by one, and count only them
    /// in the totals [default: every snapshot --host and --path keep]
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Show every snapshot considered, one by one
    #[arg(long)]
    pub per_snapshot: bool,
    /// Print the figures as JSON on standard output
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the key files; the one that opened the repository is marked
    List {
        /// Print the list as JSON on standard output
        #[arg(long)]
        json: bool,
    },
    /// Add a key for another password (from CHKFS_NEW_PASSWORD_FILE, CHKFS_NEW_PASSWORD_COMMAND
    /// or asked twice)
    Add {
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// Remove a key file (by a unique prefix of its id); the last one is refused
    Remove {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Change the password: a new key file replaces the one that opened the repository
    Passwd {
        #[command(flatten)]
        kdf: KdfArgs,
    },
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Directory to save [default: the current directory]
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Message recorded with the snapshot
    #[arg(short, long, default_value = "")]
    pub message: String,
    /// Leave out paths matching this gitignore-style pattern (repeatable); acts like a
    /// .chkfsignore file at the top of DIR
    #[arg(short = 'e', long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Leave out paths matching the gitignore-style patterns in FILE (repeatable), anchored at
    /// the top of DIR like --exclude
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Also honour .gitignore files (each in its directory, as git does) and, inside a git work
    /// tree, its .git/info/exclude and the .gitignore files above DIR
    #[arg(long)]
    pub git_ignore: bool,
    /// Do not cross filesystem boundaries (mount points are saved as empty directories; chkfs's
    /// own mounts always are)
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Walk and decide as a save would, writing nothing: print how many files and bytes would be
    /// saved and read (new or changed files); what is added is at most the bytes read, beside a
    /// few KiB of trees and records
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Label the snapshot with this tag (repeatable, or comma-separated)
    #[arg(long, value_name = "TAG", value_delimiter = ',')]
    pub tag: Vec<String>,
    /// Record this host name instead of the machine's
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Record this time (RFC 3339, e.g. 2026-01-31T08:00:00+01:00) instead of now
    #[arg(long, value_name = "RFC3339")]
    pub time: Option<String>,
    /// Read every file, even those unchanged since the previous snapshot
    #[arg(long)]
    pub force_read: bool,
    /// Print the result as JSON on standard output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the snapshots as a JSON array on standard output
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id (any unique prefix, or `latest`), optionally followed by :PATH
    #[arg(value_name = "SNAPSHOT[:PATH]")]
    pub snapshot: std::ffi::OsString,
    /// Directory to restore into; created if missing
    #[arg(value_name = "TARGET")]
    pub target: PathBuf,
    /// What to do with an entry already where a saved one goes: never replace it (an equal one
    /// counts as restored, another is reported), replace it if-changed, or always
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = OverwriteArg::Never)]
    pub overwrite: OverwriteArg,
    /// The same as --overwrite always
    #[arg(long, conflicts_with = "overwrite")]
    pub force: bool,
    /// Print the result as JSON on standard output
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OverwriteArg {
    Never,
    IfChanged,
    Always,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also read, decompress and hash every chunk of every pack
    #[arg(long)]
    pub read_data: bool,
    /// Print the report as JSON on standard output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// The repository (overrides --repo and CHKFS_REPO)
    #[arg(value_name = "REPO")]
    pub repo: Option<PathBuf>,
    /// An existing, empty directory to show the repository on
    #[arg(value_name = "MOUNTPOINT", required = true)]
    pub mountpoint: PathBuf,
    /// Detach into the background once the mount is ready
    #[arg(long)]
    pub daemon: bool,
    /// Mount options, comma-separated: allow_other lets other users in (the kernel enforces the
    /// saved permissions for everyone)
    #[arg(short = 'o', value_name = "OPTIONS", value_delimiter = ',')]
    pub options: Vec<String>,
    /// Memory for decompressed chunks and trees, e.g. 256M or 1G
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_size)]
    pub cache_size: u64,
    /// Read the snapshot list again at most every SECONDS while the mount is used (an idle
    /// mount reads nothing) [default: 0.5, or 5 for an S3 repository]
    #[arg(long, value_name = "SECONDS", value_parser = parse_refresh)]
    pub refresh: Option<f64>,
    /// Threads serving requests
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,
    /// Print one JSON line on standard output once the mount is ready: mount point, repository,
    /// process id
    #[arg(long)]
    pub json: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.trim().to_ascii_uppercase().chars().last() {
        Some('K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num.trim().parse().map_err(|_| format!("{s:?} is not a size such as 512M or 2G"))?;
    n.checked_mul(mult).filter(|&b| b >= 1 << 20).ok_or_else(|| format!("{s:?}: give at least 1M"))
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Snapshots to drop (unique id prefixes, or `latest`)
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days that have one
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months that have one
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years that have one
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot within DURATION (e.g. 30d, 12h, 1y6m) of the newest one
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Show what would be dropped and why each kept snapshot stays; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print the decisions as JSON on standard output
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The repository to copy from [default: --repo, CHKFS_REPO or the default repository]
    #[arg(long, value_name = "PATH|URL")]
    pub from: Option<PathBuf>,
    /// The repository to copy into (created first with `chkfs init`)
    #[arg(long, value_name = "PATH|URL")]
    pub to: PathBuf,
    /// Snapshots to copy (unique id prefixes, or `latest`) [default: all, or all that --host and
    /// --path keep]; those the target already has (same time, host, path and message) are skipped
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Print the result as JSON on standard output
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Rewrite packs in which more than this percentage of bytes is unused
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0)]
    pub max_waste: f64,
    /// Print the plan; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Packs condemned by an earlier gc are deleted once every writer running now started at
    /// least this long after they were condemned (s, m, h or d; covers clocks that differ
    /// between the nodes of an object store)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_grace)]
    pub grace: std::time::Duration,
    /// Print the report as JSON on standard output
    #[arg(long)]
    pub json: bool,
}

fn parse_refresh(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=86400.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds between 0 and 86400")),
    }
}

/// "90s", "5m", "2h", "1d" or a number of seconds.
fn parse_grace(s: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?}: give a number followed by s, m, h or d")),
    };
    let n: u64 = number.parse().map_err(|_| format!("{s:?}: give a number followed by s, m, h or d"))?;
    n.checked_mul(scale)
        .filter(|&secs| secs <= 366 * 86400)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is longer than a year"))
}
