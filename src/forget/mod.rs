//! `chkfs forget`: drop snapshot records, by id or by retention policy.
//! Only records go; `chkfs gc` reclaims the space they alone used.

pub mod policy;

use crate::format::SnapshotId;
use crate::store::{Repository, StoreError};
pub use policy::{apply, parse_duration, Candidate, Decision, Policy};

/// Candidates for a policy: every snapshot of the repository that can be
/// read; the others are reported to `on_damaged`.
pub fn candidates(
    repo: &Repository,
    on_damaged: &mut dyn FnMut(SnapshotId, StoreError),
) -> Result<Vec<Candidate>, StoreError> {
    Ok(repo
        .readable_snapshots_from_storage(on_damaged)?
        .into_iter()
        .map(|s| Candidate {
            id: s.id,
            time: s.snapshot.time,
            host: s.snapshot.host,
            path: s.snapshot.path,
            tags: s.snapshot.tags,
        })
        .collect())
}

/// Deletes the records of `ids`, durably. No lock: a save that chose one
/// of them as its parent still finds its trees until a gc, and a gc keeps
/// them while that save runs (FORMAT.md, "Many writers").
pub fn remove(repo: &Repository, ids: &[SnapshotId]) -> Result<(), StoreError> {
    repo.delete_snapshots(ids)
}
