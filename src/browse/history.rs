//! The versions of one path across snapshots, and which snapshots hold
//! paths matching a pattern.

use crate::format::tree::{Entry, Node};
use crate::format::BlobId;
use crate::restore::{find_path, RestoreError};
use crate::store::{BlobReader, SnapshotEntry, StoreError};
use crate::walk::join;
use std::collections::HashMap;
use std::sync::Arc;

/// One distinct version of a path, and every snapshot that holds it.
#[derive(Debug, Clone)]
pub struct Version {
    pub entry: Entry,
    /// Oldest first; the first is where the version appeared.
    pub snapshots: Vec<usize>,
}

/// Where `path` lies inside snapshot `s`: a path relative to the saved
/// directory as it is; an absolute one only in snapshots of a directory
/// that holds it (None otherwise).
pub fn path_in_snapshot<'a>(s: &SnapshotEntry, path: &'a [u8]) -> Option<&'a [u8]> {
    if !path.starts_with(b"/") {
        return Some(path);
    }
    let source = s.snapshot.path.strip_suffix(b"/").unwrap_or(&s.snapshot.path);
    let rest = path.strip_prefix(source)?;
    (rest.is_empty() || rest.starts_with(b"/")).then_some(rest)
}

/// The distinct versions of `path` in `snapshots` (oldest first), the same
/// version counted once: files by content and metadata, other entries by
/// what they are.
pub fn versions(reader: &BlobReader, snapshots: &[SnapshotEntry], path: &[u8]) -> Result<Vec<Version>, StoreError> {
    let mut out: Vec<Version> = Vec::new();
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    for (i, s) in snapshots.iter().enumerate() {
        let Some(inner) = path_in_snapshot(s, path) else { continue };
        let entry = match find_path(reader, &s.snapshot.root, inner) {
            Ok(e) => e,
            Err(RestoreError::PathNotFound(_)) => continue,
            Err(RestoreError::Store(e)) => return Err(e),
            Err(e) => {
                return Err(StoreError::Inconsistent { what: format!("snapshot {}", s.id), reason: e.to_string() })
            }
        };
        let key = version_key(&entry);
        match seen.get(&key) {
            Some(&v) => out[v].snapshots.push(i),
            None => {
                seen.insert(key, out.len());
                out.push(Version { entry, snapshots: vec![i] });
            }
        }
    }
    Ok(out)
}

/// What makes two versions the same: everything a user sees (not the
/// ctime, inode or hard-link group, which change when nothing else does).
pub fn version_key(e: &Entry) -> Vec<u8> {
    let mut key = bitcode::encode(&e.node);
    key.extend_from_slice(&e.mode.to_le_bytes());
    key.extend_from_slice(&e.uid.to_le_bytes());
    key.extend_from_slice(&e.gid.to_le_bytes());
    key.extend_from_slice(&e.mtime.secs.to_le_bytes());
    key.extend_from_slice(&e.mtime.nanos.to_le_bytes());
    key.extend_from_slice(&bitcode::encode(&e.xattrs));
    key
}

/// An entry matching a pattern, at a path relative to the snapshot's root
/// (what is shown of it: not its chunk list, which may be long).
#[derive(Debug, Clone)]
pub struct Found {
    pub path: Vec<u8>,
    pub is_dir: bool,
    pub size: u64,
    pub mtime: crate::format::records::Timestamp,
}

impl Found {
    fn of(path: Vec<u8>, e: &Entry) -> Found {
        Found { path, is_dir: matches!(e.node, Node::Dir { .. }), size: e.size, mtime: e.mtime }
    }
}

/// The entries under `root` for which `matches(path, entry)` holds. A
/// subtree met before (in this snapshot or an earlier one: the same tree
/// id) is not walked again; its matches are reused.
pub struct Finder<'a> {
    reader: &'a BlobReader,
    /// Matches inside a tree, relative to it; `matches` sees the full
    /// path, so this memo is only used when it ignores where a tree is.
    memo: HashMap<BlobId, Arc<Vec<Found>>>,
    pub trees_read: u64,
}

impl<'a> Finder<'a> {
    pub fn new(reader: &'a BlobReader) -> Self {
        Finder { reader, memo: HashMap::new(), trees_read: 0 }
    }

    /// Matches under directory `dir`, by a test of the entry and its name
    /// only (so a shared subtree's matches are the same wherever it is).
    pub fn by_name(
        &mut self,
        dir: BlobId,
        matches: &dyn Fn(&[u8], &Entry) -> bool,
    ) -> Result<Arc<Vec<Found>>, StoreError> {
        if let Some(found) = self.memo.get(&dir) {
            return Ok(found.clone());
        }
        // Post-order without recursion: a snapshot may be deeper than a
        // thread's stack.
        let mut stack: Vec<(BlobId, bool)> = vec![(dir, false)];
        while let Some((id, children_done)) = stack.pop() {
            if self.memo.contains_key(&id) {
                continue;
            }
            let tree = self.reader.read_tree(id)?;
            if !children_done {
                stack.push((id, true));
                for e in &tree.entries {
                    if let Node::Dir { tree } = e.node {
                        if !self.memo.contains_key(&tree) {
                            stack.push((tree, false));
                        }
                    }
                }
                continue;
            }
            self.trees_read += 1;
            let mut found = Vec::new();
            for e in &tree.entries {
                let name = [&b"/"[..], &e.name].concat();
                if matches(&e.name, e) {
                    found.push(Found::of(name.clone(), e));
                }
                if let Node::Dir { tree } = e.node {
                    let inner = self.memo.get(&tree).cloned().unwrap_or_default();
                    found.extend(inner.iter().map(|f| Found { path: join(&name, &f.path[1..]), ..f.clone() }));
                }
            }
            self.memo.insert(id, Arc::new(found));
        }
        Ok(self.memo.get(&dir).cloned().unwrap_or_default())
    }
}
