//! The repository: storage backend, packs, index, snapshots, locks.
//!
//! Everything above this layer talks to a [`Repository`], reads blobs
//! through a [`BlobReader`] and writes them through a [`BlobWriter`]; only
//! this layer knows how objects are named ([`keys`]), and only a
//! [`Backend`] touches storage.

pub mod backend;
mod error;
mod fault;
pub mod index;
mod index_files;
mod keys;
pub mod local;
pub mod memory;
pub mod reader;
mod records;
mod repo;
mod temp_file;
pub mod writer;

pub use backend::{Backend, LockGuard};
pub use error::{kind_name, StoreError};
pub use index::Index;
pub use index_files::LoadedIndex;
pub use local::LocalBackend;
pub use reader::BlobReader;
pub use records::{DamageLists, SnapshotEntry, MAX_SNAPSHOT_RECORD};
pub use repo::Repository;
pub use writer::{BlobWriter, BlockBuilder, WriteSummary};
