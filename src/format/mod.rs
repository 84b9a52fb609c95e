//! Pure encoding and decoding of everything chkfs keeps on disk.
//!
//! Nothing here touches the filesystem or imports another part of the crate:
//! the layers above hand bytes in and get values out (and the reverse).
//! Every object is versioned; see FORMAT.md for the byte layout.

mod envelope;
mod error;
pub mod id;
pub mod index_table;
pub mod keyfile;
pub mod pack;
pub mod records;
pub mod sealed;
pub mod tree;

pub use envelope::{
    envelope_header, open_envelope, open_envelope_of, seal_envelope, ObjectKind, ENVELOPE_LEN, MAX_OBJECT,
};
pub use error::FormatError;
pub use id::{BlobId, PackId, SnapshotId};

/// The newest on-disk format version this build reads and writes; it
/// reads every older one.
pub const FORMAT_VERSION: u8 = 5;
