use crate::format::{BlobId, FormatError, PackId};
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is damaged: {source}")]
    Format {
        what: String,
        #[source]
        source: FormatError,
    },
    #[error("{0} is not a chkfs repository (create one with `chkfs init {0}`)")]
    NotARepository(PathBuf),
    #[error("{0} already exists and is not empty")]
    AlreadyExists(PathBuf),
    #[error("blob {0} is missing from the repository")]
    MissingBlob(BlobId),
    #[error("blob {id} in pack {pack} is damaged: {reason}")]
    DamagedBlob { id: BlobId, pack: PackId, reason: String },
    #[error(
        "an object of {0} bytes is too large to store (a directory's files together are limited to about 800 GiB)"
    )]
    TooLarge(u64),
    #[error("repository {0} is busy: another writer holds its lock")]
    Busy(PathBuf),
    #[error("no snapshot matches {0:?}")]
    SnapshotNotFound(String),
    #[error("snapshot prefix {prefix:?} is ambiguous: it matches {}", candidates.join(", "))]
    AmbiguousSnapshot { prefix: String, candidates: Vec<String> },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io { path: path.into(), source }
    }

    pub(crate) fn format(what: impl Into<String>, source: FormatError) -> Self {
        StoreError::Format { what: what.into(), source }
    }

    /// True when the error means data in the repository is damaged or
    /// missing (as opposed to the machine failing us).
    pub fn is_damage(&self) -> bool {
        matches!(self, StoreError::Format { .. } | StoreError::MissingBlob(_) | StoreError::DamagedBlob { .. })
    }
}
