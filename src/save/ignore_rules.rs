//! Which paths a save leaves out: `.chkfsignore` files (gitignore syntax,
//! each applying to its directory and below, deeper files overriding) and
//! `--exclude` patterns, which act like a `.chkfsignore` at the source root.
//!
//! An ignore file belongs to whoever can write its directory, and root's
//! backup reads it: it is read only when it is a regular file of at most
//! [`MAX_IGNORE_FILE`] bytes, opened without following a symlink or
//! blocking on a FIFO. A file or line that cannot be used is a warning
//! naming it, and the save goes on without it.
//!
//! Rules form a chain from a directory up to the root, shared between the
//! threads that walk sibling directories.

use crate::dirfd::{self, Dir};
use crate::text::{escape_path, escape_str};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub const IGNORE_FILE: &str = ".chkfsignore";
pub const MAX_IGNORE_FILE: u64 = 1 << 20;
/// All ignore files of one save together: one file hard-linked into
/// every level of a deep tree must not cost memory and time per level.
pub const MAX_IGNORE_TOTAL: u64 = 8 << 20;

pub struct IgnoreRules {
    matcher: Gitignore,
    parent: Option<Arc<IgnoreRules>>,
    /// Bytes of ignore files this save may still read.
    budget: Arc<AtomicU64>,
}

impl IgnoreRules {
    /// The rules at the root: the `--exclude` patterns.
    pub fn root(root: &Path, excludes: &[String]) -> Result<Arc<Self>, String> {
        let mut b = GitignoreBuilder::new(root);
        for pattern in excludes {
            b.add_line(None, pattern).map_err(|e| {
                format!("bad --exclude pattern \"{}\": {}", escape_str(pattern), escape_str(&e.to_string()))
            })?;
        }
        let matcher = b.build().map_err(|e| e.to_string())?;
        Ok(Arc::new(Self { matcher, parent: None, budget: Arc::new(AtomicU64::new(MAX_IGNORE_TOTAL)) }))
    }

    /// The rules inside `dir` (at `path`), which has an ignore file. What
    /// cannot be used of it is reported to `warn`.
    pub fn enter(self: &Arc<Self>, dir: &Dir, path: &Path, warn: &mut dyn FnMut(String)) -> Arc<Self> {
        let file = path.join(IGNORE_FILE);
        let shown = escape_path(&file);
        let text = match read_ignore_file(dir) {
            Ok(t) => t,
            Err(why) => {
                warn(format!("{shown}: not used: {why}"));
                return self.clone();
            }
        };
        let len = text.len() as u64;
        let spent = self.budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(len));
        if spent.is_err() {
            warn(format!("{shown}: not used: the ignore files of this save together exceed {MAX_IGNORE_TOTAL} bytes"));
            return self.clone();
        }
        let mut b = GitignoreBuilder::new(path);
        for (n, raw) in text.split(|&b| b == b'\n').enumerate() {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            match std::str::from_utf8(raw) {
                Ok(line) => {
                    if let Err(e) = b.add_line(Some(file.clone()), line) {
                        // The error quotes the pattern: it is the user's text.
                        warn(format!("{shown}: line {}: pattern not used: {}", n + 1, escape_str(&e.to_string())));
                    }
                }
                Err(_) => warn(format!("{shown}: line {}: pattern not used: it is not UTF-8", n + 1)),
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

/// The ignore file's bytes, if it is a regular file of bounded size.
fn read_ignore_file(dir: &Dir) -> Result<Vec<u8>, String> {
    let file = dir.open_read(IGNORE_FILE.as_bytes()).map_err(|e| e.to_string())?;
    let st = dirfd::fstat(&file).map_err(|e| e.to_string())?;
    if st.file_type() != libc::S_IFREG {
        return Err("it is not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_IGNORE_FILE + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_IGNORE_FILE {
        return Err(format!("it is larger than {} bytes", MAX_IGNORE_FILE));
    }
    Ok(bytes)
}
