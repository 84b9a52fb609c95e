//! `chkfs tag`: changing the tags of snapshots. A record is never changed
//! in place: the new one is written, as a writer's work (so that a gc
//! running meanwhile keeps what it refers to), before the old one is
//! deleted, and gets a new id.

use crate::format::records::Snapshot;
use crate::format::SnapshotId;
use crate::store::writers::SAVE_LEASE;
use crate::store::{Repository, StoreError};

/// How the tags change: `set` replaces them all, then `add` and `remove`
/// apply.
#[derive(Debug, Default, Clone)]
pub struct TagChange {
    pub set: Option<Vec<String>>,
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

impl TagChange {
    /// The tags `current` becomes: sorted, each once.
    pub fn apply(&self, current: &[String]) -> Vec<String> {
        let mut tags = self.set.clone().unwrap_or_else(|| current.to_vec());
        tags.extend(self.add.iter().cloned());
        tags.retain(|t| !self.remove.contains(t));
        tags.sort();
        tags.dedup();
        tags
    }
}

/// What became of one snapshot: its old id, its new one (None when its
/// tags were already so), and its tags now.
#[derive(Debug)]
pub struct Retagged {
    pub old: SnapshotId,
    pub new: Option<SnapshotId>,
    pub tags: Vec<String>,
}

/// Changes the tags of the snapshots `ids`.
pub fn retag(repo: &Repository, ids: &[SnapshotId], change: &TagChange) -> Result<Vec<Retagged>, StoreError> {
    let mut once = ids.to_vec();
    once.sort();
    once.dedup();
    let session = repo.begin_writing("tag", SAVE_LEASE)?;
    let mut done = Vec::with_capacity(once.len());
    for old in once {
        let Some(mut snapshot): Option<Snapshot> = repo.read_snapshot(old)? else {
            return Err(StoreError::SnapshotNotFound(old.to_hex()));
        };
        let tags = change.apply(&snapshot.tags);
        if tags == snapshot.tags {
            done.push(Retagged { old, new: None, tags });
            continue;
        }
        if let Some(why) = crate::format::records::invalid_tags(&tags) {
            return Err(StoreError::Inconsistent { what: format!("snapshot {old}"), reason: why.into() });
        }
        snapshot.tags = tags.clone();
        let new = repo.commit_snapshot(&session, &mut snapshot, |_, _| {})?;
        // Another command retagged or forgot it meanwhile: ours would be
        // a second copy, or bring it back.
        if repo.read_snapshot(old)?.is_none() {
            repo.delete_snapshots(&[new])?;
            return Err(StoreError::Inconsistent {
                what: format!("snapshot {old}"),
                reason: "another command changed or forgot it meanwhile; nothing was changed, try again".into(),
            });
        }
        repo.delete_snapshots(&[old])?;
        done.push(Retagged { old, new: Some(new), tags });
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_then_add_then_remove_sorted_once() {
        let s = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        let change = TagChange { set: None, add: s(&["b", "a", "b"]), remove: s(&["c"]) };
        assert_eq!(change.apply(&s(&["c", "d"])), s(&["a", "b", "d"]));
        let change = TagChange { set: Some(s(&["x"])), add: s(&["y"]), remove: s(&["x"]) };
        assert_eq!(change.apply(&s(&["c"])), s(&["y"]));
        assert_eq!(TagChange::default().apply(&s(&["z", "a"])), s(&["a", "z"]));
    }
}
