//! The repository: storage backend, packs, index, snapshots, writer
//! markers.
//!
//! Everything above this layer talks to a [`Repository`], reads blobs
//! through a [`BlobReader`] and writes them through a [`BlobWriter`]; only
//! this layer knows how objects are named ([`keys`]), and only a
//! [`Backend`] touches storage.

pub mod backend;
pub mod cache;
mod condemned;
mod error;
mod fault;
pub mod index;
mod index_files;
mod keyring;
mod keys;
pub mod local;
mod location;
mod machine;
pub mod memory;
pub mod reader;
mod record_cache;
mod records;
mod repo;
#[cfg(feature = "s3")]
pub mod s3;
pub mod table_cache;
mod temp_file;
pub mod writer;
pub mod writers;

pub use backend::{Backend, Listed};
pub use condemned::{Condemned, CondemnedLists};
pub use error::{kind_name, StoreError};
pub use index::Index;
pub use index_files::LoadedIndex;
pub use keyring::{KdfCost, KeyInfo, NoPassword, PasswordSource};
pub use local::LocalBackend;
pub use location::Location;
pub use reader::{BlobReader, PackRuns};
pub use records::{DamageLists, SnapshotEntry, MAX_SNAPSHOT_RECORD};
pub use repo::Repository;
pub use writer::{BlobWriter, BlockBuilder, WriteSummary};
pub use writers::{WriterInfo, WriterSession};
