//! The index: where every blob lives (pack, block, offset).
//!
//! Made of index tables (see [`crate::format::index_table`]): mapped from
//! the local cache, so that opening it costs the same at any size, or
//! built in memory from index files the cache does not hold yet. Index
//! files hold the same block lists as the pack footers. A blob may be stored more than once (a
//! damaged copy healed by a later save); a healthy copy is preferred.
//!
//! Blobs are found by kind and id together: a file whose bytes equal an
//! encoded tree has the tree's id, and must stay a different blob.

use crate::format::index_table::{self, TableParts, TableRecords, TableView};
use crate::format::pack::{BlobKind, BlockInfo, Codec};
use crate::format::records::IndexedPack;
use crate::format::{BlobId, FormatError, PackId};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Hashes blob ids for the index's tables. The ids in an index file are
/// whatever its writer put there: a forged index whose ids share the bits
/// a table uses would make every insert scan one bucket (a load that never
/// ends). So all 128 bits go through a strong mixer under a key drawn at
/// random for each process, which a file written beforehand cannot know.
pub struct IdHasher(u64);

impl Default for IdHasher {
    fn default() -> Self {
        IdHasher(process_key().0)
    }
}

fn process_key() -> (u64, u64) {
    static KEY: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    *KEY.get_or_init(|| {
        use std::hash::BuildHasher;
        let s = std::collections::hash_map::RandomState::new();
        (s.hash_one(0x6368_6b66_u64), s.hash_one(0x6964_7321_u64) | 1)
    })
}

/// MurmurHash3's finalizer: every input bit affects every output bit.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        fmix64(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    /// Small values (a blob's kind): cheap folding is enough, they cannot
    /// be chosen freely.
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(31);
    }
    /// An id: the low half through a keyed bijection, the high half keyed
    /// and added, so ids crafted to agree in either half still differ in
    /// the state, and the final mix spreads every bit.
    fn write_u128(&mut self, n: u128) {
        let (k0, k1) = process_key();
        self.0 = self.0.wrapping_add(fmix64(n as u64 ^ k0)).wrapping_add((n >> 64) as u64 ^ k1);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
}

/// A blob's identity: what it is, and its content hash.
pub type BlobKey = (BlobKind, BlobId);

pub type IdMap<V> = HashMap<BlobKey, V, BuildHasherDefault<IdHasher>>;
pub type IdSet = HashSet<BlobKey, BuildHasherDefault<IdHasher>>;

#[derive(Debug, Clone, Copy, Default)]
pub struct PackMeta {
    pub id: PackId,
    pub size: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct BlockLoc {
    pub pack: u32,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    pub codec: Codec,
}

#[derive(Debug, Clone, Copy)]
pub struct BlobLoc {
    pub id: BlobId,
    pub kind: BlobKind,
    pub block: u32,
    pub offset: u32,
    pub len: u32,
    /// Where this copy is in the index: what a gc marks.
    pub pos: u32,
}

/// Which blobs an index holds: all, or the trees only (every pack is
/// listed either way). A mount lists directories with the trees while
/// the rest loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    All,
    Trees,
}

impl Holding {
    fn keeps(self, block: &BlockInfo) -> bool {
        self == Holding::All || block.blobs.first().is_some_and(|b| b.kind == BlobKind::Tree)
    }
}

/// The index: index tables (mapped from the local cache, or built in
/// memory), each numbered after the ones before it, so that a pack, a
/// block and a blob copy each have one number across the whole index.
#[derive(Default)]
pub struct Index {
    tables: Vec<Numbered>,
    /// Pack slots listing a pack an earlier slot lists too (index files
    /// that overlap, as after a crash between a gc's writing of new ones
    /// and its deleting of the old): ignored, so that each pack counts
    /// once and gc never takes a second listing for a dead pack.
    shadowed: HashSet<u32>,
    damaged: HashSet<(PackId, BlobId)>,
    /// Packs a gc condemned: readable, never deduplicated against.
    condemned: HashSet<PackId>,
}

struct Numbered {
    table: Arc<Table>,
    packs: u32,
    blocks: u32,
    blobs: u32,
}

impl Index {
    pub fn new(damaged: impl IntoIterator<Item = (PackId, BlobId)>) -> Self {
        Index { damaged: damaged.into_iter().collect(), ..Default::default() }
    }

    /// An index whose copies in `condemned` packs are readable but never
    /// preferred nor deduplicated against.
    pub fn with_condemned(
        damaged: impl IntoIterator<Item = (PackId, BlobId)>,
        condemned: impl IntoIterator<Item = PackId>,
    ) -> Self {
        Index { condemned: condemned.into_iter().collect(), ..Self::new(damaged) }
    }

    /// The same tables (shared, not copied), with the copies in `packs`
    /// never deduplicated against as well.
    pub fn with_unusable(&self, packs: impl IntoIterator<Item = PackId>) -> Index {
        let mut condemned = self.condemned.clone();
        condemned.extend(packs);
        let tables = self
            .tables
            .iter()
            .map(|t| Numbered { table: t.table.clone(), packs: t.packs, blocks: t.blocks, blobs: t.blobs })
            .collect();
        Index { tables, shadowed: self.shadowed.clone(), damaged: self.damaged.clone(), condemned }
    }

    pub fn condemned(&self) -> &HashSet<PackId> {
        &self.condemned
    }

    /// Indexed packs that storage does not hold (an index file put back
    /// after its packs were deleted): like condemned packs, never
    /// deduplicated against, so that a save stores its chunks afresh
    /// instead of pointing at nothing.
    pub fn mark_missing(&mut self, present: &HashSet<PackId>) -> usize {
        let missing: Vec<PackId> = self.packs().map(|(_, p)| p.id).filter(|id| !present.contains(id)).collect();
        self.condemned.extend(missing.iter().copied());
        missing.len()
    }

    /// True when this copy may be deduplicated against: neither found
    /// damaged nor in a condemned pack.
    pub fn is_usable(&self, loc: &BlobLoc) -> bool {
        if self.damaged.is_empty() && self.condemned.is_empty() {
            return true;
        }
        let pack = self.pack_of(loc).id;
        !self.condemned.contains(&pack) && !self.damaged.contains(&(pack, loc.id))
    }

    pub fn contains_pack(&self, id: PackId) -> bool {
        self.tables.iter().any(|t| t.table.view().find_pack(id).is_some())
    }

    pub fn pack_count(&self) -> u32 {
        self.tables.last().map_or(0, |t| t.packs + t.table.view().pack_count())
    }

    pub fn block_count(&self) -> u32 {
        self.tables.last().map_or(0, |t| t.blocks + t.table.view().block_count())
    }

    /// Blob copies listed (a blob stored twice counts twice).
    pub fn blob_count(&self) -> u32 {
        self.tables.last().map_or(0, |t| t.blobs + t.table.view().blob_count())
    }

    /// Every pack once, with its slot.
    pub fn packs(&self) -> impl Iterator<Item = (u32, PackMeta)> + '_ {
        self.pack_slots().map(|slot| (slot, self.pack(slot)))
    }

    /// Every pack's slot, once per pack.
    pub fn pack_slots(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.pack_count()).filter(|s| !self.shadowed.contains(s))
    }

    /// Bytes the index holds in memory: tables built in memory and the
    /// sets of damaged and condemned copies. Mapped tables are page cache.
    pub fn memory_size(&self) -> u64 {
        use std::mem::size_of;
        let owned: usize = self.tables.iter().filter(|t| !t.table.is_mapped()).map(|t| t.table.len()).sum();
        let sets = self.damaged.capacity() * (size_of::<(PackId, BlobId)>() + 1)
            + self.condemned.capacity() * (size_of::<PackId>() + 1);
        (owned + sets) as u64
    }

    /// Drops the pages of mapped tables from this process's memory (see
    /// [`Table::release_pages`]): walks over every pack call it as they go.
    pub fn release_pages(&self) {
        self.tables.iter().for_each(|t| t.table.release_pages());
    }

    /// Counts a lookup of a walk that looks up everything (gc's mark,
    /// check): every 65,536 of them, the pages read go (see
    /// [`Index::release_pages`]), so that the walk's memory stays flat.
    pub fn count_lookup(&self, count: &mut u32) {
        *count = count.wrapping_add(1);
        if *count % 65536 == 0 {
            self.release_pages();
        }
    }

    /// Bytes of index tables mapped from the local cache.
    pub fn mapped_size(&self) -> u64 {
        self.tables.iter().filter(|t| t.table.is_mapped()).map(|t| t.table.len() as u64).sum()
    }

    /// The tables, in order.
    pub fn tables(&self) -> impl Iterator<Item = &Arc<Table>> + '_ {
        self.tables.iter().map(|t| &t.table)
    }

    /// This index with `tables` numbered before its own.
    pub fn with_tables_first(self, tables: Vec<Arc<Table>>) -> Index {
        let mut out = Index { damaged: self.damaged, condemned: self.condemned, ..Default::default() };
        tables.into_iter().chain(self.tables.into_iter().map(|t| t.table)).for_each(|t| out.add_table(t));
        out
    }

    /// Adds a table after the others.
    pub fn add_table(&mut self, table: Arc<Table>) {
        let (packs, blocks, blobs) = (self.pack_count(), self.block_count(), self.blob_count());
        let view = table.view();
        let mut previous = None;
        for i in 0..view.pack_count() {
            let slot = view.pack_in_order(i);
            let id = view.pack(slot).id;
            if previous == Some(id) || self.contains_pack(id) {
                self.shadowed.insert(packs.saturating_add(slot));
            }
            previous = Some(id);
        }
        self.tables.push(Numbered { table, packs, blocks, blobs });
    }

    /// Adds the packs of an index file as one table built in memory.
    pub fn add_packs(&mut self, packs: &[IndexedPack]) {
        self.add_packs_holding(packs, Holding::All)
    }

    /// `add_packs`, keeping the blocks `holding` keeps. A pack already
    /// known is ignored.
    pub fn add_packs_holding(&mut self, packs: &[IndexedPack], holding: Holding) {
        let mut seen = HashSet::new();
        let mut records = TableRecords::default();
        records.add_packs(packs, |b| holding.keeps(b), |id| self.contains_pack(id) || !seen.insert(id));
        if records.packs.is_empty() {
            return;
        }
        let flags = if holding == Holding::Trees { index_table::TREES_ONLY } else { 0 };
        // Encoding plain records into memory cannot fail short of 2^32
        // records, which one index file cannot hold.
        if let Ok(table) = records.encode(flags).and_then(Table::owned) {
            self.add_table(Arc::new(table));
        }
    }

    pub fn add_pack(&mut self, pack: &IndexedPack) {
        self.add_packs(std::slice::from_ref(pack))
    }

    pub fn add_pack_holding(&mut self, pack: &IndexedPack, holding: Holding) {
        self.add_packs_holding(std::slice::from_ref(pack), holding)
    }

    /// The table holding global number `n` of the kind `count` picks, and
    /// `n` within it.
    fn locate(&self, n: u32, base: impl Fn(&Numbered) -> u32) -> Option<(&Numbered, u32)> {
        let i = self.tables.partition_point(|t| base(t) <= n).checked_sub(1)?;
        let t = &self.tables[i];
        Some((t, n - base(t)))
    }

    /// True when some blob copy is known to be damaged.
    pub fn has_damage(&self) -> bool {
        !self.damaged.is_empty()
    }

    /// True when some copy may not be deduplicated against (damaged, or
    /// in a condemned pack): reusing a chunk then needs a look-up.
    pub fn has_unusable(&self) -> bool {
        !self.damaged.is_empty() || !self.condemned.is_empty()
    }

    /// Every copy of the blob, in index order.
    fn copies(&self, kind: BlobKind, id: BlobId) -> impl Iterator<Item = BlobLoc> + '_ {
        let copies = self.tables.iter().flat_map(move |t| {
            let view = t.table.view();
            view.find(kind, id).map(move |i| {
                let pos = view.sorted(i);
                let r = view.blob(pos);
                // The id asked for: a read checks the bytes against it, so
                // a record that disagrees with its entry gives an error.
                BlobLoc {
                    id,
                    kind,
                    block: t.blocks.saturating_add(r.block),
                    offset: r.offset,
                    len: r.len,
                    pos: t.blobs.saturating_add(pos),
                }
            })
        });
        copies.filter(|l| self.shadowed.is_empty() || !self.shadowed.contains(&self.block(l.block).pack))
    }

    /// The index position of the copy [`Index::preferred`] would return,
    /// without reading any blob record when no copy can be unusable (the
    /// common case): gc marks this.
    pub fn preferred_pos(&self, kind: BlobKind, id: BlobId) -> Option<u32> {
        if self.has_unusable() || !self.shadowed.is_empty() {
            return self.preferred(kind, id).map(|l| l.pos);
        }
        self.tables.iter().find_map(|t| {
            let view = t.table.view();
            let found = view.find(kind, id);
            (!found.is_empty()).then(|| t.blobs.saturating_add(view.sorted(found.start)))
        })
    }

    /// True when a healthy copy exists: what a save may deduplicate against.
    pub fn has_healthy(&self, kind: BlobKind, id: BlobId) -> bool {
        if !self.has_unusable() && self.shadowed.is_empty() {
            // Every copy is usable: the sorted entries alone answer.
            return self.preferred_pos(kind, id).is_some();
        }
        self.copies(kind, id).any(|l| self.is_usable(&l))
    }

    /// True when some copy is listed, healthy or not.
    pub fn contains(&self, kind: BlobKind, id: BlobId) -> bool {
        self.copies(kind, id).next().is_some()
    }

    /// Every stored copy of the blob, healthy ones first.
    pub fn locations(&self, kind: BlobKind, id: BlobId) -> impl Iterator<Item = BlobLoc> {
        let mut all: Vec<BlobLoc> = self.copies(kind, id).collect();
        if self.has_unusable() {
            all.sort_by_key(|l| !self.is_usable(l));
        }
        all.into_iter()
    }

    /// The copy a reader prefers: the first healthy one, else the first.
    pub fn preferred(&self, kind: BlobKind, id: BlobId) -> Option<BlobLoc> {
        let mut first = None;
        for l in self.copies(kind, id) {
            if self.is_usable(&l) {
                return Some(l);
            }
            first = first.or(Some(l));
        }
        first
    }

    /// The pack in `slot` as an index file lists it.
    pub fn indexed_pack(&self, slot: u32) -> IndexedPack {
        match self.locate(slot, |t| t.packs) {
            Some((t, s)) => t.table.view().indexed_pack(s),
            None => IndexedPack { id: PackId(0), size: 0, blocks: Vec::new() },
        }
    }

    /// The blocks of the pack in `slot`.
    pub fn blocks_of_pack(&self, slot: u32) -> std::ops::Range<u32> {
        let Some((t, s)) = self.locate(slot, |t| t.packs) else { return 0..0 };
        let r = t.table.view().blocks_of_pack(s);
        t.blocks + r.start..t.blocks + r.end
    }

    pub fn block(&self, n: u32) -> BlockLoc {
        let Some((t, k)) = self.locate(n, |t| t.blocks) else {
            return BlockLoc { pack: u32::MAX, offset: 0, stored_len: 0, raw_len: 0, codec: Codec::Raw };
        };
        let b = t.table.view().block(k);
        BlockLoc {
            pack: t.packs.saturating_add(b.pack),
            offset: b.offset,
            stored_len: b.stored_len,
            raw_len: b.raw_len,
            // A codec byte no writer wrote: decompression then fails, and
            // every blob is checked against its id anyway.
            codec: index_table::codec_of(b.codec).unwrap_or(Codec::Lz4),
        }
    }

    pub fn pack_of(&self, loc: &BlobLoc) -> PackMeta {
        self.pack(self.block(loc.block).pack)
    }

    pub fn pack(&self, slot: u32) -> PackMeta {
        let Some((t, s)) = self.locate(slot, |t| t.packs) else { return PackMeta::default() };
        let p = t.table.view().pack(s);
        PackMeta { id: p.id, size: p.size }
    }

    /// The blobs stored in block `n` (a blob of a kind no writer wrote is
    /// left out).
    pub fn blobs_in_block(&self, n: u32) -> Vec<BlobLoc> {
        let Some((t, k)) = self.locate(n, |t| t.blocks) else { return Vec::new() };
        let view = t.table.view();
        view.blobs_of_block(k)
            .filter_map(|pos| {
                let r = view.blob(pos);
                Some(BlobLoc {
                    id: r.id,
                    kind: index_table::kind_of(r.kind)?,
                    block: n,
                    offset: r.offset,
                    len: r.len,
                    pos: t.blobs.saturating_add(pos),
                })
            })
            .collect()
    }

    pub fn damaged(&self) -> &HashSet<(PackId, BlobId)> {
        &self.damaged
    }
}

/// One index table: its bytes, mapped from the local cache or held in
/// memory, and where its sections start.
pub struct Table {
    bytes: TableBytes,
    parts: TableParts,
    /// The cache file it was mapped from.
    path: Option<std::path::PathBuf>,
}

enum TableBytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Table {
    pub fn owned(bytes: Vec<u8>) -> Result<Table, FormatError> {
        let parts = TableView::open(&bytes)?.parts();
        Ok(Table { bytes: TableBytes::Owned(bytes), parts, path: None })
    }

    /// A table mapped from `file`, which nothing may change while mapped
    /// (cache files are written once, then renamed into place).
    pub fn mapped(file: &std::fs::File, path: std::path::PathBuf) -> Result<Table, FormatError> {
        // SAFETY: the cache writes a table file once, under a temporary
        // name, and renames it into place; no chkfs process writes to it
        // again, so the mapping never changes under the reader.
        let map = unsafe { memmap2::Mmap::map(file) }
            .map_err(|e| FormatError::Invalid { what: "index table", detail: format!("mapping: {e}") })?;
        let _ = map.advise(memmap2::Advice::Random);
        let parts = TableView::open(&map)?.parts();
        Ok(Table { bytes: TableBytes::Mapped(map), parts, path: Some(path) })
    }

    /// Drops this process's mappings of the table's pages (they stay in
    /// the page cache, and are mapped again when read): a walk over a
    /// whole table would otherwise count it all in the process's memory.
    pub fn release_pages(&self) {
        if let TableBytes::Mapped(map) = &self.bytes {
            // SAFETY: a read-only shared mapping of a file nothing writes
            // to: pages dropped are read again from the file, unchanged.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    pub fn view(&self) -> TableView<'_> {
        TableView::from_parts(self.bytes(), self.parts)
    }

    fn bytes(&self) -> &[u8] {
        match &self.bytes {
            TableBytes::Mapped(m) => m,
            TableBytes::Owned(v) => v,
        }
    }

    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, TableBytes::Mapped(_))
    }

    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::BlobEntry;

    fn pack(id: u128, blobs: &[u128]) -> IndexedPack {
        let entries = blobs
            .iter()
            .enumerate()
            .map(|(i, &b)| BlobEntry { id: BlobId(b), kind: BlobKind::Data, offset: i as u32 * 10, len: 10 })
            .collect();
        IndexedPack {
            id: PackId(id),
            size: 1000,
            blocks: vec![BlockInfo { offset: 16, stored_len: 100, raw_len: 100, codec: Codec::Raw, blobs: entries }],
        }
    }

    #[test]
    fn an_index_of_trees_lists_every_pack_and_only_tree_blobs() {
        let mut tree = pack(2, &[20]);
        tree.blocks[0].blobs[0].kind = BlobKind::Tree;
        let mut idx = Index::default();
        idx.add_packs_holding(&[pack(1, &[10, 11]), tree], Holding::Trees);
        assert!(idx.contains_pack(PackId(1)) && idx.contains_pack(PackId(2)));
        assert_eq!(idx.blob_count(), 1);
        assert_eq!(idx.locations(BlobKind::Tree, BlobId(20)).count(), 1);
        assert_eq!(idx.locations(BlobKind::Data, BlobId(10)).count(), 0);
    }

    #[test]
    fn lookup_and_duplicates() {
        let mut idx = Index::new([]);
        idx.add_pack(&pack(1, &[10, 11]));
        idx.add_pack(&pack(2, &[11, 12]));
        idx.add_pack(&pack(2, &[11, 12]));
        assert_eq!(idx.pack_count(), 2);
        assert_eq!(idx.blob_count(), 4, "copies: blob 11 twice");
        let locs: Vec<_> = idx.locations(BlobKind::Data, BlobId(11)).map(|l| idx.pack_of(&l).id).collect();
        assert_eq!(locs, vec![PackId(1), PackId(2)]);
        assert!(idx.has_healthy(BlobKind::Data, BlobId(12)));
        assert!(!idx.has_healthy(BlobKind::Data, BlobId(13)));
    }

    /// Ids that agree in their low 64 bits (or their high ones) still
    /// spread over a table's buckets: a forged index of such ids took hours
    /// to load when only the low bits were used.
    #[test]
    fn ids_crafted_to_collide_spread_over_the_buckets() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<IdHasher>::default();
        let crafted: [&dyn Fn(u128) -> u128; 3] = [&|i| i << 64, &|i| i, &|i| i << 100 | 7];
        for make in crafted {
            let buckets: HashSet<u64> =
                (0..200_000u128).map(|i| build.hash_one((BlobKind::Data, BlobId(make(i)))) & 0xffff).collect();
            // Uniform hashing fills about 62,500 of 65,536 buckets.
            assert!(buckets.len() > 60_000, "{} buckets used", buckets.len());
        }
        let block = BlockInfo {
            offset: 16,
            stored_len: 1,
            raw_len: 1,
            codec: Codec::Raw,
            blobs: (0..100_000u128)
                .map(|i| BlobEntry { id: BlobId(i << 64), kind: BlobKind::Data, offset: 0, len: 1 })
                .collect(),
        };
        let mut idx = Index::new([]);
        idx.add_pack(&IndexedPack { id: PackId(1), size: 100, blocks: vec![block] });
        assert_eq!(idx.blob_count(), 100_000);
    }

    #[test]
    fn a_chunk_and_a_tree_with_the_same_id_are_different_blobs() {
        let mut idx = Index::new([]);
        idx.add_pack(&pack(1, &[10]));
        let mut tree = pack(2, &[10]);
        tree.blocks[0].blobs[0].kind = BlobKind::Tree;
        idx.add_pack(&tree);
        assert_eq!(idx.blob_count(), 2);
        let data: Vec<_> = idx.locations(BlobKind::Data, BlobId(10)).map(|l| idx.pack_of(&l).id).collect();
        let trees: Vec<_> = idx.locations(BlobKind::Tree, BlobId(10)).map(|l| idx.pack_of(&l).id).collect();
        assert_eq!((data, trees), (vec![PackId(1)], vec![PackId(2)]));
    }

    #[test]
    fn damaged_copy_is_not_deduplicated_and_a_healthy_copy_is_preferred() {
        let mut idx = Index::new([(PackId(1), BlobId(11))]);
        idx.add_pack(&pack(1, &[10, 11]));
        assert!(!idx.has_healthy(BlobKind::Data, BlobId(11)));
        assert!(idx.has_healthy(BlobKind::Data, BlobId(10)));
        idx.add_pack(&pack(2, &[11]));
        assert!(idx.has_healthy(BlobKind::Data, BlobId(11)));
        let first = idx.locations(BlobKind::Data, BlobId(11)).next().unwrap();
        assert_eq!(idx.pack_of(&first).id, PackId(2));
    }
}
