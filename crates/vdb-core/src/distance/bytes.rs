//! Byte-code kernels: the inner product of an 8-bit code with a float
//! query, the second stage of RaBitQ's extended codes (a row's byte code
//! is read only when its 1-bit code could not rule it out).
//!
//! A code is one `u8` a dimension. Every kernel accumulates in `f32` in
//! independent lanes, then sums the lanes and the tail; they differ by
//! rounding only (the SIMD kernels fuse each multiply-add, in their own
//! lane order).

/// `(code, query)`: `Σ_j code_j · query_j` over the shorter of the two.
pub type ByteDotFn = fn(&[u8], &[f32]) -> f32;

/// Independent accumulators: enough to hide the latency of the adds (two
/// AVX-512 registers, four AVX2 ones).
const LANES: usize = 32;

/// The portable kernel's body, written to vectorise (NEON compiles it
/// with `FMA`, fusing each multiply-add).
#[inline(always)]
pub(super) fn generic<const FMA: bool>(code: &[u8], query: &[f32]) -> f32 {
    let n = code.len().min(query.len());
    let (code, query) = (&code[..n], &query[..n]);
    let mut acc = [0.0f32; LANES];
    let codes = code.chunks_exact(LANES);
    let queries = query.chunks_exact(LANES);
    let mut tail = 0.0f32;
    for (&c, &q) in codes.remainder().iter().zip(queries.remainder()) {
        tail += f32::from(c) * q;
    }
    for (c, q) in codes.zip(queries) {
        for j in 0..LANES {
            acc[j] = if FMA {
                f32::from(c[j]).mul_add(q[j], acc[j])
            } else {
                acc[j] + f32::from(c[j]) * q[j]
            };
        }
    }
    // Halving sums: the compiler keeps them in registers.
    let mut width = LANES / 2;
    while width > 0 {
        for j in 0..width {
            acc[j] += acc[j + width];
        }
        width /= 2;
    }
    acc[0] + tail
}

/// The portable kernel as a table entry.
pub(super) fn portable(code: &[u8], query: &[f32]) -> f32 {
    generic::<false>(code, query)
}

/// The reference: in `f64`, in index order.
pub fn reference(code: &[u8], query: &[f32]) -> f64 {
    code.iter()
        .zip(query)
        .map(|(&c, &q)| f64::from(c) * f64::from(q))
        .sum()
}
