//! Walking the source, directories in parallel, through directory
//! descriptors: every directory is reached from the source's root by a
//! cursor that checks each directory on the way to be the one its parent
//! listed, every entry is lstat'ed relative to its directory, symlinks are
//! read with `readlinkat`. A directory swapped for a symlink mid-walk is
//! noticed, never followed. Each file's previous version is found too: its
//! chunk list is reused when size, mtime, ctime and inode are unchanged.
//!
//! Directories are tasks on rayon's pool, not frames on a stack, and each
//! worker holds one descriptor however deep it is: a tree a million
//! directories deep walks in memory proportional to its size.

use super::ignore_rules::{IgnoreRules, RootRules, GIT_IGNORE_FILE, IGNORE_FILE};
use super::meta::{change_clock, may_change_unseen, read_xattrs, read_xattrs_fd, to_entry, Stat};
use super::SaveError;
use crate::dirfd::cursor::{Cursor, DirTree};
use crate::dirfd::{Dir, FileId};
use crate::format::pack::BlobKind;
use crate::format::tree::{Entry, Extent, Node, Tree, Xattr};
use crate::format::BlobId;
use crate::store::{BlobReader, Index};
use crate::text::escape_path;
use crossbeam_channel::{unbounded, Sender};
use parking_lot::{Mutex, RwLock};
use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A directory of the source as walked.
pub struct WalkedDir {
    pub parent: Option<u32>,
    pub name: Vec<u8>,
    pub depth: u32,
    pub id: FileId,
    /// Sorted by name.
    pub entries: Vec<Walked>,
}

pub struct Walked {
    pub entry: Entry,
    pub kind: WalkedKind,
}

pub enum WalkedKind {
    /// Complete: symlinks and special files.
    Ready,
    /// A subdirectory: walked directory N.
    Dir(u32),
    /// A regular file, with its previous chunk list if it is unchanged.
    /// `new`: the previous snapshot has nothing by its name.
    File { stat: Stat, reuse: Option<Vec<Extent>>, new: bool },
}

pub struct WalkOptions<'a> {
    pub excludes: &'a [String],
    pub exclude_files: &'a [PathBuf],
    pub git_ignore: bool,
    pub one_file_system: bool,
    /// Directories never to enter (the repository).
    pub skip_dirs: Vec<FileId>,
    /// The devices of chkfs's own mounts (see [`chkfs_mounts`]): their
    /// mount points are saved as empty directories.
    pub chkfs_mounts: HashSet<u64>,
}

pub struct Walker<'a> {
    pub reader: &'a BlobReader,
    pub index: &'a Index,
    pub opts: &'a WalkOptions<'a>,
    pub root_dev: u64,
    pub interrupted: &'a AtomicBool,
    pub errors: Mutex<Vec<String>>,
    pub progress: &'a dyn crate::progress::Progress,
}

/// Where each directory is: what a cursor needs, shared by the workers
/// and grown as directories are found.
#[derive(Default)]
struct Places(RwLock<Vec<Place>>);

/// (parent, name, depth, identity) of a directory.
type Place = (Option<u32>, Vec<u8>, u32, FileId);

struct PlacesView<'g>(parking_lot::RwLockReadGuard<'g, Vec<Place>>);

impl DirTree for PlacesView<'_> {
    fn parent(&self, dir: u32) -> Option<u32> {
        self.0[dir as usize].0
    }
    fn name(&self, dir: u32) -> &[u8] {
        &self.0[dir as usize].1
    }
    fn depth(&self, dir: u32) -> u32 {
        self.0[dir as usize].2
    }
    fn id(&self, dir: u32) -> Option<FileId> {
        Some(self.0[dir as usize].3)
    }
}

/// A directory to list: where it is, the rules that apply and its
/// previous tree. (Its path is made when the task runs: pending tasks of a
/// deep tree holding one path each would need memory in the square of
/// its depth.)
struct Task {
    dir: u32,
    rules: Arc<IgnoreRules>,
    prev: Option<BlobId>,
}

impl Places {
    /// The path of directory `dir` below the source's `root`.
    fn path(&self, root: &Path, dir: u32) -> PathBuf {
        let places = self.0.read();
        let mut names = Vec::new();
        let mut at = dir;
        while let Some(parent) = places[at as usize].0 {
            names.push(places[at as usize].1.clone());
            at = parent;
        }
        drop(places);
        let mut p = root.to_path_buf();
        p.extend(names.iter().rev().map(|n| OsStr::from_bytes(n)));
        p
    }
}

/// Filesystems whose files describe the running kernel, not data: their
/// contents are not saved (reading /proc/*/pagemap alone would take
/// forever), their directories are.
fn kernel_filesystem(f_type: u64) -> Option<&'static str> {
    Some(match f_type {
        0x9fa0 => "proc",
        0x6265_6572 => "sysfs",
        0x0027_e0eb => "cgroup",
        0x6367_7270 => "cgroup2",
        0x6462_6720 => "debugfs",
        0x7472_6163 => "tracefs",
        0x7363_6673 => "securityfs",
        0x6165_676c => "pstore",
        0xcafe_4a11 => "bpf",
        0x6265_6570 => "configfs",
        0x6573_5543 => "fusectl",
        0x4249_4e4d => "binfmt_misc",
        0xde5e_81e4 => "efivarfs",
        0x6e73_6673 => "nsfs",
        _ => return None,
    })
}

thread_local! {
    /// Each worker's cursor, for the walk it belongs to.
    static CURSOR: RefCell<Option<(u64, Cursor)>> = const { RefCell::new(None) };
}

static WALKS: AtomicU64 = AtomicU64::new(0);

impl Walker<'_> {
    /// Walks the root directory, open as `root_dir` at `root`, whose
    /// previous tree is `prev`. Returns every directory; 0 is the root.
    pub fn walk(&self, root_dir: Dir, root: &Path, prev: Option<BlobId>) -> Result<Vec<WalkedDir>, SaveError> {
        let root_rules = RootRules {
            excludes: self.opts.excludes,
            exclude_files: self.opts.exclude_files,
            git_ignore: self.opts.git_ignore,
        };
        let rules = IgnoreRules::root(&root_dir, root, root_rules, &mut |w| self.warn(w)).map_err(SaveError::Usage)?;
        let id = root_dir.stat().map_err(|e| SaveError::source(root, e))?.id();
        // The root must be listable: an error there is the save's.
        root_dir.names().map_err(|e| SaveError::source(root, e))?;
        let places = Places::default();
        places.0.write().push((None, Vec::new(), 0, id));
        let walk = WALKS.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = unbounded::<(u32, Vec<Walked>)>();
        let first = Task { dir: 0, rules, prev };
        rayon::scope(|s| self.task(s, first, root, &root_dir, &places, walk, tx));
        if self.interrupted.load(Ordering::Relaxed) {
            return Err(SaveError::Interrupted);
        }
        let places = places.0.into_inner();
        let mut dirs: Vec<WalkedDir> = places
            .into_iter()
            .map(|(parent, name, depth, id)| WalkedDir { parent, name, depth, id, entries: Vec::new() })
            .collect();
        for (dir, entries) in rx {
            dirs[dir as usize].entries = entries;
        }
        Ok(dirs)
    }

    #[allow(clippy::too_many_arguments)]
    fn task<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        task: Task,
        source: &'s Path,
        root: &'s Dir,
        places: &'s Places,
        walk: u64,
        tx: Sender<(u32, Vec<Walked>)>,
    ) {
        if self.interrupted.load(Ordering::Relaxed) {
            return;
        }
        let listed =
            self.open(task.dir, source, root, places, walk).and_then(|(d, p)| d.typed_names().map(|n| (d, p, n)));
        let (dir, path, mut names) = match listed {
            Ok(x) => x,
            Err(e) => {
                self.error(&places.path(source, task.dir), &e);
                let _ = tx.send((task.dir, Vec::new()));
                return;
            }
        };
        if let Some(kind) = dir.fs_type().ok().and_then(kernel_filesystem) {
            self.progress
                .message(&format!("note: {}: a {kind} filesystem; its contents are not saved", escape_path(&path)));
            let _ = tx.send((task.dir, Vec::new()));
            return;
        }
        names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let has = |file: &str| names.iter().any(|(n, _)| n == file.as_bytes());
        let mut rules = task.rules.clone();
        // A .chkfsignore overrides a .gitignore beside it.
        for file in [GIT_IGNORE_FILE, IGNORE_FILE] {
            if (file == IGNORE_FILE || self.opts.git_ignore) && has(file) {
                rules = rules.enter(&dir, &path, file, &mut |w| self.warn(w));
            }
        }
        let prev = task.prev.and_then(|t| self.load_prev(t, &path));
        let dir_dev = places.0.read()[task.dir as usize].3.dev;
        let mut entries = Vec::with_capacity(names.len());
        for (name, listed_dir) in names {
            let child = path.join(OsStr::from_bytes(&name));
            // Left out before its lstat where the listing says enough.
            if listed_dir.is_some_and(|d| rules.is_ignored(&child, d)) {
                continue;
            }
            let clock = change_clock();
            let stat = match dir.stat_at(&name) {
                Ok(s) => s,
                // Deleted since it was listed.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.error(&child, &e);
                    continue;
                }
            };
            if listed_dir != Some(stat.is_dir()) && rules.is_ignored(&child, stat.is_dir()) {
                continue;
            }
            let prev_entry = prev.as_ref().and_then(|t| t.find(&name));
            let Some((mut walked, enter)) = self.walk_entry(&dir, &child, name, stat, prev_entry, dir_dev) else {
                continue;
            };
            // Xattrs are reused while ctime and inode stay: a change within
            // the clock tick of this lstat would keep both.
            if may_change_unseen(&stat, clock) {
                walked.entry.inode = 0;
            }
            if matches!(walked.entry.node, Node::Dir { .. }) {
                let depth = places.0.read()[task.dir as usize].2 + 1;
                let sub = {
                    let mut p = places.0.write();
                    p.push((Some(task.dir), walked.entry.name.clone(), depth, stat.id()));
                    (p.len() - 1) as u32
                };
                walked.kind = WalkedKind::Dir(sub);
                if enter {
                    let prev = match prev_entry.map(|e| &e.node) {
                        Some(Node::Dir { tree }) => Some(*tree),
                        _ => None,
                    };
                    let next = Task { dir: sub, rules: rules.clone(), prev };
                    let tx = tx.clone();
                    scope.spawn(move |s| self.task(s, next, source, root, places, walk, tx));
                } else {
                    let _ = tx.send((sub, Vec::new()));
                }
            }
            entries.push(walked);
        }
        let dirs = entries.iter().filter(|w| matches!(w.kind, WalkedKind::Dir(_))).count() as u64;
        self.progress.found(entries.len() as u64 - dirs, dirs);
        let _ = tx.send((task.dir, entries));
    }

    /// Directory `dir`, reached by this worker's cursor, and its path
    /// (which the cursor keeps as it moves: making it from `places` costs
    /// time in the directory's depth, the square of it for a deep tree).
    fn open(&self, dir: u32, source: &Path, root: &Dir, places: &Places, walk: u64) -> std::io::Result<(Dir, PathBuf)> {
        CURSOR.with_borrow_mut(|slot| {
            if slot.as_ref().is_none_or(|(w, _)| *w != walk) {
                *slot = Some((walk, Cursor::new(root.try_clone()?, 0)));
            }
            let (_, cursor) = slot.as_mut().expect("set above");
            cursor.move_to(&PlacesView(places.0.read()), dir)?;
            let path = match cursor.relative_path() {
                Some(rel) if !rel.is_empty() => source.join(OsStr::from_bytes(rel)),
                Some(_) => source.to_path_buf(),
                None => places.path(source, dir),
            };
            Ok((cursor.dir().try_clone()?, path))
        })
    }

    fn load_prev(&self, id: BlobId, path: &Path) -> Option<Tree> {
        match self.reader.read_tree(id) {
            Ok(t) => Some(t),
            Err(e) => {
                let shown = escape_path(path);
                self.progress.message(&format!("warning: {shown}: previous tree unreadable, reading everything: {e}"));
                None
            }
        }
    }

    /// The entry for one name, and for a directory whether to enter it.
    fn walk_entry(
        &self,
        dir: &Dir,
        path: &Path,
        name: Vec<u8>,
        stat: Stat,
        prev: Option<&Entry>,
        dir_dev: u64,
    ) -> Option<(Walked, bool)> {
        let mut enter = false;
        let (node, kind, xattrs) = match stat.file_type() {
            libc::S_IFREG => {
                // Read with the file, through its descriptor, unless reused.
                let reuse = prev.and_then(|p| self.reusable_content(&stat, p));
                let xattrs = match (&reuse, prev) {
                    (Some(_), Some(p)) => p.xattrs.clone(),
                    _ => Vec::new(),
                };
                let new = prev.is_none();
                (Node::File { content: Vec::new() }, WalkedKind::File { stat, reuse, new }, xattrs)
            }
            libc::S_IFDIR => {
                if self.opts.skip_dirs.contains(&stat.id()) {
                    return None;
                }
                // A chkfs mount: saving it would store the repository's
                // snapshots again (and again at every save). Its root is
                // asked nothing more than the lstat already made.
                if stat.dev != dir_dev && self.opts.chkfs_mounts.contains(&stat.dev) {
                    self.progress
                        .message(&format!("note: {}: a chkfs mount; saved as an empty directory", escape_path(path)));
                    let entry = to_entry(&stat, name, Node::Dir { tree: BlobId(0) }, Vec::new());
                    return Some((Walked { entry, kind: WalkedKind::Ready }, false));
                }
                // Another filesystem, with --one-file-system: an empty directory.
                enter = !(self.opts.one_file_system && stat.dev != self.root_dev);
                (Node::Dir { tree: BlobId(0) }, WalkedKind::Ready, self.xattrs_for(dir, path, &name, &stat, prev)?)
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
        Some((Walked { entry: to_entry(&stat, name, node, xattrs), kind }, enter))
    }

    /// Xattrs cannot change without changing ctime: reuse them when the
    /// entry is unchanged. Read through the open directory otherwise.
    fn xattrs_for(&self, dir: &Dir, path: &Path, name: &[u8], stat: &Stat, prev: Option<&Entry>) -> Option<Vec<Xattr>> {
        if let Some(p) = prev {
            if p.ctime == stat.ctime && p.inode == stat.ino {
                return Some(p.xattrs.clone());
            }
        }
        match self.read_xattrs_at(dir, name, stat) {
            Ok(x) => Some(x),
            Err(e) => {
                self.error(path, &e);
                None
            }
        }
    }

    /// Through `/proc/self/fd`, which names exactly the open directory;
    /// without /proc, a directory's through its own descriptor, and a
    /// symlink's or special file's not at all (said once).
    fn read_xattrs_at(&self, dir: &Dir, name: &[u8], stat: &Stat) -> std::io::Result<Vec<Xattr>> {
        if Dir::proc_available() {
            return read_xattrs(&dir.proc_path(name));
        }
        if stat.is_dir() {
            return read_xattrs_fd(&dir.child(name)?.as_file()?);
        }
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            self.warn("extended attributes of symlinks and special files not saved: /proc is not mounted".into())
        });
        Ok(Vec::new())
    }

    fn reusable_content(&self, stat: &Stat, prev: &Entry) -> Option<Vec<Extent>> {
        let Node::File { content } = &prev.node else { return None };
        let unchanged =
            prev.size == stat.size && prev.mtime == stat.mtime && prev.ctime == stat.ctime && prev.inode == stat.ino;
        // A chunk found damaged must not be reused: reading the file again
        // stores a fresh copy and heals the repository. Nor one only in a
        // condemned pack: a gc may delete it before this save ends.
        let healthy = !self.index.has_unusable()
            || content.iter().all(|x| match x {
                Extent::Data { id, .. } => self.index.has_healthy(BlobKind::Data, *id),
                Extent::Hole { .. } => true,
            });
        (unchanged && healthy).then(|| content.clone())
    }

    /// Something left out of the snapshot (it becomes partial).
    fn error(&self, path: &Path, e: &std::io::Error) {
        let msg = format!("{}: {e}", escape_path(path));
        self.progress.message(&format!("skipped {msg}"));
        self.errors.lock().push(msg);
    }

    /// Something not applied as asked (it makes the snapshot partial too).
    fn warn(&self, msg: String) {
        self.progress.message(&format!("warning: {msg}"));
        self.errors.lock().push(msg);
    }
}

/// The devices of the chkfs filesystems mounted now (the mount table
/// is read once per save). Empty without /proc.
pub fn chkfs_mounts() -> HashSet<u64> {
    crate::mounts::table().into_iter().filter(|m| m.is_chkfs()).map(|m| m.dev).collect()
}
