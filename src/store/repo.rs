//! A repository: its config, and every object reached through the
//! [`Backend`] by the keys of [`super::keys`]. Index files, snapshot
//! records and damage lists have their own files; this one holds opening,
//! creating, locking and the packs.

use super::backend::Backend;
use super::cache::{self, cache_dir, CachedBackend};
use super::local::LocalBackend;
use super::Location;
use super::{keys, StoreError};
use crate::chunking::ChunkSizes;
use crate::format::pack::{check_header, decode_footer, footer_location, HEADER_LEN, TRAILER_LEN};
use crate::format::records::Timestamp;
use crate::format::records::{decode_config, encode_config, ChunkerParams, Config, IndexedPack, HASH_SECRET_LEN};
use crate::format::{BlobId, FormatError, PackId};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use xxhash_rust::xxh3::{xxh3_128, xxh3_128_with_secret_input, SecretInput};

/// The largest config a repository may have.
const MAX_CONFIG: u64 = 64 << 10;

pub struct Repository {
    backend: Arc<dyn Backend>,
    config: Config,
    secret: SecretInput<Vec<u8>>,
}

impl Repository {
    /// Creates a new, empty repository in `backend` (which must be empty).
    pub fn init(backend: Arc<dyn Backend>, sizes: ChunkSizes) -> Result<Repository, StoreError> {
        backend.create()?;
        let config = Config {
            repo_id: u128::from_le_bytes(random_bytes::<16>()?),
            hash_secret: random_vec(HASH_SECRET_LEN)?,
            chunker: ChunkerParams {
                min_size: sizes.min as u32,
                avg_size: sizes.avg as u32,
                max_size: sizes.max as u32,
            },
            created: Timestamp::now(),
        };
        let bytes = encode_config(&config).map_err(|e| StoreError::format(keys::CONFIG, e))?;
        if !backend.write_if_absent(keys::CONFIG, &bytes)? {
            return Err(StoreError::AlreadyExists(backend.location()));
        }
        backend.sync()?;
        Self::open(backend)
    }

    pub fn open(backend: Arc<dyn Backend>) -> Result<Repository, StoreError> {
        let bytes = match backend.read(keys::CONFIG, MAX_CONFIG) {
            Ok(b) => b,
            Err(e) if e.is_missing() => return Err(StoreError::NotARepository(backend.location())),
            Err(e) => return Err(e),
        };
        let what = format!("{}/config", backend.location());
        let config = decode_config(&bytes).map_err(|e| StoreError::format(&what, e))?;
        let secret = SecretInput::try_new(config.hash_secret.clone()).ok_or_else(|| {
            StoreError::format(&what, FormatError::Invalid { what: "config", detail: "unusable secret".into() })
        })?;
        Ok(Repository { backend, config, secret })
    }

    /// The repository at `location`; a remote one reads through the local
    /// cache of its index files and packs ([`super::cache`]).
    pub fn open_at(location: &Location) -> Result<Repository, StoreError> {
        let repo = Self::open(location.backend()?)?;
        Ok(repo.with_cache(location))
    }

    /// The repository at `location`, every read from storage itself (what
    /// `check --read-data` verifies is what the store holds, not a copy).
    pub fn open_at_uncached(location: &Location) -> Result<Repository, StoreError> {
        Self::open(location.backend()?)
    }

    /// Creates a repository at `location`.
    pub fn init_at(location: &Location, sizes: ChunkSizes) -> Result<Repository, StoreError> {
        let repo = Self::init(location.backend()?, sizes)?;
        Ok(repo.with_cache(location))
    }

    fn with_cache(mut self, location: &Location) -> Repository {
        if !location.is_remote() {
            return self;
        }
        let Some(dir) = cache_dir(self.config.repo_id) else { return self };
        match CachedBackend::new(self.backend.clone(), dir, cache::DEFAULT_LIMIT) {
            Ok(cached) => self.backend = Arc::new(cached),
            Err(e) => eprintln!("chkfs: warning: no local cache ({e}); every read goes to {}", self.location()),
        }
        self
    }

    /// A repository in a local directory.
    pub fn open_local(root: &Path) -> Result<Repository, StoreError> {
        Self::open(Arc::new(LocalBackend::new(&absolute(root)?)))
    }

    pub fn init_local(root: &Path, sizes: ChunkSizes) -> Result<Repository, StoreError> {
        Self::init(Arc::new(LocalBackend::new(&absolute(root)?)), sizes)
    }

    /// Where the repository is, for messages.
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// The local directory holding the repository, when it is one.
    pub fn local_root(&self) -> Option<&Path> {
        self.backend.local_root()
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// True when listing every pack is cheap (see [`Backend::lists_cheaply`]).
    pub fn lists_cheaply(&self) -> bool {
        self.backend.lists_cheaply()
    }

    pub fn free_space(&self) -> Option<u64> {
        self.backend.free_space()
    }

    pub fn chunk_sizes(&self) -> ChunkSizes {
        let c = &self.config.chunker;
        ChunkSizes { min: c.min_size as usize, avg: c.avg_size as usize, max: c.max_size as usize }
    }

    /// True when `other` names blobs as this repository does (both were
    /// created with the same secret).
    pub fn same_blob_ids(&self, other: &Repository) -> bool {
        self.config.hash_secret == other.config.hash_secret
    }

    /// The keyed content hash that names blobs.
    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        BlobId(xxh3_128_with_secret_input(data, &self.secret))
    }

    /// Makes everything written or deleted so far durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.backend.sync()
    }

    /// Removes temporary files left by interrupted writers, those older
    /// than `age` (a younger one may be a running writer's).
    pub fn remove_stale_temps(&self, age: Duration) -> Result<usize, StoreError> {
        self.backend.remove_stale_temps(age)
    }

    pub(crate) fn shared_backend(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }

    // ---------------------------------------------------------------- packs

    /// Every pack in storage, with its size.
    pub fn list_packs(&self) -> Result<Vec<(PackId, u64)>, StoreError> {
        Ok(self.backend.list(keys::PACKS)?.iter().filter_map(|l| Some((keys::parse_pack(&l.key)?, l.size))).collect())
    }

    /// A hint that pack `id` will be read soon (see [`Backend::prefetch`]).
    pub fn prefetch_pack(&self, id: PackId) {
        self.backend.prefetch(&keys::pack(id));
    }

    pub fn read_pack_range(&self, id: PackId, offset: u64, len: usize) -> Result<Vec<u8>, StoreError> {
        self.backend.read_range(&keys::pack(id), offset, len)
    }

    /// Stores a pack; false when a pack of that name exists. Durable after
    /// the next `sync`.
    pub fn write_pack(&self, id: PackId, bytes: &[u8]) -> Result<bool, StoreError> {
        self.backend.write_if_absent(&keys::pack(id), bytes)
    }

    pub fn delete_pack(&self, id: PackId) -> Result<(), StoreError> {
        self.backend.delete(&keys::pack(id))
    }

    /// An object in an envelope of `kind`, at most `max` bytes: its header
    /// is read and checked first, so a file that is not such an object (or
    /// claims an impossible length) costs 20 bytes of reading, whatever its
    /// size. An object named by the hash of its bytes (index files, damage
    /// lists) must match its name: a flipped version byte is damage, not a
    /// newer format, and only an intact object of a newer version stops
    /// the command.
    pub(crate) fn read_enveloped(
        &self,
        key: &str,
        kind: crate::format::ObjectKind,
        max: u64,
        named_by_hash: Option<PackId>,
    ) -> Result<Vec<u8>, StoreError> {
        use crate::format::{envelope_header, ENVELOPE_LEN};
        let head = self.backend.read_range(key, 0, ENVELOPE_LEN)?;
        let matches_name = |bytes: &[u8]| named_by_hash.is_none_or(|n| PackId(xxh3_128(bytes)) == n);
        let not_its_name = || {
            let detail = "its bytes do not match its name (the hash of its content)".into();
            StoreError::format(key, FormatError::Invalid { what: "object", detail })
        };
        match envelope_header(kind, &head) {
            Ok(len) => {
                let total = len + ENVELOPE_LEN as u64;
                if total > max {
                    let detail = format!("it claims {total} bytes, more than such an object can hold ({max})");
                    return Err(StoreError::format(key, FormatError::Invalid { what: "object", detail }));
                }
                let bytes = self.backend.read(key, total)?;
                if !matches_name(&bytes) {
                    return Err(not_its_name());
                }
                Ok(bytes)
            }
            Err(e @ FormatError::UnsupportedVersion { .. }) if named_by_hash.is_some() => {
                let bytes = self.backend.read(key, max)?;
                if !matches_name(&bytes) {
                    return Err(not_its_name());
                }
                Err(StoreError::format(key, e))
            }
            Err(e) => Err(StoreError::format(key, e)),
        }
    }

    /// Bytes of packs, index files and damage lists.
    pub fn stored_bytes(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for dir in [keys::PACKS, keys::INDEX, keys::DAMAGED] {
            total += self.backend.list(dir)?.iter().map(|l| l.size).sum::<u64>();
        }
        Ok(total)
    }

    /// Reads a pack's own footer (header, trailer and footer only).
    pub fn read_pack_footer(&self, id: PackId, size: u64) -> Result<IndexedPack, StoreError> {
        let what = format!("pack {id}");
        if size < (HEADER_LEN + TRAILER_LEN) as u64 {
            return Err(StoreError::format(&what, FormatError::Truncated(size as usize)));
        }
        let header = self.read_pack_range(id, 0, HEADER_LEN)?;
        check_header(&header).map_err(|e| StoreError::format(&what, e))?;
        let trailer = self.read_pack_range(id, size - TRAILER_LEN as u64, TRAILER_LEN)?;
        let (start, len) = footer_location(&trailer, size).map_err(|e| StoreError::format(&what, e))?;
        let bytes = self.read_pack_range(id, start, len)?;
        let footer = decode_footer(&bytes, start).map_err(|e| StoreError::format(&what, e))?;
        Ok(IndexedPack { id, size, blocks: footer.blocks })
    }
}

fn absolute(root: &Path) -> Result<std::path::PathBuf, StoreError> {
    std::path::absolute(root).map_err(|e| StoreError::io(crate::text::escape_path(root), e))
}

pub(crate) fn random_vec(n: usize) -> Result<Vec<u8>, StoreError> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| StoreError::io("/dev/urandom", e))?;
    Ok(buf)
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let v = random_vec(N)?;
    Ok(v.try_into().expect("length N"))
}
