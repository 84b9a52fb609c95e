//! Writing a file's content: runs of consecutive chunks with one
//! `pwritev` each (most files are a few chunks: one call instead of one per
//! chunk), holes left as holes. Every chunk must have exactly the length
//! its tree gives it.

use super::create::ItemError;
use crate::format::tree::Extent;
use crate::store::reader::BlobBytes;
use crate::store::BlobReader;
use std::fs::File;
use std::io::IoSlice;
use std::os::fd::AsRawFd;

/// Chunks written with one system call at most, and the bytes they may
/// hold (each chunk pins its whole decompressed block).
const MAX_RUN: usize = 64;
const MAX_RUN_BYTES: usize = 16 << 20;

/// Writes the extents; the file ends up exactly `size` bytes long.
pub fn write_content(reader: &BlobReader, file: &File, content: &[Extent], size: u64) -> Result<(), ItemError> {
    let mut pos = 0u64;
    let mut run: Vec<BlobBytes> = Vec::with_capacity(content.len().min(MAX_RUN));
    let mut run_start = 0;
    let mut run_bytes = 0;
    for extent in content {
        match extent {
            Extent::Data { id, len } => {
                if run.is_empty() {
                    run_start = pos;
                    run_bytes = 0;
                }
                run.push(reader.read_chunk(*id, *len)?);
                run_bytes += *len as usize;
                if run.len() == MAX_RUN || run_bytes >= MAX_RUN_BYTES {
                    write_run(file, run_start, &mut run)?;
                }
            }
            Extent::Hole { .. } => write_run(file, run_start, &mut run)?,
        }
        pos += extent.len();
    }
    write_run(file, run_start, &mut run)?;
    if matches!(content.last(), Some(Extent::Hole { .. })) || pos != size {
        // Trailing holes: extend without writing, so they stay holes.
        file.set_len(size)?;
    }
    Ok(())
}

fn write_run(file: &File, mut at: u64, run: &mut Vec<BlobBytes>) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice> = run.iter().map(|b| IoSlice::new(b)).filter(|s| !s.is_empty()).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let count = rest.len().min(1024) as libc::c_int;
        // SAFETY: IoSlice is ABI-compatible with iovec; the slices borrow
        // blocks that `run` keeps alive for the call.
        let n = unsafe { libc::pwritev(file.as_raw_fd(), rest.as_ptr().cast(), count, at as libc::off_t) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        at += n as u64;
        IoSlice::advance_slices(&mut rest, n as usize);
    }
    drop(slices);
    run.clear();
    Ok(())
}
