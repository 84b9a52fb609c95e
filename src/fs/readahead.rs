//! Readahead across the files of a directory. The kernel reads ahead
//! within a file, but every small file read through a mount costs one
//! round trip to this process: `cat` of 20,000 small files spent most of
//! its time waiting for them. When the files of one directory are read in
//! listing order (`cp -r`, `tar`, `grep -r`, `find -exec cat`), the next
//! ones are pushed into the kernel's page cache ahead of the reader, by a
//! thread of their own, so the reader finds them there.
//!
//! Only small files the kernel already knows are pushed (an unknown inode
//! would be refused), a window that doubles while the reader keeps
//! following it and ends when it stops.
//!
//! A directory is followed by its inode; a large one is stored in parts
//! (a split tree): listing order is followed within a part (a reader
//! crossing into the next one starts a new window), inode order across
//! the whole directory.

use crate::format::{BlobId, SnapshotId};
use parking_lot::Mutex;

/// Files larger than this are left to the kernel's own readahead: one
/// round trip already brings much of them.
pub const MAX_FILE: u64 = 64 << 10;
const FIRST_WINDOW: u32 = 8;
/// At most this many files ahead of the reader (at most 16 MiB).
const MAX_WINDOW: u32 = 256;
/// A read this many entries past the last one still continues a stream:
/// entries in between may be subdirectories or files that were not
/// pushed.
const GAP: u32 = 16;
/// Directories followed at once (several readers, or a walk that returns
/// to a parent after a subdirectory).
const STREAMS: usize = 16;
/// Reads in a row with growing inode numbers before the inode order of a
/// directory is worked out.
const RISING: u32 = 3;
/// Directories with more files are followed in listing order only: their
/// inode order would hold 16 bytes per file.
pub const MAX_INODE_ORDER: usize = 1 << 18;
/// Directories whose inode order is kept at once (at most 8 MiB).
const MAX_ORDERS: usize = 2;

/// The files of a directory by inode number (`find`, `du` and everything
/// built on fts sort directories of more than 10,000 entries by inode
/// before visiting them; the other order followed is the listing's:
/// `tar`, `cp -r`, `grep -r`).
#[derive(Debug, Default)]
pub struct InodeOrder {
    /// The trees holding the directory's entries: one, or its parts.
    pub trees: Vec<BlobId>,
    /// (inode, tree number in `trees`, entry index there), by inode.
    pub files: Vec<(u64, u32, u32)>,
}

pub type Order = std::sync::Arc<InodeOrder>;

/// Stores a whole file's content in the kernel's page cache under an
/// inode number; true if the kernel took it.
pub type Push = Box<dyn Fn(u64, &[u8]) -> bool + Send>;

/// One file to push: entry `index` of tree `tree` of `snap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub snap: SnapshotId,
    pub tree: BlobId,
    pub index: u32,
}

/// A reader's progress along one order of a directory, in positions of
/// that order.
#[derive(Debug)]
struct Track {
    /// The last position read.
    last: u32,
    /// Push up to here.
    target: u32,
    /// The next position to push.
    next: u32,
    window: u32,
}

impl Track {
    fn restart(at: u32) -> Track {
        Track { last: at, target: at, next: at.saturating_add(1), window: 0 }
    }

    /// The reader read position `at`: true if it keeps following this
    /// order, and then the target moves ahead of it.
    fn read(&mut self, at: u32) -> bool {
        let follows = at > self.last && at <= self.last.max(self.target).saturating_add(GAP);
        if !follows {
            *self = Track::restart(at);
            return false;
        }
        self.last = at;
        self.window = (self.window * 2).clamp(FIRST_WINDOW, MAX_WINDOW);
        self.target = self.target.max(at.saturating_add(self.window));
        // What the reader has passed is not worth pushing any more.
        self.next = self.next.max(at.saturating_add(1));
        true
    }

    fn take(&mut self) -> Option<u32> {
        // At u32::MAX the track stops rather than wrapping to 0.
        (self.next <= self.target && self.next < u32::MAX).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
}

#[derive(Debug)]
struct Stream {
    snap: SnapshotId,
    /// The directory's inode.
    dir: u64,
    /// The tree of the last read (the directory's, or one of its parts).
    tree: BlobId,
    listing: Track,
    last_ino: u64,
    /// Reads in a row with growing inode numbers.
    rising: u32,
    by_inode: Option<(Order, Track)>,
    used: u64,
}

impl Stream {
    fn new(snap: SnapshotId, at: Read, used: u64) -> Stream {
        let Read { dir, tree, index, ino } = at;
        Stream { snap, dir, tree, listing: Track::restart(index), last_ino: ino, rising: 0, by_inode: None, used }
    }

    /// The next entry to push (its tree and index), from whichever order
    /// the reader follows.
    fn take(&mut self) -> Option<(BlobId, u32)> {
        if let Some(at) = self.listing.take() {
            return Some((self.tree, at));
        }
        let (order, track) = self.by_inode.as_mut()?;
        loop {
            let at = track.take()?;
            if let Some(&(_, tree, index)) = order.files.get(at as usize) {
                return order.trees.get(tree as usize).map(|&t| (t, index));
            }
        }
    }

    fn is(&self, snap: SnapshotId, dir: u64) -> bool {
        self.snap == snap && self.dir == dir
    }
}

/// A read from a file's start: entry `index` (inode `ino`) of tree `tree`
/// of the directory whose inode is `dir`.
#[derive(Debug, Clone, Copy)]
pub struct Read {
    pub dir: u64,
    pub tree: BlobId,
    pub index: u32,
    pub ino: u64,
}

/// Where readers are in which directories, and the files to push next.
#[derive(Default)]
pub struct Streams {
    state: Mutex<(Vec<Stream>, u64)>,
    work: parking_lot::Condvar,
}

impl Streams {
    /// A file of `snap` was read from its start. `inode_order` makes the
    /// directory's inode order when first needed, outside the lock (it
    /// hashes every entry: milliseconds for a large directory, while
    /// other readers go on).
    pub fn on_read(&self, snap: SnapshotId, at: Read, inode_order: &dyn Fn() -> Option<Order>) {
        let Some(previous) = self.note(snap, at) else { return };
        let Some(order) = inode_order() else { return };
        let mut guard = self.state.lock();
        let streams = &mut guard.0;
        if !streams.iter().any(|s| s.is(snap, at.dir) && s.by_inode.is_none()) {
            return;
        }
        // Only the most recently used directories keep an order.
        let mut held: Vec<&mut Stream> = streams.iter_mut().filter(|s| s.by_inode.is_some()).collect();
        held.sort_by_key(|s| std::cmp::Reverse(s.used));
        for s in held.into_iter().skip(MAX_ORDERS - 1) {
            s.by_inode = None;
        }
        let Some(s) = streams.iter_mut().find(|s| s.is(snap, at.dir)) else { return };
        // Started at the previous read, which this one follows.
        let mut track = Track::restart(position(&order, previous));
        if track.read(position(&order, at.ino)) {
            self.work.notify_one();
        }
        s.by_inode = Some((order, track));
    }

    /// Moves the reader along; returns the previous read's inode when the
    /// directory's inode order is wanted and not there yet.
    fn note(&self, snap: SnapshotId, at: Read) -> Option<u64> {
        let Read { dir, tree, index, ino } = at;
        let mut guard = self.state.lock();
        let (streams, clock) = &mut *guard;
        *clock += 1;
        let Some(s) = streams.iter_mut().find(|s| s.is(snap, dir)) else {
            let fresh = Stream::new(snap, at, *clock);
            if streams.len() < STREAMS {
                streams.push(fresh);
            } else if let Some(oldest) = streams.iter_mut().min_by_key(|s| s.used) {
                *oldest = fresh;
            }
            return None;
        };
        s.used = *clock;
        let previous = std::mem::replace(&mut s.last_ino, ino);
        s.rising = if ino > previous { s.rising.saturating_add(1) } else { 0 };
        let mut follows = if s.tree == tree {
            s.listing.read(index)
        } else {
            // Into another part: listing order starts again there.
            s.tree = tree;
            s.listing = Track::restart(index);
            false
        };
        if let Some((order, track)) = s.by_inode.as_mut() {
            follows |= track.read(position(order, ino));
        }
        if follows {
            self.work.notify_one();
        }
        (!follows && s.by_inode.is_none() && s.rising >= RISING).then_some(previous)
    }

    /// The next file to push, waiting up to `wait` for one.
    pub fn next(&self, wait: std::time::Duration) -> Option<Job> {
        let mut guard = self.state.lock();
        loop {
            let (streams, _) = &mut *guard;
            for s in streams.iter_mut() {
                if let Some((tree, index)) = s.take() {
                    return Some(Job { snap: s.snap, tree, index });
                }
            }
            if self.work.wait_for(&mut guard, wait).timed_out() {
                return None;
            }
        }
    }
}

fn position(order: &InodeOrder, ino: u64) -> u32 {
    order.files.partition_point(|&(i, _, _)| i < ino) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn id(n: u8) -> BlobId {
        BlobId(u128::from(n))
    }

    const SNAP: SnapshotId = SnapshotId(7);

    /// Entry i has inode 1000 - i: listing order and inode order disagree.
    fn reversed(tree: u8) -> Order {
        let files = (0..100u32).rev().map(|i| (1000 - u64::from(i), 0, i)).collect();
        Arc::new(InodeOrder { trees: vec![id(tree)], files })
    }

    /// A read in directory `tree`, stored whole as tree `tree`.
    fn read(s: &Streams, tree: u8, index: u32) {
        let at = Read { dir: u64::from(tree), tree: id(tree), index, ino: 1000 - u64::from(index) };
        s.on_read(SNAP, at, &|| Some(reversed(tree)));
    }

    /// Everything queued for pushing, in order.
    fn drain(s: &Streams) -> Vec<u32> {
        std::iter::from_fn(|| s.next(Duration::ZERO)).map(|j| j.index).collect()
    }

    #[test]
    fn a_reader_in_listing_order_gets_growing_windows_ahead_of_it() {
        let s = Streams::default();
        read(&s, 1, 0);
        assert_eq!(drain(&s), Vec::<u32>::new(), "one read is no stream yet");
        read(&s, 1, 1);
        assert_eq!(drain(&s), (2..=9).collect::<Vec<_>>());
        // The pushed files are read without a round trip; the next read
        // comes past the window.
        read(&s, 1, 10);
        assert_eq!(drain(&s), (11..=26).collect::<Vec<_>>());
    }

    #[test]
    fn what_the_reader_passed_is_not_pushed() {
        let s = Streams::default();
        read(&s, 1, 0);
        read(&s, 1, 1);
        assert_eq!(s.next(Duration::ZERO).unwrap().index, 2);
        // The reader overtook the pusher.
        read(&s, 1, 6);
        assert_eq!(drain(&s), (7..=22).collect::<Vec<_>>());
    }

    #[test]
    fn a_reader_in_inode_order_gets_files_in_inode_order() {
        let s = Streams::default();
        // Entries 50, 49, 48, 47: rising inode numbers.
        for i in [50, 49, 48] {
            read(&s, 1, i);
            assert_eq!(drain(&s), Vec::<u32>::new());
        }
        read(&s, 1, 47);
        assert_eq!(drain(&s), (39..=46).rev().collect::<Vec<u32>>());
    }

    #[test]
    fn only_the_latest_directories_keep_their_inode_order() {
        let s = Streams::default();
        for tree in 1..=3 {
            for i in [50, 49, 48, 47] {
                read(&s, tree, i);
            }
        }
        let held: Vec<u64> = s.state.lock().0.iter().filter(|s| s.by_inode.is_some()).map(|s| s.dir).collect();
        assert_eq!(held, vec![2, 3]);
    }

    #[test]
    fn a_directory_in_parts_is_followed_by_inode_across_its_parts() {
        let s = Streams::default();
        // Directory 9 in two parts, trees 1 and 2, their entries
        // interleaved by inode: 100 + 2i is entry i of the first part,
        // 101 + 2i entry i of the second.
        let files = (0..100u32).flat_map(|i| [(100 + 2 * u64::from(i), 0, i), (101 + 2 * u64::from(i), 1, i)]);
        let order = Arc::new(InodeOrder { trees: vec![id(1), id(2)], files: files.collect() });
        let read = |tree: u8, index: u32| {
            let ino = 100 + 2 * u64::from(index) + u64::from(tree - 1);
            s.on_read(SNAP, Read { dir: 9, tree: id(tree), index, ino }, &|| Some(order.clone()));
        };
        for (tree, i) in [(1, 0), (2, 0), (1, 1), (2, 1)] {
            read(tree, i);
        }
        let jobs: Vec<(BlobId, u32)> =
            std::iter::from_fn(|| s.next(Duration::ZERO)).map(|j| (j.tree, j.index)).collect();
        assert_eq!(jobs[..4], [(id(1), 2), (id(2), 2), (id(1), 3), (id(2), 3)]);
        assert_eq!(jobs.len(), 8);
    }

    #[test]
    fn random_reads_push_nothing() {
        let s = Streams::default();
        for i in [50u32, 3, 90, 7, 60, 20] {
            read(&s, 2, i);
        }
        // Reading the same file again is no progress either.
        read(&s, 3, 5);
        read(&s, 3, 5);
        assert_eq!(drain(&s), Vec::<u32>::new());
    }

    #[test]
    fn streams_in_several_directories_are_followed_apart() {
        let s = Streams::default();
        read(&s, 1, 0);
        read(&s, 2, 0);
        read(&s, 1, 1);
        read(&s, 2, 1);
        let jobs: Vec<Job> = std::iter::from_fn(|| s.next(Duration::ZERO)).collect();
        assert_eq!(jobs.iter().filter(|j| j.tree == id(1)).count(), 8);
        assert_eq!(jobs.iter().filter(|j| j.tree == id(2)).count(), 8);
        // Many other directories push the oldest out, never more.
        for t in 10..10 + STREAMS as u8 {
            read(&s, t, 0);
        }
        assert_eq!(s.state.lock().0.len(), STREAMS);
        read(&s, 1, 2);
        assert_eq!(drain(&s), Vec::<u32>::new(), "forgotten, starts again");
    }
}
