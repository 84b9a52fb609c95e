//! The last stage of a save: turn scanned directories into tree objects,
//! deepest first, so each directory knows its subdirectories' ids.

use super::file_saver::SavedFile;
use super::scan::{Pending, Scan};
use crate::format::pack::BlobKind;
use crate::format::tree::{encode_tree, Entry, Extent, Node, Tree};
use crate::format::BlobId;
use crate::store::{BlobWriter, BlockBuilder, StoreError};
use std::collections::HashSet;

#[derive(Debug, Default, Clone, Copy)]
pub struct TreeStats {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    /// Logical size; each hard-link group counted once.
    pub bytes: u64,
}

/// Stores every tree; returns the root entry (pointing to the root tree).
pub fn save_trees(
    scan: &mut Scan,
    files: &mut [Option<SavedFile>],
    writer: &BlobWriter,
) -> Result<(Entry, TreeStats), StoreError> {
    let mut builder = BlockBuilder::new(BlobKind::Tree);
    let mut ids = vec![BlobId(0); scan.dirs.len()];
    let mut stats = TreeStats::default();
    let mut groups_counted = HashSet::new();
    for d in (0..scan.dirs.len()).rev() {
        let pending = std::mem::take(&mut scan.dirs[d].entries);
        let mut tree = Tree { entries: Vec::with_capacity(pending.len()) };
        for (mut entry, p) in pending {
            let complete = match p {
                Pending::Ready => true,
                Pending::Dir(child) => {
                    entry.node = Node::Dir { tree: ids[child] };
                    true
                }
                Pending::File(job) => fill_from_file(&mut entry, files[job].as_ref()),
                Pending::Link(group) => match scan.link_sources.get(&group) {
                    Some(Pending::File(job)) => fill_from_file(&mut entry, files[*job].as_ref()),
                    Some(Pending::Ready) => match scan.reused_content.get(&group) {
                        Some(content) => set_content(&mut entry, content.clone()),
                        None => false,
                    },
                    _ => false,
                },
            };
            if !complete {
                continue;
            }
            count(&entry, &mut stats, &mut groups_counted);
            tree.entries.push(entry);
        }
        let bytes = encode_tree(&tree).map_err(|e| StoreError::format("new tree", e))?;
        ids[d] = writer.add(&mut builder, &bytes)?;
    }
    writer.flush(&mut builder)?;
    let mut root = scan.root.clone();
    root.node = Node::Dir { tree: ids[0] };
    stats.dirs += 1;
    Ok((root, stats))
}

/// Content, metadata and xattrs all as read through the file's own
/// descriptor.
fn fill_from_file(entry: &mut Entry, saved: Option<&SavedFile>) -> bool {
    let Some(saved) = saved else { return false };
    let st = &saved.stat;
    entry.mode = st.mode & 0o7777;
    entry.uid = st.uid;
    entry.gid = st.gid;
    entry.mtime = st.mtime;
    entry.ctime = st.ctime;
    entry.blocks = st.blocks;
    entry.inode = st.ino;
    entry.xattrs = saved.xattrs.clone();
    set_content(entry, saved.content.clone())
}

fn set_content(entry: &mut Entry, content: Vec<Extent>) -> bool {
    entry.size = content.iter().map(Extent::len).sum();
    entry.node = Node::File { content };
    true
}

fn count(entry: &Entry, stats: &mut TreeStats, groups: &mut HashSet<u64>) {
    match entry.node {
        Node::File { .. } => {
            stats.files += 1;
            let first_name = entry.hard_link.is_none_or(|l| groups.insert(l.group));
            if first_name {
                stats.bytes += entry.size;
            }
        }
        Node::Dir { .. } => stats.dirs += 1,
        _ => stats.other += 1,
    }
}
