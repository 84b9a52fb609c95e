//! Condemned lists: packs a gc found unused and will delete later, once
//! no writer that might still use them runs (FORMAT.md, "Many writers").

use super::{keys, Repository, StoreError};
use crate::format::records::{decode_condemned, encode_condemned, CondemnedList, Timestamp};
use crate::format::{ObjectKind, PackId};
use std::time::SystemTime;
use xxhash_rust::xxh3::xxh3_128;

/// The largest condemned list a reader accepts (about 30 million packs).
const MAX_CONDEMNED: u64 = 1 << 30;

#[derive(Debug, Clone)]
pub struct Condemned {
    pub name: PackId,
    pub packs: Vec<PackId>,
    /// Storage time of the list: writers that started after it know it.
    pub written: SystemTime,
}

/// The condemned lists, and those that could not be read.
#[derive(Default)]
pub struct CondemnedLists {
    pub lists: Vec<Condemned>,
    pub bad: Vec<(String, StoreError)>,
}

impl CondemnedLists {
    pub fn packs(&self) -> impl Iterator<Item = PackId> + '_ {
        self.lists.iter().flat_map(|l| l.packs.iter().copied())
    }
}

impl Repository {
    /// Every condemned list. One that cannot be read condemns nothing: no
    /// gc deletes a pack through it, so using its packs stays safe.
    pub fn condemned_lists(&self) -> Result<CondemnedLists, StoreError> {
        let mut out = CondemnedLists::default();
        for l in self.backend().list(keys::CONDEMNED)? {
            let Some(name) = keys::parse_condemned(&l.key) else { continue };
            let read = self.read_enveloped(&l.key, ObjectKind::CondemnedList, MAX_CONDEMNED, Some(name));
            match read.and_then(|b| decode_condemned(&b).map_err(|e| StoreError::format(&l.key, e))) {
                Ok(list) => out.lists.push(Condemned { name, packs: list.packs, written: l.modified }),
                Err(e) if e.is_missing() => {}
                Err(e @ StoreError::Io { .. }) => return Err(e),
                Err(e) => out.bad.push((l.key, e)),
            }
        }
        Ok(out)
    }

    /// Writes a condemned list and makes it durable (nothing for no packs).
    pub fn write_condemned(&self, mut packs: Vec<PackId>) -> Result<Option<PackId>, StoreError> {
        if packs.is_empty() {
            return Ok(None);
        }
        packs.sort();
        packs.dedup();
        let list = CondemnedList { packs, written: Timestamp::now() };
        let bytes = encode_condemned(&list).map_err(|e| StoreError::format("condemned list", e))?;
        let bytes = self.seal_object(ObjectKind::CondemnedList, "", bytes)?;
        let name = PackId(xxh3_128(&bytes));
        self.backend().write_if_absent(&keys::condemned(name), &bytes)?;
        self.sync()?;
        Ok(Some(name))
    }

    pub fn delete_condemned(&self, name: PackId) -> Result<(), StoreError> {
        self.backend().delete(&keys::condemned(name))
    }

    /// Removes a condemned list that does not decode (by its key).
    pub fn delete_condemned_key(&self, key: &str) -> Result<(), StoreError> {
        match keys::parse_condemned(key) {
            Some(name) => self.delete_condemned(name),
            None => Ok(()),
        }
    }
}
