//! How an operation (save, restore, check, gc, copy) tells its caller what
//! it is doing, without printing anything itself: the command line
//! implements [`Progress`] with a bar, JSON status lines or nothing.
//!
//! Every counting method adds to a total the display keeps in atomics; it
//! is called from hot loops and must stay that cheap. Drawing happens on
//! the display's own schedule.

use std::path::Path;

/// What an operation is doing now; each phase counts items and bytes of
/// its own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// save: walking the source; items are entries found.
    Scan = 1,
    /// save: reading new and changed files; items are files.
    Save,
    /// restore: writing files; items are files and special files.
    Restore,
    /// check: walking every snapshot's trees; items are snapshots.
    CheckTrees,
    /// check --read-data: reading every pack; items are packs.
    ReadPacks,
    /// gc: finding what every kept snapshot uses; items are snapshots.
    GcMark,
    /// gc: copying the live part of packs mostly unused; items are packs.
    GcRewrite,
    /// gc: deleting the packs nothing uses; items are packs.
    GcDelete,
    /// copy: copying snapshots; items are snapshots, bytes are chunks read.
    Copy,
}

impl Phase {
    pub fn from_u8(n: u8) -> Option<Phase> {
        use Phase::*;
        [Scan, Save, Restore, CheckTrees, ReadPacks, GcMark, GcRewrite, GcDelete, Copy]
            .into_iter()
            .find(|p| *p as u8 == n)
    }

    /// Its name in JSON status lines.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Scan => "scan",
            Phase::Save => "save",
            Phase::Restore => "restore",
            Phase::CheckTrees => "check_trees",
            Phase::ReadPacks => "read_packs",
            Phase::GcMark => "gc_mark",
            Phase::GcRewrite => "gc_rewrite",
            Phase::GcDelete => "gc_delete",
            Phase::Copy => "copy",
        }
    }
}

/// Hooks for a progress display; every method has a silent default.
pub trait Progress: Sync {
    /// A phase begins: the items and bytes it will go through (0 when not
    /// known). Counts start again from zero.
    fn begin(&self, _phase: Phase, _items: u64, _bytes: u64) {}
    /// Items and bytes done since the last call.
    fn advance(&self, _items: u64, _bytes: u64) {}
    /// save's scan: files and directories found since the last call.
    fn found(&self, _files: u64, _dirs: u64) {}
    /// Bytes newly stored in the repository since the last call.
    fn added(&self, _bytes: u64) {}
    /// Whether the display shows paths at all (the current one, or items
    /// at `level`: 1 with -v, 2 with -vv); paths are made only if so.
    fn wants_paths(&self, _level: u8) -> bool {
        false
    }
    /// The item being worked on now, shown shortened (only if
    /// `wants_paths(0)`).
    fn current(&self, _path: &Path) {}
    /// One item processed (only if `wants_paths(level)`): what happened to
    /// it ("new", "changed", "restored", "deleted"...) and its path,
    /// escaped for a terminal.
    fn item(&self, _level: u8, _what: &str, _path: &str) {}
    /// A warning or note for the person running the command (without the
    /// "chkfs: " prefix); the display makes room for it.
    fn message(&self, msg: &str) {
        eprintln!("chkfs: {msg}");
    }
    /// Everything is done: the display goes away.
    fn finished(&self) {}
}

/// No display; messages still go to standard error.
pub struct Silent;
impl Progress for Silent {}
