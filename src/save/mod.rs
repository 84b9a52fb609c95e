//! `chkfs save`: take a checkpoint of a directory.
//!
//! Three stages: [`scan`] walks the source and finds what changed,
//! [`file_saver`] reads and chunks changed files on every core,
//! [`tree_saver`] stores the directories. The snapshot record is written
//! last, once everything it references is durable.

mod file_saver;
mod ignore_rules;
pub mod meta;
mod scan;
mod tree_saver;
mod walk;

use crate::dirfd::{Dir, FileId};
use crate::format::records::{Snapshot, SnapshotStats, Timestamp};
use crate::format::SnapshotId;
use crate::store::writers::{SAVE_LEASE, STALE_TEMP_AGE};
use crate::store::{BlobReader, BlobWriter, Repository, StoreError};
use crate::text::escape_path;
use file_saver::{FileError, FileSaver};
use scan::ScanOptions;
pub use scan::ScanStats;
use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;

pub use ignore_rules::IGNORE_FILE;

#[derive(Debug, Error)]
pub enum SaveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {err}")]
    Source { path: String, err: std::io::Error },
    #[error("{0}")]
    Usage(String),
    #[error("interrupted; the data stored so far will be reused by the next save")]
    Interrupted,
}

impl SaveError {
    fn source(path: &Path, err: std::io::Error) -> Self {
        SaveError::Source { path: escape_path(path), err }
    }
}

#[derive(Debug, Clone)]
pub struct SaveOptions {
    pub source: PathBuf,
    pub message: String,
    /// Labels recorded with the snapshot.
    pub tags: Vec<String>,
    pub host: Option<String>,
    pub time: Option<Timestamp>,
    pub excludes: Vec<String>,
    /// Files of gitignore-style patterns, anchored at the source.
    pub exclude_files: Vec<PathBuf>,
    /// Honours `.gitignore` files and the work tree's `.git/info/exclude`.
    pub git_ignore: bool,
    pub one_file_system: bool,
    /// Reads every file even when the previous snapshot has it unchanged.
    pub force_read: bool,
    pub threads: usize,
}

pub use crate::progress::{Phase, Progress, Silent};

pub struct SaveOutcome {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
}

/// The most error messages a snapshot record keeps (the count is kept
/// whole): a record must stay small enough to read.
const MAX_RECORDED_ERRORS: usize = 10_000;

pub fn save(
    repo: Arc<Repository>,
    opts: &SaveOptions,
    progress: &dyn Progress,
    interrupted: &AtomicBool,
) -> Result<SaveOutcome, SaveError> {
    let started = Instant::now();
    let source = std::fs::canonicalize(&opts.source).map_err(|e| SaveError::source(&opts.source, e))?;
    let repo_dir = repository_dir(&repo, &source)?;
    // The source as it is now, opened once: everything below is reached
    // from this descriptor.
    let root = Dir::open_path(&source).map_err(|e| SaveError::source(&source, e))?;
    // Announced before anything is read: see FORMAT.md, "Many writers".
    let session = repo.begin_writing("save", SAVE_LEASE)?;
    repo.remove_stale_temps(STALE_TEMP_AGE)?;
    let mut loaded = repo.load_index()?;
    for w in loaded.warnings() {
        progress.message(&format!("warning: {w}"));
    }
    // Where every pack was listed, damaged index files are replaced by
    // indexing their packs again; on an object store gc does that.
    if repo.lists_cheaply() {
        for note in repo.repair_index(&mut loaded)? {
            progress.message(&note);
        }
    }
    let index = Arc::new(loaded.index);
    let reader = BlobReader::new(repo.clone(), index.clone(), 32 << 20);

    let host = opts.host.clone().unwrap_or_else(hostname);
    let path = source.as_os_str().as_bytes().to_vec();
    let parent = parent_snapshot(&repo, opts, &host, &path, progress)?;
    let scan_opts = scan_options(opts, repo_dir);
    let prev_root = parent.as_ref().map(|p| p.snapshot.root_tree());
    let scan_root = root.try_clone().map_err(|e| SaveError::source(&source, e))?;
    progress.begin(Phase::Scan, 0, 0);
    let mut scan = scan::scan(scan_root, &source, prev_root, &reader, &index, &scan_opts, interrupted, progress)?;
    if progress.wants_paths(2) {
        list_unchanged(&scan, progress);
    }
    progress.begin(Phase::Save, scan.jobs.len() as u64, scan.stats.bytes_to_read);

    let writer = BlobWriter::new(repo.clone(), index.clone());
    let mut files: Vec<Option<file_saver::SavedFile>> = (0..scan.jobs.len()).map(|_| None).collect();
    let mut failures = Failures { progress, errors: std::mem::take(&mut scan.errors), store: None, interrupted: false };
    let mut bytes_read = 0;
    let saver = FileSaver {
        writer: &writer,
        sizes: repo.chunk_sizes(),
        threads: opts.threads,
        interrupted,
        root: &root,
        scan: &scan,
        progress,
    };
    let mut added = 0;
    saver.run(&scan.jobs, |i, result| {
        progress.advance(1, 0);
        let now_added = writer.raw_bytes_added();
        progress.added(now_added - added);
        added = now_added;
        if let Some(saved) = failures.take(result) {
            bytes_read += saved.bytes_read;
            let job = &scan.jobs[i];
            if progress.wants_paths(1) {
                let what = if job.new { "new" } else { "changed" };
                progress.item(1, what, &escape_path(&scan.path_of(job.dir, &job.name)));
            }
            files[i] = Some(saved);
        }
    })?;
    if let Some(e) = failures.failure() {
        return Err(abandon(writer, &session, e));
    }
    let broken = broken_link_groups(&scan, &files, progress);
    let mut separate = tree_saver::SeparateNames::new();
    let members: Vec<&scan::FileJob> = broken.iter().flat_map(|g| scan.link_members.get(g)).flatten().collect();
    if !members.is_empty() {
        let jobs: Vec<scan::FileJob> = members.iter().map(|j| (*j).clone()).collect();
        saver.run(&jobs, |i, result| {
            if let Some(saved) = failures.take(result) {
                bytes_read += saved.bytes_read;
                separate.insert((jobs[i].dir, jobs[i].name.clone()), saved);
            }
        })?;
        if let Some(e) = failures.failure() {
            return Err(abandon(writer, &session, e));
        }
    }
    let mut errors = failures.errors;
    let (root_entry, tree_stats) = tree_saver::save_trees(&mut scan, &mut files, &broken, &separate, &writer)?;
    let written = writer.finish_for(&session)?;
    progress.finished();

    let error_count = errors.len();
    if errors.len() > MAX_RECORDED_ERRORS {
        errors.truncate(MAX_RECORDED_ERRORS);
        errors.push(format!("... and {} more", error_count - MAX_RECORDED_ERRORS));
    }
    let mut snapshot = Snapshot {
        time: opts.time.unwrap_or_else(Timestamp::now),
        host,
        path,
        message: opts.message.clone(),
        parent: parent.map(|p| p.id.0),
        root: root_entry,
        partial: error_count > 0,
        errors,
        stats: SnapshotStats {
            files: tree_stats.files,
            dirs: tree_stats.dirs,
            other: tree_stats.other,
            bytes: tree_stats.bytes,
            bytes_read,
            added_bytes: 0,
            added_blobs: written.blobs_added,
            duration_ms: 0,
        },
        chkfs_version: env!("CARGO_PKG_VERSION").to_string(),
        tags: opts.tags.clone(),
    };
    let id = repo.commit_snapshot(&session, &mut snapshot, |s, record_len| {
        s.stats.added_bytes = written.bytes_written + record_len;
        s.stats.duration_ms = started.elapsed().as_millis() as u64;
    })?;
    Ok(SaveOutcome { id, snapshot })
}

/// Names every file the scan found unchanged (for `-vv`).
fn list_unchanged(scan: &scan::Scan, progress: &dyn Progress) {
    for (i, dir) in scan.dirs.iter().enumerate() {
        for (entry, pending) in &dir.entries {
            if *pending == scan::Pending::Ready && matches!(entry.node, crate::format::tree::Node::File { .. }) {
                progress.item(2, "unchanged", &escape_path(&scan.path_of(i as u32, &entry.name)));
            }
        }
    }
}

/// What a save would do, found without writing anything.
pub struct DryRun {
    /// The snapshot a save would compare with.
    pub parent: Option<SnapshotId>,
    pub stats: ScanStats,
    /// Files a save would read (new or changed); their bytes are
    /// `stats.bytes_to_read`, at most what it would add.
    pub files_to_read: u64,
    /// What a save would leave out, with why.
    pub errors: Vec<String>,
}

/// Walks the source and decides as [`save`] would (same rules, same
/// parent snapshot, same unchanged files), writing nothing to the
/// repository: no writer marker, no pack, index or snapshot record, no
/// temporary file removed. Works on a repository it may only read.
pub fn dry_run(repo: Arc<Repository>, opts: &SaveOptions, interrupted: &AtomicBool) -> Result<DryRun, SaveError> {
    let source = std::fs::canonicalize(&opts.source).map_err(|e| SaveError::source(&opts.source, e))?;
    let repo_dir = repository_dir(&repo, &source)?;
    let root = Dir::open_path(&source).map_err(|e| SaveError::source(&source, e))?;
    let loaded = repo.load_index()?;
    for w in loaded.warnings() {
        eprintln!("chkfs: warning: {w}");
    }
    let index = Arc::new(loaded.index);
    let reader = BlobReader::new(repo.clone(), index.clone(), 32 << 20);
    let host = opts.host.clone().unwrap_or_else(hostname);
    let path = source.as_os_str().as_bytes().to_vec();
    let parent = parent_snapshot(&repo, opts, &host, &path, &Silent)?;
    let scan_opts = scan_options(opts, repo_dir);
    let prev_root = parent.as_ref().map(|p| p.snapshot.root_tree());
    let scan = scan::scan(root, &source, prev_root, &reader, &index, &scan_opts, interrupted, &Silent)?;
    Ok(DryRun {
        parent: parent.map(|p| p.id),
        stats: scan.stats,
        files_to_read: scan.jobs.len() as u64,
        errors: scan.errors,
    })
}

/// The latest snapshot of the same host and path, whose unchanged files
/// need not be read; none with `--force-read`.
fn parent_snapshot(
    repo: &Repository,
    opts: &SaveOptions,
    host: &str,
    path: &[u8],
    progress: &dyn Progress,
) -> Result<Option<crate::store::SnapshotEntry>, SaveError> {
    if opts.force_read {
        return Ok(None);
    }
    let snapshots = repo.readable_snapshots(&mut |id, e| progress.message(&format!("warning: snapshot {id}: {e}")))?;
    Ok(snapshots.into_iter().rev().find(|s| s.snapshot.host == host && s.snapshot.path == path))
}

fn scan_options(opts: &SaveOptions, repo_dir: Vec<FileId>) -> ScanOptions<'_> {
    ScanOptions {
        excludes: &opts.excludes,
        exclude_files: &opts.exclude_files,
        git_ignore: opts.git_ignore,
        one_file_system: opts.one_file_system,
        skip_dirs: repo_dir,
        chkfs_mounts: walk::chkfs_mounts(),
    }
}

/// Hard-link groups whose first name was replaced during the save, or
/// could not be read: the file read is not the one the other names still
/// are, so each of them is read on its own (and stored as a separate
/// file), never given another file's content.
fn broken_link_groups(
    scan: &scan::Scan,
    files: &[Option<file_saver::SavedFile>],
    progress: &dyn Progress,
) -> HashSet<u64> {
    let mut broken = HashSet::new();
    for (group, source) in &scan.link_sources {
        let scan::Pending::File(job) = source else { continue };
        let ok = files[*job].as_ref().is_some_and(|f| !f.replaced);
        if !ok {
            let shown = escape_path(&scan.path_of(scan.jobs[*job].dir, &scan.jobs[*job].name));
            progress.message(&format!(
                "warning: {shown} changed during the save; its other names are saved as separate files"
            ));
            broken.insert(*group);
        }
    }
    broken
}

/// The identity of a local repository's directory (never entered by the
/// walk); a source inside the repository is refused.
fn repository_dir(repo: &Repository, source: &Path) -> Result<Vec<FileId>, SaveError> {
    let Some(root) = repo.local_root() else { return Ok(Vec::new()) };
    let repo_root = std::fs::canonicalize(root).map_err(|e| SaveError::source(root, e))?;
    if source.starts_with(&repo_root) {
        let msg = format!(
            "{} is inside the repository {}: it cannot be saved into itself",
            escape_path(source),
            escape_path(&repo_root)
        );
        return Err(SaveError::Usage(msg));
    }
    let st = Dir::open_path(&repo_root).and_then(|d| d.stat()).map_err(|e| SaveError::source(&repo_root, e))?;
    Ok(vec![st.id()])
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// What the file savers reported besides saved files.
struct Failures<'a> {
    progress: &'a dyn Progress,
    /// Files left out, with why.
    errors: Vec<String>,
    /// The first repository failure: the cause (later ones follow from it).
    store: Option<StoreError>,
    interrupted: bool,
}

impl Failures<'_> {
    /// The saved file, or None once why not is recorded.
    fn take(&mut self, result: Result<file_saver::SavedFile, FileError>) -> Option<file_saver::SavedFile> {
        match result {
            Ok(saved) => return Some(saved),
            Err(FileError::Source(msg)) => {
                self.progress.message(&format!("skipped {msg}"));
                self.errors.push(msg);
            }
            Err(FileError::Store(e)) => {
                self.store.get_or_insert(e);
            }
            Err(FileError::Interrupted) => self.interrupted = true,
        }
        None
    }

    /// Why the save must stop, if it must: an interruption, or a
    /// repository failure.
    fn failure(&mut self) -> Option<SaveError> {
        if self.interrupted {
            return Some(SaveError::Interrupted);
        }
        self.store.take().map(SaveError::from)
    }
}

/// Ends a failed save. After an interruption what was written is kept:
/// the next save finds it through the index.
fn abandon(writer: BlobWriter, session: &crate::store::WriterSession, failure: SaveError) -> SaveError {
    if matches!(failure, SaveError::Interrupted) {
        if let Err(e) = writer.finish_for(session) {
            return e.into();
        }
    }
    failure
}
