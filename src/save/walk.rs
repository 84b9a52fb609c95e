//! Walking the source, directories in parallel: lstat every entry, read
//! xattrs and symlinks, and find each file's previous version, whose chunk
//! list is reused when size, mtime, ctime and inode are unchanged.

use super::ignore_rules::{IgnoreRules, IGNORE_FILE};
use super::meta::{read_xattrs, Stat};
use super::SaveError;
use crate::format::tree::{Entry, Extent, Node, Tree, Xattr};
use crate::format::BlobId;
use crate::store::{BlobReader, Index};
use parking_lot::Mutex;
use rayon::prelude::*;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A directory as walked, entries sorted by name.
pub struct WalkedDir {
    pub entries: Vec<Walked>,
}

pub struct Walked {
    pub entry: Entry,
    pub kind: WalkedKind,
}

pub enum WalkedKind {
    /// Complete: symlinks and special files.
    Ready,
    Dir(WalkedDir),
    /// A regular file, with its previous chunk list if it is unchanged.
    File {
        path: PathBuf,
        stat: Stat,
        reuse: Option<Vec<Extent>>,
    },
}

pub struct WalkOptions<'a> {
    pub excludes: &'a [String],
    pub one_file_system: bool,
    /// (dev, ino) of directories never to enter (the repository).
    pub skip_dirs: Vec<(u64, u64)>,
}

pub struct Walker<'a> {
    pub reader: &'a BlobReader,
    pub index: &'a Index,
    pub opts: &'a WalkOptions<'a>,
    pub root_dev: u64,
    pub interrupted: &'a AtomicBool,
    pub errors: Mutex<Vec<String>>,
}

impl Walker<'_> {
    /// Walks the root directory `root`, whose previous tree is `prev`.
    pub fn walk_root(&self, root: &Path, prev: Option<BlobId>) -> Result<WalkedDir, SaveError> {
        let rules = IgnoreRules::root(root, self.opts.excludes).map_err(SaveError::Usage)?;
        let children = list_dir(root).map_err(|e| SaveError::source(root, e))?;
        let prev = prev.and_then(|id| self.load_prev(id, root));
        self.walk_dir(root, children, &rules, prev.as_ref())
    }

    fn load_prev(&self, id: BlobId, path: &Path) -> Option<Tree> {
        match self.reader.read_tree(id) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("chkfs: warning: {}: previous tree unreadable, reading everything: {e}", path.display());
                None
            }
        }
    }

    fn walk_dir(
        &self,
        dir: &Path,
        mut children: Vec<(OsString, std::fs::DirEntry)>,
        rules: &Arc<IgnoreRules>,
        prev: Option<&Tree>,
    ) -> Result<WalkedDir, SaveError> {
        if self.interrupted.load(Ordering::Relaxed) {
            return Err(SaveError::Interrupted);
        }
        children.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let rules = if children.iter().any(|(n, _)| n == IGNORE_FILE) {
            &rules.enter(dir).map_err(SaveError::Usage)?
        } else {
            rules
        };
        let mut entries = Vec::with_capacity(children.len());
        let mut subdirs = Vec::new();
        for (name, dirent) in children {
            let path = dir.join(&name);
            let is_dir_hint = dirent.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if rules.is_ignored(&path, is_dir_hint) {
                continue;
            }
            // fstatat relative to the open directory: no path lookup.
            let stat = match dirent.metadata() {
                Ok(m) => Stat::from_metadata(&m),
                Err(e) => {
                    self.error(&path, &e);
                    continue;
                }
            };
            let prev_entry = prev.and_then(|t| t.find(name.as_bytes()));
            if let Some(walked) = self.walk_entry(&path, name.as_bytes(), stat, prev_entry) {
                if matches!(walked.entry.node, Node::Dir { .. }) && !matches!(walked.kind, WalkedKind::Dir(_)) {
                    let prev_tree = match prev_entry.map(|e| &e.node) {
                        Some(Node::Dir { tree }) => Some(*tree),
                        _ => None,
                    };
                    subdirs.push((entries.len(), path, prev_tree));
                }
                entries.push(walked);
            }
        }
        let walked: Vec<(usize, Result<WalkedDir, SaveError>)> = subdirs
            .into_par_iter()
            .map(|(i, path, prev_tree)| (i, self.walk_subdir(&path, rules, prev_tree)))
            .collect();
        for (i, result) in walked {
            entries[i].kind = WalkedKind::Dir(result?);
        }
        Ok(WalkedDir { entries })
    }

    fn walk_subdir(&self, path: &Path, rules: &Arc<IgnoreRules>, prev: Option<BlobId>) -> Result<WalkedDir, SaveError> {
        let children = match list_dir(path) {
            Ok(c) => c,
            Err(e) => {
                self.error(path, &e);
                return Ok(WalkedDir { entries: Vec::new() });
            }
        };
        let prev = prev.and_then(|id| self.load_prev(id, path));
        self.walk_dir(path, children, rules, prev.as_ref())
    }

    /// The entry for one name; directories come back with `Ready` and are
    /// walked by the caller (in parallel), except those not to enter.
    fn walk_entry(&self, path: &Path, name: &[u8], stat: Stat, prev: Option<&Entry>) -> Option<Walked> {
        let xattrs = self.xattrs_for(path, &stat, prev)?;
        let (node, kind) = match stat.file_type() {
            libc::S_IFREG => {
                let reuse = prev.and_then(|p| self.reusable_content(&stat, p));
                let kind = WalkedKind::File { path: path.to_path_buf(), stat, reuse };
                (Node::File { content: Vec::new() }, kind)
            }
            libc::S_IFDIR => {
                if self.opts.skip_dirs.contains(&(stat.dev, stat.ino)) {
                    return None;
                }
                // Another filesystem, with --one-file-system: an empty directory.
                let stays_empty = self.opts.one_file_system && stat.dev != self.root_dev;
                let kind =
                    if stays_empty { WalkedKind::Dir(WalkedDir { entries: Vec::new() }) } else { WalkedKind::Ready };
                (Node::Dir { tree: BlobId(0) }, kind)
            }
            libc::S_IFLNK => match std::fs::read_link(path) {
                Ok(target) => (Node::Symlink { target: target.as_os_str().as_bytes().to_vec() }, WalkedKind::Ready),
                Err(e) => {
                    self.error(path, &e);
                    return None;
                }
            },
            libc::S_IFIFO => (Node::Fifo, WalkedKind::Ready),
            libc::S_IFSOCK => (Node::Socket, WalkedKind::Ready),
            libc::S_IFCHR => (Node::CharDevice { rdev: stat.rdev }, WalkedKind::Ready),
            libc::S_IFBLK => (Node::BlockDevice { rdev: stat.rdev }, WalkedKind::Ready),
            _ => {
                self.error(path, &std::io::Error::other("unknown file type"));
                return None;
            }
        };
        Some(Walked { entry: stat.to_entry(name.to_vec(), node, xattrs), kind })
    }

    /// Xattrs cannot change without changing ctime: reuse them when the
    /// entry is unchanged.
    fn xattrs_for(&self, path: &Path, stat: &Stat, prev: Option<&Entry>) -> Option<Vec<Xattr>> {
        if let Some(p) = prev {
            if p.ctime == stat.ctime && p.inode == stat.ino {
                return Some(p.xattrs.clone());
            }
        }
        match read_xattrs(path) {
            Ok(x) => Some(x),
            Err(e) => {
                self.error(path, &e);
                None
            }
        }
    }

    fn reusable_content(&self, stat: &Stat, prev: &Entry) -> Option<Vec<Extent>> {
        let Node::File { content } = &prev.node else { return None };
        let unchanged =
            prev.size == stat.size && prev.mtime == stat.mtime && prev.ctime == stat.ctime && prev.inode == stat.ino;
        // A chunk found damaged must not be reused: reading the file again
        // stores a fresh copy and heals the repository.
        let healthy = !self.index.has_damage()
            || content.iter().all(|x| match x {
                Extent::Data { id, .. } => self.index.has_healthy(*id),
                Extent::Hole { .. } => true,
            });
        (unchanged && healthy).then(|| content.clone())
    }

    fn error(&self, path: &Path, e: &std::io::Error) {
        let msg = format!("{}: {e}", path.display());
        eprintln!("chkfs: skipped {msg}");
        self.errors.lock().push(msg);
    }
}

fn list_dir(dir: &Path) -> std::io::Result<Vec<(OsString, std::fs::DirEntry)>> {
    std::fs::read_dir(dir)?.map(|e| e.map(|e| (e.file_name(), e))).collect()
}
