//! The first stage of a save: walk the source (see [`super::walk`]), then
//! lay the result out for the next stages: directories in pre-order (with
//! the identity of each, for the file readers' cursors), the files to read
//! as numbered jobs, and hard-link groups, whose first name in that order
//! carries the content.

use super::meta::{read_xattrs_fd, to_entry, Stat};
use super::walk::{WalkOptions, Walked, WalkedDir, WalkedKind, Walker};
use super::SaveError;
use crate::dirfd::cursor::DirTree;
use crate::dirfd::{Dir, FileId};
use crate::format::tree::{Entry, Extent, HardLink, Node};
use crate::format::BlobId;
use crate::store::{BlobReader, Index};
use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

pub use super::walk::WalkOptions as ScanOptions;

/// A directory as scanned: entries sorted by name, some still waiting for
/// their content (files to read) or their tree (subdirectories).
pub struct ScannedDir {
    pub entries: Vec<(Entry, Pending)>,
    pub parent: Option<u32>,
    pub name: Vec<u8>,
    pub depth: u32,
    pub id: FileId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    Ready,
    /// Content comes from file job N.
    File(usize),
    /// Tree comes from scanned directory N.
    Dir(usize),
    /// Another name of hard-link group N, whose content is the group's.
    Link(u64),
}

#[derive(Clone)]
pub struct FileJob {
    /// The scanned directory holding it, and its name there (its path is
    /// made only for a message: a deep tree's paths do not fit in memory
    /// one per file).
    pub dir: u32,
    pub name: Vec<u8>,
    /// The file the scan found there; another one may be read.
    pub expected: FileId,
    /// The previous snapshot had nothing by its name (for `-v`).
    pub new: bool,
}

pub struct Scan {
    /// The source's path.
    pub source: PathBuf,
    /// Pre-order: a directory comes before its subdirectories; 0 is the root.
    pub dirs: Vec<ScannedDir>,
    pub root: Entry,
    pub jobs: Vec<FileJob>,
    /// Hard-link group -> where its content comes from.
    pub link_sources: HashMap<u64, Pending>,
    /// Hard-link group -> its other names, to be read one by one if the
    /// first name changed or could not be read.
    pub link_members: HashMap<u64, Vec<FileJob>>,
    /// Hard-link group -> the entry of its first name, when that name was
    /// reused unchanged: every other name takes its content, times and
    /// xattrs (the names of one inode share them).
    pub reused_entries: HashMap<u64, Entry>,
    pub errors: Vec<String>,
    pub stats: ScanStats,
}

impl Scan {
    /// The path of `name` in scanned directory `dir`, for messages.
    pub fn path_of(&self, dir: u32, name: &[u8]) -> PathBuf {
        let mut names = vec![name];
        let mut at = dir;
        while let Some(parent) = self.dirs[at as usize].parent {
            names.push(&self.dirs[at as usize].name);
            at = parent;
        }
        let mut p = self.source.clone();
        p.extend(names.iter().rev().map(|n| std::ffi::OsStr::from_bytes(n)));
        p
    }
}

impl DirTree for Scan {
    fn parent(&self, dir: u32) -> Option<u32> {
        self.dirs[dir as usize].parent
    }

    fn name(&self, dir: u32) -> &[u8] {
        &self.dirs[dir as usize].name
    }

    fn depth(&self, dir: u32) -> u32 {
        self.dirs[dir as usize].depth
    }

    fn id(&self, dir: u32) -> Option<FileId> {
        Some(self.dirs[dir as usize].id)
    }
}

#[derive(Default, Debug, Clone, Copy)]
pub struct ScanStats {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    pub bytes_to_read: u64,
}

/// Walks `root`, open as `dir`; `prev_root` is the root tree of the
/// previous snapshot of the same source, whose unchanged files need not be
/// read.
#[allow(clippy::too_many_arguments)]
pub fn scan(
    dir: Dir,
    root: &Path,
    prev_root: Option<BlobId>,
    reader: &BlobReader,
    index: &Index,
    opts: &WalkOptions,
    interrupted: &AtomicBool,
    progress: &dyn crate::progress::Progress,
) -> Result<Scan, SaveError> {
    let stat = dir.stat().map_err(|e| SaveError::source(root, e))?;
    let xattrs = read_xattrs_fd(&dir.as_file().map_err(|e| SaveError::source(root, e))?)
        .map_err(|e| SaveError::source(root, e))?;
    let walker = Walker { reader, index, opts, root_dev: stat.dev, interrupted, errors: Default::default(), progress };
    let walked = walker.walk(dir, root, prev_root)?;
    let mut layout = Layout::default();
    layout.lay_out(walked);
    layout.finish_hard_links();
    Ok(Scan {
        source: root.to_path_buf(),
        dirs: layout.dirs,
        root: to_entry(&stat, Vec::new(), Node::Dir { tree: BlobId(0) }, xattrs),
        jobs: layout.jobs,
        link_sources: layout.link_sources,
        link_members: layout.link_members,
        reused_entries: layout.reused_entries,
        errors: walker.errors.into_inner(),
        stats: layout.stats,
    })
}

#[derive(Default)]
struct Layout {
    dirs: Vec<ScannedDir>,
    jobs: Vec<FileJob>,
    link_sources: HashMap<u64, Pending>,
    link_members: HashMap<u64, Vec<FileJob>>,
    reused_entries: HashMap<u64, Entry>,
    stats: ScanStats,
    /// (dev, ino) -> (group id, names seen).
    groups: HashMap<(u64, u64), (u64, u32)>,
    group_ids: HashSet<u64>,
}

impl Layout {
    /// Lays the walked directories out in pre-order (without recursion:
    /// the depth is the source's), numbering files to read as it goes.
    fn lay_out(&mut self, mut walked: Vec<WalkedDir>) {
        // Pre-order position of each walked directory, as it is reached.
        let mut position = vec![0usize; walked.len()];
        let mut stack: Vec<u32> = vec![0];
        while let Some(w) = stack.pop() {
            let index = self.dirs.len();
            position[w as usize] = index;
            let d = &mut walked[w as usize];
            let parent = d.parent.map(|p| position[p as usize] as u32);
            let (name, depth, id) = (std::mem::take(&mut d.name), d.depth, d.id);
            let walked_entries = std::mem::take(&mut d.entries);
            self.dirs.push(ScannedDir { entries: Vec::new(), parent, name, depth, id });
            self.stats.dirs += 1;
            let mut entries = Vec::with_capacity(walked_entries.len());
            let mut subdirs = Vec::new();
            for Walked { mut entry, kind } in walked_entries {
                let pending = match kind {
                    WalkedKind::Ready => {
                        self.stats.other += u64::from(!matches!(entry.node, Node::Dir { .. }));
                        Pending::Ready
                    }
                    WalkedKind::Dir(sub) => {
                        subdirs.push(sub);
                        // Renumbered below, once the subdirectory has its place.
                        Pending::Dir(sub as usize)
                    }
                    WalkedKind::File { stat, reuse, new } => self.add_file(&mut entry, index as u32, stat, reuse, new),
                };
                entries.push((entry, pending));
            }
            self.dirs[index].entries = entries;
            // The first subdirectory is laid out next.
            stack.extend(subdirs.into_iter().rev());
        }
        for dir in &mut self.dirs {
            for (_, pending) in &mut dir.entries {
                if let Pending::Dir(w) = pending {
                    *w = position[*w];
                }
            }
        }
    }

    fn add_file(&mut self, entry: &mut Entry, dir: u32, stat: Stat, reuse: Option<Vec<Extent>>, new: bool) -> Pending {
        self.stats.files += 1;
        let group = (stat.nlink > 1).then(|| self.link_group(&stat));
        let expected = stat.id();
        if let Some((group, names)) = group {
            entry.hard_link = Some(HardLink { group, nlink: 0 });
            if names > 1 {
                let job = FileJob { dir, name: entry.name.clone(), expected, new };
                self.link_members.entry(group).or_default().push(job);
                return Pending::Link(group);
            }
        }
        self.stats.bytes += stat.size;
        let pending = match reuse {
            Some(content) => {
                entry.node = Node::File { content };
                if let Some((group, _)) = group {
                    self.reused_entries.insert(group, entry.clone());
                }
                Pending::Ready
            }
            None => {
                self.stats.bytes_to_read += stat.size;
                self.jobs.push(FileJob { dir, name: entry.name.clone(), expected, new });
                Pending::File(self.jobs.len() - 1)
            }
        };
        if let Some((group, _)) = group {
            self.link_sources.insert(group, pending);
        }
        pending
    }

    /// The group of a multiply-linked inode and how many names it has had
    /// so far (this one included). The group id is the source inode number,
    /// stable across saves, unless another device already used it.
    fn link_group(&mut self, stat: &Stat) -> (u64, u32) {
        if !self.groups.contains_key(&(stat.dev, stat.ino)) {
            let mut id = stat.ino;
            while !self.group_ids.insert(id) {
                id = id.wrapping_add(1 << 48);
            }
            self.groups.insert((stat.dev, stat.ino), (id, 0));
        }
        let e = self.groups.get_mut(&(stat.dev, stat.ino)).expect("inserted above");
        e.1 += 1;
        *e
    }

    /// Fills in each group's name count; a group with one name in the
    /// snapshot is an ordinary file.
    fn finish_hard_links(&mut self) {
        let counts: HashMap<u64, u32> = self.groups.values().map(|&(g, n)| (g, n)).collect();
        for dir in &mut self.dirs {
            for (entry, _) in &mut dir.entries {
                if let Some(link) = &mut entry.hard_link {
                    let n = counts.get(&link.group).copied().unwrap_or(1);
                    if n > 1 {
                        link.nlink = n;
                    } else {
                        entry.hard_link = None;
                    }
                }
            }
        }
    }
}
