//! Decoded trees, kept by weight in least-recently-used order.
//!
//! A sharded cache refuses an item heavier than one shard, so a large
//! directory (18,000 man pages) was decoded again for every name looked
//! up in it. Here any tree is admitted, evicting the least recently used
//! ones; one tree heavier than the whole budget is still kept beside the
//! others (its weight is counted, so the block cache gives way), since
//! decoding it again per lookup costs the square of its size: a newcomer
//! of ordinary size must not push it out.
//! Concurrent misses on one tree decode it once. A split tree (a large
//! directory stored in parts) is cached like a tree, and each of its
//! parts as a tree of its own.

use crate::format::tree::{IndexedSplit, Tree, TreeObject};
use crate::format::BlobId;
use lru::LruCache;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Stripes of the locks that make concurrent misses on one tree wait for
/// a single decode.
const LOADERS: usize = 16;

/// A decoded tree object, shared.
#[derive(Clone)]
pub enum Cached {
    Tree(Arc<Tree>),
    Split(Arc<IndexedSplit>),
}

impl Cached {
    fn memory_size(&self) -> u64 {
        match self {
            Cached::Tree(t) => t.memory_size(),
            Cached::Split(s) => s.memory_size(),
        }
    }
}

pub struct TreeCache {
    lru: WeightedLru<BlobId, Cached>,
    loaders: [Mutex<()>; LOADERS],
    decoded: AtomicU64,
}

impl TreeCache {
    pub fn new(budget: u64) -> TreeCache {
        TreeCache {
            lru: WeightedLru::new(budget),
            loaders: std::array::from_fn(|_| Mutex::new(())),
            decoded: AtomicU64::new(0),
        }
    }

    /// The tree object `id`, from the cache or from `load`.
    pub fn get_or_load<E>(&self, id: BlobId, load: impl FnOnce() -> Result<TreeObject, E>) -> Result<Cached, E> {
        if let Some(t) = self.lru.get(&id) {
            return Ok(t);
        }
        let _loading = self.loaders[(id.0 as usize) % LOADERS].lock();
        if let Some(t) = self.lru.get(&id) {
            return Ok(t);
        }
        let cached = match load()? {
            TreeObject::Whole(t) => Cached::Tree(Arc::new(t)),
            TreeObject::Split(s) => Cached::Split(Arc::new(IndexedSplit::new(s))),
        };
        let weight = cached.memory_size();
        self.decoded.fetch_add(1, Ordering::Relaxed);
        self.lru.insert(id, cached.clone(), weight);
        Ok(cached)
    }

    /// Trees decoded since the mount started (each miss decodes one).
    pub fn decoded(&self) -> u64 {
        self.decoded.load(Ordering::Relaxed)
    }

    /// (trees held, their weight in bytes).
    pub fn usage(&self) -> (usize, u64) {
        self.lru.usage()
    }
}

/// Values by weight in least-recently-used order; any value is admitted,
/// and one heavier than the budget is held on top of it.
pub struct WeightedLru<K: std::hash::Hash + Eq, V: Clone> {
    budget: u64,
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K: std::hash::Hash + Eq, V> {
    lru: LruCache<K, (V, u64)>,
    weight: u64,
    /// The one value heavier than the budget, if held: (key, weight).
    oversized: Option<(K, u64)>,
}

impl<K: std::hash::Hash + Eq, V: Clone> WeightedLru<K, V> {
    pub fn new(budget: u64) -> Self {
        WeightedLru { budget, inner: Mutex::new(Inner { lru: LruCache::unbounded(), weight: 0, oversized: None }) }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.inner.lock().lru.get(key).map(|(v, _)| v.clone())
    }

    pub fn insert(&self, key: K, value: V, weight: u64)
    where
        K: Clone,
    {
        let mut inner = self.inner.lock();
        if weight > self.budget {
            // A second oversized value replaces the first.
            if let Some((old, _)) = inner.oversized.take() {
                if let Some((_, w)) = inner.lru.pop(&old) {
                    inner.weight -= w;
                }
            }
            inner.oversized = Some((key.clone(), weight));
        }
        if let Some((_, old)) = inner.lru.put(key, (value, weight)) {
            inner.weight -= old;
        }
        inner.weight += weight;
        loop {
            let allowed = self.budget + inner.oversized.as_ref().map_or(0, |o| o.1);
            if inner.weight <= allowed || inner.lru.len() <= 1 {
                break;
            }
            let Some((k, (v, w))) = inner.lru.pop_lru() else { break };
            if inner.oversized.as_ref().is_some_and(|o| o.0 == k) {
                // Held on top of the budget: the others make room.
                inner.lru.put(k, (v, w));
                continue;
            }
            inner.weight -= w;
        }
    }

    /// (values held, their weight).
    pub fn usage(&self) -> (usize, u64) {
        let inner = self.inner.lock();
        (inner.lru.len(), inner.weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::{Entry, Node};

    fn tree(entries: usize) -> TreeObject {
        TreeObject::Whole(plain(entries))
    }

    fn entries(c: Cached) -> usize {
        match c {
            Cached::Tree(t) => t.entries.len(),
            Cached::Split(_) => panic!("a split tree"),
        }
    }

    fn plain(entries: usize) -> Tree {
        Tree { entries: (0..entries).map(|i| Entry::bare(format!("{i:08}").as_bytes(), Node::Fifo)).collect() }
    }

    fn id(n: u128) -> BlobId {
        BlobId(n)
    }

    #[test]
    fn a_tree_heavier_than_the_budget_is_kept_and_decoded_once() {
        let cache = TreeCache::new(1024);
        for _ in 0..100 {
            let t = cache.get_or_load(id(1), || Ok::<_, ()>(tree(1000))).unwrap();
            assert_eq!(entries(t), 1000);
        }
        assert_eq!(cache.decoded(), 1);
        // Ordinary newcomers do not push it out...
        for n in 2..10 {
            cache.get_or_load(id(n), || Ok::<_, ()>(tree(1))).unwrap();
        }
        cache.get_or_load(id(1), || Err(())).unwrap();
        let one = plain(1).memory_size();
        assert!(
            cache.usage().1 <= plain(1000).memory_size() + 1024 && cache.usage().1 >= plain(1000).memory_size() + one
        );
        // ...another oversized one does.
        cache.get_or_load(id(20), || Ok::<_, ()>(tree(2000))).unwrap();
        assert!(cache.get_or_load(id(1), || Err(())).is_err());
    }

    #[test]
    fn least_recently_used_trees_go_first_and_the_weight_stays_within_budget() {
        let one = plain(10).memory_size();
        let cache = TreeCache::new(3 * one);
        for n in 0..3 {
            cache.get_or_load(id(n), || Ok::<_, ()>(tree(10))).unwrap();
        }
        cache.get_or_load(id(0), || Ok::<_, ()>(tree(10))).unwrap();
        cache.get_or_load(id(3), || Ok::<_, ()>(tree(10))).unwrap();
        assert_eq!(cache.usage(), (3, 3 * one));
        assert_eq!(cache.decoded(), 4);
        // 1 was the least recently used: it went; 0 stayed.
        cache.get_or_load(id(0), || Err(())).unwrap();
        assert!(cache.get_or_load(id(1), || Err(())).is_err());
    }

    #[test]
    fn concurrent_misses_decode_once() {
        let cache = TreeCache::new(1 << 30);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    cache
                        .get_or_load(id(7), || {
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            Ok::<_, ()>(tree(100))
                        })
                        .unwrap()
                });
            }
        });
        assert_eq!(cache.decoded(), 1);
    }
}
