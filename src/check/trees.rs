//! Walking every snapshot's trees for check: each tree must decode, each
//! chunk a file names must be stored as a chunk, with the length the tree
//! gives it and a healthy copy, and the names of a hard-link group must
//! agree on what the file holds.

use crate::format::pack::BlobKind;
use crate::format::tree::{Extent, Node, Tree};
use crate::format::{BlobId, PackId, SnapshotId};
use crate::store::index::{BlobKey, Index};
use crate::store::{BlobReader, StoreError};
use crate::text::escape_bytes;
use crate::walk::{each_distinct_tree, PathNode, Paths};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64;

/// What one snapshot's walk found.
#[derive(Default)]
pub struct Findings {
    /// Blobs it needs that cannot be read: why, and "SNAPSHOT:PATH" of
    /// what needs each.
    pub problems: BTreeMap<BlobKey, (String, Vec<String>)>,
    /// Trees that contradict what they refer to.
    pub contradictions: Vec<String>,
}

/// Decoded trees kept between snapshots (which share most of them).
const TREE_CACHE_BYTES: u64 = 256 << 20;

#[derive(Clone)]
struct TreeWeighter;

impl quick_cache::Weighter<BlobId, Result<Arc<Tree>, Arc<StoreError>>> for TreeWeighter {
    fn weight(&self, _: &BlobId, t: &Result<Arc<Tree>, Arc<StoreError>>) -> u64 {
        t.as_ref().map_or(64, |t| t.memory_size())
    }
}

pub struct TreeChecker<'a> {
    reader: &'a BlobReader,
    cache: quick_cache::unsync::Cache<BlobId, Result<Arc<Tree>, Arc<StoreError>>, TreeWeighter>,
    verdicts: Verdicts<'a>,
}

/// What is known of each distinct tree once it has been checked.
struct Verdicts<'a> {
    index: &'a Index,
    /// Blobs with no healthy copy left, found by reading the packs.
    bad: &'a HashMap<BlobKey, (Vec<PackId>, String)>,
    trees_checked: u64,
    /// Lookups made, for [`Index::count_lookup`].
    lookups: u32,
    /// The chunk problems of each tree already checked (most have none).
    per_tree: HashMap<BlobId, Vec<(BlobKey, Vec<u8>, String)>>,
    contradictions: HashMap<BlobId, Vec<String>>,
}

impl<'a> TreeChecker<'a> {
    pub fn new(reader: &'a BlobReader, index: &'a Index, bad: &'a HashMap<BlobKey, (Vec<PackId>, String)>) -> Self {
        let verdicts = Verdicts {
            index,
            bad,
            trees_checked: 0,
            lookups: 0,
            per_tree: HashMap::new(),
            contradictions: HashMap::new(),
        };
        let cache = quick_cache::unsync::Cache::with_weighter(65536, TREE_CACHE_BYTES, TreeWeighter);
        TreeChecker { reader, cache, verdicts }
    }

    /// Distinct trees whose chunks were checked.
    pub fn trees_checked(&self) -> u64 {
        self.verdicts.trees_checked
    }

    /// Walks one snapshot, each of its distinct trees once.
    pub fn snapshot(&mut self, snap: SnapshotId, root: BlobId) -> Findings {
        let mut found = Findings::default();
        let mut groups: HashMap<u64, (u64, PathNode, Vec<u8>)> = HashMap::new();
        let TreeChecker { reader, cache, verdicts } = self;
        let mut load = |id: BlobId| -> Result<Arc<Tree>, StoreError> {
            if let Some(t) = cache.get(&id) {
                return t.clone().map_err(|e| e.duplicate());
            }
            let loaded = reader.read_tree(id).map(Arc::new).map_err(Arc::new);
            cache.insert(id, loaded.clone());
            loaded.map_err(|e| e.duplicate())
        };
        let label = |p: &[u8]| format!("{snap}:{}", if p.is_empty() { "/".into() } else { escape_bytes(p) });
        let _ = each_distinct_tree::<()>([root], &mut HashSet::new(), &mut load, &mut |id, node, paths, tree| {
            let tree = match tree {
                Ok(tree) => tree,
                Err(e) => {
                    let key = (BlobKind::Tree, e.part().unwrap_or(id));
                    let why = verdicts.reason(key, e);
                    found.problem(key, why, || label(&paths.path(node)));
                    return Ok(());
                }
            };
            for (key, name, why) in verdicts.tree_problems(id, tree) {
                found.problem(key, why, || label(&paths.child_path(node, &name)));
            }
            for c in verdicts.contradictions.get(&id).into_iter().flatten() {
                found.contradiction(|| format!("{}: {c}", label(&paths.path(node))));
            }
            check_groups(tree, node, paths, &mut groups, &mut found, snap);
            Ok(())
        });
        found
    }
}

/// How many users of one damaged blob, and how many contradictions of one
/// snapshot, a report names (the rest are counted): a forged tree can
/// repeat one problem without end.
const MAX_NAMED: usize = 100;

impl Findings {
    fn problem(&mut self, key: BlobKey, why: String, user: impl FnOnce() -> String) {
        let (_, users) = self.problems.entry(key).or_insert_with(|| (why, Vec::new()));
        match users.len() {
            n if n < MAX_NAMED => users.push(user()),
            n if n == MAX_NAMED => users.push("(and more)".into()),
            _ => {}
        }
    }

    fn contradiction(&mut self, what: impl FnOnce() -> String) {
        match self.contradictions.len() {
            n if n < MAX_NAMED => self.contradictions.push(what()),
            n if n == MAX_NAMED => self.contradictions.push("(and more contradictions)".into()),
            _ => {}
        }
    }
}

impl Verdicts<'_> {
    fn reason(&self, key: BlobKey, e: StoreError) -> String {
        match self.bad.get(&key) {
            Some((_, why)) => why.clone(),
            None => e.detail(),
        }
    }

    /// The chunk problems of a tree, found once per distinct tree.
    fn tree_problems(&mut self, id: BlobId, tree: &Tree) -> Vec<(BlobKey, Vec<u8>, String)> {
        if let Some(p) = self.per_tree.get(&id) {
            return p.clone();
        }
        self.trees_checked += 1;
        let mut problems = Vec::new();
        let mut contradictions = Vec::new();
        let mut noted: HashSet<(BlobId, &[u8])> = HashSet::new();
        for entry in &tree.entries {
            let Node::File { content } = &entry.node else { continue };
            for x in content {
                let Extent::Data { id: chunk, len } = *x else { continue };
                // A file naming one chunk many times is one problem.
                if !noted.insert((chunk, &entry.name)) {
                    continue;
                }
                let key = (BlobKind::Data, chunk);
                let name = escape_bytes(&entry.name);
                self.index.count_lookup(&mut self.lookups);
                match self.index.preferred(BlobKind::Data, chunk) {
                    None if self.index.contains(BlobKind::Tree, chunk) => {
                        contradictions.push(format!("{name}: chunk {chunk} is stored as a tree, not as file content"));
                        problems.push((key, entry.name.clone(), "stored only as a tree".into()));
                    }
                    None => problems.push((key, entry.name.clone(), "missing from the repository".into())),
                    Some(loc) if loc.len != len => {
                        contradictions
                            .push(format!("{name}: chunk {chunk} has {} bytes where the tree says {len}", loc.len));
                    }
                    Some(_) => {
                        if let Some((_, why)) = self.bad.get(&key) {
                            problems.push((key, entry.name.clone(), why.clone()));
                        }
                    }
                }
            }
        }
        if !contradictions.is_empty() {
            self.contradictions.insert(id, contradictions);
        }
        self.per_tree.insert(id, problems.clone());
        problems
    }
}

/// The names of a hard-link group within one snapshot must agree on the
/// file's content and size.
fn check_groups(
    tree: &Tree,
    node: PathNode,
    paths: &Paths,
    groups: &mut HashMap<u64, (u64, PathNode, Vec<u8>)>,
    found: &mut Findings,
    snap: SnapshotId,
) {
    for entry in &tree.entries {
        let Some(link) = entry.hard_link else { continue };
        let mut what = bitcode::encode(&entry.node);
        what.extend_from_slice(&entry.size.to_le_bytes());
        let sum = xxh3_64(&what);
        match groups.get(&link.group) {
            None => {
                groups.insert(link.group, (sum, node, entry.name.clone()));
            }
            Some((first_sum, first_node, first_name)) if *first_sum != sum => found.contradiction(|| {
                format!(
                    "snapshot {snap}: hard-link group {}: {} and {} disagree on what the file holds",
                    link.group,
                    escape_bytes(&paths.child_path(*first_node, first_name)),
                    escape_bytes(&paths.child_path(node, &entry.name))
                )
            }),
            Some(_) => {}
        }
    }
}
