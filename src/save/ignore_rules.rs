//! Which paths a save leaves out: `.chkfsignore` files (gitignore syntax,
//! each applying to its directory and below, deeper files overriding) and
//! `--exclude` patterns, which act like a `.chkfsignore` at the source root.
//!
//! Rules form a chain from a directory up to the root, shared between the
//! threads that walk sibling directories.

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::path::Path;
use std::sync::Arc;

pub const IGNORE_FILE: &str = ".chkfsignore";

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

    /// The rules inside `dir`, which has an ignore file.
    pub fn enter(self: &Arc<Self>, dir: &Path) -> Result<Arc<Self>, String> {
        let file = dir.join(IGNORE_FILE);
        let mut b = GitignoreBuilder::new(dir);
        if let Some(e) = b.add(&file) {
            return Err(format!("{}: {e}", file.display()));
        }
        let matcher = b.build().map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(Arc::new(Self { matcher, parent: Some(self.clone()) }))
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
