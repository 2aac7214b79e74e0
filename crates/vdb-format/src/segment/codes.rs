//! The codes region (format 1.3): every row's RaBitQ code and factors, in
//! row order, after a 64-byte header.
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 8 | `seed`: the rotation the codes were made with |
//! | 8 | 4 | `words`: `u64` words a code, `ceil(dim / 64)` |
//! | 12 | 52 | zero |
//! | 64 | `8 · words · rows` | the codes, row after row |
//! | after | `16 · rows` | the factors, 4 `f32` a row |
//!
//! Both arrays start 8-byte aligned (regions start 64-aligned), so they
//! are read in place from the map.

use vdb_core::CODE_FACTORS;

/// Bytes before the codes.
pub(crate) const HEADER: usize = 64;
/// Bytes of one row's factors.
pub(crate) const FACTOR_BYTES: usize = 4 * CODE_FACTORS;

/// The region's length for `rows` codes of `words` words, if it fits.
pub(crate) fn region_len(rows: usize, words: usize) -> Option<u64> {
    let per_row = words.checked_mul(8)?.checked_add(FACTOR_BYTES)?;
    (rows as u64)
        .checked_mul(per_row as u64)?
        .checked_add(HEADER as u64)
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
