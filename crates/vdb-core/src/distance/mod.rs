//! Distance kernels: squared L2 and inner product, for one pair of vectors and
//! for one query against a block of row-major vectors.
//!
//! The instruction set is chosen once, at first use, from what the CPU
//! reports (AVX-512F, then AVX2+FMA on x86-64; NEON on aarch64; otherwise the
//! portable kernels, written so the compiler can vectorise them for the
//! baseline target). `VDB_SIMD=portable|avx2|avx512|neon` forces a choice
//! (falling back to portable when the CPU lacks it), which benchmarks use to
//! compare paths side by side.
//!
//! [`reference`] holds plain scalar versions accumulating in `f64`; property
//! tests check every available kernel against them.
//!
//! Vectors of different lengths are compared over the shorter length: the
//! kernels never read past either slice. Callers validate dimensions before.

pub mod bits;
mod blocked;
pub mod bytes;
pub mod fastscan;
pub mod quantize;
pub mod reference;
mod simd;

pub use blocked::{BLOCK, BlockedVectors};

use std::fmt;
use std::sync::OnceLock;

/// An instruction set a kernel family is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust, vectorised by the compiler for the build target.
    Portable,
    /// x86-64 AVX2 with FMA.
    Avx2,
    /// x86-64 AVX-512F.
    Avx512,
    /// aarch64 Advanced SIMD.
    Neon,
}

impl Isa {
    /// Lowercase name, as used by `VDB_SIMD`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One family of kernels for one instruction set.
#[derive(Clone, Copy)]
pub struct Kernels {
    /// The instruction set these kernels use.
    pub isa: Isa,
    /// Squared L2 distance of two vectors.
    pub l2_sq: fn(&[f32], &[f32]) -> f32,
    /// Inner product of two vectors.
    pub dot: fn(&[f32], &[f32]) -> f32,
    /// Squared L2 distance from a query to each row of a row-major block.
    pub l2_sq_batch: fn(&[f32], &[f32], &mut [f32]),
    /// Inner product of a query with each row of a row-major block.
    pub dot_batch: fn(&[f32], &[f32], &mut [f32]),
    /// Inner products of a query with vectors in the [`BlockedVectors`]
    /// layout: `(query, data, dim, count, out)`.
    pub blocked_dots: fn(&[f32], &[f32], usize, usize, &mut [f32]),
    /// The matrix product of [`dot_matrix`] (panics on operands too short).
    pub dot_matrix: DotMatrixFn,
    /// Inner products of blocks of 1-bit codes with a 4-bit query's
    /// table ([`fastscan`]).
    pub block_dots: fastscan::BlockDotsFn,
    /// Lower bounds of codes' distances from their counts ([`bits`]).
    pub lower_bounds: bits::LowerBoundsFn,
    /// Inner product of an 8-bit code with a float query ([`bytes`]).
    pub byte_dot: bytes::ByteDotFn,
    /// A query's residual quantized to a fast-scan table ([`quantize`]).
    pub quantize: quantize::QuantizeFn,
}

/// A matrix product kernel: `(a, m, b, n, dim, blocked, out)` as in
/// [`dot_matrix`], with `blocked` the rows of `b` re-laid if the caller
/// keeps them ([`dot_matrix_blocked`]).
pub type DotMatrixFn = fn(&[f32], usize, &[f32], usize, usize, Option<&BlockedVectors>, &mut [f32]);

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernels").field("isa", &self.isa).finish()
    }
}

const PORTABLE: Kernels = Kernels {
    isa: Isa::Portable,
    l2_sq: portable::l2_sq,
    dot: portable::dot,
    l2_sq_batch: portable::l2_sq_batch,
    dot_batch: portable::dot_batch,
    blocked_dots: blocked::dots_portable,
    dot_matrix: simd::gemm_entry,
    block_dots: fastscan::portable,
    lower_bounds: bits::lower_bounds_portable,
    byte_dot: bytes::portable,
    quantize: quantize::portable,
};

/// The kernels for `isa`, if this CPU supports it.
pub fn kernels_for(isa: Isa) -> Option<Kernels> {
    match isa {
        Isa::Portable => Some(PORTABLE),
        other => simd::kernels(other),
    }
}

/// Every instruction set usable on this CPU, portable first.
pub fn available() -> Vec<Isa> {
    [Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Neon]
        .into_iter()
        .filter(|&isa| kernels_for(isa).is_some())
        .collect()
}

fn detect() -> Kernels {
    if let Ok(wanted) = std::env::var("VDB_SIMD") {
        let forced = match wanted.to_ascii_lowercase().as_str() {
            "portable" | "scalar" => Some(Isa::Portable),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            "neon" => Some(Isa::Neon),
            _ => None,
        };
        return forced.and_then(kernels_for).unwrap_or(PORTABLE);
    }
    [Isa::Avx512, Isa::Avx2, Isa::Neon]
        .into_iter()
        .find_map(kernels_for)
        .unwrap_or(PORTABLE)
}

/// The kernels in use by this process.
pub fn active() -> &'static Kernels {
    static ACTIVE: OnceLock<Kernels> = OnceLock::new();
    ACTIVE.get_or_init(detect)
}

/// Squared L2 distance `Σ (aᵢ − bᵢ)²`.
#[inline]
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    (active().l2_sq)(a, b)
}

/// Inner product `Σ aᵢ bᵢ`.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (active().dot)(a, b)
}

/// Squared L2 distance from `query` to each `query.len()`-long row of
/// `vectors`, into `out` (as many rows as both hold).
#[inline]
pub fn l2_sq_batch(query: &[f32], vectors: &[f32], out: &mut [f32]) {
    (active().l2_sq_batch)(query, vectors, out)
}

/// Inner product of `query` with each `query.len()`-long row of `vectors`,
/// into `out` (as many rows as both hold).
#[inline]
pub fn dot_batch(query: &[f32], vectors: &[f32], out: &mut [f32]) {
    (active().dot_batch)(query, vectors, out)
}

/// All inner products between the `m` rows of `a` and the `n` rows of `b`
/// (each `dim` long, row-major): `out[i * n + j] = a_i · b_j`.
///
/// This is the blocked matrix product used where many vectors meet many
/// vectors (k-means assignment, bulk list assignment); it is far faster than
/// `m × n` calls of [`dot`]. With AVX-512 it is vdb's own register-blocked
/// kernel; elsewhere the `matrixmultiply` crate's SGEMM (AVX2/FMA at most).
///
/// # Panics
/// If `a` holds fewer than `m * dim` values, `b` fewer than `n * dim`, or
/// `out` fewer than `m * n`.
pub fn dot_matrix(a: &[f32], m: usize, b: &[f32], n: usize, dim: usize, out: &mut [f32]) {
    product(a, m, b, n, dim, None, out)
}

/// [`dot_matrix`] with `b` also given as `blocked` (the same vectors
/// re-laid by [`BlockedVectors::new`], as a caller that searches them keeps
/// them), which spares the AVX-512 kernel re-laying `b` on every call.
///
/// # Panics
/// As [`dot_matrix`] with `n` and `dim` those of `blocked`.
pub fn dot_matrix_blocked(
    a: &[f32],
    m: usize,
    b: &[f32],
    blocked: &BlockedVectors,
    out: &mut [f32],
) {
    let (n, dim) = (blocked.len(), blocked.dim());
    product(a, m, b, n, dim, Some(blocked), out)
}

fn product(
    a: &[f32],
    m: usize,
    b: &[f32],
    n: usize,
    dim: usize,
    blocked: Option<&BlockedVectors>,
    out: &mut [f32],
) {
    // Every kernel checks its operands itself (the table is public).
    (active().dot_matrix)(a, m, b, n, dim, blocked, out)
}

/// For each row of `blocks` (codes of `words` words in
/// [`fastscan`]'s blocks), its inner product with a query quantized to 4
/// bits a dimension, given as its table, into `out` (as many rows as
/// `out` holds up to the whole blocks).
///
/// # Panics
/// If `table` holds fewer than [`fastscan::table_bytes`]`(words)` bytes.
#[inline]
pub fn block_dots(blocks: &[u8], words: usize, table: &[u8], out: &mut [u32]) {
    (active().block_dots)(blocks, words, table, out)
}

/// For each code, the lowest distance its estimate's error bound allows,
/// from its count against the query's table and its factors (see
/// [`bits::BoundTerms`]), into `out` (as many as all three hold).
#[inline]
pub fn lower_bounds(
    terms: &bits::BoundTerms,
    dots: &[u32],
    factors: &[[f32; crate::CODE_FACTORS]],
    out: &mut [f32],
) {
    (active().lower_bounds)(terms, dots, factors, out)
}

/// `Σ_j code_j · query_j` of an 8-bit code (one byte a dimension) and a
/// float query, over the shorter of the two (see [`bytes`]).
#[inline]
pub fn byte_dot(code: &[u8], query: &[f32]) -> f32 {
    (active().byte_dot)(code, query)
}

/// `query − centroid` into `residual` (over the shortest of the three),
/// quantized to 4 bits a dimension: its table for [`block_dots`] into
/// `table`, and the sums RaBitQ's estimator takes from it (see
/// [`quantize`]).
///
/// # Panics
/// If `table` holds fewer than [`fastscan::table_bytes`] bytes for the
/// residual's words.
#[inline]
pub fn quantize(
    query: &[f32],
    centroid: &[f32],
    residual: &mut [f32],
    table: &mut [u8],
) -> quantize::Quantized {
    (active().quantize)(query, centroid, residual, table)
}

/// Asks the CPU to start loading the cache lines of `v` (at most its first
/// `max_lines` 64-byte lines) without waiting for them: a scan that knows
/// which rows it will read next overlaps their memory latency with other
/// work. A hint only: it never faults, even for a page not in memory, and
/// does nothing where the architecture has no prefetch instruction here.
#[inline]
pub fn prefetch<T>(v: &[T], max_lines: usize) {
    simd::prefetch(v, max_lines)
}

/// Squared L2 norm `Σ aᵢ²`.
#[inline]
pub fn norm_sq(a: &[f32]) -> f32 {
    dot(a, a)
}

/// Scales `v` to unit length: `s = Σ xᵢ²` in `f64` in index order,
/// `n = √s`, each `xᵢ := f32(f64(xᵢ) / n)`; a zero vector is left as it is.
pub fn normalize(v: &mut [f32]) {
    // In f64 and in index order, not with the SIMD kernels: the stored
    // bytes of a cosine vector are then the same on every machine, and
    // docs/format.md can state the arithmetic exactly.
    let sum: f64 = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    let norm = sum.sqrt();
    if norm > 0.0 && norm.is_finite() {
        v.iter_mut()
            .for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
}

/// Kernels in plain Rust over fixed-width lanes. The fixed-size inner loop
/// over `[f32; LANES]` is what lets the compiler keep `LANES` independent
/// accumulators in vector registers.
mod portable {
    const LANES: usize = 16;

    #[inline]
    pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0.0f32; LANES];
        let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        let tail: f32 = ca
            .remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(x, y)| (x - y) * (x - y))
            .sum();
        for (x, y) in ca.zip(cb) {
            for i in 0..LANES {
                let d = x[i] - y[i];
                acc[i] += d * d;
            }
        }
        acc.iter().sum::<f32>() + tail
    }

    #[inline]
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0.0f32; LANES];
        let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        let tail: f32 = ca
            .remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (x, y) in ca.zip(cb) {
            for i in 0..LANES {
                acc[i] += x[i] * y[i];
            }
        }
        acc.iter().sum::<f32>() + tail
    }

    pub fn l2_sq_batch(query: &[f32], vectors: &[f32], out: &mut [f32]) {
        batch(query, vectors, out, l2_sq)
    }

    pub fn dot_batch(query: &[f32], vectors: &[f32], out: &mut [f32]) {
        batch(query, vectors, out, dot)
    }

    #[inline(always)]
    fn batch(query: &[f32], vectors: &[f32], out: &mut [f32], kernel: fn(&[f32], &[f32]) -> f32) {
        if query.is_empty() {
            out.iter_mut().for_each(|d| *d = 0.0);
            return;
        }
        for (row, d) in vectors.chunks_exact(query.len()).zip(out.iter_mut()) {
            *d = kernel(query, row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Largest error allowed between an f32 kernel and the f64 reference: a
    /// small multiple of f32 epsilon times the sum of the magnitudes of the
    /// terms (the classic bound for a summation in any order).
    fn tolerance(terms_abs_sum: f64, n: usize) -> f64 {
        let eps = f32::EPSILON as f64;
        terms_abs_sum * eps * (4.0 + (n as f64).log2()) + 1e-6
    }

    #[test]
    fn prefetch_stays_within_the_slice_and_changes_nothing() {
        // Empty, shorter than a line, ending mid-line, longer than the
        // lines asked for, and the tail of a slice whose next page may not
        // be mapped.
        let v: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        for (range, lines) in [
            (0..0, 8),
            (0..3, 8),
            (5..21, 1),
            (0..1000, 8),
            (990..1000, 64),
        ] {
            prefetch(&v[range], lines);
        }
        prefetch(&v, 0);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
    }

    fn vectors(max_dim: usize) -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
        (1..=max_dim).prop_flat_map(|n| {
            (
                prop::collection::vec(-100.0f32..100.0, n),
                prop::collection::vec(-100.0f32..100.0, n),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_kernel_matches_the_reference((a, b) in vectors(4096)) {
            let want_l2 = reference::l2_sq(&a, &b);
            let want_dot = reference::dot(&a, &b);
            let l2_terms: f64 = a.iter().zip(&b).map(|(x, y)| ((*x as f64) - (*y as f64)).powi(2)).sum();
            let dot_terms: f64 = a.iter().zip(&b).map(|(x, y)| ((*x as f64) * (*y as f64)).abs()).sum();
            for isa in available() {
                let k = kernels_for(isa).unwrap();
                let got = (k.l2_sq)(&a, &b) as f64;
                prop_assert!((got - want_l2).abs() <= tolerance(l2_terms, a.len()),
                    "{isa} l2 dim {}: {got} vs {want_l2}", a.len());
                let got = (k.dot)(&a, &b) as f64;
                prop_assert!((got - want_dot).abs() <= tolerance(dot_terms, a.len()),
                    "{isa} dot dim {}: {got} vs {want_dot}", a.len());
            }
        }

        #[test]
        fn batch_kernels_equal_single_kernels(dim in 1usize..300, rows in 0usize..9, seed in any::<u64>()) {
            let mut state = seed;
            let mut next = || {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            };
            let query: Vec<f32> = (0..dim).map(|_| next()).collect();
            let block: Vec<f32> = (0..dim * rows).map(|_| next()).collect();
            for isa in available() {
                let k = kernels_for(isa).unwrap();
                let mut out = vec![f32::NAN; rows];
                (k.l2_sq_batch)(&query, &block, &mut out);
                for (row, d) in block.chunks_exact(dim).zip(&out) {
                    prop_assert_eq!(*d, (k.l2_sq)(&query, row), "{}", isa);
                }
                (k.dot_batch)(&query, &block, &mut out);
                for (row, d) in block.chunks_exact(dim).zip(&out) {
                    prop_assert_eq!(*d, (k.dot)(&query, row), "{}", isa);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every instruction set's fast-scan kernel against the
        /// bit-by-bit reference, over code widths that leave the pairs of
        /// a word and row counts that leave partial blocks; outputs past
        /// `out`'s rows and past the blocks are left alone.
        #[test]
        fn every_block_kernel_matches_the_reference(
            words in 0usize..26, rows in 0usize..80, seed in any::<u64>(), dense in any::<bool>(), short in 0usize..3,
        ) {
            let mut s = seed | 1;
            let mut next = move || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                if dense { s | s.rotate_left(17) } else { s }
            };
            let codes: Vec<u64> = (0..rows * words).map(|_| next()).collect();
            let levels: Vec<u8> = (0..64 * words).map(|_| (next() % 16) as u8).collect();
            let mut blocks = Vec::new();
            fastscan::interleave(&codes, words, &mut blocks);
            let mut table = vec![0u8; fastscan::table_bytes(words)];
            fastscan::table(&levels, words, &mut table);
            // `out` one row short of the rows, or as long, or longer.
            let wanted = (rows + short).saturating_sub(1);
            for isa in available() {
                let k = kernels_for(isa).unwrap();
                let mut out = vec![u32::MAX; wanted + 2];
                (k.block_dots)(&blocks, words, &table, &mut out[..wanted]);
                let filled = if words == 0 { wanted } else { wanted.min(fastscan::blocks_for(rows) * fastscan::BLOCK_ROWS) };
                for r in 0..filled {
                    let want = if r < rows { fastscan::reference(&codes[r * words..][..words], &levels) } else { 0 };
                    prop_assert_eq!(out[r], want, "{} row {} of {} words", isa, r, words);
                }
                prop_assert!(out[filled..].iter().all(|&o| o == u32::MAX), "{}: wrote past the rows", isa);
            }
        }
    }

    #[test]
    fn block_kernels_sum_long_codes_past_sixteen_bits() {
        // 1,100 words: 4,400 pairs of code bytes, every level 15 and
        // every bit set, 1,056,000 a row.
        let words = 1100;
        let codes = vec![u64::MAX; 33 * words];
        let mut blocks = Vec::new();
        fastscan::interleave(&codes, words, &mut blocks);
        let mut table = vec![0u8; fastscan::table_bytes(words)];
        fastscan::table(&vec![15; 64 * words], words, &mut table);
        for isa in available() {
            let k = kernels_for(isa).unwrap();
            let mut out = vec![0u32; 64];
            (k.block_dots)(&blocks, words, &table, &mut out);
            assert!(
                out[..33].iter().all(|&o| o == 15 * 64 * 1100),
                "{isa}: {:?}",
                &out[..3]
            );
            assert!(out[33..].iter().all(|&o| o == 0), "{isa}: padding rows");
        }
    }

    #[test]
    fn block_kernels_refuse_short_tables() {
        for isa in available() {
            let k = kernels_for(isa).unwrap();
            let short = std::panic::catch_unwind(|| {
                let mut out = [0u32; 1];
                (k.block_dots)(&[0; 512], 2, &[0; 511], &mut out);
            });
            assert!(short.is_err(), "{isa}: 511 table bytes for 2-word codes");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every instruction set's byte-code kernel against the `f64`
        /// reference, over lengths that leave partial lane groups and
        /// codes longer or shorter than the query (the shorter wins).
        #[test]
        fn every_byte_kernel_matches_the_reference(
            code in prop::collection::vec(any::<u8>(), 0..800),
            query in prop::collection::vec(-100.0f32..100.0, 0..800),
        ) {
            let want = bytes::reference(&code, &query);
            let terms: f64 = code.iter().zip(&query).map(|(&c, &q)| (f64::from(c) * f64::from(q)).abs()).sum();
            let n = code.len().min(query.len());
            for isa in available() {
                let k = kernels_for(isa).unwrap();
                let got = f64::from((k.byte_dot)(&code, &query));
                prop_assert!((got - want).abs() <= tolerance(terms, n.max(1)),
                    "{isa} {n} dimensions: {got} vs {want}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every instruction set's lower-bound kernel gives, bit for bit,
        /// what the one-code reference gives, over lengths that leave
        /// partial vector steps; outputs past the shorter input are left
        /// alone.
        #[test]
        fn every_bound_kernel_matches_the_reference(
            rows in 0usize..70,
            extra in 0usize..3,
            terms in proptest::array::uniform6(-100.0f32..100.0),
            seed in any::<u64>(),
        ) {
            let mut s = seed | 1;
            let mut next = move || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s
            };
            let terms = bits::BoundTerms {
                per_dot: terms[0],
                per_one: terms[1],
                offset: terms[2],
                constant: terms[3],
                per_error: terms[4],
                per_scale: terms[5],
            };
            let dots: Vec<u32> = (0..rows + extra).map(|_| (next() % 4000) as u32).collect();
            let factors: Vec<[f32; crate::CODE_FACTORS]> = (0..rows)
                .map(|_| std::array::from_fn(|_| (next() % 20_000) as f32 / 100.0 - 100.0))
                .collect();
            for isa in available() {
                let k = kernels_for(isa).unwrap();
                let mut out = vec![f32::NAN; rows + extra];
                (k.lower_bounds)(&terms, &dots, &factors, &mut out);
                for r in 0..rows {
                    let want = terms.estimate(dots[r], &factors[r]).1;
                    prop_assert_eq!(out[r].to_bits(), want.to_bits(), "{} code {}", isa, r);
                }
                prop_assert!(out[rows..].iter().all(|o| o.is_nan()), "{}: wrote past the factors", isa);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The portable quantization against the definition (each level
        /// the nearest grid point to its value, the table that of the
        /// levels, the sums against `f64`), and every instruction set's
        /// against the portable one, bit for bit, over lengths that leave
        /// partial groups; table bytes past the residual's are left alone.
        #[test]
        fn every_quantize_kernel_matches_the_portable_one(
            values in prop::collection::vec((-100.0f32..100.0, -100.0f32..100.0), 0..400),
            spare in 0usize..3,
        ) {
            let query: Vec<f32> = values.iter().map(|v| v.0).collect();
            let centroid: Vec<f32> = values.iter().map(|v| v.1).collect();
            let (n, words) = (values.len(), values.len().div_ceil(64));
            let bytes = fastscan::table_bytes(words);
            let run = |f: quantize::QuantizeFn| {
                let mut residual = vec![f32::NAN; n];
                let mut table = vec![0xAAu8; bytes + spare];
                let q = f(&query, &centroid, &mut residual, &mut table);
                (q, residual, table)
            };
            let (want, residual, table) = run(quantize::portable);
            let positions = quantize::reference_positions(&residual, &want);
            let mut levels = vec![0u8; 64 * words];
            let mut level_sum = 0;
            for (j, &pos) in positions.iter().enumerate() {
                let group = 64 * (j / 16) + 16 * [0, 2, 1, 3][j % 16 / 4];
                let level = table[group + (1 << (j % 4))];
                prop_assert!((f64::from(level) - pos).abs() <= 0.5 + 1e-4 && level <= 15,
                    "value {j}: level {level} at position {pos}");
                levels[j] = level;
                level_sum += u32::from(level);
                prop_assert_eq!(residual[j], query[j] - centroid[j]);
            }
            let mut expected = vec![0u8; bytes];
            fastscan::table(&levels, words, &mut expected);
            prop_assert_eq!(&table[..bytes], &expected[..]);
            prop_assert_eq!(want.level_sum, level_sum);
            prop_assert!(table[bytes..].iter().all(|&b| b == 0xAA));
            let y = |j: usize| f64::from(residual[j]);
            let sums = [
                (want.norm_sq, (0..n).map(|j| y(j) * y(j)).sum::<f64>(), (0..n).map(|j| y(j) * y(j)).sum::<f64>()),
                (want.sum, (0..n).map(y).sum(), (0..n).map(|j| y(j).abs()).sum()),
                (
                    want.query_dot_centroid,
                    (0..n).map(|j| f64::from(query[j]) * f64::from(centroid[j])).sum(),
                    (0..n).map(|j| (f64::from(query[j]) * f64::from(centroid[j])).abs()).sum(),
                ),
            ];
            for (got, exact, terms) in sums {
                prop_assert!((f64::from(got) - exact).abs() <= tolerance(terms, n.max(1)), "{got} vs {exact}");
            }
            for isa in available() {
                let k = kernels_for(isa).unwrap();
                let (got, got_residual, got_table) = run(k.quantize);
                prop_assert_eq!(got, want, "{}", isa);
                prop_assert_eq!(&got_residual, &residual, "{}", isa);
                prop_assert_eq!(&got_table, &table, "{}", isa);
            }
        }
    }

    #[test]
    fn mismatched_lengths_use_the_shorter() {
        for isa in available() {
            let k = kernels_for(isa).unwrap();
            assert_eq!((k.l2_sq)(&[1.0, 2.0, 3.0], &[1.0, 2.0]), 0.0, "{isa}");
            assert_eq!((k.dot)(&[1.0, 2.0], &[3.0]), 3.0, "{isa}");
            assert_eq!((k.dot)(&[], &[]), 0.0, "{isa}");
            let mut out = [7.0; 3];
            (k.l2_sq_batch)(&[1.0, 1.0], &[1.0, 1.0, 0.0], &mut out);
            assert_eq!(out, [0.0, 7.0, 7.0], "{isa}: a partial row is not a row");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every instruction set's matrix product, over shapes that leave
        /// partial row groups and partial blocks, against the f64 reference;
        /// values outside `m × n` are never written.
        #[test]
        fn every_dot_matrix_matches_the_reference(
            (m, n, dim, seed) in (1usize..40, 1usize..70, 1usize..150, any::<u64>())
        ) {
            let mut s = seed | 1;
            let mut next = move || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 * 200.0 - 100.0
            };
            let a: Vec<f32> = (0..m * dim).map(|_| next()).collect();
            let b: Vec<f32> = (0..n * dim).map(|_| next()).collect();
            for isa in available() {
                let k = kernels_for(isa).unwrap();
                let mut out = vec![f32::NAN; m * n + 3];
                (k.dot_matrix)(&a, m, &b, n, dim, None, &mut out);
                let mut pre = vec![f32::NAN; m * n + 3];
                let blocked = BlockedVectors::new(&b, dim);
                (k.dot_matrix)(&a, m, &b, n, dim, Some(&blocked), &mut pre);
                prop_assert_eq!(&pre[..m * n], &out[..m * n], "{}: pre-blocked", isa);
                prop_assert!(pre[m * n..].iter().all(|x| x.is_nan()), "{}: wrote past m × n", isa);
                for i in 0..m {
                    for j in 0..n {
                        let (x, y) = (&a[i * dim..][..dim], &b[j * dim..][..dim]);
                        let want = reference::dot(x, y);
                        let terms: f64 = x.iter().zip(y).map(|(p, q)| (*p as f64 * *q as f64).abs()).sum();
                        let got = out[i * n + j] as f64;
                        prop_assert!((got - want).abs() <= tolerance(terms, dim),
                            "{}: ({}, {}) of {}x{}x{}: {} vs {}", isa, i, j, m, n, dim, got, want);
                    }
                }
                prop_assert!(out[m * n..].iter().all(|x| x.is_nan()), "{}: wrote past m × n", isa);
            }
        }
    }

    #[test]
    fn every_dot_matrix_refuses_short_operands_and_handles_empty_ones() {
        for isa in available() {
            let k = kernels_for(isa).unwrap();
            let (a, b) = (vec![1.0f32; 6], vec![1.0f32; 6]);
            let short = std::panic::catch_unwind(|| {
                let mut out = vec![0.0f32; 3];
                (k.dot_matrix)(&a, 2, &b, 2, 3, None, &mut out);
            });
            assert!(short.is_err(), "{isa}: a 2 × 2 product into 3 values");
            let mut out = vec![7.0f32; 4];
            (k.dot_matrix)(&a, 2, &b, 2, 0, None, &mut out);
            assert_eq!(out, [0.0; 4], "{isa}: dimension 0");
            (k.dot_matrix)(&a, 0, &b, 2, 3, None, &mut out);
            assert_eq!(out, [0.0; 4], "{isa}: no rows, nothing written");
        }
    }

    #[test]
    fn dot_matrix_matches_pairwise_dots() {
        let (m, n, dim) = (5, 7, 13);
        let a: Vec<f32> = (0..m * dim).map(|i| (i % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..n * dim).map(|i| (i % 7) as f32 * 0.5).collect();
        let mut out = vec![0.0; m * n];
        dot_matrix(&a, m, &b, n, dim, &mut out);
        for i in 0..m {
            for j in 0..n {
                let want = reference::dot(&a[i * dim..][..dim], &b[j * dim..][..dim]);
                assert!((out[i * n + j] as f64 - want).abs() < 1e-3, "({i},{j})");
            }
        }
    }

    #[test]
    fn normalize_gives_unit_length_and_keeps_zero() {
        let mut v = [3.0, 4.0];
        normalize(&mut v);
        assert!((norm_sq(&v) - 1.0).abs() < 1e-6);
        let mut z = [0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, [0.0, 0.0]);
    }

    #[test]
    fn the_best_available_isa_is_active() {
        let isa = active().isa;
        assert!(available().contains(&isa));
        if std::env::var_os("VDB_SIMD").is_none() {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                assert_eq!(isa, Isa::Avx512);
            }
        }
    }
}
