//! The query side of the code kernels: a query's residual against one
//! list's centroid, quantized to 4 bits a dimension and laid out as the
//! table of [`fastscan`]'s kernels, with the sums RaBitQ's estimator takes
//! from it. A search runs it once per probed list, so at high dimension and
//! many short lists it costs as much as scanning the codes.
//!
//! The residual `y = query − centroid` is quantized on the grid of
//! [`LEVELS`] + 1 values from its smallest value `lo` to its largest `hi`:
//! with `Δ = (hi − lo) / LEVELS`, `u_j = round((y_j − lo) / Δ)` to the
//! nearest (ties to even); the table is that of these levels (levels past
//! the residual's end are zero).
//!
//! Every kernel computes each value with the same `f32` operations in the
//! same order (no fused multiply-adds) and sums in [`LANES`] lanes, then
//! the lanes in order, then the values past the last whole group of lanes:
//! all give identical results, bit for bit.

use super::bits::QUERY_BITS;
use super::fastscan;

/// The grid's largest level: 4 bits.
pub const LEVELS: f32 = ((1 << QUERY_BITS) - 1) as f32;

/// 2^23: added to a float in `[0, 2^22)`, leaves it rounded to an integer
/// (ties to even) in the low bits of the mantissa — a bit cast where a
/// float-to-integer conversion would round differently or not vectorise.
pub(super) const ROUNDER: f32 = 8_388_608.0;

/// Lanes of every kernel's sums: also the dimensions of one pair of code
/// bytes, so a group of lanes' levels make one 64-byte part of the table.
pub(super) const LANES: usize = 16;

/// What a quantization reports besides the residual and its table.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Quantized {
    /// The residual's smallest value (0 for an empty one).
    pub lo: f32,
    /// The grid's step `Δ` (0 when all values are equal).
    pub step: f32,
    /// `Σ u_j`, the levels' sum.
    pub level_sum: u32,
    /// `Σ (y_j − (lo + Δ·u_j))²`, the squared rounding errors.
    pub rounding_sq: f32,
    /// `Σ y_j²`.
    pub norm_sq: f32,
    /// `Σ y_j`.
    pub sum: f32,
    /// `Σ query_j · centroid_j`.
    pub query_dot_centroid: f32,
}

/// `(query, centroid, residual, table)`: over the shortest of the first
/// three (`n` values), `query − centroid` into `residual`, its levels'
/// [`fastscan`] table into `table` (the first
/// [`fastscan::table_bytes`]`(⌈n / 64⌉)` bytes; bytes past them are left
/// alone), and the sums of [`Quantized`].
///
/// # Panics
/// If `table` is shorter than that: the caller sizes both from one
/// dimension, so a mismatch is a programming error.
pub type QuantizeFn = fn(&[f32], &[f32], &mut [f32], &mut [u8]) -> Quantized;

/// The residual's extremes and sums (the first pass).
#[derive(Debug, Clone, Copy)]
pub(super) struct Residual {
    pub(super) lo: f32,
    pub(super) hi: f32,
    pub(super) sum: f32,
    pub(super) norm_sq: f32,
    pub(super) dot: f32,
}

/// The grid a residual's values are rounded to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Grid {
    pub(super) lo: f32,
    pub(super) step: f32,
    pub(super) inverse: f32,
}

impl Grid {
    pub(super) fn of(r: &Residual) -> Grid {
        if r.hi > r.lo {
            let step = (r.hi - r.lo) / LEVELS;
            Grid {
                lo: r.lo,
                step,
                inverse: 1.0 / step,
            }
        } else {
            Grid {
                lo: if r.lo.is_finite() { r.lo } else { 0.0 },
                step: 0.0,
                inverse: 0.0,
            }
        }
    }

    /// `y`'s level and squared rounding error.
    #[inline(always)]
    pub(super) fn level(&self, y: f32) -> (u32, f32) {
        let level = (((y - self.lo) * self.inverse).min(LEVELS) + ROUNDER).to_bits() & 0xF;
        let e = y - (self.lo + self.step * level as f32);
        (level, e * e)
    }
}

/// The shapes every kernel relies on: `n` values and the table's bytes.
///
/// # Panics
/// See [`QuantizeFn`].
#[inline]
pub(super) fn check(
    query: &[f32],
    centroid: &[f32],
    residual: &[f32],
    table: &[u8],
) -> (usize, usize) {
    let n = query.len().min(centroid.len()).min(residual.len());
    let bytes = fastscan::table_bytes(n.div_ceil(64));
    assert!(
        table.len() >= bytes,
        "quantize: a table of {} bytes for {n} dimensions",
        table.len()
    );
    (n, bytes)
}

/// What every kernel starts with: the shapes ([`check`]), the first pass
/// ([`residual_generic`], compiled with the caller's features) and the
/// grid. Returns `n`, the table's bytes, the residual's sums and the grid.
#[inline(always)]
pub(super) fn begin(
    query: &[f32],
    centroid: &[f32],
    residual: &mut [f32],
    table: &[u8],
) -> (usize, usize, Residual, Grid) {
    let (n, bytes) = check(query, centroid, residual, table);
    let r = residual_generic(query, centroid, residual, n);
    let grid = Grid::of(&r);
    (n, bytes, r, grid)
}

/// `Σ lanes` in order, then `tail`: how every kernel finishes a sum.
#[inline(always)]
pub(super) fn fold(lanes: &[f32; LANES], tail: f32) -> f32 {
    lanes.iter().fold(0.0, |a, &b| a + b) + tail
}

/// The first pass, `n` values (the caller's [`check`]): the residual into
/// `residual`, its extremes and sums. One body, compiled by each
/// instruction set with its own features (the lanes vectorise).
#[inline(always)]
pub(super) fn residual_generic(
    query: &[f32],
    centroid: &[f32],
    residual: &mut [f32],
    n: usize,
) -> Residual {
    let (query, centroid, residual) = (&query[..n], &centroid[..n], &mut residual[..n]);
    let mut lo = [f32::INFINITY; LANES];
    let mut hi = [f32::NEG_INFINITY; LANES];
    let (mut sum, mut sq, mut dot) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
    let whole = n - n % LANES;
    for ((r, q), c) in residual[..whole]
        .chunks_exact_mut(LANES)
        .zip(query.chunks_exact(LANES))
        .zip(centroid.chunks_exact(LANES))
    {
        for j in 0..LANES {
            let y = q[j] - c[j];
            r[j] = y;
            // Comparisons rather than `f32::min`, whose NaN rule costs
            // extra instructions a lane (the values are finite: validated
            // vectors).
            lo[j] = if y < lo[j] { y } else { lo[j] };
            hi[j] = if y > hi[j] { y } else { hi[j] };
            sum[j] += y;
            sq[j] += y * y;
            dot[j] += q[j] * c[j];
        }
    }
    let (mut t_lo, mut t_hi) = (f32::INFINITY, f32::NEG_INFINITY);
    let (mut t_sum, mut t_sq, mut t_dot) = (0.0f32, 0.0f32, 0.0f32);
    for j in whole..n {
        let y = query[j] - centroid[j];
        residual[j] = y;
        t_lo = t_lo.min(y);
        t_hi = t_hi.max(y);
        t_sum += y;
        t_sq += y * y;
        t_dot += query[j] * centroid[j];
    }
    Residual {
        lo: lo.iter().fold(t_lo, |a, &b| a.min(b)),
        hi: hi.iter().fold(t_hi, |a, &b| a.max(b)),
        sum: fold(&sum, t_sum),
        norm_sq: fold(&sq, t_sq),
        dot: fold(&dot, t_dot),
    }
}

/// The second pass over the values past the last whole group of
/// [`LANES`] (from `start` to `n`; their part of the table, and zeros for
/// the table's parts past them), and the result: what every kernel ends
/// with after its own pass over the whole groups, which left the lanes'
/// squared errors in `lanes` and the levels' sum in `level_sum`.
#[inline(always)]
#[expect(
    clippy::too_many_arguments,
    reason = "the two passes' state, handed from each kernel's loop to the shared end"
)]
pub(super) fn finish(
    r: &Residual,
    grid: &Grid,
    residual: &[f32],
    start: usize,
    n: usize,
    lanes: &[f32; LANES],
    mut level_sum: u32,
    table: &mut [u8],
) -> Quantized {
    let bytes = fastscan::table_bytes(n.div_ceil(64));
    let mut tail = 0.0f32;
    let mut levels = [0u8; LANES];
    for (j, &y) in residual.iter().enumerate().take(n).skip(start) {
        let (level, e_sq) = grid.level(y);
        tail += e_sq;
        level_sum += level;
        levels[j - start] = level as u8;
    }
    let mut at = start / LANES * 64;
    if start < n {
        fastscan::pair_table(&levels, &mut table[at..at + 64]);
        at += 64;
    }
    table[at..bytes].fill(0);
    Quantized {
        lo: grid.lo,
        step: grid.step,
        level_sum,
        rounding_sq: fold(lanes, tail),
        norm_sq: r.norm_sq,
        sum: r.sum,
        query_dot_centroid: r.dot,
    }
}

/// The whole kernel, portably: each group's sixteen levels make its part
/// of the table ([`fastscan::pair_table`]).
#[inline(always)]
pub(super) fn generic(
    query: &[f32],
    centroid: &[f32],
    residual: &mut [f32],
    table: &mut [u8],
) -> Quantized {
    let (n, _, r, grid) = begin(query, centroid, residual, table);
    let mut lanes = [0.0f32; LANES];
    let mut level_sum = 0u32;
    let whole = n - n % LANES;
    for (g, group) in residual[..whole].chunks_exact(LANES).enumerate() {
        let mut levels = [0u8; LANES];
        for j in 0..LANES {
            let (level, e_sq) = grid.level(group[j]);
            lanes[j] += e_sq;
            level_sum += level;
            levels[j] = level as u8;
        }
        fastscan::pair_table(&levels, &mut table[64 * g..64 * g + 64]);
    }
    finish(&r, &grid, residual, whole, n, &lanes, level_sum, table)
}

/// The portable kernel as a table entry.
pub(super) fn portable(
    query: &[f32],
    centroid: &[f32],
    residual: &mut [f32],
    table: &mut [u8],
) -> Quantized {
    generic(query, centroid, residual, table)
}

/// Each value's position on the grid `q` reports, `(y − lo) / Δ` in
/// `f64` (0 when the step is 0): a kernel's level must be the nearest
/// integer to it, for tests.
#[cfg(test)]
pub(super) fn reference_positions(residual: &[f32], q: &Quantized) -> Vec<f64> {
    residual
        .iter()
        .map(|&y| {
            if q.step == 0.0 {
                0.0
            } else {
                (f64::from(y) - f64::from(q.lo)) / f64::from(q.step)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The levels a table was made from: entry 1, 2, 4 and 8 of a group's
    /// table are its four levels.
    pub(crate) fn levels_of(table: &[u8], n: usize) -> Vec<u8> {
        (0..n)
            .map(|j| {
                let (pair, group) = (j / 16, j % 16 / 4);
                let slot = [0, 2, 1, 3][group];
                table[64 * pair + 16 * slot + (1 << (j % 4))]
            })
            .collect()
    }

    #[test]
    fn levels_table_and_sums_of_a_small_residual() {
        // Residual 0, 1, …, 15 and then 7.5: one level a value, the last
        // a tie rounded to even.
        let query: Vec<f32> = (0..16).map(|j| j as f32 + 1.0).chain([8.5]).collect();
        let centroid = vec![1.0; 17];
        let mut residual = vec![0.0; 17];
        let mut table = vec![0xAA; fastscan::table_bytes(1) + 1];
        let q = portable(&query, &centroid, &mut residual, &mut table);
        assert_eq!((q.lo, q.step), (0.0, 1.0));
        assert_eq!(q.level_sum, 120 + 8);
        assert_eq!(q.rounding_sq, 0.25);
        assert_eq!(q.sum, 120.0 + 7.5);
        let mut want: Vec<u8> = (0..16).chain([8]).collect();
        want.resize(64, 0);
        assert_eq!(levels_of(&table, 64), want);
        let mut whole = vec![0u8; fastscan::table_bytes(1)];
        fastscan::table(&want, 1, &mut whole);
        assert_eq!(&table[..256], &whole[..]);
        assert_eq!(table[256], 0xAA, "past the table");
    }

    #[test]
    fn equal_values_and_no_values() {
        let mut residual = vec![0.0; 3];
        let mut table = vec![7; fastscan::table_bytes(1)];
        let q = portable(&[2.0; 3], &[1.0; 3], &mut residual, &mut table);
        assert_eq!(
            (q.lo, q.step, q.level_sum, q.rounding_sq),
            (1.0, 0.0, 0, 0.0)
        );
        assert!(table.iter().all(|&t| t == 0));
        let q = portable(&[], &[], &mut [], &mut []);
        assert_eq!(q, Quantized::default());
    }

    #[test]
    #[should_panic(expected = "a table of")]
    fn short_tables_are_refused() {
        portable(&[0.0; 65], &[0.0; 65], &mut [0.0; 65], &mut [0; 511]);
    }
}
