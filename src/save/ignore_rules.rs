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
use crate::text::escape_path;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

pub const IGNORE_FILE: &str = ".chkfsignore";
pub const MAX_IGNORE_FILE: u64 = 1 << 20;

pub struct IgnoreRules {
    matcher: Gitignore,
    parent: Option<Arc<IgnoreRules>>,
}

impl IgnoreRules {
    /// The rules at the root: the `--exclude` patterns.
    pub fn root(root: &Path, excludes: &[String]) -> Result<Arc<Self>, String> {
        let mut b = GitignoreBuilder::new(root);
        for pattern in excludes {
            b.add_line(None, pattern).map_err(|e| format!("bad --exclude pattern {pattern:?}: {e}"))?;
        }
        let matcher = b.build().map_err(|e| e.to_string())?;
        Ok(Arc::new(Self { matcher, parent: None }))
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
        let mut b = GitignoreBuilder::new(path);
        for (n, raw) in text.split(|&b| b == b'\n').enumerate() {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            match std::str::from_utf8(raw) {
                Ok(line) => {
                    if let Err(e) = b.add_line(Some(file.clone()), line) {
                        warn(format!("{shown}: line {}: pattern not used: {e}", n + 1));
                    }
                }
                Err(_) => warn(format!("{shown}: line {}: pattern not used: it is not UTF-8", n + 1)),
            }
        }
        match b.build() {
            Ok(matcher) => Arc::new(Self { matcher, parent: Some(self.clone()) }),
            Err(e) => {
                warn(format!("{shown}: not used: {e}"));
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
