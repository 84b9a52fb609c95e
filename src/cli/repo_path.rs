//! Which repository a command uses: a positional argument, then --repo,
//! then CHKFS_REPO, then the default under $XDG_DATA_HOME.

use super::exit::UsageError;
use crate::store::{Location, Repository, StoreError};
use anyhow::Result;
use std::path::{Path, PathBuf};

pub struct RepoArgs {
    /// From --repo or CHKFS_REPO, else the configuration file.
    pub repo: Option<PathBuf>,
    /// True when `repo` came from the --repo flag (not the environment).
    pub from_flag: bool,
    /// The configuration file's settings (empty without one).
    pub config: std::sync::Arc<super::config::ConfigFile>,
}

pub struct Chosen {
    pub path: PathBuf,
    pub is_default: bool,
}

impl Chosen {
    /// A local path or an `s3://` URL (another scheme is an error).
    pub fn location(&self) -> Result<Location> {
        Ok(Location::parse(self.path.as_os_str())?)
    }
}

pub fn default_repo() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let base = xdg.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(base.join("chkfs").join("repo"))
}

impl RepoArgs {
    pub fn choose(&self, positional: Option<&Path>) -> Result<Chosen> {
        if let (Some(pos), Some(flag), true) = (positional, &self.repo, self.from_flag) {
            if absolute(pos) != absolute(flag) {
                return Err(UsageError(format!(
                    "the repository is given twice, differently: {} and --repo {}",
                    pos.display(),
                    flag.display()
                ))
                .into());
            }
        }
        if let Some(p) = positional.or(self.repo.as_deref()) {
            return Ok(Chosen { path: p.to_path_buf(), is_default: false });
        }
        let path = default_repo()
            .ok_or_else(|| UsageError("no --repo given and neither XDG_DATA_HOME nor HOME is set".into()))?;
        Ok(Chosen { path, is_default: true })
    }

    /// Opens an existing repository.
    pub fn open(&self) -> Result<Repository> {
        let chosen = self.choose(None)?;
        Ok(Repository::open_at(&chosen.location()?, &super::password::REPO)?)
    }

    /// Opens an existing repository, bypassing the local cache of a remote
    /// one.
    pub fn open_uncached(&self) -> Result<Repository> {
        let chosen = self.choose(None)?;
        Ok(Repository::open_at_uncached(&chosen.location()?, &super::password::REPO)?)
    }

    /// Opens an existing repository to write into it, warning when other
    /// users can read it.
    pub fn open_for_writing(&self) -> Result<Repository> {
        let repo = self.open()?;
        warn_if_open_to_others(&repo);
        Ok(repo)
    }

    /// Opens the repository, creating it first only if it is the default
    /// one and does not exist yet.
    pub fn open_or_create_default(&self) -> Result<Repository> {
        let chosen = self.choose(None)?;
        match Repository::open_at(&chosen.location()?, &super::password::REPO) {
            Err(StoreError::NotARepository(_)) if chosen.is_default && !has_entries(&chosen.path) => {
                let repo = Repository::init_local(&chosen.path, crate::chunking::ChunkSizes::DEFAULT)?;
                eprintln!("chkfs: created repository at {}", repo.location());
                Ok(repo)
            }
            other => {
                let repo = other?;
                warn_if_open_to_others(&repo);
                Ok(repo)
            }
        }
    }
}

fn has_entries(p: &Path) -> bool {
    std::fs::read_dir(p).map(|mut d| d.next().is_some()).unwrap_or(false)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A repository holds every saved byte, whatever the files' own modes: a
/// repository other users can read lets them read everything.
fn warn_if_open_to_others(repo: &Repository) {
    if let Some(mode) = repo.local_root().and_then(crate::store::local::open_to_others) {
        eprintln!(
            "chkfs: warning: other users can read the repository {} (mode {mode:o}); `chmod -R go= {}` makes it private",
            repo.location(),
            repo.location()
        );
    }
}
