//! The envelope every stored object (config, snapshot, index, pack footer,
//! tree) is wrapped in: it names the object kind and format version and
//! carries a checksum, so damage and foreign files are detected before the
//! payload is decoded. bitcode itself has no framing or schema evolution.

use super::{FormatError, FORMAT_VERSION};
use xxhash_rust::xxh3::xxh3_64;

const MAGIC: &[u8; 4] = b"CHKF";

/// magic(4) kind(1) version(1) reserved(2) payload_len(4) checksum(8)
pub const ENVELOPE_LEN: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Config = 1,
    Snapshot = 2,
    Index = 3,
    PackFooter = 4,
    Tree = 5,
    DamageList = 6,
    SplitTree = 7,
    WriterMarker = 8,
    CondemnedList = 9,
    EncryptedConfig = 10,
    KeyFile = 11,
    TaggedSnapshot = 12,
}

impl ObjectKind {
    fn from_byte(b: u8) -> Result<Self, FormatError> {
        Ok(match b {
            1 => Self::Config,
            2 => Self::Snapshot,
            3 => Self::Index,
            4 => Self::PackFooter,
            5 => Self::Tree,
            6 => Self::DamageList,
            7 => Self::SplitTree,
            8 => Self::WriterMarker,
            9 => Self::CondemnedList,
            10 => Self::EncryptedConfig,
            11 => Self::KeyFile,
            12 => Self::TaggedSnapshot,
            other => return Err(FormatError::UnknownKind(other)),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Snapshot => "snapshot",
            Self::Index => "index",
            Self::PackFooter => "pack footer",
            Self::Tree => "tree",
            Self::DamageList => "damage list",
            Self::SplitTree => "split tree",
            Self::WriterMarker => "writer marker",
            Self::CondemnedList => "condemned list",
            Self::EncryptedConfig => "encrypted repository's config",
            Self::KeyFile => "key file",
            Self::TaggedSnapshot => "tagged snapshot",
        }
    }

    /// The format version that introduced the kind. An object is written
    /// with the version of its kind, the lowest that can express it, so
    /// that an older chkfs reads every object it can understand.
    pub fn first_version(self) -> u8 {
        match self {
            Self::SplitTree => 2,
            Self::WriterMarker | Self::CondemnedList => 3,
            Self::EncryptedConfig | Self::KeyFile => 4,
            Self::TaggedSnapshot => 5,
            _ => 1,
        }
    }
}

/// The largest object an envelope can hold, envelope included.
pub const MAX_OBJECT: u64 = ENVELOPE_LEN as u64 + u32::MAX as u64;

/// Wraps `payload` in an envelope of the given kind; a payload whose
/// length does not fit the 32-bit length field is refused.
pub fn seal_envelope(kind: ObjectKind, payload: &[u8]) -> Result<Vec<u8>, FormatError> {
    let len = u32::try_from(payload.len()).map_err(|_| FormatError::Invalid {
        what: "envelope",
        detail: format!("a {} of {} bytes does not fit in one object", kind.name(), payload.len()),
    })?;
    let mut out = Vec::with_capacity(ENVELOPE_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(kind as u8);
    out.push(kind.first_version());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&xxh3_64(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Checks the first [`ENVELOPE_LEN`] bytes of an object (magic, version,
/// kind, reserved bytes) and returns the payload length it announces, so
/// that a reader can refuse an object before reading all of it.
pub fn envelope_header(expected: ObjectKind, head: &[u8]) -> Result<u64, FormatError> {
    if head.len() < ENVELOPE_LEN {
        return Err(FormatError::Truncated(head.len()));
    }
    if &head[0..4] != MAGIC {
        return Err(FormatError::BadMagic);
    }
    check_kind(head, &[expected])?;
    Ok(u64::from(u32::from_le_bytes(head[8..12].try_into().expect("4-byte slice"))))
}

/// Checks the envelope of `bytes` and returns its payload.
pub fn open_envelope(expected: ObjectKind, bytes: &[u8]) -> Result<&[u8], FormatError> {
    if bytes.len() < ENVELOPE_LEN {
        return Err(FormatError::Truncated(bytes.len()));
    }
    if &bytes[0..4] != MAGIC {
        return Err(FormatError::BadMagic);
    }
    open_envelope_of(&[expected], bytes).map(|(_, payload)| payload)
}

/// Checks the envelope of `bytes`, an object of one of the `expected`
/// kinds, and returns its kind and payload.
pub fn open_envelope_of<'a>(expected: &[ObjectKind], bytes: &'a [u8]) -> Result<(ObjectKind, &'a [u8]), FormatError> {
    if bytes.len() < ENVELOPE_LEN {
        return Err(FormatError::Truncated(bytes.len()));
    }
    if &bytes[0..4] != MAGIC {
        return Err(FormatError::BadMagic);
    }
    let kind = check_kind(bytes, expected)?;
    if bytes[6..8] != [0, 0] {
        return Err(FormatError::Invalid { what: "envelope", detail: "reserved bytes are not zero".into() });
    }
    let len = u32::from_le_bytes(bytes[8..12].try_into().expect("4-byte slice")) as usize;
    let sum = u64::from_le_bytes(bytes[12..20].try_into().expect("8-byte slice"));
    let payload = &bytes[ENVELOPE_LEN..];
    if payload.len() != len {
        return Err(FormatError::Truncated(bytes.len()));
    }
    if xxh3_64(payload) != sum {
        return Err(FormatError::Checksum);
    }
    Ok((kind, payload))
}

/// The version and kind of an envelope header: the version first, since a
/// newer version may have kinds this one lacks; a kind in an envelope of
/// another version than the one that defines it is damage.
fn check_kind(head: &[u8], expected: &[ObjectKind]) -> Result<ObjectKind, FormatError> {
    let version = head[5];
    if !(1..=FORMAT_VERSION).contains(&version) {
        return Err(FormatError::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
    }
    let kind = ObjectKind::from_byte(head[4])?;
    if !expected.contains(&kind) {
        let names: Vec<&str> = expected.iter().map(|k| k.name()).collect();
        return Err(FormatError::WrongKind { expected: names.join(" or "), found: kind.name() });
    }
    if version != kind.first_version() {
        let detail = format!("a {} in a version-{version} envelope", kind.name());
        return Err(FormatError::Invalid { what: "envelope", detail });
    }
    Ok(kind)
}

/// Decodes a bitcode payload, turning a failure into a FormatError.
pub(crate) fn decode_payload<T: bitcode::DecodeOwned>(what: &'static str, payload: &[u8]) -> Result<T, FormatError> {
    bitcode::decode(payload).map_err(|e| FormatError::Decode { what, detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let sealed = seal_envelope(ObjectKind::Tree, b"hello").unwrap();
        assert_eq!(open_envelope(ObjectKind::Tree, &sealed).unwrap(), b"hello");
    }

    #[test]
    fn rejects_wrong_kind_version_damage_and_truncation() {
        let sealed = seal_envelope(ObjectKind::Tree, b"hello").unwrap();
        assert!(matches!(open_envelope(ObjectKind::Snapshot, &sealed), Err(FormatError::WrongKind { .. })));
        let mut v = sealed.clone();
        v[5] = 9;
        assert!(matches!(open_envelope(ObjectKind::Tree, &v), Err(FormatError::UnsupportedVersion { found: 9, .. })));
        let mut d = sealed.clone();
        *d.last_mut().unwrap() ^= 1;
        assert_eq!(open_envelope(ObjectKind::Tree, &d), Err(FormatError::Checksum));
        assert!(open_envelope(ObjectKind::Tree, &sealed[..sealed.len() - 1]).is_err());
        assert!(open_envelope(ObjectKind::Tree, &sealed[..3]).is_err());
        let mut m = sealed.clone();
        m[0] = b'X';
        assert_eq!(open_envelope(ObjectKind::Tree, &m), Err(FormatError::BadMagic));
        // A newer version with a kind this version does not know is a
        // newer version, not damage.
        let mut n = sealed;
        n[4] = 77;
        n[5] = FORMAT_VERSION + 1;
        assert!(matches!(open_envelope(ObjectKind::Tree, &n), Err(FormatError::UnsupportedVersion { .. })));
        n[5] = 0;
        assert!(matches!(open_envelope(ObjectKind::Tree, &n), Err(FormatError::UnsupportedVersion { found: 0, .. })));
    }

    #[test]
    fn each_kind_is_written_with_the_version_that_introduced_it() {
        assert_eq!(seal_envelope(ObjectKind::Tree, b"x").unwrap()[5], 1);
        let split = seal_envelope(ObjectKind::SplitTree, b"x").unwrap();
        assert_eq!(split[5], 2);
        let both = [ObjectKind::Tree, ObjectKind::SplitTree];
        assert_eq!(open_envelope_of(&both, &split).unwrap(), (ObjectKind::SplitTree, &b"x"[..]));
        assert!(matches!(open_envelope(ObjectKind::Tree, &split), Err(FormatError::WrongKind { .. })));
        // A split tree claiming version 1, which had none, is damage; so
        // is a tree claiming version 2, whose trees are version 1's.
        let mut old = split;
        old[5] = 1;
        assert!(matches!(open_envelope_of(&both, &old), Err(FormatError::Invalid { .. })));
        let mut tree = seal_envelope(ObjectKind::Tree, b"x").unwrap();
        tree[5] = 2;
        assert!(matches!(open_envelope(ObjectKind::Tree, &tree), Err(FormatError::Invalid { .. })));
    }

    #[test]
    fn lengths_beyond_32_bits_are_refused_not_wrapped() {
        // A zero-filled allocation the kernel hands out lazily.
        let huge = vec![0u8; u32::MAX as usize + 1];
        assert!(seal_envelope(ObjectKind::Index, &huge).is_err());
    }
}
