//! What the mount has been asked and what it cost, readable through the
//! mount itself (`getfattr -n user.chkfs.stats MOUNT`): a user or a test
//! can see that one `ls -l` costs one round trip per entry and decodes a
//! directory once, without a profiler.

use std::sync::atomic::{AtomicU64, Ordering};

/// The attribute of the mount's root that reads the counters.
pub const STATS_XATTR: &[u8] = b"user.chkfs.stats";

#[derive(Default)]
pub struct Counters {
    pub lookup: AtomicU64,
    pub getattr: AtomicU64,
    pub readdir: AtomicU64,
    pub read: AtomicU64,
    pub getxattr: AtomicU64,
    pub listxattr: AtomicU64,
    pub readlink: AtomicU64,
    pub open: AtomicU64,
    /// Files pushed into the kernel's page cache ahead of a reader (the
    /// kernel may have dropped an inode meanwhile: then nothing was kept).
    pub pushed: AtomicU64,
}

pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The figures of the running mount.
pub struct Snapshot {
    pub trees_decoded: u64,
    pub trees_cached: usize,
    pub tree_cache_bytes: u64,
    pub inodes: usize,
    pub index_bytes: u64,
    /// (weight held, weight allowed).
    pub block_cache: (u64, u64),
}

impl Counters {
    pub fn to_json(&self, s: &Snapshot) -> Vec<u8> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let v = serde_json::json!({
            "requests": {
                "lookup": get(&self.lookup),
                "getattr": get(&self.getattr),
                "readdir": get(&self.readdir),
                "read": get(&self.read),
                "getxattr": get(&self.getxattr),
                "listxattr": get(&self.listxattr),
                "readlink": get(&self.readlink),
                "open": get(&self.open),
            },
            "files_pushed": get(&self.pushed),
            "trees_decoded": s.trees_decoded,
            "trees_cached": s.trees_cached,
            "tree_cache_bytes": s.tree_cache_bytes,
            "inodes": s.inodes,
            "index_bytes": s.index_bytes,
            "block_cache_bytes": s.block_cache.0,
            "block_cache_limit": s.block_cache.1,
        });
        let mut out = v.to_string().into_bytes();
        out.push(b'\n');
        out
    }
}
