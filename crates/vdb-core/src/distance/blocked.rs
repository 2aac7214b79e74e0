//! One query against many fixed vectors (the coarse search against all
//! centroids), laid out so that no horizontal sums are needed.
//!
//! [`BlockedVectors`] stores the vectors in blocks of [`BLOCK`]: block `b`
//! holds vectors `BLOCK·b .. BLOCK·(b+1)` dimension-major, so
//! `data[b·dim·BLOCK + d·BLOCK + j]` is component `d` of vector `BLOCK·b + j`
//! (the last block is zero-padded). The inner product of a query with a whole
//! block is then `dim` multiply-adds of a broadcast query component with one
//! contiguous row of `BLOCK` lanes: exactly the shape SIMD units like.
//!
//! The kernel is written once in plain Rust ([`dots_generic`]) and compiled
//! for each instruction set by the wrappers in `simd.rs`.

/// Vectors per block: one AVX-512 register of f32.
pub const BLOCK: usize = 16;

/// Independent partial sums per block, to hide the latency of the
/// multiply-add chain.
const CHAINS: usize = 4;

/// Fixed vectors in the blocked layout above.
#[derive(Debug, Clone)]
pub struct BlockedVectors {
    dim: usize,
    count: usize,
    data: Vec<f32>,
}

impl BlockedVectors {
    /// Re-lays `vectors` (`count × dim`, row-major). `dim` must be ≥ 1 and
    /// divide `vectors.len()`; extra trailing values are ignored.
    pub fn new(vectors: &[f32], dim: usize) -> BlockedVectors {
        let dim = dim.max(1);
        let count = vectors.len() / dim;
        let blocks = count.div_ceil(BLOCK);
        let mut data = vec![0.0f32; blocks * dim * BLOCK];
        // Written in order, one block at a time, reading its up to BLOCK
        // vectors side by side (their cache lines stay in L1); writing one
        // vector at a time instead touches a new line at every component.
        let sources = vectors[..count * dim].chunks(BLOCK * dim);
        for (block, src) in data.chunks_exact_mut(dim * BLOCK).zip(sources) {
            let rows: Vec<&[f32]> = src.chunks_exact(dim).collect();
            for (d, lanes) in block.chunks_exact_mut(BLOCK).enumerate() {
                for (lane, row) in lanes.iter_mut().zip(&rows) {
                    *lane = row[d];
                }
            }
        }
        BlockedVectors { dim, count, data }
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The blocks: `len().div_ceil(BLOCK) × dim × BLOCK` values.
    pub(crate) fn data(&self) -> &[f32] {
        &self.data
    }

    /// `out[i] = query · vᵢ` for every vector (`out` must hold [`len`]
    /// values; extra ones are left as they are, missing ones skipped).
    ///
    /// [`len`]: BlockedVectors::len
    pub fn dots(&self, query: &[f32], out: &mut [f32]) {
        (super::active().blocked_dots)(query, &self.data, self.dim, self.count, out)
    }
}

/// The kernel behind [`BlockedVectors::dots`]. `FUSED` selects `mul_add`,
/// which is one instruction where the caller's target features include FMA
/// and a slow library call where they do not.
#[inline(always)]
pub(crate) fn dots_generic<const FUSED: bool>(
    query: &[f32],
    data: &[f32],
    dim: usize,
    count: usize,
    out: &mut [f32],
) {
    let count = count.min(out.len());
    let out = &mut out[..count];
    if dim == 0 || query.is_empty() {
        out.iter_mut().for_each(|o| *o = 0.0);
        return;
    }
    let dim_used = dim.min(query.len());
    let full = dim_used / CHAINS * CHAINS;
    for (block, out) in data.chunks_exact(dim * BLOCK).zip(out.chunks_mut(BLOCK)) {
        let mut acc = [[0.0f32; BLOCK]; CHAINS];
        // CHAINS dimensions per step, each into its own accumulator, with
        // constant indices so the accumulators live in registers.
        let steps = block[..full * BLOCK]
            .chunks_exact(CHAINS * BLOCK)
            .zip(query[..full].chunks_exact(CHAINS));
        for (rows, q) in steps {
            for c in 0..CHAINS {
                let row: &[f32; BLOCK] = rows[c * BLOCK..(c + 1) * BLOCK]
                    .try_into()
                    .expect("chunk of BLOCK values");
                let a = &mut acc[c];
                for j in 0..BLOCK {
                    a[j] = madd::<FUSED>(q[c], row[j], a[j]);
                }
            }
        }
        let tail = block[full * BLOCK..dim_used * BLOCK]
            .chunks_exact(BLOCK)
            .zip(&query[full..dim_used]);
        for (row, &q) in tail {
            for j in 0..BLOCK {
                acc[0][j] = madd::<FUSED>(q, row[j], acc[0][j]);
            }
        }
        for (j, o) in out.iter_mut().enumerate() {
            *o = (acc[0][j] + acc[1][j]) + (acc[2][j] + acc[3][j]);
        }
    }
}

#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED { a.mul_add(b, c) } else { c + a * b }
}

/// The portable instance (no FMA assumed).
pub(crate) fn dots_portable(
    query: &[f32],
    data: &[f32],
    dim: usize,
    count: usize,
    out: &mut [f32],
) {
    dots_generic::<false>(query, data, dim, count, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::{available, kernels_for, reference};

    #[test]
    fn blocked_dots_match_the_reference_on_every_isa() {
        for (count, dim) in [(1, 1), (15, 3), (16, 7), (17, 64), (100, 384), (33, 5)] {
            let v: Vec<f32> = (0..count * dim)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let q: Vec<f32> = (0..dim)
                .map(|i| ((i * 13) % 17) as f32 / 8.0 - 1.0)
                .collect();
            let b = BlockedVectors::new(&v, dim);
            assert_eq!(b.len(), count);
            for isa in available() {
                let k = kernels_for(isa).unwrap();
                let mut out = vec![f32::NAN; count + 1];
                (k.blocked_dots)(&q, &b.data, dim, count, &mut out);
                for i in 0..count {
                    let want = reference::dot(&q, &v[i * dim..(i + 1) * dim]);
                    assert!(
                        (out[i] as f64 - want).abs() < 1e-3,
                        "{isa} ({count},{dim}) #{i}: {} vs {want}",
                        out[i]
                    );
                }
                assert!(out[count].is_nan(), "{isa}: wrote past count");
            }
        }
    }
}
