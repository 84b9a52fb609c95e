//! The first stage of a save: walk the source tree, record metadata,
//! and decide for each file whether its previous chunk list can be reused
//! (same size, mtime, ctime and inode) or it must be read.

use super::ignore_rules::{IgnoreRules, IGNORE_FILE};
use super::meta::{read_xattrs, Stat};
use super::SaveError;
use crate::format::tree::{Entry, Extent, HardLink, Node, Tree, Xattr};
use crate::format::BlobId;
use crate::store::{BlobReader, Index};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// A directory as scanned: entries sorted by name, some still waiting for
/// their content (files to read) or their tree (subdirectories).
pub struct ScannedDir {
    pub entries: Vec<(Entry, Pending)>,
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

pub struct FileJob {
    pub path: PathBuf,
    pub stat: Stat,
}

#[derive(Default)]
pub struct ScanOptions<'a> {
    pub excludes: &'a [String],
    pub one_file_system: bool,
    /// (dev, ino) of directories never to enter (the repository).
    pub skip_dirs: Vec<(u64, u64)>,
}

pub struct Scan {
    /// Pre-order: a directory comes before its subdirectories; 0 is the root.
    pub dirs: Vec<ScannedDir>,
    pub root: Entry,
    pub jobs: Vec<FileJob>,
    /// Hard-link group -> where its content comes from.
    pub link_sources: HashMap<u64, Pending>,
    pub reused_content: HashMap<u64, Vec<Extent>>,
    pub errors: Vec<String>,
    pub stats: ScanStats,
}

#[derive(Default, Debug, Clone, Copy)]
pub struct ScanStats {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    pub bytes_to_read: u64,
}

struct Scanner<'a> {
    reader: Option<&'a BlobReader>,
    index: &'a Index,
    rules: IgnoreRules,
    opts: &'a ScanOptions<'a>,
    root_dev: u64,
    interrupted: &'a AtomicBool,
    /// (dev, ino) -> (group id, names seen).
    groups: HashMap<(u64, u64), (u64, u32)>,
    group_ids: std::collections::HashSet<u64>,
    scan: Scan,
}

/// Walks `root`; `prev_root` is the root tree of the previous snapshot of
/// the same source, whose unchanged files need not be read.
pub fn scan(
    root: &Path,
    prev_root: Option<BlobId>,
    reader: Option<&BlobReader>,
    index: &Index,
    opts: &ScanOptions,
    interrupted: &AtomicBool,
) -> Result<Scan, SaveError> {
    let meta = std::fs::symlink_metadata(root).map_err(|e| SaveError::source(root, e))?;
    if !meta.is_dir() {
        return Err(SaveError::source(root, std::io::Error::other("not a directory")));
    }
    let stat = Stat::from_metadata(&meta);
    let xattrs = read_xattrs(root).map_err(|e| SaveError::source(root, e))?;
    let rules = IgnoreRules::new(root, opts.excludes).map_err(SaveError::Usage)?;
    let root_entry = stat.to_entry(Vec::new(), Node::Dir { tree: BlobId(0) }, xattrs);
    let mut s = Scanner {
        reader,
        index,
        rules,
        opts,
        root_dev: stat.dev,
        interrupted,
        groups: HashMap::new(),
        group_ids: Default::default(),
        scan: Scan {
            dirs: Vec::new(),
            root: root_entry,
            jobs: Vec::new(),
            link_sources: HashMap::new(),
            reused_content: HashMap::new(),
            errors: Vec::new(),
            stats: ScanStats::default(),
        },
    };
    let prev = prev_root.and_then(|id| s.load_prev(id, root));
    s.scan_dir(root, 1, prev.as_ref())?;
    s.finish_hard_links();
    Ok(s.scan)
}

impl Scanner<'_> {
    fn load_prev(&mut self, id: BlobId, path: &Path) -> Option<Tree> {
        let reader = self.reader?;
        match reader.read_tree(id) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("chkfs: warning: {}: previous tree unreadable, reading everything: {e}", path.display());
                None
            }
        }
    }

    fn scan_dir(&mut self, dir: &Path, depth: usize, prev: Option<&Tree>) -> Result<usize, SaveError> {
        let index = self.scan.dirs.len();
        self.scan.dirs.push(ScannedDir { entries: Vec::new() });
        self.scan.stats.dirs += 1;
        if self.interrupted.load(Ordering::Relaxed) {
            return Err(SaveError::Interrupted);
        }
        let mut children = match list_dir(dir) {
            Ok(c) => c,
            Err(e) if depth == 1 => return Err(SaveError::source(dir, e)),
            Err(e) => {
                self.error(dir, &e);
                return Ok(index);
            }
        };
        children.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let has_ignore = children.iter().any(|(n, _)| n == IGNORE_FILE);
        self.rules.enter(dir, depth, has_ignore).map_err(SaveError::Usage)?;
        let mut entries = Vec::with_capacity(children.len());
        for (name, dirent) in children {
            let path = dir.join(&name);
            let is_dir_hint = dirent.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if self.rules.is_ignored(&path, is_dir_hint) {
                continue;
            }
            // fstatat relative to the open directory: no path lookup.
            let meta = match dirent.metadata() {
                Ok(m) => m,
                Err(e) => {
                    self.error(&path, &e);
                    continue;
                }
            };
            let stat = Stat::from_metadata(&meta);
            let prev_entry = prev.and_then(|t| t.find(name.as_bytes()));
            if let Some(item) = self.scan_entry(&path, name.as_bytes(), stat, prev_entry, depth)? {
                entries.push(item);
            }
            // Rules of a subdirectory must not apply to its later siblings.
            self.rules.leave_below(depth);
        }
        self.scan.dirs[index].entries = entries;
        Ok(index)
    }

    fn scan_entry(
        &mut self,
        path: &Path,
        name: &[u8],
        stat: Stat,
        prev: Option<&Entry>,
        depth: usize,
    ) -> Result<Option<(Entry, Pending)>, SaveError> {
        let ft = stat.file_type();
        if ft == libc::S_IFREG {
            return Ok(self.scan_file(path, name, stat, prev));
        }
        let Some(xattrs) = self.xattrs_for(path, &stat, prev) else { return Ok(None) };
        let (node, pending) = match ft {
            libc::S_IFDIR => {
                if self.opts.skip_dirs.contains(&(stat.dev, stat.ino)) {
                    return Ok(None);
                }
                let child = if self.opts.one_file_system && stat.dev != self.root_dev {
                    self.scan.dirs.push(ScannedDir { entries: Vec::new() });
                    self.scan.stats.dirs += 1;
                    self.scan.dirs.len() - 1
                } else {
                    let prev_tree = match prev.map(|e| &e.node) {
                        Some(Node::Dir { tree }) => self.load_prev(*tree, path),
                        _ => None,
                    };
                    self.scan_dir(path, depth + 1, prev_tree.as_ref())?
                };
                (Node::Dir { tree: BlobId(0) }, Pending::Dir(child))
            }
            libc::S_IFLNK => match std::fs::read_link(path) {
                Ok(target) => (Node::Symlink { target: target.as_os_str().as_bytes().to_vec() }, Pending::Ready),
                Err(e) => {
                    self.error(path, &e);
                    return Ok(None);
                }
            },
            libc::S_IFIFO => (Node::Fifo, Pending::Ready),
            libc::S_IFSOCK => (Node::Socket, Pending::Ready),
            libc::S_IFCHR => (Node::CharDevice { rdev: stat.rdev }, Pending::Ready),
            libc::S_IFBLK => (Node::BlockDevice { rdev: stat.rdev }, Pending::Ready),
            _ => {
                self.error(path, &std::io::Error::other("unknown file type"));
                return Ok(None);
            }
        };
        if !matches!(node, Node::Dir { .. }) {
            self.scan.stats.other += 1;
        }
        Ok(Some((stat.to_entry(name.to_vec(), node, xattrs), pending)))
    }

    fn scan_file(&mut self, path: &Path, name: &[u8], stat: Stat, prev: Option<&Entry>) -> Option<(Entry, Pending)> {
        self.scan.stats.files += 1;
        self.scan.stats.bytes += stat.size;
        let group = (stat.nlink > 1).then(|| self.link_group(&stat));
        if let Some((group, count)) = group {
            if count > 1 {
                let mut entry = stat.to_entry(name.to_vec(), Node::File { content: Vec::new() }, Vec::new());
                entry.xattrs = self.xattrs_for(path, &stat, prev)?;
                entry.hard_link = Some(HardLink { group, nlink: 0 });
                self.scan.stats.bytes -= stat.size;
                return Some((entry, Pending::Link(group)));
            }
        }
        let reusable = prev.and_then(|p| self.reusable_content(&stat, p));
        let xattrs = self.xattrs_for(path, &stat, prev)?;
        let mut entry = stat.to_entry(name.to_vec(), Node::File { content: Vec::new() }, xattrs);
        let pending = match reusable {
            Some(content) => {
                entry.node = Node::File { content };
                Pending::Ready
            }
            None => {
                self.scan.stats.bytes_to_read += stat.size;
                self.scan.jobs.push(FileJob { path: path.to_path_buf(), stat });
                Pending::File(self.scan.jobs.len() - 1)
            }
        };
        if let Some((group, _)) = group {
            entry.hard_link = Some(HardLink { group, nlink: 0 });
            let source = match (&entry.node, pending) {
                (Node::File { content }, Pending::Ready) => {
                    self.scan.reused_content.insert(group, content.clone());
                    Pending::Ready
                }
                (_, p) => p,
            };
            self.scan.link_sources.insert(group, source);
        }
        Some((entry, pending))
    }

    /// Xattrs cannot change without changing ctime: reuse them with the
    /// content when the file is unchanged.
    fn xattrs_for(&mut self, path: &Path, stat: &Stat, prev: Option<&Entry>) -> Option<Vec<Xattr>> {
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
        let Node::File { content } = &prev.node else {
            return None;
        };
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
        for dir in &mut self.scan.dirs {
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

    fn error(&mut self, path: &Path, e: &std::io::Error) {
        let msg = format!("{}: {e}", path.display());
        eprintln!("chkfs: skipped {msg}");
        self.scan.errors.push(msg);
    }
}

fn list_dir(dir: &Path) -> std::io::Result<Vec<(std::ffi::OsString, std::fs::DirEntry)>> {
    std::fs::read_dir(dir)?.map(|e| e.map(|e| (e.file_name(), e))).collect()
}
