//! Bit-code kernels: the inner product of 1-bit vector codes with a query
//! quantized to 4 bits per dimension, the scan kernel of RaBitQ.
//!
//! A code is `words` `u64`s, bit `j % 64` of word `j / 64` standing for
//! dimension `j`. The query is given as [`PLANES`] bit planes of `words`
//! words each: bit `j` of plane `p` is bit `p` of the query's 4-bit value
//! `u_j`. Then `Σ_j code_j · u_j = Σ_p 2^p · popcount(code ∧ plane_p)`, which
//! is what every kernel computes, exactly (integer arithmetic: all
//! instruction sets give identical results).

/// Bit planes of a query quantized to 4 bits per dimension.
pub const PLANES: usize = 4;

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
