//! The random orthogonal transform RaBitQ applies before taking signs.
//!
//! RaBitQ's error bound holds for a uniformly random rotation; a dense
//! `dim × dim` matrix costs `dim²` to store and to apply per query (9.4 M
//! multiply-adds at 3,072 dimensions) and `dim³` to orthogonalise. vdb
//! uses a structured rotation instead, as the RaBitQ library's FHT-Kac
//! rotator does: [`ROUNDS`] rounds, each flipping the sign of every
//! coordinate at random and then applying the normalised Walsh–Hadamard
//! transform to a window of `P` coordinates, `P` the largest power of two
//! not above `dim` — the first `P` in even rounds, the last `P` in odd
//! ones, so every coordinate is mixed with every other when `dim` is not a
//! power of two. Each step is orthogonal, so the whole is; it costs
//! `O(dim log dim)` and is defined by its seed alone.
//!
//! The arithmetic is fixed (f32, butterflies in the order below, one scale
//! by `1/√P` per round), so the same seed gives the same bits on every
//! machine; `docs/format.md` states it.

use crate::rng::SplitMix64;

/// Sign-flip and Hadamard rounds.
pub const ROUNDS: usize = 4;

/// A random orthogonal map of `dim`-dimensional vectors, defined by a seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    dim: usize,
    seed: u64,
    /// `ROUNDS × dim` signs, round after round.
    signs: Vec<f32>,
    /// The Hadamard window's length.
    window: usize,
}

impl Rotation {
    /// The rotation of `dim` dimensions that `seed` defines.
    pub fn new(dim: usize, seed: u64) -> Rotation {
        let mut rng = SplitMix64::new(seed);
        let mut signs = Vec::with_capacity(ROUNDS * dim);
        let mut bits = 0u64;
        for i in 0..ROUNDS * dim {
            if i % 64 == 0 {
                bits = rng.next_u64();
            }
            signs.push(if bits >> (i % 64) & 1 == 1 { -1.0 } else { 1.0 });
        }
        let window = if dim == 0 {
            0
        } else {
            1 << (usize::BITS - 1 - dim.leading_zeros())
        };
        Rotation {
            dim,
            seed,
            signs,
            window,
        }
    }

    /// Dimensions.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The seed that defines it.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Rotates `x` into `out` (both `dim` long).
    ///
    /// # Panics
    /// If either is not `dim` long (the caller validated the vector).
    pub fn apply(&self, x: &[f32], out: &mut [f32]) {
        assert!(
            x.len() == self.dim && out.len() == self.dim,
            "rotation of {} dimensions applied to {} into {}",
            self.dim,
            x.len(),
            out.len()
        );
        out.copy_from_slice(x);
        if self.dim == 0 {
            return;
        }
        let scale = 1.0 / (self.window as f32).sqrt();
        for round in 0..ROUNDS {
            let signs = &self.signs[round * self.dim..(round + 1) * self.dim];
            out.iter_mut().zip(signs).for_each(|(v, s)| *v *= s);
            let start = if round % 2 == 0 {
                0
            } else {
                self.dim - self.window
            };
            let window = &mut out[start..start + self.window];
            hadamard(window);
            window.iter_mut().for_each(|v| *v *= scale);
        }
    }
}

/// The unnormalised Walsh–Hadamard transform of `v` (its length a power of
/// two), in place: butterflies of span 1, 2, 4, …
fn hadamard(v: &mut [f32]) {
    let n = v.len();
    let mut span = 1;
    while span < n {
        for block in v.chunks_exact_mut(2 * span) {
            let (a, b) = block.split_at_mut(span);
            for (x, y) in a.iter_mut().zip(b.iter_mut()) {
                let (s, d) = (*x + *y, *x - *y);
                *x = s;
                *y = d;
            }
        }
        span *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Orthogonal: inner products (so lengths and distances) are kept,
        /// up to f32 rounding.
        #[test]
        fn keeps_inner_products(dim in 1usize..300, seed in any::<u64>(), data_seed in any::<u64>()) {
            let r = Rotation::new(dim, seed);
            let mut rng = SplitMix64::new(data_seed);
            let a: Vec<f32> = (0..dim).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
            let b: Vec<f32> = (0..dim).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
            let (mut ra, mut rb) = (vec![0.0; dim], vec![0.0; dim]);
            r.apply(&a, &mut ra);
            r.apply(&b, &mut rb);
            let scale = dot(&a, &a).sqrt() * dot(&b, &b).sqrt();
            prop_assert!((dot(&ra, &rb) - dot(&a, &b)).abs() <= 1e-5 * scale + 1e-6);
            prop_assert!((dot(&ra, &ra) - dot(&a, &a)).abs() <= 1e-5 * dot(&a, &a) + 1e-6);
        }
    }

    #[test]
    fn the_seed_defines_it() {
        let x: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let (mut a, mut b, mut c) = (vec![0.0; 100], vec![0.0; 100], vec![0.0; 100]);
        Rotation::new(100, 7).apply(&x, &mut a);
        Rotation::new(100, 7).apply(&x, &mut b);
        Rotation::new(100, 8).apply(&x, &mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    /// A basis vector comes out spread over the coordinates (what makes
    /// the signs of rotated vectors informative), including when the
    /// dimension is not a power of two.
    #[test]
    fn spreads_a_basis_vector_over_every_coordinate() {
        for dim in [128, 384, 100, 1000] {
            let r = Rotation::new(dim, 1);
            let mut e = vec![0.0; dim];
            let mut out = vec![0.0; dim];
            for i in [0, dim / 2, dim - 1] {
                e.iter_mut().for_each(|v| *v = 0.0);
                e[i] = 1.0;
                r.apply(&e, &mut out);
                let largest = out.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let zeros = out.iter().filter(|v| v.abs() < 1e-9).count();
                assert!(
                    largest < 0.5,
                    "dim {dim}, e{i}: a coordinate keeps {largest}"
                );
                // Sums of ±c can cancel exactly; most must not.
                assert!(zeros * 5 < dim, "dim {dim}, e{i}: {zeros} coordinates zero");
            }
        }
    }
}
