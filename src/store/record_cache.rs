//! The local cache of snapshot records: one file holding each record's
//! stored bytes (sealed, in an encrypted repository) with the size and time
//! the repository's listing gave it, so that a command listing ten thousand
//! snapshots reads one local file instead of ten thousand objects. A record
//! is taken from the cache only when the listing shows it with the same
//! size and time; every record, cached or not, is opened and decoded as one
//! read from storage is (checksum or authentication, then bounds). The file
//! is rewritten whole, atomically, when the listing changed.

use super::table_cache::private_cache_dir;
use crate::format::SnapshotId;
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

const FILE: &str = "records";
/// A cache file larger than this is ignored (and rewritten).
const MAX_CACHE_FILE: u64 = 256 << 20;
const MAGIC: &[u8; 8] = b"CHKFSREC";

/// A record as listed: its id, size and time in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListedRecord {
    pub id: SnapshotId,
    pub size: u64,
    pub modified: SystemTime,
}

#[derive(bitcode::Encode, bitcode::Decode)]
struct Cached {
    id: u32,
    size: u64,
    modified_ns: u128,
    bytes: Vec<u8>,
}

pub struct RecordCache {
    path: PathBuf,
    held: HashMap<(u32, u64, u128), Vec<u8>>,
}

fn stamp(r: &ListedRecord) -> (u32, u64, u128) {
    let ns = r.modified.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (r.id.0, r.size, ns)
}

impl RecordCache {
    /// The cache of repository `repo_id`, as it is; None without a usable
    /// cache directory.
    pub fn open(repo_id: u128) -> Option<RecordCache> {
        let path = private_cache_dir(repo_id, "snapshots")?.join(FILE);
        let held = read_file(&path).unwrap_or_default();
        Some(RecordCache { path, held })
    }

    /// The stored bytes of `record`, when cached under its size and time.
    pub fn get(&self, record: &ListedRecord) -> Option<&[u8]> {
        self.held.get(&stamp(record)).map(Vec::as_slice)
    }

    /// Drops a record found damaged in the cache, at once on disk too.
    pub fn remove(&mut self, record: &ListedRecord) {
        if self.held.remove(&stamp(record)).is_some() {
            self.write();
        }
    }

    /// True when the cache holds exactly these records.
    pub fn holds_exactly(&self, listed: &[ListedRecord]) -> bool {
        listed.len() == self.held.len() && listed.iter().all(|r| self.held.contains_key(&stamp(r)))
    }

    /// Keeps exactly `records` (with their stored bytes), rewriting the
    /// file. Failing to write only costs the next command its reads.
    pub fn replace(&mut self, records: Vec<(ListedRecord, Vec<u8>)>) {
        self.held = records.into_iter().map(|(r, b)| (stamp(&r), b)).collect();
        self.write();
    }

    fn write(&self) {
        let list: Vec<Cached> = self
            .held
            .iter()
            .map(|(&(id, size, modified_ns), bytes)| Cached { id, size, modified_ns, bytes: bytes.clone() })
            .collect();
        let _ = write_file(&self.path, &bitcode::encode(&list));
    }
}

fn read_file(path: &PathBuf) -> Option<HashMap<(u32, u64, u128), Vec<u8>>> {
    let mut f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).ok()?;
    if f.metadata().ok()?.len() > MAX_CACHE_FILE {
        return None;
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).ok()?;
    let body = bytes.strip_prefix(MAGIC)?;
    let list: Vec<Cached> = bitcode::decode(body).ok()?;
    Some(list.into_iter().map(|c| ((c.id, c.size, c.modified_ns), c.bytes)).collect())
}

fn write_file(path: &PathBuf, body: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f =
        OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(&tmp)?;
    let written = f.write_all(MAGIC).and_then(|()| f.write_all(body)).and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}
