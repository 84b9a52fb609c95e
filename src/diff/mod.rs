//! What changed between two snapshots (or two directories in them), in
//! time proportional to what changed: directories whose tree ids are equal
//! are identical and never read.

use crate::format::tree::{Entry, Node};
use crate::store::{BlobReader, StoreError};
use crate::walk::join;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    /// A file's content or a symlink's target differs (and maybe more).
    Content,
    /// Only metadata differs: mode, owner, times, extended attributes.
    Metadata,
    /// A file became a directory, or the like.
    Type,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Content => "modified",
            Change::Metadata => "metadata",
            Change::Type => "type",
        }
    }
}

/// One changed entry. An added or removed directory is one entry; what it
/// holds is counted in the totals.
#[derive(Debug, Clone)]
pub struct Changed {
    pub path: Vec<u8>,
    pub change: Change,
    pub is_dir: bool,
    /// Bytes of file content before and after (directories: of the files
    /// under them, for added and removed ones).
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Counts of what changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Entries added and removed, those inside added and removed
    /// directories included.
    pub added: u64,
    pub removed: u64,
    pub modified: u64,
    pub metadata_only: u64,
    pub type_changed: u64,
    pub added_bytes: u64,
    pub removed_bytes: u64,
    /// Directories read (pairs whose tree ids differ, and added or removed
    /// ones): what the comparison cost.
    pub trees_read: u64,
}

impl Totals {
    pub fn differ(&self) -> bool {
        self.added + self.removed + self.modified + self.metadata_only + self.type_changed > 0
    }
}

/// Compares directory (or other entry) `a` with `b`, both at `path`, and
/// calls `on_change` for each difference in path order.
pub fn diff_entries(
    reader: &BlobReader,
    path: &[u8],
    a: &Entry,
    b: &Entry,
    on_change: &mut dyn FnMut(Changed),
) -> Result<Totals, StoreError> {
    let mut d = Differ { reader, totals: Totals::default(), on_change };
    d.pair(path, a, b)?;
    Ok(d.totals)
}

/// An entry found at `path` in one snapshot only: added or removed, with
/// all it holds.
pub fn diff_one_side(
    reader: &BlobReader,
    path: &[u8],
    entry: &Entry,
    change: Change,
    on_change: &mut dyn FnMut(Changed),
) -> Result<Totals, StoreError> {
    let mut d = Differ { reader, totals: Totals::default(), on_change };
    d.one_side(path, entry, change)?;
    Ok(d.totals)
}

struct Differ<'a> {
    reader: &'a BlobReader,
    totals: Totals,
    on_change: &'a mut dyn FnMut(Changed),
}

impl Differ<'_> {
    fn pair(&mut self, path: &[u8], a: &Entry, b: &Entry) -> Result<(), StoreError> {
        match (&a.node, &b.node) {
            (Node::Dir { tree: ta }, Node::Dir { tree: tb }) => {
                // A directory whose entries changed has a new mtime for
                // that alone: only its other metadata is news then.
                let meta_changed = if ta == tb { !same_metadata(a, b) } else { !same_owner_and_mode(a, b) };
                if meta_changed {
                    self.report(path, Change::Metadata, true, 0, 0);
                }
                if ta != tb {
                    self.dirs(path, *ta, *tb)?;
                }
            }
            _ if kind_of(&a.node) != kind_of(&b.node) => {
                let (before, after) = (self.content_bytes(a)?, self.content_bytes(b)?);
                self.totals.removed_bytes += before;
                self.totals.added_bytes += after;
                self.report(path, Change::Type, is_dir(b), before, after);
            }
            _ if !same_content(&a.node, &b.node) => {
                self.totals.removed_bytes += a.size;
                self.totals.added_bytes += b.size;
                self.report(path, Change::Content, false, a.size, b.size);
            }
            _ if !same_metadata(a, b) => self.report(path, Change::Metadata, false, a.size, b.size),
            _ => {}
        }
        Ok(())
    }

    /// Merges the sorted entries of two different trees.
    fn dirs(&mut self, path: &[u8], a: crate::format::BlobId, b: crate::format::BlobId) -> Result<(), StoreError> {
        let (ta, tb) = (self.reader.read_tree(a)?, self.reader.read_tree(b)?);
        self.totals.trees_read += 2;
        let (mut i, mut j) = (0, 0);
        while i < ta.entries.len() || j < tb.entries.len() {
            let order = match (ta.entries.get(i), tb.entries.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    let e = &ta.entries[i];
                    self.one_side(&join(path, &e.name), e, Change::Removed)?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    let e = &tb.entries[j];
                    self.one_side(&join(path, &e.name), e, Change::Added)?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (x, y) = (&ta.entries[i], &tb.entries[j]);
                    self.pair(&join(path, &x.name), x, y)?;
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }

    /// An entry on one side only: reported once, counted with all it holds.
    fn one_side(&mut self, path: &[u8], e: &Entry, change: Change) -> Result<(), StoreError> {
        let (entries, bytes) = self.weigh(e)?;
        let (before, after) = match change {
            Change::Removed => {
                self.totals.removed += entries;
                self.totals.removed_bytes += bytes;
                (bytes, 0)
            }
            _ => {
                self.totals.added += entries;
                self.totals.added_bytes += bytes;
                (0, bytes)
            }
        };
        self.emit(path, change, is_dir(e), before, after);
        Ok(())
    }

    /// How many entries `e` is (itself and everything under it) and the
    /// bytes of file content among them.
    fn weigh(&mut self, e: &Entry) -> Result<(u64, u64), StoreError> {
        let Node::Dir { tree } = e.node else { return Ok((1, file_bytes(e))) };
        let mut stack = vec![tree];
        let (mut entries, mut bytes) = (1, 0);
        while let Some(id) = stack.pop() {
            self.totals.trees_read += 1;
            for child in self.reader.read_tree(id)?.entries {
                entries += 1;
                bytes += file_bytes(&child);
                if let Node::Dir { tree } = child.node {
                    stack.push(tree);
                }
            }
        }
        Ok((entries, bytes))
    }

    fn content_bytes(&mut self, e: &Entry) -> Result<u64, StoreError> {
        Ok(if is_dir(e) { self.weigh(e)?.1 } else { file_bytes(e) })
    }

    fn report(&mut self, path: &[u8], change: Change, dir: bool, before: u64, after: u64) {
        match change {
            Change::Content => self.totals.modified += 1,
            Change::Metadata => self.totals.metadata_only += 1,
            Change::Type => self.totals.type_changed += 1,
            Change::Added => self.totals.added += 1,
            Change::Removed => self.totals.removed += 1,
        }
        self.emit(path, change, dir, before, after);
    }

    fn emit(&mut self, path: &[u8], change: Change, is_dir: bool, bytes_before: u64, bytes_after: u64) {
        (self.on_change)(Changed { path: path.to_vec(), change, is_dir, bytes_before, bytes_after });
    }
}

fn is_dir(e: &Entry) -> bool {
    matches!(e.node, Node::Dir { .. })
}

fn file_bytes(e: &Entry) -> u64 {
    if matches!(e.node, Node::File { .. }) {
        e.size
    } else {
        0
    }
}

fn kind_of(n: &Node) -> u8 {
    match n {
        Node::File { .. } => 0,
        Node::Dir { .. } => 1,
        Node::Symlink { .. } => 2,
        Node::Fifo => 3,
        Node::Socket => 4,
        Node::CharDevice { .. } => 5,
        Node::BlockDevice { .. } => 6,
    }
}

/// Same bytes: files by their chunks (a chunk id is the hash of its
/// content, and cut points follow from the content), links by target,
/// devices by number.
fn same_content(a: &Node, b: &Node) -> bool {
    match (a, b) {
        (Node::File { content: x }, Node::File { content: y }) => x == y,
        _ => a == b,
    }
}

/// What a user sees of an entry besides its content (not ctime, inode or
/// block counts, which change when nothing a user sees does).
fn same_metadata(a: &Entry, b: &Entry) -> bool {
    same_owner_and_mode(a, b) && a.mtime == b.mtime
}

fn same_owner_and_mode(a: &Entry, b: &Entry) -> bool {
    a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.xattrs == b.xattrs
}
