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
//! an integer sum of table entries, 32 rows at a time
//! ([`vdb_core::distance::block_dots`] over codes in fast-scan blocks); the
//! rounding's expected share is corrected and its spread added to the
//! bound (see [`ListQuery::prepare`]).
//!
//! **Extended codes** (extended RaBitQ, Gao et al., SIGMOD 2025, here at 8
//! bits a dimension): a row also keeps a byte per dimension, `u'` scaled
//! onto a uniform grid ([`Codebook::encode_extended`]), whose direction
//! meets `u'/r` at an `ip` near 1, so the same estimator's bound is
//! ~100–200 times narrower. A search estimates again from it only the
//! rows the 1-bit bound lets through, with the query's residual in full
//! precision ([`ListQuery::estimate_extended`]), and reranks those this
//! bound lets through: on 1M × 128 vectors at nprobe 4, 66 exact
//! distances a query instead of 536, at the same recall.

mod query;
mod rotation;

pub use query::{Estimate, ListQuery};
pub use rotation::{ROUNDS, Rotation};

pub use vdb_core::code_words;
use vdb_core::distance::fastscan;
use vdb_core::{
    CODE_FACTORS, EXTENDED_FACTORS, ExtendedCodes, InvertedLists, ListCodes, ListId, Metric,
    RowCode,
};

use crate::quantizer::CoarseQuantizer;

/// Index of each factor in a row's [`CODE_FACTORS`] (the scan kernels in
/// `vdb_core::distance::bits` read the record by them).
pub use vdb_core::distance::bits::{ADD, ERROR, ONES, SCALE};

/// Index of each factor in a row's [`EXTENDED_FACTORS`]: the extended
/// estimate's scale and its error scale ([`Codebook::encode_extended`]).
pub const EXTENDED_SCALE: usize = 0;
/// See [`EXTENDED_SCALE`].
pub const EXTENDED_ERROR: usize = 1;

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
        let scale = self.coefficient() * r / ip;
        let error = scale * (1.0 - ip * ip).max(0.0).sqrt();
        [add as f32, scale as f32, error as f32, ones]
    }

    /// [`encode`](Codebook::encode), and the row's extended code into
    /// `extended` (`dim` bytes) with its factors ([`EXTENDED_FACTORS`]).
    ///
    /// With `u = v' − c'` and `m` its largest magnitude, byte `j` is
    /// `u_j·128/m + 127.5` rounded and kept in `0..=255`: the code stands
    /// for `g = code − 127.5` (a uniform 8-bit grid scaled to `u`), whose
    /// direction `ĝ = g/‖g‖` meets `u/r` at `ip = ⟨ĝ, u/r⟩`, near 1. The
    /// same estimator and bound as the 1-bit code's apply (they hold for
    /// any code that depends on the row alone), with
    /// `⟨ĝ, y'⟩ = (Σ code_j·y'_j − 127.5·Σ y'_j)/‖g‖`: so the factors are
    /// `scale = k·r/(ip·‖g‖)` and `error = k·r·√(1 − ip²)/ip`, both `0`
    /// for a row at its centroid (whose code is all zero bytes).
    ///
    /// # Panics
    /// As [`encode`](Codebook::encode), or if `extended` is not `dim`
    /// bytes long.
    pub fn encode_extended(
        &self,
        list: ListId,
        vector: &[f32],
        scratch: &mut Vec<f32>,
        code: &mut [u64],
        extended: &mut [u8],
    ) -> ([f32; CODE_FACTORS], [f32; EXTENDED_FACTORS]) {
        let factors = self.encode(list, vector, scratch, code);
        let dim = self.dim();
        assert!(
            extended.len() == dim,
            "encode_extended: an extended code of {} bytes for dim {dim}",
            extended.len()
        );
        let centroid = self.rotated_centroid(list);
        let residual = |j: usize| f64::from(scratch[j]) - f64::from(centroid[j]);
        let (mut r2, mut largest) = (0.0f64, 0.0f64);
        for j in 0..dim {
            let u = residual(j);
            r2 += u * u;
            largest = largest.max(u.abs());
        }
        if largest == 0.0 {
            extended.iter_mut().for_each(|b| *b = 0);
            return (factors, [0.0; EXTENDED_FACTORS]);
        }
        let per_unit = 128.0 / largest;
        let (mut g_dot_u, mut g_sq) = (0.0f64, 0.0f64);
        for (j, byte) in extended.iter_mut().enumerate() {
            let u = residual(j);
            let level = (u * per_unit + 127.5).round().clamp(0.0, 255.0);
            *byte = level as u8;
            let g = level - 127.5;
            g_dot_u += g * u;
            g_sq += g * g;
        }
        let r = r2.sqrt();
        let g_norm = g_sq.sqrt();
        let ip = (g_dot_u / (g_norm * r)).clamp(f64::MIN_POSITIVE, 1.0);
        let k = self.coefficient();
        let scale = k * r / (ip * g_norm);
        let error = k * r * (1.0 - ip * ip).max(0.0).sqrt() / ip;
        (factors, [scale as f32, error as f32])
    }

    /// `k` of the distance's `k·r·⟨u'/r, y'⟩` term: 2 for L2, else 1.
    fn coefficient(&self) -> f64 {
        if self.metric == Metric::L2 { 2.0 } else { 1.0 }
    }
}

/// Codes rows one after another with one codebook, reusing its buffers:
/// what a segment writer is given for each row.
#[derive(Debug)]
pub struct Encoder<'b> {
    book: &'b Codebook,
    extended: bool,
    scratch: Vec<f32>,
    code: Vec<u64>,
    bytes: Vec<u8>,
}

impl<'b> Encoder<'b> {
    /// An encoder for `book`'s codes, with extended codes if `extended`.
    pub fn new(book: &'b Codebook, extended: bool) -> Encoder<'b> {
        Encoder {
            book,
            extended,
            scratch: Vec::new(),
            code: vec![0; book.words()],
            bytes: vec![0; if extended { book.dim() } else { 0 }],
        }
    }

    /// The codes of `vector` as a row of list `list` (see
    /// [`Codebook::encode_extended`], whose panics apply).
    pub fn encode(&mut self, list: ListId, vector: &[f32]) -> RowCode<'_> {
        if self.extended {
            let (factors, ext) = self.book.encode_extended(
                list,
                vector,
                &mut self.scratch,
                &mut self.code,
                &mut self.bytes,
            );
            RowCode {
                code: &self.code,
                factors,
                extended: Some((&self.bytes, ext)),
            }
        } else {
            let factors = self
                .book
                .encode(list, vector, &mut self.scratch, &mut self.code);
            RowCode {
                code: &self.code,
                factors,
                extended: None,
            }
        }
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
    /// Per list, its codes in fast-scan blocks.
    blocks: Vec<Vec<u8>>,
    factors: Vec<Vec<[f32; CODE_FACTORS]>>,
    /// Per list, the extended codes and their factors, if kept.
    extended: Option<Vec<ExtendedList>>,
}

/// One list's extended codes in [`CodedLists`].
#[derive(Debug)]
struct ExtendedList {
    codes: Vec<u8>,
    factors: Vec<[f32; EXTENDED_FACTORS]>,
}

impl<L: InvertedLists> CodedLists<L> {
    /// Codes every row of `lists` with `codebook`, with extended codes.
    pub fn new(lists: L, codebook: &Codebook) -> CodedLists<L> {
        CodedLists::build(lists, codebook, true)
    }

    /// Codes every row of `lists` with `codebook`, 1-bit codes only (as a
    /// segment without extended codes keeps them).
    pub fn without_extended(lists: L, codebook: &Codebook) -> CodedLists<L> {
        CodedLists::build(lists, codebook, false)
    }

    fn build(lists: L, codebook: &Codebook, with_extended: bool) -> CodedLists<L> {
        let dim = lists.dim();
        let mut encoder = Encoder::new(codebook, with_extended);
        let mut blocks = Vec::with_capacity(lists.nlist());
        let mut factors = Vec::with_capacity(lists.nlist());
        let mut extended = Vec::with_capacity(lists.nlist());
        for l in 0..lists.nlist() as u32 {
            let (mut list_codes, mut list_factors) = (Vec::new(), Vec::new());
            let (mut bytes, mut byte_factors) = (Vec::new(), Vec::new());
            for v in lists.list_vectors(ListId(l)).chunks_exact(dim.max(1)) {
                let row = encoder.encode(ListId(l), v);
                list_codes.extend_from_slice(row.code);
                list_factors.push(row.factors);
                if let Some((b, f)) = row.extended {
                    bytes.extend_from_slice(b);
                    byte_factors.push(f);
                }
            }
            let mut list_blocks = Vec::new();
            fastscan::interleave(&list_codes, codebook.words(), &mut list_blocks);
            blocks.push(list_blocks);
            factors.push(list_factors);
            extended.push(ExtendedList {
                codes: bytes,
                factors: byte_factors,
            });
        }
        CodedLists {
            lists,
            seed: codebook.rotation().seed(),
            words: codebook.words(),
            blocks,
            factors,
            extended: with_extended.then_some(extended),
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
            blocks: self.blocks.get(list.index())?,
            factors: self.factors.get(list.index())?,
            extended: match &self.extended {
                None => None,
                Some(lists) => {
                    let e = lists.get(list.index())?;
                    Some(ExtendedCodes {
                        codes: &e.codes,
                        factors: &e.factors,
                    })
                }
            },
        })
    }
}
