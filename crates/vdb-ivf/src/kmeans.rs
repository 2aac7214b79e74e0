//! k-means training of the coarse quantizer.
//!
//! Follows faiss's `Clustering` where it matters for comparable results:
//! train on a random sample of at most `max_points_per_centroid × nlist`
//! vectors, warn below `min_points_per_centroid × nlist`, start from `nlist`
//! distinct random sample points, alternate assignment and mean update for
//! `niter` rounds, and repair empty clusters by splitting a large one.
//!
//! Two choices differ, both for determinism: the mean update sums each
//! cluster's points in sample order (so the result does not depend on how
//! rayon splits work across threads), and an empty cluster is repaired by
//! splitting the currently largest cluster instead of a randomly drawn one.
//! For `Cosine` the centroids are renormalised after every update (spherical
//! k-means); for `InnerProduct` points go to the centroid of largest inner
//! product, as with faiss's `IndexFlatIP` quantizer.

use rayon::prelude::*;
use vdb_core::{ListId, Metric, distance};

use crate::error::{Error, Result};
use crate::quantizer::CoarseQuantizer;
use crate::rng::SplitMix64;

/// Relative perturbation applied when a cluster is split to repair an empty
/// one (faiss uses the same 1/1024).
const SPLIT_EPS: f32 = 1.0 / 1024.0;

/// Parameters of [`train`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KMeansParams {
    /// Rounds of assignment + update. faiss's IVF training uses 10.
    pub niter: usize,
    /// Seed of the sampling and initialisation.
    pub seed: u64,
    /// The sample holds at most this many points per centroid (faiss: 256).
    pub max_points_per_centroid: usize,
    /// Fewer points per centroid than this produces a warning (faiss: 39).
    pub min_points_per_centroid: usize,
    /// The first `niter - full_iters` rounds run on a subsample of this
    /// many points per centroid, the last `full_iters` on the whole sample
    /// (0: every round on the whole sample). The early rounds move the
    /// centroids far and need few points to do it; on pypi-minilm and a
    /// 1M × 128 set, 96 and 3 train 1.6-1.8x faster at the recall and
    /// work per query of all rounds on everything (docs/benchmarks.md).
    pub warm_points_per_centroid: usize,
    /// Rounds on the whole sample after the warm start.
    pub full_iters: usize,
}

impl Default for KMeansParams {
    fn default() -> Self {
        KMeansParams {
            niter: 10,
            seed: 1234,
            max_points_per_centroid: 256,
            min_points_per_centroid: 39,
            warm_points_per_centroid: 96,
            full_iters: 3,
        }
    }
}

/// What a training run did.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansReport {
    /// Vectors trained on.
    pub sample_size: usize,
    /// Rounds run.
    pub iterations: usize,
    /// Sum of point-to-centroid distances after each round's assignment.
    pub objective: Vec<f64>,
    /// Empty clusters repaired over all rounds.
    pub empty_cluster_repairs: usize,
    /// List-size imbalance of the sample under the final assignment.
    pub imbalance: f64,
    /// Set when there were too few points per centroid for good clusters.
    pub warning: Option<String>,
}

/// faiss's imbalance factor of a list-size histogram: `k · Σ nᵢ² / (Σ nᵢ)²`,
/// 1.0 for perfectly even lists and `k` when everything is in one list.
pub fn imbalance_factor(sizes: &[u64]) -> f64 {
    let total: f64 = sizes.iter().map(|&s| s as f64).sum();
    if total == 0.0 {
        return 1.0;
    }
    let sq: f64 = sizes.iter().map(|&s| (s as f64) * (s as f64)).sum();
    sizes.len() as f64 * sq / (total * total)
}

/// Trains `nlist` centroids on `data` (`rows × dim`, row-major, already
/// prepared for `metric`). Returns the centroids (`nlist × dim`) and a
/// report. Deterministic for a given input and `params.seed`.
pub fn train(
    data: &[f32],
    dim: usize,
    nlist: usize,
    metric: Metric,
    params: &KMeansParams,
) -> Result<(Vec<f32>, KMeansReport)> {
    if dim == 0 {
        return Err(vdb_core::Error::invalid("dim", "must be at least 1").into());
    }
    if nlist == 0 {
        return Err(vdb_core::Error::invalid("nlist", "must be at least 1").into());
    }
    if !data.len().is_multiple_of(dim) {
        return Err(vdb_core::Error::DimensionMismatch {
            expected: dim,
            actual: data.len() % dim,
        }
        .into());
    }
    let rows = data.len() / dim;
    if rows < nlist {
        return Err(Error::TooFewTrainingVectors { nlist, rows });
    }
    let mut rng = SplitMix64::new(params.seed);

    // Sample.
    let max_sample = params
        .max_points_per_centroid
        .saturating_mul(nlist)
        .max(nlist);
    let sample: std::borrow::Cow<'_, [f32]> = if rows > max_sample {
        let mut idx = rng.sample_indices(rows, max_sample);
        idx.sort_unstable(); // sequential reads of the source
        let mut buf = Vec::with_capacity(max_sample * dim);
        for i in idx {
            buf.extend_from_slice(&data[i * dim..(i + 1) * dim]);
        }
        buf.into()
    } else {
        data.into()
    };
    let n = sample.len() / dim;
    let warning = (n < params.min_points_per_centroid.saturating_mul(nlist)).then(|| {
        format!(
            "training {nlist} clusters on {n} vectors: fewer than {} per cluster, clusters may be poor",
            params.min_points_per_centroid
        )
    });

    // Initialise with distinct random points.
    let mut centroids = Vec::with_capacity(nlist * dim);
    for i in rng.sample_indices(n, nlist) {
        centroids.extend_from_slice(&sample[i * dim..(i + 1) * dim]);
    }
    if metric.normalizes() {
        centroids
            .chunks_exact_mut(dim)
            .for_each(distance::normalize);
    }

    let mut report = KMeansReport {
        sample_size: n,
        iterations: 0,
        objective: Vec::with_capacity(params.niter),
        empty_cluster_repairs: 0,
        imbalance: 1.0,
        warning,
    };
    // Warm start: the early rounds, which move centroids far, on a
    // subsample; the last rounds on everything.
    let niter = params.niter.max(1);
    let warm_rows = params
        .warm_points_per_centroid
        .saturating_mul(nlist)
        .max(nlist);
    let full_iters = params.full_iters.clamp(1, niter);
    let warm: Option<Vec<f32>> =
        (params.warm_points_per_centroid > 0 && warm_rows < n).then(|| {
            let mut idx = rng.sample_indices(n, warm_rows);
            idx.sort_unstable();
            let mut buf = Vec::with_capacity(warm_rows * dim);
            for i in idx {
                buf.extend_from_slice(&sample[i * dim..(i + 1) * dim]);
            }
            buf
        });
    let mut assignment: Vec<(ListId, f32)> = Vec::new();
    for round in 0..niter {
        let points: &[f32] = match &warm {
            Some(w) if round < niter - full_iters => w,
            _ => &sample,
        };
        let q = CoarseQuantizer::new(dim, metric, std::mem::take(&mut centroids))?;
        assignment = q.assign(points)?;
        report
            .objective
            .push(assignment.iter().map(|&(_, d)| d as f64).sum());
        centroids = q.centroids().to_vec();
        let sizes = update_centroids(points, dim, &assignment, &mut centroids);
        report.empty_cluster_repairs += repair_empty(&mut centroids, dim, sizes);
        if metric.normalizes() {
            centroids
                .chunks_exact_mut(dim)
                .for_each(distance::normalize);
        }
        report.iterations += 1;
    }
    let mut sizes = vec![0u64; nlist];
    for &(l, _) in &assignment {
        sizes[l.index()] += 1;
    }
    report.imbalance = imbalance_factor(&sizes);
    Ok((centroids, report))
}

/// Replaces every non-empty cluster's centroid with the mean of its points.
/// Returns the cluster sizes. Each mean is summed in sample order, in `f64`.
fn update_centroids(
    sample: &[f32],
    dim: usize,
    assignment: &[(ListId, f32)],
    centroids: &mut [f32],
) -> Vec<usize> {
    let nlist = centroids.len() / dim;
    // Counting sort of point indices by cluster.
    let mut starts = vec![0usize; nlist + 1];
    for &(l, _) in assignment {
        starts[l.index() + 1] += 1;
    }
    for i in 0..nlist {
        starts[i + 1] += starts[i];
    }
    let mut members = vec![0usize; assignment.len()];
    let mut fill = starts.clone();
    for (i, &(l, _)) in assignment.iter().enumerate() {
        members[fill[l.index()]] = i;
        fill[l.index()] += 1;
    }
    centroids.par_chunks_mut(dim).enumerate().for_each_init(
        || vec![0f64; dim],
        |acc, (c, centroid)| {
            let points = &members[starts[c]..starts[c + 1]];
            if points.is_empty() {
                return;
            }
            acc.iter_mut().for_each(|a| *a = 0.0);
            for &p in points {
                for (a, &x) in acc.iter_mut().zip(&sample[p * dim..(p + 1) * dim]) {
                    *a += x as f64;
                }
            }
            let inv = 1.0 / points.len() as f64;
            for (c, a) in centroid.iter_mut().zip(acc.iter()) {
                *c = (a * inv) as f32;
            }
        },
    );
    starts.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Gives every empty cluster half of the largest one: the empty centroid
/// becomes a slightly perturbed copy of the large one, which is perturbed the
/// other way, so the next assignment splits its points. Returns how many
/// clusters were repaired.
fn repair_empty(centroids: &mut [f32], dim: usize, mut sizes: Vec<usize>) -> usize {
    let mut repaired = 0;
    for empty in 0..sizes.len() {
        if sizes[empty] != 0 {
            continue;
        }
        let Some((big, &big_size)) = sizes
            .iter()
            .enumerate()
            .max_by_key(|&(i, &s)| (s, usize::MAX - i))
        else {
            break;
        };
        if big_size < 2 {
            break;
        }
        for j in 0..dim {
            let v = centroids[big * dim + j];
            let (e, b) = if j % 2 == 0 {
                (v * (1.0 + SPLIT_EPS), v * (1.0 - SPLIT_EPS))
            } else {
                (v * (1.0 - SPLIT_EPS), v * (1.0 + SPLIT_EPS))
            };
            centroids[empty * dim + j] = e;
            centroids[big * dim + j] = b;
        }
        sizes[empty] = big_size / 2;
        sizes[big] = big_size - big_size / 2;
        repaired += 1;
    }
    repaired
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `clusters` well-separated blobs of `per` points each.
    fn blobs(clusters: usize, per: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        let mut out = Vec::new();
        for c in 0..clusters {
            for _ in 0..per {
                for j in 0..dim {
                    let center = if j == c % dim {
                        100.0 * (1 + c / dim) as f32
                    } else {
                        0.0
                    };
                    out.push(center + rng.next_f32());
                }
            }
        }
        out
    }

    #[test]
    fn finds_separated_blobs() {
        let dim = 4;
        let data = blobs(4, 50, dim, 1);
        let (cents, report) = train(&data, dim, 4, Metric::L2, &KMeansParams::default()).unwrap();
        assert_eq!(cents.len(), 4 * dim);
        // Each blob's points end in one list of 50.
        let q = CoarseQuantizer::new(dim, Metric::L2, cents).unwrap();
        let a = q.assign(&data).unwrap();
        for blob in a.chunks(50) {
            assert!(
                blob.iter().all(|(l, _)| *l == blob[0].0),
                "a blob was split"
            );
        }
        assert!((report.imbalance - 1.0).abs() < 1e-9);
        assert!(
            report.warning.is_none(),
            "50 points per cluster is above 39"
        );
        let (_, report) = train(&data, dim, 6, Metric::L2, &KMeansParams::default()).unwrap();
        assert!(
            report
                .warning
                .unwrap()
                .contains("fewer than 39 per cluster")
        );
    }

    #[test]
    fn a_warm_start_on_a_subsample_ends_as_good_on_everything() {
        let dim = 8;
        let data = blobs(16, 250, dim, 3);
        let warm = KMeansParams::default();
        let cold = KMeansParams {
            warm_points_per_centroid: 0,
            ..warm
        };
        // 96 of 250 points a cluster for the first rounds.
        assert!(warm.warm_points_per_centroid * 16 < data.len() / dim);
        let (cents, w) = train(&data, dim, 16, Metric::L2, &warm).unwrap();
        let (_, c) = train(&data, dim, 16, Metric::L2, &cold).unwrap();
        assert_eq!((w.sample_size, w.iterations), (4000, 10));
        // The last rounds assign every point: the objective is over all
        // of them, and no worse than training on all of them throughout.
        let (fw, fc) = (*w.objective.last().unwrap(), *c.objective.last().unwrap());
        assert!(fw <= fc * 1.01, "warm {fw} cold {fc}");
        // Same initial centroids; the first round assigned 38 % of the
        // points.
        assert!(w.objective[0] < c.objective[0] * 0.5, "{w:?} {c:?}");
        assert_eq!(cents.len(), 16 * dim);
    }

    #[test]
    fn deterministic_for_a_seed() {
        let dim = 8;
        let data = blobs(10, 40, dim, 2);
        let p = KMeansParams::default();
        let a = train(&data, dim, 6, Metric::L2, &p).unwrap();
        let b = train(&data, dim, 6, Metric::L2, &p).unwrap();
        assert_eq!(a, b);
        let c = train(&data, dim, 6, Metric::L2, &KMeansParams { seed: 99, ..p }).unwrap();
        assert_ne!(a.0, c.0);
    }

    #[test]
    fn repairs_empty_clusters() {
        // 40 copies of one point and 40 of another, 5 clusters: at most two
        // clusters can be non-empty after assignment, so repair must run.
        let mut data = vec![0.0f32; 40];
        data.extend(vec![1.0f32; 40]);
        let (cents, report) = train(&data, 1, 5, Metric::L2, &KMeansParams::default()).unwrap();
        assert!(report.empty_cluster_repairs > 0);
        assert!(cents.iter().all(|c| c.is_finite()));
    }

    #[test]
    fn cosine_centroids_have_unit_length() {
        let dim = 3;
        let mut data = blobs(3, 60, dim, 5);
        data.chunks_exact_mut(dim).for_each(distance::normalize);
        let (cents, _) = train(&data, dim, 3, Metric::Cosine, &KMeansParams::default()).unwrap();
        for c in cents.chunks_exact(dim) {
            assert!((distance::norm_sq(c) - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn samples_large_inputs_and_rejects_too_few() {
        let data = blobs(2, 600, 2, 7);
        let p = KMeansParams {
            max_points_per_centroid: 100,
            ..KMeansParams::default()
        };
        let (_, report) = train(&data, 2, 4, Metric::L2, &p).unwrap();
        assert_eq!(report.sample_size, 400);
        let err = train(&data[..6], 2, 4, Metric::L2, &p).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot train 4 clusters from 3 vectors"),
            "{err}"
        );
        assert!(train(&data[..5], 2, 1, Metric::L2, &p).is_err());
        assert!(train(&data, 2, 0, Metric::L2, &p).is_err());
    }

    #[test]
    fn imbalance_matches_faiss_definition() {
        assert_eq!(imbalance_factor(&[5, 5, 5, 5]), 1.0);
        assert_eq!(imbalance_factor(&[20, 0, 0, 0]), 4.0);
        assert_eq!(imbalance_factor(&[]), 1.0);
    }
}
