//! Content-defined chunking with FastCDC (v2020, normalization level 2).
//!
//! Boundaries depend only on content, so an insertion in the middle of a
//! file changes the chunks around it and leaves the rest shared.

use fastcdc::v2020::{FastCDC, Normalization};
use std::io::{self, Read};

/// Sizes the chunker cuts at. Stored in the repository config so that a
/// repository keeps its boundaries whatever the defaults become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSizes {
    pub min: usize,
    pub avg: usize,
    pub max: usize,
    /// Seeds the gear table (0: FastCDC's own table). An encrypted
    /// repository's seed comes from its keys, so that its cut points do not
    /// follow from the content alone.
    pub seed: u64,
}

impl ChunkSizes {
    /// Chosen by measurement: see FORMAT.md, "Chunk sizes".
    pub const DEFAULT: ChunkSizes = ChunkSizes { min: 4 << 10, avg: 16 << 10, max: 128 << 10, seed: 0 };
}

const LEVEL: Normalization = Normalization::Level2;

/// Cuts `data` (a whole region: its end is a boundary) into chunk lengths.
pub fn chunk_lengths(data: &[u8], sizes: ChunkSizes) -> impl Iterator<Item = usize> + '_ {
    FastCDC::with_level_and_seed(data, sizes.min, sizes.avg, sizes.max, LEVEL, sizes.seed).map(|c| c.length)
}

/// Streams `reader` (up to `limit` bytes) through the chunker, calling
/// `on_chunk` with each chunk's bytes. Holds at most `buf_size` bytes.
pub struct StreamChunker {
    sizes: ChunkSizes,
    buf: Vec<u8>,
}

impl StreamChunker {
    pub fn new(sizes: ChunkSizes) -> Self {
        Self { sizes, buf: Vec::new() }
    }

    /// Returns the number of bytes read. `on_chunk` may stop the stream by
    /// returning an error.
    pub fn run<R: Read>(
        &mut self,
        reader: &mut R,
        limit: u64,
        mut on_chunk: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<u64> {
        let cap = (self.sizes.max * 16).max(1 << 20);
        self.buf.resize(cap, 0);
        let mut filled = 0usize;
        let mut total = 0u64;
        let mut eof = false;
        loop {
            while !eof && filled < cap {
                let want = (cap - filled).min((limit - total) as usize);
                if want == 0 {
                    eof = true;
                    break;
                }
                match reader.read(&mut self.buf[filled..filled + want]) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        filled += n;
                        total += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if filled == 0 {
                return Ok(total);
            }
            let mut consumed = 0;
            let data = &self.buf[..filled];
            for len in chunk_lengths(data, self.sizes) {
                // A cut at the end of the buffer is only real at end of input.
                if consumed + len == filled && !eof {
                    break;
                }
                on_chunk(&data[consumed..consumed + len])?;
                consumed += len;
            }
            self.buf.copy_within(consumed..filled, 0);
            filled -= consumed;
            if eof && filled == 0 {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn stream_lengths(data: &[u8]) -> Vec<usize> {
        let mut lens = Vec::new();
        StreamChunker::new(ChunkSizes::DEFAULT)
            .run(&mut &data[..], u64::MAX, |c| {
                lens.push(c.len());
                Ok(())
            })
            .unwrap();
        lens
    }

    #[test]
    fn stream_and_slice_chunkers_agree() {
        let data = pseudo_random(5 << 20, 42);
        let slice: Vec<usize> = chunk_lengths(&data, ChunkSizes::DEFAULT).collect();
        assert_eq!(stream_lengths(&data), slice);
        assert_eq!(slice.iter().sum::<usize>(), data.len());
    }

    #[test]
    fn golden_cut_points_are_stable() {
        // Pinned boundaries: if fastcdc or the parameters move them, every
        // existing repository would lose its deduplication. Do not update
        // these without a format version change.
        let data = pseudo_random(256 << 10, 7);
        let lens: Vec<usize> = chunk_lengths(&data, ChunkSizes::DEFAULT).collect();
        assert_eq!(lens, GOLDEN);
    }

    const GOLDEN: &[usize] =
        &[7406, 15405, 21347, 4676, 16400, 18006, 27080, 20016, 17076, 16156, 24812, 18365, 6956, 23164, 16664, 8615];

    #[test]
    fn insertion_in_the_middle_keeps_most_chunks() {
        let data = pseudo_random(8 << 20, 99);
        let mut edited = data.clone();
        edited.splice(4 << 20..4 << 20, b"inserted bytes".iter().copied());
        let set = |d: &[u8]| -> std::collections::HashSet<Vec<u8>> {
            let mut off = 0;
            chunk_lengths(d, ChunkSizes::DEFAULT)
                .map(|l| {
                    off += l;
                    d[off - l..off].to_vec()
                })
                .collect()
        };
        let a = set(&data);
        let b = set(&edited);
        let new = b.difference(&a).count();
        assert!(b.len() > 200);
        assert!(new <= 3, "{new} of {} chunks changed", b.len());
    }

    #[test]
    fn limit_stops_reading() {
        let data = pseudo_random(100_000, 1);
        let mut got = 0;
        let n = StreamChunker::new(ChunkSizes::DEFAULT)
            .run(&mut &data[..], 70_000, |c| {
                got += c.len();
                Ok(())
            })
            .unwrap();
        assert_eq!((n, got), (70_000, 70_000));
    }
}
