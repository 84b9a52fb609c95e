//! Storage keys: the one place that knows how objects are named in a
//! backend. Everything else asks for a pack, an index file or a snapshot
//! record by id, never by path.
//!
//! ```text
//! config                       format version, hashing secret, chunk sizes
//! packs/<2 hex>/<32 hex>.pack  blocks of blobs; named by their content hash
//! index/<32 hex>.idx           block lists of packs (rebuildable from packs)
//! snapshots/<8 hex>.snap       snapshot records, written last
//! damaged/<32 hex>.list        blob copies found damaged by check
//! writers/<32 hex>-<n>.wrt     markers of running writers (n = 0 at the
//!                              start, then one per refresh)
//! condemned/<32 hex>.cdm       packs gc found unused, not yet deleted
//! keys/<32 hex>.key            key files of an encrypted repository
//! ```

use crate::format::{PackId, SnapshotId};

pub const CONFIG: &str = "config";
pub const PACKS: &str = "packs";
pub const INDEX: &str = "index";
pub const SNAPSHOTS: &str = "snapshots";
pub const DAMAGED: &str = "damaged";
pub const WRITERS: &str = "writers";
pub const CONDEMNED: &str = "condemned";
pub const KEYS: &str = "keys";

/// Every directory a repository has.
pub const DIRS: [&str; 7] = [PACKS, INDEX, SNAPSHOTS, DAMAGED, WRITERS, CONDEMNED, KEYS];

pub fn pack(id: PackId) -> String {
    let hex = id.to_hex();
    format!("{PACKS}/{}/{hex}.pack", &hex[..2])
}

/// Index files and damage lists are named by the hash of their bytes.
pub fn index(name: PackId) -> String {
    format!("{INDEX}/{}.idx", name.to_hex())
}

pub fn snapshot(id: SnapshotId) -> String {
    format!("{SNAPSHOTS}/{}.snap", id.to_hex())
}

pub fn damage_list(name: PackId) -> String {
    format!("{DAMAGED}/{}.list", name.to_hex())
}

/// Marker `seq` of writer `id`.
pub fn writer(id: u128, seq: u64) -> String {
    format!("{WRITERS}/{id:032x}-{seq}.wrt")
}

/// Condemned lists are named by the hash of their bytes.
pub fn condemned(name: PackId) -> String {
    format!("{CONDEMNED}/{}.cdm", name.to_hex())
}

/// Key file `id` of an encrypted repository.
pub fn key_file(id: u128) -> String {
    format!("{KEYS}/{id:032x}.key")
}

pub fn parse_key_file(key: &str) -> Option<u128> {
    let name = file_name(key, KEYS, ".key")?;
    if name.len() != 32 {
        return None;
    }
    u128::from_str_radix(name, 16).ok()
}

fn file_name<'a>(key: &'a str, dir: &str, ext: &str) -> Option<&'a str> {
    let rest = key.strip_prefix(dir)?.strip_prefix('/')?;
    rest.rsplit('/').next()?.strip_suffix(ext)
}

/// The pack a key names, if it names one where packs live.
pub fn parse_pack(key: &str) -> Option<PackId> {
    let id = PackId::from_hex(file_name(key, PACKS, ".pack")?).ok()?;
    (pack(id) == key).then_some(id)
}

pub fn parse_snapshot(key: &str) -> Option<SnapshotId> {
    let id = SnapshotId::from_hex(file_name(key, SNAPSHOTS, ".snap")?).ok()?;
    (snapshot(id) == key).then_some(id)
}

pub fn parse_index(key: &str) -> Option<PackId> {
    let id = PackId::from_hex(file_name(key, INDEX, ".idx")?).ok()?;
    (index(id) == key).then_some(id)
}

pub fn parse_damage_list(key: &str) -> Option<PackId> {
    let id = PackId::from_hex(file_name(key, DAMAGED, ".list")?).ok()?;
    (damage_list(id) == key).then_some(id)
}

/// The writer and refresh number a marker key names.
pub fn parse_writer(key: &str) -> Option<(u128, u64)> {
    let (id, seq) = file_name(key, WRITERS, ".wrt")?.split_once('-')?;
    let parsed = (u128::from_str_radix(id, 16).ok()?, seq.parse().ok()?);
    (writer(parsed.0, parsed.1) == key).then_some(parsed)
}

pub fn parse_condemned(key: &str) -> Option<PackId> {
    let id = PackId::from_hex(file_name(key, CONDEMNED, ".cdm")?).ok()?;
    (condemned(id) == key).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_foreign_names_are_not_objects() {
        let p = PackId(0xab << 120 | 7);
        assert_eq!(pack(p), format!("packs/ab/{}.pack", p.to_hex()));
        assert_eq!(parse_pack(&pack(p)), Some(p));
        assert_eq!(parse_pack(&format!("packs/cd/{}.pack", p.to_hex())), None, "wrong fan-out directory");
        assert_eq!(parse_pack("packs/ab/x.pack"), None);
        let s = SnapshotId(0x03f9a1c2);
        assert_eq!(parse_snapshot(&snapshot(s)), Some(s));
        assert_eq!(parse_snapshot("snapshots/03f9a1c2.snap.bak"), None);
        assert_eq!(parse_index(&index(p)), Some(p));
        assert_eq!(parse_damage_list(&damage_list(p)), Some(p));
        assert_eq!(parse_index(&damage_list(p)), None);
        assert_eq!(parse_writer(&writer(0xabc, 7)), Some((0xabc, 7)));
        assert_eq!(parse_writer("writers/abc-7.wrt"), None, "not the canonical spelling");
        assert_eq!(parse_writer(&format!("writers/{:032x}-+7.wrt", 1)), None);
        assert_eq!(parse_condemned(&condemned(p)), Some(p));
    }
}
