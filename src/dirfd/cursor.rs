//! A position in a tree of directories that moves one verified step at a
//! time: up through `..`, down through a name, each directory reached
//! checked against the identity recorded for it. Whatever anyone does to
//! the tree meanwhile, the cursor is either in the directory it was sent
//! to or stops with an error; it never ends up somewhere else, and it
//! holds one descriptor however deep the tree is.

use super::{Dir, FileId};
use std::io;

/// The directories a cursor moves through, numbered; each has a parent
/// (but the root), a name in it, a depth and, once known, an identity.
pub trait DirTree {
    fn parent(&self, dir: u32) -> Option<u32>;
    fn name(&self, dir: u32) -> &[u8];
    fn depth(&self, dir: u32) -> u32;
    /// None when the directory does not exist (it could not be created).
    fn id(&self, dir: u32) -> Option<FileId>;
}

pub struct Cursor {
    dir: Dir,
    at: u32,
}

pub fn replaced() -> io::Error {
    io::Error::other("a directory on the way was replaced by another one meanwhile")
}

fn verified(dir: Dir, want: Option<FileId>) -> io::Result<Dir> {
    match want {
        Some(id) if dir.stat()?.id() == id => Ok(dir),
        Some(_) => Err(replaced()),
        None => Err(io::Error::other("a directory on the way could not be created")),
    }
}

impl Cursor {
    /// A cursor in `dir`, which is directory `at` of the tree.
    pub fn new(dir: Dir, at: u32) -> Cursor {
        Cursor { dir, at }
    }

    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    pub fn at(&self) -> u32 {
        self.at
    }

    /// Moves to directory `target`. On an error the cursor stays in the
    /// last directory it verified.
    pub fn move_to(&mut self, tree: &dyn DirTree, target: u32) -> io::Result<()> {
        if target == self.at {
            return Ok(());
        }
        let (mut a, mut b) = (self.at, target);
        let mut ups = 0;
        let mut downs = Vec::new();
        let parent = |d: u32| tree.parent(d).ok_or_else(|| io::Error::other("the cursor left its tree"));
        while tree.depth(a) > tree.depth(b) {
            a = parent(a)?;
            ups += 1;
        }
        while tree.depth(b) > tree.depth(a) {
            downs.push(b);
            b = parent(b)?;
        }
        while a != b {
            a = parent(a)?;
            ups += 1;
            downs.push(b);
            b = parent(b)?;
        }
        for _ in 0..ups {
            let up = parent(self.at)?;
            self.dir = verified(self.dir.parent()?, tree.id(up))?;
            self.at = up;
        }
        for &down in downs.iter().rev() {
            self.dir = verified(self.dir.child(tree.name(down))?, tree.id(down))?;
            self.at = down;
        }
        Ok(())
    }
}
