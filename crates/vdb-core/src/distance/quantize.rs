//! The query side of the bit-code kernels: a query's residual against one
//! list's centroid, quantized to [`PLANES`] bit planes for
//! [`bits`](super::bits)'s kernels, with the sums RaBitQ's estimator takes
//! from it. A search runs it once per probed list, so at high dimension and
//! many short lists it costs as much as scanning the codes.
//!
//! The residual `y = query − centroid` is quantized on the grid of
//! [`LEVELS`] + 1 values from its smallest value `lo` to its largest `hi`:
//! with `Δ = (hi − lo) / LEVELS`, `u_j = round((y_j − lo) / Δ)` to the
//! nearest (ties to even), and bit `j` of plane `p` is bit `p` of `u_j`
//! (bits past the residual's end are zero).
//!
//! Every kernel computes each value with the same `f32` operations in the
//! same order (no fused multiply-adds) and sums in [`LANES`] lanes, then
//! the lanes in order, then the values past the last whole group of lanes:
//! all give identical results, bit for bit.

use super::bits::PLANES;

/// The grid's largest level: 4 bits.
pub const LEVELS: f32 = ((1 << PLANES) - 1) as f32;

/// 2^23: added to a float in `[0, 2^22)`, leaves it rounded to an integer
/// (ties to even) in the low bits of the mantissa — a bit cast where a
/// float-to-integer conversion would round differently or not vectorise.
pub(super) const ROUNDER: f32 = 8_388_608.0;

/// Lanes of every kernel's sums.
pub(super) const LANES: usize = 16;

/// What a quantization reports besides the residual and its planes.
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

/// `(query, centroid, residual, planes)`: over the shortest of the first
/// three (`n` values), `query − centroid` into `residual`, its levels'
/// [`PLANES`] bit planes into `planes` (`⌈n / 64⌉` words each, plane after
/// plane; words past them are left alone), and the sums of [`Quantized`].
///
/// # Panics
/// If `planes` is shorter than [`PLANES`] × `⌈n / 64⌉`: the caller sizes
/// both from one dimension, so a mismatch is a programming error.
pub type QuantizeFn = fn(&[f32], &[f32], &mut [f32], &mut [u64]) -> Quantized;

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

/// The shapes every kernel relies on: `n` values and the planes' words.
///
/// # Panics
/// See [`QuantizeFn`].
#[inline]
pub(super) fn check(
    query: &[f32],
    centroid: &[f32],
    residual: &[f32],
    planes: &[u64],
) -> (usize, usize) {
    let n = query.len().min(centroid.len()).min(residual.len());
    let words = n.div_ceil(64);
    assert!(
        planes.len() >= PLANES * words,
        "quantize: {} plane words for {n} dimensions",
        planes.len()
    );
    (n, words)
}

/// What every kernel starts with: the shapes ([`check`]), the first pass
/// ([`residual_generic`], compiled with the caller's features), the grid,
/// and the planes' words zeroed. Returns `n`, the words a plane, the
/// residual's sums and the grid.
#[inline(always)]
pub(super) fn begin(
    query: &[f32],
    centroid: &[f32],
    residual: &mut [f32],
    planes: &mut [u64],
) -> (usize, usize, Residual, Grid) {
    let (n, words) = check(query, centroid, residual, planes);
    let r = residual_generic(query, centroid, residual, n);
    let grid = Grid::of(&r);
    planes[..PLANES * words].fill(0);
    (n, words, r, grid)
}

/// Group `g` of [`LANES`] values (of `groups`) has its bits in `bits`, at
/// its place in each plane's current word: when it is the last group of
/// that word, or the last whole group, the words are stored (each once,
/// not read back and or-ed per group) and `bits` starts again.
#[inline(always)]
pub(super) fn store_group(
    bits: &mut [u64; PLANES],
    planes: &mut [u64],
    words: usize,
    g: usize,
    groups: usize,
) {
    // LANES divides 64: a group's bits are one part of one word.
    if ((g + 1) * LANES).is_multiple_of(64) || g + 1 == groups {
        for (p, b) in bits.iter_mut().enumerate() {
            planes[p * words + g * LANES / 64] = std::mem::take(b);
        }
    }
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
/// [`LANES`] (from `start` to `n`), and the result: what every kernel ends
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
    planes: &mut [u64],
) -> Quantized {
    let words = n.div_ceil(64);
    let mut tail = 0.0f32;
    for (j, &y) in residual.iter().enumerate().take(n).skip(start) {
        let (level, e_sq) = grid.level(y);
        tail += e_sq;
        level_sum += level;
        for p in 0..PLANES {
            planes[p * words + j / 64] |= u64::from(level >> p & 1) << (j % 64);
        }
    }
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

/// The whole kernel, portably: the second pass gathers each plane's bits
/// of a group eight levels (bytes) at a time.
#[inline(always)]
pub(super) fn generic(
    query: &[f32],
    centroid: &[f32],
    residual: &mut [f32],
    planes: &mut [u64],
) -> Quantized {
    let (n, words, r, grid) = begin(query, centroid, residual, planes);
    let mut lanes = [0.0f32; LANES];
    let mut level_sum = 0u32;
    let mut bits = [0u64; PLANES];
    let whole = n - n % LANES;
    for (g, group) in residual[..whole].chunks_exact(LANES).enumerate() {
        let mut levels = [0u8; LANES];
        for j in 0..LANES {
            let (level, e_sq) = grid.level(group[j]);
            lanes[j] += e_sq;
            level_sum += level;
            levels[j] = level as u8;
        }
        let (low, high) = levels.split_at(8);
        let low = u64::from_le_bytes(low.try_into().unwrap_or([0; 8]));
        let high = u64::from_le_bytes(high.try_into().unwrap_or([0; 8]));
        for (p, b) in bits.iter_mut().enumerate() {
            let sixteen =
                u64::from(bits_of_bytes(low >> p)) | u64::from(bits_of_bytes(high >> p)) << 8;
            *b |= sixteen << (g * LANES % 64);
        }
        store_group(&mut bits, planes, words, g, whole / LANES);
    }
    finish(&r, &grid, residual, whole, n, &lanes, level_sum, planes)
}

/// Bit 0 of each byte of `x`, byte `i`'s into bit `i`: one multiply puts
/// `b_i · 2^(56+i)` in the top byte, and the partial products below it
/// land on distinct bits, so nothing carries into it.
#[inline(always)]
fn bits_of_bytes(x: u64) -> u8 {
    ((x & 0x0101_0101_0101_0101).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8
}

/// The portable kernel as a table entry.
pub(super) fn portable(
    query: &[f32],
    centroid: &[f32],
    residual: &mut [f32],
    planes: &mut [u64],
) -> Quantized {
    generic(query, centroid, residual, planes)
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

    #[test]
    fn levels_planes_and_sums_of_a_small_residual() {
        // Residual 0, 1, …, 15 and then 7.5: one level a value, the last
        // a tie rounded to even.
        let query: Vec<f32> = (0..16).map(|j| j as f32 + 1.0).chain([8.5]).collect();
        let centroid = vec![1.0; 17];
        let mut residual = vec![0.0; 17];
        let mut planes = vec![u64::MAX; PLANES];
        let q = portable(&query, &centroid, &mut residual, &mut planes);
        assert_eq!((q.lo, q.step), (0.0, 1.0));
        assert_eq!(q.level_sum, 120 + 8);
        assert_eq!(q.rounding_sq, 0.25);
        assert_eq!(q.sum, 120.0 + 7.5);
        for (p, &plane) in planes.iter().enumerate() {
            for j in 0..64 {
                let level = if j < 16 {
                    j as u64
                } else if j == 16 {
                    8
                } else {
                    0
                };
                assert_eq!(plane >> j & 1, level >> p & 1, "plane {p} bit {j}");
            }
        }
    }

    #[test]
    fn equal_values_and_no_values() {
        let mut residual = vec![0.0; 3];
        let mut planes = vec![7; PLANES];
        let q = portable(&[2.0; 3], &[1.0; 3], &mut residual, &mut planes);
        assert_eq!(
            (q.lo, q.step, q.level_sum, q.rounding_sq),
            (1.0, 0.0, 0, 0.0)
        );
        assert_eq!(planes, vec![0; PLANES]);
        let q = portable(&[], &[], &mut [], &mut []);
        assert_eq!(q, Quantized::default());
    }

    #[test]
    #[should_panic(expected = "plane words")]
    fn short_planes_are_refused() {
        portable(&[0.0; 65], &[0.0; 65], &mut [0.0; 65], &mut [0; 7]);
    }
}
