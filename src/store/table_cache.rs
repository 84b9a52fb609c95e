//! The local cache of index tables: `<cache>/<repository id>/index-tables/`,
//! one file per table, named by the hash of the index file names it
//! covers. Index files are named by the hash of their bytes, so a table is
//! valid exactly while every index file it covers exists: a table is never
//! updated, only made (written under a temporary name, synced, renamed),
//! merged into a larger one, or deleted once stale.
//!
//! The cache is derived data and may be deleted at any time; a command
//! that cannot use it (no home directory, a directory it does not own)
//! builds its tables in memory instead.

use super::index::Table;
use super::StoreError;
use crate::format::index_table::{merge_tables, TableRecords, TableView};
use crate::format::PackId;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use xxhash_rust::xxh3::xxh3_128;

const SUBDIR: &str = "index-tables";
const SUFFIX: &str = ".tbl";
/// More tables than this and the smaller ones are merged: a lookup of a
/// new chunk searches every table.
pub const MAX_TABLES: usize = 4;
/// A table that covers a name the listing lacks is deleted only when older
/// than this: a table another command made a moment ago covers an index
/// file written after this command listed them.
const STALE_AGE: Duration = Duration::from_secs(600);

pub struct TableCache {
    dir: PathBuf,
}

/// The tables a load uses, and the index files they cover.
pub struct Chosen {
    pub tables: Vec<Arc<Table>>,
    pub covered: HashSet<PackId>,
}

impl TableCache {
    /// The cache of repository `repo_id`; None when there is no cache
    /// directory, or when it is not a private directory of this user.
    pub fn open(repo_id: u128) -> Option<TableCache> {
        if std::env::var_os("CHKFS_NO_INDEX_CACHE").is_some() {
            return None;
        }
        private_cache_dir(repo_id, SUBDIR).map(|dir| TableCache { dir })
    }

    /// Every table in the cache that opens (a damaged one is deleted).
    fn all(&self) -> Vec<Arc<Table>> {
        let Ok(entries) = fs::read_dir(&self.dir) else { return Vec::new() };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.to_str().is_some_and(|p| p.ends_with(SUFFIX)) {
                self.remove_old_temp(&path);
                continue;
            }
            match open_table(&path) {
                Ok(t) => out.push(Arc::new(t)),
                Err(_) => {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        out
    }

    /// A temporary file left by a killed writer.
    fn remove_old_temp(&self, path: &Path) {
        let old = fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() > STALE_AGE);
        if old {
            let _ = fs::remove_file(path);
        }
    }

    /// The tables to use for the index files `files`: the largest first,
    /// each covering only listed files and none covered already. A table
    /// covering a file that is gone (replaced by a gc) is deleted.
    pub fn choose(&self, files: &HashSet<PackId>) -> Chosen {
        let mut tables = self.all();
        tables.sort_by_key(|t| std::cmp::Reverse(t.view().blob_count()));
        let mut chosen = Chosen { tables: Vec::new(), covered: HashSet::new() };
        for t in tables {
            let view = t.view();
            let covers: Vec<PackId> = view.covers().collect();
            if view.trees_only() || covers.iter().any(|c| !files.contains(c)) {
                self.remove_if_old(&t);
            } else if covers.iter().all(|c| chosen.covered.contains(c)) {
                // A merge's input that outlived it.
                self.remove(&t);
            } else if covers.iter().all(|c| !chosen.covered.contains(c)) {
                chosen.covered.extend(covers);
                chosen.tables.push(t);
            }
        }
        chosen
    }

    /// Writes a table of `records` for the index files named in them.
    pub fn write(&self, records: &TableRecords) -> Result<Arc<Table>, StoreError> {
        let bytes = records.encode(0).map_err(|e| StoreError::format("index table", e))?;
        let path = self.path_for(&records.covers);
        self.put(&path, |f| f.write_all(&bytes))?;
        Ok(Arc::new(open_table(&path)?))
    }

    /// Merges the smaller tables when there are more than [`MAX_TABLES`]:
    /// at least enough of the smallest to leave that many, and further
    /// ones while the merge is not much smaller than the next table, so
    /// that sizes grow in tiers and a table is rewritten a few times at
    /// most as the repository grows. The inputs are deleted once the
    /// merged table is in place; a merge that fails leaves the tables as
    /// they were.
    pub fn compact(&self, mut tables: Vec<Arc<Table>>) -> Vec<Arc<Table>> {
        if tables.len() <= MAX_TABLES {
            return tables;
        }
        tables.sort_by_key(|t| std::cmp::Reverse(t.view().blob_count()));
        let size = |t: &Arc<Table>| u64::from(t.view().blob_count());
        let mut keep = MAX_TABLES - 1;
        let mut merged: u64 = tables[keep..].iter().map(size).sum();
        while keep > 0 && 2 * merged >= size(&tables[keep - 1]) {
            keep -= 1;
            merged += size(&tables[keep]);
        }
        let small = tables.split_off(keep);
        match self.merge(&small) {
            Ok(merged) => {
                small.iter().for_each(|t| self.remove(t));
                tables.push(merged);
                tables
            }
            Err(_) => tables.into_iter().chain(small).collect(),
        }
    }

    fn merge(&self, inputs: &[Arc<Table>]) -> Result<Arc<Table>, StoreError> {
        let views: Vec<TableView> = inputs.iter().map(|t| t.view()).collect();
        let mut covers: Vec<PackId> = views.iter().flat_map(|v| v.covers()).collect();
        covers.sort();
        let path = self.path_for(&covers);
        self.put(&path, |f| {
            let mut out = BufWriter::with_capacity(1 << 20, f);
            out = merge_tables(&views, out, &mut || inputs.iter().for_each(|t| t.release_pages()))?;
            out.flush()
        })?;
        Ok(Arc::new(open_table(&path)?))
    }

    /// Writes a file through `fill` under a temporary name, syncs it and
    /// renames it to `path` (a table another command made meanwhile under
    /// the same name has the same content).
    fn put(&self, path: &Path, fill: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<(), StoreError> {
        let tmp =
            self.dir.join(format!(".tmp-{}-{:x}", std::process::id(), xxh3_128(path.as_os_str().as_encoded_bytes())));
        let err = |e| StoreError::io(crate::text::escape_path(&tmp), e);
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(err)?;
        let written = fill(&mut f).and_then(|()| f.sync_all()).and_then(|()| fs::rename(&tmp, path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(err(e));
        }
        Ok(())
    }

    fn path_for(&self, covers: &[PackId]) -> PathBuf {
        let mut sorted = covers.to_vec();
        sorted.sort();
        sorted.dedup();
        let bytes: Vec<u8> = sorted.iter().flat_map(|c| c.0.to_le_bytes()).collect();
        self.dir.join(format!("{:032x}{SUFFIX}", xxh3_128(&bytes)))
    }

    fn remove(&self, t: &Table) {
        if let Some(p) = t.path() {
            let _ = fs::remove_file(p);
        }
    }

    fn remove_if_old(&self, t: &Table) {
        if let Some(p) = t.path() {
            self.remove_old_temp(p);
        }
    }

    /// Deletes every table covering one of `names` (index files found
    /// damaged: the next load reads them, and a writer repairs them).
    pub fn forget(&self, names: &HashSet<PackId>) {
        for t in self.all() {
            if t.view().covers().any(|c| names.contains(&c)) {
                self.remove(&t);
            }
        }
    }

    /// Checks every table's body against its checksum; a damaged table
    /// is deleted (made again by the next load). Returns how many were.
    pub fn verify(&self) -> usize {
        let mut bad = 0;
        for t in self.all() {
            if !body_checks(&t) {
                self.remove(&t);
                bad += 1;
            }
        }
        bad
    }
}

/// Hashes a table's body from its file, 1 MiB at a time: through the
/// mapping, the whole table would count in the process's memory.
fn body_checks(table: &Table) -> bool {
    let Some(path) = table.path() else { return table.view().verify_body().is_ok() };
    let Ok(mut f) = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) else {
        return false;
    };
    let mut hash = xxhash_rust::xxh3::Xxh3Default::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut skip = crate::format::index_table::HEADER_LEN;
    loop {
        match std::io::Read::read(&mut f, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let from = skip.min(n);
                skip -= from;
                hash.update(&buf[from..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    hash.digest128() == table.view().header.body_checksum
}

/// `<cache>/<repository id>/<sub>`, made when missing, when every
/// directory from the cache's own on is this user's and writable by no
/// one else: what is found there is trusted (tables for locations, records
/// as read), so no other user may put a file there, or swap a directory on
/// the way.
pub(crate) fn private_cache_dir(repo_id: u128, sub: &str) -> Option<PathBuf> {
    let repo_dir = super::cache::cache_dir(repo_id)?;
    let chkfs_dir = repo_dir.parent()?;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(chkfs_dir.parent()?).ok()?;
    let private = |p: &Path| {
        fs::symlink_metadata(p)
            .is_ok_and(|m| m.is_dir() && m.uid() == rustix::process::geteuid().as_raw() && m.mode() & 0o022 == 0)
    };
    // Each directory is checked before anything is made inside it.
    let dir = repo_dir.join(sub);
    for p in [chkfs_dir, repo_dir.as_path(), dir.as_path()] {
        match fs::DirBuilder::new().mode(0o700).create(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) => return None,
        }
        if !private(p) {
            return None;
        }
    }
    Some(dir)
}

fn open_table(path: &Path) -> Result<Table, StoreError> {
    let err = |e| StoreError::io(crate::text::escape_path(path), e);
    // Not blocking on a FIFO put in its place.
    let f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(err)?;
    if !f.metadata().map_err(err)?.is_file() {
        return Err(err(std::io::Error::other("not a regular file")));
    }
    Table::mapped(&f, path.to_path_buf()).map_err(|e| StoreError::format(crate::text::escape_path(path), e))
}
