//! The coarse quantizer: `nlist` centroids, the query-to-centroid ranking of
//! the coarse search, and bulk assignment of vectors to lists.

use rayon::prelude::*;
use vdb_core::distance::{self, BlockedVectors};
use vdb_core::{ListId, Metric};

use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::rabitq::Codebook;

/// Rows per block of the bulk assignment: a block's `rows × nlist` distance
/// matrix stays in the core's cache for nlist up to a few thousand.
const ASSIGN_BLOCK: usize = 256;

/// The centroids of one generation and the metric they are compared with.
#[derive(Debug, Clone)]
pub struct CoarseQuantizer {
    dim: usize,
    metric: Metric,
    centroids: Vec<f32>,
    /// `‖c‖²` of each centroid, for the `‖x‖² + ‖c‖² − 2x·c` form of L2.
    norms: Vec<f32>,
    /// The centroids again, laid out for fast one-query products.
    blocked: BlockedVectors,
    /// The 2-D map of the centroids, computed on first use.
    layout: OnceLock<Layout>,
    /// The RaBitQ codebook, when rows are coded (`IVF_RABITQ`).
    codebook: Option<Arc<Codebook>>,
}

impl CoarseQuantizer {
    /// A quantizer over `centroids` (`nlist × dim`, row-major).
    pub fn new(dim: usize, metric: Metric, centroids: Vec<f32>) -> Result<CoarseQuantizer> {
        if dim == 0 {
            return Err(vdb_core::Error::invalid("dim", "must be at least 1").into());
        }
        if centroids.is_empty() || !centroids.len().is_multiple_of(dim) {
            return Err(vdb_core::Error::invalid(
                "centroids",
                format!(
                    "{} values is not a positive multiple of dim {dim}",
                    centroids.len()
                ),
            )
            .into());
        }
        for c in centroids.chunks_exact(dim) {
            vdb_core::validate_vector(c, dim)?;
        }
        let norms = centroids.chunks_exact(dim).map(distance::norm_sq).collect();
        let blocked = BlockedVectors::new(&centroids, dim);
        Ok(CoarseQuantizer {
            dim,
            metric,
            centroids,
            norms,
            blocked,
            layout: OnceLock::new(),
            codebook: None,
        })
    }

    /// This quantizer with a RaBitQ codebook whose rotation `seed`
    /// defines: searches then use the codes of the lists that have them.
    pub fn with_codes(mut self, seed: u64) -> CoarseQuantizer {
        self.codebook = Some(Arc::new(Codebook::new(&self, seed)));
        self
    }

    /// The RaBitQ codebook, if rows are coded.
    pub fn codebook(&self) -> Option<&Codebook> {
        self.codebook.as_deref()
    }

    /// The 2-D map of these centroids (PCA; see [`Layout`]), computed once.
    pub fn layout(&self) -> &Layout {
        self.layout
            .get_or_init(|| Layout::of_centroids(&self.centroids, self.dim))
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of lists.
    pub fn nlist(&self) -> usize {
        self.norms.len()
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// All centroids, row-major.
    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    /// The centroids in the blocked layout of the coarse search.
    pub(crate) fn blocked(&self) -> &BlockedVectors {
        &self.blocked
    }

    /// The centroid of `list` (empty if out of range).
    pub fn centroid(&self, list: ListId) -> &[f32] {
        self.centroids
            .chunks_exact(self.dim)
            .nth(list.index())
            .unwrap_or(&[])
    }

    /// Coarse search: the `nprobe` lists whose centroids are nearest to
    /// `query` (already prepared for the metric), nearest first, with their
    /// distances (ties to the lower list). `nprobe` is capped at `nlist`.
    /// `distances` is scratch space reused across calls.
    pub fn probe(
        &self,
        query: &[f32],
        nprobe: usize,
        distances: &mut Vec<f32>,
        out: &mut Vec<(ListId, f32)>,
    ) {
        distances.resize(self.nlist(), 0.0);
        self.blocked.dots(query, distances);
        self.probe_from_dots(distance::norm_sq(query), distances, nprobe, out);
    }

    /// The second half of [`CoarseQuantizer::probe`], for callers that
    /// computed `dots[j] = query · centroid_j` themselves (e.g. for a batch of
    /// queries with one matrix product): turns them into distances in place
    /// and selects the `nprobe` nearest lists.
    pub fn probe_from_dots(
        &self,
        query_norm_sq: f32,
        dots: &mut [f32],
        nprobe: usize,
        out: &mut Vec<(ListId, f32)>,
    ) {
        match self.metric {
            Metric::L2 => {
                for (d, &cn) in dots.iter_mut().zip(&self.norms) {
                    *d = (query_norm_sq + cn - 2.0 * *d).max(0.0);
                }
            }
            Metric::InnerProduct => dots.iter_mut().for_each(|d| *d = -*d),
            Metric::Cosine => dots.iter_mut().for_each(|d| *d = (1.0 - *d).max(0.0)),
        }
        // Nearest first, ties to the lower list: a selection, then a sort
        // of the selected (a heap's sifts per candidate cost 8 % of a
        // search at nlist 1024, nprobe 128).
        let nearer = |a: &(ListId, f32), b: &(ListId, f32)| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0));
        out.clear();
        out.extend(
            dots.iter()
                .enumerate()
                .map(|(list, &d)| (ListId(list as u32), d)),
        );
        let nprobe = nprobe.min(out.len());
        if nprobe == 0 {
            out.clear();
            return;
        }
        if nprobe < out.len() {
            out.select_nth_unstable_by(nprobe - 1, nearer);
            out.truncate(nprobe);
        }
        out.sort_unstable_by(nearer);
    }

    /// The nearest list of every row of `data` (`rows × dim`, prepared for the
    /// metric) and the distance to its centroid, computed in parallel blocks
    /// with a matrix product. Ties go to the lower list number.
    pub fn assign(&self, data: &[f32]) -> Result<Vec<(ListId, f32)>> {
        if !data.len().is_multiple_of(self.dim) {
            return Err(Error::Core(vdb_core::Error::DimensionMismatch {
                expected: self.dim,
                actual: data.len() % self.dim,
            }));
        }
        let nlist = self.nlist();
        let mut out = vec![(ListId(0), 0.0f32); data.len() / self.dim];
        data.par_chunks(ASSIGN_BLOCK * self.dim)
            .zip(out.par_chunks_mut(ASSIGN_BLOCK))
            .for_each_init(
                || vec![0.0f32; ASSIGN_BLOCK * nlist],
                |dots, (block, out)| {
                    let rows = block.len() / self.dim;
                    distance::dot_matrix_blocked(block, rows, &self.centroids, &self.blocked, dots);
                    for ((row, x), slot) in dots
                        .chunks_exact(nlist)
                        .zip(block.chunks_exact(self.dim))
                        .zip(out.iter_mut())
                    {
                        *slot = self.nearest(row, x);
                    }
                },
            );
        Ok(out)
    }

    /// Picks the best centroid from one row of the `x · cⱼ` matrix.
    fn nearest(&self, dots: &[f32], x: &[f32]) -> (ListId, f32) {
        match self.metric {
            Metric::L2 => {
                // argmin ‖c‖² − 2x·c; ‖x‖² is added once for the distance.
                let (j, d) = argmin(dots, &self.norms, |dot, norm| norm - 2.0 * dot);
                let d = (d + distance::norm_sq(x)).max(0.0);
                (ListId(j as u32), d)
            }
            Metric::InnerProduct | Metric::Cosine => {
                let (j, d) = argmin(dots, dots, |dot, _| -dot);
                let d = if self.metric == Metric::Cosine {
                    (1.0 + d).max(0.0)
                } else {
                    d
                };
                (ListId(j as u32), d)
            }
        }
    }
}

/// Independent minima in [`argmin`]: one AVX-512 register of `f32`.
const LANES: usize = 16;

/// The position and value of the smallest `score(dots[j], norms[j])`: the
/// first of equal ones, `(0, ∞)` if none is below infinity (NaN never
/// wins) — what a plain `if d < best` loop gives. Written as [`LANES`]
/// independent branch-free minima (each keeping its first minimum), which
/// the compiler turns into vector compares and blends; the plain loop runs
/// one item at a time and cost as much as the matrix product before it.
/// The lanes are then combined by value, then position.
#[inline(always)]
fn argmin(dots: &[f32], norms: &[f32], score: impl Fn(f32, f32) -> f32) -> (usize, f32) {
    let n = dots.len().min(norms.len());
    let (dots, norms) = (&dots[..n], &norms[..n]);
    let mut best = [f32::INFINITY; LANES];
    let mut at = [0u32; LANES];
    for (c, (ds, ns)) in dots
        .chunks_exact(LANES)
        .zip(norms.chunks_exact(LANES))
        .enumerate()
    {
        let base = (c * LANES) as u32;
        for j in 0..LANES {
            let d = score(ds[j], ns[j]);
            let better = d < best[j];
            best[j] = if better { d } else { best[j] };
            at[j] = if better { base + j as u32 } else { at[j] };
        }
    }
    let mut win = (0usize, f32::INFINITY);
    for (&d, &j) in best.iter().zip(&at) {
        if d < win.1 || (d == win.1 && d < f32::INFINITY && (j as usize) < win.0) {
            win = (j as usize, d);
        }
    }
    let tail = n / LANES * LANES;
    for j in tail..n {
        let d = score(dots[j], norms[j]);
        if d < win.1 {
            win = (j, d);
        }
    }
    win
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_ranks_centroids_and_caps_nprobe() {
        let q = CoarseQuantizer::new(1, Metric::L2, vec![0.0, 10.0, 3.0, -1.0]).unwrap();
        let (mut d, mut out) = (Vec::new(), Vec::new());
        q.probe(&[2.0], 2, &mut d, &mut out);
        assert_eq!(out, vec![(ListId(2), 1.0), (ListId(0), 4.0)]);
        q.probe(&[2.0], 99, &mut d, &mut out);
        assert_eq!(out.len(), 4);
        q.probe(&[2.0], 0, &mut d, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn assign_agrees_with_brute_force() {
        let dim = 7;
        let mut rng = crate::SplitMix64::new(3);
        let cents: Vec<f32> = (0..5 * dim).map(|_| rng.next_f32() * 4.0).collect();
        let data: Vec<f32> = (0..600 * dim).map(|_| rng.next_f32() * 4.0).collect();
        for metric in [Metric::L2, Metric::InnerProduct] {
            let q = CoarseQuantizer::new(dim, metric, cents.clone()).unwrap();
            let got = q.assign(&data).unwrap();
            for (x, (list, d)) in data.chunks_exact(dim).zip(&got) {
                let want = (0..5)
                    .map(|j| metric.distance(x, &cents[j * dim..][..dim]))
                    .fold(f32::INFINITY, f32::min);
                let mine = metric.distance(x, q.centroid(*list));
                assert!((mine - want).abs() < 1e-4, "{metric}: {mine} vs {want}");
                assert!((d - want).abs() < 1e-3, "{metric}: reported {d} vs {want}");
            }
        }
    }

    /// What `argmin` must equal: the plain first-minimum loop.
    fn plain_argmin(values: &[f32]) -> (usize, f32) {
        let mut best = (0usize, f32::INFINITY);
        for (j, &d) in values.iter().enumerate() {
            if d < best.1 {
                best = (j, d);
            }
        }
        best
    }

    proptest::proptest! {
        #[test]
        fn argmin_is_the_first_minimum(
            // Few distinct values, so ties are common; NaN and ±∞ included.
            picks in proptest::collection::vec(0usize..8, 0..150)
        ) {
            let palette = [3.0, -1.0, 2.5, f32::NAN, f32::INFINITY, -1.0, 0.0, f32::NEG_INFINITY];
            let values: Vec<f32> = picks.iter().map(|&p| palette[p]).collect();
            let zeros = vec![0.0f32; values.len()];
            let got = argmin(&values, &zeros, |d, _| d);
            let want = plain_argmin(&values);
            proptest::prop_assert_eq!(got.0, want.0);
            proptest::prop_assert!(got.1 == want.1, "{} vs {}", got.1, want.1);
        }
    }

    #[test]
    fn rejects_bad_centroids() {
        assert!(CoarseQuantizer::new(0, Metric::L2, vec![1.0]).is_err());
        assert!(CoarseQuantizer::new(2, Metric::L2, vec![1.0]).is_err());
        assert!(CoarseQuantizer::new(1, Metric::L2, vec![]).is_err());
        assert!(CoarseQuantizer::new(1, Metric::L2, vec![f32::NAN]).is_err());
        let q = CoarseQuantizer::new(2, Metric::L2, vec![1.0, 2.0]).unwrap();
        assert!(q.assign(&[1.0, 2.0, 3.0]).is_err());
    }
}
