//! Authenticated encryption of stored bytes (AES-256-GCM), for encrypted
//! repositories (format version 4).
//!
//! ```text
//! sealed object  "CHKS" kind(1) version(1) reserved(2) len(u32) nonce(12)   24 bytes
//!                ciphertext (len - 16 bytes)  tag(16)
//! sealed block   ciphertext  tag(16)  nonce(12)
//! plaintext      inner bytes, zero padding, inner length (u32)
//! ```
//! A sealed object's plaintext is the object's ordinary envelope; a sealed
//! block's is its lz4 (or raw) bytes. A block is sealed and opened in
//! place (tag, nonce and length at its end, so that nothing moves). The
//! additional data of an object is its 24-byte header followed by its
//! binding (the storage name of an object whose name is not the hash of
//! its bytes), so an object moved under another name or kind fails to
//! open; a block's is a domain tag, its blob kind and the ids of the blobs
//! it holds, in order, so a block moved to where other blobs are expected
//! does not open. Plaintexts are padded (Padmé) so that sizes reveal
//! little.

use super::envelope::ObjectKind;
use super::pack::BlobKind;
use super::{BlobId, FormatError};
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

pub const MAGIC: &[u8; 4] = b"CHKS";
/// The version that introduced sealing.
pub const SEALED_VERSION: u8 = 4;
pub const SEALED_HEADER_LEN: usize = 24;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const KEY_LEN: usize = 32;
const LEN_LEN: usize = 4;
const BLOCK_DOMAIN: &[u8] = b"chkfs block";

/// The most a sealed object or block adds to a plaintext of `inner` bytes.
pub fn sealed_len_bound(inner: u64) -> u64 {
    padded_len(inner + LEN_LEN as u64) + (SEALED_HEADER_LEN + TAG_LEN) as u64
}

/// Padmé padding: at most about 12% larger, and a padded length reveals
/// only O(log log n) bits of the length it hides.
pub fn padded_len(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = 63 - u64::from(len.leading_zeros());
    let s = 64 - u64::from(e.leading_zeros());
    let mask = (1u64 << (e - s)) - 1;
    (len + mask) & !mask
}

/// The repository's data key.
pub struct Cipher {
    aead: Aes256Gcm,
}

impl Cipher {
    pub fn new(key: &[u8]) -> Result<Cipher, FormatError> {
        let aead = Aes256Gcm::new_from_slice(key).map_err(|_| invalid("key", "a data key is 32 bytes".into()))?;
        Ok(Cipher { aead })
    }

    /// Seals an object's envelope `inner` as an object of `kind` bound to
    /// `binding`.
    pub fn seal_object(&self, kind: ObjectKind, binding: &[u8], inner: &[u8]) -> Result<Vec<u8>, FormatError> {
        let mut body = inner.to_vec();
        pad(&mut body, 0)?;
        let len = u32::try_from(body.len() + TAG_LEN)
            .map_err(|_| invalid("sealed object", format!("{} bytes do not fit in one object", inner.len())))?;
        let nonce = random_nonce()?;
        let mut out = Vec::with_capacity(SEALED_HEADER_LEN + body.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.push(kind as u8);
        out.push(SEALED_VERSION);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&nonce);
        let aad = [&out[..], binding].concat();
        let tag = self.encrypt(&nonce, &mut body, &aad)?;
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens a sealed object of `kind` bound to `binding`: its envelope.
    pub fn open_object(&self, kind: ObjectKind, binding: &[u8], bytes: &[u8]) -> Result<Vec<u8>, FormatError> {
        let total = sealed_header(kind, bytes)?;
        if bytes.len() as u64 != total {
            return Err(FormatError::Truncated(bytes.len()));
        }
        let (header, rest) = bytes.split_at(SEALED_HEADER_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let aad = [header, binding].concat();
        let mut body = ct.to_vec();
        self.decrypt(&header[12..24], tag, &mut body, &aad, kind.name())?;
        unpad(body, kind.name())
    }

    /// Seals, in place, the stored bytes of a pack block holding the blobs
    /// `ids` (in order), of `kind`.
    pub fn seal_block(&self, kind: BlobKind, ids: &[BlobId], mut stored: Vec<u8>) -> Result<Vec<u8>, FormatError> {
        pad(&mut stored, TAG_LEN + NONCE_LEN)?;
        let nonce = random_nonce()?;
        let tag = self.encrypt(&nonce, &mut stored, &block_aad(kind, ids))?;
        stored.extend_from_slice(&tag);
        stored.extend_from_slice(&nonce);
        Ok(stored)
    }

    /// Opens, in place, a sealed pack block said to hold the blobs `ids`:
    /// its stored (compressed or raw) bytes.
    pub fn open_block(&self, kind: BlobKind, ids: &[BlobId], mut sealed: Vec<u8>) -> Result<Vec<u8>, FormatError> {
        let n = sealed.len();
        if n < NONCE_LEN + TAG_LEN + LEN_LEN {
            return Err(FormatError::Truncated(n));
        }
        let (body, trailer) = sealed.split_at_mut(n - TAG_LEN - NONCE_LEN);
        let (tag, nonce) = trailer.split_at(TAG_LEN);
        self.decrypt(nonce, tag, body, &block_aad(kind, ids), "pack block")?;
        sealed.truncate(n - TAG_LEN - NONCE_LEN);
        unpad(sealed, "pack block")
    }

    fn encrypt(&self, nonce: &[u8; NONCE_LEN], buf: &mut [u8], aad: &[u8]) -> Result<Tag, FormatError> {
        self.aead
            .encrypt_inout_detached(&Nonce::from(*nonce), aad, buf.into())
            .map_err(|_| invalid("sealed object", "too long to encrypt".into()))
    }

    fn decrypt(
        &self,
        nonce: &[u8],
        tag: &[u8],
        buf: &mut [u8],
        aad: &[u8],
        what: &'static str,
    ) -> Result<(), FormatError> {
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| FormatError::Truncated(nonce.len()))?;
        let tag = Tag::try_from(tag).map_err(|_| FormatError::Truncated(tag.len()))?;
        self.aead
            .decrypt_inout_detached(&Nonce::from(nonce), aad, buf.into(), &tag)
            .map_err(|_| FormatError::Unauthentic(what))
    }
}

/// Checks the first [`SEALED_HEADER_LEN`] bytes of a sealed object of
/// `expected` kind and returns the object's whole length.
pub fn sealed_header(expected: ObjectKind, head: &[u8]) -> Result<u64, FormatError> {
    if head.len() < SEALED_HEADER_LEN {
        return Err(FormatError::Truncated(head.len()));
    }
    if &head[0..4] != MAGIC {
        return Err(FormatError::BadMagic);
    }
    if head[5] != SEALED_VERSION {
        return match head[5] {
            v if v > super::FORMAT_VERSION => {
                Err(FormatError::UnsupportedVersion { found: v, supported: super::FORMAT_VERSION })
            }
            v => Err(invalid("sealed object", format!("a sealed object of version {v}"))),
        };
    }
    if head[4] != expected as u8 {
        return Err(invalid("sealed object", format!("kind {} where a {} was expected", head[4], expected.name())));
    }
    if head[6..8] != [0, 0] {
        return Err(invalid("sealed object", "reserved bytes are not zero".into()));
    }
    let len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if (len as usize) < TAG_LEN + LEN_LEN {
        return Err(invalid("sealed object", format!("length {len} is too short")));
    }
    Ok(SEALED_HEADER_LEN as u64 + u64::from(len))
}

fn block_aad(kind: BlobKind, ids: &[BlobId]) -> Vec<u8> {
    let kind_byte = match kind {
        BlobKind::Data => 1,
        BlobKind::Tree => 2,
    };
    let mut aad = Vec::with_capacity(BLOCK_DOMAIN.len() + 1 + 16 * ids.len());
    aad.extend_from_slice(BLOCK_DOMAIN);
    aad.push(kind_byte);
    for id in ids {
        aad.extend_from_slice(&id.0.to_le_bytes());
    }
    aad
}

/// Pads `buf` in place to its Padmé length, its own length last; `room`
/// more bytes are reserved for what the caller appends.
fn pad(buf: &mut Vec<u8>, room: usize) -> Result<(), FormatError> {
    let len = u32::try_from(buf.len()).map_err(|_| invalid("sealed object", "too long".into()))?;
    let padded = padded_len(buf.len() as u64 + LEN_LEN as u64) as usize;
    buf.reserve_exact(padded + room - buf.len());
    buf.resize(padded - LEN_LEN, 0);
    buf.extend_from_slice(&len.to_le_bytes());
    Ok(())
}

/// The inner bytes of a padded plaintext; the padding must be zeros (a
/// plaintext is authenticated, so anything else is a writer's bug).
fn unpad(mut plain: Vec<u8>, what: &'static str) -> Result<Vec<u8>, FormatError> {
    let bad = || invalid(what, "its padding is malformed".into());
    let end = plain.len().checked_sub(LEN_LEN).ok_or_else(bad)?;
    let len = u32::from_le_bytes([plain[end], plain[end + 1], plain[end + 2], plain[end + 3]]) as usize;
    if len > end || plain[len..end].iter().any(|&b| b != 0) {
        return Err(bad());
    }
    plain.truncate(len);
    Ok(plain)
}

pub(crate) fn random_nonce() -> Result<[u8; NONCE_LEN], FormatError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| invalid("nonce", format!("no randomness: {e}")))?;
    Ok(nonce)
}

fn invalid(what: &'static str, detail: String) -> FormatError {
    FormatError::Invalid { what, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        Cipher::new(&[7u8; KEY_LEN]).unwrap()
    }

    #[test]
    fn objects_round_trip_and_are_bound_to_kind_name_and_key() {
        let c = cipher();
        let sealed = c.seal_object(ObjectKind::Snapshot, b"snapshots/0000abcd.snap", b"hello").unwrap();
        assert_eq!(c.open_object(ObjectKind::Snapshot, b"snapshots/0000abcd.snap", &sealed).unwrap(), b"hello");
        assert!(c.open_object(ObjectKind::Snapshot, b"snapshots/0000abce.snap", &sealed).is_err());
        assert!(c.open_object(ObjectKind::Index, b"snapshots/0000abcd.snap", &sealed).is_err());
        let other = Cipher::new(&[8u8; KEY_LEN]).unwrap();
        assert_eq!(
            other.open_object(ObjectKind::Snapshot, b"snapshots/0000abcd.snap", &sealed),
            Err(FormatError::Unauthentic("snapshot"))
        );
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 0x40;
            assert!(c.open_object(ObjectKind::Snapshot, b"snapshots/0000abcd.snap", &flipped).is_err(), "byte {i}");
        }
        assert!(c.open_object(ObjectKind::Snapshot, b"snapshots/0000abcd.snap", &sealed[..sealed.len() - 1]).is_err());
    }

    #[test]
    fn blocks_round_trip_and_are_bound_to_their_kind() {
        let c = cipher();
        let ids = [BlobId(1), BlobId(2)];
        let sealed = c.seal_block(BlobKind::Data, &ids, b"chunk bytes".to_vec()).unwrap();
        assert_eq!(c.open_block(BlobKind::Data, &ids, sealed.clone()).unwrap(), b"chunk bytes");
        assert!(c.open_block(BlobKind::Tree, &ids, sealed.clone()).is_err());
        assert!(c.open_block(BlobKind::Data, &[BlobId(2), BlobId(1)], sealed.clone()).is_err(), "bound to its blobs");
        assert!(c.open_block(BlobKind::Data, &ids[..1], sealed.clone()).is_err());
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 1;
            assert!(c.open_block(BlobKind::Data, &ids, flipped).is_err(), "byte {i}");
        }
        assert!(c.open_block(BlobKind::Data, &ids, sealed[..3].to_vec()).is_err());
        assert!(c.open_block(BlobKind::Data, &ids, sealed[..sealed.len() - 1].to_vec()).is_err());
        let empty = c.seal_block(BlobKind::Tree, &[], Vec::new()).unwrap();
        assert_eq!(c.open_block(BlobKind::Tree, &[], empty).unwrap(), b"");
    }

    #[test]
    fn sealing_twice_gives_different_bytes() {
        let c = cipher();
        let once = c.seal_block(BlobKind::Data, &[], b"same".to_vec()).unwrap();
        assert_ne!(once, c.seal_block(BlobKind::Data, &[], b"same".to_vec()).unwrap());
    }

    #[test]
    fn padding_is_bounded_and_hides_low_bits() {
        for len in [0u64, 1, 2, 3, 100, 1000, 4097, 65_536, 131_071, 1 << 20, (1 << 30) + 12_345] {
            let p = padded_len(len);
            assert!(p >= len && p <= len + len / 8 + 1, "{len} -> {p}");
        }
        assert_eq!(padded_len(131_000), padded_len(131_071));
        assert!(sealed_len_bound(1000) >= 1000 + 44);
    }
}
