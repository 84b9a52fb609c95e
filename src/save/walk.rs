//! Walking the source, directories in parallel, through directory
//! descriptors: every directory is opened from its parent without
//! following a symlink and checked to be the one its parent listed, every
//! entry is lstat'ed relative to its directory, symlinks are read with
//! `readlinkat`. A directory swapped for a symlink mid-walk is noticed,
//! never followed. Each file's previous version is found too: its chunk
//! list is reused when size, mtime, ctime and inode are unchanged.

use super::ignore_rules::{IgnoreRules, IGNORE_FILE};
use super::meta::{read_xattrs, to_entry, Stat};
use super::SaveError;
use crate::dirfd::{Dir, FileId};
use crate::format::pack::BlobKind;
use crate::format::tree::{Entry, Extent, Node, Tree, Xattr};
use crate::format::BlobId;
use crate::store::{BlobReader, Index};
use crate::text::escape_path;
use parking_lot::Mutex;
use rayon::prelude::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A directory as walked, entries sorted by name.
pub struct WalkedDir {
    pub id: FileId,
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
        stat: Stat,
        reuse: Option<Vec<Extent>>,
    },
}

pub struct WalkOptions<'a> {
    pub excludes: &'a [String],
    pub one_file_system: bool,
    /// Directories never to enter (the repository).
    pub skip_dirs: Vec<FileId>,
}

pub struct Walker<'a> {
    pub reader: &'a BlobReader,
    pub index: &'a Index,
    pub opts: &'a WalkOptions<'a>,
    pub root_dev: u64,
    pub interrupted: &'a AtomicBool,
    pub errors: Mutex<Vec<String>>,
}

/// A subdirectory to walk: its parent (shared until every sibling has
/// opened itself), name, path, the identity its parent's listing gave it
/// and its previous tree.
struct Pending {
    at: usize,
    parent: Arc<Dir>,
    name: Vec<u8>,
    path: PathBuf,
    id: FileId,
    prev: Option<BlobId>,
}

impl Walker<'_> {
    /// Walks the root directory, open as `dir` at `root`, whose previous
    /// tree is `prev`.
    pub fn walk_root(&self, dir: Dir, root: &Path, prev: Option<BlobId>) -> Result<WalkedDir, SaveError> {
        let rules = IgnoreRules::root(root, self.opts.excludes).map_err(SaveError::Usage)?;
        let id = dir.stat().map_err(|e| SaveError::source(root, e))?.id();
        let names = dir.names().map_err(|e| SaveError::source(root, e))?;
        let prev = prev.and_then(|t| self.load_prev(t, root));
        self.walk_dir(dir, id, root, names, &rules, prev.as_ref())
    }

    fn load_prev(&self, id: BlobId, path: &Path) -> Option<Tree> {
        match self.reader.read_tree(id) {
            Ok(t) => Some(t),
            Err(e) => {
                let shown = escape_path(path);
                eprintln!("chkfs: warning: {shown}: previous tree unreadable, reading everything: {e}");
                None
            }
        }
    }

    fn walk_dir(
        &self,
        dir: Dir,
        id: FileId,
        path: &Path,
        mut names: Vec<Vec<u8>>,
        rules: &Arc<IgnoreRules>,
        prev: Option<&Tree>,
    ) -> Result<WalkedDir, SaveError> {
        if self.interrupted.load(Ordering::Relaxed) {
            return Err(SaveError::Interrupted);
        }
        names.sort();
        let entered;
        let rules = if names.iter().any(|n| n == IGNORE_FILE.as_bytes()) {
            entered = rules.enter(&dir, path, &mut |w| self.warn(w));
            &entered
        } else {
            rules
        };
        let mut entries = Vec::with_capacity(names.len());
        let mut subdirs = Vec::new();
        for name in names {
            let child = path.join(OsStr::from_bytes(&name));
            let stat = match dir.stat_at(&name) {
                Ok(s) => s,
                // Deleted since it was listed.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.error(&child, &e);
                    continue;
                }
            };
            if rules.is_ignored(&child, stat.is_dir()) {
                continue;
            }
            let prev_entry = prev.and_then(|t| t.find(&name));
            let Some(walked) = self.walk_entry(&dir, &child, name, stat, prev_entry) else { continue };
            if matches!(walked.entry.node, Node::Dir { .. }) && !matches!(walked.kind, WalkedKind::Dir(_)) {
                let prev_tree = match prev_entry.map(|e| &e.node) {
                    Some(Node::Dir { tree }) => Some(*tree),
                    _ => None,
                };
                subdirs.push((entries.len(), walked.entry.name.clone(), child, stat.id(), prev_tree));
            }
            entries.push(walked);
        }
        let parent = Arc::new(dir);
        let pending: Vec<Pending> = subdirs
            .into_iter()
            .map(|(at, name, path, id, prev)| Pending { at, parent: parent.clone(), name, path, id, prev })
            .collect();
        // Each subdirectory holds the parent open only until it has opened
        // itself: open descriptors follow the walk's frontier, not its depth.
        drop(parent);
        let walked: Vec<(usize, Result<WalkedDir, SaveError>)> =
            pending.into_par_iter().map(|p| (p.at, self.walk_subdir(p, rules))).collect();
        for (i, result) in walked {
            entries[i].kind = WalkedKind::Dir(result?);
        }
        Ok(WalkedDir { id, entries })
    }

    fn walk_subdir(&self, p: Pending, rules: &Arc<IgnoreRules>) -> Result<WalkedDir, SaveError> {
        let Pending { parent, name, path, id, prev, .. } = p;
        let opened = parent.child(&name).and_then(|d| match d.stat() {
            Ok(st) if st.id() == id => Ok(d),
            Ok(_) => Err(std::io::Error::other("replaced by another directory while it was being saved")),
            Err(e) => Err(e),
        });
        drop(parent);
        let listed = opened.and_then(|d| d.names().map(|n| (d, n)));
        let (dir, names) = match listed {
            Ok(x) => x,
            Err(e) => {
                self.error(&path, &e);
                return Ok(WalkedDir { id, entries: Vec::new() });
            }
        };
        let prev = prev.and_then(|t| self.load_prev(t, &path));
        self.walk_dir(dir, id, &path, names, rules, prev.as_ref())
    }

    /// The entry for one name; directories come back with `Ready` and are
    /// walked by the caller (in parallel), except those not to enter.
    fn walk_entry(&self, dir: &Dir, path: &Path, name: Vec<u8>, stat: Stat, prev: Option<&Entry>) -> Option<Walked> {
        let (node, kind, xattrs) = match stat.file_type() {
            libc::S_IFREG => {
                // Read with the file, through its descriptor, unless reused.
                let reuse = prev.and_then(|p| self.reusable_content(&stat, p));
                let xattrs = match (&reuse, prev) {
                    (Some(_), Some(p)) => p.xattrs.clone(),
                    _ => Vec::new(),
                };
                (Node::File { content: Vec::new() }, WalkedKind::File { stat, reuse }, xattrs)
            }
            libc::S_IFDIR => {
                if self.opts.skip_dirs.contains(&stat.id()) {
                    return None;
                }
                // Another filesystem, with --one-file-system: an empty directory.
                let kind = if self.opts.one_file_system && stat.dev != self.root_dev {
                    WalkedKind::Dir(WalkedDir { id: stat.id(), entries: Vec::new() })
                } else {
                    WalkedKind::Ready
                };
                (Node::Dir { tree: BlobId(0) }, kind, self.xattrs_for(dir, path, &name, &stat, prev)?)
            }
            libc::S_IFLNK => match dir.readlink(&name) {
                Ok(target) => {
                    let xattrs = self.xattrs_for(dir, path, &name, &stat, prev)?;
                    (Node::Symlink { target }, WalkedKind::Ready, xattrs)
                }
                Err(e) => {
                    self.error(path, &e);
                    return None;
                }
            },
            t => {
                let node = match t {
                    libc::S_IFIFO => Node::Fifo,
                    libc::S_IFSOCK => Node::Socket,
                    libc::S_IFCHR => Node::CharDevice { rdev: stat.rdev },
                    libc::S_IFBLK => Node::BlockDevice { rdev: stat.rdev },
                    _ => {
                        self.error(path, &std::io::Error::other("unknown file type"));
                        return None;
                    }
                };
                (node, WalkedKind::Ready, self.xattrs_for(dir, path, &name, &stat, prev)?)
            }
        };
        Some(Walked { entry: to_entry(&stat, name, node, xattrs), kind })
    }

    /// Xattrs cannot change without changing ctime: reuse them when the
    /// entry is unchanged. Read through the open directory otherwise.
    fn xattrs_for(&self, dir: &Dir, path: &Path, name: &[u8], stat: &Stat, prev: Option<&Entry>) -> Option<Vec<Xattr>> {
        if let Some(p) = prev {
            if p.ctime == stat.ctime && p.inode == stat.ino {
                return Some(p.xattrs.clone());
            }
        }
        match read_xattrs(&dir.proc_path(name)) {
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
                Extent::Data { id, .. } => self.index.has_healthy(BlobKind::Data, *id),
                Extent::Hole { .. } => true,
            });
        (unchanged && healthy).then(|| content.clone())
    }

    /// Something left out of the snapshot (it becomes partial).
    fn error(&self, path: &Path, e: &std::io::Error) {
        let msg = format!("{}: {e}", escape_path(path));
        eprintln!("chkfs: skipped {msg}");
        self.errors.lock().push(msg);
    }

    /// Something not applied as asked (it makes the snapshot partial too).
    fn warn(&self, msg: String) {
        eprintln!("chkfs: warning: {msg}");
        self.errors.lock().push(msg);
    }
}
