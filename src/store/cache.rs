//! A local cache in front of a remote backend: index files and packs,
//! which never change once written (both are named by the hash of their
//! bytes, and a pack name is never reused), kept whole on local disk, and
//! snapshot records, kept under the size and time their last listing
//! gave them.
//!
//! A pack is fetched whole on its first read, checked against its name,
//! and every later read of it is local: a save reads its parent's trees
//! without a request, and a mount reads a file's chunks from one GET per
//! pack instead of one per block. Packs are evicted oldest first beyond
//! the size limit; index files are kept while the repository lists them.
//! Everything read from the cache goes through the same checks as data
//! from storage (blob hashes, envelope checksums), and the cache may be
//! deleted at any time.

use super::backend::{Backend, Listed};
use super::{keys, StoreError};
use parking_lot::Mutex;
use std::fs::{self, File};
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_128;

/// Packs kept by default: enough for the trees of large repositories and
/// the data a mount reads from.
pub const DEFAULT_LIMIT: u64 = 4 << 30;

/// The largest object fetched whole into the cache (packs are written up
/// to 32 MiB, index files to 64 MiB); a larger one is read in ranges.
const MAX_CACHED_OBJECT: u64 = 256 << 20;

pub struct CachedBackend {
    shared: Arc<Shared>,
    /// Packs to fetch ahead of their first read, by worker threads.
    prefetch: crossbeam_channel::Sender<String>,
}

/// Packs fetched ahead at once.
const PREFETCHERS: usize = 3;

impl std::ops::Deref for CachedBackend {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

pub struct Shared {
    inner: Arc<dyn Backend>,
    dir: PathBuf,
    limit: u64,
    /// One download of a key at a time (by hash of the key).
    stripes: Vec<Mutex<()>>,
    evicting: Mutex<()>,
    /// Size and time of each snapshot record at the last listing: a
    /// record is cached under both, so a record deleted and written again
    /// under the same id is never served from the cache.
    snapshot_stamps: Mutex<std::collections::HashMap<String, (u64, std::time::SystemTime)>>,
    /// Objects that could not be cached (too large, or not matching their
    /// name): read from storage directly, never fetched whole again.
    uncacheable: Mutex<std::collections::HashSet<String>>,
    /// Keys queued for fetching ahead, or being fetched.
    queued: Mutex<std::collections::HashSet<String>>,
}

/// The cache directory of repository `repo_id`.
pub fn cache_dir(repo_id: u128) -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let base = xdg.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("chkfs").join(format!("{repo_id:032x}")))
}

impl CachedBackend {
    pub fn new(inner: Arc<dyn Backend>, dir: PathBuf, limit: u64) -> Result<CachedBackend, StoreError> {
        let shared = Arc::new(Shared::new(inner, dir, limit)?);
        let (prefetch, queue) = crossbeam_channel::bounded::<String>(PREFETCHERS * 2);
        for _ in 0..PREFETCHERS {
            let (shared, queue) = (shared.clone(), queue.clone());
            std::thread::Builder::new()
                .name("chkfs-prefetch".into())
                .spawn(move || {
                    for key in queue {
                        if let Some(path) = shared.local(&key) {
                            // A failure is met again, and reported, by the read.
                            let _ = shared.fetch(&key, &path, crate::format::MAX_OBJECT);
                        }
                        shared.queued.lock().remove(&key);
                    }
                })
                .map_err(|e| StoreError::io("prefetch thread", e))?;
        }
        Ok(CachedBackend { shared, prefetch })
    }
}

impl Shared {
    fn new(inner: Arc<dyn Backend>, dir: PathBuf, limit: u64) -> Result<Shared, StoreError> {
        for sub in [keys::PACKS, keys::INDEX, keys::SNAPSHOTS] {
            let d = dir.join(sub);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .map_err(|e| StoreError::io(crate::text::escape_path(&d), e))?;
        }
        let stripes = (0..32).map(|_| Mutex::new(())).collect();
        let snapshot_stamps = Mutex::new(Default::default());
        Ok(Shared {
            inner,
            dir,
            limit,
            stripes,
            evicting: Mutex::new(()),
            snapshot_stamps,
            uncacheable: Mutex::new(Default::default()),
            queued: Mutex::new(Default::default()),
        })
    }

    /// Where `key` is kept, when it is something the cache keeps.
    fn local(&self, key: &str) -> Option<PathBuf> {
        if let Some(id) = keys::parse_pack(key) {
            return Some(self.dir.join(keys::PACKS).join(id.to_hex()));
        }
        if let Some(id) = keys::parse_snapshot(key) {
            let (size, modified) = *self.snapshot_stamps.lock().get(key)?;
            let nanos = modified.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            return Some(self.dir.join(keys::SNAPSHOTS).join(format!("{}-{size}-{nanos}", id.to_hex())));
        }
        keys::parse_index(key).map(|id| self.dir.join(keys::INDEX).join(id.to_hex()))
    }

    /// The cached copy of `key`, fetched whole first when missing; None
    /// when the cache cannot hold it (the caller reads from storage).
    fn fetch(&self, key: &str, path: &Path, max_len: u64) -> Result<Option<File>, StoreError> {
        if let Ok(f) = File::open(path) {
            return Ok(Some(f));
        }
        if self.uncacheable.lock().contains(key) {
            return Ok(None);
        }
        let stripe = &self.stripes[(xxh3_128(key.as_bytes()) % self.stripes.len() as u128) as usize];
        let _one = stripe.lock();
        if let Ok(f) = File::open(path) {
            return Ok(Some(f));
        }
        let bytes = match self.inner.read(key, max_len.min(MAX_CACHED_OBJECT)) {
            Ok(bytes) => bytes,
            Err(e) if e.is_damage() => {
                self.uncacheable.lock().insert(key.to_string());
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        // Named by the hash of their bytes: a copy that does not match is
        // not kept (the reader reports the damage from storage's bytes).
        let matches =
            keys::parse_pack(key).or_else(|| keys::parse_index(key)).is_some_and(|id| id.0 == xxh3_128(&bytes));
        if !matches || write_local(path, &bytes).is_err() {
            self.uncacheable.lock().insert(key.to_string());
            return Ok(None);
        }
        self.evict_beyond_limit();
        Ok(File::open(path).ok())
    }

    /// Removes the oldest packs while the packs kept exceed the limit.
    fn evict_beyond_limit(&self) {
        let Some(_one) = self.evicting.try_lock() else { return };
        let Ok(rd) = fs::read_dir(self.dir.join(keys::PACKS)) else { return };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = rd
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.limit {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }

    /// Drops cached files of `dir` whose names `keep` refuses.
    fn forget_unlisted(&self, dir: &str, keep: impl Fn(&str) -> bool) {
        let Ok(rd) = fs::read_dir(self.dir.join(dir)) else { return };
        for e in rd.flatten() {
            if !keep(&e.file_name().to_string_lossy()) {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Remembers the listed stamps of snapshot records and drops cached
    /// records that are not listed as they are now.
    fn note_snapshot_listing(&self, listed: &[Listed]) {
        let mut stamps = self.snapshot_stamps.lock();
        stamps.clear();
        stamps.extend(listed.iter().map(|l| (l.key.clone(), (l.size, l.modified))));
        drop(stamps);
        let live: std::collections::HashSet<String> = listed
            .iter()
            .filter_map(|l| self.local(&l.key))
            .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
            .collect();
        self.forget_unlisted(keys::SNAPSHOTS, |name| live.contains(name));
    }
}

/// Writes a cache file whole under its name (renamed into place, so a
/// reader never sees part of one). No fsync: a cache file lost or cut
/// short by a crash fails its checks and is fetched again.
fn write_local(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)
    };
    let done = write().and_then(|()| fs::rename(&tmp, path));
    if done.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    done
}

impl Backend for CachedBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<(), StoreError> {
        self.inner.create()
    }

    fn list(&self, dir: &str) -> Result<Vec<Listed>, StoreError> {
        let listed = self.inner.list(dir)?;
        if dir == keys::INDEX {
            let live: std::collections::HashSet<String> =
                listed.iter().filter_map(|l| keys::parse_index(&l.key)).map(|id| id.to_hex()).collect();
            self.forget_unlisted(keys::INDEX, |name| live.contains(name));
        } else if dir == keys::SNAPSHOTS {
            self.note_snapshot_listing(&listed);
        }
        Ok(listed)
    }

    fn read(&self, key: &str, max_len: u64) -> Result<Vec<u8>, StoreError> {
        let Some(path) = self.local(key) else { return self.inner.read(key, max_len) };
        match self.fetch(key, &path, max_len)? {
            Some(f) => {
                let len = f.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
                if len > max_len {
                    return self.inner.read(key, max_len);
                }
                let mut buf = vec![0u8; len as usize];
                match f.read_exact_at(&mut buf, 0) {
                    Ok(()) => Ok(buf),
                    Err(_) => self.inner.read(key, max_len),
                }
            }
            None => self.inner.read(key, max_len),
        }
    }

    fn read_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>, StoreError> {
        let Some(path) = self.local(key) else { return self.inner.read_range(key, offset, len) };
        let Some(f) = self.fetch(key, &path, crate::format::MAX_OBJECT)? else {
            return self.inner.read_range(key, offset, len);
        };
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        if offset.checked_add(len as u64).is_none_or(|end| end > size) {
            // Past the end of the cached copy: storage says why.
            return self.inner.read_range(key, offset, len);
        }
        let mut buf = vec![0u8; len];
        match f.read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(buf),
            Err(_) => self.inner.read_range(key, offset, len),
        }
    }

    fn write_if_absent(&self, key: &str, data: &[u8]) -> Result<bool, StoreError> {
        let written = self.inner.write_if_absent(key, data)?;
        if written && keys::parse_index(key).is_some() {
            if let Some(path) = self.local(key) {
                let _ = write_local(&path, data);
            }
        }
        Ok(written)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key)?;
        if let Some(path) = self.local(key) {
            let _ = fs::remove_file(path);
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.inner.sync()
    }

    fn parallel_writes(&self) -> usize {
        self.inner.parallel_writes()
    }

    fn lists_cheaply(&self) -> bool {
        self.inner.lists_cheaply()
    }

    /// Queues a pack for fetching ahead, unless it is cached, queued, or
    /// the queue is full (then its first read fetches it).
    fn prefetch(&self, key: &str) {
        let Some(path) = self.local(key) else { return };
        if path.exists() || self.uncacheable.lock().contains(key) {
            return;
        }
        if self.queued.lock().insert(key.to_string()) && self.prefetch.try_send(key.to_string()).is_err() {
            self.queued.lock().remove(key);
        }
    }
}
