//! Pack files: immutable containers of compressed blocks of blobs.
//!
//! ```text
//! header   "CHKFPACK" version(1) salt(7)                     16 bytes
//! blocks   each lz4-compressed or raw, back to back
//! footer   envelope(PackFooter): every block and the blobs in it
//! trailer  footer_len(u64 LE) "CHKFTAIL"                      16 bytes
//! ```
//! The footer makes each pack self-describing, so the repository index can
//! always be rebuilt from the packs alone.

use super::envelope::{decode_payload, open_envelope, seal_envelope, ObjectKind, ENVELOPE_LEN};
use super::{BlobId, FormatError, FORMAT_VERSION};

/// Packs of a plain repository are unchanged since version 1 and still
/// written as such; an encrypted repository's packs (version 4) have sealed
/// blocks and a sealed footer.
const PACK_VERSION: u8 = 1;
const SEALED_PACK_VERSION: u8 = super::sealed::SEALED_VERSION;

const HEADER_MAGIC: &[u8; 8] = b"CHKFPACK";
const TRAILER_MAGIC: &[u8; 8] = b"CHKFTAIL";
pub const HEADER_LEN: usize = 16;
pub const TRAILER_LEN: usize = 16;

/// No block may claim to expand to more than this (guards allocations
/// against hostile footers). A tree lists every chunk of every file in its
/// directory (about 20 bytes per 16 KiB chunk), so this bounds a directory's
/// files to roughly 800 GiB together; a save beyond that fails cleanly.
pub const MAX_BLOCK_RAW: u32 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, bitcode::Encode, bitcode::Decode)]
pub enum BlobKind {
    Data,
    Tree,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub enum Codec {
    Raw,
    Lz4,
}

#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub struct BlobEntry {
    pub id: BlobId,
    pub kind: BlobKind,
    /// Offset of the blob inside the decompressed block.
    pub offset: u32,
    pub len: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, bitcode::Encode, bitcode::Decode)]
pub struct BlockInfo {
    /// Offset of the stored block from the start of the pack file.
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    pub codec: Codec,
    pub blobs: Vec<BlobEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, bitcode::Encode, bitcode::Decode)]
pub struct PackFooter {
    pub blocks: Vec<BlockInfo>,
}

/// A block ready to be appended to a pack.
#[derive(Debug, Clone)]
pub struct SealedBlock {
    pub codec: Codec,
    pub raw_len: u32,
    pub bytes: Vec<u8>,
    pub blobs: Vec<BlobEntry>,
}

/// Compresses `raw` with lz4, keeping it raw when that saves too little
/// to be worth decompressing.
pub fn seal_block(raw: &[u8], blobs: Vec<BlobEntry>) -> SealedBlock {
    seal_block_owned(raw.to_vec(), blobs).0
}

/// [`seal_block`] of a buffer it may keep: stored raw, the buffer becomes
/// the block; compressed, it comes back for reuse.
pub fn seal_block_owned(raw: Vec<u8>, blobs: Vec<BlobEntry>) -> (SealedBlock, Option<Vec<u8>>) {
    let raw_len = raw.len() as u32;
    // Not `compress_into` a zeroed buffer: zeroing it cost as much as
    // copying the block.
    let out = lz4_flex::block::compress(&raw);
    if out.len() + out.len() / 32 < raw.len() {
        (SealedBlock { codec: Codec::Lz4, raw_len, bytes: out, blobs }, Some(raw))
    } else {
        (SealedBlock { codec: Codec::Raw, raw_len, bytes: raw, blobs }, None)
    }
}

/// lz4 turns one stored byte into at most 255 raw bytes (a long match
/// costs one length byte per 255 bytes), plus a few at the start.
pub fn max_raw_len(codec: Codec, stored_len: u64) -> u64 {
    match codec {
        Codec::Raw => stored_len,
        Codec::Lz4 => stored_len.saturating_mul(255).saturating_add(16),
    }
}

/// The most a stored block of `raw_len` raw bytes may take: lz4 never
/// expands by more than 1/255 plus a little, and sealing adds its padding,
/// nonce and tag.
pub fn max_stored_len(raw_len: u64) -> u64 {
    super::sealed::sealed_len_bound(raw_len + raw_len / 255 + 64)
}

/// Decompresses a stored block into its raw bytes. The raw length is
/// checked against what the stored bytes can possibly expand to before
/// anything is allocated for it.
pub fn open_block(codec: Codec, raw_len: u32, stored: &[u8]) -> Result<Vec<u8>, FormatError> {
    if raw_len > MAX_BLOCK_RAW || u64::from(raw_len) > max_raw_len(codec, stored.len() as u64) {
        return Err(invalid("block", format!("raw length {raw_len} is impossible for {} stored bytes", stored.len())));
    }
    match codec {
        Codec::Raw if stored.len() == raw_len as usize => Ok(stored.to_vec()),
        Codec::Raw => Err(invalid("block", "raw block has the wrong length".into())),
        Codec::Lz4 => {
            let mut out = vec![0u8; raw_len as usize];
            match lz4_flex::block::decompress_into(stored, &mut out) {
                Ok(n) if n == raw_len as usize => Ok(out),
                Ok(n) => Err(invalid("block", format!("decompressed to {n} bytes, expected {raw_len}"))),
                Err(e) => Err(invalid("block", e.to_string())),
            }
        }
    }
}

/// Like [`open_block`], taking the stored bytes by value: a raw block is
/// returned as it is, without a copy.
pub fn open_block_owned(codec: Codec, raw_len: u32, stored: Vec<u8>) -> Result<Vec<u8>, FormatError> {
    match codec {
        Codec::Raw if stored.len() == raw_len as usize && raw_len <= MAX_BLOCK_RAW => Ok(stored),
        _ => open_block(codec, raw_len, &stored),
    }
}

/// Builds a pack in memory, block by block.
pub struct PackBuilder {
    bytes: Vec<u8>,
    footer: PackFooter,
    /// About how long the footer will be encoded.
    footer_estimate: usize,
}

/// Writers start a new pack before its footer grows past this (a pack of
/// tiny distinct files has one footer entry per file); readers refuse a
/// footer longer than [`MAX_FOOTER`] before allocating anything for it.
pub const FOOTER_TARGET: usize = 64 << 20;
pub const MAX_FOOTER: u64 = 256 << 20;

impl Default for PackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PackBuilder {
    pub fn new() -> Self {
        Self::with_capacity(64 << 10)
    }

    /// A builder whose buffer holds `capacity` bytes without reallocating.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_buffer(Vec::with_capacity(capacity.max(HEADER_LEN)))
    }

    /// A builder that reuses `bytes`' allocation (its contents are dropped).
    pub fn with_buffer(mut bytes: Vec<u8>) -> Self {
        bytes.clear();
        bytes.extend_from_slice(HEADER_MAGIC);
        bytes.push(PACK_VERSION);
        bytes.extend_from_slice(&[0; 7]);
        Self { bytes, footer: PackFooter::default(), footer_estimate: ENVELOPE_LEN }
    }

    /// Marks the pack as an encrypted repository's: every block added must
    /// be sealed, and [`PackBuilder::finish_sealed`] finishes it.
    pub fn set_sealed(&mut self) {
        self.bytes[8] = SEALED_PACK_VERSION;
    }

    pub fn add(&mut self, block: SealedBlock) {
        self.footer_estimate += 32 + 40 * block.blobs.len();
        self.footer.blocks.push(BlockInfo {
            offset: self.bytes.len() as u64,
            stored_len: block.bytes.len() as u32,
            raw_len: block.raw_len,
            codec: block.codec,
            blobs: block.blobs,
        });
        self.bytes.extend_from_slice(&block.bytes);
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// An upper estimate of the footer's encoded length so far.
    pub fn footer_estimate(&self) -> usize {
        self.footer_estimate
    }

    pub fn is_empty(&self) -> bool {
        self.footer.blocks.is_empty()
    }

    /// Appends footer and trailer; returns the pack bytes and its footer.
    pub fn finish(self) -> Result<(Vec<u8>, PackFooter), FormatError> {
        let footer = seal_envelope(ObjectKind::PackFooter, &bitcode::encode(&self.footer))?;
        Ok(self.append_footer(&footer))
    }

    /// Finishes an encrypted repository's pack: its blocks in a random
    /// order (so that their order does not follow the files they hold), and
    /// its footer sealed. The shuffled pack is built in `scratch`; the
    /// builder's own buffer comes back as the next scratch, so that a
    /// writer of many packs does not have the kernel hand out (and zero)
    /// a fresh 32 MiB for each.
    pub fn finish_sealed(
        mut self,
        cipher: &super::sealed::Cipher,
        scratch: Vec<u8>,
    ) -> Result<(Vec<u8>, PackFooter, Vec<u8>), FormatError> {
        let old = self.shuffle_blocks(scratch)?;
        let footer = seal_envelope(ObjectKind::PackFooter, &bitcode::encode(&self.footer))?;
        let footer = cipher.seal_object(ObjectKind::PackFooter, b"", &footer)?;
        let (bytes, footer) = self.append_footer(&footer);
        Ok((bytes, footer, old))
    }

    fn append_footer(mut self, footer: &[u8]) -> (Vec<u8>, PackFooter) {
        self.bytes.extend_from_slice(footer);
        self.bytes.extend_from_slice(&(footer.len() as u64).to_le_bytes());
        self.bytes.extend_from_slice(TRAILER_MAGIC);
        (self.bytes, self.footer)
    }

    /// Rebuilds the pack's bytes in `scratch` with the blocks in a random
    /// order; returns the buffer they were in.
    fn shuffle_blocks(&mut self, mut scratch: Vec<u8>) -> Result<Vec<u8>, FormatError> {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).map_err(|e| invalid("pack", format!("no randomness: {e}")))?;
        let mut state = u64::from_le_bytes(seed);
        let mut next = move || {
            // splitmix64: the order needs to be unpredictable to a reader of
            // the pack, not to be a key.
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let blocks = &mut self.footer.blocks;
        for i in (1..blocks.len()).rev() {
            blocks.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        scratch.clear();
        scratch.reserve(self.bytes.len() + self.footer_estimate + TRAILER_LEN);
        scratch.extend_from_slice(&self.bytes[..HEADER_LEN]);
        for b in blocks.iter_mut() {
            let from = b.offset as usize;
            b.offset = scratch.len() as u64;
            scratch.extend_from_slice(&self.bytes[from..from + b.stored_len as usize]);
        }
        Ok(std::mem::replace(&mut self.bytes, scratch))
    }
}

/// Sets the salt bytes (header bytes 9..16) of a finished pack. A writer
/// whose pack has the same bytes, and so the same name, as one already
/// stored (which can only be a damaged copy being healed) stores it under
/// the name of its salted bytes instead.
pub fn salt_pack(pack: &mut [u8], salt: u64) {
    pack[9..16].copy_from_slice(&salt.to_le_bytes()[..7]);
}

/// Reads the trailer (the last TRAILER_LEN bytes of a pack of `pack_len`
/// bytes) and returns where the footer starts and how long it is.
pub fn footer_location(trailer: &[u8], pack_len: u64) -> Result<(u64, usize), FormatError> {
    if trailer.len() != TRAILER_LEN || pack_len < (HEADER_LEN + TRAILER_LEN) as u64 {
        return Err(FormatError::Truncated(trailer.len()));
    }
    if &trailer[8..16] != TRAILER_MAGIC {
        return Err(FormatError::BadMagic);
    }
    let footer_len = u64::from_le_bytes(trailer[0..8].try_into().expect("8-byte slice"));
    let data_end = pack_len - TRAILER_LEN as u64;
    if footer_len > data_end - HEADER_LEN as u64 || footer_len > MAX_FOOTER {
        return Err(invalid("pack trailer", format!("footer length {footer_len} is impossible")));
    }
    Ok((data_end - footer_len, footer_len as usize))
}

/// Decodes a footer and checks that every block lies inside the data area
/// of a pack whose footer starts at `footer_start`.
pub fn decode_footer(bytes: &[u8], footer_start: u64) -> Result<PackFooter, FormatError> {
    let payload = open_envelope(ObjectKind::PackFooter, bytes)?;
    let footer: PackFooter = decode_payload("pack footer", payload)?;
    validate_blocks(&footer.blocks, footer_start)?;
    Ok(footer)
}

/// Checks a pack header; true for an encrypted repository's pack.
pub fn check_header(header: &[u8]) -> Result<bool, FormatError> {
    if header.len() < HEADER_LEN || &header[0..8] != HEADER_MAGIC {
        return Err(FormatError::BadMagic);
    }
    match header[8] {
        PACK_VERSION => Ok(false),
        SEALED_PACK_VERSION => Ok(true),
        newer if newer > FORMAT_VERSION => {
            Err(FormatError::UnsupportedVersion { found: newer, supported: FORMAT_VERSION })
        }
        other => Err(FormatError::Invalid { what: "pack", detail: format!("a pack header of version {other}") }),
    }
}

/// Every block must lie in `[HEADER_LEN, data_end)`, every blob inside its
/// block, and a block holds blobs of one kind; a footer or index that says
/// otherwise is damaged.
pub fn validate_blocks(blocks: &[BlockInfo], data_end: u64) -> Result<(), FormatError> {
    for b in blocks {
        if b.blobs.windows(2).any(|w| w[0].kind != w[1].kind) {
            return Err(invalid("pack footer", format!("block at {} mixes chunks and trees", b.offset)));
        }
        let end = b.offset.checked_add(u64::from(b.stored_len));
        if b.offset < HEADER_LEN as u64 || end.is_none_or(|e| e > data_end) {
            return Err(invalid("pack footer", format!("block at {} lies outside the pack", b.offset)));
        }
        let (raw, stored) = (u64::from(b.raw_len), u64::from(b.stored_len));
        if b.raw_len > MAX_BLOCK_RAW || stored > max_stored_len(raw) || raw > max_raw_len(b.codec, stored) {
            return Err(invalid("pack footer", format!("block at {} has impossible lengths", b.offset)));
        }
        for blob in &b.blobs {
            if u64::from(blob.offset) + u64::from(blob.len) > u64::from(b.raw_len) {
                return Err(invalid("pack footer", format!("blob {} lies outside its block", blob.id)));
            }
        }
    }
    Ok(())
}

fn invalid(what: &'static str, detail: String) -> FormatError {
    FormatError::Invalid { what, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(id: u128, offset: u32, len: u32) -> BlobEntry {
        BlobEntry { id: BlobId(id), kind: BlobKind::Data, offset, len }
    }

    #[test]
    fn block_round_trip_compressible_and_random() {
        let text = b"chkfs chkfs chkfs chkfs ".repeat(1000);
        let sealed = seal_block(&text, vec![blob(1, 0, text.len() as u32)]);
        assert_eq!(sealed.codec, Codec::Lz4);
        assert!(sealed.bytes.len() < text.len() / 4);
        assert_eq!(open_block(sealed.codec, sealed.raw_len, &sealed.bytes).unwrap(), text);

        let mut x = 0x9e3779b97f4a7c15u64;
        let noise: Vec<u8> = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let sealed = seal_block(&noise, vec![]);
        assert_eq!(sealed.codec, Codec::Raw);
        assert_eq!(open_block(sealed.codec, sealed.raw_len, &sealed.bytes).unwrap(), noise);
    }

    #[test]
    fn damaged_block_is_an_error_not_a_panic() {
        let text = b"abcdefgh".repeat(500);
        let sealed = seal_block(&text, vec![]);
        assert!(open_block(Codec::Lz4, sealed.raw_len + 1, &sealed.bytes).is_err());
        assert!(open_block(Codec::Lz4, sealed.raw_len, &sealed.bytes[..sealed.bytes.len() / 2]).is_err());
        assert!(open_block(Codec::Raw, 3, b"ab").is_err());
        assert!(open_block(Codec::Lz4, MAX_BLOCK_RAW + 1, b"").is_err());
        // Ten stored bytes cannot claim a gigabyte.
        assert!(open_block(Codec::Lz4, 1 << 30, &[0u8; 10]).is_err());
        let zeros = vec![0u8; 1 << 20];
        let sealed = seal_block(&zeros, vec![]);
        assert!(u64::from(sealed.raw_len) <= max_raw_len(Codec::Lz4, sealed.bytes.len() as u64), "real blocks pass");
        assert_eq!(open_block(sealed.codec, sealed.raw_len, &sealed.bytes).unwrap(), zeros);
    }

    #[test]
    fn pack_round_trip_through_trailer_and_footer() {
        let mut builder = PackBuilder::new();
        builder.add(seal_block(b"hello world", vec![blob(7, 0, 5), blob(8, 6, 5)]));
        builder.add(seal_block(&[0u8; 4096], vec![blob(9, 0, 4096)]));
        let (bytes, footer) = builder.finish().unwrap();
        check_header(&bytes).unwrap();
        let len = bytes.len() as u64;
        let (start, flen) = footer_location(&bytes[bytes.len() - TRAILER_LEN..], len).unwrap();
        let decoded = decode_footer(&bytes[start as usize..start as usize + flen], start).unwrap();
        assert_eq!(decoded, footer);
        let b = &decoded.blocks[0];
        let raw = open_block(b.codec, b.raw_len, &bytes[b.offset as usize..][..b.stored_len as usize]).unwrap();
        assert_eq!(&raw[6..11], b"world");
    }

    #[test]
    fn hostile_footers_are_rejected() {
        let bad = vec![BlockInfo { offset: 16, stored_len: 100, raw_len: 10, codec: Codec::Raw, blobs: vec![] }];
        assert!(validate_blocks(&bad, 50).is_err());
        let bad =
            vec![BlockInfo { offset: 16, stored_len: 10, raw_len: 10, codec: Codec::Raw, blobs: vec![blob(1, 5, 6)] }];
        assert!(validate_blocks(&bad, 50).is_err());
        let bad = vec![BlockInfo { offset: u64::MAX, stored_len: 10, raw_len: 10, codec: Codec::Raw, blobs: vec![] }];
        assert!(validate_blocks(&bad, 50).is_err());
        let bad = vec![BlockInfo { offset: 16, stored_len: 10, raw_len: 1 << 29, codec: Codec::Lz4, blobs: vec![] }];
        assert!(validate_blocks(&bad, 50).is_err(), "10 stored bytes claiming 512 MiB");
        let bad = vec![BlockInfo { offset: 16, stored_len: 10, raw_len: 11, codec: Codec::Raw, blobs: vec![] }];
        assert!(validate_blocks(&bad, 50).is_err(), "a raw block is as long stored as raw");
        let mut tree = blob(2, 1, 1);
        tree.kind = BlobKind::Tree;
        let mixed = vec![BlockInfo {
            offset: 16,
            stored_len: 10,
            raw_len: 10,
            codec: Codec::Raw,
            blobs: vec![blob(1, 0, 1), tree],
        }];
        assert!(validate_blocks(&mixed, 50).is_err(), "a block of chunks and trees");
        let mut t = [0u8; 16];
        t[0..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        t[8..].copy_from_slice(TRAILER_MAGIC);
        assert!(footer_location(&t, 1 << 41).is_err(), "a terabyte footer in a sparse pack");
        assert!(footer_location(&[0u8; 16], 100).is_err());
        let mut t = [0u8; 16];
        t[0..8].copy_from_slice(&1000u64.to_le_bytes());
        t[8..].copy_from_slice(TRAILER_MAGIC);
        assert!(footer_location(&t, 100).is_err());
    }
}
