//! `chkfs restore`: recreate a saved tree on disk, exactly.
//!
//! Directories first (owner-writable while being filled), then files in
//! parallel, then hard links, and directory metadata last, deepest first.
//! Each item gets content, then ownership, then mode, then xattrs, then
//! times: chown clears setuid bits and any write changes mtime.

mod apply;

use crate::format::tree::{Entry, Extent, Node};
use crate::store::reader::BlobBytes;
use crate::store::{BlobReader, StoreError};
use apply::{apply_file_metadata, apply_metadata, create_special, make_way};
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RestoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} is not empty (use --force to overwrite what is in the way)")]
    TargetNotEmpty(PathBuf),
    #[error("{0:?} does not exist in the snapshot")]
    PathNotFound(String),
    #[error("{path}: {source}")]
    Target {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Default)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    /// Items that could not be restored, with the reason.
    pub errors: Vec<String>,
}

pub struct RestoreOptions {
    pub force: bool,
}

struct Item {
    path: PathBuf,
    entry: Entry,
}

/// Restores `entry` (a directory's content, or a single item) into `target`.
pub fn restore(
    reader: &BlobReader,
    entry: &Entry,
    target: &Path,
    opts: &RestoreOptions,
) -> Result<RestoreReport, RestoreError> {
    prepare_target(target, opts.force)?;
    let mut items = Vec::new();
    let root_is_dir = matches!(entry.node, Node::Dir { .. });
    if root_is_dir {
        collect(reader, entry, target, &mut items)?;
    } else {
        items.push(Item { path: target.join(std::ffi::OsStr::from_bytes(&entry.name)), entry: entry.clone() });
    }
    let errors = Mutex::new(Vec::new());
    let fail = |path: &Path, e: &dyn std::fmt::Display| {
        errors.lock().expect("not poisoned").push(format!("{}: {e}", path.display()))
    };
    let mut report = RestoreReport::default();

    for item in items.iter().filter(|i| is_dir(&i.entry)) {
        report.dirs += 1;
        if let Err(e) = create_dir(&item.path, opts.force) {
            fail(&item.path, &e);
        }
    }

    let (first_names, later_names) = split_hard_links(&items);
    let bytes = AtomicU64::new(0);
    let others = AtomicU64::new(0);
    first_names.par_iter().for_each(|item| {
        let result = match &item.entry.node {
            Node::File { content } => restore_file(reader, &item.path, content, &item.entry, opts.force).map(|n| {
                bytes.fetch_add(n, Ordering::Relaxed);
            }),
            node => {
                others.fetch_add(1, Ordering::Relaxed);
                make_way(&item.path, opts.force)
                    .and_then(|()| create_special(&item.path, node, item.entry.mode))
                    .and_then(|()| apply_metadata(&item.path, &item.entry))
            }
        };
        if let Err(e) = result {
            fail(&item.path, &e);
        }
    });
    for (item, first) in &later_names {
        let linked = make_way(&item.path, opts.force).and_then(|()| fs::hard_link(first, &item.path));
        if let Err(e) = linked {
            fail(&item.path, &e);
        }
    }

    for item in items.iter().rev().filter(|i| is_dir(&i.entry)) {
        if let Err(e) = apply_metadata(&item.path, &item.entry) {
            fail(&item.path, &e);
        }
    }
    if root_is_dir {
        if let Err(e) = apply_metadata(target, entry) {
            fail(target, &e);
        }
    }
    report.files = items.iter().filter(|i| matches!(i.entry.node, Node::File { .. })).count() as u64;
    report.other = others.load(Ordering::Relaxed);
    report.bytes = bytes.load(Ordering::Relaxed);
    report.errors = errors.into_inner().expect("not poisoned");
    Ok(report)
}

/// The entry at `path` ('/'-separated, relative to `root`).
pub fn find_path(reader: &BlobReader, root: &Entry, path: &[u8]) -> Result<Entry, RestoreError> {
    let mut current = root.clone();
    for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".") {
        let not_found = || RestoreError::PathNotFound(String::from_utf8_lossy(path).into_owned());
        let Node::Dir { tree } = current.node else {
            return Err(not_found());
        };
        let tree = reader.read_tree(tree)?;
        current = tree.find(part).cloned().ok_or_else(not_found)?;
    }
    Ok(current)
}

fn is_dir(e: &Entry) -> bool {
    matches!(e.node, Node::Dir { .. })
}

fn prepare_target(target: &Path, force: bool) -> Result<(), RestoreError> {
    let err = |source| RestoreError::Target { path: target.to_path_buf(), source };
    match fs::read_dir(target) {
        Ok(mut d) => {
            if d.next().is_some() && !force {
                return Err(RestoreError::TargetNotEmpty(target.to_path_buf()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir_all(target).map_err(err),
        Err(e) => Err(err(e)),
    }
}

/// Every item below `dir`, pre-order.
fn collect(reader: &BlobReader, dir: &Entry, path: &Path, out: &mut Vec<Item>) -> Result<(), StoreError> {
    let Node::Dir { tree } = dir.node else {
        return Ok(());
    };
    let tree = reader.read_tree(tree)?;
    for entry in tree.entries {
        let child = path.join(std::ffi::OsStr::from_bytes(&entry.name));
        let recurse = is_dir(&entry);
        out.push(Item { path: child.clone(), entry });
        if recurse {
            let e = out.last().expect("just pushed").entry.clone();
            collect(reader, &e, &child, out)?;
        }
    }
    Ok(())
}

/// Items to create, and names to link to an already created path.
fn split_hard_links(items: &[Item]) -> (Vec<&Item>, Vec<(&Item, PathBuf)>) {
    let mut first: HashMap<u64, PathBuf> = HashMap::new();
    let mut create = Vec::new();
    let mut link = Vec::new();
    for item in items.iter().filter(|i| !is_dir(&i.entry)) {
        match item.entry.hard_link {
            Some(l) => match first.get(&l.group) {
                Some(p) => link.push((item, p.clone())),
                None => {
                    first.insert(l.group, item.path.clone());
                    create.push(item);
                }
            },
            None => create.push(item),
        }
    }
    (create, link)
}

fn create_dir(path: &Path, force: bool) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => make_way(path, force)?,
        Err(_) => {}
    }
    fs::DirBuilder::new().mode(0o700).create(path)
}

/// Creates the file with its content and metadata.
fn restore_file(
    reader: &BlobReader,
    path: &Path,
    content: &[Extent],
    entry: &Entry,
    force: bool,
) -> std::io::Result<u64> {
    make_way(path, force)?;
    // The creating descriptor may write whatever the mode says.
    let file: File = OpenOptions::new().write(true).create_new(true).mode(entry.mode & 0o777).open(path)?;
    let pos = write_content(reader, &file, content)?;
    if pos != entry.size || matches!(content.last(), Some(Extent::Hole { .. })) {
        // Trailing holes: extend without writing, so they stay holes.
        file.set_len(entry.size)?;
    }
    apply_file_metadata(&file, entry)?;
    Ok(entry.size)
}

/// Chunks written with one system call at most.
const MAX_RUN: usize = 64;

/// Writes the data extents, each run of consecutive ones with one
/// pwritev: most files are a few chunks, written with one call instead of
/// one per chunk. Returns the length the extents cover.
fn write_content(reader: &BlobReader, file: &File, content: &[Extent]) -> std::io::Result<u64> {
    let mut pos = 0u64;
    let mut run: Vec<BlobBytes> = Vec::with_capacity(content.len().min(MAX_RUN));
    let mut run_start = 0;
    for extent in content {
        match extent {
            Extent::Data { id, .. } => {
                if run.is_empty() {
                    run_start = pos;
                }
                run.push(reader.read(*id).map_err(std::io::Error::other)?);
                if run.len() == MAX_RUN {
                    write_run(file, run_start, &mut run)?;
                }
            }
            Extent::Hole { .. } => write_run(file, run_start, &mut run)?,
        }
        pos += extent.len();
    }
    write_run(file, run_start, &mut run)?;
    Ok(pos)
}

fn write_run(file: &File, mut at: u64, run: &mut Vec<BlobBytes>) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice> = run.iter().map(|b| IoSlice::new(b)).filter(|s| !s.is_empty()).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let count = rest.len() as libc::c_int;
        // SAFETY: IoSlice is ABI-compatible with iovec; the slices borrow
        // blocks that `run` keeps alive for the call.
        let n = unsafe { libc::pwritev(file.as_raw_fd(), rest.as_ptr().cast(), count, at as libc::off_t) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        at += n as u64;
        IoSlice::advance_slices(&mut rest, n as usize);
    }
    drop(slices);
    run.clear();
    Ok(())
}
