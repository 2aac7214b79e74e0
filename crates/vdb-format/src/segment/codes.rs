//! The codes region (format 1.3): every row's RaBitQ code and factors
//! after a 64-byte header; with the extended-codes flag (format 1.4),
//! every row's 8-bit code and its factors too; with the blocked-codes
//! flag (format 1.5), the 1-bit codes in fast-scan blocks of 32 rows,
//! list after list, at the end.
//!
//! Format 1.5 (flag bit 5):
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 8 | `seed`: the rotation the codes were made with |
//! | 8 | 4 | `words`: `u64` words a code, `ceil(dim / 64)` |
//! | 12 | 4 | zero |
//! | 16 | 8 | `blocks`: `Σ ceil(rows of list l / 32)` over the lists |
//! | 24 | 40 | zero |
//! | 64 | `16 · rows` | the factors, 4 `f32` a row |
//! | after (1.4) | `dim · rows`, zero-padded to a multiple of 8 | the extended codes, `dim` bytes a row |
//! | after (1.4) | `8 · rows` | the extended factors, 2 `f32` a row |
//! | after | `256 · words · blocks` | the blocks, each list's from its first row, the last zero-padded |
//!
//! Formats 1.3 and 1.4 (no flag bit 5): the codes, `8 · words` bytes a
//! row in row order, between the header and the factors; `blocks` is 0.
//!
//! Every array starts 8-byte aligned (regions start 64-aligned), so they
//! are read in place from the map.

use vdb_core::distance::fastscan;
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
    /// The 1-bit codes: blocks (format 1.5) or rows.
    pub(crate) codes: usize,
    pub(crate) factors: usize,
    /// The extended codes and their factors, when kept.
    pub(crate) extended: Option<(usize, usize)>,
    pub(crate) len: usize,
}

/// How a region's 1-bit codes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codes {
    /// Row after row (formats 1.3 and 1.4).
    Rows,
    /// This many fast-scan blocks, at the end (format 1.5).
    Blocks(usize),
}

/// The layout for `rows` codes of `words` words laid out as `codes` says,
/// with extended codes of `dim` bytes when `extended`; `None` if it does
/// not fit in `usize`.
pub(crate) fn layout(
    rows: usize,
    words: usize,
    dim: usize,
    extended: bool,
    codes: Codes,
) -> Option<Layout> {
    let code_bytes = match codes {
        Codes::Rows => rows.checked_mul(words)?.checked_mul(8)?,
        Codes::Blocks(blocks) => blocks.checked_mul(fastscan::block_bytes(words))?,
    };
    let mut at = HEADER;
    let mut take = |len: usize| -> Option<usize> {
        let start = at;
        at = at.checked_add(len)?;
        Some(start)
    };
    let row_codes = match codes {
        Codes::Rows => Some(take(code_bytes)?),
        Codes::Blocks(_) => None,
    };
    let factors = take(rows.checked_mul(FACTOR_BYTES)?)?;
    let extended = if extended {
        let bytes = take(rows.checked_mul(dim)?.checked_next_multiple_of(8)?)?;
        let ext_factors = take(rows.checked_mul(EXTENDED_FACTOR_BYTES)?)?;
        Some((bytes, ext_factors))
    } else {
        None
    };
    let codes = match row_codes {
        Some(c) => c,
        None => take(code_bytes)?,
    };
    Some(Layout {
        codes,
        factors,
        extended,
        len: at,
    })
}

/// The region's header (format 1.5: with `blocks`).
pub(crate) fn header(seed: u64, words: usize, blocks: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(&seed.to_le_bytes());
    h[8..12].copy_from_slice(&(words as u32).to_le_bytes());
    h[16..24].copy_from_slice(&(blocks as u64).to_le_bytes());
    h
}

/// What a region's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) seed: u64,
    pub(crate) words: usize,
    /// 0 before format 1.5.
    pub(crate) blocks: u64,
}

/// Reads a header: its fields, or the offset and reason it is bad.
pub(crate) fn parse_header(bytes: &[u8]) -> Result<Header, (usize, String)> {
    // Little-endian fields of at most 8 bytes.
    let field = |range: std::ops::Range<usize>| -> Option<u64> {
        let b = bytes.get(range)?;
        Some(
            b.iter()
                .rev()
                .fold(0u64, |v, &byte| v << 8 | u64::from(byte)),
        )
    };
    let (Some(seed), Some(words), Some(blocks)) = (field(0..8), field(8..12), field(16..24)) else {
        return Err((0, format!("{} bytes, shorter than its header", bytes.len())));
    };
    let reserved = [12..16, 24..HEADER];
    for range in reserved {
        let start = range.start;
        if let Some(i) = bytes
            .get(range)
            .and_then(|r| r.iter().position(|&b| b != 0))
        {
            return Err((start + i, "reserved bytes are not zero".into()));
        }
    }
    Ok(Header {
        seed,
        words: words as usize,
        blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_are_aligned_and_sized() {
        for (rows, words, dim) in [(0, 1, 3), (1, 1, 3), (5, 2, 100), (7, 6, 384)] {
            let l = layout(rows, words, dim, true, Codes::Rows).unwrap();
            let (bytes, factors) = l.extended.unwrap();
            assert_eq!(l.factors, HEADER + 8 * words * rows);
            assert_eq!(bytes, l.factors + FACTOR_BYTES * rows);
            assert_eq!(factors % 8, 0);
            assert!(factors - bytes >= dim * rows && factors - bytes < dim * rows + 8);
            assert_eq!(l.len, factors + EXTENDED_FACTOR_BYTES * rows);
            let plain = layout(rows, words, dim, false, Codes::Rows).unwrap();
            assert_eq!(plain.extended, None);
            assert_eq!(plain.len, bytes);
            // Blocks after everything else, the rest where 1.3 and 1.4
            // put it less the row codes.
            let blocks = rows.div_ceil(32) + 1;
            let b = layout(rows, words, dim, true, Codes::Blocks(blocks)).unwrap();
            assert_eq!(b.factors, HEADER);
            assert_eq!(
                b.extended.map(|(x, f)| (x - b.factors, f - b.factors)),
                Some((bytes - l.factors, factors - l.factors))
            );
            assert_eq!(b.codes, l.len - 8 * words * rows);
            assert_eq!(b.len, b.codes + 256 * words * blocks);
            assert_eq!(b.codes % 8, 0);
            let plain = layout(rows, words, dim, false, Codes::Blocks(blocks)).unwrap();
            assert_eq!(
                (plain.factors, plain.codes),
                (HEADER, HEADER + FACTOR_BYTES * rows)
            );
        }
        assert_eq!(layout(usize::MAX / 2, 4, 3, false, Codes::Rows), None);
        assert_eq!(layout(1, 4, 3, false, Codes::Blocks(usize::MAX / 2)), None);
    }

    #[test]
    fn headers_round_trip_and_refuse_reserved_bytes() {
        let h = header(7, 6, 1 << 40);
        assert_eq!(
            parse_header(&h),
            Ok(Header {
                seed: 7,
                words: 6,
                blocks: 1 << 40
            })
        );
        for at in [12, 15, 24, 63] {
            let mut bad = h;
            bad[at] = 1;
            assert_eq!(parse_header(&bad).unwrap_err().0, at);
        }
        assert_eq!(parse_header(&h[..20]).unwrap_err().0, 0);
    }
}
