//! Hard-link groups as the mount sees them. All names of a group share one
//! inode, served from whichever name the kernel looked up first, so the
//! names must agree on what the file holds. A damaged or forged tree whose
//! names disagree would otherwise serve one name's bytes under another's:
//! the second name that disagrees makes the group damaged, and the mount
//! answers EIO for it, as it does for a damaged chunk.

use super::FsError;
use crate::format::tree::Entry;
use crate::format::SnapshotId;
use crate::text::escape_bytes;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use xxhash_rust::xxh3::xxh3_64;

type Group = (SnapshotId, u64);

#[derive(Default)]
pub struct LinkGroups {
    /// What the first name seen of each group holds.
    seen: Mutex<HashMap<Group, u64>>,
    bad: Mutex<HashSet<Group>>,
}

fn content_sum(e: &Entry) -> u64 {
    let mut what = bitcode::encode(&e.node);
    what.extend_from_slice(&e.size.to_le_bytes());
    xxh3_64(&what)
}

impl LinkGroups {
    /// Admits a name of a hard-link group; a name that disagrees with the
    /// group makes it damaged.
    pub fn admit(&self, snap: SnapshotId, e: &Entry) -> Result<(), FsError> {
        let Some(link) = e.hard_link else { return Ok(()) };
        let group = (snap, link.group);
        let sum = content_sum(e);
        let first = *self.seen.lock().entry(group).or_insert(sum);
        if first != sum {
            self.bad.lock().insert(group);
        }
        self.check(snap, e)
    }

    /// EIO for every name of a damaged group.
    pub fn check(&self, snap: SnapshotId, e: &Entry) -> Result<(), FsError> {
        match e.hard_link {
            Some(link) if self.bad.lock().contains(&(snap, link.group)) => Err(FsError::Io(format!(
                "{snap}: {}: the names of its hard-link group disagree on what the file holds",
                escape_bytes(&e.name)
            ))),
            _ => Ok(()),
        }
    }
}
