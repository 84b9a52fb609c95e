use thiserror::Error;

/// Why a sequence of bytes is not a valid chkfs object.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FormatError {
    #[error("object is truncated ({0} bytes)")]
    Truncated(usize),
    #[error("bad magic bytes: not a chkfs object")]
    BadMagic,
    #[error("object is a {found} where a {expected} was expected")]
    WrongKind { expected: String, found: &'static str },
    #[error("unknown object kind {0}")]
    UnknownKind(u8),
    #[error("format version {found} is not supported (this chkfs reads versions 1 to {supported})")]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error("checksum mismatch: the object is damaged")]
    Checksum,
    #[error("cannot decode {what}: {detail}")]
    Decode { what: &'static str, detail: String },
    #[error("invalid id {0:?}")]
    BadId(String),
    #[error("{0} does not authenticate: damaged, forged, or sealed with another key")]
    Unauthentic(&'static str),
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}
