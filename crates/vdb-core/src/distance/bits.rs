//! What the code kernels share: the bits of the quantized query, where
//! each factor sits in a code's record, and the lower-bound kernel that
//! turns a code's count (from [`fastscan`](super::fastscan)'s kernels)
//! and factors into the lowest distance its error bound allows.

use crate::CODE_FACTORS;

/// Bits a dimension of a query quantized for the code kernels: a level
/// is `0 ..= 15`.
pub const QUERY_BITS: usize = 4;

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

/// A query's constants that turn a code's count against the query (its table)
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
