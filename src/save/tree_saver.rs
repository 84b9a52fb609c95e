//! The last stage of a save: turn scanned directories into tree objects,
//! deepest first, so each directory knows its subdirectories' ids.

use super::file_saver::SavedFile;
use super::scan::{Pending, Scan};
use crate::format::pack::BlobKind;
use crate::format::tree::{Entry, Extent, Node, Tree};
use crate::format::BlobId;
use crate::store::{BlobWriter, BlockBuilder, StoreError};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Default, Clone, Copy)]
pub struct TreeStats {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    /// Logical size; each hard-link group counted once.
    pub bytes: u64,
}

/// The names of hard-link groups whose first name changed (or could not
/// be read) during the save, each read on its own: (directory, name) ->
/// what was read.
pub type SeparateNames = HashMap<(u32, Vec<u8>), SavedFile>;

/// Stores every tree; returns the root entry (pointing to the root tree).
/// The names of a group in `broken` are stored as separate files.
pub fn save_trees(
    scan: &mut Scan,
    files: &mut [Option<SavedFile>],
    broken: &HashSet<u64>,
    separate: &SeparateNames,
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
            let in_broken_group = entry.hard_link.is_some_and(|l| broken.contains(&l.group));
            if in_broken_group {
                entry.hard_link = None;
            }
            let complete = match p {
                Pending::Link(_) if in_broken_group => {
                    let read = separate.get(&(d as u32, entry.name.clone()));
                    fill_from_file(&mut entry, read)
                }
                Pending::Ready => true,
                Pending::Dir(child) => {
                    entry.node = Node::Dir { tree: ids[child] };
                    true
                }
                Pending::File(job) => fill_from_file(&mut entry, files[job].as_ref()),
                Pending::Link(group) => match scan.link_sources.get(&group) {
                    Some(Pending::File(job)) => fill_from_file(&mut entry, files[*job].as_ref()),
                    Some(Pending::Ready) => match scan.reused_entries.get(&group) {
                        Some(first) => fill_from_first_name(&mut entry, first),
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
        ids[d] = writer.add_tree(tree, &mut builder)?;
    }
    writer.flush(&mut builder)?;
    let mut root = scan.root.clone();
    root.node = Node::Dir { tree: ids[0] };
    stats.dirs += 1;
    Ok((root, stats))
}

/// Stores a directory's tree, split in parts if it is large (parts a
/// previous save stored already are not written again).
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

/// Another name of a hard-link group whose first name was reused: as
/// that name recorded the inode, even if this name's own lstat (taken at
/// another moment) saw a later version, so that the names agree and a
/// later save reads both again.
fn fill_from_first_name(entry: &mut Entry, first: &Entry) -> bool {
    let (name, hard_link) = (std::mem::take(&mut entry.name), entry.hard_link.take());
    *entry = Entry { name, hard_link, ..first.clone() };
    true
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
