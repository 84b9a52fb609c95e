//! One writer at a time, with flock(2): the kernel drops the lock when
//! the holder dies, so a killed writer never leaves a stale lock behind.

use super::StoreError;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// Held for as long as the writer runs; dropping it releases the lock.
#[derive(Debug)]
pub struct WriteLock {
    _file: File,
}

impl WriteLock {
    pub fn acquire(repo_root: &Path, wait: Duration) -> Result<WriteLock, StoreError> {
        let path = repo_root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        let deadline = Instant::now() + wait;
        loop {
            // SAFETY: flock on a file descriptor we own; no memory involved.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(WriteLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) && err.kind() != std::io::ErrorKind::Interrupted {
                return Err(StoreError::io(&path, err));
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Busy(repo_root.to_path_buf()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_waits_then_gives_up_and_succeeds_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let first = WriteLock::acquire(dir.path(), Duration::ZERO).unwrap();
        let start = Instant::now();
        let second = WriteLock::acquire(dir.path(), Duration::from_millis(200));
        assert!(matches!(second, Err(StoreError::Busy(_))));
        assert!(start.elapsed() >= Duration::from_millis(200));
        drop(first);
        WriteLock::acquire(dir.path(), Duration::ZERO).unwrap();
    }
}
