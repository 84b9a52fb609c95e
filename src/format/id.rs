//! Identifiers: blobs (chunks and trees) and packs are named by 128-bit
//! hashes, snapshots by a random 32-bit number, all shown in lowercase hex.

use super::FormatError;
use std::fmt;

macro_rules! hex_id {
    ($name:ident, $int:ty, $digits:expr) => {
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, bitcode::Encode, bitcode::Decode)]
        pub struct $name(pub $int);

        impl $name {
            pub const HEX_LEN: usize = $digits;

            pub fn to_hex(self) -> String {
                format!("{:0width$x}", self.0, width = $digits)
            }

            pub fn from_hex(s: &str) -> Result<Self, FormatError> {
                let valid = s.len() == $digits && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !valid {
                    return Err(FormatError::BadId(s.to_string()));
                }
                <$int>::from_str_radix(s, 16).map($name).map_err(|_| FormatError::BadId(s.to_string()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
    };
}

hex_id!(BlobId, u128, 32);
hex_id!(PackId, u128, 32);
hex_id!(SnapshotId, u32, 8);

impl BlobId {
    /// A short form for messages.
    pub fn short(self) -> String {
        self.to_hex()[..12].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_validation() {
        let id = SnapshotId(0x03f9a1c2);
        assert_eq!(id.to_hex(), "03f9a1c2");
        assert_eq!(SnapshotId::from_hex("03f9a1c2").unwrap(), id);
        assert!(SnapshotId::from_hex("03F9A1C2").is_err());
        assert!(SnapshotId::from_hex("3f9a1c2").is_err());
        assert!(SnapshotId::from_hex("+3f9a1c2").is_err());
        let b = BlobId(u128::MAX - 5);
        assert_eq!(BlobId::from_hex(&b.to_hex()).unwrap(), b);
    }
}
