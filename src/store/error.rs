use crate::format::pack::BlobKind;
use crate::format::{BlobId, FormatError, PackId};
use thiserror::Error;

/// Why a repository operation failed. Each message is complete on its own:
/// no variant also reports its cause as a `source`, so a chain of errors
/// printed with `{:#}` never says the same thing twice.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{what}: {err}")]
    Io { what: String, err: std::io::Error },
    #[error("{what} is missing")]
    Missing { what: String },
    #[error("{what} is damaged: {err}")]
    Format { what: String, err: FormatError },
    #[error("{what} was written by a newer chkfs (format version {found}; this one reads versions 1 to {supported})")]
    NewerFormat { what: String, found: u8, supported: u8 },
    #[error("{0} is not a chkfs repository (create one with `chkfs init {0}`)")]
    NotARepository(String),
    #[error("{0} already exists and is not empty")]
    AlreadyExists(String),
    #[error("{} {id} is missing from the repository", kind_name(*kind))]
    MissingBlob { kind: BlobKind, id: BlobId },
    #[error("{} {id} in pack {pack} is damaged: {reason}", kind_name(*kind))]
    DamagedBlob { kind: BlobKind, id: BlobId, pack: PackId, reason: String },
    /// A tree that contradicts what it refers to (a chunk's length, a
    /// hard-link group whose names disagree).
    #[error("{what}: {reason}")]
    Inconsistent { what: String, reason: String },
    #[error(
        "an object of {0} bytes is too large to store (a directory's files together are limited to about 800 GiB)"
    )]
    TooLarge(u64),
    #[error("repository {0} is busy: its index files were replaced again and again while being read; try again")]
    Busy(String),
    /// A writer suspended (or cut off from storage) for so long that gcs
    /// may have treated it as dead.
    #[error("this writer went {silent_secs} s without refreshing its marker (its lease is {lease_secs} s{}): a gc may have removed data it relies on, so it stops here; run it again (what it stored is reused)", why.as_ref().map(|w| format!("; last failure: {w}")).unwrap_or_default())]
    Lapsed { silent_secs: u64, lease_secs: u64, why: Option<String> },
    /// A repository location or feature this chkfs does not handle.
    #[error("{0}")]
    Unsupported(String),
    #[error("no snapshot matches {0:?}")]
    SnapshotNotFound(String),
    #[error("snapshot prefix {prefix:?} is ambiguous: it matches {}", candidates.join(", "))]
    AmbiguousSnapshot { prefix: String, candidates: Vec<String> },
    #[error(
        "{0} is encrypted: give its password on the terminal, in CHKFS_PASSWORD_FILE or through CHKFS_PASSWORD_COMMAND"
    )]
    PasswordNeeded(String),
    #[error("wrong password: no key file of {0} opens with it")]
    WrongPassword(String),
    /// The password could not be had (its file, its command, the terminal).
    #[error("{0}")]
    Password(String),
    #[error("fault injected by the test backend ({0})")]
    Injected(String),
    /// What went wrong with a part of a split tree, naming the part.
    #[error("part {part} of split tree {split}: {err}")]
    InPart { split: BlobId, part: BlobId, err: Box<StoreError> },
}

pub fn kind_name(kind: BlobKind) -> &'static str {
    match kind {
        BlobKind::Data => "chunk",
        BlobKind::Tree => "tree",
    }
}

impl StoreError {
    pub(crate) fn io(what: impl std::fmt::Display, err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::NotFound {
            return StoreError::Missing { what: what.to_string() };
        }
        StoreError::Io { what: what.to_string(), err }
    }

    /// A decoding failure of `what`; an unsupported format version is not
    /// damage but a newer writer, and says so.
    pub(crate) fn format(what: impl std::fmt::Display, err: FormatError) -> Self {
        match err {
            FormatError::UnsupportedVersion { found, supported } if found > supported => {
                StoreError::NewerFormat { what: what.to_string(), found, supported }
            }
            err => StoreError::Format { what: what.to_string(), err },
        }
    }

    /// True when the error means data in the repository is damaged or
    /// missing (as opposed to the machine failing us).
    pub fn is_damage(&self) -> bool {
        match self {
            StoreError::InPart { err, .. } => err.is_damage(),
            other => matches!(
                other,
                StoreError::Format { .. }
                    | StoreError::MissingBlob { .. }
                    | StoreError::DamagedBlob { .. }
                    | StoreError::Inconsistent { .. }
            ),
        }
    }

    /// The tree blob the error is about when it is a part of the split
    /// tree that was asked for.
    pub fn part(&self) -> Option<BlobId> {
        match self {
            StoreError::InPart { part, .. } => Some(*part),
            _ => None,
        }
    }

    /// The same error again, for when several threads must report one
    /// failure (an I/O error keeps its errno).
    pub fn duplicate(&self) -> StoreError {
        use StoreError::*;
        let io = |e: &std::io::Error| match e.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(e.kind(), e.to_string()),
        };
        match self {
            Io { what, err } => Io { what: what.clone(), err: io(err) },
            Missing { what } => Missing { what: what.clone() },
            Format { what, err } => Format { what: what.clone(), err: err.clone() },
            NewerFormat { what, found, supported } => {
                NewerFormat { what: what.clone(), found: *found, supported: *supported }
            }
            NotARepository(s) => NotARepository(s.clone()),
            AlreadyExists(s) => AlreadyExists(s.clone()),
            MissingBlob { kind, id } => MissingBlob { kind: *kind, id: *id },
            DamagedBlob { kind, id, pack, reason } => {
                DamagedBlob { kind: *kind, id: *id, pack: *pack, reason: reason.clone() }
            }
            Inconsistent { what, reason } => Inconsistent { what: what.clone(), reason: reason.clone() },
            TooLarge(n) => TooLarge(*n),
            Busy(s) => Busy(s.clone()),
            Lapsed { silent_secs, lease_secs, why } => {
                Lapsed { silent_secs: *silent_secs, lease_secs: *lease_secs, why: why.clone() }
            }
            SnapshotNotFound(s) => SnapshotNotFound(s.clone()),
            Unsupported(s) => Unsupported(s.clone()),
            AmbiguousSnapshot { prefix, candidates } => {
                AmbiguousSnapshot { prefix: prefix.clone(), candidates: candidates.clone() }
            }
            Injected(s) => Injected(s.clone()),
            PasswordNeeded(s) => PasswordNeeded(s.clone()),
            WrongPassword(s) => WrongPassword(s.clone()),
            Password(s) => Password(s.clone()),
            InPart { split, part, err } => InPart { split: *split, part: *part, err: Box::new(err.duplicate()) },
        }
    }

    /// What is wrong, without naming the object (for reports that name it
    /// already).
    pub fn detail(&self) -> String {
        match self {
            StoreError::Format { err, .. } => err.to_string(),
            StoreError::MissingBlob { .. } | StoreError::Missing { .. } => "missing from the repository".into(),
            StoreError::DamagedBlob { pack, reason, .. } => format!("in pack {pack}: {reason}"),
            StoreError::Inconsistent { reason, .. } => reason.clone(),
            StoreError::InPart { err, .. } => err.detail(),
            other => other.to_string(),
        }
    }

    /// True when an object was not found (it may have been deleted by a
    /// concurrent gc or forget after it was listed).
    pub fn is_missing(&self) -> bool {
        matches!(self, StoreError::Missing { .. })
    }
}
