//! The mark set: one bit per blob copy in the index, set for the copy a
//! gc keeps. At 100 M chunks it takes 12.5 MB, where a set of ids took
//! gigabytes.
//!
//! Blobs to mark are gathered, then looked up in id order, a batch at a
//! time: the lookups then walk each table's sorted entries from one end to
//! the other instead of all over it, and the pages read are let go as the
//! walk moves on, so a gc's memory stays flat at any size.

use crate::format::pack::BlobKind;
use crate::format::BlobId;
use crate::store::Index;

/// Blobs gathered before they are looked up (32 bytes each).
const BATCH: usize = 4 << 20;
/// Lookups between two releases of the pages read.
const RELEASE_EVERY: usize = 32 << 10;

pub struct Marks {
    bits: Vec<u64>,
    count: usize,
    /// (id, kind, what needs it), looked up at the next flush.
    pending: Vec<(u128, u8, u32)>,
}

/// A blob that a snapshot needs and the index does not list.
pub struct Missing {
    pub kind: BlobKind,
    pub id: BlobId,
    /// What [`Marks::mark`] was told needs it.
    pub needed_by: u32,
}

impl Marks {
    pub fn new(index: &Index) -> Marks {
        Marks { bits: vec![0; (index.blob_count() as usize).div_ceil(64)], count: 0, pending: Vec::new() }
    }

    /// Marks, at the next flush, the copy of the blob that is kept: a
    /// healthy one when there is one. `needed_by` is returned with the
    /// blob if the index lists no copy.
    pub fn mark(&mut self, index: &Index, kind: BlobKind, id: BlobId, needed_by: u32) -> Vec<Missing> {
        let kind_byte = crate::format::index_table::kind_byte(kind);
        self.pending.push((id.0, kind_byte, needed_by));
        if self.pending.len() >= BATCH {
            return self.flush(index);
        }
        Vec::new()
    }

    /// Looks up what is pending, in id order, and sets its bits; returns
    /// the blobs the index does not list.
    pub fn flush(&mut self, index: &Index) -> Vec<Missing> {
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable();
        pending.dedup_by_key(|p| (p.0, p.1));
        let mut missing = Vec::new();
        for (n, &(id, kind_byte, needed_by)) in pending.iter().enumerate() {
            if n % RELEASE_EVERY == 0 {
                index.release_pages();
            }
            let kind = crate::format::index_table::kind_of(kind_byte).unwrap_or(BlobKind::Data);
            match index.preferred_pos(kind, BlobId(id)) {
                Some(pos) => self.set(pos),
                None => missing.push(Missing { kind, id: BlobId(id), needed_by }),
            }
        }
        index.release_pages();
        missing
    }

    fn set(&mut self, pos: u32) {
        let (word, bit) = (pos as usize / 64, pos % 64);
        if let Some(w) = self.bits.get_mut(word) {
            if *w & (1 << bit) == 0 {
                *w |= 1 << bit;
                self.count += 1;
            }
        }
    }

    pub fn is_marked(&self, pos: u32) -> bool {
        self.bits.get(pos as usize / 64).is_some_and(|w| w & (1 << (pos % 64)) != 0)
    }

    /// Blobs marked live.
    pub fn count(&self) -> usize {
        self.count
    }
}
