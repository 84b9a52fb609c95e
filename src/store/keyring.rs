//! The key files of an encrypted repository: opening one with a password,
//! adding one for another password, removing one (never the last).

use super::backend::Backend;
use super::repo::random_bytes;
use super::{keys, Repository, StoreError};
use crate::format::keyfile::{
    decode_key_file, encode_key_file, new_kdf_params, EncryptedConfig, KeyFile, KeyMeta, MasterKeys,
};
use crate::format::records::Timestamp;
use zeroize::Zeroizing;

/// A key file is at most this long.
const MAX_KEY_FILE: u64 = 64 << 10;

/// Where a password comes from; asked only when a repository needs one.
pub trait PasswordSource {
    fn password(&self, location: &str) -> Result<Zeroizing<Vec<u8>>, StoreError>;
}

/// For plain repositories: an encrypted one is refused.
pub struct NoPassword;

impl PasswordSource for NoPassword {
    fn password(&self, location: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        Err(StoreError::PasswordNeeded(location.to_string()))
    }
}

/// argon2id's costs for a new key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl KdfCost {
    /// About a second of one core here (256 MiB, 5 passes).
    pub const DEFAULT: KdfCost = KdfCost { memory_kib: 256 << 10, iterations: 5 };
}

/// A key file, as `chkfs key list` shows it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: u128,
    pub meta: KeyMeta,
    /// The key that opened the repository in this process.
    pub current: bool,
}

/// The master keys of repository `repo_id` and the key file that opened
/// them: every key file is tried with the one password.
pub(crate) fn unlock(
    backend: &dyn Backend,
    config: &EncryptedConfig,
    source: &dyn PasswordSource,
) -> Result<(MasterKeys, u128), StoreError> {
    let files = read_key_files(backend)?;
    if files.is_empty() {
        let reason = "it is encrypted, and has no readable key file: nothing in it can be read".into();
        return Err(StoreError::Inconsistent { what: backend.location(), reason });
    }
    let password = source.password(&backend.location())?;
    let mut mismatch = None;
    for (id, file) in &files {
        let name = keys::key_file(*id);
        let Some(master) = file.unwrap_with(&name, &password).map_err(|e| StoreError::format(&name, e))? else {
            continue;
        };
        if master.repo_id == config.repo_id && master.chunker == config.chunker {
            return Ok((master, *id));
        }
        // A key file copied from another repository, or a config altered
        // or replaced: the password was right.
        mismatch = Some(name);
    }
    match mismatch {
        Some(name) => Err(StoreError::format(
            format!("{}/config", backend.location()),
            crate::format::FormatError::Invalid {
                what: "config",
                detail: format!("it does not match the keys that {name} opens: it was altered or replaced"),
            },
        )),
        None => Err(StoreError::WrongPassword(backend.location())),
    }
}

/// A plain config in a repository that has key files is one an attacker
/// put there to make writers store plaintext: refused.
pub(crate) fn refuse_plain_config_beside_keys(backend: &dyn Backend) -> Result<(), StoreError> {
    if backend.list(keys::KEYS)?.iter().any(|l| keys::parse_key_file(&l.key).is_some()) {
        let reason = "its config says it is not encrypted, yet it has key files: the config was replaced; \
                      refusing to read or write it"
            .into();
        return Err(StoreError::Inconsistent { what: backend.location(), reason });
    }
    Ok(())
}

/// Every readable key file, by id; a damaged one is skipped with a warning
/// (another may still open the repository).
fn read_key_files(backend: &dyn Backend) -> Result<Vec<(u128, KeyFile)>, StoreError> {
    let mut out = Vec::new();
    for listed in backend.list(keys::KEYS)? {
        let Some(id) = keys::parse_key_file(&listed.key) else { continue };
        let read = backend.read(&listed.key, MAX_KEY_FILE).and_then(|bytes| {
            decode_key_file(&bytes).map_err(|e| StoreError::format(format!("key file {id:032x}"), e))
        });
        match read {
            Ok(file) => out.push((id, file)),
            Err(e) if e.is_missing() => {}
            Err(e) => eprintln!("chkfs: warning: {e}"),
        }
    }
    Ok(out)
}

/// Writes a new key file holding `master` for `password`; returns its id.
pub(crate) fn add_key_file(
    backend: &dyn Backend,
    master: &MasterKeys,
    password: &[u8],
    cost: KdfCost,
) -> Result<u128, StoreError> {
    let id = u128::from_le_bytes(random_bytes::<16>()?);
    let name = keys::key_file(id);
    let kdf = new_kdf_params(cost.memory_kib, cost.iterations).map_err(|e| StoreError::format(&name, e))?;
    let meta = KeyMeta { created: Timestamp::now(), host: crate::save::hostname(), user: user_name(), kdf };
    let file = master.wrap(&name, password, meta).map_err(|e| StoreError::format(&name, e))?;
    let bytes = encode_key_file(&file).map_err(|e| StoreError::format(&name, e))?;
    if !backend.write_if_absent(&name, &bytes)? {
        return Err(StoreError::AlreadyExists(name));
    }
    backend.sync()?;
    Ok(id)
}

fn user_name() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
        // SAFETY: getuid cannot fail.
        format!("uid {}", unsafe { libc::getuid() })
    })
}

impl Repository {
    fn opened(&self) -> Result<&super::repo::Sealing, StoreError> {
        self.sealing()
            .ok_or_else(|| StoreError::Unsupported(format!("{} is not encrypted: it has no keys", self.location())))
    }

    /// Every key file of an encrypted repository.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        let current = self.opened()?.key_id;
        let files = read_key_files(self.backend())?;
        Ok(files.into_iter().map(|(id, file)| KeyInfo { id, meta: file.meta, current: id == current }).collect())
    }

    /// Adds a key file for `password`; returns its id.
    pub fn add_key(&self, password: &[u8], cost: KdfCost) -> Result<u128, StoreError> {
        let sealing = self.opened()?;
        add_key_file(self.backend(), &sealing.keys, password, cost)
    }

    /// Removes key file `id`. The key that opened the repository is
    /// refused (it is the one known to open it; `passwd` replaces it), and
    /// so is the last one.
    pub fn remove_key(&self, id: u128) -> Result<(), StoreError> {
        if self.opened()?.key_id == id {
            return Err(StoreError::Unsupported(
                "that is the key this command opened the repository with: open it with another key to remove it \
                 (or use `key passwd` to replace it)"
                    .into(),
            ));
        }
        self.replace_key_file(id)
    }

    /// Removes key file `id` after a new one for the same keys was stored:
    /// what `key passwd` does with the key it opened the repository with.
    pub fn replace_key_file(&self, id: u128) -> Result<(), StoreError> {
        self.opened()?;
        let keys = self.list_keys()?;
        if !keys.iter().any(|k| k.id == id) {
            return Err(StoreError::Missing { what: format!("key {id:032x}") });
        }
        if keys.len() < 2 {
            return Err(StoreError::Unsupported(
                "that is the repository's only key: removing it would lose every snapshot (add another first)".into(),
            ));
        }
        self.backend().delete(&keys::key_file(id))?;
        self.sync()
    }
}
