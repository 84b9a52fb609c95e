//! What a gc will do, as a plain value: for every pack, how much of it is
//! live, and whether it is kept, condemned, rewritten or deleted.
//! Computing it reads nothing; `--dry-run` prints it.

use super::marks::Marks;
use crate::format::PackId;
use crate::store::index::Index;
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Keep,
    /// Nothing in it is live: it is condemned now, and deleted once no
    /// writer that might use it runs (at once when none runs).
    Condemn,
    /// Its live blobs are copied into new packs, then it is condemned.
    Rewrite,
    /// Condemned earlier, still unused, and every writer that might have
    /// used it has finished: deleted now.
    Delete,
    /// Condemned earlier; a writer that might use it still runs.
    Wait,
}

impl Action {
    /// True when the pack goes, now or once its condemnation is carried out.
    pub fn removes(self) -> bool {
        matches!(self, Action::Condemn | Action::Rewrite | Action::Delete)
    }

    /// True when this run condemns the pack.
    pub fn removes_later(self) -> bool {
        matches!(self, Action::Condemn | Action::Rewrite)
    }
}

/// Which packs earlier gcs condemned, and which of those may go now.
#[derive(Debug, Clone, Default)]
pub struct Condemnation {
    pub due: HashSet<PackId>,
    pub waiting: HashSet<PackId>,
}

#[derive(Debug, Clone)]
pub struct PackPlan {
    pub id: PackId,
    pub slot: u32,
    pub size: u64,
    pub live_blobs: u64,
    pub live_bytes: u64,
    pub dead_blobs: u64,
    pub dead_bytes: u64,
    pub action: Action,
}

#[derive(Debug, Clone, Default)]
pub struct GcPlan {
    pub packs: Vec<PackPlan>,
}

impl GcPlan {
    pub fn count(&self, action: Action) -> usize {
        self.packs.iter().filter(|p| p.action == action).count()
    }

    /// Bytes of packs that go away once carried out (before rewritten
    /// data is added back).
    pub fn bytes_removed(&self) -> u64 {
        self.packs.iter().filter(|p| p.action.removes()).map(|p| p.size).sum()
    }

    /// Raw bytes of the blobs nothing needs.
    pub fn bytes_unused(&self) -> u64 {
        self.packs.iter().map(|p| p.dead_bytes).sum()
    }

    /// Stored bytes the live data of rewritten packs will take, estimated
    /// as each pack's live share of its size (raw shares, stored size).
    pub fn stored_bytes_kept(&self) -> u64 {
        self.packs
            .iter()
            .filter(|p| p.action == Action::Rewrite)
            .map(|p| {
                let raw = p.live_bytes.saturating_add(p.dead_bytes).max(1);
                (u128::from(p.size) * u128::from(p.live_bytes) / u128::from(raw)) as u64
            })
            .sum()
    }

    /// Raw bytes copied by rewrites.
    pub fn bytes_to_copy(&self) -> u64 {
        self.packs.iter().filter(|p| p.action == Action::Rewrite).map(|p| p.live_bytes).sum()
    }
}

/// Plans a gc keeping exactly the copies marked in `live`. A pack whose dead share
/// of raw bytes exceeds `max_waste` (0.0..=1.0) is rewritten. A condemned
/// pack that turns out live again is kept (and no longer condemned once
/// its list is carried out).
pub fn plan(index: &Index, live: &Marks, max_waste: f64, condemned: &Condemnation) -> GcPlan {
    let mut packs = Vec::new();
    for (slot, meta) in index.packs() {
        let mut p = PackPlan {
            id: meta.id,
            slot,
            size: meta.size,
            live_blobs: 0,
            live_bytes: 0,
            dead_blobs: 0,
            dead_bytes: 0,
            action: Action::Keep,
        };
        index.release_pages();
        for block in index.blocks_of_pack(slot) {
            for b in index.blobs_in_block(block) {
                if live.is_marked(b.pos) {
                    p.live_blobs += 1;
                    p.live_bytes += u64::from(b.len);
                } else {
                    p.dead_blobs += 1;
                    p.dead_bytes += u64::from(b.len);
                }
            }
        }
        let total = p.live_bytes + p.dead_bytes;
        p.action = if condemned.waiting.contains(&p.id) {
            Action::Wait
        } else if condemned.due.contains(&p.id) {
            if p.live_blobs == 0 {
                Action::Delete
            } else {
                Action::Keep
            }
        } else if p.live_blobs == 0 {
            Action::Condemn
        } else if total > 0 && p.dead_bytes as f64 / total as f64 > max_waste {
            Action::Rewrite
        } else {
            Action::Keep
        };
        packs.push(p);
    }
    GcPlan { packs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::{BlobEntry, BlobKind, BlockInfo, Codec};
    use crate::format::records::IndexedPack;
    use crate::format::BlobId;

    fn pack(id: u128, blobs: &[(u128, u32)]) -> IndexedPack {
        let mut off = 0;
        let entries = blobs
            .iter()
            .map(|&(b, len)| {
                off += len;
                BlobEntry { id: BlobId(b), kind: BlobKind::Data, offset: off - len, len }
            })
            .collect();
        IndexedPack {
            id: PackId(id),
            size: u64::from(off) + 100,
            blocks: vec![BlockInfo { offset: 16, stored_len: off, raw_len: off, codec: Codec::Raw, blobs: entries }],
        }
    }

    fn live(index: &Index, ids: &[u128]) -> Marks {
        let mut marks = Marks::new(index);
        for &i in ids {
            assert!(marks.mark(index, BlobKind::Data, BlobId(i), 0).is_empty());
        }
        assert!(marks.flush(index).is_empty(), "every id is indexed");
        marks
    }

    #[test]
    fn dead_packs_go_mostly_dead_packs_are_rewritten_live_packs_stay() {
        let mut idx = Index::new([]);
        idx.add_pack(&pack(1, &[(10, 100), (11, 100)])); // all dead
        idx.add_pack(&pack(2, &[(20, 100), (21, 900)])); // 90% dead
        idx.add_pack(&pack(3, &[(30, 950), (31, 50)])); // 5% dead
        let none = Condemnation::default();
        let p = plan(&idx, &live(&idx, &[20, 30]), 0.10, &none);
        let actions: Vec<_> = p.packs.iter().map(|x| (x.id.0, x.action)).collect();
        assert_eq!(actions, vec![(1, Action::Condemn), (2, Action::Rewrite), (3, Action::Keep)]);
        assert_eq!(p.bytes_to_copy(), 100);
        assert_eq!(p.count(Action::Condemn), 1);
        let p = plan(&idx, &live(&idx, &[20, 30]), 0.95, &none);
        assert_eq!(p.packs[1].action, Action::Keep);
    }

    #[test]
    fn duplicates_keep_one_copy_healthy_first() {
        let mut idx = Index::new([(PackId(1), BlobId(7))]);
        idx.add_pack(&pack(1, &[(7, 100)]));
        idx.add_pack(&pack(2, &[(7, 100)]));
        let p = plan(&idx, &live(&idx, &[7]), 0.10, &Condemnation::default());
        let actions: Vec<_> = p.packs.iter().map(|x| (x.id.0, x.action)).collect();
        assert_eq!(actions, vec![(1, Action::Condemn), (2, Action::Keep)]);
    }

    #[test]
    fn condemned_packs_wait_go_or_come_back_and_a_condemned_copy_is_not_preferred() {
        let mut idx = Index::with_condemned([], [PackId(1), PackId(2), PackId(3)]);
        idx.add_pack(&pack(1, &[(10, 100)])); // due, dead
        idx.add_pack(&pack(2, &[(20, 100)])); // due, live again
        idx.add_pack(&pack(3, &[(30, 100)])); // waiting
        idx.add_pack(&pack(4, &[(10, 100), (40, 100)])); // a healthy copy of 10
        let condemned = Condemnation {
            due: [PackId(1), PackId(2)].into_iter().collect(),
            waiting: [PackId(3)].into_iter().collect(),
        };
        let p = plan(&idx, &live(&idx, &[10, 20, 40]), 0.10, &condemned);
        let actions: Vec<_> = p.packs.iter().map(|x| (x.id.0, x.action)).collect();
        assert_eq!(actions, vec![(1, Action::Delete), (2, Action::Keep), (3, Action::Wait), (4, Action::Keep)]);
    }

    #[test]
    fn nothing_live_deletes_everything() {
        let mut idx = Index::new([]);
        idx.add_pack(&pack(1, &[(1, 10)]));
        idx.add_pack(&pack(2, &[(2, 10)]));
        let p = plan(&idx, &Marks::new(&idx), 0.10, &Condemnation::default());
        assert_eq!(p.count(Action::Condemn), 2);
    }
}
