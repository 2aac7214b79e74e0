//! Fast-scan kernels: 1-bit codes of [`BLOCK_ROWS`] rows at a time against
//! a query quantized to 4 bits a dimension, through a table of the query's
//! partial sums looked up with byte shuffles — the layout of FastScan
//! (André et al., VLDB 2015) and of the RaBitQ authors' batch kernels,
//! applied to vdb's codes and computed exactly.
//!
//! A row's code is `words` `u64`s, bit `j % 64` of word `j / 64` standing
//! for dimension `j`; read as little-endian bytes, byte `b` holds
//! dimensions `8b .. 8b + 8`, its low nibble *group* `2b` (dimensions
//! `8b .. 8b + 4`) and its high nibble group `2b + 1`.
//!
//! **Blocks.** Codes are kept in blocks of [`BLOCK_ROWS`] rows (the last
//! one padded with zero codes), [`block_bytes`]`(words)` bytes each: for
//! each pair of code bytes `(2p, 2p + 1)` (`p < 4 · words`), 64 bytes,
//!
//! ```text
//! [ byte 2p of rows 0..16 | byte 2p+1 of rows 0..16 | byte 2p of rows 16..32 | byte 2p+1 of rows 16..32 ]
//! ```
//!
//! so one 32-byte half is one row half's two code bytes, and a 64-byte
//! register holds both halves.
//!
//! **Table.** For a query whose 4-bit levels are `u_j`, the table entry of
//! group `g` and nibble `n` is `T_g[n] = Σ_{k<4, bit k of n} u_{4g+k}`, at
//! most 60 (a byte). The table holds, for each pair `p`, 64 bytes
//!
//! ```text
//! [ T_{4p} | T_{4p+2} | T_{4p+1} | T_{4p+3} ]   (16 entries each)
//! ```
//!
//! the low nibbles' tables of bytes `2p` and `2p + 1`, then the high
//! nibbles': a 32-byte half matches a half of the block's pair, lane for
//! lane ([`table_bytes`]`(words)` bytes in all).
//!
//! A row's count `Σ_j code_j · u_j` is the sum of its groups' entries
//! (at most `60 · 16 · words`): the same integer as the bit-plane kernels
//! of [`bits`](super::bits) give, so every kernel here gives identical
//! results.

/// Rows in one block of codes.
pub const BLOCK_ROWS: usize = 32;

/// Bytes of one block of codes of `words` words.
pub const fn block_bytes(words: usize) -> usize {
    BLOCK_ROWS * 8 * words
}

/// Bytes of a query's table for codes of `words` words.
pub const fn table_bytes(words: usize) -> usize {
    // 64 bytes a pair of code bytes, 4 pairs a word.
    256 * words
}

/// Blocks needed for `rows` codes.
pub const fn blocks_for(rows: usize) -> usize {
    rows.div_ceil(BLOCK_ROWS)
}

/// Where byte `b` of row `r`'s code (`r < BLOCK_ROWS`) lies in its block.
#[inline]
pub const fn offset_in_block(r: usize, b: usize) -> usize {
    64 * (b / 2) + 32 * (r / 16) + 16 * (b % 2) + r % 16
}

/// `(blocks, words, table, out)`: each row's count against the query's
/// table into `out`, block after block, as many rows as `out` holds up to
/// the whole blocks in `blocks` (a partial block at the end is not a
/// block).
///
/// # Panics
/// If `table` is shorter than [`table_bytes`]`(words)`: the caller sizes
/// both from one dimension, so a mismatch is a programming error.
pub type BlockDotsFn = fn(&[u8], usize, &[u8], &mut [u32]);

/// Appends the blocks of `codes` (row after row, `words` words each; a
/// partial code at the end is not a code) to `out`, the last block padded
/// with zero codes.
pub fn interleave(codes: &[u64], words: usize, out: &mut Vec<u8>) {
    if words == 0 {
        return;
    }
    let rows = codes.len() / words;
    let start = out.len();
    out.resize(start + blocks_for(rows) * block_bytes(words), 0);
    for (i, code) in codes.chunks_exact(words).enumerate() {
        let block = &mut out[start + i / BLOCK_ROWS * block_bytes(words)..];
        let r = i % BLOCK_ROWS;
        for (w, word) in code.iter().enumerate() {
            for (k, byte) in word.to_le_bytes().into_iter().enumerate() {
                block[offset_in_block(r, 8 * w + k)] = byte;
            }
        }
    }
}

/// The first `rows` codes held by `blocks`, row after row (`words`
/// words each; rows past the blocks are zero codes).
pub fn deinterleave(blocks: &[u8], words: usize, rows: usize) -> Vec<u64> {
    let mut codes = vec![0u64; rows * words];
    if words == 0 {
        return codes;
    }
    for (i, code) in codes.chunks_exact_mut(words).enumerate() {
        let block = blocks
            .get(i / BLOCK_ROWS * block_bytes(words)..)
            .unwrap_or_default();
        row_code(block, i % BLOCK_ROWS, code);
    }
    codes
}

/// Row `r`'s code (`r < BLOCK_ROWS`) out of one block, into `code`
/// (`words` words long).
pub fn row_code(block: &[u8], r: usize, code: &mut [u64]) {
    for (w, word) in code.iter_mut().enumerate() {
        let mut bytes = [0u8; 8];
        for (k, byte) in bytes.iter_mut().enumerate() {
            *byte = block
                .get(offset_in_block(r, 8 * w + k))
                .copied()
                .unwrap_or(0);
        }
        *word = u64::from_le_bytes(bytes);
    }
}

/// The group whose table is in each 16-byte slot of a pair's 64 bytes.
const SLOT_GROUPS: [usize; 4] = [0, 2, 1, 3];

/// The table entries of one group whose four levels are `u` (branch-free,
/// to vectorise).
#[inline(always)]
pub(super) fn group_table(u: &[u8]) -> [u8; 16] {
    let mut t = [0u8; 16];
    for (n, e) in t.iter_mut().enumerate() {
        let bit = |k: usize| 0u8.wrapping_sub((n >> k & 1) as u8);
        *e = (u[0] & bit(0)) + (u[1] & bit(1)) + (u[2] & bit(2)) + (u[3] & bit(3));
    }
    t
}

/// The table of the 16 levels `u` of one pair of code bytes, into its 64
/// bytes.
#[inline(always)]
pub(super) fn pair_table(u: &[u8], table: &mut [u8]) {
    for (slot, group) in SLOT_GROUPS.into_iter().enumerate() {
        table[16 * slot..16 * (slot + 1)]
            .copy_from_slice(&group_table(&u[4 * group..4 * group + 4]));
    }
}

/// Byte-shuffle controls that make a pair's 64 table bytes from its 16
/// levels (in each 16-byte lane): the entries' terms of level `k` of each
/// slot's group, `Σ_k shuffle(levels, PAIR_CONTROLS[k])` (index 0x80
/// gives 0).
pub(super) const PAIR_CONTROLS: [[u8; 64]; 4] = {
    let mut c = [[0u8; 64]; 4];
    let mut k = 0;
    while k < 4 {
        let mut i = 0;
        while i < 64 {
            let (slot, n) = (i / 16, i % 16);
            c[k][i] = if n >> k & 1 == 1 {
                (4 * SLOT_GROUPS[slot] + k) as u8
            } else {
                0x80
            };
            i += 1;
        }
        k += 1;
    }
    c
};

/// The table of a query whose levels are `levels` (one a dimension, at
/// most 15; missing ones are 0) for codes of `words` words, into `table`
/// ([`table_bytes`]`(words)` bytes).
pub fn table(levels: &[u8], words: usize, table: &mut [u8]) {
    for (p, t) in table.chunks_exact_mut(64).take(4 * words).enumerate() {
        let mut u = [0u8; 16];
        for (j, x) in u.iter_mut().enumerate() {
            *x = levels.get(16 * p + j).copied().unwrap_or(0);
        }
        pair_table(&u, t);
    }
}

/// The reference: one code against the query's levels, bit by bit.
pub fn reference(code: &[u64], levels: &[u8]) -> u32 {
    let mut sum = 0u32;
    for (w, &c) in code.iter().enumerate() {
        for bit in 0..64 {
            if c >> bit & 1 == 1 {
                sum += u32::from(levels.get(64 * w + bit).copied().unwrap_or(0));
            }
        }
    }
    sum
}

/// Checks the shapes every kernel relies on.
///
/// # Panics
/// See [`BlockDotsFn`].
#[inline]
pub(super) fn check(words: usize, table: &[u8]) {
    assert!(
        table.len() >= table_bytes(words),
        "block_dots: a table of {} bytes for codes of {words} words",
        table.len()
    );
}

/// The rows `blocks` and `out` both hold, and the whole blocks they span.
#[inline]
pub(super) fn shape(blocks: &[u8], words: usize, out: &[u32]) -> (usize, usize) {
    if words == 0 {
        return (out.len(), 0);
    }
    let rows = (blocks.len() / block_bytes(words) * BLOCK_ROWS).min(out.len());
    (rows, blocks_for(rows))
}

/// The portable kernel: per row half, a pair's two code bytes look up
/// their two nibbles' entries.
pub(super) fn portable(blocks: &[u8], words: usize, table: &[u8], out: &mut [u32]) {
    check(words, table);
    let (rows, count) = shape(blocks, words, out);
    if words == 0 {
        out[..rows].fill(0);
        return;
    }
    for (bi, block) in blocks
        .chunks_exact(block_bytes(words))
        .take(count)
        .enumerate()
    {
        let mut sums = [0u32; BLOCK_ROWS];
        for (pair, t) in block.chunks_exact(64).zip(table.chunks_exact(64)) {
            for (half, rows) in pair.chunks_exact(32).enumerate() {
                for r in 0..16 {
                    let (b0, b1) = (rows[r], rows[16 + r]);
                    sums[16 * half + r] += u32::from(t[usize::from(b0 & 15)])
                        + u32::from(t[16 + usize::from(b1 & 15)])
                        + u32::from(t[32 + usize::from(b0 >> 4)])
                        + u32::from(t[48 + usize::from(b1 >> 4)]);
                }
            }
        }
        let first = bi * BLOCK_ROWS;
        let n = (rows - first).min(BLOCK_ROWS);
        out[first..first + n].copy_from_slice(&sums[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_rows_and_pad_with_zero() {
        let words = 3;
        let codes: Vec<u64> = (0..40 * words as u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let mut blocks = vec![0xAA];
        interleave(&codes, words, &mut blocks);
        assert_eq!(blocks.len(), 1 + 2 * block_bytes(words));
        let blocks = &blocks[1..];
        assert_eq!(deinterleave(blocks, words, 40), codes);
        let mut code = vec![0u64; words];
        for i in 0..64 {
            row_code(&blocks[i / 32 * block_bytes(words)..], i % 32, &mut code);
            if i < 40 {
                assert_eq!(code, codes[i * words..(i + 1) * words], "row {i}");
            } else {
                assert_eq!(code, vec![0; words], "padding row {i}");
            }
        }
    }

    #[test]
    fn a_group_table_sums_the_levels_of_its_set_bits() {
        let t = group_table(&[1, 2, 4, 8]);
        assert_eq!(t, std::array::from_fn(|n| n as u8));
        assert_eq!(group_table(&[15; 4])[15], 60);
    }
}
