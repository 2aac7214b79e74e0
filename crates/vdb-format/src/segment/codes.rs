//! The codes region (format 1.3): every row's RaBitQ code and factors, in
//! row order, after a 64-byte header; with the extended-codes flag
//! (format 1.4), every row's 8-bit code and its factors after them.
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 8 | `seed`: the rotation the codes were made with |
//! | 8 | 4 | `words`: `u64` words a code, `ceil(dim / 64)` |
//! | 12 | 52 | zero |
//! | 64 | `8 · words · rows` | the codes, row after row |
//! | after | `16 · rows` | the factors, 4 `f32` a row |
//! | after (1.4) | `dim · rows`, zero-padded to a multiple of 8 | the extended codes, `dim` bytes a row |
//! | after (1.4) | `8 · rows` | the extended factors, 2 `f32` a row |
//!
//! Every array starts 8-byte aligned (regions start 64-aligned), so they
//! are read in place from the map.

use vdb_core::{CODE_FACTORS, EXTENDED_FACTORS};

/// Bytes before the codes.
pub(crate) const HEADER: usize = 64;
/// Bytes of one row's factors.
pub(crate) const FACTOR_BYTES: usize = 4 * CODE_FACTORS;
/// Bytes of one row's extended factors.
pub(crate) const EXTENDED_FACTOR_BYTES: usize = 4 * EXTENDED_FACTORS;

/// Where each array of a codes region starts, relative to the region,
/// and how long the region is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) codes: usize,
    pub(crate) factors: usize,
    /// The extended codes and their factors, when kept.
    pub(crate) extended: Option<(usize, usize)>,
    pub(crate) len: usize,
}

/// The layout for `rows` codes of `words` words, with extended codes of
/// `dim` bytes when `extended`; `None` if it does not fit in `usize`.
pub(crate) fn layout(rows: usize, words: usize, dim: usize, extended: bool) -> Option<Layout> {
    let codes = HEADER;
    let factors = rows
        .checked_mul(words)?
        .checked_mul(8)?
        .checked_add(codes)?;
    let mut len = rows.checked_mul(FACTOR_BYTES)?.checked_add(factors)?;
    let extended = if extended {
        let bytes = len;
        let padded = rows.checked_mul(dim)?.checked_next_multiple_of(8)?;
        let ext_factors = bytes.checked_add(padded)?;
        len = rows
            .checked_mul(EXTENDED_FACTOR_BYTES)?
            .checked_add(ext_factors)?;
        Some((bytes, ext_factors))
    } else {
        None
    };
    Some(Layout {
        codes,
        factors,
        extended,
        len,
    })
}

/// The region's header.
pub(crate) fn header(seed: u64, words: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(&seed.to_le_bytes());
    h[8..12].copy_from_slice(&(words as u32).to_le_bytes());
    h
}

/// Reads a header: the seed and words, or the offset and reason it is bad.
pub(crate) fn parse_header(bytes: &[u8]) -> Result<(u64, usize), (usize, String)> {
    let (Some(seed), Some(words)) = (bytes.get(..8), bytes.get(8..12)) else {
        return Err((0, format!("{} bytes, shorter than its header", bytes.len())));
    };
    let mut s = [0u8; 8];
    s.copy_from_slice(seed);
    let mut w = [0u8; 4];
    w.copy_from_slice(words);
    if let Some(i) = bytes
        .get(12..HEADER)
        .and_then(|r| r.iter().position(|&b| b != 0))
    {
        return Err((12 + i, "reserved bytes are not zero".into()));
    }
    Ok((u64::from_le_bytes(s), u32::from_le_bytes(w) as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_are_aligned_and_sized() {
        for (rows, words, dim) in [(0, 1, 3), (1, 1, 3), (5, 2, 100), (7, 6, 384)] {
            let l = layout(rows, words, dim, true).unwrap();
            let (bytes, factors) = l.extended.unwrap();
            assert_eq!(l.factors, HEADER + 8 * words * rows);
            assert_eq!(bytes, l.factors + FACTOR_BYTES * rows);
            assert_eq!(factors % 8, 0);
            assert!(factors - bytes >= dim * rows && factors - bytes < dim * rows + 8);
            assert_eq!(l.len, factors + EXTENDED_FACTOR_BYTES * rows);
            let plain = layout(rows, words, dim, false).unwrap();
            assert_eq!(plain.extended, None);
            assert_eq!(plain.len, bytes);
        }
        assert_eq!(layout(usize::MAX / 2, 4, 3, false), None);
    }
}
