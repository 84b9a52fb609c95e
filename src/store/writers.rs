//! Writer markers: how a running save, copy or gc makes itself known to
//! every gc, on any host, without a lock (FORMAT.md, "Many writers").
//!
//! A writer puts marker 0 before it reads anything, refreshes it by
//! writing marker n+1 (and removing marker n) every [`REFRESH`], and
//! removes its markers when it ends. A gc judges markers by the times the
//! storage gave them, never by a host's clock: a marker not refreshed
//! within its lease belongs to a dead (or suspended) writer and is
//! ignored, so a writer that dies blocks nothing for longer than its
//! lease. A suspended writer finds out on waking ([`WriterSession::ensure_alive`])
//! and stops before it writes anything that others rely on.

use super::backend::Backend;
use super::machine::{boot_id, pid_namespace, process_is_gone};
use super::repo::random_bytes;
use super::{keys, Repository, StoreError};
use crate::format::records::{decode_writer_marker, encode_writer_marker, Timestamp, WriterMarker};
use crate::format::ObjectKind;
use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// How often a running writer refreshes its marker.
pub const REFRESH: Duration = Duration::from_secs(60);

/// How long a save or copy may go without refreshing its marker (it may
/// be suspended, or its host asleep) before gcs treat it as dead: a day,
/// so that a laptop closed overnight finishes its save in the morning.
pub const SAVE_LEASE: Duration = Duration::from_secs(24 * 3600);

/// A gc's lease: short, since a gc that sees another live gc deletes
/// nothing, and a dead one should not hold the next back for long.
pub const GC_LEASE: Duration = Duration::from_secs(10 * 60);

/// Temporary files older than this belong to no running writer (those of
/// a writer on this machine that is gone are removed at once).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// The largest marker a reader accepts.
const MAX_MARKER: u64 = 64 << 10;

/// A writer as the markers in storage show it.
#[derive(Debug, Clone)]
pub struct WriterInfo {
    pub id: u128,
    /// Storage time of its first marker: it read nothing before.
    pub started: SystemTime,
    /// Storage time of its newest marker.
    pub refreshed: SystemTime,
    /// What it said of itself; None when no marker could be read.
    pub marker: Option<WriterMarker>,
}

impl WriterInfo {
    /// The lease it claimed; the longest there is when it cannot be read.
    pub fn lease(&self) -> Duration {
        self.marker.as_ref().map_or(SAVE_LEASE, |m| Duration::from_secs(m.lease_secs).min(SAVE_LEASE))
    }

    /// True while its lease runs at `now` (storage time).
    pub fn is_live(&self, now: SystemTime) -> bool {
        self.refreshed + self.lease() > now
    }

    /// True when the writer ran on this machine, in this pid namespace,
    /// since its last boot, and its process is gone: it died (kill -9, a
    /// crash) without removing its marker. A reused pid keeps it alive,
    /// which only delays a gc.
    pub fn is_dead_here(&self) -> bool {
        let Some(m) = &self.marker else { return false };
        let here = m.host == crate::save::hostname()
            && !m.boot_id.is_empty()
            && m.boot_id == boot_id()
            && m.pid_namespace != 0
            && m.pid_namespace == pid_namespace();
        here && process_is_gone(m.pid)
    }

    /// True for a writer that may still be at work at `now` (storage
    /// time): within its lease and not known dead.
    pub fn is_running(&self, now: SystemTime) -> bool {
        self.is_live(now) && !self.is_dead_here()
    }

    pub fn is_gc(&self) -> bool {
        self.marker.as_ref().is_some_and(|m| m.command == "gc")
    }

    /// "save on host (pid 12)", for messages.
    pub fn describe(&self) -> String {
        match &self.marker {
            Some(m) => format!("{} on {} (pid {})", m.command, m.host, m.pid),
            None => format!("writer {:032x}", self.id),
        }
    }
}

struct Beat {
    seq: u64,
    /// When the newest marker was written, on a clock that counts
    /// suspended time too.
    at: Duration,
    failure: Option<String>,
    /// Set for good once the lease may have run out: a refresh after a
    /// long silence (the process was suspended) does not make up for it,
    /// and neither does one after a gc removed the markers as a dead
    /// writer's.
    lapsed: Option<Duration>,
}

/// True when a silence this long may have outlasted `lease` as a gc sees
/// it: a quarter of the lease to spare, for the clocks of this host and of
/// the storage running at slightly different rates.
fn at_risk(silent: Duration, lease: Duration) -> bool {
    silent + lease / 4 > lease
}

/// A running writer's markers; dropping it removes them.
pub struct WriterSession {
    backend: Arc<dyn Backend>,
    id: u128,
    lease: Duration,
    beat: Arc<Mutex<Beat>>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Repository {
    /// Announces a writer: its first marker is in storage when this
    /// returns, before the caller reads anything.
    pub fn begin_writing(&self, command: &str, lease: Duration) -> Result<WriterSession, StoreError> {
        let backend = self.shared_backend();
        let id = u128::from_le_bytes(random_bytes::<16>()?);
        let marker = WriterMarker {
            command: command.to_string(),
            host: crate::save::hostname(),
            pid: std::process::id(),
            started: Timestamp::now(),
            lease_secs: lease.as_secs(),
            boot_id: boot_id(),
            pid_namespace: pid_namespace(),
        };
        let bytes = encode_writer_marker(&marker).map_err(|e| StoreError::format("writer marker", e))?;
        // Every refresh stores the same bytes under a new name, so a sealed
        // marker is bound to its kind only (what a forged or moved one
        // could do is delay a gc's deletions, which is safe).
        let bytes = self.seal_object(ObjectKind::WriterMarker, "", bytes)?;
        if !backend.write_if_absent(&keys::writer(id, 0), &bytes)? {
            let detail = "a writer marker of that random id exists already".into();
            return Err(StoreError::Inconsistent { what: keys::writer(id, 0), reason: detail });
        }
        let beat = Arc::new(Mutex::new(Beat { seq: 0, at: boot_clock(), failure: None, lapsed: None }));
        let (stop, stopped) = bounded::<()>(0);
        let thread = {
            let (backend, beat) = (backend.clone(), beat.clone());
            std::thread::Builder::new()
                .name("chkfs-marker".into())
                .spawn(move || loop {
                    match stopped.recv_timeout(REFRESH) {
                        Err(RecvTimeoutError::Timeout) => refresh(&*backend, id, &bytes, &beat, lease),
                        _ => return,
                    }
                })
                .map_err(|e| StoreError::io("marker thread", e))?
        };
        Ok(WriterSession { backend, id, lease, beat, stop: Some(stop), thread: Some(thread) })
    }

    /// Every writer with a marker in storage, and the storage's time now
    /// (the newest marker's time: callers hold a session, so theirs is
    /// at most [`REFRESH`] old).
    pub fn writers(&self) -> Result<(Vec<WriterInfo>, SystemTime), StoreError> {
        let mut by_id: BTreeMap<u128, Vec<(u64, SystemTime)>> = BTreeMap::new();
        for l in self.backend().list(keys::WRITERS)? {
            if let Some((id, seq)) = keys::parse_writer(&l.key) {
                by_id.entry(id).or_default().push((seq, l.modified));
            }
        }
        let mut now = SystemTime::UNIX_EPOCH;
        let mut out = Vec::new();
        for (id, mut markers) in by_id {
            markers.sort();
            let started = markers.iter().map(|m| m.1).min().unwrap_or(SystemTime::UNIX_EPOCH);
            let refreshed = markers.iter().map(|m| m.1).max().unwrap_or(SystemTime::UNIX_EPOCH);
            now = now.max(refreshed);
            let mut marker = None;
            for (seq, _) in &markers {
                marker = self.read_marker(id, *seq)?;
                if marker.is_some() {
                    break;
                }
            }
            out.push(WriterInfo { id, started, refreshed, marker });
        }
        Ok((out, now))
    }

    /// A marker; None when it is gone (the writer ended or refreshed) or
    /// does not decode. A failure to read it is an error: a gc must not
    /// take a running gc for something else because a request failed.
    fn read_marker(&self, id: u128, seq: u64) -> Result<Option<WriterMarker>, StoreError> {
        match self.backend().read(&keys::writer(id, seq), MAX_MARKER) {
            Ok(bytes) => Ok(self
                .open_object("writer marker", ObjectKind::WriterMarker, "", bytes)
                .ok()
                .and_then(|bytes| decode_writer_marker(&bytes).ok())),
            Err(e) if e.is_missing() || e.is_damage() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the markers of a writer whose lease ran out.
    pub fn remove_dead_writer(&self, w: &WriterInfo) -> Result<(), StoreError> {
        for l in self.backend().list(keys::WRITERS)? {
            if keys::parse_writer(&l.key).is_some_and(|(id, _)| id == w.id) {
                self.backend().delete(&l.key)?;
            }
        }
        Ok(())
    }
}

/// Writes the next marker, then removes the one before (marker 0 stays:
/// it tells when the writer started). A silence that put the lease at
/// risk, or a marker 0 that is gone (a gc took the writer for dead),
/// marks the session lapsed for good.
fn refresh(backend: &dyn Backend, id: u128, bytes: &[u8], beat: &Mutex<Beat>, lease: Duration) {
    let (seq, silent) = {
        let mut b = beat.lock();
        let silent = boot_clock().saturating_sub(b.at);
        if at_risk(silent, lease) {
            b.lapsed.get_or_insert(silent);
        }
        (b.seq + 1, silent)
    };
    match backend.read_range(&keys::writer(id, 0), 0, 1) {
        Err(e) if e.is_missing() => {
            beat.lock().lapsed.get_or_insert(silent);
        }
        _ => {}
    }
    match backend.write_if_absent(&keys::writer(id, seq), bytes) {
        Ok(true) => {
            let mut b = beat.lock();
            let old = std::mem::replace(&mut b.seq, seq);
            b.at = boot_clock();
            b.failure = None;
            drop(b);
            if old > 0 {
                let _ = backend.delete(&keys::writer(id, old));
            }
        }
        // Retried at the next refresh; ensure_alive reports it once the
        // lease is at risk.
        Ok(false) => beat.lock().failure = Some(format!("marker {seq} exists already")),
        Err(e) => beat.lock().failure = Some(e.to_string()),
    }
}

impl WriterSession {
    pub fn id(&self) -> u128 {
        self.id
    }

    /// Fails when this writer's lease may have run out (it was suspended,
    /// or could not refresh its marker): a gc may then have deleted what
    /// it relies on, so it must not write anything that refers to it.
    pub fn ensure_alive(&self) -> Result<(), StoreError> {
        let mut b = self.beat.lock();
        let silent = boot_clock().saturating_sub(b.at);
        if at_risk(silent, self.lease) {
            b.lapsed.get_or_insert(silent);
        }
        match b.lapsed {
            Some(silent) => Err(StoreError::Lapsed {
                silent_secs: silent.as_secs(),
                lease_secs: self.lease.as_secs(),
                why: b.failure.clone(),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for WriterSession {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let seq = self.beat.lock().seq;
        // Marker 0 last: a writer is known by it. What is left behind (a
        // failing store) runs out with the lease.
        if seq > 0 {
            let _ = self.backend.delete(&keys::writer(self.id, seq));
        }
        let _ = self.backend.delete(&keys::writer(self.id, 0));
        let _ = self.backend.sync();
    }
}

/// Time since boot, suspended time included (CLOCK_BOOTTIME): a laptop
/// asleep for a day has been silent for a day.
fn boot_clock() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec given; BOOTTIME exists
    // on every Linux chkfs supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemBackend;

    fn repo() -> Repository {
        Repository::init(Arc::new(MemBackend::new()), crate::chunking::ChunkSizes::DEFAULT).unwrap()
    }

    #[test]
    fn a_session_is_listed_while_it_runs_and_gone_after() {
        let repo = repo();
        let session = repo.begin_writing("save", SAVE_LEASE).unwrap();
        let (writers, now) = repo.writers().unwrap();
        assert_eq!(writers.len(), 1);
        let w = &writers[0];
        assert_eq!(w.id, session.id());
        assert!(w.is_live(now) && !w.is_gc() && !w.is_dead_here());
        assert_eq!(w.lease(), SAVE_LEASE);
        session.ensure_alive().unwrap();
        drop(session);
        assert!(repo.writers().unwrap().0.is_empty());
    }

    #[test]
    fn a_lapse_is_latched_and_no_refresh_undoes_it() {
        let repo = repo();
        let session = repo.begin_writing("gc", GC_LEASE).unwrap();
        let bytes = repo.backend().read(&keys::writer(session.id(), 0), MAX_MARKER).unwrap();
        // Silent for most of the lease (suspended): the next refresh
        // writes a marker, and the session stays lapsed.
        session.beat.lock().at = boot_clock().saturating_sub(GC_LEASE);
        refresh(repo.backend(), session.id(), &bytes, &session.beat, GC_LEASE);
        assert!(matches!(session.ensure_alive(), Err(StoreError::Lapsed { .. })));
        refresh(repo.backend(), session.id(), &bytes, &session.beat, GC_LEASE);
        assert!(session.ensure_alive().is_err(), "a later refresh made a lapsed session alive again");
    }

    #[test]
    fn a_writer_whose_first_marker_was_removed_has_lapsed() {
        let repo = repo();
        let session = repo.begin_writing("save", SAVE_LEASE).unwrap();
        let bytes = repo.backend().read(&keys::writer(session.id(), 0), MAX_MARKER).unwrap();
        let (writers, _) = repo.writers().unwrap();
        repo.remove_dead_writer(&writers[0]).unwrap();
        session.ensure_alive().unwrap();
        refresh(repo.backend(), session.id(), &bytes, &session.beat, SAVE_LEASE);
        assert!(session.ensure_alive().is_err(), "a gc took it for dead; it must not write on");
    }

    #[test]
    fn an_unreadable_marker_claims_the_longest_lease() {
        let info = WriterInfo { id: 1, started: UNIX_EPOCH_TIME, refreshed: SystemTime::now(), marker: None };
        assert_eq!(info.lease(), SAVE_LEASE);
        assert!(info.is_live(SystemTime::now()) && !info.is_gc() && !info.is_dead_here());
    }

    const UNIX_EPOCH_TIME: SystemTime = SystemTime::UNIX_EPOCH;
}
