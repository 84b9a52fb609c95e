//! The in-memory index: where every blob lives (pack, block, offset).
//!
//! Built from the repository's index files, which hold the same block
//! lists as the pack footers. A blob may be stored more than once (a
//! damaged copy healed by a later save); a healthy copy is preferred.
//!
//! Blobs are found by kind and id together: a file whose bytes equal an
//! encoded tree has the tree's id, and must stay a different blob.

use crate::format::pack::{BlobEntry, BlobKind, BlockInfo, Codec};
use crate::format::records::IndexedPack;
use crate::format::{BlobId, PackId};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

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

#[derive(Debug, Clone, Copy)]
pub struct PackMeta {
    pub id: PackId,
    pub size: u64,
    first_block: u32,
    block_count: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct BlockLoc {
    pub pack: u32,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    pub codec: Codec,
    pub first_blob: u32,
    pub blob_count: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct BlobLoc {
    pub id: BlobId,
    pub kind: BlobKind,
    pub block: u32,
    pub offset: u32,
    pub len: u32,
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

#[derive(Default)]
pub struct Index {
    packs: Vec<PackMeta>,
    pack_slots: HashMap<PackId, u32>,
    blocks: Vec<BlockLoc>,
    blobs: Vec<BlobLoc>,
    /// Blob id -> position in `blobs` of the preferred copy.
    primary: IdMap<u32>,
    /// Further copies, for blobs stored more than once.
    alternates: IdMap<Vec<u32>>,
    damaged: HashSet<(PackId, BlobId)>,
    /// Packs a gc condemned: readable, never deduplicated against.
    condemned: HashSet<PackId>,
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

    pub fn condemned(&self) -> &HashSet<PackId> {
        &self.condemned
    }

    /// Indexed packs that storage does not hold (an index file put back
    /// after its packs were deleted): like condemned packs, never
    /// deduplicated against, so that a save stores its chunks afresh
    /// instead of pointing at nothing.
    pub fn mark_missing(&mut self, present: &HashSet<PackId>) -> usize {
        let missing: Vec<PackId> = self.packs.iter().map(|p| p.id).filter(|id| !present.contains(id)).collect();
        self.condemned.extend(missing.iter().copied());
        missing.len()
    }

    /// True when this copy may be deduplicated against: neither found
    /// damaged nor in a condemned pack.
    pub fn is_usable(&self, loc: &BlobLoc) -> bool {
        let pack = self.pack_of(loc).id;
        !self.condemned.contains(&pack) && !self.damaged.contains(&(pack, loc.id))
    }

    pub fn contains_pack(&self, id: PackId) -> bool {
        self.pack_slots.contains_key(&id)
    }

    pub fn packs(&self) -> &[PackMeta] {
        &self.packs
    }

    /// About the memory the index holds, in bytes (tables by capacity,
    /// plus a control byte per hash slot).
    pub fn memory_size(&self) -> u64 {
        use std::mem::size_of;
        fn table<K, V>(capacity: usize) -> usize {
            capacity * (size_of::<K>() + size_of::<V>() + 1)
        }
        let bytes = self.packs.capacity() * size_of::<PackMeta>()
            + table::<PackId, u32>(self.pack_slots.capacity())
            + self.blocks.capacity() * size_of::<BlockLoc>()
            + self.blobs.capacity() * size_of::<BlobLoc>()
            + table::<BlobKey, u32>(self.primary.capacity())
            + table::<BlobKey, Vec<u32>>(self.alternates.capacity())
            + table::<(PackId, BlobId), ()>(self.damaged.capacity());
        bytes as u64
    }

    pub fn blob_count(&self) -> usize {
        self.primary.len()
    }

    /// Adds the packs of an index file, its tables grown once.
    pub fn add_packs(&mut self, packs: &[IndexedPack]) {
        self.add_packs_holding(packs, Holding::All)
    }

    /// `add_packs`, keeping the blocks `holding` keeps.
    pub fn add_packs_holding(&mut self, packs: &[IndexedPack], holding: Holding) {
        let kept = || packs.iter().flat_map(|p| &p.blocks).filter(|b| holding.keeps(b));
        let blocks = kept().count();
        let blobs: usize = kept().map(|b| b.blobs.len()).sum();
        self.packs.reserve(packs.len());
        self.pack_slots.reserve(packs.len());
        self.blocks.reserve(blocks);
        self.blobs.reserve(blobs);
        self.primary.reserve(blobs);
        packs.iter().for_each(|p| self.add_pack_holding(p, holding));
    }

    /// Adds a pack's blocks; a pack already known is ignored.
    pub fn add_pack(&mut self, pack: &IndexedPack) {
        self.add_pack_holding(pack, Holding::All)
    }

    /// `add_pack`, keeping the blocks `holding` keeps.
    pub fn add_pack_holding(&mut self, pack: &IndexedPack, holding: Holding) {
        if self.pack_slots.contains_key(&pack.id) {
            return;
        }
        let slot = self.packs.len() as u32;
        let first_block = self.blocks.len() as u32;
        let block_count = pack.blocks.iter().filter(|b| holding.keeps(b)).count() as u32;
        self.packs.push(PackMeta { id: pack.id, size: pack.size, first_block, block_count });
        self.pack_slots.insert(pack.id, slot);
        for block in pack.blocks.iter().filter(|b| holding.keeps(b)) {
            let block_no = self.blocks.len() as u32;
            self.blocks.push(BlockLoc {
                pack: slot,
                offset: block.offset,
                stored_len: block.stored_len,
                raw_len: block.raw_len,
                codec: block.codec,
                first_blob: self.blobs.len() as u32,
                blob_count: block.blobs.len() as u32,
            });
            for b in &block.blobs {
                let pos = self.blobs.len() as u32;
                self.blobs.push(BlobLoc { id: b.id, kind: b.kind, block: block_no, offset: b.offset, len: b.len });
                self.insert_location((b.kind, b.id), pos, pack.id);
            }
        }
    }

    fn insert_location(&mut self, key: BlobKey, pos: u32, pack: PackId) {
        let Some(&current) = self.primary.get(&key) else {
            self.primary.insert(key, pos);
            return;
        };
        let current_damaged = self.is_damaged_at(current);
        let new_damaged = self.condemned.contains(&pack) || self.damaged.contains(&(pack, key.1));
        let keep = if current_damaged && !new_damaged {
            self.primary.insert(key, pos);
            current
        } else {
            pos
        };
        self.alternates.entry(key).or_default().push(keep);
    }

    /// True when the copy at `pos` is damaged or condemned.
    fn is_damaged_at(&self, pos: u32) -> bool {
        if self.damaged.is_empty() && self.condemned.is_empty() {
            return false;
        }
        !self.is_usable(&self.blobs[pos as usize])
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

    /// True when a healthy copy exists: what a save may deduplicate against.
    pub fn has_healthy(&self, kind: BlobKind, id: BlobId) -> bool {
        self.primary.get(&(kind, id)).is_some_and(|&p| !self.is_damaged_at(p))
    }

    /// True when some copy is listed, healthy or not.
    pub fn contains(&self, kind: BlobKind, id: BlobId) -> bool {
        self.primary.contains_key(&(kind, id))
    }

    /// Every stored copy of the blob, the preferred one first.
    pub fn locations(&self, kind: BlobKind, id: BlobId) -> impl Iterator<Item = BlobLoc> + '_ {
        let key = (kind, id);
        let first = self.primary.get(&key).copied();
        let rest = if self.alternates.is_empty() { None } else { self.alternates.get(&key) };
        let rest = rest.into_iter().flatten().copied();
        first.into_iter().chain(rest).map(|p| self.blobs[p as usize])
    }

    /// The pack in `slot` as an index file lists it.
    pub fn indexed_pack(&self, slot: u32) -> IndexedPack {
        let meta = self.packs[slot as usize];
        let blocks = self
            .blocks_of_pack(slot)
            .map(|n| {
                let b = self.blocks[n as usize];
                let blobs = self
                    .blobs_in_block(n)
                    .iter()
                    .map(|l| BlobEntry { id: l.id, kind: l.kind, offset: l.offset, len: l.len })
                    .collect();
                BlockInfo { offset: b.offset, stored_len: b.stored_len, raw_len: b.raw_len, codec: b.codec, blobs }
            })
            .collect();
        IndexedPack { id: meta.id, size: meta.size, blocks }
    }

    /// The blocks of the pack in `slot`.
    pub fn blocks_of_pack(&self, slot: u32) -> std::ops::Range<u32> {
        let p = &self.packs[slot as usize];
        p.first_block..p.first_block + p.block_count
    }

    pub fn block(&self, n: u32) -> &BlockLoc {
        &self.blocks[n as usize]
    }

    pub fn pack_of(&self, loc: &BlobLoc) -> PackMeta {
        self.packs[self.blocks[loc.block as usize].pack as usize]
    }

    pub fn pack(&self, slot: u32) -> PackMeta {
        self.packs[slot as usize]
    }

    /// The blobs stored in block `n`.
    pub fn blobs_in_block(&self, n: u32) -> &[BlobLoc] {
        let b = &self.blocks[n as usize];
        &self.blobs[b.first_blob as usize..(b.first_blob + b.blob_count) as usize]
    }

    pub fn damaged(&self) -> &HashSet<(PackId, BlobId)> {
        &self.damaged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(idx.packs().len(), 2);
        assert_eq!(idx.blob_count(), 3);
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
