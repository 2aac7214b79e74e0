//! A 2-D map of the centroids for explain: principal component analysis
//! (PCA) of the centroid matrix.
//!
//! The two axes are the top two principal components of the centroids
//! (found by power iteration with deflation from a fixed start vector), so
//! the map depends on the centroids alone: it is the same on every call for
//! one centroid generation, and queries and stored vectors are placed on it
//! by the same projection. Each axis's sign is fixed so that its largest
//! component is positive, which makes the map reproducible across runs.

use vdb_core::ListId;

/// Power iterations per component; the iteration stops earlier once the
/// direction moves by less than [`TOLERANCE`].
const MAX_ITERATIONS: usize = 300;
const TOLERANCE: f32 = 1e-6;

/// A projection of `dim`-dimensional vectors onto two axes.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    mean: Vec<f32>,
    axes: [Vec<f32>; 2],
    centroids: Vec<[f32; 2]>,
}

impl Layout {
    /// The PCA layout of `centroids` (`n × dim`, row-major).
    pub fn of_centroids(centroids: &[f32], dim: usize) -> Layout {
        let n = centroids.len().checked_div(dim).unwrap_or(0);
        let mut mean = vec![0.0f32; dim];
        for c in centroids.chunks_exact(dim.max(1)).take(n) {
            for (m, &x) in mean.iter_mut().zip(c) {
                *m += x;
            }
        }
        if n > 0 {
            mean.iter_mut().for_each(|m| *m /= n as f32);
        }
        let centred: Vec<f32> = centroids
            .chunks_exact(dim.max(1))
            .take(n)
            .flat_map(|c| c.iter().zip(&mean).map(|(x, m)| x - m))
            .collect();
        let first = principal_axis(&centred, dim, &[]);
        let second = principal_axis(&centred, dim, std::slice::from_ref(&first));
        let mut layout = Layout {
            mean,
            axes: [first, second],
            centroids: Vec::new(),
        };
        layout.centroids = centroids
            .chunks_exact(dim.max(1))
            .take(n)
            .map(|c| layout.project(c))
            .collect();
        layout
    }

    /// Where `x` (prepared for the metric, like the centroids) lies on the
    /// map.
    pub fn project(&self, x: &[f32]) -> [f32; 2] {
        let along = |axis: &[f32]| -> f32 {
            x.iter()
                .zip(&self.mean)
                .zip(axis)
                .map(|((x, m), a)| (x - m) * a)
                .sum()
        };
        [along(&self.axes[0]), along(&self.axes[1])]
    }

    /// The position of `list`'s centroid.
    pub fn centroid(&self, list: ListId) -> [f32; 2] {
        self.centroids
            .get(list.index())
            .copied()
            .unwrap_or([0.0, 0.0])
    }

    /// The positions of all centroids, by list number.
    pub fn centroids(&self) -> &[[f32; 2]] {
        &self.centroids
    }
}

/// The unit direction of greatest variance of the rows of `m` (`n × dim`)
/// orthogonal to `done`; zero when no variance is left.
fn principal_axis(m: &[f32], dim: usize, done: &[Vec<f32>]) -> Vec<f32> {
    if dim == 0 {
        return Vec::new();
    }
    // A fixed, non-symmetric start so the iteration is deterministic and
    // unlikely to start orthogonal to the answer.
    let mut v: Vec<f32> = (0..dim).map(|i| 1.0 + (i as f32 * 0.618).sin()).collect();
    let mut mv = vec![0.0f32; m.len() / dim];
    for _ in 0..MAX_ITERATIONS {
        orthogonalise(&mut v, done);
        if normalise(&mut v) == 0.0 {
            return vec![0.0; dim];
        }
        // v ← Mᵀ (M v)
        for (out, row) in mv.iter_mut().zip(m.chunks_exact(dim)) {
            *out = row.iter().zip(&v).map(|(a, b)| a * b).sum();
        }
        let mut next = vec![0.0f32; dim];
        for (&w, row) in mv.iter().zip(m.chunks_exact(dim)) {
            for (n, &a) in next.iter_mut().zip(row) {
                *n += w * a;
            }
        }
        orthogonalise(&mut next, done);
        if normalise(&mut next) == 0.0 {
            return vec![0.0; dim];
        }
        let moved: f32 = next.iter().zip(&v).map(|(a, b)| (a - b) * (a - b)).sum();
        v = next;
        if moved < TOLERANCE {
            break;
        }
    }
    // Fix the sign: the largest component positive.
    let largest = v
        .iter()
        .copied()
        .max_by(|a, b| a.abs().total_cmp(&b.abs()))
        .unwrap_or(0.0);
    if largest < 0.0 {
        v.iter_mut().for_each(|x| *x = -*x);
    }
    v
}

fn orthogonalise(v: &mut [f32], against: &[Vec<f32>]) {
    for a in against {
        let d: f32 = v.iter().zip(a).map(|(x, y)| x * y).sum();
        v.iter_mut().zip(a).for_each(|(x, y)| *x -= d * y);
    }
}

/// Scales `v` to unit length; returns the length it had (0 leaves it).
fn normalise(v: &mut [f32]) -> f32 {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 1e-20 {
        v.iter_mut().for_each(|x| *x /= n);
        n
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SplitMix64;

    #[test]
    fn finds_the_directions_of_greatest_spread() {
        // Points spread 10 along (1, 1, 0)/√2, 3 along z, 0.1 elsewhere.
        let mut rng = SplitMix64::new(7);
        let mut data = Vec::new();
        for _ in 0..500 {
            let a = rng.next_f32() * 2.0 - 1.0;
            let b = rng.next_f32() * 2.0 - 1.0;
            let c = rng.next_f32() * 2.0 - 1.0;
            let s = std::f32::consts::FRAC_1_SQRT_2;
            data.extend_from_slice(&[10.0 * a * s + 0.1 * c, 10.0 * a * s - 0.1 * c, 3.0 * b]);
        }
        let l = Layout::of_centroids(&data, 3);
        let [x, y] = &l.axes;
        assert!(
            (x[0].abs() - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-2,
            "{x:?}"
        );
        assert!(
            (x[1].abs() - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-2,
            "{x:?}"
        );
        assert!((y[2].abs() - 1.0).abs() < 1e-2, "{y:?}");
        let dot: f32 = x.iter().zip(y).map(|(a, b)| a * b).sum();
        assert!(dot.abs() < 1e-4);
        // Each sign is fixed: the largest component positive.
        assert!(x.iter().copied().fold(f32::MIN, f32::max) > 0.0);
        assert!(y[2] > 0.0);
    }

    #[test]
    fn is_the_same_on_every_call_and_projects_centroids_to_their_positions() {
        let mut rng = SplitMix64::new(11);
        let data: Vec<f32> = (0..64 * 16).map(|_| rng.next_f32()).collect();
        let a = Layout::of_centroids(&data, 16);
        let b = Layout::of_centroids(&data, 16);
        assert_eq!(a, b);
        assert_eq!(a.centroids().len(), 64);
        for (j, c) in data.chunks_exact(16).enumerate() {
            assert_eq!(a.centroid(ListId(j as u32)), a.project(c));
        }
        // The projection is centred: the centroids' mean maps to the origin.
        let mx: f32 = a.centroids().iter().map(|p| p[0]).sum::<f32>() / 64.0;
        assert!(mx.abs() < 1e-4);
    }

    #[test]
    fn degenerate_inputs_give_a_point_not_a_panic() {
        // One centroid (an untrained collection), identical centroids, an
        // empty matrix.
        let one = Layout::of_centroids(&[1.0, 2.0, 3.0], 3);
        assert_eq!(one.centroid(ListId(0)), [0.0, 0.0]);
        let same = Layout::of_centroids(&[1.0, 2.0, 1.0, 2.0], 2);
        assert_eq!(same.centroids(), &[[0.0, 0.0], [0.0, 0.0]]);
        let empty = Layout::of_centroids(&[], 4);
        assert!(empty.centroids().is_empty());
        assert_eq!(empty.project(&[1.0, 1.0, 1.0, 1.0]), [0.0, 0.0]);
        assert_eq!(empty.centroid(ListId(3)), [0.0, 0.0]);
    }
}
