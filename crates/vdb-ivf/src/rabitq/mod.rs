//! RaBitQ codes (Gao & Long, SIGMOD 2024): one bit per dimension per row,
//! an estimate of every row's distance from its code, and a bound on the
//! estimate's error that tells search which rows need their exact distance.
//!
//! A row `v` of list `l` with centroid `c` is coded in rotated space
//! (`x' = R x`, [`Rotation`]): the residual `u' = v' − c'` has length `r`,
//! and its code is the signs of `u'`, bit `j` set when `u'_j > 0`. The
//! code stands for the unit vector `x̄ = (2b − 1)/√D`; `ip = ⟨x̄, u'/r⟩`,
//! always in `[1/√D, 1]`, says how well it does. For a query `q` with
//! `y' = q' − c'` (length `ρ`), RaBitQ estimates `⟨u'/r, y'⟩` by
//! `⟨x̄, y'⟩ / ip`, unbiased, with an error below
//! `ρ · √(1 − ip²)/ip · ε/√(D − 1)` except with a probability that falls
//! like `exp(−ε²)` (the paper's ε₀ = 1.9 is [`DEFAULT_EPSILON`]). Every
//! metric's distance is affine in that inner product:
//!
//! | metric | distance | `add` | `scale` | query constant |
//! |---|---|---|---|---|
//! | L2 | `r² + ρ² − 2r⟨u'/r, y'⟩` | `r²` | `2r/ip` | `ρ²` |
//! | inner product | `−⟨c,q⟩ − ⟨u,c⟩ − r⟨u'/r, y'⟩` | `−⟨u', c'⟩` | `r/ip` | `−⟨c', q'⟩` |
//! | cosine | `1 −` the same | `−⟨u', c'⟩` | `r/ip` | `1 − ⟨c', q'⟩` |
//!
//! so a row keeps four factors ([`vdb_core::CODE_FACTORS`]): `add`,
//! `scale`, `error = scale·√(1 − ip²)` and the number of set bits, and its
//! distance is estimated as `add + constant − scale·⟨x̄, y'⟩ / … ` with the
//! error bound `ε·ρ·error/√(D − 1)` ([`ListQuery`]).
//!
//! The query side is quantized to 4 bits a dimension so that `⟨b, y'⟩` is
//! four population counts a word ([`vdb_core::distance::bit_dots`]); the
//! rounding's expected share is corrected and its spread added to the
//! bound (see [`ListQuery::prepare`]).

mod query;
mod rotation;

pub use query::{Estimate, ListQuery};
pub use rotation::{ROUNDS, Rotation};

pub use vdb_core::code_words;
use vdb_core::{CODE_FACTORS, InvertedLists, ListCodes, ListId, Metric};

use crate::quantizer::CoarseQuantizer;

/// Index of each factor in a row's [`CODE_FACTORS`] (the scan kernels in
/// `vdb_core::distance::bits` read the record by them).
pub use vdb_core::distance::bits::{ADD, ERROR, ONES, SCALE};

/// The error bound's multiplier when a search does not choose one: the
/// RaBitQ paper's ε₀.
pub const DEFAULT_EPSILON: f32 = 1.9;

/// What codes depend on besides the row: the rotation and the centroids
/// in rotated space. Part of a generation's trained state.
#[derive(Debug, Clone)]
pub struct Codebook {
    metric: Metric,
    rotation: Rotation,
    /// `nlist × dim`, the centroids rotated.
    rotated: Vec<f32>,
}

impl Codebook {
    /// The codebook of `seed`'s rotation for `quantizer`'s centroids.
    pub fn new(quantizer: &CoarseQuantizer, seed: u64) -> Codebook {
        let dim = quantizer.dim();
        let rotation = Rotation::new(dim, seed);
        let mut rotated = vec![0.0; quantizer.centroids().len()];
        for (c, out) in quantizer
            .centroids()
            .chunks_exact(dim)
            .zip(rotated.chunks_exact_mut(dim))
        {
            rotation.apply(c, out);
        }
        Codebook {
            metric: quantizer.metric(),
            rotation,
            rotated,
        }
    }

    /// The rotation.
    pub fn rotation(&self) -> &Rotation {
        &self.rotation
    }

    /// Dimensions.
    pub fn dim(&self) -> usize {
        self.rotation.dim()
    }

    /// `u64` words of one code.
    pub fn words(&self) -> usize {
        code_words(self.dim())
    }

    /// Centroid `list` in rotated space (empty if out of range).
    pub fn rotated_centroid(&self, list: ListId) -> &[f32] {
        let dim = self.dim();
        self.rotated
            .get(list.index() * dim..(list.index() + 1) * dim)
            .unwrap_or(&[])
    }

    /// Codes `vector` (`dim` long, prepared for the metric) as a row of
    /// list `list`: its code into `code` (`words()` long) and its factors.
    /// `scratch` is reused between calls.
    ///
    /// # Panics
    /// If `vector`, `code` or `list` do not fit this codebook: the caller
    /// validated rows and assigned them with the same centroids.
    pub fn encode(
        &self,
        list: ListId,
        vector: &[f32],
        scratch: &mut Vec<f32>,
        code: &mut [u64],
    ) -> [f32; CODE_FACTORS] {
        let dim = self.dim();
        let centroid = self.rotated_centroid(list);
        assert!(
            centroid.len() == dim && code.len() == code_words(dim),
            "encode: list {} or a code of {} words outside the codebook",
            list.0,
            code.len()
        );
        scratch.resize(dim, 0.0);
        self.rotation.apply(vector, scratch);
        code.iter_mut().for_each(|w| *w = 0);
        let (mut r2, mut abs_sum, mut u_dot_c) = (0.0f64, 0.0f64, 0.0f64);
        for (j, (&v, &c)) in scratch.iter().zip(centroid).enumerate() {
            let u = f64::from(v) - f64::from(c);
            r2 += u * u;
            abs_sum += u.abs();
            u_dot_c += u * f64::from(c);
            if u > 0.0 {
                code[j / 64] |= 1 << (j % 64);
            }
        }
        let r = r2.sqrt();
        let ones = code.iter().map(|w| w.count_ones()).sum::<u32>() as f32;
        let add = match self.metric {
            Metric::L2 => r2,
            Metric::InnerProduct | Metric::Cosine => -u_dot_c,
        };
        if r == 0.0 {
            // The row is its centroid: the estimate is exact.
            return [add as f32, 0.0, 0.0, ones];
        }
        let ip = (abs_sum / (r * (dim as f64).sqrt())).clamp(f64::MIN_POSITIVE, 1.0);
        let coefficient = if self.metric == Metric::L2 { 2.0 } else { 1.0 };
        let scale = coefficient * r / ip;
        let error = scale * (1.0 - ip * ip).max(0.0).sqrt();
        [add as f32, scale as f32, error as f32, ones]
    }
}

/// Inverted lists with codes computed in memory for `codebook`: what a
/// segment written for an `IVF_RABITQ` collection reads from its file,
/// for tests and in-process benchmarks.
#[derive(Debug)]
pub struct CodedLists<L> {
    lists: L,
    seed: u64,
    words: usize,
    codes: Vec<Vec<u64>>,
    factors: Vec<Vec<[f32; CODE_FACTORS]>>,
}

impl<L: InvertedLists> CodedLists<L> {
    /// Codes every row of `lists` with `codebook`.
    pub fn new(lists: L, codebook: &Codebook) -> CodedLists<L> {
        let (dim, words) = (lists.dim(), codebook.words());
        let mut scratch = Vec::new();
        let mut codes = Vec::with_capacity(lists.nlist());
        let mut factors = Vec::with_capacity(lists.nlist());
        for l in 0..lists.nlist() as u32 {
            let vectors = lists.list_vectors(ListId(l));
            let mut list_codes = vec![0u64; vectors.len() / dim.max(1) * words];
            let list_factors = vectors
                .chunks_exact(dim)
                .zip(list_codes.chunks_exact_mut(words.max(1)))
                .map(|(v, code)| codebook.encode(ListId(l), v, &mut scratch, code))
                .collect();
            codes.push(list_codes);
            factors.push(list_factors);
        }
        CodedLists {
            lists,
            seed: codebook.rotation().seed(),
            words,
            codes,
            factors,
        }
    }
}

impl<L: InvertedLists> InvertedLists for CodedLists<L> {
    fn dim(&self) -> usize {
        self.lists.dim()
    }

    fn nlist(&self) -> usize {
        self.lists.nlist()
    }

    fn list_len(&self, list: ListId) -> usize {
        self.lists.list_len(list)
    }

    fn list_vectors(&self, list: ListId) -> &[f32] {
        self.lists.list_vectors(list)
    }

    fn list_ids(&self, list: ListId) -> &[u64] {
        self.lists.list_ids(list)
    }

    fn list_row_start(&self, list: ListId) -> usize {
        self.lists.list_row_start(list)
    }

    fn list_codes(&self, list: ListId) -> Option<ListCodes<'_>> {
        Some(ListCodes {
            seed: self.seed,
            words: self.words,
            codes: self.codes.get(list.index())?,
            factors: self.factors.get(list.index())?,
        })
    }
}
