//! A repository on disk: its config, index files, snapshot records and
//! damage lists, reached only through the [`Backend`].
//!
//! ```text
//! config                       format version, hashing secret, chunk sizes
//! lock                         flock(2) target for writers
//! packs/<2 hex>/<32 hex>.pack  blocks of blobs; named by their content hash
//! index/<32 hex>.idx           block lists of packs (rebuildable from packs)
//! snapshots/<8 hex>.snap       snapshot records, written last
//! damaged/<32 hex>.list        blob copies found damaged by check
//! ```

use super::backend::{Backend, LocalBackend};
use super::index::{pack_path, Index};
use super::{StoreError, WriteLock};
use crate::chunking::ChunkSizes;
use crate::format::pack::{check_header, decode_footer, footer_location, HEADER_LEN, TRAILER_LEN};
use crate::format::records::{
    decode_config, decode_damage_list, decode_index, decode_snapshot, encode_config, encode_damage_list, encode_index,
    encode_snapshot, ChunkerParams, Config, DamageList, IndexFile, IndexedPack, Snapshot, Timestamp, HASH_SECRET_LEN,
};
use crate::format::{BlobId, PackId, SnapshotId};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;
use xxhash_rust::xxh3::{xxh3_128, xxh3_128_with_secret_input, SecretInput};

pub struct Repository {
    root: PathBuf,
    backend: LocalBackend,
    config: Config,
    secret: SecretInput<Vec<u8>>,
}

/// The index as loaded, with what could not be loaded.
pub struct LoadedIndex {
    pub index: Index,
    /// Index files that do not decode.
    pub bad_files: Vec<(String, StoreError)>,
    /// Packs no (good) index file lists, read from their footers.
    pub adopted: Vec<IndexedPack>,
    /// Unindexed packs whose footer cannot be read.
    pub bad_packs: Vec<(PackId, StoreError)>,
}

#[derive(Debug, Clone)]
pub struct SnapshotEntry {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    /// Size of the record on disk.
    pub record_len: u64,
}

impl Repository {
    /// Creates a new, empty repository at `root` (which must be missing or
    /// an empty directory).
    pub fn init(root: &Path, sizes: ChunkSizes) -> Result<Repository, StoreError> {
        let not_empty = std::fs::read_dir(root).map(|mut d| d.next().is_some()).unwrap_or(false);
        if not_empty {
            return Err(StoreError::AlreadyExists(root.to_path_buf()));
        }
        std::fs::create_dir_all(root).map_err(|e| StoreError::io(root, e))?;
        for dir in ["packs", "index", "snapshots", "damaged"] {
            let p = root.join(dir);
            std::fs::create_dir_all(&p).map_err(|e| StoreError::io(&p, e))?;
        }
        let config = Config {
            repo_id: u128::from_le_bytes(random_bytes::<16>(root)?),
            hash_secret: random_vec(root, HASH_SECRET_LEN)?,
            chunker: ChunkerParams {
                min_size: sizes.min as u32,
                avg_size: sizes.avg as u32,
                max_size: sizes.max as u32,
            },
            created: Timestamp::now(),
        };
        let backend = LocalBackend::new(root);
        if !backend.write_if_absent("config", &encode_config(&config))? {
            return Err(StoreError::AlreadyExists(root.to_path_buf()));
        }
        Self::open(root)
    }

    pub fn open(root: &Path) -> Result<Repository, StoreError> {
        let root = std::path::absolute(root).map_err(|e| StoreError::io(root, e))?;
        let backend = LocalBackend::new(&root);
        let bytes = match backend.read("config") {
            Ok(b) => b,
            Err(StoreError::Io { source, .. }) if is_missing(&source) => {
                return Err(StoreError::NotARepository(root));
            }
            Err(e) => return Err(e),
        };
        let config = decode_config(&bytes).map_err(|e| StoreError::format(format!("{}/config", root.display()), e))?;
        let secret =
            SecretInput::try_new(config.hash_secret.clone()).ok_or_else(|| StoreError::NotARepository(root.clone()))?;
        Ok(Repository { root, backend, config, secret })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn backend(&self) -> &dyn Backend {
        &self.backend
    }

    /// Removes temporary files left by interrupted writers. Callers hold
    /// the write lock.
    pub fn remove_stale_temps(&self) -> Result<usize, StoreError> {
        self.backend.remove_stale_temps()
    }

    pub fn chunk_sizes(&self) -> ChunkSizes {
        let c = &self.config.chunker;
        ChunkSizes { min: c.min_size as usize, avg: c.avg_size as usize, max: c.max_size as usize }
    }

    /// The keyed content hash that names blobs.
    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        BlobId(xxh3_128_with_secret_input(data, &self.secret))
    }

    pub fn lock(&self, wait: Duration) -> Result<WriteLock, StoreError> {
        WriteLock::acquire(&self.root, wait)
    }

    /// The index: every index file that decodes, plus the footers of packs
    /// no index lists (from an interrupted save, or whose index file is
    /// damaged), so every complete pack is readable.
    pub fn load_index(&self) -> Result<LoadedIndex, StoreError> {
        let mut index = Index::new(self.damage_list()?);
        let mut bad_files = Vec::new();
        for (path, _) in self.backend.list("index")? {
            let bytes = match self.backend.read(&path) {
                Ok(b) => b,
                // Removed by a gc after listing: its packs are listed next.
                Err(StoreError::Io { source, .. }) if is_missing(&source) => continue,
                Err(e) => return Err(e),
            };
            match decode_index(&bytes) {
                Ok(file) => file.packs.iter().for_each(|p| index.add_pack(p)),
                Err(e) => bad_files.push((path.clone(), StoreError::format(&path, e))),
            }
        }
        let mut adopted = Vec::new();
        let mut bad_packs = Vec::new();
        for (id, size) in self.unindexed_packs(&index)? {
            match self.read_pack_footer(id, size) {
                Ok(pack) => adopted.push(pack),
                Err(e) if e.is_damage() => bad_packs.push((id, e)),
                // Deleted between listing and reading.
                Err(StoreError::Io { source, .. }) if is_missing(&source) => {}
                Err(e) => return Err(e),
            }
        }
        for pack in &adopted {
            index.add_pack(pack);
        }
        Ok(LoadedIndex { index, bad_files, adopted, bad_packs })
    }

    /// Packs on disk that no index file lists.
    pub fn unindexed_packs(&self, index: &Index) -> Result<Vec<(PackId, u64)>, StoreError> {
        let mut out = Vec::new();
        for (path, size) in self.backend.list("packs")? {
            if let Some(id) = pack_id_from_path(&path) {
                if !index.contains_pack(id) {
                    out.push((id, size));
                }
            }
        }
        Ok(out)
    }

    /// Reads a pack's own footer (header, trailer and footer only).
    pub fn read_pack_footer(&self, id: PackId, size: u64) -> Result<IndexedPack, StoreError> {
        let path = pack_path(id);
        if size < (HEADER_LEN + TRAILER_LEN) as u64 {
            return Err(StoreError::format(&path, crate::format::FormatError::Truncated(size as usize)));
        }
        let header = self.backend.read_range(&path, 0, HEADER_LEN)?;
        check_header(&header).map_err(|e| StoreError::format(&path, e))?;
        let trailer = self.backend.read_range(&path, size - TRAILER_LEN as u64, TRAILER_LEN)?;
        let (start, len) = footer_location(&trailer, size).map_err(|e| StoreError::format(&path, e))?;
        let bytes = self.backend.read_range(&path, start, len)?;
        let footer = decode_footer(&bytes, start).map_err(|e| StoreError::format(&path, e))?;
        Ok(IndexedPack { id, size, blocks: footer.blocks })
    }

    /// Writes an index file for `packs` (none for no packs); returns its
    /// path and size.
    pub fn write_index(&self, packs: Vec<IndexedPack>) -> Result<Option<(String, u64)>, StoreError> {
        if packs.is_empty() {
            return Ok(None);
        }
        let bytes = encode_index(&IndexFile { packs });
        let path = format!("index/{}.idx", PackId(xxh3_128(&bytes)).to_hex());
        self.backend.write_if_absent(&path, &bytes)?;
        Ok(Some((path, bytes.len() as u64)))
    }

    /// Removes damage lists that only name packs in `gone`.
    pub fn prune_damage_lists(&self, gone: &std::collections::HashSet<PackId>) -> Result<(), StoreError> {
        for (path, _) in self.backend.list("damaged")? {
            let bytes = self.backend.read(&path)?;
            let all_gone = decode_damage_list(&bytes).is_ok_and(|l| l.entries.iter().all(|(p, _)| gone.contains(p)));
            if all_gone {
                self.backend.delete(&path)?;
            }
        }
        Ok(())
    }

    /// Makes the index on disk whole again: removes damaged index files,
    /// then indexes every pack that was read from its footer. A crash in
    /// between only leaves packs unindexed, which the next load adopts
    /// again. Callers hold the write lock.
    pub fn repair_index(&self, loaded: &mut LoadedIndex) -> Result<(), StoreError> {
        for (path, e) in std::mem::take(&mut loaded.bad_files) {
            eprintln!("chkfs: removing damaged index file ({e}); its packs are indexed again");
            // A damaged file may bear the name the repaired one will have.
            self.backend.delete(&path)?;
        }
        let adopted = std::mem::take(&mut loaded.adopted);
        if !adopted.is_empty() {
            eprintln!("chkfs: indexing {} pack(s) left without an index", adopted.len());
        }
        self.write_index(adopted)?;
        Ok(())
    }

    pub fn damage_list(&self) -> Result<Vec<(PackId, BlobId)>, StoreError> {
        let mut out = Vec::new();
        for (path, _) in self.backend.list("damaged")? {
            let bytes = self.backend.read(&path)?;
            let list = decode_damage_list(&bytes).map_err(|e| StoreError::format(&path, e))?;
            out.extend(list.entries);
        }
        Ok(out)
    }

    /// Records damaged blob copies so no later save deduplicates against them.
    pub fn record_damage(&self, mut entries: Vec<(PackId, BlobId)>) -> Result<(), StoreError> {
        let known: std::collections::HashSet<_> = self.damage_list()?.into_iter().collect();
        entries.retain(|e| !known.contains(e));
        if entries.is_empty() {
            return Ok(());
        }
        entries.sort();
        let bytes = encode_damage_list(&DamageList { entries });
        let path = format!("damaged/{}.list", PackId(xxh3_128(&bytes)).to_hex());
        self.backend.write_if_absent(&path, &bytes).map(|_| ())
    }

    /// Every snapshot that can be read, oldest first; a damaged record is
    /// reported on standard error and left out (`check` names it; `gc`,
    /// which must not miss one, uses [`Repository::snapshots`]).
    pub fn readable_snapshots(&self) -> Result<Vec<SnapshotEntry>, StoreError> {
        let mut out = Vec::new();
        for id in self.snapshot_ids()? {
            match self.read_snapshot(id) {
                Ok(Some(snapshot)) => out.push(SnapshotEntry { id, snapshot, record_len: 0 }),
                Ok(None) => {}
                Err(e) if e.is_damage() => eprintln!("chkfs: warning: snapshot {id} is unreadable: {e}"),
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|s| (s.snapshot.time, s.id));
        Ok(out)
    }

    /// Every snapshot, oldest first. A record that cannot be decoded is an
    /// error naming it.
    pub fn snapshots(&self) -> Result<Vec<SnapshotEntry>, StoreError> {
        let mut out = Vec::new();
        for (path, len) in self.backend.list("snapshots")? {
            let Some(id) = snapshot_id_from_path(&path) else {
                continue;
            };
            let bytes = match self.backend.read(&path) {
                Ok(b) => b,
                // Forgotten between listing and reading.
                Err(StoreError::Io { source, .. }) if is_missing(&source) => continue,
                Err(e) => return Err(e),
            };
            let snapshot = decode_snapshot(&bytes).map_err(|e| StoreError::format(&path, e))?;
            out.push(SnapshotEntry { id, snapshot, record_len: len });
        }
        out.sort_by_key(|s| (s.snapshot.time, s.id));
        Ok(out)
    }

    /// The ids of all snapshots, from the file names alone.
    pub fn snapshot_ids(&self) -> Result<Vec<SnapshotId>, StoreError> {
        Ok(self.backend.list("snapshots")?.iter().filter_map(|(p, _)| snapshot_id_from_path(p)).collect())
    }

    /// One snapshot record; None when it is gone (forgotten meanwhile).
    pub fn read_snapshot(&self, id: SnapshotId) -> Result<Option<Snapshot>, StoreError> {
        let path = format!("snapshots/{}.snap", id.to_hex());
        match self.backend.read(&path) {
            Ok(bytes) => decode_snapshot(&bytes).map(Some).map_err(|e| StoreError::format(&path, e)),
            Err(StoreError::Io { source, .. }) if is_missing(&source) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The id of a snapshot given as `latest` or a unique prefix, from the
    /// record names alone (so a damaged record can still be named).
    pub fn resolve_snapshot_id(&self, spec: &str) -> Result<SnapshotId, StoreError> {
        if spec == "latest" {
            return self.resolve_snapshot(spec).map(|s| s.id);
        }
        let spec_lower = spec.to_ascii_lowercase();
        let valid = !spec.is_empty() && spec.len() <= 8 && spec.bytes().all(|b| b.is_ascii_hexdigit());
        let ids: Vec<SnapshotId> = self.snapshot_ids()?;
        let matches: Vec<_> = ids.into_iter().filter(|id| valid && id.to_hex().starts_with(&spec_lower)).collect();
        match matches.as_slice() {
            [] => Err(StoreError::SnapshotNotFound(spec.into())),
            [one] => Ok(*one),
            many => Err(StoreError::AmbiguousSnapshot {
                prefix: spec.into(),
                candidates: many.iter().map(|s| s.to_hex()).collect(),
            }),
        }
    }

    /// Finds a snapshot by `latest` or a unique prefix of its id.
    pub fn resolve_snapshot(&self, spec: &str) -> Result<SnapshotEntry, StoreError> {
        let mut all = self.readable_snapshots()?;
        if spec == "latest" {
            return all.pop().ok_or_else(|| StoreError::SnapshotNotFound(spec.into()));
        }
        let valid = !spec.is_empty() && spec.len() <= 8 && spec.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Err(StoreError::SnapshotNotFound(spec.into()));
        }
        let spec_lower = spec.to_ascii_lowercase();
        let mut matches: Vec<SnapshotEntry> =
            all.into_iter().filter(|s| s.id.to_hex().starts_with(&spec_lower)).collect();
        match matches.len() {
            0 => Err(StoreError::SnapshotNotFound(spec.into())),
            1 => Ok(matches.remove(0)),
            _ => Err(StoreError::AmbiguousSnapshot {
                prefix: spec.into(),
                candidates: matches.iter().map(|s| s.id.to_hex()).collect(),
            }),
        }
    }

    /// Writes a snapshot record under a fresh random id; returns the id and
    /// the record's size. `finish` may complete the record knowing its size.
    pub fn write_snapshot(
        &self,
        snapshot: &mut Snapshot,
        finish: impl Fn(&mut Snapshot, u64),
    ) -> Result<(SnapshotId, u64), StoreError> {
        let mut len = 0u64;
        let mut bytes = Vec::new();
        // The record counts its own size in its stats: settle the fixpoint.
        for _ in 0..4 {
            finish(snapshot, len);
            bytes = encode_snapshot(snapshot);
            if bytes.len() as u64 == len {
                break;
            }
            len = bytes.len() as u64;
        }
        loop {
            let id = SnapshotId(u32::from_le_bytes(random_bytes::<4>(&self.root)?));
            let path = format!("snapshots/{}.snap", id.to_hex());
            if self.backend.write_if_absent(&path, &bytes)? {
                return Ok((id, bytes.len() as u64));
            }
        }
    }
}

fn is_missing(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

fn pack_id_from_path(path: &str) -> Option<PackId> {
    let name = path.rsplit('/').next()?;
    PackId::from_hex(name.strip_suffix(".pack")?).ok()
}

fn snapshot_id_from_path(path: &str) -> Option<SnapshotId> {
    let name = path.rsplit('/').next()?;
    SnapshotId::from_hex(name.strip_suffix(".snap")?).ok()
}

fn random_vec(ctx: &Path, n: usize) -> Result<Vec<u8>, StoreError> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).map_err(|e| StoreError::io(ctx, e))?;
    Ok(buf)
}

fn random_bytes<const N: usize>(ctx: &Path) -> Result<[u8; N], StoreError> {
    let v = random_vec(ctx, N)?;
    Ok(v.try_into().expect("length N"))
}
