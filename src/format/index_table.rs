//! Index tables: the index as one flat, little-endian file that is searched
//! where it lies (through a memory map), so that opening an index costs
//! the same whatever the number of chunks.
//!
//! A table holds the packs, blocks and blobs of some index files in their
//! stored order (what gc and check walk), plus the blob positions sorted
//! by id under a fan-out table (what a lookup searches), as git's pack
//! `.idx` does. Tables are local, derived data: every one can be made
//! again from the index files it covers (see FORMAT.md, "Index tables").
//!
//! Every accessor is total: a position out of range reads as zeros and a
//! kind or codec byte that means nothing reads as None, so a damaged table
//! gives wrong locations (which a read refuses: blobs are checked against
//! their ids) and never a panic.

use super::pack::{BlobKind, BlockInfo, Codec};
use super::records::IndexedPack;
use super::{BlobId, FormatError, PackId};
use std::io::{self, Seek, SeekFrom, Write};
use std::ops::Range;
use xxhash_rust::xxh3::{xxh3_64, Xxh3Default};

pub const TABLE_MAGIC: &[u8; 8] = b"CHKFSIDX";
pub const TABLE_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 80;
const RECORD_LEN: u64 = 32;
/// A sorted entry: the blob's id, position and kind (and 3 zero bytes). A
/// search and a merge read only these, contiguous, never the blob records
/// (which lie in pack order, all over the table).
const SORTED_LEN: u64 = 24;
/// The fan-out table never grows past 2^22 buckets (16 MiB): at 100 M
/// blobs a bucket holds about 24, five comparisons.
const MAX_FANOUT_BITS: u32 = 22;
const MIN_FANOUT_BITS: u32 = 8;
/// Header flag: the table holds only tree blobs (every pack is listed).
pub const TREES_ONLY: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableHeader {
    pub flags: u32,
    pub covers: u64,
    pub packs: u64,
    pub blocks: u64,
    pub blobs: u64,
    pub fanout_bits: u32,
    pub body_checksum: u128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PackRecord {
    pub id: PackId,
    pub size: u64,
    pub first_block: u32,
    pub block_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockRecord {
    pub offset: u64,
    pub pack: u32,
    pub stored_len: u32,
    pub raw_len: u32,
    pub first_blob: u32,
    pub blob_count: u32,
    pub codec: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlobRecord {
    pub id: BlobId,
    pub block: u32,
    pub offset: u32,
    pub len: u32,
    pub kind: u8,
}

pub fn kind_byte(kind: BlobKind) -> u8 {
    match kind {
        BlobKind::Data => 0,
        BlobKind::Tree => 1,
    }
}

pub fn kind_of(byte: u8) -> Option<BlobKind> {
    match byte {
        0 => Some(BlobKind::Data),
        1 => Some(BlobKind::Tree),
        _ => None,
    }
}

pub fn codec_byte(codec: Codec) -> u8 {
    match codec {
        Codec::Raw => 0,
        Codec::Lz4 => 1,
    }
}

pub fn codec_of(byte: u8) -> Option<Codec> {
    match byte {
        0 => Some(Codec::Raw),
        1 => Some(Codec::Lz4),
        _ => None,
    }
}

/// Where each section starts, from the counts in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    covers: usize,
    packs: usize,
    blocks: usize,
    blobs: usize,
    sorted: usize,
    pack_order: usize,
    fanout: usize,
    end: usize,
}

fn pad8(n: u64) -> u64 {
    n.div_ceil(8) * 8
}

impl TableHeader {
    fn layout(&self) -> Option<Layout> {
        let mut at = HEADER_LEN as u64;
        let mut next = |len: Option<u64>| -> Option<usize> {
            let start = at;
            at = at.checked_add(pad8(len?))?;
            usize::try_from(start).ok()
        };
        let covers = next(self.covers.checked_mul(16))?;
        let packs = next(self.packs.checked_mul(RECORD_LEN))?;
        let blocks = next(self.blocks.checked_mul(RECORD_LEN))?;
        let blobs = next(self.blobs.checked_mul(RECORD_LEN))?;
        let sorted = next(self.blobs.checked_mul(SORTED_LEN))?;
        let pack_order = next(self.packs.checked_mul(4))?;
        let fanout = next(4u64.checked_shl(self.fanout_bits))?;
        Some(Layout { covers, packs, blocks, blobs, sorted, pack_order, fanout, end: usize::try_from(at).ok()? })
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(TABLE_MAGIC);
        h[8..12].copy_from_slice(&TABLE_VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&self.flags.to_le_bytes());
        h[16..24].copy_from_slice(&self.covers.to_le_bytes());
        h[24..32].copy_from_slice(&self.packs.to_le_bytes());
        h[32..40].copy_from_slice(&self.blocks.to_le_bytes());
        h[40..48].copy_from_slice(&self.blobs.to_le_bytes());
        h[48..52].copy_from_slice(&self.fanout_bits.to_le_bytes());
        h[56..72].copy_from_slice(&self.body_checksum.to_le_bytes());
        let sum = xxh3_64(&h[..72]);
        h[72..80].copy_from_slice(&sum.to_le_bytes());
        h
    }

    pub fn decode(bytes: &[u8]) -> Result<TableHeader, FormatError> {
        let invalid = |detail: &str| FormatError::Invalid { what: "index table", detail: detail.into() };
        let h = bytes.get(..HEADER_LEN).ok_or_else(|| invalid("shorter than its header"))?;
        if &h[..8] != TABLE_MAGIC {
            return Err(invalid("not an index table"));
        }
        let version = u32_at(h, 8);
        if version > TABLE_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: version.min(255) as u8,
                supported: TABLE_VERSION as u8,
            });
        }
        if version == 0 {
            return Err(invalid("version 0"));
        }
        if u64_at(h, 72) != xxh3_64(&h[..72]) {
            return Err(invalid("header checksum mismatch"));
        }
        let header = TableHeader {
            flags: u32_at(h, 12),
            covers: u64_at(h, 16),
            packs: u64_at(h, 24),
            blocks: u64_at(h, 32),
            blobs: u64_at(h, 40),
            fanout_bits: u32_at(h, 48),
            body_checksum: u128_at(h, 56),
        };
        if header.flags & !TREES_ONLY != 0 || !(MIN_FANOUT_BITS..=MAX_FANOUT_BITS).contains(&header.fanout_bits) {
            return Err(invalid("unknown flags or fan-out size"));
        }
        // Positions are 32-bit: a larger table is never written.
        if [header.packs, header.blocks, header.blobs].iter().any(|&n| n > u64::from(u32::MAX)) {
            return Err(invalid("more than 2^32 records"));
        }
        Ok(header)
    }
}

fn fanout_bits(blobs: u64) -> u32 {
    (64 - blobs.leading_zeros()).saturating_sub(2).clamp(MIN_FANOUT_BITS, MAX_FANOUT_BITS)
}

fn bucket(id: BlobId, bits: u32) -> usize {
    (id.0 >> (128 - bits)) as usize
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).map_or(0, |s| u32::from_le_bytes(s.try_into().unwrap_or_default()))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or_default()))
}

fn u128_at(b: &[u8], at: usize) -> u128 {
    b.get(at..at + 16).map_or(0, |s| u128::from_le_bytes(s.try_into().unwrap_or_default()))
}

/// What [`TableView::open`] found, kept beside bytes that do not move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableParts {
    pub header: TableHeader,
    layout: Layout,
}

/// A table's bytes, read in place.
#[derive(Clone, Copy)]
pub struct TableView<'a> {
    bytes: &'a [u8],
    pub header: TableHeader,
    layout: Layout,
}

impl<'a> TableView<'a> {
    /// Checks the header and that the sections fill the bytes exactly;
    /// the body is not read (see [`TableView::verify_body`]).
    pub fn open(bytes: &'a [u8]) -> Result<TableView<'a>, FormatError> {
        let header = TableHeader::decode(bytes)?;
        let layout = header
            .layout()
            .filter(|l| l.end == bytes.len())
            .ok_or(FormatError::Invalid { what: "index table", detail: "its size does not match its counts".into() })?;
        Ok(TableView { bytes, header, layout })
    }

    /// The view as plain values, to make it [`TableView::again`] later.
    pub fn parts(&self) -> TableParts {
        TableParts { header: self.header, layout: self.layout }
    }

    pub fn from_parts(bytes: &'a [u8], parts: TableParts) -> TableView<'a> {
        TableView { bytes, header: parts.header, layout: parts.layout }
    }

    pub fn verify_body(&self) -> Result<(), FormatError> {
        let body = self.bytes.get(HEADER_LEN..).unwrap_or_default();
        if xxhash_rust::xxh3::xxh3_128(body) != self.header.body_checksum {
            return Err(FormatError::Invalid { what: "index table", detail: "body checksum mismatch".into() });
        }
        Ok(())
    }

    pub fn trees_only(&self) -> bool {
        self.header.flags & TREES_ONLY != 0
    }

    pub fn pack_count(&self) -> u32 {
        self.header.packs as u32
    }

    pub fn block_count(&self) -> u32 {
        self.header.blocks as u32
    }

    pub fn blob_count(&self) -> u32 {
        self.header.blobs as u32
    }

    /// The index files whose packs this table holds, sorted.
    pub fn covers(&self) -> impl Iterator<Item = PackId> + '_ {
        (0..self.header.covers as usize).map(|i| PackId(u128_at(self.bytes, self.layout.covers + 16 * i)))
    }

    pub fn pack(&self, slot: u32) -> PackRecord {
        if u64::from(slot) >= self.header.packs {
            return PackRecord::default();
        }
        let at = self.layout.packs + RECORD_LEN as usize * slot as usize;
        PackRecord {
            id: PackId(u128_at(self.bytes, at)),
            size: u64_at(self.bytes, at + 16),
            first_block: u32_at(self.bytes, at + 24),
            block_count: u32_at(self.bytes, at + 28),
        }
    }

    pub fn block(&self, n: u32) -> BlockRecord {
        if u64::from(n) >= self.header.blocks {
            return BlockRecord::default();
        }
        let at = self.layout.blocks + RECORD_LEN as usize * n as usize;
        BlockRecord {
            offset: u64_at(self.bytes, at),
            pack: u32_at(self.bytes, at + 8),
            stored_len: u32_at(self.bytes, at + 12),
            raw_len: u32_at(self.bytes, at + 16),
            first_blob: u32_at(self.bytes, at + 20),
            blob_count: u32_at(self.bytes, at + 24),
            codec: self.bytes.get(at + 28).copied().unwrap_or(0),
        }
    }

    pub fn blob(&self, pos: u32) -> BlobRecord {
        if u64::from(pos) >= self.header.blobs {
            return BlobRecord::default();
        }
        let at = self.layout.blobs + RECORD_LEN as usize * pos as usize;
        BlobRecord {
            id: BlobId(u128_at(self.bytes, at)),
            block: u32_at(self.bytes, at + 16),
            offset: u32_at(self.bytes, at + 20),
            len: u32_at(self.bytes, at + 24),
            kind: self.bytes.get(at + 28).copied().unwrap_or(0),
        }
    }

    /// The blobs of block `n`, bounded by the table.
    pub fn blobs_of_block(&self, n: u32) -> Range<u32> {
        clamp(self.block(n).first_blob, self.block(n).blob_count, self.blob_count())
    }

    /// The blocks of pack `slot`, bounded by the table.
    pub fn blocks_of_pack(&self, slot: u32) -> Range<u32> {
        let p = self.pack(slot);
        clamp(p.first_block, p.block_count, self.block_count())
    }

    /// The position of the `i`th blob in id order.
    pub fn sorted(&self, i: u32) -> u32 {
        u32_at(self.bytes, self.layout.sorted + SORTED_LEN as usize * i as usize + 16)
    }

    /// The (id, kind) of the `i`th blob in id order.
    pub fn key_of_sorted(&self, i: u32) -> (u128, u8) {
        let at = self.layout.sorted + SORTED_LEN as usize * i as usize;
        (u128_at(self.bytes, at), self.bytes.get(at + 20).copied().unwrap_or(0))
    }

    /// The sorted entries (indexes into [`TableView::sorted`]) of the
    /// blob's copies.
    pub fn find(&self, kind: BlobKind, id: BlobId) -> Range<u32> {
        let b = bucket(id, self.header.fanout_bits);
        let fan = |i: usize| u32_at(self.bytes, self.layout.fanout + 4 * i).min(self.blob_count());
        let end = fan(b);
        let start = if b == 0 { 0 } else { fan(b - 1).min(end) };
        let key = (id.0, kind_byte(kind));
        let (mut lo, mut hi) = (start, end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.key_of_sorted(mid) < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let first = lo;
        let mut last = first;
        while last < end && self.key_of_sorted(last) == key {
            last += 1;
        }
        first..last
    }

    /// The `i`th pack slot in id order.
    pub fn pack_in_order(&self, i: u32) -> u32 {
        u32_at(self.bytes, self.layout.pack_order + 4 * i as usize)
    }

    /// The slot of pack `id`, by binary search of the pack order.
    pub fn find_pack(&self, id: PackId) -> Option<u32> {
        let slot = |i: u32| u32_at(self.bytes, self.layout.pack_order + 4 * i as usize);
        let (mut lo, mut hi) = (0, self.pack_count());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.pack(slot(mid)).id < id {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (lo < self.pack_count() && self.pack(slot(lo)).id == id).then(|| slot(lo))
    }

    /// True when the pack's blocks name it, and their blobs name their
    /// block, as the table's own writer made them (a lookup goes from a
    /// blob to its block, a walk from a block to its blobs).
    pub fn pack_is_consistent(&self, slot: u32) -> bool {
        self.blocks_of_pack(slot)
            .all(|n| self.block(n).pack == slot && self.blobs_of_block(n).all(|pos| self.blob(pos).block == n))
    }

    /// The pack as its index file lists it (blobs of unknown kind and
    /// blocks of unknown codec are left out: no writer made them).
    pub fn indexed_pack(&self, slot: u32) -> IndexedPack {
        let meta = self.pack(slot);
        let blocks = self
            .blocks_of_pack(slot)
            .filter_map(|n| {
                let b = self.block(n);
                let blobs = self
                    .blobs_of_block(n)
                    .filter_map(|pos| {
                        let r = self.blob(pos);
                        let kind = kind_of(r.kind)?;
                        Some(super::pack::BlobEntry { id: r.id, kind, offset: r.offset, len: r.len })
                    })
                    .collect();
                let codec = codec_of(b.codec)?;
                Some(BlockInfo { offset: b.offset, stored_len: b.stored_len, raw_len: b.raw_len, codec, blobs })
            })
            .collect();
        IndexedPack { id: meta.id, size: meta.size, blocks }
    }
}

fn clamp(first: u32, count: u32, len: u32) -> Range<u32> {
    let start = first.min(len);
    start..first.saturating_add(count).min(len)
}

/// The parts of a table before its lookup sections, as plain records.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TableRecords {
    pub covers: Vec<PackId>,
    pub packs: Vec<PackRecord>,
    pub blocks: Vec<BlockRecord>,
    pub blobs: Vec<BlobRecord>,
}

impl TableRecords {
    /// Appends the packs (those in `skip` are left out), keeping the blocks
    /// `keep` accepts.
    pub fn add_packs<'p>(
        &mut self,
        packs: impl IntoIterator<Item = &'p IndexedPack>,
        keep: impl Fn(&BlockInfo) -> bool,
        mut skip: impl FnMut(PackId) -> bool,
    ) {
        for pack in packs {
            if skip(pack.id) {
                continue;
            }
            let first_block = self.blocks.len() as u32;
            for block in pack.blocks.iter().filter(|b| keep(b)) {
                self.blocks.push(BlockRecord {
                    offset: block.offset,
                    pack: self.packs.len() as u32,
                    stored_len: block.stored_len,
                    raw_len: block.raw_len,
                    first_blob: self.blobs.len() as u32,
                    blob_count: block.blobs.len() as u32,
                    codec: codec_byte(block.codec),
                });
                let block_no = self.blocks.len() as u32 - 1;
                self.blobs.extend(block.blobs.iter().map(|b| BlobRecord {
                    id: b.id,
                    block: block_no,
                    offset: b.offset,
                    len: b.len,
                    kind: kind_byte(b.kind),
                }));
            }
            let block_count = self.blocks.len() as u32 - first_block;
            self.packs.push(PackRecord { id: pack.id, size: pack.size, first_block, block_count });
        }
    }

    /// Encodes the table (sorting its lookup sections) into `out`.
    pub fn encode(&self, flags: u32) -> Result<Vec<u8>, FormatError> {
        let mut out = io::Cursor::new(Vec::new());
        let mut sorted: Vec<u32> = (0..self.blobs.len() as u32).collect();
        sorted.sort_unstable_by_key(|&p| {
            let b = &self.blobs[p as usize];
            (b.id.0, b.kind, p)
        });
        let mut pack_order: Vec<u32> = (0..self.packs.len() as u32).collect();
        pack_order.sort_by_key(|&s| (self.packs[s as usize].id, s));
        let mut covers = self.covers.clone();
        covers.sort();
        covers.dedup();
        let mut w =
            TableWriter::start(&mut out, flags, covers.len(), self.packs.len(), self.blocks.len(), self.blobs.len())
                .map_err(io_err)?;
        covers.iter().try_for_each(|c| w.cover(*c)).map_err(io_err)?;
        w.end_section().map_err(io_err)?;
        self.packs.iter().try_for_each(|p| w.pack(p)).map_err(io_err)?;
        w.end_section().map_err(io_err)?;
        self.blocks.iter().try_for_each(|b| w.block(b)).map_err(io_err)?;
        w.end_section().map_err(io_err)?;
        self.blobs.iter().try_for_each(|b| w.blob(b)).map_err(io_err)?;
        w.end_section().map_err(io_err)?;
        for &p in &sorted {
            let b = &self.blobs[p as usize];
            w.sorted(p, b.id, b.kind).map_err(io_err)?;
        }
        w.end_section().map_err(io_err)?;
        pack_order.iter().try_for_each(|&s| w.u32(s)).map_err(io_err)?;
        w.end_section().map_err(io_err)?;
        w.finish().map_err(io_err)?;
        Ok(out.into_inner())
    }
}

fn io_err(e: io::Error) -> FormatError {
    FormatError::Invalid { what: "index table", detail: format!("writing: {e}") }
}

/// Writes a table section by section, in order, hashing as it goes; the
/// fan-out table is counted from the sorted positions and the header is
/// written last. Memory: the fan-out table only.
pub struct TableWriter<W: Write + Seek> {
    out: W,
    header: TableHeader,
    hash: Xxh3Default,
    written: u64,
    fanout: Vec<u32>,
}

impl<W: Write + Seek> TableWriter<W> {
    pub fn start(mut out: W, flags: u32, covers: usize, packs: usize, blocks: usize, blobs: usize) -> io::Result<Self> {
        let too_many = [packs, blocks, blobs].iter().any(|&n| n as u64 > u64::from(u32::MAX));
        if too_many {
            return Err(io::Error::other("an index table holds at most 2^32 records of each kind"));
        }
        out.write_all(&[0u8; HEADER_LEN])?;
        let bits = fanout_bits(blobs as u64);
        let header = TableHeader {
            flags,
            covers: covers as u64,
            packs: packs as u64,
            blocks: blocks as u64,
            blobs: blobs as u64,
            fanout_bits: bits,
            body_checksum: 0,
        };
        Ok(TableWriter { out, header, hash: Xxh3Default::new(), written: 0, fanout: vec![0; 1 << bits] })
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hash.update(bytes);
        self.written += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    pub fn u32(&mut self, n: u32) -> io::Result<()> {
        self.put(&n.to_le_bytes())
    }

    pub fn cover(&mut self, name: PackId) -> io::Result<()> {
        self.put(&name.0.to_le_bytes())
    }

    pub fn pack(&mut self, p: &PackRecord) -> io::Result<()> {
        let mut r = [0u8; RECORD_LEN as usize];
        r[..16].copy_from_slice(&p.id.0.to_le_bytes());
        r[16..24].copy_from_slice(&p.size.to_le_bytes());
        r[24..28].copy_from_slice(&p.first_block.to_le_bytes());
        r[28..32].copy_from_slice(&p.block_count.to_le_bytes());
        self.put(&r)
    }

    pub fn block(&mut self, b: &BlockRecord) -> io::Result<()> {
        let mut r = [0u8; RECORD_LEN as usize];
        r[..8].copy_from_slice(&b.offset.to_le_bytes());
        r[8..12].copy_from_slice(&b.pack.to_le_bytes());
        r[12..16].copy_from_slice(&b.stored_len.to_le_bytes());
        r[16..20].copy_from_slice(&b.raw_len.to_le_bytes());
        r[20..24].copy_from_slice(&b.first_blob.to_le_bytes());
        r[24..28].copy_from_slice(&b.blob_count.to_le_bytes());
        r[28] = b.codec;
        self.put(&r)
    }

    pub fn blob(&mut self, b: &BlobRecord) -> io::Result<()> {
        let mut r = [0u8; RECORD_LEN as usize];
        r[..16].copy_from_slice(&b.id.0.to_le_bytes());
        r[16..20].copy_from_slice(&b.block.to_le_bytes());
        r[20..24].copy_from_slice(&b.offset.to_le_bytes());
        r[24..28].copy_from_slice(&b.len.to_le_bytes());
        r[28] = b.kind;
        self.put(&r)
    }

    /// The next position in id order, whose blob has id `id` and kind
    /// byte `kind`.
    pub fn sorted(&mut self, pos: u32, id: BlobId, kind: u8) -> io::Result<()> {
        let b = bucket(id, self.header.fanout_bits);
        self.fanout[b] = self.fanout[b].saturating_add(1);
        let mut entry = [0u8; SORTED_LEN as usize];
        entry[..16].copy_from_slice(&id.0.to_le_bytes());
        entry[16..20].copy_from_slice(&pos.to_le_bytes());
        entry[20] = kind;
        self.put(&entry)
    }

    /// Pads the section written last to 8 bytes.
    pub fn end_section(&mut self) -> io::Result<()> {
        let pad = (pad8(self.written) - self.written) as usize;
        self.put(&[0u8; 8][..pad])
    }

    /// Writes the fan-out table and the header; returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        let mut total = 0u32;
        let fanout = std::mem::take(&mut self.fanout);
        let mut buf = Vec::with_capacity(fanout.len() * 4);
        for n in fanout {
            total = total.saturating_add(n);
            buf.extend_from_slice(&total.to_le_bytes());
        }
        self.put(&buf)?;
        let expected = self.header.layout().map(|l| l.end as u64 - HEADER_LEN as u64);
        if expected != Some(self.written) {
            return Err(io::Error::other("an index table's sections do not match its counts"));
        }
        self.header.body_checksum = self.hash.digest128();
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&self.header.encode())?;
        self.out.seek(SeekFrom::End(0))?;
        Ok(self.out)
    }
}

/// Writes one table holding every table of `inputs`, in order: records
/// are copied with their numbers shifted, and the sorted sections are
/// merged. Memory: the fan-out table, the packs' order and one cursor per
/// input, whatever the tables' sizes.
///
/// `release` is called every 65,536 records: the caller may drop the
/// inputs' pages from memory there.
pub fn merge_tables<W: Write + Seek>(inputs: &[TableView], out: W, release: &mut dyn FnMut()) -> io::Result<W> {
    let mut count = 0u32;
    let mut tick = || {
        count = count.wrapping_add(1);
        if count % (1 << 16) == 0 {
            release();
        }
    };
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let sum = |f: &dyn Fn(&TableView) -> u64| inputs.iter().map(f).sum::<u64>();
    let (packs, blocks, blobs) = (sum(&|t| t.header.packs), sum(&|t| t.header.blocks), sum(&|t| t.header.blobs));
    let too_many = [packs, blocks, blobs].iter().any(|&n| n > u64::from(u32::MAX));
    if too_many {
        return Err(io::Error::other("merged index table would hold more than 2^32 records"));
    }
    let mut covers: Vec<PackId> = inputs.iter().flat_map(|t| t.covers()).collect();
    covers.sort();
    covers.dedup();
    let flags = if inputs.iter().any(|t| t.trees_only()) { TREES_ONLY } else { 0 };
    let mut w = TableWriter::start(out, flags, covers.len(), packs as usize, blocks as usize, blobs as usize)?;
    covers.iter().try_for_each(|c| w.cover(*c))?;
    w.end_section()?;
    // Bases: where each input's packs, blocks and blobs start.
    let mut bases = Vec::with_capacity(inputs.len());
    let (mut p0, mut k0, mut b0) = (0u32, 0u32, 0u32);
    for t in inputs {
        bases.push((p0, k0, b0));
        p0 += t.pack_count();
        k0 += t.block_count();
        b0 += t.blob_count();
    }
    for (t, &(_, k0, _)) in inputs.iter().zip(&bases) {
        for slot in 0..t.pack_count() {
            let mut p = t.pack(slot);
            p.first_block = p.first_block.saturating_add(k0);
            w.pack(&p)?;
            tick();
        }
    }
    w.end_section()?;
    for (t, &(p0, _, b0)) in inputs.iter().zip(&bases) {
        for n in 0..t.block_count() {
            let mut b = t.block(n);
            b.pack = b.pack.saturating_add(p0);
            b.first_blob = b.first_blob.saturating_add(b0);
            w.block(&b)?;
            tick();
        }
    }
    w.end_section()?;
    for (t, &(_, k0, _)) in inputs.iter().zip(&bases) {
        for pos in 0..t.blob_count() {
            let mut b = t.blob(pos);
            b.block = b.block.saturating_add(k0);
            w.blob(&b)?;
            tick();
        }
    }
    w.end_section()?;
    let key = |t: usize, i: u32| {
        let (id, kind) = inputs[t].key_of_sorted(i);
        (id, kind, bases[t].2.saturating_add(inputs[t].sorted(i)))
    };
    // ((id, kind, merged position), input, index in its sorted section)
    type Cursor = ((u128, u8, u32), usize, u32);
    let mut heap: BinaryHeap<Reverse<Cursor>> =
        (0..inputs.len()).filter(|&t| inputs[t].blob_count() > 0).map(|t| Reverse((key(t, 0), t, 0))).collect();
    while let Some(Reverse(((id, kind, pos), t, i))) = heap.pop() {
        w.sorted(pos, BlobId(id), kind)?;
        tick();
        if i + 1 < inputs[t].blob_count() {
            heap.push(Reverse((key(t, i + 1), t, i + 1)));
        }
    }
    w.end_section()?;
    let mut order: Vec<(PackId, u32)> = inputs
        .iter()
        .zip(&bases)
        .flat_map(|(t, &(p0, _, _))| (0..t.pack_count()).map(move |s| (t.pack(s).id, p0 + s)))
        .collect();
    order.sort();
    order.iter().try_for_each(|&(_, s)| w.u32(s))?;
    w.end_section()?;
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::BlobEntry;

    pub fn sample() -> Vec<IndexedPack> {
        let blob = |id: u128, kind, offset| BlobEntry { id: BlobId(id), kind, offset, len: 10 };
        let block = |offset, codec, blobs| BlockInfo { offset, stored_len: 20, raw_len: 30, codec, blobs };
        vec![
            IndexedPack {
                id: PackId(7),
                size: 100,
                blocks: vec![
                    block(16, Codec::Lz4, vec![blob(5 << 120, BlobKind::Data, 0), blob(3, BlobKind::Data, 10)]),
                    block(36, Codec::Raw, vec![blob(3, BlobKind::Tree, 0)]),
                ],
            },
            IndexedPack {
                id: PackId(2),
                size: 50,
                blocks: vec![block(16, Codec::Raw, vec![blob(3, BlobKind::Data, 0)])],
            },
        ]
    }

    fn table(packs: &[IndexedPack]) -> Vec<u8> {
        let mut r = TableRecords { covers: vec![PackId(9), PackId(1)], ..Default::default() };
        r.add_packs(packs, |_| true, |_| false);
        r.encode(0).unwrap()
    }

    #[test]
    fn every_pack_and_blob_round_trips_and_is_found() {
        let packs = sample();
        let bytes = table(&packs);
        let t = TableView::open(&bytes).unwrap();
        t.verify_body().unwrap();
        assert_eq!(t.covers().collect::<Vec<_>>(), vec![PackId(1), PackId(9)]);
        for (slot, p) in packs.iter().enumerate() {
            assert_eq!(&t.indexed_pack(slot as u32), p);
            assert_eq!(t.find_pack(p.id), Some(slot as u32));
            for b in p.blocks.iter().flat_map(|b| &b.blobs) {
                assert!(!t.find(b.kind, b.id).is_empty(), "{:?}", b);
            }
        }
        assert_eq!(t.find(BlobKind::Data, BlobId(3)).len(), 2, "both copies");
        assert_eq!(t.find(BlobKind::Tree, BlobId(3)).len(), 1, "a tree is not a chunk");
        assert!(t.find(BlobKind::Data, BlobId(4)).is_empty());
        assert_eq!(t.find_pack(PackId(3)), None);
    }

    #[test]
    fn a_table_of_many_random_ids_finds_each_and_nothing_else() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u128;
        let mut next = || {
            x = x.wrapping_mul(0x2545_f491_4f6c_dd1d_2545_f491_4f6c_dd1d).wrapping_add(1);
            x
        };
        let blobs: Vec<BlobEntry> =
            (0..5000).map(|i| BlobEntry { id: BlobId(next()), kind: BlobKind::Data, offset: i, len: 1 }).collect();
        let pack = IndexedPack {
            id: PackId(1),
            size: 1,
            blocks: vec![BlockInfo { offset: 0, stored_len: 1, raw_len: 1, codec: Codec::Raw, blobs: blobs.clone() }],
        };
        let bytes = table(std::slice::from_ref(&pack));
        let t = TableView::open(&bytes).unwrap();
        for b in &blobs {
            let found = t.find(BlobKind::Data, b.id);
            assert_eq!(found.len(), 1);
            assert_eq!(t.blob(t.sorted(found.start)).offset, b.offset);
        }
        assert!((0..1000).all(|_| t.find(BlobKind::Data, BlobId(next())).is_empty()));
    }

    #[test]
    fn damaged_tables_are_refused_or_read_as_zeros_never_a_panic() {
        let bytes = table(&sample());
        assert!(TableView::open(&bytes[..bytes.len() - 1]).is_err(), "truncated");
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(TableView::open(&flipped).is_err(), "header checksum");
        let mut body = bytes.clone();
        let last = body.len() - 1;
        body[last] ^= 0xff;
        let t = TableView::open(&body).unwrap();
        assert!(t.verify_body().is_err());
        assert_eq!(t.pack(1000), PackRecord::default());
        assert_eq!(t.blobs_of_block(u32::MAX), 0..0);
        let mut newer = bytes;
        newer[8] = 2;
        let sum = xxh3_64(&newer[..72]);
        newer[72..80].copy_from_slice(&sum.to_le_bytes());
        assert!(matches!(TableView::open(&newer), Err(FormatError::UnsupportedVersion { .. })));
    }

    #[test]
    fn merged_tables_equal_one_table_of_all_their_packs() {
        let packs = sample();
        let one = table(&packs[..1]);
        let two = table(&packs[1..]);
        let views = [TableView::open(&one).unwrap(), TableView::open(&two).unwrap()];
        let merged = merge_tables(&views, io::Cursor::new(Vec::new()), &mut || {}).unwrap().into_inner();
        let whole = {
            let mut r = TableRecords { covers: vec![PackId(9), PackId(1)], ..Default::default() };
            r.add_packs(&packs, |_| true, |_| false);
            r.encode(0).unwrap()
        };
        assert_eq!(merged, whole, "a merge is byte for byte the table of everything");
        TableView::open(&merged).unwrap().verify_body().unwrap();
    }
}
