//! The storage seam: everything the repository needs from where its
//! objects live, so that a local directory, an object store and the
//! fault-injecting test backend are interchangeable.
//!
//! Keys are relative, '/'-separated names built by [`super::keys`]. Objects
//! are immutable: there is no overwrite. Durability is explicit: a write or
//! delete is atomic and visible when it returns, but only durable (it
//! survives a power loss) once a later [`Backend::sync`] has returned. The
//! repository calls `sync` before it writes anything that refers to what
//! it wrote before, so a crash at any point leaves a valid repository;
//! the test backend in [`super::memory`] checks exactly that.

use super::StoreError;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// An object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    /// When the storage created it, by the storage's clock: the one clock
    /// every host writing into a repository shares.
    pub modified: SystemTime,
}

pub trait Backend: Send + Sync {
    /// Where the repository is, for messages.
    fn location(&self) -> String;

    /// The local directory holding the repository, when it is one.
    fn local_root(&self) -> Option<&Path> {
        None
    }

    /// Makes an empty repository's directories; fails with `AlreadyExists`
    /// when the location holds anything.
    fn create(&self) -> Result<(), StoreError>;

    /// Every object under `dir`, recursively, sorted by key. An object
    /// deleted while the listing runs may or may not be listed; one whose
    /// write returned before the listing began is listed.
    fn list(&self, dir: &str) -> Result<Vec<Listed>, StoreError>;

    /// A whole object; one larger than `max_len` is an error, and no
    /// memory is allocated for it.
    fn read(&self, key: &str, max_len: u64) -> Result<Vec<u8>, StoreError>;

    /// Exactly `len` bytes at `offset`. A range beyond the object's end is
    /// an error (damage), found before any memory is allocated for it.
    fn read_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>, StoreError>;

    /// Writes atomically; returns false (writing nothing) when the object
    /// already exists. Durable after the next `sync`.
    fn write_if_absent(&self, key: &str, data: &[u8]) -> Result<bool, StoreError>;

    /// Deletes an object (a missing one is not an error). Durable after
    /// the next `sync`.
    fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Makes every write and delete that returned before this call durable.
    fn sync(&self) -> Result<(), StoreError>;

    /// Removes what interrupted writers left behind (temporary files) that
    /// is older than `age`: a younger one may belong to a running writer.
    fn remove_stale_temps(&self, _age: Duration) -> Result<usize, StoreError> {
        Ok(0)
    }

    /// How many packs are best written at once: a local disk gains little
    /// from more than two, an object store needs several requests in
    /// flight to fill its bandwidth.
    fn parallel_writes(&self) -> usize {
        2
    }

    /// True when listing every pack costs little (a local directory); an
    /// object store lists a thousand keys per request, so readers there
    /// leave finding unindexed packs to gc and check.
    fn lists_cheaply(&self) -> bool {
        true
    }

    /// A hint that `key` will be read soon: a remote store's cache may
    /// start fetching it. Nothing for a local one.
    fn prefetch(&self, _key: &str) {}

    /// Free space where the repository lives, when that is known.
    fn free_space(&self) -> Option<u64> {
        None
    }
}
