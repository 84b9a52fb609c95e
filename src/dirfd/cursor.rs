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
    /// The path from where the cursor started to where it is, kept as it
    /// moves, so that naming the current directory costs nothing however
    /// deep it is; None once the cursor has climbed above its start.
    path: Option<Vec<u8>>,
    /// Where each component of `path` starts.
    marks: Vec<usize>,
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
        Cursor { dir, at, path: Some(Vec::new()), marks: Vec::new() }
    }

    /// The path of the current directory relative to where the cursor
    /// started ("" there), unless it has climbed above its start.
    pub fn relative_path(&self) -> Option<&[u8]> {
        self.path.as_deref()
    }

    fn went_up(&mut self) {
        match (self.marks.pop(), &mut self.path) {
            (Some(m), Some(p)) => p.truncate(m),
            _ => self.path = None,
        }
    }

    fn went_down(&mut self, name: &[u8]) {
        if let Some(p) = &mut self.path {
            self.marks.push(p.len());
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(name);
        }
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
            self.went_up();
        }
        for &down in downs.iter().rev() {
            self.dir = verified(self.dir.child(tree.name(down))?, tree.id(down))?;
            self.at = down;
            self.went_down(tree.name(down));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (parent, name, depth, identity) of each directory.
    struct Tree(Vec<(Option<u32>, &'static [u8], u32, FileId)>);

    impl DirTree for Tree {
        fn parent(&self, dir: u32) -> Option<u32> {
            self.0[dir as usize].0
        }
        fn name(&self, dir: u32) -> &[u8] {
            self.0[dir as usize].1
        }
        fn depth(&self, dir: u32) -> u32 {
            self.0[dir as usize].2
        }
        fn id(&self, dir: u32) -> Option<FileId> {
            Some(self.0[dir as usize].3)
        }
    }

    #[test]
    fn the_path_follows_the_cursor_and_is_forgotten_above_the_start() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Dir::open_path(tmp.path()).unwrap();
        for p in ["a", "a/b", "a/b/c", "x"] {
            std::fs::create_dir(tmp.path().join(p)).unwrap();
        }
        let id = |p: &str| Dir::open_path(&tmp.path().join(p)).unwrap().stat().unwrap().id();
        let tree = Tree(vec![
            (None, b"", 0, root.stat().unwrap().id()),
            (Some(0), b"a", 1, id("a")),
            (Some(1), b"b", 2, id("a/b")),
            (Some(2), b"c", 3, id("a/b/c")),
            (Some(0), b"x", 1, id("x")),
        ]);
        let mut c = Cursor::new(root.try_clone().unwrap(), 0);
        assert_eq!(c.relative_path(), Some(&b""[..]));
        c.move_to(&tree, 3).unwrap();
        assert_eq!(c.relative_path(), Some(&b"a/b/c"[..]));
        c.move_to(&tree, 4).unwrap();
        assert_eq!(c.relative_path(), Some(&b"x"[..]));
        c.move_to(&tree, 1).unwrap();
        assert_eq!(c.relative_path(), Some(&b"a"[..]));
        let mut from_b = Cursor::new(Dir::open_path(&tmp.path().join("a/b")).unwrap(), 2);
        from_b.move_to(&tree, 3).unwrap();
        assert_eq!(from_b.relative_path(), Some(&b"c"[..]));
        from_b.move_to(&tree, 4).unwrap();
        assert_eq!(from_b.relative_path(), None);
    }
}
