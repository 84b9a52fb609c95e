//! The repository: storage backend, packs, index, snapshots, locks.
//!
//! Everything above this layer talks to a [`Repository`], reads blobs
//! through a [`BlobReader`] and writes them through a [`BlobWriter`]; only
//! [`backend`] touches files.

pub mod backend;
mod error;
mod fault;
pub mod index;
mod lock;
pub mod reader;
mod repo;
mod temp_file;
pub mod writer;

pub use backend::{Backend, LocalBackend};
pub use error::StoreError;
pub use index::Index;
pub use lock::WriteLock;
pub use reader::BlobReader;
pub use repo::{LoadedIndex, Repository, SnapshotEntry};
pub use writer::{BlobWriter, BlockBuilder, WriteSummary};
