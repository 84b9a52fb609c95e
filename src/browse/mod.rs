//! Looking into a snapshot without mounting it: walking a directory's
//! entries, streaming a file's content, and a directory as a tar stream.

pub mod history;

use crate::format::tree::{Entry, Extent, Node};
use crate::store::{BlobReader, StoreError};
use crate::walk::join;
use std::io::{self, Read, Write};

/// Calls `visit` with every entry under directory `dir` (at `path`), in
/// name order, depth first when `recursive`.
pub fn walk(
    reader: &BlobReader,
    path: &[u8],
    dir: &Entry,
    recursive: bool,
    visit: &mut dyn FnMut(&[u8], &Entry) -> io::Result<()>,
) -> Result<(), BrowseError> {
    let Node::Dir { tree } = dir.node else { return Ok(()) };
    // An explicit stack: a snapshot may be deeper than any thread's stack.
    let mut stack = vec![(path.to_vec(), tree, 0usize)];
    let mut trees = vec![reader.read_tree(tree)?];
    while let Some((dir_path, _, next)) = stack.last_mut() {
        let tree = trees.last().expect("one tree per stack level");
        let Some(entry) = tree.entries.get(*next) else {
            stack.pop();
            trees.pop();
            continue;
        };
        *next += 1;
        let entry_path = join(dir_path, &entry.name);
        visit(&entry_path, entry).map_err(BrowseError::Output)?;
        if let (true, Node::Dir { tree: sub }) = (recursive, &entry.node) {
            let sub = *sub;
            let child = reader.read_tree(sub)?;
            stack.push((entry_path, sub, 0));
            trees.push(child);
        }
    }
    Ok(())
}

/// A file's content as a reader: chunks fetched one at a time, holes as
/// zeros; a chunk that cannot be read is an error, never short content.
pub struct ContentReader<'a> {
    reader: &'a BlobReader,
    extents: std::slice::Iter<'a, Extent>,
    current: Option<crate::store::reader::BlobBytes>,
    at: usize,
    zeros_left: u64,
}

impl<'a> ContentReader<'a> {
    pub fn new(reader: &'a BlobReader, content: &'a [Extent]) -> Self {
        ContentReader { reader, extents: content.iter(), current: None, at: 0, zeros_left: 0 }
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.zeros_left > 0 {
                let n = (buf.len() as u64).min(self.zeros_left) as usize;
                buf[..n].fill(0);
                self.zeros_left -= n as u64;
                return Ok(n);
            }
            if let Some(chunk) = &self.current {
                if self.at < chunk.len() {
                    let n = buf.len().min(chunk.len() - self.at);
                    buf[..n].copy_from_slice(&chunk[self.at..self.at + n]);
                    self.at += n;
                    return Ok(n);
                }
            }
            match self.extents.next() {
                None => return Ok(0),
                Some(Extent::Hole { len }) => {
                    self.current = None;
                    self.zeros_left = *len;
                }
                Some(Extent::Data { id, len }) => {
                    let chunk = self.reader.read_chunk(*id, *len).map_err(io::Error::other)?;
                    self.current = Some(chunk);
                    self.at = 0;
                }
            }
        }
    }
}

/// Writes directory `dir` (named `name` in the archive) and everything
/// under it as a tar stream: files, directories, symlinks, hard links
/// (the second name of a group links to the first), FIFOs and devices,
/// with modes, owners and times.
pub fn write_tar(reader: &BlobReader, name: &[u8], dir: &Entry, out: &mut dyn Write) -> Result<(), BrowseError> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Complete);
    let mut first_names: std::collections::HashMap<u64, Vec<u8>> = std::collections::HashMap::new();
    append(&mut builder, reader, name, dir, &mut first_names)?;
    // Children of the snapshot's root are named as `tar c -C root .`
    // names them, without a "./" that would set them apart from their
    // directories (tar then restores a directory's mtime too early).
    let prefix: &[u8] = if name == b"." { b"" } else { name };
    walk(reader, prefix, dir, true, &mut |path, entry| {
        append(&mut builder, reader, path, entry, &mut first_names).map_err(|e| match e {
            BrowseError::Output(e) => e,
            other => io::Error::other(other),
        })
    })?;
    builder.finish().map_err(BrowseError::Output)?;
    Ok(())
}

fn append(
    builder: &mut tar::Builder<&mut dyn Write>,
    reader: &BlobReader,
    path: &[u8],
    e: &Entry,
    first_names: &mut std::collections::HashMap<u64, Vec<u8>>,
) -> Result<(), BrowseError> {
    use std::os::unix::ffi::OsStrExt;
    let name = std::path::Path::new(std::ffi::OsStr::from_bytes(path.strip_prefix(b"/").unwrap_or(path)));
    let mut header = tar::Header::new_gnu();
    header.set_mode(e.mode);
    header.set_uid(u64::from(e.uid));
    header.set_gid(u64::from(e.gid));
    header.set_mtime(e.mtime.secs.max(0) as u64);
    header.set_size(0);
    let out = |r: io::Result<()>| r.map_err(BrowseError::Output);
    if let (Some(link), Node::File { .. }) = (&e.hard_link, &e.node) {
        if let Some(first) = first_names.get(&link.group) {
            header.set_entry_type(tar::EntryType::Link);
            let target = std::path::Path::new(std::ffi::OsStr::from_bytes(first));
            return out(builder.append_link(&mut header, name, target));
        }
        first_names.insert(link.group, path.strip_prefix(b"/").unwrap_or(path).to_vec());
    }
    match &e.node {
        Node::File { content } => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(e.size);
            let content = ContentReader::new(reader, content);
            out(builder.append_data(&mut header, name, content.take(e.size)))
        }
        Node::Dir { .. } => {
            header.set_entry_type(tar::EntryType::Directory);
            out(builder.append_data(&mut header, name, io::empty()))
        }
        Node::Symlink { target } => {
            header.set_entry_type(tar::EntryType::Symlink);
            let target = std::path::Path::new(std::ffi::OsStr::from_bytes(target));
            out(builder.append_link(&mut header, name, target))
        }
        Node::Fifo => {
            header.set_entry_type(tar::EntryType::Fifo);
            out(builder.append_data(&mut header, name, io::empty()))
        }
        Node::CharDevice { rdev } | Node::BlockDevice { rdev } => {
            let kind =
                if matches!(e.node, Node::CharDevice { .. }) { tar::EntryType::Char } else { tar::EntryType::Block };
            header.set_entry_type(kind);
            let (major, minor) = (libc::major(*rdev), libc::minor(*rdev));
            out(header.set_device_major(major).and_then(|()| header.set_device_minor(minor)))?;
            out(builder.append_data(&mut header, name, io::empty()))
        }
        // tar has no sockets (GNU and bsdtar leave them out too).
        Node::Socket => Ok(()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output failed (a closed pipe, a full disk), or reading a
    /// file's content did (the message says which).
    #[error("{0}")]
    Output(io::Error),
}
