//! `chkfs restore`: recreate a saved tree on disk, exactly.
//!
//! The whole tree is planned first ([`plan`]): a forged tree is refused
//! before anything is written. Then, working only through directory
//! descriptors and a [`Cursor`] that verifies every directory it enters,
//! so that nothing outside TARGET is ever created, written, chowned or
//! chmodded whatever anyone does to TARGET meanwhile:
//!
//! 1. directories, in pre-order, owner-only while they are filled;
//! 2. files (in parallel) and special files;
//! 3. the other names of hard-link groups, linked to the first;
//! 4. directory metadata, deepest first.
//!
//! What cannot be restored is named in the report; everything else is.

mod content;
mod create;
mod plan;

use crate::dirfd::cursor::{Cursor, DirTree};
use crate::dirfd::{Dir, FileId};
use crate::format::tree::{Entry, Node};
use crate::progress::{Phase, Progress};
use crate::store::{BlobReader, StoreError};
use crate::text::{escape_bytes, escape_path};
use crate::walk::{expand, ExpandError, Limits};
use parking_lot::Mutex;
use plan::{is_dir, Plan};
use rayon::prelude::*;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RestoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("\"{0}\" does not exist in the snapshot")]
    PathNotFound(String),
    #[error("{0} is inside the repository {1}: restoring there would damage it")]
    InsideRepository(String, String),
    #[error("{path}: {err}")]
    Target { path: String, err: std::io::Error },
    #[error("nothing was restored: the tree holds more than {limit} entries, {why}")]
    TooMany { limit: u64, why: String },
    #[error(
        "nothing was restored: {0}, more than half the memory available: restore it in parts, SNAPSHOT:PATH at a time"
    )]
    TooLarge(String),
}

/// What to do where something already is at a place being restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overwrite {
    /// Leave it: one equal to the saved entry (same type, size and
    /// modification time; a symlink's target) counts as there already;
    /// anything else is a conflict, reported and left alone.
    #[default]
    Never,
    /// Replace it, unless it equals the saved entry.
    IfChanged,
    /// Replace it.
    Always,
}

#[derive(Debug, Default)]
pub struct RestoreReport {
    /// Files and special files found already there, equal to the saved
    /// ones, and left as they were.
    pub unchanged: u64,
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    /// Items that could not be restored (fully), with the reason (the
    /// first ten thousand).
    pub errors: Vec<String>,
    /// How many items could not be restored (fully).
    pub failed: u64,
}

pub struct RestoreOptions {
    pub overwrite: Overwrite,
    /// The repository's directory: never restored into, never removed.
    pub repository: Option<PathBuf>,
    /// The most entries the restored tree may hold (its snapshot record's
    /// count, or what memory allows), and what more would mean.
    pub max_entries: u64,
    pub too_many: String,
    /// The most memory its decoded trees may take.
    pub max_tree_bytes: u64,
}

/// Restores `entry` (a directory's content, or a single item) into `target`.
pub fn restore(
    reader: &BlobReader,
    entry: &Entry,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport, RestoreError> {
    let keep = protected(target, opts.repository.as_deref())?;
    // A split tree claiming more entries than may be restored is refused
    // before its parts are read.
    let mut load = |id| reader.read_tree_bounded(id, opts.max_entries).map(|(tree, _)| Arc::new(tree));
    let limits = Limits { entries: opts.max_entries, tree_bytes: opts.max_tree_bytes };
    let expanded = expand(entry.clone(), limits, &mut load).map_err(|e| match e {
        ExpandError::TooMany { limit } => RestoreError::TooMany { limit, why: opts.too_many.clone() },
        ExpandError::TooLarge { .. } => RestoreError::TooLarge(e.to_string()),
    })?;
    let plan = Plan::new(expanded);
    let root = open_target(target, &keep, opts.repository.as_deref())?;
    let _umask = UmaskGuard::clear();
    let run = Run {
        reader,
        plan: &plan,
        target,
        overwrite: opts.overwrite,
        keep: &keep,
        errors: Mutex::default(),
        more_errors: AtomicU64::new(0),
        progress,
    };
    for (dir, e) in &plan.expanded.unlisted {
        run.fail(*dir, &format!("its content could not be read: {e}"));
    }
    let mut report = RestoreReport::default();
    let root_is_dir = is_dir(entry);
    if root_is_dir {
        plan.set_id(0, root.stat().map_err(|e| target_err(target, e))?.id());
        report.dirs = run.directories(&root);
    }
    let done: Vec<AtomicBool> = (0..plan.len()).map(|_| AtomicBool::new(false)).collect();
    let (items, bytes) = run.totals();
    progress.begin(Phase::Restore, items, bytes);
    let counts = run.leaves(&root, &done);
    run.links(&root, &done, &counts);
    if root_is_dir {
        run.directory_metadata(&root);
    }
    progress.finished();
    report.files = counts.files.load(Ordering::Relaxed);
    report.other = counts.other.load(Ordering::Relaxed);
    report.bytes = counts.bytes.load(Ordering::Relaxed);
    report.unchanged = counts.unchanged.load(Ordering::Relaxed);
    let more = run.more_errors.load(Ordering::Relaxed);
    report.errors = run.errors.into_inner();
    report.failed = report.errors.len() as u64 - u64::from(more > 0) + more;
    Ok(report)
}

/// The identities restore must never write into or remove: the
/// repository's directory and every directory in it (a bind mount of one
/// of them is the same directory under another path). A target whose path
/// leads into the repository is refused before anything is created (and
/// checked again, on the opened directory, against races and mounts).
fn protected(target: &Path, repository: Option<&Path>) -> Result<Vec<FileId>, RestoreError> {
    let Some(repo) = repository else { return Ok(Vec::new()) };
    let Ok(repo_canon) = std::fs::canonicalize(repo) else { return Ok(Vec::new()) };
    let target_abs = std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
    // The nearest existing ancestor, resolved, then the rest as given.
    let mut existing = target_abs.clone();
    let mut rest = Vec::new();
    while std::fs::symlink_metadata(&existing).is_err() {
        match (existing.file_name().map(|n| n.to_owned()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut resolved = std::fs::canonicalize(&existing).unwrap_or(existing);
    resolved.extend(rest.iter().rev());
    if resolved.starts_with(&repo_canon) {
        return Err(RestoreError::InsideRepository(escape_path(target), escape_path(repo)));
    }
    Ok(repository_dirs(&repo_canon))
}

/// The repository's directory and those in it (two levels: packs/XX).
fn repository_dirs(root: &Path) -> Vec<FileId> {
    let Ok(top) = Dir::open_path(root) else { return Vec::new() };
    let mut ids = Vec::new();
    let mut todo = vec![(top, 0)];
    while let Some((d, depth)) = todo.pop() {
        let Ok(st) = d.stat() else { continue };
        ids.push(st.id());
        if depth < 2 {
            for name in d.names().unwrap_or_default() {
                if let Ok(sub) = d.child(&name) {
                    todo.push((sub, depth + 1));
                }
            }
        }
    }
    ids
}

/// Opens TARGET (creating it if missing) without being led astray by a
/// symlink someone else could have planted on its path, and refuses it if
/// it is, or lies inside, the repository. What is in it already is dealt
/// with entry by entry (see [`Overwrite`]).
fn open_target(target: &Path, keep: &[FileId], repo_path: Option<&Path>) -> Result<Dir, RestoreError> {
    let err = |e| RestoreError::Target { path: escape_path(target), err: e };
    let inside = || {
        let shown = repo_path.map(escape_path).unwrap_or_default();
        RestoreError::InsideRepository(escape_path(target), shown)
    };
    // Nothing is created inside the repository on the way either.
    let outside = |d: &Dir| match in_repository(d, keep, repo_path) {
        Ok(true) => Err(std::io::Error::other(InRepository)),
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    };
    let dir = match crate::dirfd::path::open_trusted(target, Some(&outside)) {
        Ok((dir, _)) => dir,
        Err(e) if e.get_ref().is_some_and(|r| r.is::<InRepository>()) => return Err(inside()),
        Err(e) => return Err(err(e)),
    };
    if !keep.is_empty() && in_repository(&dir, keep, repo_path).map_err(err)? {
        return Err(inside());
    }
    Ok(dir)
}

/// Whether `d` is, or lies inside, a directory of the repository. A match
/// against the identities gathered at the start is confirmed against the
/// repository as it is now: a gc running meanwhile removes `packs/XX`
/// directories, and a directory created since may get the inode number of
/// a removed one.
fn in_repository(d: &Dir, keep: &[FileId], repo: Option<&Path>) -> std::io::Result<bool> {
    if !crate::dirfd::path::is_within(d, keep)? {
        return Ok(false);
    }
    match repo.and_then(|r| std::fs::canonicalize(r).ok()) {
        Some(root) => crate::dirfd::path::is_within(d, &repository_dirs(&root)),
        None => Ok(true),
    }
}

/// Why a directory on the way to TARGET was not created.
#[derive(Debug, thiserror::Error)]
#[error("inside the repository")]
struct InRepository;

/// Restores the umask when dropped; while it is cleared, everything is
/// created with exactly the mode asked for.
struct UmaskGuard(rustix::fs::Mode);

impl UmaskGuard {
    fn clear() -> UmaskGuard {
        UmaskGuard(rustix::process::umask(rustix::fs::Mode::empty()))
    }
}

impl Drop for UmaskGuard {
    fn drop(&mut self) {
        rustix::process::umask(self.0);
    }
}

fn target_err(target: &Path, e: std::io::Error) -> RestoreError {
    RestoreError::Target { path: escape_path(target), err: e }
}

#[derive(Default)]
struct LeafCounts {
    unchanged: AtomicU64,
    files: AtomicU64,
    other: AtomicU64,
    bytes: AtomicU64,
}

/// Leaves handed to the worker threads at once, and the directories
/// (each an open descriptor) they may come from.
const BATCH_ITEMS: usize = 4096;
const BATCH_DIRS: usize = 128;

struct Run<'a> {
    progress: &'a dyn Progress,
    reader: &'a BlobReader,
    plan: &'a Plan,
    target: &'a Path,
    overwrite: Overwrite,
    keep: &'a [FileId],
    errors: Mutex<Vec<String>>,
    more_errors: AtomicU64,
}

/// The most error messages one restore keeps (the rest are counted).
const MAX_ERRORS: usize = 10_000;

impl Run<'_> {
    fn path(&self, i: u32) -> String {
        escape_path(&self.raw_path(i))
    }

    fn raw_path(&self, i: u32) -> PathBuf {
        let rel = self.plan.expanded.path(i);
        if rel.is_empty() && !is_dir(self.plan.entry(i)) {
            return self.target.join(std::ffi::OsStr::from_bytes(&self.plan.entry(i).name));
        }
        self.target.join(std::ffi::OsStr::from_bytes(&rel))
    }

    /// What pass 2 and 3 go through: every leaf, and the bytes of the
    /// files pass 2 writes.
    fn totals(&self) -> (u64, u64) {
        let (mut items, mut bytes) = (0, 0);
        for (_, leaves) in &self.plan.leaves_by_dir {
            for &i in leaves {
                items += 1;
                let entry = self.plan.entry(i);
                if matches!(entry.node, Node::File { .. }) && self.plan.link_source(i).is_none() {
                    bytes += entry.size;
                }
            }
        }
        (items, bytes)
    }

    /// One leaf done (restored, there already, or failed).
    fn leaf_done(&self, i: u32, level: u8, what: &str) {
        let entry = self.plan.entry(i);
        let bytes =
            if matches!(entry.node, Node::File { .. }) && self.plan.link_source(i).is_none() { entry.size } else { 0 };
        self.progress.advance(1, bytes);
        if !what.is_empty() && self.progress.wants_paths(level) {
            self.progress.item(level, what, &self.path(i));
        }
    }

    /// Records what could not be restored; past [`MAX_ERRORS`] messages
    /// only counts (a forged tree may fail a million times).
    fn fail(&self, i: u32, why: &str) {
        let mut errors = self.errors.lock();
        match errors.len() {
            n if n < MAX_ERRORS => errors.push(format!("{}: {why}", self.path(i))),
            _ => {
                let more = self.more_errors.fetch_add(1, Ordering::Relaxed) + 1;
                if more == 1 {
                    errors.push(String::new());
                }
                if let Some(last) = errors.last_mut() {
                    *last = format!("... and {more} more");
                }
            }
        }
    }

    /// Pass 1: every directory but the root, in pre-order. One that cannot
    /// be made is reported; what it would have held is not tried.
    fn directories(&self, root: &Dir) -> u64 {
        let Ok(start) = root.try_clone() else { return 0 };
        let mut cursor = Cursor::new(start, 0);
        let mut created = 1;
        for d in self.plan.dirs().skip(1) {
            let parent = self.plan.item(d).parent.expect("only the root has no parent");
            if self.plan.id(parent).is_none() {
                continue;
            }
            let made = cursor
                .move_to(self.plan, parent)
                .and_then(|()| create::directory(cursor.dir(), &self.plan.entry(d).name, self.overwrite, self.keep))
                .and_then(|dir| dir.stat());
            match made {
                Ok(st) => {
                    self.plan.set_id(d, st.id());
                    created += 1;
                }
                Err(e) => self.fail(d, &format!("{e}; nothing inside it is restored")),
            }
        }
        created
    }

    /// Pass 2: files, special files and the first name of each hard-link
    /// group, directory by directory, files of a batch in parallel.
    fn leaves(&self, root: &Dir, done: &[AtomicBool]) -> LeafCounts {
        let counts = LeafCounts::default();
        let Ok(start) = root.try_clone() else { return counts };
        let mut cursor = Cursor::new(start, 0);
        let mut batch: Vec<(Arc<Dir>, u32)> = Vec::new();
        let mut dirs_in_batch = 0;
        for (dir, leaves) in &self.plan.leaves_by_dir {
            let todo: Vec<u32> = leaves.iter().copied().filter(|&i| self.plan.link_source(i).is_none()).collect();
            if todo.is_empty() {
                continue;
            }
            let fd = if *dir == u32::MAX {
                root.try_clone()
            } else if self.plan.id(*dir).is_none() {
                continue;
            } else {
                cursor.move_to(self.plan, *dir).and_then(|()| cursor.dir().try_clone())
            };
            let fd = match fd {
                Ok(fd) => Arc::new(fd),
                Err(e) => {
                    todo.iter().for_each(|&i| self.fail(i, &e.to_string()));
                    continue;
                }
            };
            batch.extend(todo.into_iter().map(|i| (fd.clone(), i)));
            dirs_in_batch += 1;
            if batch.len() >= BATCH_ITEMS || dirs_in_batch >= BATCH_DIRS {
                self.restore_batch(std::mem::take(&mut batch), done, &counts);
                dirs_in_batch = 0;
            }
        }
        self.restore_batch(batch, done, &counts);
        counts
    }

    fn restore_batch(&self, batch: Vec<(Arc<Dir>, u32)>, done: &[AtomicBool], counts: &LeafCounts) {
        batch.par_iter().for_each(|(dir, i)| self.restore_leaf(dir, *i, done, counts));
    }

    fn restore_leaf(&self, dir: &Dir, i: u32, done: &[AtomicBool], counts: &LeafCounts) {
        if self.progress.wants_paths(0) {
            self.progress.current(&self.raw_path(i));
        }
        let what = self.restore_leaf_as(dir, i, done, counts);
        self.leaf_done(i, if what == "unchanged" { 2 } else { 1 }, what);
    }

    /// Restores one leaf; returns what became of it for `-v` ("" when it
    /// failed: the failure is reported).
    fn restore_leaf_as(&self, dir: &Dir, i: u32, done: &[AtomicBool], counts: &LeafCounts) -> &'static str {
        let entry = self.plan.entry(i);
        if self.plan.group_of(i).is_some_and(|g| !g.consistent) {
            let why = "its hard-link group's names disagree on what the file holds (a damaged or forged tree); \
                       no name of the group is restored";
            self.fail(i, why);
            return "";
        }
        match &entry.node {
            Node::File { .. } => match create::file(self.reader, dir, entry, self.overwrite, self.keep) {
                Ok(r) if r.unchanged => {
                    done[i as usize].store(true, Ordering::Relaxed);
                    counts.unchanged.fetch_add(1, Ordering::Relaxed);
                    "unchanged"
                }
                Ok(r) => {
                    done[i as usize].store(true, Ordering::Relaxed);
                    counts.files.fetch_add(1, Ordering::Relaxed);
                    counts.bytes.fetch_add(r.bytes, Ordering::Relaxed);
                    if let Some(e) = r.metadata_error {
                        self.fail(i, &format!("content restored, metadata not: {e}"));
                    }
                    "restored"
                }
                Err(e) => {
                    self.fail(i, &e.to_string());
                    ""
                }
            },
            _ => match create::special(dir, entry, self.overwrite, self.keep) {
                Ok(true) => {
                    done[i as usize].store(true, Ordering::Relaxed);
                    counts.unchanged.fetch_add(1, Ordering::Relaxed);
                    "unchanged"
                }
                Ok(false) => {
                    done[i as usize].store(true, Ordering::Relaxed);
                    counts.other.fetch_add(1, Ordering::Relaxed);
                    "restored"
                }
                Err(e) => {
                    self.fail(i, &e.to_string());
                    ""
                }
            },
        }
    }

    /// Pass 3: every later name of a hard-link group, linked to the first.
    fn links(&self, root: &Dir, done: &[AtomicBool], counts: &LeafCounts) {
        let (Ok(a), Ok(b)) = (root.try_clone(), root.try_clone()) else { return };
        let (mut here, mut there) = (Cursor::new(a, 0), Cursor::new(b, 0));
        for (dir, leaves) in &self.plan.leaves_by_dir {
            for &i in leaves {
                let Some(first) = self.plan.link_source(i) else { continue };
                if self.plan.group_of(i).is_some_and(|g| !g.consistent) {
                    self.fail(i, "its hard-link group's names disagree on what the file holds (a damaged or forged tree); no name of the group is restored");
                    self.leaf_done(i, 1, "");
                    continue;
                }
                if !done[first as usize].load(Ordering::Relaxed) {
                    self.fail(
                        i,
                        &format!(
                            "not restored: it is a hard link to {}, which could not be restored",
                            self.path(first)
                        ),
                    );
                    self.leaf_done(i, 1, "");
                    continue;
                }
                let first_dir = self.plan.item(first).parent;
                let linked = self.position(&mut here, root, *dir).and_then(|()| {
                    self.position(&mut there, root, first_dir.unwrap_or(u32::MAX))?;
                    self.link(&here, &there, first, i)
                });
                match linked {
                    Ok(true) => {
                        done[i as usize].store(true, Ordering::Relaxed);
                        counts.unchanged.fetch_add(1, Ordering::Relaxed);
                        self.leaf_done(i, 2, "unchanged");
                    }
                    Ok(false) => {
                        done[i as usize].store(true, Ordering::Relaxed);
                        counts.files.fetch_add(1, Ordering::Relaxed);
                        self.leaf_done(i, 1, "linked");
                    }
                    Err(e) => {
                        self.fail(i, &e.to_string());
                        self.leaf_done(i, 1, "");
                    }
                }
            }
        }
    }

    fn position(&self, cursor: &mut Cursor, root: &Dir, dir: u32) -> std::io::Result<()> {
        if dir == u32::MAX {
            *cursor = Cursor::new(root.try_clone()?, 0);
            return Ok(());
        }
        cursor.move_to(self.plan, dir)
    }

    /// Links name `i` to `first`; true when it was there already (this
    /// file's other name, or a file equal to the saved one, left alone).
    fn link(&self, here: &Cursor, there: &Cursor, first: u32, i: u32) -> std::io::Result<bool> {
        let (from, name) = (&self.plan.entry(first).name, &self.plan.entry(i).name);
        match here.dir().link_from(there.dir(), from, name) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let (a, b) = (here.dir().stat_at(name)?, there.dir().stat_at(from)?);
                if a.id() == b.id() {
                    return Ok(true);
                }
                let equal = create::equal_at(here.dir(), self.plan.entry(i))?;
                match self.overwrite {
                    Overwrite::Never | Overwrite::IfChanged if equal => return Ok(true),
                    Overwrite::Never => return Err(create::conflict()),
                    Overwrite::IfChanged | Overwrite::Always => {}
                }
                here.dir().remove_all(name, self.keep)?;
                here.dir().link_from(there.dir(), from, name).map(|()| false)
            }
            other => other.map(|()| false),
        }
    }

    /// Pass 4: directory metadata, deepest first, each directory changed
    /// through its own descriptor while the cursor waits in its parent (a
    /// directory made unsearchable must not be climbed out of).
    fn directory_metadata(&self, root: &Dir) {
        let Ok(start) = root.try_clone() else { return };
        let mut cursor = Cursor::new(start, 0);
        for d in self.plan.dirs().collect::<Vec<_>>().into_iter().skip(1).rev() {
            let Some(want) = self.plan.id(d) else { continue };
            let parent = self.plan.item(d).parent.expect("only the root has no parent");
            let applied = cursor.move_to(self.plan, parent).and_then(|()| {
                let dir = cursor.dir().child(&self.plan.entry(d).name)?;
                if dir.stat()?.id() != want {
                    return Err(crate::dirfd::cursor::replaced());
                }
                create::dir_metadata(&dir, self.plan.entry(d))
            });
            if let Err(e) = applied {
                self.fail(d, &e.to_string());
            }
        }
        if let Err(e) = create::dir_metadata(root, self.plan.entry(0)) {
            self.fail(0, &e.to_string());
        }
    }
}

/// The entry at `path` ('/'-separated, relative to `root`).
pub fn find_path(reader: &BlobReader, root: &Entry, path: &[u8]) -> Result<Entry, RestoreError> {
    let mut current = root.clone();
    for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".") {
        let not_found = || RestoreError::PathNotFound(escape_bytes(path));
        let Node::Dir { tree } = current.node else {
            return Err(not_found());
        };
        let tree = reader.read_tree(tree)?;
        current = tree.find(part).cloned().ok_or_else(not_found)?;
    }
    Ok(current)
}
