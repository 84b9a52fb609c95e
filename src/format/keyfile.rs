//! What an encrypted repository (format version 4) keeps beside its
//! objects: a config that holds no secret, and key files, each holding the
//! repository's master keys wrapped by a key derived from one password.
//! The structs are frozen for version 4.

use super::envelope::{decode_payload, open_envelope, seal_envelope, ObjectKind};
use super::records::{valid_chunker, ChunkerParams, Timestamp, HASH_SECRET_LEN};
use super::sealed::{random_nonce, Cipher, KEY_LEN, NONCE_LEN};
use super::FormatError;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The config of an encrypted repository: everything needed before a key
/// is opened, and nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub struct EncryptedConfig {
    pub repo_id: u128,
    pub chunker: ChunkerParams,
    pub created: Timestamp,
    /// 1: AES-256-GCM with random 96-bit nonces, argon2id key files.
    pub scheme: u8,
}

pub const SCHEME_AES256GCM_ARGON2ID: u8 = 1;

/// The repository's secrets, the same in every key file.
#[derive(Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode, Zeroize, ZeroizeOnDrop)]
pub struct MasterKeys {
    #[zeroize(skip)]
    pub repo_id: u128,
    /// Seals every object and block.
    pub data_key: Vec<u8>,
    /// Keys the xxh3-128 that names blobs.
    pub hash_secret: Vec<u8>,
    /// Seeds FastCDC's gear table.
    pub gear_seed: u64,
    /// The config's chunk sizes, which the (plain) config must repeat: an
    /// altered config is refused, not used.
    #[zeroize(skip)]
    pub chunker: ChunkerParams,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKeys {{ repo_id: {:032x}, .. }}", self.repo_id)
    }
}

/// argon2id's costs, stored per key file.
#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub salt: Vec<u8>,
}

/// A key file's description, authenticated with the wrapped keys.
#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub struct KeyMeta {
    pub created: Timestamp,
    pub host: String,
    pub user: String,
    pub kdf: KdfParams,
}

#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub struct KeyFile {
    pub meta: KeyMeta,
    pub nonce: Vec<u8>,
    /// AES-256-GCM of the encoded [`MasterKeys`] under the password's key.
    pub wrapped: Vec<u8>,
}

/// What a hostile key file may make a reader spend on one attempt.
pub const MAX_KDF_MEMORY_KIB: u32 = 4 << 20;
pub const MAX_KDF_ITERATIONS: u32 = 64;
pub const MAX_KDF_PARALLELISM: u32 = 16;
const SALT_LEN: usize = 16;

pub fn encode_encrypted_config(config: &EncryptedConfig) -> Result<Vec<u8>, FormatError> {
    seal_envelope(ObjectKind::EncryptedConfig, &bitcode::encode(config))
}

pub fn decode_encrypted_config(bytes: &[u8]) -> Result<EncryptedConfig, FormatError> {
    let config: EncryptedConfig =
        decode_payload("encrypted repository's config", open_envelope(ObjectKind::EncryptedConfig, bytes)?)?;
    if !valid_chunker(&config.chunker) {
        return Err(invalid("config", "bad chunker sizes".into()));
    }
    if config.scheme != SCHEME_AES256GCM_ARGON2ID {
        return Err(invalid("config", format!("unknown encryption scheme {}", config.scheme)));
    }
    Ok(config)
}

pub fn encode_key_file(key: &KeyFile) -> Result<Vec<u8>, FormatError> {
    seal_envelope(ObjectKind::KeyFile, &bitcode::encode(key))
}

/// Decodes a key file and bounds what opening it may cost.
pub fn decode_key_file(bytes: &[u8]) -> Result<KeyFile, FormatError> {
    let key: KeyFile = decode_payload("key file", open_envelope(ObjectKind::KeyFile, bytes)?)?;
    let k = &key.meta.kdf;
    let sane = (8..=MAX_KDF_MEMORY_KIB).contains(&k.memory_kib)
        && (1..=MAX_KDF_ITERATIONS).contains(&k.iterations)
        && (1..=MAX_KDF_PARALLELISM).contains(&k.parallelism)
        && k.memory_kib >= 8 * k.parallelism
        && k.salt.len() == SALT_LEN
        && key.nonce.len() == NONCE_LEN
        && key.wrapped.len() < 4096;
    if !sane {
        return Err(invalid("key file", "impossible key derivation parameters".into()));
    }
    Ok(key)
}

impl MasterKeys {
    /// Fresh random keys for repository `repo_id`.
    pub fn generate(repo_id: u128, chunker: ChunkerParams) -> Result<MasterKeys, FormatError> {
        let mut data_key = vec![0u8; KEY_LEN];
        let mut hash_secret = vec![0u8; HASH_SECRET_LEN];
        let mut seed = [0u8; 8];
        for buf in [&mut data_key[..], &mut hash_secret[..], &mut seed[..]] {
            getrandom::fill(buf).map_err(|e| invalid("keys", format!("no randomness: {e}")))?;
        }
        Ok(MasterKeys { repo_id, data_key, hash_secret, gear_seed: u64::from_le_bytes(seed) | 1, chunker })
    }

    pub fn cipher(&self) -> Result<Cipher, FormatError> {
        Cipher::new(&self.data_key)
    }

    /// A key file named `name` that opens with `password`.
    pub fn wrap(&self, name: &str, password: &[u8], meta: KeyMeta) -> Result<KeyFile, FormatError> {
        let kek = derive(password, &meta.kdf)?;
        let nonce = random_nonce()?;
        let plain = Zeroizing::new(bitcode::encode(self));
        let aad = key_aad(name, &meta);
        let wrapped = Aes256Gcm::new_from_slice(&kek[..])
            .map_err(|_| invalid("key", "bad derived key".into()))?
            .encrypt(&Nonce::from(nonce), Payload { msg: &plain, aad: &aad })
            .map_err(|_| invalid("key", "cannot wrap".into()))?;
        Ok(KeyFile { meta, nonce: nonce.to_vec(), wrapped })
    }
}

impl KeyFile {
    /// The master keys, when `password` is this key file's; None when it
    /// is not (or the file was altered: the two cannot be told apart).
    pub fn unwrap_with(&self, name: &str, password: &[u8]) -> Result<Option<MasterKeys>, FormatError> {
        let kek = derive(password, &self.meta.kdf)?;
        let nonce: [u8; NONCE_LEN] = self.nonce.as_slice().try_into().map_err(|_| FormatError::Truncated(0))?;
        let aad = key_aad(name, &self.meta);
        let aead = Aes256Gcm::new_from_slice(&kek[..]).map_err(|_| invalid("key", "bad derived key".into()))?;
        let Ok(plain) = aead.decrypt(&Nonce::from(nonce), Payload { msg: &self.wrapped, aad: &aad }) else {
            return Ok(None);
        };
        let plain = Zeroizing::new(plain);
        let keys: MasterKeys = decode_payload("master keys", &plain)?;
        if keys.data_key.len() != KEY_LEN || keys.hash_secret.len() != HASH_SECRET_LEN {
            return Err(invalid("key file", "master keys of the wrong size".into()));
        }
        Ok(Some(keys))
    }
}

/// Fresh argon2id parameters with a random salt.
pub fn new_kdf_params(memory_kib: u32, iterations: u32) -> Result<KdfParams, FormatError> {
    let mut salt = vec![0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| invalid("salt", format!("no randomness: {e}")))?;
    Ok(KdfParams { memory_kib, iterations, parallelism: 1, salt })
}

fn derive(password: &[u8], k: &KdfParams) -> Result<Zeroizing<[u8; KEY_LEN]>, FormatError> {
    let params = argon2::Params::new(k.memory_kib, k.iterations, k.parallelism, Some(KEY_LEN))
        .map_err(|e| invalid("key file", format!("key derivation parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(password, &k.salt, &mut out[..])
        .map_err(|e| invalid("key file", format!("key derivation: {e}")))?;
    Ok(out)
}

fn key_aad(name: &str, meta: &KeyMeta) -> Vec<u8> {
    [&b"chkfs key file "[..], name.as_bytes(), &[0], &bitcode::encode(meta)].concat()
}

fn invalid(what: &'static str, detail: String) -> FormatError {
    FormatError::Invalid { what, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunker() -> ChunkerParams {
        ChunkerParams { min_size: 4096, avg_size: 16384, max_size: 131072 }
    }

    fn meta() -> KeyMeta {
        KeyMeta {
            created: Timestamp { secs: 1, nanos: 0 },
            host: "h".into(),
            user: "u".into(),
            kdf: new_kdf_params(64, 1).unwrap(),
        }
    }

    #[test]
    fn a_key_file_opens_with_its_password_only() {
        let keys = MasterKeys::generate(42, chunker()).unwrap();
        let file = keys.wrap("keys/a.key", b"secret", meta()).unwrap();
        let bytes = encode_key_file(&file).unwrap();
        let back = decode_key_file(&bytes).unwrap();
        assert_eq!(back.unwrap_with("keys/a.key", b"secret").unwrap(), Some(keys));
        assert_eq!(back.unwrap_with("keys/a.key", b"secreT").unwrap(), None);
        assert_eq!(back.unwrap_with("keys/b.key", b"secret").unwrap(), None, "bound to its name");
        let mut altered = back.clone();
        altered.meta.host = "elsewhere".into();
        assert_eq!(altered.unwrap_with("keys/a.key", b"secret").unwrap(), None, "its description is authenticated");
    }

    #[test]
    fn absurd_kdf_costs_are_refused_before_deriving() {
        let keys = MasterKeys::generate(1, chunker()).unwrap();
        let mut file = keys.wrap("k", b"p", meta()).unwrap();
        file.meta.kdf.memory_kib = u32::MAX;
        assert!(decode_key_file(&encode_key_file(&file).unwrap()).is_err());
    }
}
