//! Forging repository objects as someone who holds the repository would:
//! any payload sealed with a valid envelope and checksum, any tree stored
//! as a blob with its correct keyed hash. Checksums and hashes stop random
//! flips, not an attacker; these objects pass both and test what is left.

use chkfs::format::pack::BlobKind;
use chkfs::format::records::{Snapshot, SnapshotStats, Timestamp};
use chkfs::format::tree::{Entry, Extent, HardLink, Node, Part, SplitTree, Tree};
use chkfs::format::{seal_envelope, BlobId, ObjectKind, SnapshotId};
use chkfs::store::{BlobWriter, BlockBuilder, Repository};
use std::path::Path;
use std::sync::Arc;

pub struct Forge {
    pub repo: Arc<Repository>,
    writer: Option<BlobWriter>,
    data: BlockBuilder,
    trees: BlockBuilder,
}

impl Forge {
    /// Forges into the (existing) repository at `path`.
    pub fn open(path: &Path) -> Forge {
        let repo = Arc::new(Repository::open_local(path).expect("opening the repository"));
        let index = Arc::new(repo.load_index().expect("loading the index").index);
        let writer = BlobWriter::new(repo.clone(), index);
        Forge {
            repo,
            writer: Some(writer),
            data: BlockBuilder::new(BlobKind::Data),
            trees: BlockBuilder::new(BlobKind::Tree),
        }
    }

    /// Stores file content; returns the extent naming it.
    pub fn chunk(&mut self, bytes: &[u8]) -> Extent {
        let w = self.writer.as_ref().expect("not committed yet");
        let id = w.add(&mut self.data, bytes).expect("storing a chunk");
        Extent::Data { id, len: bytes.len() as u32 }
    }

    /// Stores a tree as given: no sorting, no validation.
    pub fn tree(&mut self, entries: Vec<Entry>) -> BlobId {
        self.raw_tree(&bitcode::encode(&Tree { entries }))
    }

    /// Stores any payload as a tree blob, in a valid envelope.
    pub fn raw_tree(&mut self, payload: &[u8]) -> BlobId {
        let bytes = seal_envelope(ObjectKind::Tree, payload).expect("sealing");
        self.tree_blob(&bytes)
    }

    /// Stores a split tree as given: no validation.
    pub fn split_tree(&mut self, parts: Vec<Part>) -> BlobId {
        let bytes = seal_envelope(ObjectKind::SplitTree, &bitcode::encode(&SplitTree { parts })).expect("sealing");
        self.tree_blob(&bytes)
    }

    /// Stores bytes as a tree blob, exactly as given.
    pub fn tree_blob(&mut self, bytes: &[u8]) -> BlobId {
        let w = self.writer.as_ref().expect("not committed yet");
        w.add(&mut self.trees, bytes).expect("storing a tree")
    }

    /// Writes everything forged so far (packs, then an index file).
    pub fn commit(mut self) -> Arc<Repository> {
        let w = self.writer.take().expect("committed once");
        w.flush(&mut self.data).unwrap();
        w.flush(&mut self.trees).unwrap();
        w.finish().expect("writing packs and index");
        self.repo.clone()
    }
}

impl Drop for Forge {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            let _ = w.flush(&mut self.data);
            let _ = w.flush(&mut self.trees);
            let _ = w.finish();
        }
    }
}

pub fn ts(secs: i64) -> Timestamp {
    Timestamp { secs, nanos: 0 }
}

/// An entry with ordinary metadata.
pub fn entry(name: &[u8], node: Node) -> Entry {
    let size = match &node {
        Node::File { content } => content.iter().map(Extent::len).sum(),
        _ => 0,
    };
    Entry {
        name: name.to_vec(),
        node,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size,
        blocks: 0,
        mtime: ts(1_700_000_000),
        ctime: ts(1_700_000_000),
        inode: 1,
        hard_link: None,
        xattrs: Vec::new(),
    }
}

pub fn file(name: &[u8], content: Vec<Extent>) -> Entry {
    entry(name, Node::File { content })
}

pub fn dir(name: &[u8], tree: BlobId) -> Entry {
    let mut e = entry(name, Node::Dir { tree });
    e.mode = 0o755;
    e
}

pub fn linked(mut e: Entry, group: u64, nlink: u32) -> Entry {
    e.hard_link = Some(HardLink { group, nlink });
    e
}

/// Writes a snapshot record whose root is `tree`, counting `entries`
/// entries (files, directories and others, the root included).
pub fn snapshot(repo: &Repository, tree: BlobId, entries: u64) -> SnapshotId {
    let mut snap = Snapshot {
        time: ts(1_750_000_000),
        host: "forge".into(),
        path: b"/forged".to_vec(),
        message: String::new(),
        parent: None,
        root: dir(b"", tree),
        partial: false,
        errors: Vec::new(),
        stats: SnapshotStats { files: entries.saturating_sub(1), dirs: 1, ..Default::default() },
        chkfs_version: "forged".into(),
        tags: Vec::new(),
    };
    repo.write_snapshot(&mut snap, |_, _| {}).expect("writing the snapshot record").0
}
