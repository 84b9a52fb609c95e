//! A repository: its config, and every object reached through the
//! [`Backend`] by the keys of [`super::keys`]. Index files, snapshot
//! records and damage lists have their own files; this one holds opening,
//! creating, locking and the packs.

use super::backend::Backend;
use super::cache::{self, cache_dir, CachedBackend};
use super::keyring::{self, KdfCost, PasswordSource};
use super::local::LocalBackend;
use super::Location;
use super::{keys, StoreError};
use crate::chunking::ChunkSizes;
use crate::format::keyfile::{
    decode_encrypted_config, encode_encrypted_config, EncryptedConfig, MasterKeys, SCHEME_AES256GCM_ARGON2ID,
};
use crate::format::pack::BlobKind;
use crate::format::pack::{check_header, decode_footer, footer_location, HEADER_LEN, TRAILER_LEN};
use crate::format::records::Timestamp;
use crate::format::records::{decode_config, encode_config, ChunkerParams, Config, IndexedPack, HASH_SECRET_LEN};
use crate::format::sealed::Cipher;
use crate::format::{BlobId, FormatError, ObjectKind, PackId};
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
    /// An encrypted repository's keys, opened with a password.
    sealing: Option<Arc<Sealing>>,
}

/// What an opened key gives: the cipher every object and block is sealed
/// with, the keys themselves (to wrap them for another password) and the
/// key file they came from.
pub(crate) struct Sealing {
    pub cipher: Cipher,
    pub keys: MasterKeys,
    pub key_id: u128,
}

impl Repository {
    /// Creates a new, empty, unencrypted repository in `backend` (which
    /// must be empty).
    pub fn init(backend: Arc<dyn Backend>, sizes: ChunkSizes) -> Result<Repository, StoreError> {
        backend.create()?;
        let config = Config {
            repo_id: u128::from_le_bytes(random_bytes::<16>()?),
            hash_secret: random_vec(HASH_SECRET_LEN)?,
            chunker: chunker_params(sizes),
            created: Timestamp::now(),
        };
        let bytes = encode_config(&config).map_err(|e| StoreError::format(keys::CONFIG, e))?;
        write_config(&*backend, &bytes)?;
        Self::open(backend)
    }

    /// Creates a new, empty, encrypted repository in `backend`, with one
    /// key file that opens with `password`.
    pub fn init_encrypted(
        backend: Arc<dyn Backend>,
        sizes: ChunkSizes,
        password: &[u8],
        cost: KdfCost,
    ) -> Result<Repository, StoreError> {
        backend.create()?;
        if backend.read_range(keys::CONFIG, 0, 1).is_ok() {
            return Err(StoreError::AlreadyExists(backend.location()));
        }
        let config = EncryptedConfig {
            repo_id: u128::from_le_bytes(random_bytes::<16>()?),
            chunker: chunker_params(sizes),
            created: Timestamp::now(),
            scheme: SCHEME_AES256GCM_ARGON2ID,
        };
        let master =
            MasterKeys::generate(config.repo_id, config.chunker.clone()).map_err(|e| StoreError::format("keys", e))?;
        // The key file first: a config is what makes a repository, and it
        // must never exist without a key that opens it.
        let key_id = keyring::add_key_file(&*backend, &master, password, cost)?;
        let bytes = encode_encrypted_config(&config).map_err(|e| StoreError::format(keys::CONFIG, e))?;
        write_config(&*backend, &bytes)?;
        Self::with_keys(backend, config, master, key_id)
    }

    /// Opens an unencrypted repository (an encrypted one needs a password:
    /// [`Repository::open_with`]).
    pub fn open(backend: Arc<dyn Backend>) -> Result<Repository, StoreError> {
        Self::open_with(backend, &keyring::NoPassword)
    }

    /// Opens a repository; an encrypted one with the password `password`
    /// gives, asked for only then.
    pub fn open_with(backend: Arc<dyn Backend>, password: &dyn PasswordSource) -> Result<Repository, StoreError> {
        let bytes = match backend.read(keys::CONFIG, MAX_CONFIG) {
            Ok(b) => b,
            Err(e) if e.is_missing() => return Err(StoreError::NotARepository(backend.location())),
            Err(e) => return Err(e),
        };
        let what = format!("{}/config", backend.location());
        if bytes.get(4) == Some(&(ObjectKind::EncryptedConfig as u8)) {
            let encrypted = decode_encrypted_config(&bytes).map_err(|e| StoreError::format(&what, e))?;
            let (keys, key_id) = keyring::unlock(&*backend, &encrypted, password)?;
            return Self::with_keys(backend, encrypted, keys, key_id);
        }
        let config = decode_config(&bytes).map_err(|e| StoreError::format(&what, e))?;
        keyring::refuse_plain_config_beside_keys(&*backend)?;
        let secret = secret_input(&config.hash_secret)?;
        Ok(Repository { backend, config, secret, sealing: None })
    }

    /// An encrypted repository, its keys opened.
    fn with_keys(
        backend: Arc<dyn Backend>,
        encrypted: EncryptedConfig,
        keys: MasterKeys,
        key_id: u128,
    ) -> Result<Repository, StoreError> {
        let cipher = keys.cipher().map_err(|e| StoreError::format("keys", e))?;
        let config = Config {
            repo_id: encrypted.repo_id,
            hash_secret: keys.hash_secret.clone(),
            chunker: encrypted.chunker,
            created: encrypted.created,
        };
        let secret = secret_input(&config.hash_secret)?;
        Ok(Repository { backend, config, secret, sealing: Some(Arc::new(Sealing { cipher, keys, key_id })) })
    }

    /// The repository at `location`; a remote one reads through the local
    /// cache of its index files and packs ([`super::cache`]).
    pub fn open_at(location: &Location, password: &dyn PasswordSource) -> Result<Repository, StoreError> {
        let repo = Self::open_with(location.backend()?, password)?;
        Ok(repo.with_cache(location))
    }

    /// The repository at `location`, every read from storage itself (what
    /// `check --read-data` verifies is what the store holds, not a copy).
    pub fn open_at_uncached(location: &Location, password: &dyn PasswordSource) -> Result<Repository, StoreError> {
        Self::open_with(location.backend()?, password)
    }

    /// Creates a repository at `location`, encrypted with `password` when
    /// one is given.
    pub fn init_at(
        location: &Location,
        sizes: ChunkSizes,
        encrypt: Option<(&[u8], KdfCost)>,
    ) -> Result<Repository, StoreError> {
        let repo = match encrypt {
            Some((password, cost)) => Self::init_encrypted(location.backend()?, sizes, password, cost)?,
            None => Self::init(location.backend()?, sizes)?,
        };
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

    /// The local cache of this repository's index tables, when there is
    /// one this user may use.
    pub(crate) fn table_cache(&self) -> Option<super::table_cache::TableCache> {
        super::table_cache::TableCache::open(self.config.repo_id)
    }

    pub(crate) fn repo_id(&self) -> u128 {
        self.config.repo_id
    }

    /// Checks the local index tables in full, deleting damaged ones;
    /// returns how many were.
    pub fn verify_index_tables(&self) -> usize {
        self.table_cache().map_or(0, |c| c.verify())
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

    /// Where the chunker cuts; in an encrypted repository its gear table
    /// is seeded from the keys.
    pub fn chunk_sizes(&self) -> ChunkSizes {
        let c = &self.config.chunker;
        let seed = self.sealing.as_ref().map_or(0, |s| s.keys.gear_seed);
        ChunkSizes { min: c.min_size as usize, avg: c.avg_size as usize, max: c.max_size as usize, seed }
    }

    /// True for an encrypted repository.
    pub fn is_encrypted(&self) -> bool {
        self.sealing.is_some()
    }

    pub(crate) fn sealing(&self) -> Option<&Sealing> {
        self.sealing.as_deref()
    }

    /// The cipher of an encrypted repository's objects and blocks.
    pub fn cipher(&self) -> Option<&Cipher> {
        self.sealing.as_deref().map(|s| &s.cipher)
    }

    /// The stored form of an object's envelope `inner`: sealed and bound
    /// to `binding` (its storage key, for an object not named by the hash
    /// of its bytes) in an encrypted repository, as it is otherwise.
    pub(crate) fn seal_object(&self, kind: ObjectKind, binding: &str, inner: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        match self.cipher() {
            None => Ok(inner),
            Some(c) => c.seal_object(kind, binding.as_bytes(), &inner).map_err(|e| StoreError::format(kind.name(), e)),
        }
    }

    /// The envelope of a stored object (see [`Repository::seal_object`]);
    /// `what` names it in errors.
    pub(crate) fn open_object(
        &self,
        what: &str,
        kind: ObjectKind,
        binding: &str,
        stored: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        match self.cipher() {
            None => Ok(stored),
            Some(c) => c.open_object(kind, binding.as_bytes(), &stored).map_err(|e| StoreError::format(what, e)),
        }
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
        kind: ObjectKind,
        max: u64,
        named_by_hash: Option<PackId>,
    ) -> Result<Vec<u8>, StoreError> {
        use crate::format::sealed::{sealed_header, sealed_len_bound, SEALED_HEADER_LEN};
        use crate::format::{envelope_header, ENVELOPE_LEN};
        let (head_len, max) = match self.cipher() {
            Some(_) => (SEALED_HEADER_LEN, sealed_len_bound(max)),
            None => (ENVELOPE_LEN, max),
        };
        let head = self.backend.read_range(key, 0, head_len)?;
        self.refuse_sealed_in_plain(key, &head)?;
        let matches_name = |bytes: &[u8]| named_by_hash.is_none_or(|n| PackId(xxh3_128(bytes)) == n);
        let not_its_name = || {
            let detail = "its bytes do not match its name (the hash of its content)".into();
            StoreError::format(key, FormatError::Invalid { what: "object", detail })
        };
        let total = match self.cipher() {
            Some(_) => sealed_header(kind, &head),
            None => envelope_header(kind, &head).map(|len| len + ENVELOPE_LEN as u64),
        };
        match total {
            Ok(total) => {
                if total > max {
                    let detail = format!("it claims {total} bytes, more than such an object can hold ({max})");
                    return Err(StoreError::format(key, FormatError::Invalid { what: "object", detail }));
                }
                let bytes = self.backend.read(key, total)?;
                if !matches_name(&bytes) {
                    return Err(not_its_name());
                }
                self.open_object(key, kind, "", bytes)
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
        let sealed = check_header(&header).map_err(|e| StoreError::format(&what, e))?;
        if sealed && !self.is_encrypted() {
            return Err(replaced_config(&what));
        }
        self.check_pack_kind(sealed).map_err(|e| StoreError::format(&what, e))?;
        let trailer = self.read_pack_range(id, size - TRAILER_LEN as u64, TRAILER_LEN)?;
        let (start, len) = footer_location(&trailer, size).map_err(|e| StoreError::format(&what, e))?;
        let bytes = self.read_pack_range(id, start, len)?;
        let bytes = self.open_object(&what, ObjectKind::PackFooter, "", bytes)?;
        let footer = decode_footer(&bytes, start).map_err(|e| StoreError::format(&what, e))?;
        Ok(IndexedPack { id, size, blocks: footer.blocks })
    }
}

impl Repository {
    /// An object of an encrypted repository (`bytes` starts with its
    /// first bytes) read by a repository opened as plain: only a replaced
    /// config does that. An error that stops the command, never damage
    /// that a writer would remove or route around.
    pub(crate) fn refuse_sealed_in_plain(&self, what: &str, bytes: &[u8]) -> Result<(), StoreError> {
        if self.cipher().is_none() && bytes.starts_with(crate::format::sealed::MAGIC) {
            return Err(replaced_config(what));
        }
        Ok(())
    }

    /// An encrypted repository holds only sealed packs, a plain one only
    /// plain packs: a pack of the other kind was put there by someone else.
    pub fn check_pack_kind(&self, sealed: bool) -> Result<(), FormatError> {
        match (sealed, self.is_encrypted()) {
            (true, false) => {
                Err(FormatError::Invalid { what: "pack", detail: "an encrypted pack in a plain repository".into() })
            }
            (false, true) => Err(FormatError::Invalid {
                what: "pack",
                detail: "an unencrypted pack in an encrypted repository".into(),
            }),
            _ => Ok(()),
        }
    }

    /// The stored bytes of a block read from a pack, said to hold the
    /// blobs `ids`: opened first in an encrypted repository.
    pub fn open_block_bytes(&self, kind: BlobKind, ids: &[BlobId], stored: Vec<u8>) -> Result<Vec<u8>, FormatError> {
        match self.cipher() {
            None => Ok(stored),
            Some(c) => c.open_block(kind, ids, stored),
        }
    }
}

fn secret_input(secret: &[u8]) -> Result<SecretInput<Vec<u8>>, StoreError> {
    SecretInput::try_new(secret.to_vec()).ok_or_else(|| {
        StoreError::format("config", FormatError::Invalid { what: "config", detail: "unusable secret".into() })
    })
}

fn replaced_config(what: &str) -> StoreError {
    StoreError::Unsupported(format!(
        "{what} is encrypted, but the repository's config says it is not: the config was replaced; refusing to go on"
    ))
}

fn chunker_params(sizes: ChunkSizes) -> ChunkerParams {
    ChunkerParams { min_size: sizes.min as u32, avg_size: sizes.avg as u32, max_size: sizes.max as u32 }
}

/// Writes a new repository's config, the object that makes it one.
fn write_config(backend: &dyn Backend, bytes: &[u8]) -> Result<(), StoreError> {
    if !backend.write_if_absent(keys::CONFIG, bytes)? {
        return Err(StoreError::AlreadyExists(backend.location()));
    }
    backend.sync()
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
