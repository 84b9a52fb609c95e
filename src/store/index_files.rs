//! Index files: loading them into an [`Index`], writing new ones (split so
//! that none grows past a bound), and repairing a damaged index from the
//! packs' own footers.

use super::condemned::CondemnedLists;
use super::index::{Holding, Index};
use super::{keys, Repository, StoreError};
use crate::format::index_table::TableRecords;
use crate::format::records::{decode_index, encode_index, IndexFile, IndexedPack};
use crate::format::{ObjectKind, PackId};
use std::collections::HashSet;
use xxhash_rust::xxh3::xxh3_128;

/// No index file is written larger than about this; readers accept up to
/// [`MAX_INDEX_FILE`] (a larger one is treated as damaged: its packs are
/// read from their own footers).
const INDEX_FILE_TARGET: usize = 64 << 20;
const MAX_INDEX_FILE: u64 = 1 << 30;

/// How often a load starts over because a concurrent gc replaced the index
/// files while they were being read.
const LOAD_ATTEMPTS: usize = 8;

/// The index as loaded, with what could not be loaded.
pub struct LoadedIndex {
    pub index: Index,
    /// Index files that do not decode.
    pub bad_files: Vec<(String, StoreError)>,
    /// Packs no (good) index file lists, read from their footers.
    pub adopted: Vec<IndexedPack>,
    /// Unindexed packs whose footer cannot be read.
    pub bad_packs: Vec<(PackId, StoreError)>,
    /// Damage lists that do not decode: reported, otherwise ignored.
    pub bad_damage_lists: Vec<(String, StoreError)>,
    /// The condemned lists, read before the index files: a list written
    /// after this load began is known to the gc that reads this writer's
    /// marker.
    pub condemned: CondemnedLists,
    /// Indexed packs that storage does not hold (never deduplicated
    /// against; see [`Index::mark_missing`]).
    pub missing_packs: usize,
    /// The index files this load read (and those written since by
    /// [`Repository::index_adopted`]): what a gc that re-indexes may
    /// replace. A file that appeared later is another writer's.
    pub files: Vec<PackId>,
}

impl LoadedIndex {
    /// What a command should tell its user about this load.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.missing_packs > 0 {
            out.push(format!(
                "{} indexed pack(s) are missing from storage; their chunks are stored again, and \
                 `chkfs check` names the snapshots that used them",
                self.missing_packs
            ));
        }
        for (key, e) in &self.bad_damage_lists {
            out.push(format!(
                "damage list {key} is unreadable and ignored ({e}); `chkfs check --read-data` replaces it"
            ));
        }
        for (key, e) in &self.bad_files {
            out.push(format!(
                "index file {key} is unreadable ({}); its packs are read from their own footers",
                e.detail()
            ));
        }
        for (id, e) in &self.bad_packs {
            out.push(format!("pack {id} is not indexed and unreadable: {}", e.detail()));
        }
        for (key, e) in &self.condemned.bad {
            out.push(format!("condemned list {key} is unreadable and ignored ({}); gc removes it", e.detail()));
        }
        out
    }
}

impl Repository {
    /// The index: every index file that decodes, plus the footers of packs
    /// no index lists (from an interrupted save, or whose index file is
    /// damaged), so every complete pack is readable. An index file of a
    /// newer format is an error: it is never guessed at, nor removed.
    /// On an object store, unindexed packs are looked for only by
    /// [`Repository::load_index_full`]: no snapshot refers to them.
    pub fn load_index(&self) -> Result<LoadedIndex, StoreError> {
        self.load_index_holding(Holding::All)
    }

    /// `load_index`, always looking for unindexed packs (gc).
    pub fn load_index_full(&self) -> Result<LoadedIndex, StoreError> {
        self.load_with_retries(Load { holding: Holding::All, find_unindexed: true, verify_files: false })
    }

    /// `load_index_full`, reading every index file even where the local
    /// cache of index tables holds it (check): a damaged file is reported,
    /// and the tables made from it are dropped, so that the next writer
    /// reads it and repairs it.
    pub fn load_index_verified(&self) -> Result<LoadedIndex, StoreError> {
        self.load_with_retries(Load { holding: Holding::All, find_unindexed: true, verify_files: true })
    }

    /// `load_index` of the blobs `holding` keeps (every pack is listed).
    pub fn load_index_holding(&self, holding: Holding) -> Result<LoadedIndex, StoreError> {
        self.load_with_retries(Load { holding, find_unindexed: self.backend().lists_cheaply(), verify_files: false })
    }

    fn load_with_retries(&self, load: Load) -> Result<LoadedIndex, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_load_index(load)? {
                Some(loaded) => return Ok(loaded),
                None if attempt < LOAD_ATTEMPTS => continue,
                None => return Err(StoreError::Busy(self.location())),
            }
        }
    }

    /// None when an index file vanished between listing and reading (a gc
    /// replaced it), or when a check dropped cached tables made from a
    /// damaged file: the caller starts over with a fresh listing.
    fn try_load_index(&self, load: Load) -> Result<Option<LoadedIndex>, StoreError> {
        let Load { holding, find_unindexed, verify_files } = load;
        let condemned = self.condemned_lists()?;
        let damage = self.load_damage_lists()?;
        let mut index = Index::with_condemned(damage.entries, condemned.packs());
        let mut bad_files = Vec::new();
        let files = self.index_files()?;
        let cache = self.table_cache();
        let listed: HashSet<PackId> = files.iter().copied().collect();
        let chosen = cache.as_ref().map(|c| c.choose(&listed));
        let covered = chosen.as_ref().map(|c| c.covered.clone()).unwrap_or_default();
        let mut tables = chosen.map(|c| c.tables).unwrap_or_default();
        let mut damaged_covered = HashSet::new();
        for &name in &files {
            let is_covered = covered.contains(&name);
            if is_covered && !verify_files {
                continue;
            }
            let key = keys::index(name);
            let read = self.read_enveloped(&key, ObjectKind::Index, MAX_INDEX_FILE, Some(name));
            let decoded = read
                .and_then(|bytes| decode_index(&bytes).map_err(|e| StoreError::format(format!("index file {key}"), e)));
            match decoded {
                // check: a table must say what the file says.
                Ok(file) if is_covered => {
                    if !tables_agree(&tables, &file) {
                        damaged_covered.insert(name);
                    }
                    tables.iter().for_each(|t| t.release_pages());
                }
                // A table the cache cannot take (a full disk, say) is built
                // in memory instead: the cache never stops a command.
                Ok(file) => match (&cache, holding) {
                    (Some(cache), Holding::All) => match cache.write(&records_of(name, &file)) {
                        Ok(table) => tables.push(table),
                        Err(_) => index.add_packs_holding(&file.packs, holding),
                    },
                    _ => index.add_packs_holding(&file.packs, holding),
                },
                Err(e) if e.is_missing() => return Ok(None),
                Err(e @ (StoreError::NewerFormat { .. } | StoreError::Io { .. } | StoreError::Unsupported(_))) => {
                    return Err(e)
                }
                Err(_) if is_covered => {
                    damaged_covered.insert(name);
                }
                Err(e) => bad_files.push((key, e)),
            }
        }
        if let (Some(cache), false) = (&cache, damaged_covered.is_empty()) {
            cache.forget(&damaged_covered);
            return Ok(None);
        }
        let tables = match &cache {
            Some(cache) => cache.compact(tables),
            None => tables,
        };
        let in_memory = std::mem::take(&mut index);
        index = in_memory.with_tables_first(tables);
        let mut adopted = Vec::new();
        let mut bad_packs = Vec::new();
        let mut missing_packs = 0;
        let unindexed = if find_unindexed {
            let listed = self.list_packs()?;
            missing_packs = index.mark_missing(&listed.iter().map(|(id, _)| *id).collect());
            listed.into_iter().filter(|(id, _)| !index.contains_pack(*id)).collect()
        } else {
            Vec::new()
        };
        for (id, size) in unindexed {
            match self.read_pack_footer(id, size) {
                Ok(pack) => adopted.push(pack),
                // Not indexed, so nothing refers to it yet: a reader can go
                // on without it, and no writer ever removes it.
                Err(e @ StoreError::NewerFormat { .. }) => bad_packs.push((id, e)),
                Err(e) if e.is_damage() => bad_packs.push((id, e)),
                // Deleted between listing and reading.
                Err(e) if e.is_missing() => {}
                Err(e) => return Err(e),
            }
        }
        index.add_packs_holding(&adopted, holding);
        Ok(Some(LoadedIndex {
            index,
            bad_files,
            adopted,
            bad_packs,
            bad_damage_lists: damage.bad,
            condemned,
            missing_packs,
            files,
        }))
    }

    /// Deletes the local index tables covering any of `names` (index files
    /// this command deleted).
    pub fn forget_index_tables(&self, names: &HashSet<PackId>) {
        if let Some(cache) = self.table_cache() {
            cache.forget(names);
        }
    }

    /// Merges the local index tables of the listed index files when there
    /// are more than a lookup should search.
    pub fn compact_index_tables(&self) -> Result<(), StoreError> {
        if let Some(cache) = self.table_cache() {
            let listed: HashSet<PackId> = self.index_files()?.into_iter().collect();
            cache.compact(cache.choose(&listed).tables);
        }
        Ok(())
    }

    /// The names of the index files in storage.
    pub fn index_files(&self) -> Result<Vec<PackId>, StoreError> {
        Ok(self.backend().list(keys::INDEX)?.iter().filter_map(|l| keys::parse_index(&l.key)).collect())
    }

    pub fn delete_index_file(&self, name: PackId) -> Result<(), StoreError> {
        self.backend().delete(&keys::index(name))
    }

    /// Packs in storage that `index` does not list.
    pub fn unindexed_packs(&self, index: &Index) -> Result<Vec<(PackId, u64)>, StoreError> {
        Ok(self.list_packs()?.into_iter().filter(|(id, _)| !index.contains_pack(*id)).collect())
    }

    /// Writes index files listing `packs` (none for no packs), split so
    /// that none exceeds the target size, and makes them durable. The
    /// packs must be durable already. Returns each file's name and size.
    /// Packs are taken one group at a time: writing every pack of a large
    /// repository (a gc) holds one index file's worth in memory.
    pub fn write_index(&self, packs: impl IntoIterator<Item = IndexedPack>) -> Result<Vec<(PackId, u64)>, StoreError> {
        let mut written = Vec::new();
        let cache = self.table_cache();
        for group in (IndexGroups { packs: packs.into_iter().peekable() }) {
            let file = IndexFile { packs: group };
            let bytes = encode_index(&file).map_err(|e| StoreError::format("index file", e))?;
            let bytes = self.seal_object(ObjectKind::Index, "", bytes)?;
            let name = PackId(xxh3_128(&bytes));
            self.backend().write_if_absent(&keys::index(name), &bytes)?;
            written.push((name, bytes.len() as u64));
            // The next load then maps it instead of decoding the file; a
            // cache that cannot be written only costs that decoding.
            if let Some(cache) = &cache {
                let _ = cache.write(&records_of(name, &file));
            }
        }
        if !written.is_empty() {
            self.sync()?;
        }
        Ok(written)
    }

    /// Indexes the packs a load read from their footers (left unindexed by
    /// an interrupted writer, or by one still running: listing a pack
    /// twice is harmless). A condemned pack is not indexed again: a gc may
    /// be deleting it, and an index file naming it once it is gone would
    /// outlive the condemned list that warns writers off it. Returns a
    /// note for the user.
    pub fn index_adopted(&self, loaded: &mut LoadedIndex) -> Result<Option<String>, StoreError> {
        let condemned: std::collections::HashSet<PackId> = loaded.condemned.packs().collect();
        let mut adopted = std::mem::take(&mut loaded.adopted);
        adopted.retain(|p| !condemned.contains(&p.id));
        if adopted.is_empty() {
            return Ok(None);
        }
        let note = format!("indexing {} pack(s) left without an index", adopted.len());
        loaded.files.extend(self.write_index(adopted)?.into_iter().map(|(name, _)| name));
        Ok(Some(note))
    }

    /// Makes the index in storage whole again: removes damaged index files,
    /// then indexes every pack that was read from its footer. A crash in
    /// between only leaves packs unindexed, which the next load adopts
    /// again. Returns what it did, for the user.
    pub fn repair_index(&self, loaded: &mut LoadedIndex) -> Result<Vec<String>, StoreError> {
        let mut done = Vec::new();
        for (key, e) in std::mem::take(&mut loaded.bad_files) {
            done.push(format!("removing a damaged index file ({e}); its packs are indexed again"));
            // A damaged file may bear the name the repaired one will have.
            if let Some(name) = keys::parse_index(&key) {
                self.delete_index_file(name)?;
            }
        }
        if !done.is_empty() {
            self.sync()?;
        }
        done.extend(self.index_adopted(loaded)?);
        Ok(done)
    }
}

#[derive(Clone, Copy)]
struct Load {
    holding: Holding,
    find_unindexed: bool,
    verify_files: bool,
}

/// True when every pack of `file` is in one of `tables` exactly as the
/// file lists it.
fn tables_agree(tables: &[std::sync::Arc<super::index::Table>], file: &IndexFile) -> bool {
    let mut seen = HashSet::new();
    file.packs.iter().filter(|p| seen.insert(p.id)).all(|pack| {
        tables.iter().any(|t| {
            let view = t.view();
            view.find_pack(pack.id)
                .is_some_and(|slot| view.indexed_pack(slot) == *pack && view.pack_is_consistent(slot))
        })
    })
}

/// The records of a table covering index file `name`.
fn records_of(name: PackId, file: &IndexFile) -> TableRecords {
    let mut seen = HashSet::new();
    let mut records = TableRecords { covers: vec![name], ..Default::default() };
    records.add_packs(&file.packs, |_| true, |id| !seen.insert(id));
    records
}

/// Groups packs, as they come, so that each group's index file stays near
/// the target (a pack larger than the target makes a group of its own).
struct IndexGroups<I: Iterator<Item = IndexedPack>> {
    packs: std::iter::Peekable<I>,
}

impl<I: Iterator<Item = IndexedPack>> Iterator for IndexGroups<I> {
    type Item = Vec<IndexedPack>;

    fn next(&mut self) -> Option<Vec<IndexedPack>> {
        let estimate = |p: &IndexedPack| 32 + p.blocks.iter().map(|b| 24 + 30 * b.blobs.len()).sum::<usize>();
        let first = self.packs.next()?;
        let mut size = estimate(&first);
        let mut group = vec![first];
        while let Some(pack) = self.packs.next_if(|p| size.saturating_add(estimate(p)) <= INDEX_FILE_TARGET) {
            size += estimate(&pack);
            group.push(pack);
        }
        Some(group)
    }
}

#[cfg(test)]
fn split_for_index_files(packs: Vec<IndexedPack>) -> Vec<Vec<IndexedPack>> {
    IndexGroups { packs: packs.into_iter().peekable() }.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::{BlobEntry, BlobKind, BlockInfo, Codec};
    use crate::format::BlobId;

    #[test]
    fn large_index_is_split_into_bounded_files() {
        let blobs: Vec<BlobEntry> =
            (0..2000).map(|i| BlobEntry { id: BlobId(i), kind: BlobKind::Data, offset: 0, len: 1 }).collect();
        let block = BlockInfo { offset: 16, stored_len: 1, raw_len: 1, codec: Codec::Raw, blobs };
        let packs: Vec<IndexedPack> =
            (0..3000).map(|i| IndexedPack { id: PackId(i), size: 100, blocks: vec![block.clone()] }).collect();
        let groups = split_for_index_files(packs);
        assert!(groups.len() > 1);
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 3000);
        for g in &groups {
            let bytes = encode_index(&IndexFile { packs: g.clone() }).unwrap();
            assert!(bytes.len() <= INDEX_FILE_TARGET + (1 << 20), "{} bytes", bytes.len());
        }
    }
}
