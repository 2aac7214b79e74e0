//! The query side: one probed list's quantized query and the estimator.

use vdb_core::distance::{self, bits::BoundTerms, fastscan};
use vdb_core::{CODE_FACTORS, EXTENDED_FACTORS, ListId, Metric};

use super::{Codebook, EXTENDED_ERROR, EXTENDED_SCALE, code_words};

/// A row's estimated distance and the lowest distance the bound allows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The estimate.
    pub distance: f32,
    /// The estimate less its error bound: a row whose `lower` exceeds a
    /// distance already found cannot beat it (but for the bound's small
    /// failure probability).
    pub lower: f32,
}

/// A query prepared against one list's centroid: its residual quantized to
/// a table for [`vdb_core::distance::block_dots`], and the constants that
/// turn a row's bit count and factors into an [`Estimate`]. Reused from
/// list to list.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    table: Vec<u8>,
    residual: Vec<f32>,
    /// `⟨x̄, y'⟩ = per_dot · dots + per_one · ones + offset`; `constant`
    /// is the query's part of every row's distance; the bound is
    /// `per_error · error + per_scale · scale`.
    terms: BoundTerms,
    /// `127.5 · Σ y'_j`: what an extended code's byte sum over-counts.
    extended_offset: f32,
}

impl ListQuery {
    /// An empty one, to be [`prepare`](ListQuery::prepare)d.
    pub fn new() -> ListQuery {
        ListQuery::default()
    }

    /// Prepares for the rows of `list`: `rotated_query` is the query
    /// (prepared for the metric) rotated by `codebook`'s rotation,
    /// `epsilon` the bound's multiplier.
    ///
    /// With `y'` the rotated residual, `lo`/`Δ` its smallest value and
    /// step over 15 levels, `y'_j = lo + Δ·u_j + e_j`: then
    /// `⟨b, y'⟩ = lo·|b| + Δ·⟨b, u⟩ + ⟨b, e⟩`, and with the bits about
    /// half set independently of the rounding, `⟨b, e⟩` is `Σe/2` on
    /// average with a spread of `‖e‖/2`; the estimate adds the average and
    /// the bound `ε` spreads.
    pub fn prepare(
        &mut self,
        codebook: &Codebook,
        list: ListId,
        rotated_query: &[f32],
        epsilon: f32,
    ) {
        let dim = codebook.dim();
        let centroid = codebook.rotated_centroid(list);
        // The kernel writes every value and table byte of a list inside
        // the codebook; one outside it has no centroid, and then nothing
        // of the previous list's may remain.
        self.residual.resize(dim, 0.0);
        self.table.resize(fastscan::table_bytes(code_words(dim)), 0);
        if centroid.len() != dim {
            self.residual.fill(0.0);
            self.table.fill(0);
        }
        let q = distance::quantize(rotated_query, centroid, &mut self.residual, &mut self.table);
        self.extended_offset = 127.5 * q.sum;
        let root_d = (dim as f32).sqrt();
        self.terms = BoundTerms {
            per_dot: 2.0 * q.step / root_d,
            per_one: 2.0 * q.lo / root_d,
            // `Σ (e_j − y'_j) = −(dim·lo + Δ·Σ u_j)`, the estimate's offset.
            offset: -(dim as f32 * q.lo + q.step * q.level_sum as f32) / root_d,
            constant: match codebook.metric {
                Metric::L2 => q.norm_sq,
                Metric::InnerProduct => -q.query_dot_centroid,
                Metric::Cosine => 1.0 - q.query_dot_centroid,
            },
            per_error: epsilon * q.norm_sq.sqrt() / ((dim.max(2) - 1) as f32).sqrt(),
            per_scale: epsilon * q.rounding_sq.sqrt() / root_d,
        };
    }

    /// The query's table, for [`vdb_core::distance::block_dots`].
    pub fn table(&self) -> &[u8] {
        &self.table
    }

    /// [`Estimate::lower`] of each row whose code gave `dots[i]` and
    /// whose factors are `factors[i]`, into `out` (as many as all three
    /// hold): the scan's pass over a chunk, one SIMD kernel call.
    pub fn lower_bounds(&self, dots: &[u32], factors: &[[f32; CODE_FACTORS]], out: &mut [f32]) {
        distance::lower_bounds(&self.terms, dots, factors, out)
    }

    /// The estimate for a row whose code gave `dots` against
    /// [`table`](ListQuery::table) and whose factors are `factors`.
    #[inline]
    pub fn estimate(&self, dots: u32, factors: &[f32; CODE_FACTORS]) -> Estimate {
        let (distance, lower) = self.terms.estimate(dots, factors);
        Estimate { distance, lower }
    }

    /// The estimate for a row from its extended code `code` (`dim`
    /// bytes), its extended factors `factors` and its 1-bit factors'
    /// `add` (see [`Codebook::encode_extended`]): the same estimator with
    /// the query's residual in full precision, so the bound has no
    /// rounding term.
    #[inline]
    pub fn estimate_extended(
        &self,
        code: &[u8],
        add: f32,
        factors: &[f32; EXTENDED_FACTORS],
    ) -> Estimate {
        let inner = distance::byte_dot(code, &self.residual) - self.extended_offset;
        let distance = add + self.terms.constant - factors[EXTENDED_SCALE] * inner;
        Estimate {
            distance,
            lower: distance - self.terms.per_error * factors[EXTENDED_ERROR],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CoarseQuantizer;
    use crate::rabitq::{DEFAULT_EPSILON, SCALE};
    use crate::rng::SplitMix64;
    use proptest::prelude::*;

    fn gaussian(rng: &mut SplitMix64) -> f32 {
        // Box–Muller; one of the pair is enough here.
        let u1 = (rng.next_f32() as f64).max(1e-12);
        let u2 = rng.next_f32() as f64;
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }

    fn data(rows: usize, dim: usize, seed: u64, metric: Metric) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        let mut v: Vec<f32> = (0..rows * dim).map(|_| gaussian(&mut rng) + 0.5).collect();
        for row in v.chunks_exact_mut(dim) {
            metric.prepare(row);
        }
        v
    }

    /// One code's count against the prepared query's table, through the
    /// scan's kernel (the code alone in a block).
    fn dots_of(code: &[u64], lq: &ListQuery) -> u32 {
        let mut block = Vec::new();
        fastscan::interleave(code, code.len(), &mut block);
        let mut dots = [0u32];
        distance::block_dots(&block, code.len(), lq.table(), &mut dots);
        dots[0]
    }

    /// Value `j`'s level in the prepared query's table: entries 1, 2, 4
    /// and 8 of a group are its four levels.
    fn level_of(lq: &ListQuery, j: usize) -> u8 {
        let slot = [0, 2, 1, 3][j % 16 / 4];
        lq.table()[64 * (j / 16) + 16 * slot + (1 << (j % 4))]
    }

    /// 300 rows, 20 queries and a codebook for one list whose centroid is
    /// drawn like them, from `seed`.
    fn fixture(dim: usize, metric: Metric, seed: u64) -> (Vec<f32>, Vec<f32>, Codebook) {
        let rows = data(300, dim, seed, metric);
        let queries = data(20, dim, seed ^ 1, metric);
        let centroid = data(1, dim, seed ^ 2, metric);
        let quantizer = CoarseQuantizer::new(dim, metric, centroid).unwrap();
        (rows, queries, Codebook::new(&quantizer, seed ^ 3))
    }

    /// Estimates every row of `rows` against every query, and returns how
    /// many estimates fell outside their bound and the mean absolute
    /// error relative to the spread of true distances.
    fn check(dim: usize, metric: Metric, epsilon: f32, seed: u64) -> (usize, usize, f64) {
        let (rows, queries, book) = fixture(dim, metric, seed);
        let mut scratch = Vec::new();
        let mut code = vec![0u64; book.words()];
        let mut coded = Vec::new();
        for v in rows.chunks_exact(dim) {
            let f = book.encode(ListId(0), v, &mut scratch, &mut code);
            coded.push((code.clone(), f));
        }
        let mut rq = vec![0.0; dim];
        let mut lq = ListQuery::new();
        let (mut outside, mut total, mut abs_err, mut spread) = (0, 0, 0.0f64, 0.0f64);
        for q in queries.chunks_exact(dim) {
            book.rotation().apply(q, &mut rq);
            lq.prepare(&book, ListId(0), &rq, epsilon);
            for ((c, f), v) in coded.iter().zip(rows.chunks_exact(dim)) {
                let dots = [dots_of(c, &lq)];
                let e = lq.estimate(dots[0], f);
                let mut lower = [0.0f32];
                lq.lower_bounds(&dots, std::slice::from_ref(f), &mut lower);
                assert_eq!(lower[0], e.lower, "the chunk pass and the estimate agree");
                let exact = metric.distance(q, v);
                let bound = e.distance - e.lower;
                total += 1;
                if (e.distance - exact).abs() > bound + 1e-4 * (1.0 + exact.abs()) {
                    outside += 1;
                }
                abs_err += f64::from((e.distance - exact).abs());
                spread += f64::from(exact.abs());
            }
        }
        (outside, total, abs_err / spread)
    }

    /// The error behaves like a normal variable with the bound's scale as
    /// its spread: with the paper's ε₀ = 1.9 about 6 % of estimates fall
    /// outside (a two-sided 1.9σ tail is 5.7 %), with ε = 4 almost none;
    /// for every metric, at dimensions that are and are not powers of two.
    #[test]
    fn the_bound_holds_like_a_normal_tail() {
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            for dim in [16, 100, 128, 384] {
                let (outside, total, rel) = check(dim, metric, DEFAULT_EPSILON, 11);
                assert!(
                    outside * 100 <= total * 6,
                    "{metric:?} dim {dim}: {outside} of {total} estimates outside ε₀'s bound"
                );
                let (outside, total, _) = check(dim, metric, 4.0, 11);
                assert!(
                    outside * 1000 <= total,
                    "{metric:?} dim {dim}: {outside} of {total} estimates outside ε = 4's bound"
                );
                // Inner products of these rows are spread around 0: their
                // relative error says little.
                if metric != Metric::InnerProduct {
                    assert!(rel < 0.25, "{metric:?} dim {dim}: relative error {rel}");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Wider bounds never let more estimates out, and a very wide one
        /// holds for every row.
        #[test]
        fn wider_bounds_hold_more_often(dim in 2usize..200, seed in any::<u64>()) {
            let metric = Metric::L2;
            let (tight, total, _) = check(dim, metric, 1.0, seed);
            let (paper, _, _) = check(dim, metric, DEFAULT_EPSILON, seed);
            let (wide, _, _) = check(dim, metric, 8.0, seed);
            prop_assert!(paper <= tight && wide <= paper, "{tight} {paper} {wide}");
            prop_assert!(paper * 10 <= total, "{paper} of {total} outside");
            prop_assert_eq!(wide, 0);
        }
    }

    /// A list outside the codebook (no centroid) leaves nothing of the
    /// list prepared before it.
    #[test]
    fn a_list_outside_the_codebook_keeps_nothing_of_the_previous() {
        let (_, queries, book) = fixture(70, Metric::L2, 4);
        let mut rq = vec![0.0; 70];
        book.rotation().apply(&queries[..70], &mut rq);
        let mut lq = ListQuery::new();
        lq.prepare(&book, ListId(0), &rq, 2.0);
        assert!(lq.table().iter().any(|&w| w != 0));
        lq.prepare(&book, ListId(1), &rq, 2.0);
        assert!(lq.table().iter().all(|&w| w == 0));
        assert!(lq.residual.iter().all(|&y| y == 0.0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The prepared planes and terms are what quantizing the residual
        /// one value at a time gives: bit `p` of value `j`'s level is bit
        /// `j` of plane `p`, and the offset and rounding term agree with
        /// the plain sums.
        #[test]
        fn preparation_matches_value_by_value(dim in 1usize..300, seed in any::<u64>()) {
            let metric = Metric::L2;
            let centroid = data(1, dim, seed, metric);
            let quantizer = CoarseQuantizer::new(dim, metric, centroid).unwrap();
            let book = Codebook::new(&quantizer, seed ^ 1);
            let q = data(1, dim, seed ^ 2, metric);
            let mut rq = vec![0.0; dim];
            book.rotation().apply(&q, &mut rq);
            let mut lq = ListQuery::new();
            lq.prepare(&book, ListId(0), &rq, 2.0);
            let y: Vec<f32> = rq.iter().zip(book.rotated_centroid(ListId(0))).map(|(a, b)| a - b).collect();
            let lo = y.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = y.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let step = if hi > lo { (hi - lo) / distance::quantize::LEVELS } else { 0.0 };
            let inverse = if step > 0.0 { 1.0 / step } else { 0.0 };
            let words = code_words(dim);
            let (mut sum, mut rounding, mut rounding_sq) = (0.0f64, 0.0f64, 0.0f64);
            for (j, &v) in y.iter().enumerate() {
                let level = ((v - lo) * inverse).round_ties_even().min(15.0) as u32;
                prop_assert_eq!(u32::from(level_of(&lq, j)), level, "value {}", j);
                let e = f64::from(v) - (f64::from(lo) + f64::from(step) * f64::from(level));
                sum += f64::from(v);
                rounding += e;
                rounding_sq += e * e;
            }
            prop_assert_eq!(lq.table().len(), fastscan::table_bytes(words));
            for j in dim..64 * words {
                prop_assert_eq!(level_of(&lq, j), 0, "padding value {} has a level", j);
            }
            let root_d = (dim as f64).sqrt();
            let tolerance = 1e-4 * (1.0 + sum.abs() + y.iter().map(|v| f64::from(v.abs())).sum::<f64>());
            prop_assert!((f64::from(lq.terms.offset) - (rounding - sum) / root_d).abs() <= tolerance / root_d);
            let per_scale = 2.0 * rounding_sq.sqrt() / root_d;
            prop_assert!((f64::from(lq.terms.per_scale) - per_scale).abs() <= 1e-4 * (1.0 + per_scale));
        }
    }

    /// [`check`] for the extended codes: estimates outside their bound,
    /// estimates, the mean absolute error relative to the true distances,
    /// and the mean width of the bound relative to the 1-bit one's.
    fn check_extended(
        dim: usize,
        metric: Metric,
        epsilon: f32,
        seed: u64,
    ) -> (usize, usize, f64, f64) {
        let (rows, queries, book) = fixture(dim, metric, seed);
        let mut encoder = crate::rabitq::Encoder::new(&book, true);
        let coded: Vec<_> = rows
            .chunks_exact(dim)
            .map(|v| {
                let c = encoder.encode(ListId(0), v);
                let (bytes, ext) = c.extended.unwrap();
                (c.code.to_vec(), c.factors, bytes.to_vec(), ext)
            })
            .collect();
        let mut rq = vec![0.0; dim];
        let mut lq = ListQuery::new();
        let (mut outside, mut total, mut abs_err, mut spread) = (0, 0, 0.0f64, 0.0f64);
        let (mut width, mut width_1bit) = (0.0f64, 0.0f64);
        for q in queries.chunks_exact(dim) {
            book.rotation().apply(q, &mut rq);
            lq.prepare(&book, ListId(0), &rq, epsilon);
            for ((code, f, bytes, ext), v) in coded.iter().zip(rows.chunks_exact(dim)) {
                let e = lq.estimate_extended(bytes, f[crate::rabitq::ADD], ext);
                let one_bit = lq.estimate(dots_of(code, &lq), f);
                let exact = metric.distance(q, v);
                total += 1;
                if (e.distance - exact).abs() > (e.distance - e.lower) + 1e-4 * (1.0 + exact.abs())
                {
                    outside += 1;
                }
                abs_err += f64::from((e.distance - exact).abs());
                spread += f64::from(exact.abs());
                width += f64::from(e.distance - e.lower);
                width_1bit += f64::from(one_bit.distance - one_bit.lower);
            }
        }
        (outside, total, abs_err / spread, width / width_1bit)
    }

    /// The extended codes' estimates hold their (much narrower) bound
    /// like the 1-bit ones: about 6 % outside at ε₀, almost none at ε = 4;
    /// their error is a small fraction of the 1-bit codes'.
    #[test]
    fn extended_estimates_hold_a_narrower_bound() {
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            for dim in [16, 100, 128, 384] {
                let (outside, total, rel, width) = check_extended(dim, metric, DEFAULT_EPSILON, 11);
                assert!(
                    outside * 100 <= total * 6,
                    "{metric:?} dim {dim}: {outside} of {total} extended estimates outside ε₀'s bound"
                );
                let (outside, total, _, _) = check_extended(dim, metric, 4.0, 11);
                assert!(
                    outside * 1000 <= total,
                    "{metric:?} dim {dim}: {outside} of {total} outside ε = 4's bound"
                );
                assert!(
                    width < 0.05,
                    "{metric:?} dim {dim}: bound {width} of the 1-bit one's"
                );
                if metric != Metric::InnerProduct {
                    assert!(rel < 0.01, "{metric:?} dim {dim}: relative error {rel}");
                }
            }
        }
    }

    /// A row equal to its centroid is estimated exactly.
    #[test]
    fn a_row_at_its_centroid_is_exact() {
        let dim = 64;
        let c = data(1, dim, 5, Metric::L2);
        let quantizer = CoarseQuantizer::new(dim, Metric::L2, c.clone()).unwrap();
        let book = Codebook::new(&quantizer, 9);
        let mut code = vec![0; book.words()];
        let f = book.encode(ListId(0), &c, &mut Vec::new(), &mut code);
        assert_eq!(f[SCALE], 0.0);
        let q = data(1, dim, 6, Metric::L2);
        let mut rq = vec![0.0; dim];
        book.rotation().apply(&q, &mut rq);
        let mut lq = ListQuery::new();
        lq.prepare(&book, ListId(0), &rq, DEFAULT_EPSILON);
        let e = lq.estimate(dots_of(&code, &lq), &f);
        let exact = Metric::L2.distance(&q, &c);
        assert!(
            (e.distance - exact).abs() <= 1e-3 * exact,
            "{} vs {exact}",
            e.distance
        );
        assert_eq!(e.lower, e.distance);
    }
}
