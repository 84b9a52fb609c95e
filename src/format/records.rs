//! Small repository records: config, snapshot, index file, damage list.
//! Each is a bitcode payload inside an envelope; the structs are frozen for
//! format version 1 (a change means a new version and a migration).

use super::envelope::{decode_payload, open_envelope, open_envelope_of, seal_envelope, ObjectKind};
use super::pack::BlockInfo;
use super::tree::{Entry, Node};
use super::{BlobId, FormatError, PackId};

/// Size of the secret that keys chunk hashing.
pub const HASH_SECRET_LEN: usize = 192;

#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub struct Config {
    pub repo_id: u128,
    /// Keys xxh3-128 so that nobody without the repository can craft
    /// colliding chunks.
    pub hash_secret: Vec<u8>,
    pub chunker: ChunkerParams,
    pub created: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, bitcode::Encode, bitcode::Decode)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Timestamp {
    /// The current time (the epoch if the clock is before it).
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp { secs: d.as_secs() as i64, nanos: d.subsec_nanos() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, bitcode::Encode, bitcode::Decode)]
pub struct SnapshotStats {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    /// Logical size of the files (sum of their sizes).
    pub bytes: u64,
    pub bytes_read: u64,
    /// Growth of the repository on disk caused by this save.
    pub added_bytes: u64,
    pub added_blobs: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub struct Snapshot {
    pub time: Timestamp,
    pub host: String,
    /// Absolute source path, raw bytes.
    pub path: Vec<u8>,
    pub message: String,
    pub parent: Option<u32>,
    /// The saved directory itself; its node is always a `Node::Dir`.
    pub root: Entry,
    /// Some files could not be read and are missing.
    pub partial: bool,
    pub errors: Vec<String>,
    pub stats: SnapshotStats,
    pub chkfs_version: String,
    /// Labels given at save time or later (`chkfs tag`); a record with
    /// none is written as version 1 wrote it, one with some as a tagged
    /// snapshot (version 5).
    pub tags: Vec<String>,
}

/// A snapshot record as version 1 encodes it: every field but the tags.
#[derive(bitcode::Encode, bitcode::Decode)]
struct SnapshotV1 {
    time: Timestamp,
    host: String,
    path: Vec<u8>,
    message: String,
    parent: Option<u32>,
    root: Entry,
    partial: bool,
    errors: Vec<String>,
    stats: SnapshotStats,
    chkfs_version: String,
}

impl SnapshotV1 {
    fn of(s: &Snapshot) -> SnapshotV1 {
        SnapshotV1 {
            time: s.time,
            host: s.host.clone(),
            path: s.path.clone(),
            message: s.message.clone(),
            parent: s.parent,
            root: s.root.clone(),
            partial: s.partial,
            errors: s.errors.clone(),
            stats: s.stats.clone(),
            chkfs_version: s.chkfs_version.clone(),
        }
    }

    fn with_tags(self, tags: Vec<String>) -> Snapshot {
        Snapshot {
            time: self.time,
            host: self.host,
            path: self.path,
            message: self.message,
            parent: self.parent,
            root: self.root,
            partial: self.partial,
            errors: self.errors,
            stats: self.stats,
            chkfs_version: self.chkfs_version,
            tags,
        }
    }
}

/// The most tags a snapshot may carry, and the longest tag.
pub const MAX_TAGS: usize = 1024;
pub const MAX_TAG_LEN: usize = 255;

/// Why `tags` cannot be a snapshot's tags, if they cannot.
pub fn invalid_tags(tags: &[String]) -> Option<&'static str> {
    if tags.len() > MAX_TAGS {
        return Some("a snapshot has at most 1024 tags");
    }
    tags.iter().find_map(|t| invalid_tag(t))
}

/// Why `tag` cannot be a tag, if it cannot: empty, too long, or holding a
/// comma (tags are given as lists) or a control character.
pub fn invalid_tag(tag: &str) -> Option<&'static str> {
    if tag.is_empty() {
        Some("a tag is not empty")
    } else if tag.len() > MAX_TAG_LEN {
        Some("a tag is at most 255 bytes")
    } else if tag.contains(',') || tag.chars().any(char::is_control) {
        Some("a tag holds no comma and no control character")
    } else {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub struct IndexedPack {
    pub id: PackId,
    pub size: u64,
    pub blocks: Vec<BlockInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, bitcode::Encode, bitcode::Decode)]
pub struct IndexFile {
    pub packs: Vec<IndexedPack>,
}

/// Blob copies that `check --read-data` found damaged; they are never
/// deduplicated against, so the next save stores a fresh copy.
#[derive(Debug, Clone, PartialEq, Eq, Default, bitcode::Encode, bitcode::Decode)]
pub struct DamageList {
    pub entries: Vec<(PackId, BlobId)>,
}

/// What a writer (save, copy, gc) announces while it runs: the
/// multi-writer protocol (FORMAT.md) judges it by the storage times of its
/// marker objects, never by the times written here, which are for people.
#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub struct WriterMarker {
    pub command: String,
    pub host: String,
    pub pid: u32,
    pub started: Timestamp,
    /// The writer refreshes its marker well within this many seconds
    /// while it runs; a marker not refreshed for longer is a dead writer's.
    pub lease_secs: u64,
    /// The kernel's boot id and the inode of the writer's pid namespace:
    /// with the host name, they tell a gc on the same machine that `pid`
    /// is a process it can look for.
    pub boot_id: String,
    pub pid_namespace: u64,
}

/// Packs a gc found unused: no writer may deduplicate against them, and a
/// later gc deletes those still unused once every writer that could have
/// missed this list has finished.
#[derive(Debug, Clone, PartialEq, Eq, Default, bitcode::Encode, bitcode::Decode)]
pub struct CondemnedList {
    pub packs: Vec<PackId>,
    pub written: Timestamp,
}

macro_rules! record_codec {
    ($ty:ty, $kind:expr, $what:expr, $enc:ident, $dec:ident) => {
        pub fn $enc(value: &$ty) -> Result<Vec<u8>, FormatError> {
            seal_envelope($kind, &bitcode::encode(value))
        }

        pub fn $dec(bytes: &[u8]) -> Result<$ty, FormatError> {
            decode_payload($what, open_envelope($kind, bytes)?)
        }
    };
}

record_codec!(Config, ObjectKind::Config, "config", encode_config, decode_config_payload);
/// A snapshot record: as version 1 wrote it when it has no tags (so an
/// older chkfs still reads it), else as a tagged snapshot (version 5).
pub fn encode_snapshot(s: &Snapshot) -> Result<Vec<u8>, FormatError> {
    // What readers refuse is never written.
    if let Some(why) = invalid_tags(&s.tags) {
        return Err(FormatError::Invalid { what: "snapshot", detail: why.into() });
    }
    match s.tags.is_empty() {
        true => seal_envelope(ObjectKind::Snapshot, &bitcode::encode(&SnapshotV1::of(s))),
        false => seal_envelope(ObjectKind::TaggedSnapshot, &bitcode::encode(s)),
    }
}

fn decode_snapshot_payload(bytes: &[u8]) -> Result<Snapshot, FormatError> {
    match open_envelope_of(&[ObjectKind::Snapshot, ObjectKind::TaggedSnapshot], bytes)? {
        (ObjectKind::Snapshot, payload) => {
            decode_payload::<SnapshotV1>("snapshot", payload).map(|v1| v1.with_tags(Vec::new()))
        }
        (_, payload) => decode_payload("snapshot", payload),
    }
}

/// Decodes a snapshot record and checks what readers rely on: the root is
/// a directory, and every time is one that arithmetic and display handle.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, FormatError> {
    let snapshot = decode_snapshot_payload(bytes)?;
    let invalid = |detail: &str| FormatError::Invalid { what: "snapshot", detail: detail.into() };
    if !matches!(snapshot.root.node, Node::Dir { .. }) {
        return Err(invalid("root is not a directory"));
    }
    let times = [snapshot.time, snapshot.root.mtime, snapshot.root.ctime];
    if !times.into_iter().all(super::tree::valid_time) {
        return Err(invalid("a time is out of range"));
    }
    super::tree::validate_entry(&snapshot.root, true)?;
    if let Some(why) = invalid_tags(&snapshot.tags) {
        return Err(invalid(why));
    }
    Ok(snapshot)
}

impl Snapshot {
    pub fn root_tree(&self) -> BlobId {
        match self.root.node {
            Node::Dir { tree } => tree,
            // decode_snapshot guarantees a directory; an in-memory record
            // built otherwise is a programming error.
            _ => unreachable!("snapshot root is always a directory"),
        }
    }
}
record_codec!(IndexFile, ObjectKind::Index, "index", encode_index, decode_index_payload);
record_codec!(DamageList, ObjectKind::DamageList, "damage list", encode_damage_list, decode_damage_list);
record_codec!(WriterMarker, ObjectKind::WriterMarker, "writer marker", encode_writer_marker, decode_writer_marker);
record_codec!(CondemnedList, ObjectKind::CondemnedList, "condemned list", encode_condemned, decode_condemned);

pub fn decode_config(bytes: &[u8]) -> Result<Config, FormatError> {
    let config = decode_config_payload(bytes)?;
    if config.hash_secret.len() != HASH_SECRET_LEN || !valid_chunker(&config.chunker) {
        return Err(FormatError::Invalid { what: "config", detail: "bad secret or chunker sizes".into() });
    }
    Ok(config)
}

/// The ranges fastcdc supports.
pub(crate) fn valid_chunker(c: &ChunkerParams) -> bool {
    (64..=1 << 20).contains(&c.min_size)
        && (256..=4 << 20).contains(&c.avg_size)
        && (1024..=16 << 20).contains(&c.max_size)
        && c.min_size <= c.avg_size
        && c.avg_size <= c.max_size
        && c.min_size % 2 == 0
        && c.avg_size % 2 == 0
        && c.max_size % 2 == 0
}

/// Decodes an index file and checks that its blocks lie inside their packs.
pub fn decode_index(bytes: &[u8]) -> Result<IndexFile, FormatError> {
    let index = decode_index_payload(bytes)?;
    for pack in &index.packs {
        super::pack::validate_blocks(&pack.blocks, pack.size)?;
    }
    Ok(index)
}
