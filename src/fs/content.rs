//! File content from a chunk list: which extents a byte range touches
//! (binary search over extent start offsets), and SEEK_DATA/SEEK_HOLE.

use super::FsError;
use crate::format::tree::Extent;

/// Start offset of every extent.
pub fn extent_starts(content: &[Extent]) -> Vec<u64> {
    let mut pos = 0;
    content
        .iter()
        .map(|x| {
            let start = pos;
            pos += x.len();
            start
        })
        .collect()
}

/// The extents overlapping `[offset, offset + len)`: (extent index, offset
/// inside the extent, bytes to take from it).
pub fn pieces(content: &[Extent], starts: &[u64], offset: u64, len: u64) -> Vec<(usize, u64, u64)> {
    let mut out = Vec::new();
    let end = offset.saturating_add(len);
    let mut i = starts.partition_point(|&s| s <= offset).saturating_sub(1);
    while i < content.len() && starts[i] < end {
        let x_start = starts[i];
        let x_end = x_start + content[i].len();
        let from = offset.max(x_start);
        let to = end.min(x_end);
        if to > from {
            out.push((i, from - x_start, to - from));
        }
        i += 1;
    }
    out
}

/// lseek(SEEK_DATA or SEEK_HOLE) over the recorded holes. The end of the
/// file counts as a hole.
pub fn seek(content: &[Extent], starts: &[u64], size: u64, offset: u64, data: bool) -> Result<u64, FsError> {
    if offset >= size {
        return Err(FsError::NoSeek);
    }
    let first = starts.partition_point(|&s| s <= offset).saturating_sub(1);
    for i in first..content.len() {
        let is_data = matches!(content[i], Extent::Data { .. });
        if is_data == data {
            return Ok(starts[i].max(offset));
        }
    }
    if data {
        Err(FsError::NoSeek)
    } else {
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::BlobId;

    fn data(len: u32) -> Extent {
        Extent::Data { id: BlobId(1), len }
    }

    #[test]
    fn pieces_cover_exactly_the_range() {
        let c = [data(10), Extent::Hole { len: 100 }, data(5)];
        let s = extent_starts(&c);
        assert_eq!(s, vec![0, 10, 110]);
        assert_eq!(pieces(&c, &s, 0, 10), vec![(0, 0, 10)]);
        assert_eq!(pieces(&c, &s, 5, 10), vec![(0, 5, 5), (1, 0, 5)]);
        assert_eq!(pieces(&c, &s, 105, 100), vec![(1, 95, 5), (2, 0, 5)]);
        assert_eq!(pieces(&c, &s, 115, 10), vec![]);
        assert_eq!(pieces(&c, &s, 200, 10), vec![]);
        assert_eq!(pieces(&[], &[], 0, 10), vec![]);
        let total: u64 = pieces(&c, &s, 0, 1 << 20).iter().map(|p| p.2).sum();
        assert_eq!(total, 115);
    }

    #[test]
    fn seek_data_and_hole() {
        let c = [data(10), Extent::Hole { len: 100 }, data(5), Extent::Hole { len: 20 }];
        let s = extent_starts(&c);
        let size = 135;
        assert_eq!(seek(&c, &s, size, 0, true), Ok(0));
        assert_eq!(seek(&c, &s, size, 3, false), Ok(10));
        assert_eq!(seek(&c, &s, size, 50, true), Ok(110));
        assert_eq!(seek(&c, &s, size, 50, false), Ok(50));
        assert_eq!(seek(&c, &s, size, 112, false), Ok(115));
        assert_eq!(seek(&c, &s, size, 120, true), Err(FsError::NoSeek));
        assert_eq!(seek(&c, &s, size, 135, false), Err(FsError::NoSeek));
        let dense = [data(10)];
        assert_eq!(seek(&dense, &[0], 10, 4, false), Ok(10));
    }
}
