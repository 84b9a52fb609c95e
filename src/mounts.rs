//! The mount table (/proc/self/mountinfo), read without touching any
//! mount: a FUSE mount whose process ended would hang or fail a stat.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One mount: its device, where it is, its filesystem type and source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub dev: u64,
    pub at: PathBuf,
    pub fstype: String,
    pub source: String,
}

impl Mount {
    /// True for a filesystem `chkfs mount` serves: FUSE, with the source
    /// `chkfs:REPOSITORY` (the type is `fuse.chkfs` only when mounted
    /// through fusermount3).
    pub fn is_chkfs(&self) -> bool {
        self.fstype == "fuse.chkfs" || (self.fstype == "fuse" && self.source.starts_with("chkfs:"))
    }
}

/// Every mount, in the table's order (a later one at the same place is on
/// top); empty when the table cannot be read.
pub fn table() -> Vec<Mount> {
    std::fs::read_to_string("/proc/self/mountinfo").map(|t| parse(&t)).unwrap_or_default()
}

/// The mounts of a mountinfo text; malformed lines are skipped.
pub fn parse(table: &str) -> Vec<Mount> {
    table.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let fields: Vec<&str> = line.split(' ').collect();
    let (major, minor) = fields.get(2)?.split_once(':')?;
    let dev = libc::makedev(major.parse().ok()?, minor.parse().ok()?);
    let at = PathBuf::from(OsString::from_vec(unescape(fields.get(4)?)));
    let dash = fields.iter().position(|f| *f == "-")?;
    let fstype = fields.get(dash + 1)?.to_string();
    let source = fields.get(dash + 2).map_or(String::new(), |s| s.to_string());
    Some(Mount { dev, at, fstype, source })
}

/// Paths in the table have space, tab, newline and backslash as a
/// backslash and three octal digits.
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_and_types_come_out_of_the_table() {
        let table = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n\
                     40 36 0:52 / /tmp/m rw,nosuid - fuse.chkfs chkfs:/r ro\n\
                     41 36 0:53 / /tmp/n ro - fuse chkfs:/tmp/r ro,user_id=0\n\
                     42 36 0:54 / /tmp/o ro - fuse sshfs#host: ro\n\
                     garbage line\n";
        let mounts = parse(table);
        assert_eq!(mounts.len(), 4);
        assert!(mounts[2].is_chkfs() && !mounts[3].is_chkfs(), "{mounts:?}");
        assert_eq!(mounts[0].at, PathBuf::from("/mnt/with space"));
        assert_eq!((mounts[0].fstype.as_str(), mounts[0].dev), ("ext3", libc::makedev(98, 0)));
        assert!(mounts[1].is_chkfs() && !mounts[0].is_chkfs());
        assert_eq!(mounts[1].at, PathBuf::from("/tmp/m"));
    }

    #[test]
    fn escapes_are_undone_and_malformed_ones_kept() {
        assert_eq!(unescape(r"/mnt/a\040b\134c"), b"/mnt/a b\\c");
        assert_eq!(unescape(r"/plain\09"), b"/plain\\09");
    }
}
