//! `chkfs forget`: drop snapshot records, by id or by retention policy.
//! Only records go; `chkfs gc` reclaims the space they alone used.

pub mod policy;

use crate::format::SnapshotId;
use crate::store::{Repository, StoreError, WriteLock};
pub use policy::{apply, parse_duration, Candidate, Decision, Policy};

/// Candidates for a policy: every snapshot of the repository.
pub fn candidates(repo: &Repository) -> Result<Vec<Candidate>, StoreError> {
    Ok(repo
        .readable_snapshots()?
        .into_iter()
        .map(|s| Candidate { id: s.id, time: s.snapshot.time, host: s.snapshot.host, path: s.snapshot.path })
        .collect())
}

/// Deletes the records of `ids`. The caller holds the write lock.
pub fn remove(repo: &Repository, _lock: &WriteLock, ids: &[SnapshotId]) -> Result<(), StoreError> {
    for id in ids {
        repo.backend().delete(&format!("snapshots/{}.snap", id.to_hex()))?;
    }
    Ok(())
}
