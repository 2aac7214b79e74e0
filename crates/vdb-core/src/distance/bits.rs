//! Bit-code kernels: the inner product of 1-bit vector codes with a query
//! quantized to 4 bits per dimension, the scan kernel of RaBitQ.
//!
//! A code is `words` `u64`s, bit `j % 64` of word `j / 64` standing for
//! dimension `j`. The query is given as [`PLANES`] bit planes of `words`
//! words each: bit `j` of plane `p` is bit `p` of the query's 4-bit value
//! `u_j`. Then `Σ_j code_j · u_j = Σ_p 2^p · popcount(code ∧ plane_p)`, which
//! is what every kernel computes, exactly (integer arithmetic: all
//! instruction sets give identical results).

use crate::CODE_FACTORS;

/// Bit planes of a query quantized to 4 bits per dimension.
pub const PLANES: usize = 4;

/// Position of each factor in a code's record of [`CODE_FACTORS`] floats
/// (what the estimator needs of the row besides its bits; vdb-ivf's
/// `rabitq` module says what each is).
pub const ADD: usize = 0;
/// See [`ADD`].
pub const SCALE: usize = 1;
/// See [`ADD`].
pub const ERROR: usize = 2;
/// See [`ADD`].
pub const ONES: usize = 3;

/// A query's constants that turn a code's count against the query's planes
/// (`dots`) and the code's factors `f` into its estimated distance and the
/// lowest distance the error bound allows:
///
/// ```text
/// inner    = per_dot · dots + per_one · f[ONES] + offset
/// estimate = f[ADD] + constant − f[SCALE] · inner
/// lower    = estimate − (per_error · f[ERROR] + per_scale · f[SCALE])
/// ```
///
/// in f32, in this order, in every kernel (so all give identical results).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct BoundTerms {
    /// See the type's formula.
    pub per_dot: f32,
    /// See the type's formula.
    pub per_one: f32,
    /// See the type's formula.
    pub offset: f32,
    /// See the type's formula.
    pub constant: f32,
    /// See the type's formula.
    pub per_error: f32,
    /// See the type's formula.
    pub per_scale: f32,
}

impl BoundTerms {
    /// `(estimate, lower)` of one code: the reference of
    /// [`LowerBoundsFn`].
    #[inline(always)]
    pub fn estimate(&self, dots: u32, f: &[f32; CODE_FACTORS]) -> (f32, f32) {
        let inner = self.per_dot * dots as f32 + self.per_one * f[ONES] + self.offset;
        let estimate = f[ADD] + self.constant - f[SCALE] * inner;
        (
            estimate,
            estimate - (self.per_error * f[ERROR] + self.per_scale * f[SCALE]),
        )
    }
}

/// `(terms, dots, factors, out)`: the lower bound of each code whose count
/// is `dots[i]` and whose factors are `factors[i]` into `out[i]` (as many
/// as all three hold), as [`BoundTerms::estimate`] computes it.
pub type LowerBoundsFn = fn(&BoundTerms, &[u32], &[[f32; CODE_FACTORS]], &mut [f32]);

/// The lower-bound kernel's one body, written to vectorise: each
/// instruction set compiles it with its own features.
#[inline(always)]
pub(super) fn lower_bounds_generic(
    terms: &BoundTerms,
    dots: &[u32],
    factors: &[[f32; CODE_FACTORS]],
    out: &mut [f32],
) {
    for ((o, &d), f) in out.iter_mut().zip(dots).zip(factors) {
        *o = terms.estimate(d, f).1;
    }
}

/// The portable lower-bound kernel as a table entry.
pub(super) fn lower_bounds_portable(
    terms: &BoundTerms,
    dots: &[u32],
    factors: &[[f32; CODE_FACTORS]],
    out: &mut [f32],
) {
    lower_bounds_generic(terms, dots, factors, out)
}

/// `(codes, words, planes, out)`: for each `words`-long code in `codes`,
/// `Σ_p 2^p · popcount(code ∧ plane_p)` into `out` (as many codes as both
/// hold; a partial code at the end is not a code). `planes` holds
/// [`PLANES`] × `words` words, plane after plane.
pub type BitDotsFn = fn(&[u64], usize, &[u64], &mut [u32]);

/// The reference: one code against the planes, bit by bit.
pub fn reference(code: &[u64], planes: &[u64]) -> u32 {
    let words = code.len();
    let mut sum = 0u32;
    for (w, &c) in code.iter().enumerate() {
        for bit in 0..64 {
            if c >> bit & 1 == 1 {
                let value: u32 = (0..PLANES)
                    .map(|p| ((planes[p * words + w] >> bit & 1) as u32) << p)
                    .sum();
                sum += value;
            }
        }
    }
    sum
}

/// Checks the shapes every kernel relies on.
///
/// # Panics
/// If `planes` is shorter than [`PLANES`] × `words`: the caller builds
/// both from one dimension, so a mismatch is a programming error.
#[inline]
pub(super) fn check(words: usize, planes: &[u64]) {
    assert!(
        planes.len() >= PLANES * words,
        "bit_dots: {} plane words for codes of {words} words",
        planes.len()
    );
}

/// The portable kernel, written so that the compiler can use a population
/// count instruction where the target (or an enclosing `target_feature`)
/// has one.
#[inline(always)]
pub(super) fn generic(codes: &[u64], words: usize, planes: &[u64], out: &mut [u32]) {
    check(words, planes);
    if words == 0 {
        out.iter_mut().for_each(|o| *o = 0);
        return;
    }
    let (p0, rest) = planes.split_at(words);
    let (p1, rest) = rest.split_at(words);
    let (p2, p3) = rest.split_at(words);
    for (code, o) in codes.chunks_exact(words).zip(out.iter_mut()) {
        let mut sum = 0u32;
        for w in 0..words {
            let c = code[w];
            sum += (c & p0[w]).count_ones()
                + ((c & p1[w]).count_ones() << 1)
                + ((c & p2[w]).count_ones() << 2)
                + ((c & p3[w]).count_ones() << 3);
        }
        *o = sum;
    }
}

/// The portable kernel as a table entry.
pub(super) fn portable(codes: &[u64], words: usize, planes: &[u64], out: &mut [u32]) {
    generic(codes, words, planes, out)
}
