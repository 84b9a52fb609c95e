//! The mounted view of a repository, without fuser: inodes, attributes,
//! directory listings, reads. `crate::fuse` only translates calls.
//!
//! ```text
//! /                      (read-only)
//! ├── snapshots/
//! │   ├── <id>/          one directory per snapshot: the saved tree
//! │   └── latest -> <id> the newest snapshot
//! ├── by-time/
//! │   └── <YYYY-MM-DD_HH-MM-SS>_<id> -> ../snapshots/<id>
//! ├── by-path/           each source's snapshots (see `views`)
//! ├── changes/           what each snapshot changed
//! └── history/           every version of every path
//! ```
//! The top level follows the repository (zero kernel TTLs, re-read twice
//! a second at most); everything inside a snapshot is immutable and
//! cached by the kernel for long.

mod attr;
mod changes;
mod content;
mod error;
mod history;
mod inode;
mod links;
mod readahead;
pub mod snapshots;
mod stats;
mod tree_cache;
mod views;
mod xattrs;

pub use attr::{Attr, Kind};
pub use error::FsError;
pub use stats::STATS_XATTR;
pub use xattrs::may_read_trusted;

use crate::format::pack::BlobKind;
use crate::format::records::Timestamp;
use crate::format::tree::{Entry, Extent, IndexedSplit, Node, SplitTree, Tree};
use crate::format::{BlobId, SnapshotId};
use crate::store::index::Holding;
use crate::store::{BlobReader, Index, PackRuns, Repository, StoreError};
use attr::entry_attr;
use inode::{dir_key, leaf_key, root_key, time_link_key, EntryAt, InSnapshot, InodeTable, NodeKind};
use inode::{latest_key, BY_PATH, BY_TIME, CHANGES, HISTORY, ROOT, SNAPSHOTS};
use parking_lot::{Mutex, RwLock};
use snapshots::SnapshotList;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tree_cache::Cached;

/// How long the kernel may cache what lies inside a snapshot.
const IMMUTABLE: Duration = Duration::from_secs(24 * 3600);

/// Kernel cache lifetimes for a name (entry) and for its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    pub entry: Duration,
    pub attr: Duration,
}

/// How long names and attributes that follow the repository may be cached:
/// every path walk into a snapshot passes through them, so zero would cost
/// a round trip per path; a new snapshot still shows within this delay.
const SHORT: Duration = Duration::from_secs(1);

/// `/`, `snapshots/`, `by-time/`: the names are fixed, the times follow
/// the newest snapshot.
const TOP_DIR: Ttl = Ttl { entry: IMMUTABLE, attr: SHORT };
/// `latest` and the by-time links: a link never changes its target (a
/// new newest snapshot makes a new `latest` node), but the names come and
/// go with the snapshots, and their times follow the newest.
const MOVING_LINK: Ttl = Ttl { entry: SHORT, attr: Duration::ZERO };
const STABLE: Ttl = Ttl { entry: IMMUTABLE, attr: IMMUTABLE };
/// A snapshot directory: its name may go away (forget), its content not.
const SNAPSHOT_ROOT: Ttl = Ttl { entry: SHORT, attr: IMMUTABLE };

/// Views that follow the snapshot list: names may come and go, and
/// their directories' listings change.
const VIEW_DIR: Ttl = Ttl { entry: SHORT, attr: SHORT };
/// Memory for the places of history directories, and for what snapshots
/// changed.
const HISTORY_BYTES: u64 = 8 << 20;
const CHANGES_BYTES: u64 = 32 << 20;

/// Longest parent chain followed to name a node in a message.
const MAX_ORIGIN_DEPTH: usize = 1 << 20;

/// Memory of an inode the kernel holds: its table slot, counted high.
/// Measured after `ls -l` of a million entries: about 140 bytes (a
/// 48-byte slot in a hash table at half load); when every slot is in a
/// tree of its own (deep chains of one-entry directories), about 240.
/// Counting more keeps the block cache from taking what the table's next
/// doubling will need.
const INODE_BYTES: u64 = 300;
/// Memory of a file's place in a second snapshot (one inode for a file
/// found in several: `diff -r` of two snapshots keeps one per file),
/// counted high: about 48 bytes in its table at 7/8 load.
const PLACE_BYTES: u64 = 64;
/// What the process may use beyond `--cache-size` before the block cache
/// shrinks (the promise is 64 MiB; this leaves room to react).
const SLACK_BYTES: u64 = 40 << 20;
/// The least the block cache keeps, whatever else grows.
const MIN_BLOCK_BYTES: u64 = 8 << 20;

/// Memory for the extent offsets of large files being read.
const STARTS_BYTES: u64 = 8 << 20;
/// Files with at most this many extents have their offsets summed on
/// each read instead of cached.
const FEW_EXTENTS: usize = 64;

/// A node's entry, from its tree (kept alive while in use) or held.
enum EntryRef {
    Held(Arc<Entry>),
    InTree(Arc<Tree>, usize),
}

impl std::ops::Deref for EntryRef {
    type Target = Entry;
    fn deref(&self) -> &Entry {
        match self {
            EntryRef::Held(e) => e,
            EntryRef::InTree(t, i) => &t.entries[*i],
        }
    }
}

/// How much of the index a mount has loaded: trees are enough to list
/// directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Loaded {
    Nothing,
    Trees,
    All,
}

/// What `each_entry` calls: (position in the directory, id of the tree
/// holding the entry, index there, entry) -> stop?
type EachEntry<'a> = dyn FnMut(usize, BlobId, usize, &Entry) -> Result<bool, FsError> + 'a;

/// A directory's entries: one tree, or a split tree whose parts are
/// decoded as they are needed. Each with its id.
enum Listing {
    Whole(BlobId, Arc<Tree>),
    Split(BlobId, Arc<IndexedSplit>),
}

/// Where a read was, for `read_ahead`.
pub struct ReadAt {
    snap: SnapshotId,
    at: readahead::Read,
    from_start: bool,
}

/// One entry of a directory listing.
pub struct DirItem<'a> {
    pub name: &'a [u8],
    /// Resume the listing after this item by passing this offset.
    pub next_offset: u64,
    pub attr: Attr,
    pub ttl: Ttl,
}

/// Packs of a large file fetched ahead of its reader from a remote store.
const PACKS_AHEAD: usize = 3;

pub struct FsOptions {
    pub cache_bytes: u64,
    /// How often, at most, the snapshot list is read again while the
    /// mount is used.
    pub snapshot_refresh: std::time::Duration,
    /// Owner of the top-level directories.
    pub uid: u32,
    pub gid: u32,
}

pub struct SnapshotFs {
    repo: Arc<Repository>,
    reader: BlobReader,
    index_loaded: Mutex<Loaded>,
    /// Set once trees can be read, and once everything can.
    trees_ready: AtomicBool,
    index_ready: AtomicBool,
    snapshots: RwLock<SnapshotList>,
    inodes: Mutex<InodeTable>,
    trees: tree_cache::TreeCache,
    /// Start offsets of the extents of files with many (few are summed
    /// per read).
    starts: tree_cache::WeightedLru<(BlobId, u32), Arc<Vec<u64>>>,
    /// Where large files change pack, for fetching ahead from a remote
    /// store; None on a local one, where reads never look.
    pack_runs: Option<tree_cache::WeightedLru<(BlobId, u32), Arc<PackRuns>>>,
    links: links::LinkGroups,
    history: tree_cache::WeightedLru<u128, (u64, Arc<history::Places>)>,
    change_sets: tree_cache::WeightedLru<(SnapshotId, SnapshotId), Arc<changes::ChangeSet>>,
    /// Readers going through directories in order, and where to send the
    /// files to push ahead of them (see `start_readahead`).
    streams: readahead::Streams,
    readahead: std::sync::atomic::AtomicBool,
    counters: stats::Counters,
    tree_bytes: u64,
    /// Calls since the block cache's share was last adjusted.
    ticks: std::sync::atomic::AtomicU64,
    opts: FsOptions,
    mounted_at: Timestamp,
}

fn store_err(e: StoreError) -> FsError {
    FsError::Io(e.to_string())
}

impl SnapshotFs {
    /// Lists the snapshots (names only are needed to start); the index is
    /// loaded on first need, or by `preload`.
    pub fn new(repo: Arc<Repository>, opts: FsOptions) -> Result<Self, StoreError> {
        let fetches_ahead = !repo.lists_cheaply();
        // The budget is shared: an eighth for decoded trees, the rest for
        // decompressed blocks once the index and the inodes the kernel
        // holds are counted (see `rebalance`). Files are read through their directory's tree, so a floor keeps
        // a small cache from decoding trees again for every read.
        let tree_bytes = (opts.cache_bytes / 8).max(8 << 20);
        let block_bytes = opts.cache_bytes.saturating_sub(tree_bytes).max(1 << 20);
        let reader = BlobReader::new(repo.clone(), Arc::new(Index::default()), block_bytes);
        let fs = SnapshotFs {
            repo,
            reader,
            index_loaded: Mutex::new(Loaded::Nothing),
            trees_ready: Default::default(),
            index_ready: Default::default(),
            snapshots: RwLock::new(SnapshotList::new(opts.snapshot_refresh)),
            inodes: Mutex::new(InodeTable::default()),
            trees: tree_cache::TreeCache::new(tree_bytes),
            starts: tree_cache::WeightedLru::new(STARTS_BYTES),
            pack_runs: fetches_ahead.then(|| tree_cache::WeightedLru::new(STARTS_BYTES)),
            links: Default::default(),
            history: tree_cache::WeightedLru::new(HISTORY_BYTES),
            change_sets: tree_cache::WeightedLru::new(CHANGES_BYTES),
            streams: Default::default(),
            readahead: Default::default(),
            counters: Default::default(),
            tree_bytes,
            ticks: Default::default(),
            opts,
            mounted_at: Timestamp::now(),
        };
        fs.snapshots.write().refresh(&fs.repo)?;
        Ok(fs)
    }

    /// Loads the index now (mounting stays instant: call it from a
    /// thread). The trees first: listing directories needs only them, a
    /// small part of the index, so a fresh mount's first listing does not
    /// wait for every chunk's entry (shapes benchmark repository: 16
    /// against 36 ms; the gap grows with the number of chunks).
    pub fn preload(&self) {
        for kind in [BlobKind::Tree, BlobKind::Data] {
            if let Err(e) = self.ensure_index(kind) {
                eprintln!("chkfs mount: cannot load the index: {e}");
                return;
            }
        }
    }

    /// Waits until blobs of `kind` can be read, loading what is missing.
    fn ensure_index(&self, kind: BlobKind) -> Result<(), FsError> {
        let (ready, wanted) = match kind {
            BlobKind::Tree => (&self.trees_ready, Loaded::Trees),
            BlobKind::Data => (&self.index_ready, Loaded::All),
        };
        if ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut loaded = self.index_loaded.lock();
        if *loaded < wanted {
            self.load_index_locked(wanted)?;
            *loaded = wanted;
        }
        Ok(())
    }

    /// Loads the index (of the trees, or all), with `index_loaded` held.
    fn load_index_locked(&self, what: Loaded) -> Result<(), FsError> {
        let holding = if what == Loaded::All { Holding::All } else { Holding::Trees };
        let index = self.repo.load_index_holding(holding).map_err(store_err)?.index;
        self.reader.set_index(Arc::new(index));
        self.rebalance();
        self.trees_ready.store(true, Ordering::Release);
        if what == Loaded::All {
            self.index_ready.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Gives the block cache what the budget leaves once the tree cache,
    /// the index and the inodes the kernel holds are counted, so that the
    /// whole process stays near `--cache-size` however many inodes a
    /// walk makes the kernel keep.
    ///
    /// What is counted misses what the allocator keeps (fragments, the
    /// decoder's scratch): when the process's anonymous memory is above
    /// the budget anyway, the block cache gives up the difference and
    /// free memory goes back to the system.
    fn rebalance(&self) {
        let index = self.reader.index().memory_size();
        let inodes = {
            let table = self.inodes.lock();
            table.count() as u64 * INODE_BYTES + table.extra_places() as u64 * PLACE_BYTES
        };
        let trees = self.tree_bytes.max(self.trees.usage().1);
        let others = trees + STARTS_BYTES + index + inodes;
        let mut blocks = self.opts.cache_bytes.saturating_sub(others);
        let over = anonymous_memory().map_or(0, |rss| rss.saturating_sub(self.opts.cache_bytes + SLACK_BYTES));
        if over > 0 {
            blocks = blocks.min(self.reader.cache_usage().0.saturating_sub(over));
        }
        self.reader.set_cache_bytes(blocks.max(MIN_BLOCK_BYTES));
        if over > 0 {
            // SAFETY: malloc_trim only returns free memory to the system.
            unsafe { libc::malloc_trim(0) };
        }
    }

    /// `rebalance` every so many calls that may add inodes.
    fn tick(&self) {
        if self.ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1024 == 0 {
            self.rebalance();
        }
    }

    /// Re-reads the snapshot list when it may be stale; new snapshots bring
    /// new index files.
    fn refresh_snapshots(&self) {
        if !self.snapshots.read().is_stale() {
            return;
        }
        let mut list = self.snapshots.write();
        if !list.is_stale() {
            return;
        }
        let added = match list.refresh(&self.repo) {
            Ok(added) => added,
            Err(e) => {
                eprintln!("chkfs mount: cannot list snapshots: {e}");
                false
            }
        };
        drop(list);
        // New snapshots come with new index files; reload outside the
        // snapshot list's lock.
        if added {
            let loaded = self.index_loaded.lock();
            if *loaded != Loaded::Nothing {
                if let Err(e) = self.load_index_locked(*loaded) {
                    eprintln!("chkfs mount: cannot reload the index: {e}");
                }
            }
        }
    }

    /// Reads a blob of `kind` once the index has it (the reader itself
    /// reloads the index when a gc moved the blob).
    fn read_blob<T>(
        &self,
        kind: BlobKind,
        read: impl Fn(&BlobReader) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let not_loaded = |e: FsError| StoreError::io(self.repo.location(), std::io::Error::other(e.to_string()));
        self.ensure_index(kind).map_err(not_loaded)?;
        read(&self.reader)
    }

    fn tree_object(&self, id: BlobId) -> Result<Cached, FsError> {
        self.trees.get_or_load(id, || self.read_blob(BlobKind::Tree, |r| r.read_tree_object(id))).map_err(|e| {
            eprintln!("chkfs mount: {e}");
            store_err(e)
        })
    }

    /// Tree `id`, which holds entries: a whole directory or one part of one.
    fn tree(&self, id: BlobId) -> Result<Arc<Tree>, FsError> {
        match self.tree_object(id)? {
            Cached::Tree(t) => Ok(t),
            Cached::Split(_) => Err(self.damage(format!("tree {id} is a split tree where its parts belong"))),
        }
    }

    fn damage(&self, message: String) -> FsError {
        eprintln!("chkfs mount: {message}");
        FsError::Io(message)
    }

    /// Part `k` of split tree `split` (id `split_id`) and its id. Checked
    /// on every use, not only when decoded: the same tree may be cached
    /// as the part of another split tree, or as a whole directory.
    fn part(&self, split_id: BlobId, split: &SplitTree, k: usize) -> Result<(BlobId, Arc<Tree>), FsError> {
        let id = split.parts.get(k).ok_or(FsError::NotFound)?.tree;
        let part = self.tree(id)?;
        split.check_part(k, &part).map_err(|e| self.damage(format!("split tree {split_id}: {e}")))?;
        Ok((id, part))
    }

    /// Entry `name` of a directory: the tree holding it, its id, and the
    /// entry's index there.
    fn find_in(&self, listing: &Listing, name: &[u8]) -> Result<(BlobId, Arc<Tree>, usize), FsError> {
        let (id, tree) = match listing {
            Listing::Whole(id, tree) => (*id, tree.clone()),
            Listing::Split(split_id, split) => {
                let k = split.part_for(name).ok_or(FsError::NotFound)?;
                self.part(*split_id, split, k)?
            }
        };
        let index = tree.position(name).ok_or(FsError::NotFound)?;
        Ok((id, tree, index))
    }

    /// Calls `each(position, tree id, index in that tree, entry)` for the
    /// entries of a directory from `skip` on, until it returns true. A
    /// part that cannot be read ends the walk there once entries were
    /// given (a listing returns them; the next call from there fails).
    fn each_entry(&self, listing: &Listing, skip: usize, each: &mut EachEntry) -> Result<(), FsError> {
        match listing {
            Listing::Whole(id, tree) => {
                for (i, e) in tree.entries.iter().enumerate().skip(skip) {
                    if each(i, *id, i, e)? {
                        break;
                    }
                }
            }
            Listing::Split(split_id, split) => {
                let Some((first, mut start)) = split.part_at(skip as u64) else { return Ok(()) };
                for k in first..split.parts.len() {
                    let (id, part) = match self.part(*split_id, split, k) {
                        Ok(part) => part,
                        Err(_) if k > first => return Ok(()),
                        Err(e) => return Err(e),
                    };
                    let from = (skip as u64).saturating_sub(start) as usize;
                    for (j, e) in part.entries.iter().enumerate().skip(from) {
                        if each(start as usize + j, id, j, e)? {
                            return Ok(());
                        }
                    }
                    start += part.entries.len() as u64;
                }
            }
        }
        Ok(())
    }

    fn node(&self, ino: u64) -> Result<NodeKind, FsError> {
        self.inodes.lock().get(ino).ok_or(FsError::NotFound)
    }

    // ---------------------------------------------------------------- attrs

    fn top_dir_attr(&self, ino: u64) -> Attr {
        let list = self.snapshots.read();
        let newest =
            list.changed_at.unwrap_or_else(|| list.by_id.values().map(|s| s.time).max().unwrap_or(self.mounted_at));
        Attr {
            ino,
            kind: Kind::Dir,
            perm: 0o555,
            nlink: 2,
            uid: self.opts.uid,
            gid: self.opts.gid,
            size: 0,
            blocks: 0,
            mtime: newest,
            ctime: newest,
            rdev: 0,
        }
    }

    fn symlink_attr(&self, ino: u64, target_len: usize) -> Attr {
        Attr { kind: Kind::Symlink, perm: 0o777, nlink: 1, size: target_len as u64, ..self.top_dir_attr(ino) }
    }

    fn attr_of(&self, ino: u64, kind: &NodeKind) -> Result<(Attr, Ttl), FsError> {
        Ok(match kind {
            NodeKind::Root => (self.top_dir_attr(ino), TOP_DIR),
            NodeKind::Snapshots | NodeKind::ByTime | NodeKind::ByPath | NodeKind::Changes | NodeKind::History => {
                // The kernel keeps these listings until the mtime changes;
                // it asks for the mtime first, so the list is read here.
                self.refresh_snapshots();
                (self.top_dir_attr(ino), TOP_DIR)
            }
            NodeKind::View(_) => {
                self.refresh_snapshots();
                (self.top_dir_attr(ino), VIEW_DIR)
            }
            NodeKind::ChangesRoot { roots, .. } => (entry_attr(ino, &roots.0), SNAPSHOT_ROOT),
            NodeKind::ChangedDir(set, d) => {
                let dir = set.dirs.get(*d as usize).ok_or(FsError::NotFound)?;
                (entry_attr(ino, &dir.entry), STABLE)
            }
            NodeKind::Removed(set) => {
                let size = set.removed.len() as u64;
                let attr = Attr {
                    kind: Kind::File,
                    perm: 0o444,
                    nlink: 1,
                    size,
                    blocks: size.div_ceil(512),
                    ..self.top_dir_attr(ino)
                };
                (attr, SNAPSHOT_ROOT)
            }
            NodeKind::Latest(_) | NodeKind::TimeLink(_) | NodeKind::SourceLink { .. } => {
                (self.symlink_attr(ino, self.link_target(ino, kind)?.len()), MOVING_LINK)
            }
            NodeKind::Dir(n) => {
                let ttl = if matches!(n.at, EntryAt::Held(_)) { SNAPSHOT_ROOT } else { STABLE };
                (entry_attr(ino, &*self.entry(&n.at)?), ttl)
            }
            NodeKind::Leaf(n) => (entry_attr(ino, &self.node_entry(ino, n)?.0), STABLE),
        })
    }

    pub fn getattr(&self, ino: u64) -> Result<(Attr, Ttl), FsError> {
        stats::bump(&self.counters.getattr);
        let kind = self.node(ino)?;
        self.attr_of(ino, &kind)
    }

    // --------------------------------------------------------------- lookup

    /// The child `name` of directory `parent`, registered as looked up once.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<(Attr, Ttl), FsError> {
        stats::bump(&self.counters.lookup);
        self.tick();
        let parent_kind = self.node(parent)?;
        let (key, kind) = self.child(parent, &parent_kind, name)?;
        let ino = match key {
            Some(key) => self.inodes.lock().register(key, || kind.clone(), true),
            None => fixed_ino(&kind),
        };
        let (attr, ttl) = self.attr_of(ino, &kind)?;
        Ok((attr, moving_names(&parent_kind, ttl)))
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.lock().forget(ino, n);
    }

    /// What `name` in `parent` is, with its identity key (None for the
    /// fixed top-level inodes).
    fn child(&self, parent: u64, parent_kind: &NodeKind, name: &[u8]) -> Result<(Option<u128>, NodeKind), FsError> {
        match parent_kind.clone() {
            NodeKind::Root => TOP_LEVEL
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, kind)| (None, kind.clone()))
                .ok_or(FsError::NotFound),
            NodeKind::Snapshots => {
                self.refresh_snapshots();
                if name == b"latest" {
                    return match self.snapshots.read().latest() {
                        Some(id) => Ok((Some(latest_key(id)), NodeKind::Latest(id))),
                        None => Err(FsError::NotFound),
                    };
                }
                let id = std::str::from_utf8(name).ok().and_then(|s| SnapshotId::from_hex(s).ok());
                let snap = id.and_then(|id| self.snapshots.read().by_id.get(&id).map(|s| (id, s.clone())));
                let (id, snap) = snap.ok_or(FsError::NotFound)?;
                Ok((Some(root_key(id)), snapshot_root(id, &snap)))
            }
            NodeKind::ByTime => {
                self.refresh_snapshots();
                let id = self.snapshots.read().by_time_name(name).ok_or(FsError::NotFound)?;
                Ok((Some(time_link_key(id)), NodeKind::TimeLink(id)))
            }
            NodeKind::Dir(dir) => {
                let (tree_id, tree, index) = self.find_in(&self.listing(&dir)?, name)?;
                let child = &tree.entries[index];
                self.links.admit(dir.snap, child)?;
                let parent_key = self.inodes.lock().key(parent).ok_or(FsError::NotFound)?;
                Ok(self.inside(dir.snap, parent_key, parent, tree_id, index, child))
            }
            NodeKind::ByPath
            | NodeKind::Changes
            | NodeKind::History
            | NodeKind::View(_)
            | NodeKind::ChangesRoot { .. }
            | NodeKind::ChangedDir(..) => self.view_child(parent, parent_kind, name),
            _ => Err(FsError::NotDir),
        }
    }

    /// Key and node of `entry`, entry `index` of tree `tree`, found in
    /// directory `parent` (whose key is `parent_key`) of `snap`.
    fn inside(
        &self,
        snap: SnapshotId,
        parent_key: u128,
        parent: u64,
        tree: BlobId,
        index: usize,
        entry: &Entry,
    ) -> (Option<u128>, NodeKind) {
        let at = EntryAt::InTree { tree: tree.into(), index: index as u32 };
        let node = InSnapshot { snap, at, parent, xattrs: !entry.xattrs.is_empty() };
        if inode::is_dir(entry) {
            (Some(dir_key(parent_key, &entry.name)), NodeKind::Dir(node))
        } else {
            (Some(leaf_key(snap, entry)), NodeKind::Leaf(node))
        }
    }

    /// The entry a node stands for.
    fn entry(&self, at: &EntryAt) -> Result<EntryRef, FsError> {
        match at {
            EntryAt::Held(e) => Ok(EntryRef::Held(e.clone())),
            EntryAt::InTree { tree, index } => {
                let tree = BlobId::from(*tree);
                let t = self.tree(tree)?;
                let i = *index as usize;
                if i >= t.entries.len() {
                    return Err(FsError::Io(format!("tree {tree} has no entry {i}")));
                }
                Ok(EntryRef::InTree(t, i))
            }
        }
    }

    /// The entry of node `ino`, `n` as the table gives it, and where it
    /// was found: a file found in several snapshots (one inode for all)
    /// is read from another of them when the trees of the first are gone
    /// (that snapshot forgotten and collected while the kernel holds the
    /// inode), and is then found there first.
    fn node_entry(&self, ino: u64, n: &InSnapshot) -> Result<(EntryRef, InSnapshot), FsError> {
        let failed = match self.entry(&n.at) {
            Ok(e) => return Ok((e, n.clone())),
            Err(e) => e,
        };
        let others = self.inodes.lock().other_homes(ino);
        for home in others {
            if let Ok(e) = self.entry(&home.at) {
                self.inodes.lock().rehome(ino, home.snap);
                return Ok((e, home));
            }
        }
        Err(failed)
    }

    /// The entries of directory `dir`.
    fn listing(&self, dir: &InSnapshot) -> Result<Listing, FsError> {
        let Node::Dir { tree } = self.entry(&dir.at)?.node else { return Err(FsError::NotDir) };
        self.listing_of(tree)
    }

    /// The entries of the directory whose tree is `tree`.
    fn listing_of(&self, tree: BlobId) -> Result<Listing, FsError> {
        Ok(match self.tree_object(tree)? {
            Cached::Tree(t) => Listing::Whole(tree, t),
            Cached::Split(s) => Listing::Split(tree, s),
        })
    }

    /// The trees holding the entries of the directory whose tree is
    /// `tree`, in name order, with their ids: the tree itself, or the
    /// parts of a split tree.
    fn parts_of(&self, tree: BlobId) -> Result<Vec<(BlobId, Arc<Tree>)>, FsError> {
        match self.listing_of(tree)? {
            Listing::Whole(id, t) => Ok(vec![(id, t)]),
            Listing::Split(id, split) => (0..split.parts.len()).map(|k| self.part(id, &split, k)).collect(),
        }
    }

    /// "SNAPSHOT:/path" of `ino`, for messages: made from the parents,
    /// since no node holds its path.
    fn origin(&self, ino: u64) -> String {
        let mut names = Vec::new();
        let mut at = ino;
        let mut snap = None;
        // Parents were registered before their children, so the chain
        // ends; the bound is for safety only.
        for _ in 0..=MAX_ORIGIN_DEPTH {
            match self.node(at) {
                Ok(NodeKind::Dir(n) | NodeKind::Leaf(n)) => {
                    snap = Some(n.snap);
                    if let EntryAt::Held(_) = n.at {
                        break;
                    }
                    names.push(self.entry(&n.at).map(|e| e.name.clone()).unwrap_or_else(|_| b"?".to_vec()));
                    at = n.parent;
                }
                _ => break,
            }
        }
        let mut path = Vec::new();
        for name in names.iter().rev() {
            path.push(b'/');
            path.extend_from_slice(name);
        }
        let snap = snap.map(|s| s.to_string()).unwrap_or_default();
        format!("{snap}:{}", crate::text::escape_bytes(&path))
    }

    // -------------------------------------------------------------- listing

    /// Lists directory `ino` from `offset`; `add` returns true once the
    /// reply is full. With `plus`, every item added counts as a lookup.
    pub fn readdir(
        &self,
        ino: u64,
        offset: u64,
        plus: bool,
        add: &mut dyn FnMut(&DirItem) -> bool,
    ) -> Result<(), FsError> {
        stats::bump(&self.counters.readdir);
        self.tick();
        let kind = self.node(ino)?;
        let parent = match &kind {
            NodeKind::Dir(n) => n.parent,
            NodeKind::Snapshots | NodeKind::ByTime => ROOT,
            _ => ROOT,
        };
        let dots: [(&[u8], u64); 2] = [(b".", ino), (b"..", parent)];
        for (i, (name, dino)) in dots.iter().enumerate().skip(offset as usize) {
            let (attr, ttl) = self.getattr(*dino).unwrap_or_else(|_| (self.top_dir_attr(*dino), TOP_DIR));
            if add(&DirItem { name, next_offset: i as u64 + 1, attr, ttl }) {
                return Ok(());
            }
        }
        let skip = offset.saturating_sub(2) as usize;
        let listed = kind.clone();
        let mut emit = |i: usize, name: &[u8], key: Option<u128>, node: NodeKind| -> Result<bool, FsError> {
            // With plus, the entry becomes a lookup: register it first, so
            // that the number sent is the one counted (a colliding key gets
            // its fallback number here), and uncount it if it did not fit.
            let ino = match key {
                Some(k) if plus => self.inodes.lock().register(k, || node.clone(), true),
                Some(k) => self.inodes.lock().peek(k),
                None => fixed_ino(&node),
            };
            let (attr, ttl) = self.attr_of(ino, &node)?;
            let ttl = moving_names(&listed, ttl);
            let item = DirItem { name, next_offset: (i + 3) as u64, attr, ttl };
            let full = add(&item);
            if full && plus && key.is_some() {
                self.inodes.lock().forget(ino, 1);
            }
            Ok(full)
        };
        match kind {
            NodeKind::Root => {
                for (i, (name, node)) in TOP_LEVEL.iter().enumerate().skip(skip) {
                    if emit(i, name, None, node.clone())? {
                        break;
                    }
                }
            }
            NodeKind::Snapshots => {
                self.refresh_snapshots();
                let list: Vec<_> = self.snapshots.read().by_id.iter().map(|(id, s)| (*id, s.clone())).collect();
                let has_latest = !list.is_empty();
                for (i, (id, snap)) in list.iter().enumerate().skip(skip) {
                    if emit(i, id.to_hex().as_bytes(), Some(root_key(*id)), snapshot_root(*id, snap))? {
                        return Ok(());
                    }
                }
                let latest = self.snapshots.read().latest();
                if has_latest && skip <= list.len() {
                    if let Some(id) = latest {
                        emit(list.len(), b"latest", Some(latest_key(id)), NodeKind::Latest(id))?;
                    }
                }
            }
            NodeKind::ByTime => {
                self.refresh_snapshots();
                let names = self.snapshots.read().time_names.clone();
                for (i, (name, id)) in names.iter().enumerate().skip(skip) {
                    if emit(i, name.as_bytes(), Some(time_link_key(*id)), NodeKind::TimeLink(*id))? {
                        break;
                    }
                }
            }
            NodeKind::Dir(dir) => {
                let listing = self.listing(&dir)?;
                let dir_key = self.inodes.lock().key(ino).ok_or(FsError::NotFound)?;
                self.each_entry(&listing, skip, &mut |i, tree_id, index, e| {
                    // A disagreeing name is listed; reading it fails.
                    let _ = self.links.admit(dir.snap, e);
                    let (key, node) = self.inside(dir.snap, dir_key, ino, tree_id, index, e);
                    emit(i, &e.name, key, node)
                })?;
            }
            NodeKind::ByPath
            | NodeKind::Changes
            | NodeKind::History
            | NodeKind::View(_)
            | NodeKind::ChangesRoot { .. }
            | NodeKind::ChangedDir(..) => self.view_entries(ino, &kind, skip, &mut emit)?,
            _ => return Err(FsError::NotDir),
        }
        Ok(())
    }

    // ----------------------------------------------------- links and xattrs

    fn link_target(&self, ino: u64, kind: &NodeKind) -> Result<Vec<u8>, FsError> {
        match kind {
            NodeKind::Latest(id) => Ok(id.to_hex().into_bytes()),
            NodeKind::TimeLink(id) => Ok(format!("../snapshots/{id}").into_bytes()),
            NodeKind::SourceLink { snap, depth } => {
                Ok(format!("{}snapshots/{snap}", "../".repeat(*depth as usize)).into_bytes())
            }
            NodeKind::Leaf(n) => match &self.node_entry(ino, n)?.0.node {
                Node::Symlink { target } => Ok(target.clone()),
                _ => Err(FsError::Invalid),
            },
            _ => Err(FsError::Invalid),
        }
    }

    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>, FsError> {
        stats::bump(&self.counters.readlink);
        self.link_target(ino, &self.node(ino)?)
    }

    fn xattrs(&self, ino: u64) -> Result<Vec<crate::format::tree::Xattr>, FsError> {
        Ok(match self.node(ino)? {
            // Most entries have none: answered without their tree (ls -l
            // asks two or three names of every entry).
            NodeKind::Dir(n) | NodeKind::Leaf(n) if !n.xattrs => Vec::new(),
            NodeKind::Dir(n) | NodeKind::Leaf(n) => self.node_entry(ino, &n)?.0.xattrs.clone(),
            NodeKind::ChangesRoot { roots, .. } => roots.0.xattrs.clone(),
            NodeKind::ChangedDir(set, d) => {
                set.dirs.get(d as usize).map(|d| d.entry.xattrs.clone()).unwrap_or_default()
            }
            _ => Vec::new(),
        })
    }

    /// Attribute `name`; `privileged` tells (when asked) whether the caller
    /// may see `trusted.*` attributes.
    pub fn getxattr(&self, ino: u64, name: &[u8], privileged: &dyn Fn() -> bool) -> Result<Vec<u8>, FsError> {
        stats::bump(&self.counters.getxattr);
        if ino == ROOT && name == STATS_XATTR {
            return Ok(self.stats());
        }
        xattrs::get(&self.xattrs(ino)?, name, privileged).map_err(|missing| match missing {
            xattrs::Missing::NoAttr => FsError::NoAttr,
            xattrs::Missing::Unlabelled => FsError::Unsupported,
        })
    }

    /// Attribute names the caller may see, each followed by a NUL byte.
    pub fn listxattr(&self, ino: u64, privileged: &dyn Fn() -> bool) -> Result<Vec<u8>, FsError> {
        stats::bump(&self.counters.listxattr);
        Ok(xattrs::list(&self.xattrs(ino)?, privileged))
    }

    // ---------------------------------------------------------------- files

    /// True for directories whose listing never changes (inside snapshots):
    /// the kernel may cache their listings across opens.
    pub fn is_immutable_dir(&self, ino: u64) -> Result<bool, FsError> {
        Ok(matches!(self.node(ino)?, NodeKind::Dir(_) | NodeKind::ChangedDir(..) | NodeKind::ChangesRoot { .. }))
    }

    /// Opening for writing is refused; true means the kernel may keep
    /// cached pages across opens (snapshot content never changes).
    pub fn open(&self, ino: u64, write: bool) -> Result<bool, FsError> {
        stats::bump(&self.counters.open);
        if write {
            return Err(FsError::ReadOnly);
        }
        match self.node(ino)? {
            NodeKind::Leaf(_) | NodeKind::Removed(_) => Ok(true),
            _ => Ok(false),
        }
    }

    /// The file `ino`: its snapshot, entry, and where it is (the key of
    /// its extent offsets, and its directory for readahead).
    fn file(&self, ino: u64) -> Result<(SnapshotId, EntryRef, readahead::Read), FsError> {
        match self.node(ino)? {
            NodeKind::Leaf(n) => {
                let (entry, n) = self.node_entry(ino, &n)?;
                let EntryAt::InTree { tree, index } = n.at else { return Err(FsError::Invalid) };
                let at = readahead::Read { dir: n.parent, tree: tree.into(), index, ino };
                Ok((n.snap, entry, at))
            }
            _ => Err(FsError::Invalid),
        }
    }

    /// Start offset of each extent of a file; cached for files with many.
    fn extent_starts(&self, at: (BlobId, u32), content: &[Extent]) -> Arc<Vec<u64>> {
        if content.len() <= FEW_EXTENTS {
            return Arc::new(content::extent_starts(content));
        }
        if let Some(s) = self.starts.get(&at) {
            return s;
        }
        let s = Arc::new(content::extent_starts(content));
        self.starts.insert(at, s.clone(), 8 * s.len() as u64 + 64);
        s
    }

    /// Asks a remote store to fetch the packs that the next reads of a large
    /// file need, a few at once, in file order.
    fn fetch_ahead(&self, at: (BlobId, u32), content: &[Extent], last: usize) {
        let Some(pack_runs) = &self.pack_runs else { return };
        if content.len() <= FEW_EXTENTS {
            return;
        }
        let runs = match pack_runs.get(&at) {
            Some(r) => r,
            None => {
                let ids = content.iter().map(|x| match x {
                    Extent::Data { id, .. } => Some(*id),
                    Extent::Hole { .. } => None,
                });
                let Some(runs) = self.reader.pack_runs(ids) else { return };
                let runs = Arc::new(runs);
                pack_runs.insert(at, runs.clone(), runs.memory_size());
                runs
            }
        };
        self.reader.prefetch_after(&runs, last, PACKS_AHEAD);
    }

    /// Exactly the bytes of `[offset, offset + size)` that exist (fewer only
    /// at end of file); any damaged chunk fails the whole request.
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, FsError> {
        let mut out = Vec::new();
        self.read_into(ino, offset, size, &mut out)?;
        Ok(out)
    }

    /// `read` into `out` (cleared first), so a caller can reuse one buffer.
    /// Pass what it returns to `read_ahead` once the reader has its bytes.
    pub fn read_into(&self, ino: u64, offset: u64, size: u32, out: &mut Vec<u8>) -> Result<ReadAt, FsError> {
        stats::bump(&self.counters.read);
        if let NodeKind::Removed(set) = self.node(ino)? {
            out.clear();
            let from = (offset as usize).min(set.removed.len());
            let to = from.saturating_add(size as usize).min(set.removed.len());
            out.extend_from_slice(&set.removed[from..to]);
            let at = readahead::Read { dir: CHANGES, tree: BlobId(0), index: 0, ino };
            return Ok(ReadAt { snap: set.snap, at, from_start: false });
        }
        let (snap, entry, at) = self.file(ino)?;
        self.content_of(snap, ino, &entry, (at.tree, at.index), offset, size, out)?;
        Ok(ReadAt { snap, at, from_start: offset == 0 })
    }

    /// Notes where a reader is, for the files to push ahead of it.
    pub fn read_ahead(&self, read: ReadAt) {
        if read.from_start && self.readahead.load(std::sync::atomic::Ordering::Relaxed) {
            let order = || self.inode_order(read.snap, read.at.dir);
            self.streams.on_read(read.snap, read.at, &order);
        }
    }

    /// The files of directory `dir` by the inode numbers the kernel knows
    /// them by (or would), with their places; none for a directory too
    /// large to keep this for.
    fn inode_order(&self, snap: SnapshotId, dir: u64) -> Option<readahead::Order> {
        let NodeKind::Dir(dir) = self.node(dir).ok()? else { return None };
        let listing = self.listing(&dir).ok()?;
        if let Listing::Split(_, split) = &listing {
            if split.entry_count() > readahead::MAX_INODE_ORDER as u64 {
                return None;
            }
        }
        let mut order = readahead::InodeOrder::default();
        let mut keys: Vec<(u128, u32, u32)> = Vec::new();
        self.each_entry(&listing, 0, &mut |_, tree, index, e| {
            if order.trees.last() != Some(&tree) {
                order.trees.push(tree);
            }
            if matches!(e.node, Node::File { .. }) {
                keys.push((leaf_key(snap, e), order.trees.len() as u32 - 1, index as u32));
            }
            Ok(keys.len() > readahead::MAX_INODE_ORDER)
        })
        .ok()?;
        if keys.len() > readahead::MAX_INODE_ORDER {
            return None;
        }
        order.files.reserve(keys.len());
        // The table is locked in slices: other requests wait for it.
        for slice in keys.chunks(4096) {
            let inodes = self.inodes.lock();
            order.files.extend(slice.iter().map(|&(key, tree, index)| (inodes.peek(key), tree, index)));
        }
        order.files.sort_unstable();
        Some(Arc::new(order))
    }

    /// Starts pushing files into the kernel's page cache ahead of readers
    /// that go through directories in order. The thread ends with the
    /// filesystem.
    pub fn start_readahead(self: &Arc<Self>, push: readahead::Push) -> std::io::Result<()> {
        let fs = Arc::downgrade(self);
        std::thread::Builder::new().name("chkfs-readahead".into()).spawn(move || {
            let mut buf = Vec::new();
            while let Some(fs) = fs.upgrade() {
                if let Some(job) = fs.streams.next(Duration::from_secs(1)) {
                    fs.push_file(job, &*push, &mut buf);
                }
            }
        })?;
        self.readahead.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn push_file(&self, job: readahead::Job, push: &dyn Fn(u64, &[u8]) -> bool, buf: &mut Vec<u8>) {
        let Ok(tree) = self.tree(job.tree) else { return };
        let Some(e) = tree.entries.get(job.index as usize) else { return };
        // The names of a hard-link group share one inode, whose bytes are
        // those of the name it was looked up by: a name read ahead might
        // disagree with it (a damaged group), so groups are left alone.
        let small_file = matches!(e.node, Node::File { .. }) && e.size > 0 && e.size <= readahead::MAX_FILE;
        if !small_file || e.hard_link.is_some() {
            return;
        }
        // Only inodes the kernel holds can take pages.
        let Some(ino) = self.inodes.lock().find(leaf_key(job.snap, e)) else { return };
        let at = (job.tree, job.index);
        if self.content_of(job.snap, ino, e, at, 0, e.size as u32, buf).is_ok() && push(ino, buf) {
            stats::bump(&self.counters.pushed);
        }
    }

    /// The bytes of `[offset, offset + size)` of file `ino`, whose entry
    /// is at hand, into `out`.
    #[allow(clippy::too_many_arguments)]
    fn content_of(
        &self,
        snap: SnapshotId,
        ino: u64,
        entry: &Entry,
        at: (BlobId, u32),
        offset: u64,
        size: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), FsError> {
        out.clear();
        self.links.check(snap, entry)?;
        let Node::File { content } = &entry.node else { return Err(FsError::Invalid) };
        let starts = self.extent_starts(at, content);
        let len = u64::from(size).min(entry.size.saturating_sub(offset));
        out.reserve(len as usize);
        let pieces = content::pieces(content, &starts, offset, len);
        if let Some(&(last, _, _)) = pieces.last() {
            self.fetch_ahead(at, content, last);
        }
        for (i, from, take) in pieces {
            match content[i] {
                Extent::Hole { .. } => out.resize(out.len() + take as usize, 0),
                Extent::Data { id, len } => {
                    let bytes = self.read_blob(BlobKind::Data, |r| r.read_chunk(id, len)).map_err(|e| {
                        eprintln!("chkfs mount: {}: {e}", self.origin(ino));
                        store_err(e)
                    })?;
                    let chunk = bytes.get(from as usize..(from + take) as usize).ok_or_else(|| {
                        FsError::Io(format!("{}: chunk {id} is shorter than recorded", self.origin(ino)))
                    })?;
                    out.extend_from_slice(chunk);
                }
            }
        }
        Ok(())
    }

    /// SEEK_DATA (`data`) or SEEK_HOLE from `offset`.
    pub fn seek(&self, ino: u64, offset: u64, data: bool) -> Result<u64, FsError> {
        let (_, entry, at) = self.file(ino)?;
        let Node::File { content } = &entry.node else { return Err(FsError::Invalid) };
        let starts = self.extent_starts((at.tree, at.index), content);
        content::seek(content, &starts, entry.size, offset, data)
    }

    // ----------------------------------------------------------------- misc

    /// (blocks, free blocks, files) in 4 KiB blocks: the repository's size
    /// as used space, the free space of the filesystem holding it as free.
    pub fn statfs(&self) -> StatFs {
        let index = self.reader.index();
        let used: u64 = index.packs().map(|(_, p)| p.size).sum();
        let free = self.repo.free_space().unwrap_or(0);
        // Inodes are made as they are looked at, never run out, and
        // cannot be created: "none free" would read as a full filesystem
        // to monitoring (`df -i` at 100%).
        let files = index.blob_count() as u64;
        StatFs {
            block_size: 4096,
            blocks: (used + free) / 4096,
            free_blocks: free / 4096,
            files: files.saturating_add(FREE_INODES),
            free_files: FREE_INODES,
        }
    }

    /// The counters as JSON (the value of `STATS_XATTR` on the root).
    pub fn stats(&self) -> Vec<u8> {
        let (trees_cached, tree_cache_bytes) = self.trees.usage();
        self.counters.to_json(&stats::Snapshot {
            trees_decoded: self.trees.decoded(),
            trees_cached,
            tree_cache_bytes,
            inodes: self.live_inodes(),
            index_bytes: self.reader.index().memory_size(),
            block_cache: self.reader.cache_usage(),
        })
    }

    /// Inodes the kernel currently holds references to.
    pub fn live_inodes(&self) -> usize {
        self.inodes.lock().count()
    }
}

pub struct StatFs {
    pub block_size: u32,
    pub blocks: u64,
    pub free_blocks: u64,
    /// Inodes in all, and free (see `statfs`).
    pub files: u64,
    pub free_files: u64,
}

/// The free inodes `statfs` reports.
const FREE_INODES: u64 = 1 << 32;

/// The top-level directories, in listing order.
const TOP_LEVEL: [(&[u8], NodeKind); 5] = [
    (b"snapshots", NodeKind::Snapshots),
    (b"by-time", NodeKind::ByTime),
    (b"by-path", NodeKind::ByPath),
    (b"changes", NodeKind::Changes),
    (b"history", NodeKind::History),
];

/// `ttl` of an entry of directory `parent`: in the views that follow the
/// snapshot list, a name may come or go whatever the node it names.
fn moving_names(parent: &NodeKind, ttl: Ttl) -> Ttl {
    match parent {
        NodeKind::View(_) | NodeKind::Changes => Ttl { entry: ttl.entry.min(SHORT), ..ttl },
        _ => ttl,
    }
}

fn snapshot_root(id: SnapshotId, snap: &crate::format::records::Snapshot) -> NodeKind {
    let xattrs = !snap.root.xattrs.is_empty();
    NodeKind::Dir(InSnapshot { snap: id, at: EntryAt::Held(Arc::new(snap.root.clone())), parent: SNAPSHOTS, xattrs })
}

fn fixed_ino(kind: &NodeKind) -> u64 {
    match kind {
        NodeKind::Root => ROOT,
        NodeKind::Snapshots => SNAPSHOTS,
        NodeKind::ByTime => BY_TIME,
        NodeKind::ByPath => BY_PATH,
        NodeKind::Changes => CHANGES,
        NodeKind::History => HISTORY,
        _ => unreachable!("only top-level nodes have fixed numbers"),
    }
}

/// The process's resident anonymous memory (RssAnon), in bytes.
fn anonymous_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib << 10)
}
