//! Entry points for the fuzz targets in `fuzz/`, one per decoder and one
//! for a whole repository. Each takes arbitrary bytes and must return
//! without panicking, whatever they are; `tests/fuzz_regressions.rs`
//! replays every input the fuzzers ever found against them on stable Rust.
//!
//! Every decoder target decodes its input twice: as it is, and with the
//! envelope's length and checksum fields recomputed over the rest. A
//! random mutation almost never keeps the xxh3 checksum right, so without
//! the second pass the fuzzer would test the checksum and nothing behind
//! it. When decoding succeeds, the target uses the value the way the rest
//! of chkfs does. The few assertions here state guarantees the decoders
//! document (a validated block lies inside its pack, a decoded value
//! encodes back to itself...): a failing one is a bug in chkfs like any
//! other panic, never a property of the input.
//!
//! # Repository input
//!
//! [`repository`] takes a whole repository in one input:
//!
//! ```text
//! flags      u8        bit 0: seal (see below); other bits unused
//! then, until the input ends, objects:
//!   key_len  u8
//!   key      key_len bytes, the storage key ("config", "packs/ab/<32 hex>.pack"...)
//!   data_len u32 LE
//!   data     data_len bytes (the rest of the input when it is shorter)
//! ```
//!
//! With the seal flag, every object that starts with an envelope magic,
//! and the footer of every object whose key ends in `.pack`, gets its
//! envelope checksum recomputed before it is stored, so that mutations of
//! config, snapshot records, index files, damage lists and pack footers
//! reach their decoders. [`repository_input`] builds such an input from a
//! real repository's files (the seed generator uses it).

use crate::chunking::{chunk_lengths, ChunkSizes};
use crate::forget::policy::{self, Candidate, Policy};
use crate::format::pack::{
    check_header, decode_footer, footer_location, open_block, open_block_owned, seal_block, BlockInfo, Codec,
    TRAILER_LEN,
};
use crate::format::records::{self, Config, DamageList, IndexFile, Snapshot, Timestamp};
use crate::format::tree::{self, Entry, Extent, Node, Tree};
use crate::format::{envelope_header, open_envelope, seal_envelope, ObjectKind, ENVELOPE_LEN};
use crate::fs::{Attr, FsOptions, Kind, SnapshotFs};
use crate::store::backend::Backend;
use crate::store::memory::MemBackend;
use crate::store::{BlobReader, Index, Repository};
use crate::text::{escape_bytes, escape_str};
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use xxhash_rust::xxh3::{xxh3_64, SecretInput};

const KINDS: [ObjectKind; 10] = [
    ObjectKind::Config,
    ObjectKind::Snapshot,
    ObjectKind::Index,
    ObjectKind::PackFooter,
    ObjectKind::Tree,
    ObjectKind::DamageList,
    ObjectKind::SplitTree,
    ObjectKind::WriterMarker,
    ObjectKind::CondemnedList,
    ObjectKind::TaggedSnapshot,
];

/// Repository flag: recompute envelope checksums (see the module docs).
pub const SEAL: u8 = 1;
/// The most paths a snapshot walk lists (restore's bound is the record's
/// own count; a small one keeps every run fast).
const MAX_ENTRIES: u64 = 10_000;
/// The most nodes the mount walk visits.
const MAX_NODES: usize = 300;

// ------------------------------------------------------------- envelopes

/// Runs `f` on `data` and, when that differs, on `data` with its envelope
/// length and checksum recomputed.
fn both(data: &[u8], f: impl Fn(&[u8])) {
    f(data);
    let mut fixed = data.to_vec();
    if reseal(&mut fixed) {
        f(&fixed);
    }
}

/// Sets the envelope's length and checksum fields to match the payload
/// that follows; returns whether anything changed.
fn reseal(bytes: &mut [u8]) -> bool {
    if bytes.len() < ENVELOPE_LEN {
        return false;
    }
    let (head, payload) = bytes.split_at_mut(ENVELOPE_LEN);
    let Ok(len) = u32::try_from(payload.len()) else { return false };
    let mut fields = [0u8; 12];
    fields[..4].copy_from_slice(&len.to_le_bytes());
    fields[4..].copy_from_slice(&xxh3_64(payload).to_le_bytes());
    let changed = head[8..20] != fields;
    head[8..20].copy_from_slice(&fields);
    changed
}

/// Any object: its header checked and the object opened as every kind.
/// An envelope that opens has a header that announces its payload, and
/// seals back to the same bytes.
pub fn envelope(data: &[u8]) {
    both(data, |bytes| {
        for kind in KINDS {
            let header = envelope_header(kind, bytes);
            if let Ok(payload) = open_envelope(kind, bytes) {
                assert_eq!(header, Ok(payload.len() as u64), "an opened {} has another header", kind.name());
                let sealed = seal_envelope(kind, payload);
                assert!(sealed.is_ok_and(|s| s == bytes), "an opened {} does not seal back to itself", kind.name());
            }
        }
    });
}

// ----------------------------------------------------------------- packs

/// Input: a codec byte (even: raw, odd: lz4), the raw length (u32 LE),
/// then the stored bytes of a block.
pub fn pack_block(data: &[u8]) {
    let Some((head, stored)) = data.split_first_chunk::<5>() else { return };
    let codec = if head[0] & 1 == 0 { Codec::Raw } else { Codec::Lz4 };
    let raw_len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    let raw = open_block(codec, raw_len, stored);
    assert_eq!(raw, open_block_owned(codec, raw_len, stored.to_vec()), "open_block and open_block_owned disagree");
    let Ok(raw) = raw else { return };
    assert_eq!(raw.len(), raw_len as usize, "an opened block has another length than its raw length");
    // What a save does with such bytes: seal them, and read them back.
    let sealed = seal_block(&raw, Vec::new());
    assert_eq!(open_block(sealed.codec, sealed.raw_len, &sealed.bytes).as_ref(), Ok(&raw), "block round trip");
}

/// Input: a whole pack. Reads it as `Repository::read_pack_footer` and
/// `check --read-data` do, also with its footer's checksum recomputed.
pub fn pack_footer(data: &[u8]) {
    read_pack(data);
    let Some(range) = footer_range(data) else { return };
    let mut fixed = data.to_vec();
    if reseal(&mut fixed[range]) {
        read_pack(&fixed);
    }
}

/// Where the trailer of `pack` says its footer is.
fn footer_range(pack: &[u8]) -> Option<Range<usize>> {
    let trailer = pack.get(pack.len().checked_sub(TRAILER_LEN)?..)?;
    let (start, len) = footer_location(trailer, pack.len() as u64).ok()?;
    let start = usize::try_from(start).ok()?;
    let range = start..start.checked_add(len)?;
    assert!(range.end <= pack.len(), "footer_location points beyond the pack");
    Some(range)
}

fn read_pack(pack: &[u8]) {
    let _ = check_header(pack);
    let Some(range) = footer_range(pack) else { return };
    let start = range.start as u64;
    let Ok(footer) = decode_footer(&pack[range], start) else { return };
    for block in &footer.blocks {
        read_block(pack, block);
    }
}

/// Opens a block of a validated footer and slices out its blobs, as the
/// blob reader does.
fn read_block(pack: &[u8], b: &BlockInfo) {
    let start = usize::try_from(b.offset).ok();
    let stored = start.and_then(|s| pack.get(s..s.checked_add(b.stored_len as usize)?));
    let Some(stored) = stored else { panic!("a validated block at {} lies outside its pack", b.offset) };
    let Ok(raw) = open_block(b.codec, b.raw_len, stored) else { return };
    for blob in &b.blobs {
        let range = blob.offset as usize..blob.offset as usize + blob.len as usize;
        assert!(raw.get(range).is_some(), "a validated blob {} lies outside its block", blob.id);
    }
}

// --------------------------------------------------------------- records

pub fn index(data: &[u8]) {
    both(data, |bytes| {
        if let Ok(file) = records::decode_index(bytes) {
            use_index(&file);
        }
    });
}

/// An index table as the cache maps it: opened, every pack, block and
/// blob read, ids looked up, then merged with itself, which must give a
/// table that opens and checks. Nothing may panic, whatever the bytes.
pub fn index_table(data: &[u8]) {
    use_table(data);
    // With both checksums made right, so the fuzzer reaches the body.
    if data.len() >= 80 {
        let mut sealed = data.to_vec();
        let body = xxhash_rust::xxh3::xxh3_128(&sealed[80..]);
        sealed[56..72].copy_from_slice(&body.to_le_bytes());
        let head = xxh3_64(&sealed[..72]);
        sealed[72..80].copy_from_slice(&head.to_le_bytes());
        use_table(&sealed);
    }
}

fn use_table(data: &[u8]) {
    use crate::format::index_table::{merge_tables, TableView};
    use crate::store::index::Table;
    let Ok(view) = TableView::open(data) else { return };
    let _ = view.verify_body();
    let _ = view.covers().take(1000).count();
    for slot in 0..view.pack_count().min(1000) {
        let pack = view.indexed_pack(slot);
        let _ = view.find_pack(pack.id);
        for b in pack.blocks.iter().flat_map(|b| &b.blobs).take(1000) {
            let _ = view.find(b.kind, b.id);
        }
    }
    for i in 0..view.blob_count().min(1000) {
        let b = view.blob(view.sorted(i));
        let _ = view.find(crate::format::pack::BlobKind::Data, b.id);
        let _ = view.blobs_of_block(b.block);
    }
    let Ok(table) = Table::owned(data.to_vec()) else { return };
    let mut index = Index::new(Vec::new());
    index.add_table(Arc::new(table));
    for n in 0..index.block_count().min(1000) {
        for l in index.blobs_in_block(n) {
            let _ = index.pack_of(&l);
            let _ = index.locations(l.kind, l.id).count();
        }
    }
    if view.blob_count() <= 100_000 {
        let merged = merge_tables(&[view, view], std::io::Cursor::new(Vec::new()), &mut || {}).map(|c| c.into_inner());
        if let Ok(bytes) = merged {
            let again = TableView::open(&bytes).expect("a merged table opens");
            again.verify_body().expect("a merged table checks");
            assert_eq!(again.blob_count(), 2 * view.blob_count());
        }
    }
}

/// Loads the file into an index as `load_index` does, looks every blob up,
/// and checks that the index lists each pack as the file does: gc writes
/// the packs that stay from the index.
fn use_index(file: &IndexFile) {
    let mut index = Index::new(Vec::new());
    index.add_packs(&file.packs);
    for slot in 0..index.pack_count() {
        let pack = index.indexed_pack(slot);
        let listed = file.packs.iter().find(|p| p.id == pack.id);
        assert_eq!(listed, Some(&pack), "the index lists pack {} otherwise than its index file", pack.id);
        for n in index.blocks_of_pack(slot) {
            for loc in index.blobs_in_block(n) {
                assert!(index.locations(loc.kind, loc.id).count() > 0, "an indexed blob has no location");
            }
        }
    }
    let again = records::encode_index(file).ok().and_then(|b| records::decode_index(&b).ok());
    assert_eq!(again.as_ref(), Some(file), "an index file does not re-encode to itself");
}

pub fn tree(data: &[u8]) {
    both(data, |bytes| {
        if let Ok(t) = tree::decode_tree(bytes) {
            use_tree(&t);
        }
    });
}

/// A split tree: decoded, its parts looked up by name and by position as
/// the mount does, re-encoded to itself.
pub fn split_tree(data: &[u8]) {
    both(data, |bytes| {
        if let Ok(s) = tree::decode_split_tree(bytes).map(tree::IndexedSplit::new) {
            let _ = s.memory_size();
            let mut start = 0u64;
            for (k, p) in s.parts.iter().enumerate() {
                assert_eq!(s.part_for(&p.first), Some(k), "a part is not found by its first name");
                assert_eq!(s.part_at(start), Some((k, start)), "a part is not found by its position");
                start += u64::from(p.entries);
            }
            assert_eq!(s.part_at(start), None);
            let again = tree::encode_split_tree(&s).ok().and_then(|b| tree::decode_split_tree(&b).ok());
            assert_eq!(again.as_ref(), Some(&*s), "a split tree does not re-encode to itself");
        }
        let _ = tree::decode_tree_object(bytes);
    });
}

fn use_tree(t: &Tree) {
    let _ = t.memory_size();
    for e in &t.entries {
        assert_eq!(t.find(&e.name), Some(e), "a decoded tree's entry cannot be found by its name");
        use_entry(e);
    }
    let again = tree::encode_tree(t).ok().and_then(|b| tree::decode_tree(&b).ok());
    assert_eq!(again.as_ref(), Some(t), "a tree does not re-encode to itself");
}

/// What messages, restore and the mount do with an entry: print its name
/// and times, add up its extents (unchecked: validation promises the sum
/// fits), read its target and xattr names.
fn use_entry(e: &Entry) {
    let _ = (e.kind_name(), escape_bytes(&e.name), time_text(e.mtime), time_text(e.ctime));
    match &e.node {
        Node::File { content } => {
            let total: u64 = content.iter().map(Extent::len).sum();
            assert_eq!(total, e.size, "a file's extents do not add up to its size");
        }
        Node::Symlink { target } => {
            let _ = escape_bytes(target);
        }
        _ => {}
    }
    for x in &e.xattrs {
        let _ = escape_bytes(&x.name);
    }
}

/// A time as `list` and the by-time directory show it.
fn time_text(t: Timestamp) -> String {
    let ts = jiff::Timestamp::new(t.secs, t.nanos as i32).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.to_zoned(jiff::tz::TimeZone::UTC).strftime("%Y-%m-%d_%H-%M-%S").to_string()
}

pub fn snapshot(data: &[u8]) {
    both(data, |bytes| {
        if let Ok(s) = records::decode_snapshot(bytes) {
            use_snapshot(&s);
        }
    });
}

fn use_snapshot(s: &Snapshot) {
    let _ = s.root_tree();
    use_entry(&s.root);
    let _ = (time_text(s.time), escape_str(&s.host), escape_bytes(&s.path), escape_str(&s.message), entry_limit(s));
    let _ = forget_all(std::slice::from_ref(s));
    let again = records::encode_snapshot(s).ok().and_then(|b| records::decode_snapshot(&b).ok());
    assert_eq!(again.as_ref(), Some(s), "a snapshot record does not re-encode to itself");
}

/// The most entries restore accepts below a snapshot's root.
fn entry_limit(s: &Snapshot) -> u64 {
    let st = &s.stats;
    st.files.saturating_add(st.dirs).saturating_add(st.other).min(MAX_ENTRIES) + 1
}

/// Every retention rule over the snapshots and an old one beside each.
fn forget_all(snapshots: &[Snapshot]) -> Vec<policy::Decision> {
    let candidate = |i: usize, time, s: &Snapshot| Candidate {
        id: crate::format::SnapshotId(i as u32),
        time,
        host: s.host.clone(),
        path: s.path.clone(),
        tags: s.tags.clone(),
    };
    let mut all = Vec::new();
    for (i, s) in snapshots.iter().enumerate() {
        all.push(candidate(2 * i, s.time, s));
        all.push(candidate(2 * i + 1, Timestamp::default(), s));
    }
    let two = Some(2);
    let rules =
        Policy { last: two, hourly: two, daily: two, weekly: two, monthly: two, yearly: two, within: Some(86400) };
    policy::apply(&rules, &all, &jiff::tz::TimeZone::UTC)
}

pub fn config(data: &[u8]) {
    both(data, |bytes| {
        if let Ok(c) = records::decode_config(bytes) {
            use_config(&c, bytes);
        }
    });
}

/// What opening a repository and saving into it need: a usable secret and
/// chunk sizes fastcdc accepts (it asserts on others).
fn use_config(c: &Config, data: &[u8]) {
    assert!(SecretInput::try_new(c.hash_secret.clone()).is_some(), "a decoded config has an unusable secret");
    let p = &c.chunker;
    let sizes = ChunkSizes { min: p.min_size as usize, avg: p.avg_size as usize, max: p.max_size as usize, seed: 0 };
    assert_eq!(chunk_lengths(data, sizes).sum::<usize>(), data.len(), "chunks do not cover their data");
    let again = records::encode_config(c).ok().and_then(|b| records::decode_config(&b).ok());
    assert_eq!(again.as_ref(), Some(c), "a config does not re-encode to itself");
}

pub fn damage_list(data: &[u8]) {
    both(data, |bytes| {
        if let Ok(list) = records::decode_damage_list(bytes) {
            use_damage_list(&list);
        }
    });
}

/// Feeds the list to an index as `load_index` does.
fn use_damage_list(list: &DamageList) {
    let index = Index::new(list.entries.iter().copied());
    assert_eq!(index.has_damage(), !list.entries.is_empty(), "an index ignores its damage list");
    let again = records::encode_damage_list(list).ok().and_then(|b| records::decode_damage_list(&b).ok());
    assert_eq!(again.as_ref(), Some(list), "a damage list does not re-encode to itself");
}

pub fn writer_marker(data: &[u8]) {
    both(data, |bytes| {
        if let Ok(m) = records::decode_writer_marker(bytes) {
            let again = records::encode_writer_marker(&m).ok().and_then(|b| records::decode_writer_marker(&b).ok());
            assert_eq!(again.as_ref(), Some(&m), "a writer marker does not re-encode to itself");
            let info = crate::store::WriterInfo {
                id: 1,
                started: std::time::UNIX_EPOCH,
                refreshed: std::time::UNIX_EPOCH,
                marker: Some(m),
            };
            // Any claimed lease is bounded, and judging one never panics.
            assert!(info.lease() <= crate::store::writers::SAVE_LEASE);
            let _ = (info.is_live(std::time::SystemTime::now()), info.describe(), info.is_dead_here());
        }
    });
}

pub fn condemned_list(data: &[u8]) {
    both(data, |bytes| {
        if let Ok(list) = records::decode_condemned(bytes) {
            let index = Index::with_condemned([], list.packs.iter().copied());
            assert!(list.packs.iter().all(|p| index.condemned().contains(p)), "an index ignores a condemned pack");
            let again = records::encode_condemned(&list).ok().and_then(|b| records::decode_condemned(&b).ok());
            assert_eq!(again.as_ref(), Some(&list), "a condemned list does not re-encode to itself");
        }
    });
}

// ------------------------------------------------------------ encryption

/// The key the `sealed` target opens its inputs with.
pub const FUZZ_KEY: [u8; 32] = [0x5a; 32];

/// A key file decodes only with bounded key-derivation costs, and re-encodes
/// to itself; opening it (when cheap) never panics.
pub fn key_file(data: &[u8]) {
    use crate::format::keyfile::{decode_key_file, encode_key_file};
    both(data, |bytes| {
        if let Ok(key) = decode_key_file(bytes) {
            let k = &key.meta.kdf;
            assert!(k.memory_kib <= crate::format::keyfile::MAX_KDF_MEMORY_KIB && k.iterations <= 64);
            if k.memory_kib <= 1024 && k.iterations <= 2 {
                let _ = key.unwrap_with("keys/00000000000000000000000000000000.key", b"password");
            }
            let again = encode_key_file(&key).ok().and_then(|b| decode_key_file(&b).ok());
            assert_eq!(again.as_ref(), Some(&key), "a key file does not re-encode to itself");
        }
    });
}

/// Sealed objects and blocks: opening never panics, and what opens seals
/// and opens back to the same bytes.
pub fn sealed(data: &[u8]) {
    use crate::format::pack::BlobKind;
    use crate::format::sealed::{sealed_header, Cipher};
    let Ok(cipher) = Cipher::new(&FUZZ_KEY) else { return };
    let binding = b"snapshots/00000000.snap";
    let _ = sealed_header(ObjectKind::Snapshot, data);
    if let Ok(inner) = cipher.open_object(ObjectKind::Snapshot, binding, data) {
        let again = cipher.seal_object(ObjectKind::Snapshot, binding, &inner).ok();
        let back = again.and_then(|b| cipher.open_object(ObjectKind::Snapshot, binding, &b).ok());
        assert_eq!(back.as_ref(), Some(&inner), "a sealed object does not round-trip");
        let _ = records::decode_snapshot(&inner);
    }
    for kind in [BlobKind::Data, BlobKind::Tree] {
        let ids = [crate::format::BlobId(7)];
        if let Ok(stored) = cipher.open_block(kind, &ids, data.to_vec()) {
            let back =
                cipher.seal_block(kind, &ids, stored.clone()).ok().and_then(|b| cipher.open_block(kind, &ids, b).ok());
            assert_eq!(back.as_ref(), Some(&stored), "a sealed block does not round-trip");
        }
    }
}

// ------------------------------------------------------------ repository

/// The (key, bytes) objects of a repository input (see the module docs);
/// the flags byte comes first and is not included.
pub fn repository_objects(mut data: &[u8]) -> Vec<(String, &[u8])> {
    let mut out = Vec::new();
    while let Some((&key_len, rest)) = data.split_first() {
        let Some((key, rest)) = rest.split_at_checked(key_len as usize) else { break };
        let Some((len, rest)) = rest.split_first_chunk::<4>() else { break };
        let len = (u32::from_le_bytes(*len) as usize).min(rest.len());
        let (bytes, rest) = rest.split_at(len);
        out.push((String::from_utf8_lossy(key).into_owned(), bytes));
        data = rest;
    }
    out
}

/// Encodes objects as a repository input; keys longer than 255 bytes or
/// objects larger than 4 GiB cannot be encoded and are left out.
pub fn repository_input<'a>(flags: u8, objects: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut out = vec![flags];
    for (key, bytes) in objects {
        let (Ok(key_len), Ok(len)) = (u8::try_from(key.len()), u32::try_from(bytes.len())) else { continue };
        out.push(key_len);
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// Input: a repository (see the module docs). Opens it in memory, then
/// reads it as restore, check and the mount do.
pub fn repository(data: &[u8]) {
    let Some(repo) = open_repository(data) else { return };
    let repo = Arc::new(repo);
    restore_all(&repo);
    if let Ok(report) = crate::check::check(repo.clone(), true) {
        let _ = (report.is_ok(), serde_json::to_string(&report));
    }
    mount_walk(repo);
}

fn open_repository(data: &[u8]) -> Option<Repository> {
    let (&flags, rest) = data.split_first()?;
    let backend = MemBackend::new();
    for (key, bytes) in repository_objects(rest) {
        let mut bytes = bytes.to_vec();
        if flags & SEAL != 0 {
            seal_object(&key, &mut bytes);
        }
        backend.write_if_absent(&key, &bytes).ok()?;
    }
    backend.sync().ok()?;
    Repository::open(Arc::new(backend)).ok()
}

/// Recomputes the checksum of an object's envelope, or of a pack's footer.
fn seal_object(key: &str, bytes: &mut [u8]) {
    if bytes.starts_with(b"CHKF") && !bytes.starts_with(b"CHKFPACK") {
        reseal(bytes);
    } else if key.ends_with(".pack") {
        if let Some(range) = footer_range(bytes) {
            reseal(&mut bytes[range]);
        }
    }
}

/// Every readable snapshot expanded as restore expands it, with every
/// chunk of every file read; then the retention rules over them all.
fn restore_all(repo: &Arc<Repository>) {
    let Ok(loaded) = repo.load_index() else { return };
    let _ = loaded.warnings();
    let reader = BlobReader::new(repo.clone(), Arc::new(loaded.index), 16 << 20);
    let Ok(entries) = repo.readable_snapshots(&mut |_, e| {
        let _ = e.to_string();
    }) else {
        return;
    };
    for s in &entries {
        restore_snapshot(&reader, &s.snapshot);
    }
    let snapshots: Vec<Snapshot> = entries.into_iter().map(|s| s.snapshot).collect();
    let _ = forget_all(&snapshots);
}

fn restore_snapshot(reader: &BlobReader, s: &Snapshot) {
    let mut load = |id| reader.read_tree(id).map(Arc::new);
    let limits = crate::walk::Limits { entries: entry_limit(s), tree_bytes: 64 << 20 };
    let Ok(expanded) = crate::walk::expand(s.root.clone(), limits, &mut load) else { return };
    for (dir, e) in &expanded.unlisted {
        let _ = (expanded.path(*dir), e.to_string());
    }
    for (i, item) in expanded.items.iter().enumerate() {
        let _ = escape_bytes(&expanded.path(i as u32));
        read_content(reader, item.entry.entry());
    }
}

fn read_content(reader: &BlobReader, e: &Entry) {
    let Node::File { content } = &e.node else { return };
    for x in content {
        if let Extent::Data { id, len } = *x {
            let _ = reader.read_chunk(id, len);
        }
    }
}

// ------------------------------------------------------------------ mount

/// The mount without FUSE: from the root inode down, breadth first, every
/// name listed is looked up and its node read, up to MAX_NODES nodes.
fn mount_walk(repo: Arc<Repository>) {
    let opts =
        FsOptions { cache_bytes: 8 << 20, snapshot_refresh: crate::fs::snapshots::MAX_AGE_LOCAL, uid: 0, gid: 0 };
    let Ok(fs) = SnapshotFs::new(repo, opts) else { return };
    let mut queue = VecDeque::from([1u64]);
    let mut visited = 0;
    while let Some(dir) = queue.pop_front() {
        for name in list_dir(&fs, dir) {
            visited += 1;
            if visited > MAX_NODES {
                return;
            }
            let Ok((attr, _)) = fs.lookup(dir, &name) else { continue };
            visit_node(&fs, attr);
            if attr.kind == Kind::Dir {
                queue.push_back(attr.ino);
            }
        }
    }
    let _ = (fs.statfs(), fs.live_inodes());
}

/// The names in a directory; also lists it as READDIRPLUS does, into a
/// reply that fills up after two items.
fn list_dir(fs: &SnapshotFs, ino: u64) -> Vec<Vec<u8>> {
    let mut names = Vec::new();
    let _ = fs.readdir(ino, 0, false, &mut |item| {
        if item.name != b"." && item.name != b".." {
            names.push(item.name.to_vec());
        }
        false
    });
    let mut n = 0;
    let _ = fs.readdir(ino, 1, true, &mut |_| {
        n += 1;
        n >= 2
    });
    names
}

fn visit_node(fs: &SnapshotFs, attr: Attr) {
    let ino = attr.ino;
    let _ = (fs.getattr(ino), fs.readlink(ino), fs.is_immutable_dir(ino));
    if let Ok(names) = fs.listxattr(ino, &|| true) {
        for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let _ = fs.getxattr(ino, name, &|| false);
        }
    }
    if attr.kind == Kind::File {
        read_file(fs, ino, attr.size);
    }
}

/// Reads at the start, the middle and the end of a file, and seeks.
fn read_file(fs: &SnapshotFs, ino: u64, size: u64) {
    let _ = fs.open(ino, false);
    for offset in [0, size / 2, size.saturating_sub(1), size] {
        let _ = fs.read(ino, offset, 64 << 10);
    }
    let _ = (fs.seek(ino, 0, true), fs.seek(ino, 0, false), fs.seek(ino, size / 2, true));
}
