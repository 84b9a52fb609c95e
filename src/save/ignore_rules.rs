//! Which paths a save leaves out: `.chkfsignore` files (gitignore syntax,
//! each applying to its directory and below, deeper files overriding),
//! with `--git-ignore` also `.gitignore` files and the `.git/info/exclude`
//! of the git work tree the source is in, and `--exclude` and
//! `--exclude-file` patterns, which act like a `.chkfsignore` at the
//! source root.
//!
//! An ignore file belongs to whoever can write its directory, and root's
//! backup reads it: it is read only through its directory's descriptor,
//! only when it is a regular file of at most [`MAX_IGNORE_FILE`] bytes,
//! opened without following a symlink or blocking on a FIFO. A file or
//! line that cannot be used is a warning naming it, and the save goes on
//! without it.
//!
//! Rules form a chain from a directory up to the root (and, with
//! `--git-ignore`, on up to the top of the git work tree), shared between
//! the threads that walk sibling directories. In a directory holding both,
//! `.chkfsignore` overrides `.gitignore`.

use crate::dirfd::{self, Dir};
use crate::text::{escape_path, escape_str};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub const IGNORE_FILE: &str = ".chkfsignore";
pub const GIT_IGNORE_FILE: &str = ".gitignore";
pub const MAX_IGNORE_FILE: u64 = 1 << 20;
/// All ignore files of one save together: one file hard-linked into
/// every level of a deep tree must not cost memory and time per level.
pub const MAX_IGNORE_TOTAL: u64 = 8 << 20;
/// An `--exclude-file` is the user's own: it may be a pipe, but not
/// endless.
pub const MAX_EXCLUDE_FILE: u64 = 64 << 20;
/// How far above the source the top of a git work tree is looked for.
const MAX_GIT_CLIMB: usize = 4096;

/// What a save leaves out besides its ignore files.
#[derive(Debug, Clone, Copy)]
pub struct RootRules<'a> {
    /// `--exclude` patterns.
    pub excludes: &'a [String],
    /// `--exclude-file` files, each holding patterns.
    pub exclude_files: &'a [PathBuf],
    /// `--git-ignore`.
    pub git_ignore: bool,
}

pub struct IgnoreRules {
    matcher: Gitignore,
    parent: Option<Arc<IgnoreRules>>,
    /// Bytes of ignore files this save may still read.
    budget: Arc<AtomicU64>,
}

impl IgnoreRules {
    /// The rules at the root, open as `root_dir` at `root`: with
    /// `--git-ignore` those of the git work tree above it, then the
    /// `--exclude-file` and `--exclude` patterns. A pattern or exclude
    /// file that cannot be used is an error (the user's own); what cannot
    /// be used of the work tree's files is reported to `warn`.
    pub fn root(
        root_dir: &Dir,
        root: &Path,
        opts: RootRules,
        warn: &mut dyn FnMut(String),
    ) -> Result<Arc<Self>, String> {
        let budget = Arc::new(AtomicU64::new(MAX_IGNORE_TOTAL));
        let empty = Arc::new(Self { matcher: Gitignore::empty(), parent: None, budget: budget.clone() });
        let below = if opts.git_ignore { git_rules_above(&empty, root_dir, root, warn) } else { empty };
        let mut b = GitignoreBuilder::new(root);
        for file in opts.exclude_files {
            let shown = escape_path(file);
            let text = read_exclude_file(file).map_err(|why| format!("--exclude-file {shown}: {why}"))?;
            for (n, line) in lines(&text) {
                let line = line.map_err(|_| format!("--exclude-file {shown}: line {n}: it is not UTF-8"))?;
                b.add_line(Some(file.clone()), line).map_err(|e| {
                    format!("--exclude-file {shown}: line {n}: bad pattern: {}", escape_str(&e.to_string()))
                })?;
            }
        }
        for pattern in opts.excludes {
            b.add_line(None, pattern).map_err(|e| {
                format!("bad --exclude pattern \"{}\": {}", escape_str(pattern), escape_str(&e.to_string()))
            })?;
        }
        let matcher = b.build().map_err(|e| escape_str(&e.to_string()))?;
        Ok(Arc::new(Self { matcher, parent: Some(below), budget }))
    }

    /// The rules inside `dir` (at `path`), which has the ignore file
    /// `name`. What cannot be used of it is reported to `warn`.
    pub fn enter(self: &Arc<Self>, dir: &Dir, path: &Path, name: &str, warn: &mut dyn FnMut(String)) -> Arc<Self> {
        let file = path.join(name);
        match read_ignore_file(dir, name.as_bytes()) {
            Ok(text) => self.with_file(text, path, &file, warn),
            Err(why) => {
                warn(format!("{}: not used: {why}", escape_path(&file)));
                self.clone()
            }
        }
    }

    /// These rules with those of `text`, the ignore file `file`, whose
    /// patterns are relative to `base`, on top.
    fn with_file(self: &Arc<Self>, text: Vec<u8>, base: &Path, file: &Path, warn: &mut dyn FnMut(String)) -> Arc<Self> {
        let shown = escape_path(file);
        let len = text.len() as u64;
        let spent = self.budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(len));
        if spent.is_err() {
            warn(format!("{shown}: not used: the ignore files of this save together exceed {MAX_IGNORE_TOTAL} bytes"));
            return self.clone();
        }
        let mut b = GitignoreBuilder::new(base);
        for (n, line) in lines(&text) {
            match line {
                Ok(line) => {
                    if let Err(e) = b.add_line(Some(file.to_path_buf()), line) {
                        // The error quotes the pattern: it is the user's text.
                        warn(format!("{shown}: line {n}: pattern not used: {}", escape_str(&e.to_string())));
                    }
                }
                Err(_) => warn(format!("{shown}: line {n}: pattern not used: it is not UTF-8")),
            }
        }
        match b.build() {
            Ok(matcher) => Arc::new(Self { matcher, parent: Some(self.clone()), budget: self.budget.clone() }),
            Err(e) => {
                warn(format!("{shown}: not used: {}", escape_str(&e.to_string())));
                self.clone()
            }
        }
    }

    pub fn is_ignored(&self, path: &Path, is_dir: bool) -> bool {
        let mut rules = Some(self);
        while let Some(r) = rules {
            let m = r.matcher.matched(path, is_dir);
            if m.is_ignore() {
                return true;
            }
            if m.is_whitelist() {
                return false;
            }
            rules = r.parent.as_deref();
        }
        false
    }
}

/// The numbered lines of an ignore file (from 1), without their line
/// ends, as text where they are UTF-8.
fn lines(text: &[u8]) -> impl Iterator<Item = (usize, Result<&str, std::str::Utf8Error>)> {
    text.split(|&b| b == b'\n').enumerate().map(|(n, raw)| {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        (n + 1, std::str::from_utf8(raw))
    })
}

/// The rules of the git work tree `root` is in, below `root` itself:
/// `.git/info/exclude`, then the `.gitignore` files of the directories
/// from the top of the work tree down to `root`'s parent (`root`'s own is
/// read by the walk). Directories are reached through `..` from `root`,
/// never by path, one descriptor open at a time; outside a work tree,
/// nothing.
fn git_rules_above(
    empty: &Arc<IgnoreRules>,
    root_dir: &Dir,
    root: &Path,
    warn: &mut dyn FnMut(String),
) -> Arc<IgnoreRules> {
    // How many levels up the top of the work tree is (0: `root` itself).
    let Some(top) = climb(root_dir, root, |dir, _| dir.stat_at(b".git").is_ok()) else { return empty.clone() };
    // The .gitignore files on the way, bottom up, within the save's total.
    let mut found: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut total = 0u64;
    let mut top_dir = None;
    climb(root_dir, root, |dir, (level, path)| {
        if level == top {
            top_dir = dir.try_clone().ok().map(|d| (d, path.to_path_buf()));
            return true;
        }
        if level > 0 {
            let file = path.join(GIT_IGNORE_FILE);
            match read_ignore_file(dir, GIT_IGNORE_FILE.as_bytes()) {
                Ok(text) if total + text.len() as u64 > MAX_IGNORE_TOTAL => warn(format!(
                    "{}: not used: the ignore files of this save together exceed {MAX_IGNORE_TOTAL} bytes",
                    escape_path(&file)
                )),
                Ok(text) => {
                    total += text.len() as u64;
                    found.push((path.to_path_buf(), text));
                }
                Err(why) if why == NOT_FOUND => {}
                Err(why) => warn(format!("{}: not used: {why}", escape_path(&file))),
            }
        }
        false
    });
    let Some((top_dir, top_path)) = top_dir else { return empty.clone() };
    let mut rules = empty.clone();
    // A `.git` file (a linked work tree, a submodule) names its git
    // directory by path: its info/exclude is not read.
    if let Ok(info) = top_dir.child(b".git").and_then(|g| g.child(b"info")) {
        let file = top_path.join(".git/info/exclude");
        match read_ignore_file(&info, b"exclude") {
            Ok(text) => rules = rules.with_file(text, &top_path, &file, warn),
            Err(why) if why == NOT_FOUND => {}
            Err(why) => warn(format!("{}: not used: {why}", escape_path(&file))),
        }
    }
    if top > 0 {
        let file = top_path.join(GIT_IGNORE_FILE);
        match read_ignore_file(&top_dir, GIT_IGNORE_FILE.as_bytes()) {
            Ok(text) => rules = rules.with_file(text, &top_path, &file, warn),
            Err(why) if why == NOT_FOUND => {}
            Err(why) => warn(format!("{}: not used: {why}", escape_path(&file))),
        }
    }
    for (path, text) in found.into_iter().rev() {
        let file = path.join(GIT_IGNORE_FILE);
        rules = rules.with_file(text, &path, &file, warn);
    }
    rules
}

/// Visits `root_dir` (at `root`) and the directories above it, each
/// reached through `..` from the one below, with its level (0 for `root`)
/// and path, until `visit` returns true: returns that level, or None at
/// "/" or after [`MAX_GIT_CLIMB`] levels.
fn climb(root_dir: &Dir, root: &Path, mut visit: impl FnMut(&Dir, (usize, &Path)) -> bool) -> Option<usize> {
    let mut dir = root_dir.try_clone().ok()?;
    let mut path = root.to_path_buf();
    for level in 0..MAX_GIT_CLIMB {
        if visit(&dir, (level, &path)) {
            return Some(level);
        }
        let up = path.parent()?.to_path_buf();
        let parent = dir.parent().ok()?;
        // At "/", ".." is the directory itself.
        if parent.stat().ok()?.id() == dir.stat().ok()?.id() {
            return None;
        }
        dir = parent;
        path = up;
    }
    None
}

const NOT_FOUND: &str = "it does not exist";

/// The bytes of ignore file `name` in `dir`, if it is a regular file of
/// bounded size.
fn read_ignore_file(dir: &Dir, name: &[u8]) -> Result<Vec<u8>, String> {
    let file = dir.open_read(name).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => NOT_FOUND.to_string(),
        _ => e.to_string(),
    })?;
    let st = dirfd::fstat(&file).map_err(|e| e.to_string())?;
    if st.file_type() != libc::S_IFREG {
        return Err("it is not a regular file".into());
    }
    if st.size > MAX_IGNORE_FILE {
        return Err(format!("it is larger than {MAX_IGNORE_FILE} bytes"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_IGNORE_FILE + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_IGNORE_FILE {
        return Err(format!("it is larger than {MAX_IGNORE_FILE} bytes"));
    }
    Ok(bytes)
}

/// The bytes of an `--exclude-file`, which the user named: followed as
/// given, and read to its end (it may be a pipe) up to a bound.
fn read_exclude_file(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_EXCLUDE_FILE + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_EXCLUDE_FILE {
        return Err(format!("it is larger than {MAX_EXCLUDE_FILE} bytes"));
    }
    Ok(bytes)
}
