use thiserror::Error;

/// A filesystem error, carrying the errno the kernel gets.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotDir,
    #[error("read-only filesystem")]
    ReadOnly,
    #[error("no such attribute")]
    NoAttr,
    #[error("operation not supported")]
    Unsupported,
    #[error("buffer too small")]
    Range,
    #[error("no data or hole past the offset")]
    NoSeek,
    #[error("invalid argument")]
    Invalid,
    /// Damage or an I/O failure: the message names what failed.
    #[error("{0}")]
    Io(String),
}

impl FsError {
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::NotDir => libc::ENOTDIR,
            FsError::ReadOnly => libc::EROFS,
            FsError::NoAttr => libc::ENODATA,
            FsError::Unsupported => libc::EOPNOTSUPP,
            FsError::Range => libc::ERANGE,
            FsError::NoSeek => libc::ENXIO,
            FsError::Invalid => libc::EINVAL,
            FsError::Io(_) => libc::EIO,
        }
    }
}
