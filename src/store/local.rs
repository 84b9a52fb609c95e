//! A repository in a local directory.
//!
//! A write goes to a temporary file `.tmp-*` in the target directory,
//! which is fsynced, then hard-linked to its final name (the link fails if
//! the name exists: nothing is ever overwritten) and unlinked. The
//! directories whose entries changed are remembered and fsynced by `sync`.
//! Everything is created private to its owner (0700 directories, 0600
//! files) whatever the umask: a repository holds every saved byte.

use super::backend::{Backend, Listed};
use super::temp_file::write_temp;
use super::{fault, keys, StoreError};
use crate::text::escape_path;
use lru::LruCache;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::num::NonZeroUsize;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TEMP_PREFIX: &str = ".tmp-";
pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

pub struct LocalBackend {
    root: PathBuf,
    /// Open packs for read_range; an unlinked pack stays readable through
    /// its descriptor.
    open_files: Mutex<LruCache<String, Arc<File>>>,
    /// Directories with entries added or removed since the last sync.
    dirty: Mutex<HashSet<PathBuf>>,
}

impl LocalBackend {
    pub fn new(root: &Path) -> Self {
        let cap = NonZeroUsize::new(64).expect("non-zero");
        Self { root: root.to_path_buf(), open_files: Mutex::new(LruCache::new(cap)), dirty: Default::default() }
    }

    fn full(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn open_cached(&self, key: &str) -> Result<Arc<File>, StoreError> {
        if let Some(f) = self.open_files.lock().get(key) {
            return Ok(f.clone());
        }
        let full = self.full(key);
        let file = Arc::new(File::open(&full).map_err(|e| io_err(&full, e))?);
        self.open_files.lock().put(key.to_string(), file.clone());
        Ok(file)
    }

    fn mark_dirty(&self, dir: &Path) {
        self.dirty.lock().insert(dir.to_path_buf());
    }

    /// Creates `dir` (and missing parents) private to the owner.
    fn make_dir(&self, dir: &Path) -> Result<(), StoreError> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            if parent != self.root && parent.starts_with(&self.root) {
                self.make_dir(parent)?;
            }
        }
        match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
            Ok(()) => {
                set_mode(dir, DIR_MODE)?;
                self.mark_dirty(dir.parent().unwrap_or(&self.root));
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io_err(dir, e)),
        }
    }
}

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::io(escape_path(path), e)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), StoreError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io_err(path, e))
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        escape_path(&self.root)
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn create(&self) -> Result<(), StoreError> {
        let not_empty = fs::read_dir(&self.root).map(|mut d| d.next().is_some()).unwrap_or(false);
        if not_empty {
            return Err(StoreError::AlreadyExists(self.location()));
        }
        fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(&self.root).map_err(|e| io_err(&self.root, e))?;
        set_mode(&self.root, DIR_MODE)?;
        if let Some(parent) = self.root.parent() {
            self.mark_dirty(parent);
        }
        for dir in keys::DIRS {
            self.make_dir(&self.full(dir))?;
        }
        Ok(())
    }

    fn list(&self, dir: &str) -> Result<Vec<Listed>, StoreError> {
        let mut out = Vec::new();
        for d in walk_dirs(&self.full(dir))? {
            for entry in read_dir(&d)? {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(TEMP_PREFIX) {
                    continue;
                }
                // A vanished entry was deleted by a concurrent gc or forget.
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                let path = entry.path();
                let rel = path.strip_prefix(&self.root).unwrap_or(&path).to_string_lossy().into_owned();
                let modified = meta.modified().map_err(|e| io_err(&path, e))?;
                out.push(Listed { key: rel, size: meta.len(), modified });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn read(&self, key: &str, max_len: u64) -> Result<Vec<u8>, StoreError> {
        use std::io::Read;
        let full = self.full(key);
        let mut file = File::open(&full).map_err(|e| io_err(&full, e))?;
        let len = file.metadata().map_err(|e| io_err(&full, e))?.len();
        if len > max_len {
            return Err(too_large(key, len, max_len));
        }
        let mut buf = alloc(len as usize).map_err(|e| io_err(&full, e))?;
        // One byte more than expected tells a file that grew meanwhile.
        file.by_ref().take(max_len + 1).read_to_end(&mut buf).map_err(|e| io_err(&full, e))?;
        if buf.len() as u64 > max_len {
            return Err(too_large(key, buf.len() as u64, max_len));
        }
        Ok(buf)
    }

    fn read_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>, StoreError> {
        let file = self.open_cached(key)?;
        let size = file.metadata().map_err(|e| io_err(&self.full(key), e))?.len();
        if offset.checked_add(len as u64).is_none_or(|end| end > size) {
            let detail = format!("range {offset}+{len} lies beyond its end ({size} bytes)");
            return Err(StoreError::format(key, crate::format::FormatError::Invalid { what: "object", detail }));
        }
        let mut buf = alloc(len).map_err(|e| io_err(&self.full(key), e))?;
        buf.resize(len, 0);
        file.read_exact_at(&mut buf, offset).map_err(|e| io_err(&self.full(key), e))?;
        Ok(buf)
    }

    fn write_if_absent(&self, key: &str, data: &[u8]) -> Result<bool, StoreError> {
        let full = self.full(key);
        if fs::symlink_metadata(&full).is_ok() {
            return Ok(false);
        }
        let dir = full.parent().expect("keys have a directory").to_path_buf();
        let mut attempt = 0;
        let written = loop {
            self.make_dir(&dir)?;
            let tmp = dir.join(temp_name());
            let written = write_temp(&tmp, data, FILE_MODE).and_then(|()| match fs::hard_link(&tmp, &full) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            });
            let _ = fs::remove_file(&tmp);
            // A gc removed the emptied fan-out directory meanwhile.
            match written {
                Err(e) if e.kind() == ErrorKind::NotFound && attempt < 3 => attempt += 1,
                other => break other,
            }
        };
        let written = written.map_err(|e| io_err(&full, e))?;
        if written {
            self.mark_dirty(&dir);
        }
        Ok(written)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let full = self.full(key);
        fault::before_commit("delete");
        match fs::remove_file(&full) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&full, e)),
        }
        self.open_files.lock().pop(key);
        let parent = full.parent().expect("keys have a directory");
        self.mark_dirty(parent);
        // A pack's fan-out directory goes with its last pack (this fails,
        // as it should, while the directory has other entries).
        if key.matches('/').count() >= 2 && fs::remove_dir(parent).is_ok() {
            self.dirty.lock().remove(parent);
            self.mark_dirty(parent.parent().expect("fan-out directories have a parent"));
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        let dirs: Vec<PathBuf> = self.dirty.lock().drain().collect();
        for (i, dir) in dirs.iter().enumerate() {
            let synced = File::open(dir).and_then(|d| d.sync_all());
            match synced {
                Ok(()) => {}
                // Removed since (an emptied fan-out directory): its parent
                // was marked when it went.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    self.dirty.lock().extend(dirs[i..].iter().cloned());
                    return Err(io_err(dir, e));
                }
            }
        }
        Ok(())
    }

    fn remove_stale_temps(&self, age: Duration) -> Result<usize, StoreError> {
        let mut removed = 0;
        let old = |e: &fs::DirEntry| {
            let modified = e.metadata().and_then(|m| m.modified());
            let aged = modified.is_ok_and(|t| t.elapsed().is_ok_and(|a| a >= age));
            aged || writer_is_gone(&e.file_name().to_string_lossy())
        };
        for dir in walk_dirs(&self.root)? {
            for entry in read_dir(&dir)? {
                if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) && old(&entry) {
                    let p = entry.path();
                    match fs::remove_file(&p) {
                        Ok(()) => removed += 1,
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err(&p, e)),
                    }
                    self.mark_dirty(&dir);
                }
            }
        }
        Ok(removed)
    }

    fn free_space(&self) -> Option<u64> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(self.root.as_os_str().as_bytes()).ok()?;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: valid path and a buffer statvfs fills on success.
        if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: statvfs returned 0, so the struct is initialised.
        let st = unsafe { st.assume_init() };
        // The field types differ between architectures.
        #[allow(clippy::unnecessary_cast)]
        Some(st.f_bavail as u64 * st.f_frsize as u64)
    }
}

/// The mode bits of the repository's top directory that let other users
/// in, if any (an old repository, or one whose mode was changed).
pub fn open_to_others(root: &Path) -> Option<u32> {
    let mode = fs::metadata(root).ok()?.mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// An empty buffer with room for `len` bytes, or an error (never an
/// abort) when memory is short.
fn alloc(len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    buf.try_reserve_exact(len).map_err(|_| std::io::Error::from(ErrorKind::OutOfMemory))?;
    Ok(buf)
}

fn too_large(key: &str, len: u64, max: u64) -> StoreError {
    let detail = format!("{len} bytes, more than such an object can hold ({max})");
    StoreError::format(key, crate::format::FormatError::Invalid { what: "object", detail })
}

/// `.tmp-<boot>-<pid>-<n>`: the boot tells a temporary file of this
/// machine's current boot, whose writer can be looked for by its pid.
fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{TEMP_PREFIX}{}-{}-{n}", boot_tag(), std::process::id())
}

/// This boot of this kernel, in this pid namespace (containers on one
/// kernel share the boot id, not their pids).
fn boot_tag() -> String {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let machine = format!("{}-{}", super::machine::boot_id(), super::machine::pid_namespace());
        format!("{:08x}", xxhash_rust::xxh3::xxh3_64(machine.as_bytes()) as u32)
    })
    .clone()
}

/// True when a temporary file was written in this boot by a process that
/// no longer exists (killed mid-write). A writer on another machine
/// sharing the directory has another boot tag.
fn writer_is_gone(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(TEMP_PREFIX) else { return false };
    let mut parts = rest.split('-');
    let (Some(boot), Some(pid)) = (parts.next(), parts.next()) else { return false };
    let Ok(pid) = pid.parse::<u32>() else { return false };
    boot == boot_tag() && super::machine::process_is_gone(pid)
}

/// The entries of `dir`; a directory that vanished (an emptied fan-out
/// directory removed by a concurrent gc) has none.
fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, StoreError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        match entry {
            Ok(e) => out.push(e),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(dir, e)),
        }
    }
    Ok(out)
}

/// `base` and every directory below it (none when `base` is missing).
fn walk_dirs(base: &Path) -> Result<Vec<PathBuf>, StoreError> {
    if !base.is_dir() {
        return Ok(Vec::new());
    }
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
        let b = LocalBackend::new(&dir.path().join("r"));
        b.create().unwrap();
        assert!(b.write_if_absent("packs/ab/x.pack", b"0123456789").unwrap());
        assert!(!b.write_if_absent("packs/ab/x.pack", b"other").unwrap());
        b.sync().unwrap();
        assert_eq!(b.read("packs/ab/x.pack", 100).unwrap(), b"0123456789");
        assert!(b.read("packs/ab/x.pack", 9).is_err(), "larger than allowed");
        assert_eq!(b.read_range("packs/ab/x.pack", 3, 4).unwrap(), b"3456");
        assert!(b.read_range("packs/ab/x.pack", 8, 4).is_err());
        assert!(b.read_range("packs/ab/x.pack", 8, usize::MAX).is_err(), "no allocation for a range past the end");
        let listed = b.list("packs").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].key.as_str(), listed[0].size), ("packs/ab/x.pack", 10));
        assert!(listed[0].modified.elapsed().unwrap() < Duration::from_secs(60));
        b.delete("packs/ab/x.pack").unwrap();
        b.sync().unwrap();
        assert!(b.list("packs").unwrap().is_empty());
        assert!(b.read("packs/ab/x.pack", 100).unwrap_err().is_missing());
        assert!(b.list("nothing-here").unwrap().is_empty());
    }

    #[test]
    fn stale_temps_are_invisible_and_removable() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("index")).unwrap();
        fs::write(dir.path().join("index/.tmp-00000000-1-1"), b"partial").unwrap();
        let b = LocalBackend::new(dir.path());
        assert!(b.list("index").unwrap().is_empty());
        assert_eq!(b.remove_stale_temps(Duration::from_secs(3600)).unwrap(), 0, "a young one may be a writer's");
        assert_eq!(b.remove_stale_temps(Duration::ZERO).unwrap(), 1);
    }

    #[test]
    fn everything_is_private_to_the_owner_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: umask only changes this process's creation mask.
        let old = unsafe { libc::umask(0) };
        let b = LocalBackend::new(&dir.path().join("r"));
        b.create().unwrap();
        b.write_if_absent("packs/ab/x.pack", b"x").unwrap();
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let mode = |p: &str| fs::metadata(dir.path().join("r").join(p)).unwrap().mode() & 0o777;
        assert_eq!(mode(""), 0o700);
        assert_eq!(mode("packs"), 0o700);
        assert_eq!(mode("packs/ab"), 0o700);
        assert_eq!(mode("packs/ab/x.pack"), 0o600);
        assert_eq!(open_to_others(&dir.path().join("r")), None);
    }
}
