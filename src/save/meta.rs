//! What a save records of a file besides its content: lstat fields and
//! extended attributes, turned into a tree entry.

pub use crate::dirfd::Stat;
use crate::format::records::Timestamp;
use crate::format::tree::{Entry, Node, Xattr};
use std::fs::File;
use std::io;
use std::path::Path;

/// Allocated space below the size means holes worth looking for.
pub fn may_be_sparse(st: &Stat) -> bool {
    st.blocks.saturating_mul(512) < st.size
}

/// The clock filesystems stamp changes with. Before Linux 6.13 a change is
/// stamped with this coarse clock (it moves every few milliseconds), so two
/// changes within one of its ticks leave the same ctime.
pub fn change_clock() -> Timestamp {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } != 0 {
        return Timestamp::now();
    }
    Timestamp { secs: ts.tv_sec, nanos: ts.tv_nsec as u32 }
}

/// Whether a change made after `clock` was read could leave `st`'s ctime
/// as it is, so that a later save would take stale content or xattrs for
/// unchanged ("racily clean", in git's words). That is so when the ctime is
/// not a whole granule of the filesystem's clock before `clock`: the same
/// tick of the change clock, or the same stretch of a filesystem that keeps
/// coarser times (exFAT 10 ms, FAT 2 s, ext4 with small inodes 1 s, a FUSE
/// filesystem's chosen granularity). The granule is read from the ctime's
/// trailing zeros. A ctime a little after `clock` (a clock set back a
/// little) counts too; one well ahead of it was stamped by a clock since
/// set back, any later change gets an earlier ctime, and the file is not
/// read again at every save.
pub fn may_change_unseen(st: &Stat, clock: Timestamp) -> bool {
    let nanos = st.ctime.nanos;
    // The largest power of ten the nanoseconds are a multiple of. A
    // nanosecond stamp ends in zeros by chance now and then: taken for a
    // coarser one, it costs one more read at most.
    let granule: i128 = if nanos == 0 {
        2_000_000_000
    } else {
        let mut g = 1u32;
        while g < 100_000_000 && nanos % (g * 10) == 0 {
            g *= 10;
        }
        i128::from(g)
    };
    let ns = |t: Timestamp| i128::from(t.secs) * 1_000_000_000 + i128::from(t.nanos);
    let (ctime, clock) = (ns(st.ctime), ns(clock));
    ctime + granule > clock && ctime < clock + granule + 2_000_000_000
}

/// The entry for a stat, with the given name and node.
pub fn to_entry(st: &Stat, name: Vec<u8>, node: Node, xattrs: Vec<Xattr>) -> Entry {
    Entry {
        name,
        node,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        size: st.size,
        blocks: st.blocks,
        mtime: st.mtime,
        ctime: st.ctime,
        inode: st.ino,
        hard_link: None,
        xattrs,
    }
}

/// Extended attributes of `path` itself (symlinks are not followed),
/// sorted by name. A filesystem without xattr support has none.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<Xattr>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if is_unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    collect(names, |name| xattr::get(path, name))
}

/// Extended attributes of an open file or directory.
pub fn read_xattrs_fd(file: &File) -> io::Result<Vec<Xattr>> {
    use xattr::FileExt;
    let names = match file.list_xattr() {
        Ok(names) => names,
        Err(e) if is_unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    collect(names, |name| file.get_xattr(name))
}

fn collect(
    names: impl Iterator<Item = std::ffi::OsString>,
    get: impl Fn(&std::ffi::OsStr) -> io::Result<Option<Vec<u8>>>,
) -> io::Result<Vec<Xattr>> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for name in names {
        match get(&name) {
            Ok(Some(value)) => out.push(Xattr { name: name.as_bytes().to_vec(), value }),
            Ok(None) => {}
            Err(e) if is_unsupported(&e) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENODATA))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ctime(secs: i64, nanos: u32) -> Stat {
        let t = Timestamp { secs, nanos };
        Stat { mode: 0, uid: 0, gid: 0, size: 0, blocks: 0, mtime: t, ctime: t, ino: 1, dev: 1, nlink: 1, rdev: 0 }
    }

    #[test]
    fn a_ctime_in_the_tick_of_the_read_may_hide_a_change() {
        let clock = Timestamp { secs: 100, nanos: 500_000_123 };
        // Nanosecond times: only the read's own tick, or later.
        assert!(may_change_unseen(&with_ctime(100, 500_000_123), clock));
        assert!(may_change_unseen(&with_ctime(100, 500_000_124), clock));
        assert!(!may_change_unseen(&with_ctime(100, 500_000_122), clock));
        assert!(may_change_unseen(&with_ctime(101, 1), clock), "a clock set back a little");
        assert!(!may_change_unseen(&with_ctime(3700, 1), clock), "a clock set back an hour");
        assert!(!may_change_unseen(&with_ctime(105, 0), clock), "whole seconds, set back");
        // Whole seconds (FAT keeps two): a change later in the stretch
        // would be stamped the same.
        assert!(may_change_unseen(&with_ctime(100, 0), clock));
        assert!(may_change_unseen(&with_ctime(99, 0), clock), "FAT's two seconds");
        assert!(!may_change_unseen(&with_ctime(98, 0), clock));
        // exFAT's 10 ms, a millisecond, a microsecond, NTFS's 100 ns.
        let within_its_ms = Timestamp { secs: 100, nanos: 499_500_000 };
        assert!(may_change_unseen(&with_ctime(100, 499_000_000), within_its_ms));
        assert!(!may_change_unseen(&with_ctime(100, 499_000_000), clock));
        assert!(may_change_unseen(&with_ctime(100, 500_000_000), clock));
        assert!(!may_change_unseen(&with_ctime(100, 490_000_000), clock));
        assert!(!may_change_unseen(&with_ctime(100, 499_999_000), clock));
        assert!(may_change_unseen(&with_ctime(100, 500_000_100), clock));
        assert!(!may_change_unseen(&with_ctime(100, 499_999_900), clock));
    }

    #[test]
    fn the_change_clock_is_the_wall_clock() {
        let (coarse, fine) = (change_clock(), Timestamp::now());
        assert!(coarse <= fine, "{coarse:?} after {fine:?}");
        assert!(fine.secs - coarse.secs <= 1, "{coarse:?} far from {fine:?}");
    }
}
