//! What a restore will create, decided before anything is written: every
//! path (the expanded tree), the directories with their depth and, once
//! created, their identity, and the hard-link groups, each checked for
//! names that disagree.

use crate::dirfd::cursor::DirTree;
use crate::dirfd::FileId;
use crate::format::tree::{Entry, Node};
use crate::walk::{Expanded, Item};
use std::collections::HashMap;
use std::sync::OnceLock;

pub struct Plan {
    pub expanded: Expanded,
    depth: Vec<u32>,
    /// The identity of each directory item once it exists.
    ids: Vec<OnceLock<FileId>>,
    /// Non-directory items, grouped by the directory that holds them, in
    /// pre-order of those directories.
    pub leaves_by_dir: Vec<(u32, Vec<u32>)>,
    /// Hard-link group -> its names, in pre-order.
    pub groups: HashMap<u64, Group>,
}

pub struct Group {
    pub members: Vec<u32>,
    /// False when its names disagree on what the file is.
    pub consistent: bool,
}

impl Plan {
    pub fn new(expanded: Expanded) -> Plan {
        let items = &expanded.items;
        let mut depth = vec![0u32; items.len()];
        let mut leaves: HashMap<u32, Vec<u32>> = HashMap::new();
        let mut dir_order = Vec::new();
        let mut groups: HashMap<u64, Group> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let i = i as u32;
            if let Some(p) = item.parent {
                depth[i as usize] = depth[p as usize] + 1;
            }
            let entry = item.entry.entry();
            if is_dir(entry) {
                dir_order.push(i);
                continue;
            }
            // A lone non-directory root goes into the target itself.
            let holder = item.parent.unwrap_or(u32::MAX);
            leaves.entry(holder).or_default().push(i);
            if let Some(link) = entry.hard_link {
                let g = groups.entry(link.group).or_insert(Group { members: Vec::new(), consistent: true });
                if let Some(&first) = g.members.first() {
                    g.consistent &= same_file(items[first as usize].entry.entry(), entry);
                }
                g.members.push(i);
            }
        }
        let mut leaves_by_dir = Vec::new();
        if let Some(v) = leaves.remove(&u32::MAX) {
            leaves_by_dir.push((u32::MAX, v));
        }
        for d in dir_order {
            if let Some(v) = leaves.remove(&d) {
                leaves_by_dir.push((d, v));
            }
        }
        let ids = (0..items.len()).map(|_| OnceLock::new()).collect();
        Plan { expanded, depth, ids, leaves_by_dir, groups }
    }

    pub fn item(&self, i: u32) -> &Item {
        &self.expanded.items[i as usize]
    }

    pub fn entry(&self, i: u32) -> &Entry {
        self.item(i).entry.entry()
    }

    pub fn len(&self) -> usize {
        self.expanded.items.len()
    }

    /// Directory items in pre-order.
    pub fn dirs(&self) -> impl DoubleEndedIterator<Item = u32> + '_ {
        (0..self.len() as u32).filter(|&i| is_dir(self.entry(i)))
    }

    /// For a later name of a hard-link group: the group's first name.
    pub fn link_source(&self, i: u32) -> Option<u32> {
        let group = self.groups.get(&self.entry(i).hard_link?.group)?;
        let first = *group.members.first()?;
        (first != i).then_some(first)
    }

    /// Records the identity of directory `i` once it exists.
    pub fn set_id(&self, i: u32, id: FileId) {
        let _ = self.ids[i as usize].set(id);
    }

    pub fn group_of(&self, i: u32) -> Option<&Group> {
        self.groups.get(&self.entry(i).hard_link?.group)
    }
}

impl DirTree for Plan {
    fn parent(&self, dir: u32) -> Option<u32> {
        self.item(dir).parent
    }

    fn name(&self, dir: u32) -> &[u8] {
        &self.entry(dir).name
    }

    fn depth(&self, dir: u32) -> u32 {
        self.depth[dir as usize]
    }

    fn id(&self, dir: u32) -> Option<FileId> {
        self.ids[dir as usize].get().copied()
    }
}

pub fn is_dir(e: &Entry) -> bool {
    matches!(e.node, Node::Dir { .. })
}

/// Names of one inode must describe the same file: same content and size.
fn same_file(a: &Entry, b: &Entry) -> bool {
    a.node == b.node && a.size == b.size
}
