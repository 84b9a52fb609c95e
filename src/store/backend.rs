//! Storage access, through one small interface so that an object-store
//! backend can be added without touching save, restore or mount.
//!
//! Paths are relative, '/'-separated names such as `packs/ab/<id>.pack`.
//! Every object is immutable once written: there is no overwrite.

use super::temp_file::write_temp;
use super::{fault, StoreError};
use lru::LruCache;
use parking_lot::Mutex;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::num::NonZeroUsize;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub trait Backend: Send + Sync {
    /// Every object under `dir`, recursively, with its size in bytes.
    fn list(&self, dir: &str) -> Result<Vec<(String, u64)>, StoreError>;
    fn read(&self, path: &str) -> Result<Vec<u8>, StoreError>;
    /// Exactly `len` bytes at `offset`; fewer is an error.
    fn read_range(&self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>, StoreError>;
    /// Writes atomically and durably; returns false (writing nothing) when
    /// the object already exists.
    fn write_if_absent(&self, path: &str, data: &[u8]) -> Result<bool, StoreError>;
    fn delete(&self, path: &str) -> Result<(), StoreError>;
}

const TEMP_PREFIX: &str = ".tmp-";

/// A repository in a local directory.
pub struct LocalBackend {
    root: PathBuf,
    /// Open packs for read_range; an unlinked pack stays readable through
    /// its descriptor.
    open_files: Mutex<LruCache<String, Arc<File>>>,
}

impl LocalBackend {
    pub fn new(root: &Path) -> Self {
        let cap = NonZeroUsize::new(64).expect("non-zero");
        Self { root: root.to_path_buf(), open_files: Mutex::new(LruCache::new(cap)) }
    }

    fn full(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    fn open_cached(&self, path: &str) -> Result<Arc<File>, StoreError> {
        if let Some(f) = self.open_files.lock().get(path) {
            return Ok(f.clone());
        }
        let full = self.full(path);
        let file = Arc::new(File::open(&full).map_err(|e| StoreError::io(&full, e))?);
        self.open_files.lock().put(path.to_string(), file.clone());
        Ok(file)
    }

    /// Removes temporary files that an interrupted writer left. Only a
    /// writer holding the lock may call this.
    pub fn remove_stale_temps(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        for dir in walk_dirs(&self.root)? {
            for entry in read_dir(&dir)? {
                if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    let p = entry.path();
                    fs::remove_file(&p).map_err(|e| StoreError::io(&p, e))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

impl Backend for LocalBackend {
    fn list(&self, dir: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let base = self.full(dir);
        if !base.exists() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for d in walk_dirs(&base)? {
            for entry in read_dir(&d)? {
                let name = entry.file_name().to_string_lossy().into_owned();
                let ft = entry.file_type().map_err(|e| StoreError::io(entry.path(), e))?;
                if !ft.is_file() || name.starts_with(TEMP_PREFIX) {
                    continue;
                }
                let len = match entry.metadata() {
                    Ok(m) => m.len(),
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io(entry.path(), e)),
                };
                let rel = entry.path().strip_prefix(&self.root).unwrap_or(&entry.path()).to_string_lossy().into_owned();
                out.push((rel, len));
            }
        }
        out.sort();
        Ok(out)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, StoreError> {
        let full = self.full(path);
        fs::read(&full).map_err(|e| StoreError::io(&full, e))
    }

    fn read_range(&self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>, StoreError> {
        let file = self.open_cached(path)?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset).map_err(|e| StoreError::io(self.full(path), e))?;
        Ok(buf)
    }

    fn write_if_absent(&self, path: &str, data: &[u8]) -> Result<bool, StoreError> {
        let full = self.full(path);
        if full.exists() {
            return Ok(false);
        }
        let dir = full.parent().expect("object paths have a parent").to_path_buf();
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
            // The new directory's own entry must be durable too.
            sync_dir(dir.parent().expect("object directories have a parent"))?;
        }
        let tmp = dir.join(temp_name());
        let written = write_temp(&tmp, data).and_then(|()| match fs::hard_link(&tmp, &full) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        });
        let _ = fs::remove_file(&tmp);
        let written = written.map_err(|e| StoreError::io(&full, e))?;
        if written {
            sync_dir(&dir)?;
        }
        Ok(written)
    }

    fn delete(&self, path: &str) -> Result<(), StoreError> {
        let full = self.full(path);
        fault::before_commit();
        match fs::remove_file(&full) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&full, e)),
        }
        self.open_files.lock().pop(path);
        let parent = full.parent().expect("object paths have a parent");
        // A pack's fan-out directory goes with its last pack (fails, as it
        // should, while the directory has other entries).
        if path.matches('/').count() >= 2 && fs::remove_dir(parent).is_ok() {
            return sync_dir(parent.parent().expect("fan-out directories have a parent"));
        }
        sync_dir(parent)
    }
}

fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{TEMP_PREFIX}{}-{n}", std::process::id())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| StoreError::io(dir, e))
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, StoreError> {
    let rd = fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    rd.collect::<Result<Vec<_>, _>>().map_err(|e| StoreError::io(dir, e))
}

/// `base` and every directory below it.
fn walk_dirs(base: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut dirs = vec![base.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        for entry in read_dir(&dirs[i].clone())? {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                dirs.push(entry.path());
            }
        }
        i += 1;
    }
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_if_absent_list_read_range_delete() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        assert!(b.write_if_absent("packs/ab/x.pack", b"0123456789").unwrap());
        assert!(!b.write_if_absent("packs/ab/x.pack", b"other").unwrap());
        assert_eq!(b.read("packs/ab/x.pack").unwrap(), b"0123456789");
        assert_eq!(b.read_range("packs/ab/x.pack", 3, 4).unwrap(), b"3456");
        assert!(b.read_range("packs/ab/x.pack", 8, 4).is_err());
        assert_eq!(b.list("packs").unwrap(), vec![("packs/ab/x.pack".to_string(), 10)]);
        b.delete("packs/ab/x.pack").unwrap();
        assert!(b.list("packs").unwrap().is_empty());
        assert!(b.read("packs/ab/x.pack").is_err());
    }

    #[test]
    fn stale_temps_are_invisible_and_removable() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("index")).unwrap();
        fs::write(dir.path().join("index/.tmp-1-1"), b"partial").unwrap();
        let b = LocalBackend::new(dir.path());
        assert!(b.list("index").unwrap().is_empty());
        assert_eq!(b.remove_stale_temps().unwrap(), 1);
    }
}
