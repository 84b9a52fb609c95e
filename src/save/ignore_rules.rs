//! Which paths a save leaves out: `.chkfsignore` files (gitignore syntax,
//! each applying to its directory and below, deeper files overriding) and
//! `--exclude` patterns, which act like a `.chkfsignore` at the source root.

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::path::Path;

pub const IGNORE_FILE: &str = ".chkfsignore";

pub struct IgnoreRules {
    /// Innermost last.
    stack: Vec<(usize, Gitignore)>,
}

impl IgnoreRules {
    pub fn new(root: &Path, excludes: &[String]) -> Result<Self, String> {
        let mut b = GitignoreBuilder::new(root);
        for pattern in excludes {
            b.add_line(None, pattern).map_err(|e| format!("bad --exclude pattern {pattern:?}: {e}"))?;
        }
        let g = b.build().map_err(|e| e.to_string())?;
        Ok(Self { stack: vec![(0, g)] })
    }

    /// Drops the rules of directories deeper than `depth`.
    pub fn leave_below(&mut self, depth: usize) {
        self.stack.retain(|(d, _)| *d <= depth);
    }

    /// Enters a directory at `depth` (the root is 1), loading its ignore
    /// file if it has one.
    pub fn enter(&mut self, dir: &Path, depth: usize, has_ignore_file: bool) -> Result<(), String> {
        self.leave_below(depth - 1);
        if has_ignore_file {
            let mut b = GitignoreBuilder::new(dir);
            if let Some(e) = b.add(dir.join(IGNORE_FILE)) {
                return Err(format!("{}: {e}", dir.join(IGNORE_FILE).display()));
            }
            let g = b.build().map_err(|e| e.to_string())?;
            self.stack.push((depth, g));
        }
        Ok(())
    }

    pub fn is_ignored(&self, path: &Path, is_dir: bool) -> bool {
        for (_, g) in self.stack.iter().rev() {
            let m = g.matched(path, is_dir);
            if m.is_ignore() {
                return true;
            }
            if m.is_whitelist() {
                return false;
            }
        }
        false
    }
}
