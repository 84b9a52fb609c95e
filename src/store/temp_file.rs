//! Writing an object's temporary file durably.
//!
//! Large objects (packs) bypass the page cache with O_DIRECT: a buffered
//! write of a pack costs more CPU in the kernel (allocating and copying
//! into fresh page-cache pages, then writing them back) than compressing
//! it, and a backup should not push the user's working set out of the
//! cache. The bytes go through a small aligned staging buffer, reused per
//! thread, since O_DIRECT needs aligned memory, offsets and lengths. A
//! file system without O_DIRECT (tmpfs) gets buffered writes.

use super::fault;
use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Objects smaller than this are written through the page cache.
const DIRECT_MIN: usize = 1 << 20;
/// Alignment O_DIRECT asks for on every Linux file system and device.
const ALIGN: usize = 4096;
const STAGING: usize = 4 << 20;

thread_local! {
    static STAGING_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Creates `tmp` with `data` and syncs it. Aborts halfway through under
/// the fault hook, as a crash would.
pub fn write_temp(tmp: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    if data.len() >= DIRECT_MIN {
        match create(tmp, libc::O_DIRECT, mode) {
            Ok(file) => {
                return STAGING_BUFFER.with_borrow_mut(|buf| DirectWriter::new(file, buf).write_all_synced(data));
            }
            // Linux creates the file before it finds O_DIRECT unsupported.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => std::fs::remove_file(tmp)?,
            Err(e) => return Err(e),
        }
    }
    let mut f = create(tmp, 0, mode)?;
    let half = data.len() / 2;
    f.write_all(&data[..half])?;
    fault::before_commit("write");
    f.write_all(&data[half..])?;
    f.sync_all()
}

/// Creates `path` with exactly `mode`: the umask may only have narrowed it.
fn create(path: &Path, flags: i32, mode: u32) -> io::Result<File> {
    use std::os::unix::fs::PermissionsExt;
    let file = OpenOptions::new().write(true).create_new(true).mode(mode).custom_flags(flags).open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(file)
}

struct DirectWriter<'a> {
    file: File,
    staging: &'a mut [u8],
    direct: bool,
    written: u64,
}

impl<'a> DirectWriter<'a> {
    fn new(file: File, buf: &'a mut Vec<u8>) -> Self {
        if buf.len() < STAGING + ALIGN {
            *buf = vec![0; STAGING + ALIGN];
        }
        let start = buf.as_ptr().align_offset(ALIGN);
        Self { file, staging: &mut buf[start..start + STAGING], direct: true, written: 0 }
    }

    fn write_all_synced(mut self, data: &[u8]) -> io::Result<()> {
        let half = data.len() / 2 / ALIGN * ALIGN;
        self.write_run(&data[..half])?;
        fault::before_commit("write");
        self.write_run(&data[half..])?;
        self.file.sync_all()
    }

    /// Writes `run` at the end of what is written so far, which is aligned
    /// unless a previous run had a tail.
    fn write_run(&mut self, run: &[u8]) -> io::Result<()> {
        let aligned = run.len() / ALIGN * ALIGN;
        for part in run[..aligned].chunks(STAGING) {
            self.write_aligned(part)?;
        }
        if aligned < run.len() {
            // A tail shorter than a block goes through the page cache.
            self.buffered()?;
            self.file.write_all_at(&run[aligned..], self.written)?;
            self.written += (run.len() - aligned) as u64;
        }
        Ok(())
    }

    fn write_aligned(&mut self, part: &[u8]) -> io::Result<()> {
        if self.direct {
            self.staging[..part.len()].copy_from_slice(part);
            match self.file.write_all_at(&self.staging[..part.len()], self.written) {
                Ok(()) => {
                    self.written += part.len() as u64;
                    return Ok(());
                }
                // Some file systems accept O_DIRECT at open and refuse the
                // write: fall back to the page cache for the rest.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.buffered()?,
                Err(e) => return Err(e),
            }
        }
        self.file.write_all_at(part, self.written)?;
        self.written += part.len() as u64;
        Ok(())
    }

    fn buffered(&mut self) -> io::Result<()> {
        if !self.direct {
            return Ok(());
        }
        self.direct = false;
        let fd = self.file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this writer owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(len: usize) {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
        let p = dir.path().join("t");
        write_temp(&p, &data, 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), data, "length {len}");
    }

    #[test]
    fn every_length_around_the_alignment_and_staging_sizes_roundtrips() {
        for len in [0, 1, 4095, DIRECT_MIN - 1, DIRECT_MIN, DIRECT_MIN + 1, STAGING - 1, STAGING, STAGING + 4097] {
            roundtrip(len);
        }
        roundtrip(3 * STAGING + 12345);
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, b"x").unwrap();
        assert!(write_temp(&p, &vec![1; DIRECT_MIN], 0o600).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
    }
}
