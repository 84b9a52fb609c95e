//! An in-memory backend that fails on purpose, for tests.
//!
//! * **Faults**: the N-th operation (counting every call) fails with an
//!   I/O error such as EIO or ENOSPC, as a failing disk would.
//! * **Power loss**: writes and deletes are visible at once but only
//!   durable after `sync`, as the [`Backend`] contract says. The backend
//!   keeps what is durable apart from what is not; `power_cut` makes every
//!   later operation fail (the machine is off), and `after_power_loss`
//!   builds what a reboot would find: the durable objects plus any subset
//!   of the operations not yet synced. A missing `sync` in the repository
//!   shows up as a survivor that refers to something that did not survive,
//!   which process-kill tests cannot see (the kernel still had the data).

use super::backend::{Backend, Listed};
use super::StoreError;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

type Objects = BTreeMap<String, Arc<Vec<u8>>>;

#[derive(Debug, Clone)]
enum Op {
    Put(String, Arc<Vec<u8>>),
    Delete(String),
}

#[derive(Default)]
struct State {
    visible: Objects,
    durable: Objects,
    /// Writes and deletes since the last sync, in order.
    pending: Vec<Op>,
    /// When each object was written, for listings.
    times: BTreeMap<String, SystemTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails with this errno (EIO, ENOSPC...).
    Errno(i32),
    /// The power goes off: this operation and every later one fail.
    PowerCut,
}

#[derive(Default)]
pub struct MemBackend {
    state: Mutex<State>,
    ops: AtomicU64,
    fault: Mutex<Option<(u64, Fault)>>,
    powered_off: AtomicBool,
}

impl MemBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes operation number `n` (counting from 0, from now) fail.
    pub fn inject(&self, n: u64, fault: Fault) {
        *self.fault.lock() = Some((self.ops.load(Ordering::SeqCst) + n, fault));
    }

    /// Operations so far.
    pub fn op_count(&self) -> u64 {
        self.ops.load(Ordering::SeqCst)
    }

    /// True once an injected fault has fired.
    pub fn fault_fired(&self) -> bool {
        self.powered_off.load(Ordering::SeqCst) || self.fault.lock().is_some_and(|(n, _)| self.op_count() > n)
    }

    /// Writes and deletes not yet made durable.
    pub fn pending(&self) -> usize {
        self.state.lock().pending.len()
    }

    /// What a reboot finds after a power loss now: the durable objects,
    /// then each pending operation applied, in order, when `survives(i)`.
    pub fn after_power_loss(&self, mut survives: impl FnMut(usize) -> bool) -> MemBackend {
        let state = self.state.lock();
        let mut objects = state.durable.clone();
        for (i, op) in state.pending.iter().enumerate() {
            if survives(i) {
                apply(&mut objects, op);
            }
        }
        let survivor = MemBackend::new();
        {
            let mut s = survivor.state.lock();
            s.visible = objects.clone();
            s.durable = objects;
            s.times = state.times.clone();
        }
        survivor
    }

    /// Every object and its bytes, as visible now.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.state.lock().visible.iter().map(|(k, v)| (k.clone(), v.to_vec())).collect()
    }

    /// Replaces an object's bytes in place (to model damage or an attacker
    /// who holds the repository); durable at once.
    pub fn tamper(&self, key: &str, bytes: Vec<u8>) {
        let mut s = self.state.lock();
        let bytes = Arc::new(bytes);
        s.visible.insert(key.to_string(), bytes.clone());
        s.durable.insert(key.to_string(), bytes);
        s.times.insert(key.to_string(), SystemTime::now());
    }

    /// Counts an operation and fails it when a fault is due.
    fn op(&self, what: &str, key: &str) -> Result<(), StoreError> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        if self.powered_off.load(Ordering::SeqCst) {
            return Err(StoreError::Injected(format!("power is off: {what} {key}")));
        }
        let due = *self.fault.lock();
        match due {
            Some((at, Fault::PowerCut)) if n >= at => {
                self.powered_off.store(true, Ordering::SeqCst);
                Err(StoreError::Injected(format!("power cut at operation {n}: {what} {key}")))
            }
            Some((at, Fault::Errno(errno))) if n == at => {
                Err(StoreError::io(format!("{what} {key}"), std::io::Error::from_raw_os_error(errno)))
            }
            _ => Ok(()),
        }
    }
}

fn apply(objects: &mut Objects, op: &Op) {
    match op {
        Op::Put(k, v) => {
            objects.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Op::Delete(k) => {
            objects.remove(k);
        }
    }
}

fn under(key: &str, dir: &str) -> bool {
    key.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

impl Backend for MemBackend {
    fn location(&self) -> String {
        "memory".into()
    }

    fn create(&self) -> Result<(), StoreError> {
        self.op("create", "")?;
        if !self.state.lock().visible.is_empty() {
            return Err(StoreError::AlreadyExists(self.location()));
        }
        Ok(())
    }

    fn list(&self, dir: &str) -> Result<Vec<Listed>, StoreError> {
        self.op("list", dir)?;
        let s = self.state.lock();
        let modified = |k: &String| s.times.get(k).copied().unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(s.visible
            .iter()
            .filter(|(k, _)| under(k, dir))
            .map(|(k, v)| Listed { key: k.clone(), size: v.len() as u64, modified: modified(k) })
            .collect())
    }

    fn read(&self, key: &str, max_len: u64) -> Result<Vec<u8>, StoreError> {
        self.op("read", key)?;
        let s = self.state.lock();
        let v = s.visible.get(key).ok_or_else(|| StoreError::Missing { what: key.to_string() })?;
        if v.len() as u64 > max_len {
            let detail = format!("{} bytes, more than such an object can hold ({max_len})", v.len());
            return Err(StoreError::format(key, crate::format::FormatError::Invalid { what: "object", detail }));
        }
        Ok(v.to_vec())
    }

    fn read_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>, StoreError> {
        self.op("read", key)?;
        let s = self.state.lock();
        let v = s.visible.get(key).ok_or_else(|| StoreError::Missing { what: key.to_string() })?;
        let range = usize::try_from(offset).ok().and_then(|o| Some(o..o.checked_add(len)?));
        match range.and_then(|r| v.get(r)) {
            Some(bytes) => Ok(bytes.to_vec()),
            None => {
                let detail = format!("range {offset}+{len} lies beyond its end ({} bytes)", v.len());
                Err(StoreError::format(key, crate::format::FormatError::Invalid { what: "object", detail }))
            }
        }
    }

    fn write_if_absent(&self, key: &str, data: &[u8]) -> Result<bool, StoreError> {
        self.op("write", key)?;
        let mut s = self.state.lock();
        if s.visible.contains_key(key) {
            return Ok(false);
        }
        let bytes = Arc::new(data.to_vec());
        s.visible.insert(key.to_string(), bytes.clone());
        s.times.insert(key.to_string(), SystemTime::now());
        s.pending.push(Op::Put(key.to_string(), bytes));
        Ok(true)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.op("delete", key)?;
        let mut s = self.state.lock();
        if s.visible.remove(key).is_some() {
            s.pending.push(Op::Delete(key.to_string()));
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.op("sync", "")?;
        let mut s = self.state.lock();
        let pending = std::mem::take(&mut s.pending);
        for op in &pending {
            apply(&mut s.durable, op);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_writes_and_deletes_may_or_may_not_survive() {
        let b = MemBackend::new();
        b.write_if_absent("a/1", b"one").unwrap();
        b.sync().unwrap();
        b.write_if_absent("a/2", b"two").unwrap();
        b.delete("a/1").unwrap();
        assert_eq!(b.pending(), 2);
        let keys = |b: &MemBackend| b.list("a").unwrap().into_iter().map(|l| (l.key, l.size)).collect::<Vec<_>>();
        let none = b.after_power_loss(|_| false);
        assert_eq!(keys(&none), vec![("a/1".into(), 3)]);
        let all = b.after_power_loss(|_| true);
        assert_eq!(keys(&all), vec![("a/2".into(), 3)]);
        b.sync().unwrap();
        assert_eq!(keys(&b.after_power_loss(|_| false)), vec![("a/2".into(), 3)]);
    }

    #[test]
    fn faults_fire_once_and_power_cuts_stay_off() {
        let b = MemBackend::new();
        b.inject(1, Fault::Errno(libc::ENOSPC));
        b.write_if_absent("k/1", b"x").unwrap();
        let e = b.write_if_absent("k/2", b"x").unwrap_err();
        assert!(e.to_string().contains("No space left on device"), "{e}");
        b.write_if_absent("k/3", b"x").unwrap();
        b.inject(0, Fault::PowerCut);
        assert!(b.read("k/1", 10).is_err());
        assert!(b.read("k/1", 10).is_err());
        assert!(b.fault_fired());
    }
}
