//! `check --read-data`: every byte of every pack. A pack is read block by
//! block in file order and hashed as a whole, so its name (the hash of its
//! bytes) proves header, blocks, footer and trailer intact; each block is
//! decompressed and each blob hashed, so a damaged pack names the very
//! blob copies that are lost; and the pack's own footer must agree with
//! the index, so the packs can always be indexed again.

use crate::format::pack::{
    check_header, decode_footer, footer_location, open_block, BlobKind, HEADER_LEN, MAX_FOOTER, TRAILER_LEN,
};
use crate::format::{BlobId, PackId};
use crate::store::index::Index;
use crate::store::{Repository, StoreError};
use xxhash_rust::xxh3::Xxh3;

/// What reading one pack found.
#[derive(Default)]
pub struct PackResult {
    pub bytes_read: u64,
    pub blobs_verified: u64,
    /// Blob copies whose bytes are wrong: (kind, blob, reason).
    pub bad_copies: Vec<(BlobKind, BlobId, String)>,
    /// Damage to the pack outside its blobs (header, footer, trailer, gaps).
    pub structure: Vec<String>,
    /// The pack was gone when read (a concurrent gc may have deleted it).
    pub vanished: bool,
}

/// Reads that large a piece of a pack at a time, at most.
const PIECE: u64 = 8 << 20;

pub fn verify_pack(repo: &Repository, index: &Index, slot: u32) -> Result<PackResult, StoreError> {
    let pack = index.pack(slot);
    let mut out = PackResult::default();
    let mut hasher = Xxh3::new();
    let mut pos = 0u64;
    let mut read =
        |out: &mut PackResult, hasher: &mut Xxh3, offset: u64, len: u64| -> Result<Option<Vec<u8>>, StoreError> {
            match repo.read_pack_range(pack.id, offset, len as usize) {
                Ok(bytes) => {
                    hasher.update(&bytes);
                    out.bytes_read += len;
                    Ok(Some(bytes))
                }
                Err(e) if e.is_missing() => {
                    out.vanished = true;
                    Ok(None)
                }
                Err(e) if e.is_damage() => {
                    out.structure.push(format!("cannot be read at {offset}+{len}: {e}"));
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        };
    // A pack that cannot be read to its end is reported where reading
    // stopped; nothing unread is claimed damaged.
    let Some(header) = read(&mut out, &mut hasher, 0, HEADER_LEN as u64)? else { return Ok(out) };
    if let Err(e) = check_header(&header).and_then(|sealed| repo.check_pack_kind(sealed)) {
        out.structure.push(format!("header: {e}"));
    }
    pos += HEADER_LEN as u64;
    let mut blocks: Vec<u32> = index.blocks_of_pack(slot).collect();
    blocks.sort_by_key(|&b| index.block(b).offset);
    for b in blocks {
        let loc = index.block(b);
        if loc.offset != pos {
            // Bytes no block claims (a writer leaves none): damage, and not
            // read, whatever their length claims to be.
            out.structure.push(format!("bytes {pos}..{} belong to no block", loc.offset));
            if loc.offset < pos {
                continue;
            }
        }
        let Some(stored) = read(&mut out, &mut hasher, loc.offset, u64::from(loc.stored_len))? else {
            return Ok(out);
        };
        pos = loc.offset + u64::from(loc.stored_len);
        verify_block(repo, index, b, &stored, &mut out);
    }
    // Footer and trailer: what is left, if a footer can be that long.
    if pack.size.saturating_sub(pos) > MAX_FOOTER + TRAILER_LEN as u64 {
        out.structure.push(format!("{} bytes after its last block, more than a footer can be", pack.size - pos));
        return Ok(out);
    }
    let Some(rest) = read_through(&mut out, &mut hasher, &mut read, pos, pack.size)? else {
        return Ok(out);
    };
    check_footer(repo, index, slot, pos, &rest, &mut out);
    // Damaged blobs explain a wrong hash; otherwise the damage is in bytes
    // no blob covers.
    let unexplained = out.bad_copies.is_empty() && out.structure.is_empty();
    if unexplained && PackId(hasher.digest128()) != pack.id {
        out.structure.push("its bytes do not match its name (the hash of its content)".into());
    }
    Ok(out)
}

type ReadFn<'a> = dyn FnMut(&mut PackResult, &mut Xxh3, u64, u64) -> Result<Option<Vec<u8>>, StoreError> + 'a;

/// Reads `[from, to)` in pieces, hashing it; returns the bytes read.
fn read_through(
    out: &mut PackResult,
    hasher: &mut Xxh3,
    read: &mut ReadFn,
    from: u64,
    to: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut bytes = Vec::new();
    let mut at = from;
    while at < to {
        let len = (to - at).min(PIECE);
        match read(out, hasher, at, len)? {
            Some(piece) => bytes.extend_from_slice(&piece),
            None => return Ok(None),
        }
        at += len;
    }
    Ok(Some(bytes))
}

fn verify_block(repo: &Repository, index: &Index, b: u32, stored: &[u8], out: &mut PackResult) {
    let loc = index.block(b);
    let blobs = index.blobs_in_block(b);
    let kind = blobs.first().map_or(BlobKind::Data, |l| l.kind);
    let ids: Vec<crate::format::BlobId> = blobs.iter().map(|l| l.id).collect();
    let opened = crate::store::reader::check_block_len(repo, loc.raw_len, &blobs)
        .and_then(|()| repo.open_block_bytes(kind, &ids, stored.to_vec()))
        .and_then(|stored| open_block(loc.codec, loc.raw_len, &stored));
    let raw = match opened {
        Ok(raw) => raw,
        Err(e) => {
            let why = format!("its block does not decompress: {e}");
            out.bad_copies.extend(index.blobs_in_block(b).iter().map(|l| (l.kind, l.id, why.clone())));
            return;
        }
    };
    for l in index.blobs_in_block(b) {
        out.blobs_verified += 1;
        let content = raw.get(l.offset as usize..(l.offset as usize + l.len as usize));
        if content.is_none_or(|c| repo.blob_id(c) != l.id) {
            out.bad_copies.push((l.kind, l.id, "its content does not match its hash".into()));
        }
    }
}

/// The footer at the end of the pack must decode and list exactly the
/// blocks the index lists for it.
fn check_footer(repo: &Repository, index: &Index, slot: u32, footer_start: u64, rest: &[u8], out: &mut PackResult) {
    let pack = index.pack(slot);
    if rest.len() < TRAILER_LEN {
        out.structure.push("its trailer is missing".into());
        return;
    }
    let trailer = &rest[rest.len() - TRAILER_LEN..];
    let located = footer_location(trailer, pack.size).and_then(|(start, len)| {
        if start != footer_start || len + TRAILER_LEN != rest.len() {
            return Err(crate::format::FormatError::Invalid {
                what: "pack trailer",
                detail: format!("it puts the footer at {start}, where the last block ends at {footer_start}"),
            });
        }
        let footer = match repo.cipher() {
            Some(c) => c.open_object(crate::format::ObjectKind::PackFooter, b"", &rest[..len])?,
            None => rest[..len].to_vec(),
        };
        decode_footer(&footer, start)
    });
    match located {
        Ok(footer) => {
            if footer.blocks != index.indexed_pack(slot).blocks {
                out.structure.push("its footer does not list what the index lists for it".into());
            }
        }
        Err(e) => out.structure.push(format!("footer or trailer: {e} (the pack cannot be indexed again)")),
    }
}
