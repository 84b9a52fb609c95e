//! The configuration file: the repository, what `save` leaves out, and the
//! retention `forget` applies when given none. Flags and the environment
//! win over it.
//!
//! ```toml
//! repository = "/backup/chkfs"
//!
//! [save]
//! exclude = ["*.tmp", "node_modules/"]
//! exclude_files = ["~/.config/chkfs/excludes"]
//! git_ignore = true
//! one_file_system = true
//! tags = ["scheduled"]
//!
//! [forget]
//! keep_last = 3
//! keep_daily = 7
//! keep_weekly = 5
//! keep_monthly = 12
//! ```

use super::exit::UsageError;
use anyhow::Result;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The largest configuration file read.
const MAX_CONFIG: u64 = 1 << 20;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub repository: Option<PathBuf>,
    #[serde(default)]
    pub save: SaveConfig,
    #[serde(default)]
    pub forget: ForgetConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveConfig {
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub exclude_files: Vec<PathBuf>,
    #[serde(default)]
    pub git_ignore: bool,
    #[serde(default)]
    pub one_file_system: bool,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetConfig {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    pub keep_within: Option<String>,
}

/// Where the configuration file is: `$CHKFS_CONFIG`, else
/// `$XDG_CONFIG_HOME/chkfs/config.toml`, else `~/.config/chkfs/config.toml`.
pub fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHKFS_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let xdg = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let base = xdg.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("chkfs").join("config.toml"))
}

/// The configuration: empty when there is no file (at the default place;
/// a file `CHKFS_CONFIG` names must exist). A file that does not parse,
/// or names a setting chkfs does not know, is an error.
pub fn load() -> Result<ConfigFile> {
    let Some(path) = config_path() else { return Ok(ConfigFile::default()) };
    let named = std::env::var_os("CHKFS_CONFIG").is_some_and(|p| !p.is_empty());
    let text = match read_bounded(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => return Ok(ConfigFile::default()),
        Err(e) => return Err(UsageError(format!("configuration file {}: {e}", path.display())).into()),
    };
    let mut config: ConfigFile = toml::from_str(&text)
        .map_err(|e| UsageError(format!("configuration file {}: {}", path.display(), e.to_string().trim_end())))?;
    config.save.exclude_files = config.save.exclude_files.iter().map(|p| expand_home(p)).collect();
    config.repository = config.repository.map(|p| expand_home(&p));
    Ok(config)
}

/// The file's text: a regular file (after symlinks) of at most 1 MiB. It
/// is opened without blocking, so a FIFO put there never hangs a command.
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG {
        return Err(std::io::Error::other("larger than 1 MiB"));
    }
    Ok(text)
}

/// `~/x` as `$HOME/x`, so that one file serves wherever it is used from.
fn expand_home(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => p.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_parses_and_typos_are_refused() {
        let text = r#"
            repository = "/r"
            [save]
            exclude = ["*.tmp"]
            git_ignore = true
            tags = ["t"]
            [forget]
            keep_daily = 7
            keep_within = "30d"
        "#;
        let c: ConfigFile = toml::from_str(text).unwrap();
        assert_eq!(c.repository, Some(PathBuf::from("/r")));
        assert_eq!(c.save.exclude, ["*.tmp"]);
        assert!(c.save.git_ignore && !c.save.one_file_system);
        assert_eq!((c.forget.keep_daily, c.forget.keep_within.as_deref()), (Some(7), Some("30d")));
        assert!(toml::from_str::<ConfigFile>("[save]\ngitignore = true").is_err(), "a misspelt setting");
        assert!(toml::from_str::<ConfigFile>("repo = \"/x\"").is_err());
        assert!(toml::from_str::<ConfigFile>("[forget]\nkeep_last = -1").is_err());
        assert!(toml::from_str::<ConfigFile>("").is_ok());
    }
}
