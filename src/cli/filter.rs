//! `--host` and `--path`: which snapshots a command considers, and which
//! one `latest` names.
//!
//! A repository may hold the snapshots of several sources (a host and a
//! directory saved there). `latest` is the newest snapshot of one source:
//! the one `--host`/`--path` keep; else the deepest source directory of
//! this host that holds the current directory; else, the newest of any
//! source, with a warning when there are several.

use super::args::FilterArgs;
use crate::format::records::Snapshot;
use crate::format::SnapshotId;
use crate::store::{Repository, SnapshotEntry};
use crate::text::{escape_bytes, escape_str};
use anyhow::{anyhow, Result};
use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    pub host: Option<String>,
    /// An absolute, plain path, compared with the source path `save`
    /// recorded (which is canonical).
    pub path: Option<Vec<u8>>,
    /// Tags a snapshot must all have.
    pub tags: Vec<String>,
}

/// Tags as given on the command line: checked, sorted, each once.
pub fn tags(given: &[String]) -> Result<Vec<String>> {
    let mut tags = Vec::with_capacity(given.len());
    for t in given {
        if let Some(why) = crate::format::records::invalid_tag(t) {
            return Err(super::exit::UsageError(format!("tag \"{}\": {why}", escape_str(t))).into());
        }
        tags.push(t.clone());
    }
    tags.sort();
    tags.dedup();
    if tags.len() > crate::format::records::MAX_TAGS {
        return Err(super::exit::UsageError("a snapshot has at most 1024 tags".into()).into());
    }
    Ok(tags)
}

impl SnapshotFilter {
    pub fn new(args: &FilterArgs) -> Result<SnapshotFilter> {
        let path = match &args.path {
            Some(p) => Some(absolute(p)?.as_os_str().as_bytes().to_vec()),
            None => None,
        };
        Ok(SnapshotFilter { host: args.host.clone(), path, tags: tags(&args.tags)? })
    }

    pub fn is_empty(&self) -> bool {
        self.host.is_none() && self.path.is_none() && self.tags.is_empty()
    }

    /// True when a snapshot of `host` saved from `path` with `tags` is kept.
    pub fn matches(&self, host: &str, path: &[u8], tags: &[String]) -> bool {
        self.host.as_deref().is_none_or(|h| h == host)
            && self.path.as_deref().is_none_or(|p| p == path)
            && self.tags.iter().all(|t| tags.contains(t))
    }

    pub fn keeps(&self, s: &SnapshotEntry) -> bool {
        self.matches(&s.snapshot.host, &s.snapshot.path, &s.snapshot.tags)
    }

    /// The options as given: `--host H --path P`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(h) = &self.host {
            parts.push(format!("--host {}", escape_str(h)));
        }
        if let Some(p) = &self.path {
            parts.push(format!("--path {}", escape_bytes(p)));
        }
        if !self.tags.is_empty() {
            parts.push(format!("--tag {}", escape_str(&self.tags.join(","))));
        }
        parts.join(" ")
    }

    /// An error unless the snapshot named by its id is one the options keep.
    fn admit(&self, id: SnapshotId, s: &Snapshot) -> Result<()> {
        if self.matches(&s.host, &s.path, &s.tags) {
            return Ok(());
        }
        Err(anyhow!(
            "snapshot {id} is of {}:{}, which {} leaves out",
            escape_str(&s.host),
            escape_bytes(&s.path),
            self.describe()
        ))
    }
}

/// `p` made absolute against the current directory: canonical when it
/// exists, else with `.`, `..` and trailing `/` taken away by the letter.
fn absolute(p: &Path) -> Result<PathBuf> {
    let joined = match p.is_absolute() {
        true => p.to_path_buf(),
        false => std::env::current_dir()?.join(p),
    };
    if let Ok(real) = std::fs::canonicalize(&joined) {
        return Ok(real);
    }
    let mut plain = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(name) => plain.push(name),
            Component::ParentDir => {
                plain.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(plain)
}

/// The snapshot a user named: an id prefix (which the options must keep),
/// or `latest` (see the module's comment).
pub fn resolve(repo: &Repository, spec: &str, filter: &SnapshotFilter) -> Result<SnapshotEntry> {
    if spec != "latest" {
        let snap = repo.resolve_snapshot(spec)?;
        filter.admit(snap.id, &snap.snapshot)?;
        return Ok(snap);
    }
    let all = repo.readable_snapshots(&mut |_, _| {})?;
    latest(all, filter)
}

/// The id of the snapshot a user named; an id prefix is found from the
/// record names alone (a damaged record can still be named) unless options
/// were given, which need its host and path.
pub fn resolve_id(repo: &Repository, spec: &str, filter: &SnapshotFilter) -> Result<SnapshotId> {
    if spec == "latest" {
        return resolve(repo, spec, filter).map(|s| s.id);
    }
    let id = repo.resolve_snapshot_id(spec)?;
    if !filter.is_empty() {
        let snap = repo.read_snapshot(id)?.ok_or_else(|| anyhow!("snapshot {id} was forgotten meanwhile"))?;
        filter.admit(id, &snap)?;
    }
    Ok(id)
}

/// `latest` among `all` (oldest first).
fn latest(mut all: Vec<SnapshotEntry>, filter: &SnapshotFilter) -> Result<SnapshotEntry> {
    if all.is_empty() {
        return Err(anyhow!("the repository has no snapshots yet, so none is `latest` (`chkfs save` takes one)"));
    }
    all.retain(|s| filter.keeps(s));
    if all.is_empty() {
        return Err(match filter.is_empty() {
            true => crate::store::StoreError::SnapshotNotFound("latest".into()).into(),
            false => anyhow!("no snapshot matches {}", filter.describe()),
        });
    }
    let sources: BTreeSet<(&str, &[u8])> =
        all.iter().map(|s| (s.snapshot.host.as_str(), s.snapshot.path.as_slice())).collect();
    let count = sources.len();
    let holding = if filter.is_empty() { sources_holding_cwd(&sources) } else { Vec::new() };
    let host = crate::save::hostname();
    let here = holding.iter().find(|(h, _)| *h == host).map(|(h, p)| (h.to_string(), p.to_vec()));
    // A deeper source holding the current directory, saved under another
    // host name (a renamed machine, `save --host`): the user may mean it.
    {
        let depth = here.as_ref().map_or(0, |(_, p)| p.len());
        if let Some((h, p)) = holding.iter().find(|(_, p)| p.len() > depth) {
            eprintln!(
                "chkfs: warning: the current directory is in {}:{}, saved under another host name; \
                 `latest` is of this host's snapshots{}: pass --host {} for that source",
                escape_str(h),
                escape_bytes(p),
                if here.is_some() { "" } else { " (of any source)" },
                escape_str(h)
            );
        }
    }
    drop(sources);
    let pick = match &here {
        Some((host, path)) => {
            all.iter().rposition(|s| &s.snapshot.host == host && &s.snapshot.path == path).unwrap_or(all.len() - 1)
        }
        None => all.len() - 1,
    };
    let chosen = all.swap_remove(pick);
    if count > 1 && here.is_none() {
        let inside = if filter.is_empty() { " (or run chkfs inside its directory)" } else { "" };
        eprintln!(
            "chkfs: warning: latest is {} of {}:{}, the newest of {count} sources; choose a source with --path DIR{inside}",
            chosen.id,
            escape_str(&chosen.snapshot.host),
            escape_bytes(&chosen.snapshot.path),
        );
    }
    Ok(chosen)
}

/// The sources of any host whose directory holds (or is) the current
/// one, deepest first.
fn sources_holding_cwd<'a>(sources: &BTreeSet<(&'a str, &'a [u8])>) -> Vec<(&'a str, &'a [u8])> {
    let Ok(cwd) = std::env::current_dir() else { return Vec::new() };
    let cwd = std::fs::canonicalize(&cwd).unwrap_or(cwd);
    let mut holding: Vec<_> =
        sources.iter().filter(|(_, p)| cwd.starts_with(Path::new(std::ffi::OsStr::from_bytes(p)))).copied().collect();
    holding.sort_by_key(|(_, p)| std::cmp::Reverse(p.len()));
    holding
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_made_plain_without_the_filesystem() {
        let cwd = std::env::current_dir().unwrap();
        let p = absolute(Path::new("no-such-dir/./a/../b/")).unwrap();
        assert_eq!(p, cwd.join("no-such-dir/b"));
        assert_eq!(absolute(Path::new("/no/such/../x/.")).unwrap(), Path::new("/no/x"));
        assert_eq!(absolute(Path::new("/..")).unwrap(), Path::new("/"));
    }

    #[test]
    fn host_and_path_both_must_match() {
        let f = SnapshotFilter { host: Some("a".into()), path: Some(b"/src".to_vec()), tags: Vec::new() };
        assert!(f.matches("a", b"/src", &[]));
        assert!(!f.matches("b", b"/src", &[]));
        assert!(!f.matches("a", b"/src/x", &[]));
        assert!(SnapshotFilter::default().matches("any", b"/where", &[]));
    }
}
