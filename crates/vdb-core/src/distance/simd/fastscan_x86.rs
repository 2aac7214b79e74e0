//! The x86-64 fast-scan kernels ([`fastscan`](super::super::fastscan)):
//! per pair of code bytes, the low and the high nibbles of 32 (AVX2) or 64
//! (AVX-512) code bytes look up their table entries with one byte shuffle
//! each; the two entries (at most 120) are added as bytes, and the bytes
//! are summed into 16-bit lanes as two running sums — every byte, and the
//! odd bytes shifted down — from which the even bytes' sums are the
//! difference (the FastScan accumulation). A run of at most [`RUN`] pairs
//! keeps every 16-bit sum below 2^16; runs are added into 32-bit totals.

use std::arch::x86_64::*;

use super::super::fastscan::{self, BLOCK_ROWS, block_bytes};

/// Pairs of code bytes summed in 16-bit lanes before they are widened:
/// a lane's odd bytes sum to at most `120 · RUN`, and so do its even
/// bytes (held modulo 2^16 with the odd sum's carries, taken back out);
/// the two lanes of a row half added stay below 2^16 too.
const RUN: usize = 256;

#[expect(
    unsafe_code,
    reason = "calls a #[target_feature] kernel after detecting the feature"
)]
pub(in super::super) fn block_dots_avx2_entry(
    blocks: &[u8],
    words: usize,
    table: &[u8],
    out: &mut [u32],
) {
    fastscan::check(words, table);
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: avx2 was detected just now; the shapes were checked.
        unsafe { block_dots_avx2(blocks, words, table, out) }
    } else {
        fastscan::portable(blocks, words, table, out)
    }
}

#[expect(
    unsafe_code,
    reason = "calls a #[target_feature] kernel after detecting the feature"
)]
pub(in super::super) fn block_dots_avx512_entry(
    blocks: &[u8],
    words: usize,
    table: &[u8],
    out: &mut [u32],
) {
    fastscan::check(words, table);
    if std::arch::is_x86_feature_detected!("avx512bw") {
        // SAFETY: only reachable through the AVX-512 table, returned after
        // detecting avx512f; avx512bw was detected just now. The shapes
        // were checked above.
        unsafe { block_dots_avx512(blocks, words, table, out) }
    } else {
        block_dots_avx2_entry(blocks, words, table, out)
    }
}

/// A block a step: one 64-byte register a pair (both row halves), its
/// table's halves broadcast to both.
///
/// # Safety
/// The CPU must have avx512f and avx512bw, and `table` must hold
/// `table_bytes(words)` bytes (`fastscan::check`).
#[target_feature(enable = "avx512f,avx512bw")]
#[expect(
    unsafe_code,
    reason = "a #[target_feature] kernel: raw loads, each bounded as its SAFETY comment says"
)]
unsafe fn block_dots_avx512(blocks: &[u8], words: usize, table: &[u8], out: &mut [u32]) {
    let (rows, count) = fastscan::shape(blocks, words, out);
    if words == 0 {
        out[..rows].fill(0);
        return;
    }
    let pairs = 4 * words;
    let nibble = _mm512_set1_epi8(0x0F);
    for b in 0..count {
        let block = &blocks[b * block_bytes(words)..(b + 1) * block_bytes(words)];
        let (pb, pt) = (block.as_ptr(), table.as_ptr());
        let mut totals = [_mm512_setzero_si512(); 2];
        let mut start = 0;
        while start < pairs {
            let end = (start + RUN).min(pairs);
            let (mut all, mut odd) = (_mm512_setzero_si512(), _mm512_setzero_si512());
            for p in start..end {
                // SAFETY: pair `p < 4·words` spans bytes `64p..64p + 64`
                // of the block (`block_bytes(words)` = 256·words long) and
                // of the table (at least `table_bytes(words)` = 256·words,
                // checked by the caller).
                let (c, lo_table, hi_table) = unsafe {
                    (
                        _mm512_loadu_si512(pb.add(64 * p).cast()),
                        _mm512_broadcast_i64x4(_mm256_loadu_si256(pt.add(64 * p).cast())),
                        _mm512_broadcast_i64x4(_mm256_loadu_si256(pt.add(64 * p + 32).cast())),
                    )
                };
                let lo = _mm512_and_si512(c, nibble);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(c), nibble);
                let entries = _mm512_add_epi8(
                    _mm512_shuffle_epi8(lo_table, lo),
                    _mm512_shuffle_epi8(hi_table, hi),
                );
                all = _mm512_add_epi16(all, entries);
                odd = _mm512_add_epi16(odd, _mm512_srli_epi16::<8>(entries));
            }
            let even = _mm512_sub_epi16(all, _mm512_slli_epi16::<8>(odd));
            // 128-bit lanes: [rows 0..16 of byte 2p, of 2p+1, rows 16..32
            // of 2p, of 2p+1]; adding the lanes swapped in pairs leaves
            // each half's sums in both of its lanes.
            const SWAP: i32 = 0b10_11_00_01;
            let even = _mm512_add_epi16(even, _mm512_shuffle_i64x2::<SWAP>(even, even));
            let odd = _mm512_add_epi16(odd, _mm512_shuffle_i64x2::<SWAP>(odd, odd));
            // Rows in order: 0..8 | 16..24 (low interleave), 8..16 |
            // 24..32 (high), then lanes 0 and 2 of each, in row order.
            let low = _mm512_unpacklo_epi16(even, odd);
            let high = _mm512_unpackhi_epi16(even, odd);
            let mixed = _mm512_shuffle_i64x2::<0b10_00_10_00>(low, high);
            let ordered = _mm512_shuffle_i64x2::<0b11_01_10_00>(mixed, mixed);
            totals[0] = _mm512_add_epi32(
                totals[0],
                _mm512_cvtepu16_epi32(_mm512_castsi512_si256(ordered)),
            );
            totals[1] = _mm512_add_epi32(
                totals[1],
                _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64::<1>(ordered)),
            );
            start = end;
        }
        let mut sums = [0u32; BLOCK_ROWS];
        // SAFETY: `sums` holds 32 u32, two stores of sixteen.
        unsafe {
            _mm512_storeu_si512(sums.as_mut_ptr().cast(), totals[0]);
            _mm512_storeu_si512(sums.as_mut_ptr().add(16).cast(), totals[1]);
        }
        let first = b * BLOCK_ROWS;
        let n = (rows - first).min(BLOCK_ROWS);
        out[first..first + n].copy_from_slice(&sums[..n]);
    }
}

/// A block a step: two 32-byte registers a pair (one a row half), the
/// pair's two table halves loaded once for both.
///
/// # Safety
/// The CPU must have avx2, and `table` must hold `table_bytes(words)`
/// bytes (`fastscan::check`).
#[target_feature(enable = "avx2")]
#[expect(
    unsafe_code,
    reason = "a #[target_feature] kernel: raw loads, each bounded as its SAFETY comment says"
)]
unsafe fn block_dots_avx2(blocks: &[u8], words: usize, table: &[u8], out: &mut [u32]) {
    let (rows, count) = fastscan::shape(blocks, words, out);
    if words == 0 {
        out[..rows].fill(0);
        return;
    }
    let pairs = 4 * words;
    let nibble = _mm256_set1_epi8(0x0F);
    for b in 0..count {
        let block = &blocks[b * block_bytes(words)..(b + 1) * block_bytes(words)];
        let (pb, pt) = (block.as_ptr(), table.as_ptr());
        // Row halves 0..16 and 16..32, eight rows a register.
        let mut totals = [_mm256_setzero_si256(); 4];
        let mut start = 0;
        while start < pairs {
            let end = (start + RUN).min(pairs);
            let mut all = [_mm256_setzero_si256(); 2];
            let mut odd = [_mm256_setzero_si256(); 2];
            for p in start..end {
                // SAFETY: as in the AVX-512 kernel: bytes `64p..64p + 64`
                // of the block and of the table.
                let (lo_table, hi_table) = unsafe {
                    (
                        _mm256_loadu_si256(pt.add(64 * p).cast()),
                        _mm256_loadu_si256(pt.add(64 * p + 32).cast()),
                    )
                };
                for half in 0..2 {
                    // SAFETY: bytes `64p + 32·half ..` + 32, inside the pair.
                    let c = unsafe { _mm256_loadu_si256(pb.add(64 * p + 32 * half).cast()) };
                    let lo = _mm256_and_si256(c, nibble);
                    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(c), nibble);
                    let entries = _mm256_add_epi8(
                        _mm256_shuffle_epi8(lo_table, lo),
                        _mm256_shuffle_epi8(hi_table, hi),
                    );
                    all[half] = _mm256_add_epi16(all[half], entries);
                    odd[half] = _mm256_add_epi16(odd[half], _mm256_srli_epi16::<8>(entries));
                }
            }
            for half in 0..2 {
                let even = _mm256_sub_epi16(all[half], _mm256_slli_epi16::<8>(odd[half]));
                // 128-bit lanes: byte 2p, byte 2p+1 of the same rows.
                let fold = |x: __m256i| {
                    _mm_add_epi16(_mm256_castsi256_si128(x), _mm256_extracti128_si256::<1>(x))
                };
                let (even, odd) = (fold(even), fold(odd[half]));
                let low = _mm256_cvtepu16_epi32(_mm_unpacklo_epi16(even, odd));
                let high = _mm256_cvtepu16_epi32(_mm_unpackhi_epi16(even, odd));
                totals[2 * half] = _mm256_add_epi32(totals[2 * half], low);
                totals[2 * half + 1] = _mm256_add_epi32(totals[2 * half + 1], high);
            }
            start = end;
        }
        let mut sums = [0u32; BLOCK_ROWS];
        for (i, t) in totals.iter().enumerate() {
            // SAFETY: `sums` holds 32 u32, four stores of eight.
            unsafe { _mm256_storeu_si256(sums.as_mut_ptr().add(8 * i).cast(), *t) };
        }
        let first = b * BLOCK_ROWS;
        let n = (rows - first).min(BLOCK_ROWS);
        out[first..first + n].copy_from_slice(&sums[..n]);
    }
}
