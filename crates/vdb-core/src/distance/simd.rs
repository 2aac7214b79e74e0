//! Hand-written SIMD kernels, the only `unsafe` code in this crate. Every
//! function that declares or uses `unsafe` says why with
//! `#[expect(unsafe_code, reason = …)]`, and every `unsafe` block has its
//! `SAFETY` comment (clippy's `undocumented_unsafe_blocks` is denied).
//!
//! Each kernel is a `#[target_feature]` function. Such a function may only be
//! called on a CPU that has the feature, so the safe wrappers below are only
//! ever handed out by [`kernels`] after the feature was detected at run time;
//! that detection is the invariant every `SAFETY` comment here relies on.
//!
//! Loads use unaligned instructions over `n = min(a.len(), b.len())`
//! elements: a full-width load at index `i` happens only when `i + width <=
//! n`, and the remainder is handled with masked loads (AVX-512, which never
//! touch masked-off lanes) or scalar code. No kernel reads outside its
//! slices. The speed of these paths is measured by `benches/kernels.rs`.

use super::{Isa, Kernels};

/// The kernels for `isa` if this CPU supports it; `None` otherwise (and
/// always for [`Isa::Portable`], which lives in the parent module).
pub(super) fn kernels(isa: Isa) -> Option<Kernels> {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma") =>
        {
            Some(x86::AVX2)
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if std::arch::is_x86_feature_detected!("avx512f") => Some(x86::AVX512),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon if std::arch::is_aarch64_feature_detected!("neon") => Some(neon::NEON),
        _ => None,
    }
}

/// Applies `kernel(query, row)` to each row of `vectors` into `out`.
macro_rules! batch_of {
    ($kernel:ident, $query:ident, $vectors:ident, $out:ident) => {{
        batch_of!(
            $kernel,
            $query,
            $vectors,
            $out,
            |_row: *const f32, _bytes: usize| {}
        )
    }};
    ($kernel:ident, $query:ident, $vectors:ident, $out:ident, $prefetch:expr) => {{
        let dim = $query.len();
        if dim == 0 {
            $out.iter_mut().for_each(|d| *d = 0.0);
            return;
        }
        let row_bytes = dim * 4;
        let base = $vectors.as_ptr();
        let end = $vectors.len() / dim * dim;
        for (i, (row, d)) in $vectors.chunks_exact(dim).zip($out.iter_mut()).enumerate() {
            // Ask for the row PREFETCH_BYTES ahead while this one is computed;
            // only addresses inside the slice are named.
            let ahead = i * dim + PREFETCH_BYTES / 4;
            if ahead + dim <= end {
                $prefetch(base.wrapping_add(ahead), row_bytes);
            }
            // SAFETY: see the caller's SAFETY comment; same feature set.
            *d = unsafe { $kernel($query, row) };
        }
    }};
}

/// How far ahead of the row being scanned the x86 batch kernels prefetch.
/// Lists are read once, linearly, from memory: the hardware prefetcher stops
/// at every 4 KiB page, so software prefetch keeps more misses in flight.
/// Measured with `benches/scan.rs` (DRAM-resident lists).
const PREFETCH_BYTES: usize = 4096;

#[cfg(target_arch = "x86_64")]
mod fastscan_x86;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::bits::BoundTerms;
    use super::super::fastscan;
    use super::super::quantize::{self, LANES, Quantized};
    use super::super::{BlockedVectors, Isa, Kernels};
    use super::PREFETCH_BYTES;
    use crate::CODE_FACTORS;

    pub(super) const AVX2: Kernels = Kernels {
        isa: Isa::Avx2,
        l2_sq: l2_sq_avx2_entry,
        dot: dot_avx2_entry,
        l2_sq_batch: l2_sq_batch_avx2_entry,
        dot_batch: dot_batch_avx2_entry,
        blocked_dots: blocked_dots_avx2_entry,
        dot_matrix: super::gemm_entry,
        block_dots: super::fastscan_x86::block_dots_avx2_entry,
        lower_bounds: lower_bounds_avx2_entry,
        byte_dot: byte_dot_avx2_entry,
        quantize: quantize_avx2_entry,
    };

    pub(super) const AVX512: Kernels = Kernels {
        isa: Isa::Avx512,
        l2_sq: l2_sq_avx512_entry,
        dot: dot_avx512_entry,
        l2_sq_batch: l2_sq_batch_avx512_entry,
        dot_batch: dot_batch_avx512_entry,
        blocked_dots: blocked_dots_avx512_entry,
        dot_matrix: dot_matrix_avx512_entry,
        block_dots: super::fastscan_x86::block_dots_avx512_entry,
        lower_bounds: lower_bounds_avx512_entry,
        byte_dot: byte_dot_avx512_entry,
        quantize: quantize_avx512_entry,
    };

    /// A kernel-table entry and the `#[target_feature]` function behind
    /// it, which compiles the lower-bound kernel's one generic body
    /// (`bits::lower_bounds_generic`) with `$features`.
    macro_rules! lower_bounds_kernel {
        ($entry:ident, $kernel:ident, $features:literal) => {
            #[expect(
                unsafe_code,
                reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
            )]
            fn $entry(
                terms: &BoundTerms,
                dots: &[u32],
                factors: &[[f32; CODE_FACTORS]],
                out: &mut [f32],
            ) {
                // SAFETY: only reachable through the table of the
                // instruction set these features belong to, returned by
                // `kernels` only after detecting them.
                unsafe { $kernel(terms, dots, factors, out) }
            }

            #[target_feature(enable = $features)]
            fn $kernel(
                terms: &BoundTerms,
                dots: &[u32],
                factors: &[[f32; CODE_FACTORS]],
                out: &mut [f32],
            ) {
                super::super::bits::lower_bounds_generic(terms, dots, factors, out)
            }
        };
    }

    // Eight codes a step with AVX2, sixteen with AVX-512.
    lower_bounds_kernel!(lower_bounds_avx2_entry, lower_bounds_avx2, "avx2,fma");
    lower_bounds_kernel!(lower_bounds_avx512_entry, lower_bounds_avx512, "avx512f");

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn byte_dot_avx2_entry(code: &[u8], query: &[f32]) -> f32 {
        // SAFETY: only reachable through `AVX2`, returned by `kernels` only
        // after detecting avx2 and fma.
        unsafe { byte_dot_avx2(code, query) }
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn byte_dot_avx512_entry(code: &[u8], query: &[f32]) -> f32 {
        // SAFETY: only reachable through `AVX512`, returned by `kernels`
        // only after detecting avx512f.
        unsafe { byte_dot_avx512(code, query) }
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn quantize_avx2_entry(
        query: &[f32],
        centroid: &[f32],
        residual: &mut [f32],
        table: &mut [u8],
    ) -> Quantized {
        // SAFETY: only reachable through `AVX2`, returned by `kernels` only
        // after detecting avx2 and fma.
        unsafe { quantize_avx2(query, centroid, residual, table) }
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn quantize_avx512_entry(
        query: &[f32],
        centroid: &[f32],
        residual: &mut [f32],
        table: &mut [u8],
    ) -> Quantized {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: only reachable through `AVX512`, returned by
            // `kernels` only after detecting avx512f; avx512bw was
            // detected just now.
            unsafe { quantize_avx512(query, centroid, residual, table) }
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            quantize_avx2_entry(query, centroid, residual, table)
        } else {
            quantize::portable(query, centroid, residual, table)
        }
    }

    /// The first pass is the one body compiled with these features; the
    /// second takes a group of sixteen values as two halves of eight,
    /// packs their levels into sixteen bytes and makes the group's part of
    /// the table with byte shuffles (`fastscan::PAIR_CONTROLS`). The
    /// operations of `quantize::Grid::level`, lane for lane, no fused
    /// multiply-add.
    #[target_feature(enable = "avx2,fma")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel: raw loads and stores, each bounded as its SAFETY comment says"
    )]
    unsafe fn quantize_avx2(
        query: &[f32],
        centroid: &[f32],
        residual: &mut [f32],
        table: &mut [u8],
    ) -> Quantized {
        let (n, bytes, r, grid) = quantize::begin(query, centroid, residual, table);
        let lo = _mm256_set1_ps(grid.lo);
        let step = _mm256_set1_ps(grid.step);
        let inverse = _mm256_set1_ps(grid.inverse);
        let top = _mm256_set1_ps(quantize::LEVELS);
        let rounder = _mm256_set1_ps(quantize::ROUNDER);
        let low4 = _mm256_set1_epi32(0xF);
        // SAFETY: each control holds 64 bytes, two loads of 32.
        let controls = fastscan::PAIR_CONTROLS.map(|c| unsafe {
            [
                _mm256_loadu_si256(c.as_ptr().cast()),
                _mm256_loadu_si256(c.as_ptr().add(32).cast()),
            ]
        });
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut sum = _mm256_setzero_si256();
        let whole = n - n % LANES;
        // Whole groups of sixteen values fill 64 bytes each of the table
        // (`check`: 64 bytes a group up to `bytes`).
        assert!(whole / LANES * 64 <= bytes.min(table.len()));
        for g in 0..whole / LANES {
            let mut halves = [_mm_setzero_si128(); 2];
            for (half, acc) in acc.iter_mut().enumerate() {
                // SAFETY: g·16 + half·8 + 8 ≤ whole ≤ n ≤ residual.len().
                let y = unsafe { _mm256_loadu_ps(residual.as_ptr().add(g * LANES + half * 8)) };
                let t = _mm256_min_ps(_mm256_mul_ps(_mm256_sub_ps(y, lo), inverse), top);
                let level = _mm256_and_si256(_mm256_castps_si256(_mm256_add_ps(t, rounder)), low4);
                let on_grid = _mm256_add_ps(lo, _mm256_mul_ps(step, _mm256_cvtepi32_ps(level)));
                let e = _mm256_sub_ps(y, on_grid);
                *acc = _mm256_add_ps(*acc, _mm256_mul_ps(e, e));
                sum = _mm256_add_epi32(sum, level);
                halves[half] = _mm_packus_epi32(
                    _mm256_castsi256_si128(level),
                    _mm256_extracti128_si256::<1>(level),
                );
            }
            let levels = _mm256_broadcastsi128_si256(_mm_packus_epi16(halves[0], halves[1]));
            for part in 0..2 {
                let mut entries = _mm256_setzero_si256();
                for c in &controls {
                    entries = _mm256_add_epi8(entries, _mm256_shuffle_epi8(levels, c[part]));
                }
                // SAFETY: bytes `64g + 32·part ..` + 32 ≤ 64(g + 1), inside
                // the table (asserted above).
                unsafe {
                    _mm256_storeu_si256(table.as_mut_ptr().add(64 * g + 32 * part).cast(), entries)
                };
            }
        }
        let mut lanes = [0.0f32; LANES];
        let mut sums = [0u32; 8];
        // SAFETY: `lanes` holds sixteen floats, two stores of eight;
        // `sums` eight integers.
        unsafe {
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(lanes.as_mut_ptr().add(8), acc[1]);
            _mm256_storeu_si256(sums.as_mut_ptr().cast(), sum);
        }
        let level_sum = sums.iter().sum();
        quantize::finish(&r, &grid, residual, whole, n, &lanes, level_sum, table)
    }

    /// The first pass is the one body compiled with these features; the
    /// second takes sixteen values a step, narrows their levels to sixteen
    /// bytes and makes the group's part of the table with four byte
    /// shuffles (`fastscan::PAIR_CONTROLS`). The operations of
    /// `quantize::Grid::level`, lane for lane, no fused multiply-add.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel: raw loads and stores, each bounded as its SAFETY comment says"
    )]
    unsafe fn quantize_avx512(
        query: &[f32],
        centroid: &[f32],
        residual: &mut [f32],
        table: &mut [u8],
    ) -> Quantized {
        let (n, bytes, r, grid) = quantize::begin(query, centroid, residual, table);
        let lo = _mm512_set1_ps(grid.lo);
        let step = _mm512_set1_ps(grid.step);
        let inverse = _mm512_set1_ps(grid.inverse);
        let top = _mm512_set1_ps(quantize::LEVELS);
        let rounder = _mm512_set1_ps(quantize::ROUNDER);
        let low4 = _mm512_set1_epi32(0xF);
        // SAFETY: each control holds 64 bytes.
        let controls =
            fastscan::PAIR_CONTROLS.map(|c| unsafe { _mm512_loadu_si512(c.as_ptr().cast()) });
        let mut acc = _mm512_setzero_ps();
        let mut sum = _mm512_setzero_si512();
        let whole = n - n % LANES;
        // As in the AVX2 kernel: 64 table bytes a whole group.
        assert!(whole / LANES * 64 <= bytes.min(table.len()));
        for g in 0..whole / LANES {
            // SAFETY: (g + 1)·16 ≤ whole ≤ n ≤ residual.len().
            let y = unsafe { _mm512_loadu_ps(residual.as_ptr().add(g * LANES)) };
            let t = _mm512_min_ps(_mm512_mul_ps(_mm512_sub_ps(y, lo), inverse), top);
            let level = _mm512_and_si512(_mm512_castps_si512(_mm512_add_ps(t, rounder)), low4);
            let on_grid = _mm512_add_ps(lo, _mm512_mul_ps(step, _mm512_cvtepi32_ps(level)));
            let e = _mm512_sub_ps(y, on_grid);
            acc = _mm512_add_ps(acc, _mm512_mul_ps(e, e));
            sum = _mm512_add_epi32(sum, level);
            let levels = _mm512_broadcast_i32x4(_mm512_cvtepi32_epi8(level));
            let mut entries = _mm512_setzero_si512();
            for c in controls {
                entries = _mm512_add_epi8(entries, _mm512_shuffle_epi8(levels, c));
            }
            // SAFETY: bytes `64g .. 64g + 64` of the table (asserted above).
            unsafe { _mm512_storeu_si512(table.as_mut_ptr().add(64 * g).cast(), entries) };
        }
        let mut lanes = [0.0f32; LANES];
        // SAFETY: `lanes` holds sixteen floats.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc) };
        let level_sum = _mm512_reduce_add_epi32(sum) as u32;
        quantize::finish(&r, &grid, residual, whole, n, &lanes, level_sum, table)
    }

    /// Eight bytes a step widened to eight `f32` lanes, four accumulators;
    /// the last `n mod 8` dimensions one at a time.
    #[target_feature(enable = "avx2,fma")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel: raw loads, each bounded as its SAFETY comment says"
    )]
    unsafe fn byte_dot_avx2(code: &[u8], query: &[f32]) -> f32 {
        let n = code.len().min(query.len());
        let (pc, pq) = (code.as_ptr(), query.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let at = i + 8 * j;
                // SAFETY: bytes `at .. at + 8 <= i + 32 <= n` are inside
                // `code` (the loop condition; `n` is the shorter length).
                let bytes = unsafe { _mm_loadl_epi64(pc.add(at).cast()) };
                let x = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
                // SAFETY: the same eight lanes of `query`.
                let y = unsafe { _mm256_loadu_ps(pq.add(at)) };
                *acc = _mm256_fmadd_ps(x, y, *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            // SAFETY: bytes `i .. i + 8 <= n` (the loop condition).
            let bytes = unsafe { _mm_loadl_epi64(pc.add(i).cast()) };
            let x = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
            // SAFETY: the same eight lanes of `query`.
            let y = unsafe { _mm256_loadu_ps(pq.add(i)) };
            acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds eight f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
        let mut total = lanes.iter().sum::<f32>();
        for (&c, &q) in code[i..n].iter().zip(&query[i..n]) {
            total = f32::from(c).mul_add(q, total);
        }
        total
    }

    /// Sixteen bytes a step widened to sixteen `f32` lanes, two
    /// accumulators; the last `n mod 16` dimensions from a zero-padded
    /// copy of the bytes and a masked load of the query.
    #[target_feature(enable = "avx512f")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel: raw loads, each bounded as its SAFETY comment says"
    )]
    unsafe fn byte_dot_avx512(code: &[u8], query: &[f32]) -> f32 {
        let n = code.len().min(query.len());
        let (pc, pq) = (code.as_ptr(), query.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 2];
        let mut i = 0;
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let at = i + 16 * j;
                // SAFETY: bytes `at .. at + 16 <= i + 32 <= n` are inside
                // `code` (the loop condition; `n` is the shorter length).
                let bytes = unsafe { _mm_loadu_si128(pc.add(at).cast()) };
                let x = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes));
                // SAFETY: the same sixteen lanes of `query`.
                let y = unsafe { _mm512_loadu_ps(pq.add(at)) };
                *acc = _mm512_fmadd_ps(x, y, *acc);
            }
            i += 32;
        }
        while i < n {
            let rem = (n - i).min(16);
            let mut tail = [0u8; 16];
            tail[..rem].copy_from_slice(&code[i..i + rem]);
            // SAFETY: `tail` holds sixteen bytes.
            let bytes = unsafe { _mm_loadu_si128(tail.as_ptr().cast()) };
            let x = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes));
            // SAFETY: the mask enables only the `rem` lanes left in `query`.
            let y = unsafe { _mm512_maskz_loadu_ps(tail_mask(rem), pq.add(i)) };
            acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
            i += rem;
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn dot_matrix_avx512_entry(
        a: &[f32],
        m: usize,
        b: &[f32],
        n: usize,
        dim: usize,
        blocked: Option<&BlockedVectors>,
        out: &mut [f32],
    ) {
        if !super::product_shape(a, m, b, n, dim, out) {
            return;
        }
        let owned;
        let blocked = match blocked {
            Some(b) => b,
            None => {
                owned = BlockedVectors::new(&b[..n * dim], dim);
                &owned
            }
        };
        assert!(
            blocked.len() == n && blocked.dim() == dim,
            "dot_matrix: blocked vectors are not the {n}x{dim} operand"
        );
        // SAFETY: only reachable through `AVX512`, returned by `kernels` only
        // after detecting avx512f. The kernel reads and writes through
        // checked slices and asserts, except inside `tile` and `store`,
        // which assert their bounds first.
        unsafe { dot_matrix_avx512(a, m, blocked, out) }
    }

    /// Rows of `a` per group in [`dot_matrix_avx512`].
    const ROWS: usize = 6;
    /// Blocks of 16 vectors of `b` per step in [`dot_matrix_avx512`].
    const STEP: usize = 4;

    /// `out[i·n + j] = aᵢ · bⱼ` with `b` in blocks of 16 vectors,
    /// dimension-major ([`BlockedVectors`]). Each group of [`ROWS`] rows of `a`
    /// then meets [`STEP`] blocks at a time with `ROWS × STEP` = 24 of the
    /// 32 registers holding partial sums for the whole dimension: a step of
    /// one dimension loads 4 × 16 values of `b` and broadcasts 6 of `a` for
    /// 24 multiply-adds, which keeps both multiply-add units busy without
    /// running out of load ports. The group is interleaved first
    /// (`at[d·ROWS + r] = a_r[d]`), so both operands are read in order.
    #[target_feature(enable = "avx512f")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel: raw loads and stores, each bounded as its SAFETY comment says"
    )]
    unsafe fn dot_matrix_avx512(a: &[f32], m: usize, b: &BlockedVectors, out: &mut [f32]) {
        let (n, dim) = (b.len(), b.dim());
        let data = b.data();
        let blocks = n.div_ceil(16);
        let mut at = vec![0.0f32; ROWS * dim];
        for (g, group) in a[..m * dim].chunks(ROWS * dim).enumerate() {
            let rows = group.len() / dim;
            for (r, row) in group.chunks_exact(dim).enumerate() {
                for (d, &x) in row.iter().enumerate() {
                    at[d * ROWS + r] = x;
                }
            }
            // A short last group computes on the previous group's rows too
            // and stores only its own.
            let mut block = 0;
            while block < blocks {
                let out_row = g * ROWS * n;
                if block + STEP <= blocks {
                    // SAFETY: blocks `block .. block + STEP` exist (see
                    // `tile` for what it reads and `store` for what it
                    // writes).
                    unsafe {
                        let acc = tile::<STEP>(data, block, dim, &at);
                        store(&acc, rows, block, n, &mut out[out_row..]);
                    }
                    block += STEP;
                } else {
                    // SAFETY: as above, for the one block `block`.
                    unsafe {
                        let acc = tile::<1>(data, block, dim, &at);
                        store(&acc, rows, block, n, &mut out[out_row..]);
                    }
                    block += 1;
                }
            }
        }
    }

    /// Partial sums of the [`ROWS`] interleaved rows in `at` with the `NB`
    /// blocks from `first` on.
    ///
    /// # Safety
    /// The CPU has AVX-512F. (`data` must hold at least
    /// `(first + NB) · dim · 16` values and `at` at least `dim · ROWS`;
    /// checked.)
    #[inline]
    #[target_feature(enable = "avx512f")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel: raw loads and stores, each bounded as its SAFETY comment says"
    )]
    unsafe fn tile<const NB: usize>(
        data: &[f32],
        first: usize,
        dim: usize,
        at: &[f32],
    ) -> [[__m512; NB]; ROWS] {
        assert!(
            data.len() >= (first + NB) * dim * 16 && at.len() >= dim * ROWS,
            "dot_matrix: a tile outside its operands"
        );
        let mut acc = [[_mm512_setzero_ps(); NB]; ROWS];
        let base = data.as_ptr();
        let xs = at.as_ptr();
        for d in 0..dim {
            // SAFETY: block `first + k < first + NB` starts at
            // `(first + k)·dim·16` and dimension `d < dim` of it is the 16
            // values from `d·16` on, inside `data` (asserted above).
            let v: [__m512; NB] = std::array::from_fn(|k| unsafe {
                _mm512_loadu_ps(base.add(((first + k) * dim + d) * 16))
            });
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `d·ROWS + r < dim·ROWS <= at.len()`.
                let x = _mm512_set1_ps(unsafe { *xs.add(d * ROWS + r) });
                for (acc, &v) in acc.iter_mut().zip(&v) {
                    *acc = _mm512_fmadd_ps(x, v, *acc);
                }
            }
        }
        acc
    }

    /// Writes the first `rows` rows of `acc` (blocks from `first` on) into
    /// `out`, a row-major `rows × n` matrix, stopping at column `n`.
    ///
    /// # Safety
    /// The CPU has AVX-512F. (`out` must hold at least `rows · n` values;
    /// checked.)
    #[inline]
    #[target_feature(enable = "avx512f")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel: raw loads and stores, each bounded as its SAFETY comment says"
    )]
    unsafe fn store<const NB: usize>(
        acc: &[[__m512; NB]; ROWS],
        rows: usize,
        first: usize,
        n: usize,
        out: &mut [f32],
    ) {
        assert!(out.len() >= rows * n, "dot_matrix: output too short");
        for (r, acc) in acc.iter().enumerate().take(rows) {
            for (k, acc) in acc.iter().enumerate() {
                let col = (first + k) * 16;
                if col >= n {
                    break;
                }
                let width = 16.min(n - col);
                let mask: __mmask16 = if width == 16 {
                    0xffff
                } else {
                    (1u16 << width) - 1
                };
                // SAFETY: the lanes written are columns `col .. col + width
                // <= n` of row `r < rows`, inside `out` (asserted above);
                // masked-off lanes are never touched.
                unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(r * n + col), mask, *acc) };
            }
        }
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn blocked_dots_avx2_entry(q: &[f32], data: &[f32], dim: usize, count: usize, out: &mut [f32]) {
        // SAFETY: only reachable through `AVX2`, returned by `kernels` only
        // after detecting avx2 and fma.
        unsafe { blocked_dots_avx2(q, data, dim, count, out) }
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn blocked_dots_avx512_entry(
        q: &[f32],
        data: &[f32],
        dim: usize,
        count: usize,
        out: &mut [f32],
    ) {
        // SAFETY: only reachable through `AVX512`, returned by `kernels` only
        // after detecting avx512f.
        unsafe { blocked_dots_avx512(q, data, dim, count, out) }
    }

    /// The safe generic kernel, compiled with AVX2 and FMA enabled.
    #[target_feature(enable = "avx2,fma")]
    fn blocked_dots_avx2(q: &[f32], data: &[f32], dim: usize, count: usize, out: &mut [f32]) {
        super::super::blocked::dots_generic::<true>(q, data, dim, count, out)
    }

    /// The safe generic kernel, compiled with AVX-512F (which implies FMA).
    #[target_feature(enable = "avx512f")]
    fn blocked_dots_avx512(q: &[f32], data: &[f32], dim: usize, count: usize, out: &mut [f32]) {
        super::super::blocked::dots_generic::<true>(q, data, dim, count, out)
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn l2_sq_avx2_entry(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: this function is only reachable through `AVX2`, which
        // `kernels` returns only after detecting avx2 and fma.
        unsafe { l2_sq_avx2(a, b) }
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn dot_avx2_entry(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: as in `l2_sq_avx2_entry`.
        unsafe { dot_avx2(a, b) }
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn l2_sq_batch_avx2_entry(q: &[f32], v: &[f32], out: &mut [f32]) {
        // SAFETY: as in `l2_sq_avx2_entry`.
        unsafe { l2_sq_batch_avx2(q, v, out) }
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn dot_batch_avx2_entry(q: &[f32], v: &[f32], out: &mut [f32]) {
        // SAFETY: as in `l2_sq_avx2_entry`.
        unsafe { dot_batch_avx2(q, v, out) }
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn l2_sq_avx512_entry(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: this function is only reachable through `AVX512`, which
        // `kernels` returns only after detecting avx512f.
        unsafe { l2_sq_avx512(a, b) }
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn dot_avx512_entry(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: as in `l2_sq_avx512_entry`.
        unsafe { dot_avx512(a, b) }
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn l2_sq_batch_avx512_entry(q: &[f32], v: &[f32], out: &mut [f32]) {
        // SAFETY: as in `l2_sq_avx512_entry`.
        unsafe { l2_sq_batch_avx512(q, v, out) }
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn dot_batch_avx512_entry(q: &[f32], v: &[f32], out: &mut [f32]) {
        // SAFETY: as in `l2_sq_avx512_entry`.
        unsafe { dot_batch_avx512(q, v, out) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum256(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel: raw loads and stores, each bounded as its SAFETY comment says"
    )]
    unsafe fn l2_sq_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads below): every 8-wide load at `i + off` is guarded
        // by `i + off + 8 <= n`, so it stays inside both slices.
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: lane group `j` ends at `i + 8·(j + 1) <= i + 32 <= n` (the loop condition).
                let x = unsafe { _mm256_loadu_ps(pa.add(i + 8 * j)) };
                // SAFETY: the same bound for `b` (`n` is the shorter length).
                let y = unsafe { _mm256_loadu_ps(pb.add(i + 8 * j)) };
                let d = _mm256_sub_ps(x, y);
                *acc = _mm256_fmadd_ps(d, d, *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            // SAFETY: the loop condition keeps this full-width load inside `a`.
            let x = unsafe { _mm256_loadu_ps(pa.add(i)) };
            // SAFETY: the same bound for `b` (`n` is the shorter length).
            let y = unsafe { _mm256_loadu_ps(pb.add(i)) };
            let d = _mm256_sub_ps(x, y);
            acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut total = hsum256(sum);
        for (x, y) in a[i..n].iter().zip(&b[i..n]) {
            total += (x - y) * (x - y);
        }
        total
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel: raw loads and stores, each bounded as its SAFETY comment says"
    )]
    unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads below): guarded by `i + off + 8 <= n` as in
        // `l2_sq_avx2`.
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: lane group `j` ends at `i + 8·(j + 1) <= i + 32 <= n` (the loop condition).
                let x = unsafe { _mm256_loadu_ps(pa.add(i + 8 * j)) };
                // SAFETY: the same bound for `b` (`n` is the shorter length).
                let y = unsafe { _mm256_loadu_ps(pb.add(i + 8 * j)) };
                *acc = _mm256_fmadd_ps(x, y, *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            // SAFETY: the loop condition keeps this full-width load inside `a`.
            let x = unsafe { _mm256_loadu_ps(pa.add(i)) };
            // SAFETY: the same bound for `b` (`n` is the shorter length).
            let y = unsafe { _mm256_loadu_ps(pb.add(i)) };
            acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut total = hsum256(sum);
        for (x, y) in a[i..n].iter().zip(&b[i..n]) {
            total += x * y;
        }
        total
    }

    /// Prefetches `bytes` bytes from `p` into all cache levels.
    #[inline]
    #[target_feature(enable = "sse")]
    fn prefetch(p: *const f32, bytes: usize) {
        let p = p.cast::<i8>();
        let mut off = 0;
        while off < bytes {
            // Prefetching never faults, whatever the address; `wrapping_add`
            // keeps the address computation itself free of UB.
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off));
            off += 64;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel that calls the one-row kernel for each row, under the same feature"
    )]
    unsafe fn l2_sq_batch_avx2(query: &[f32], vectors: &[f32], out: &mut [f32]) {
        batch_of!(l2_sq_avx2, query, vectors, out, |p, n| prefetch(p, n))
    }

    #[target_feature(enable = "avx2,fma")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel that calls the one-row kernel for each row, under the same feature"
    )]
    unsafe fn dot_batch_avx2(query: &[f32], vectors: &[f32], out: &mut [f32]) {
        batch_of!(dot_avx2, query, vectors, out, |p, n| prefetch(p, n))
    }

    /// Mask selecting the first `rem` (< 16) lanes.
    #[inline]
    fn tail_mask(rem: usize) -> __mmask16 {
        ((1u32 << rem) - 1) as __mmask16
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel: raw loads and stores, each bounded as its SAFETY comment says"
    )]
    unsafe fn l2_sq_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads below): every 16-wide load at `i + off` is
        // guarded by `i + off + 16 <= n`; the final masked load reads only
        // the `n - i` lanes that remain, and masked-off lanes are not
        // accessed (AVX-512 masked loads suppress faults on them).
        while i + 64 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: lane group `j` ends at `i + 16·(j + 1) <= i + 64 <= n` (the loop condition).
                let x = unsafe { _mm512_loadu_ps(pa.add(i + 16 * j)) };
                // SAFETY: the same bound for `b` (`n` is the shorter length).
                let y = unsafe { _mm512_loadu_ps(pb.add(i + 16 * j)) };
                let d = _mm512_sub_ps(x, y);
                *acc = _mm512_fmadd_ps(d, d, *acc);
            }
            i += 64;
        }
        while i + 16 <= n {
            // SAFETY: the loop condition keeps this full-width load inside `a`.
            let x = unsafe { _mm512_loadu_ps(pa.add(i)) };
            // SAFETY: the same bound for `b` (`n` is the shorter length).
            let y = unsafe { _mm512_loadu_ps(pb.add(i)) };
            let d = _mm512_sub_ps(x, y);
            acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
            i += 16;
        }
        if i < n {
            let m = tail_mask(n - i);
            // SAFETY: the mask enables only the `n - i` lanes left in `a`.
            let x = unsafe { _mm512_maskz_loadu_ps(m, pa.add(i)) };
            // SAFETY: the same mask for `b` (`n` is the shorter length).
            let y = unsafe { _mm512_maskz_loadu_ps(m, pb.add(i)) };
            let d = _mm512_sub_ps(x, y);
            acc[1] = _mm512_fmadd_ps(d, d, acc[1]);
        }
        let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(sum)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel: raw loads and stores, each bounded as its SAFETY comment says"
    )]
    unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads below): guarded as in `l2_sq_avx512`.
        while i + 64 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: lane group `j` ends at `i + 16·(j + 1) <= i + 64 <= n` (the loop condition).
                let x = unsafe { _mm512_loadu_ps(pa.add(i + 16 * j)) };
                // SAFETY: the same bound for `b` (`n` is the shorter length).
                let y = unsafe { _mm512_loadu_ps(pb.add(i + 16 * j)) };
                *acc = _mm512_fmadd_ps(x, y, *acc);
            }
            i += 64;
        }
        while i + 16 <= n {
            // SAFETY: the loop condition keeps this full-width load inside `a`.
            let x = unsafe { _mm512_loadu_ps(pa.add(i)) };
            // SAFETY: the same bound for `b` (`n` is the shorter length).
            let y = unsafe { _mm512_loadu_ps(pb.add(i)) };
            acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
            i += 16;
        }
        if i < n {
            let m = tail_mask(n - i);
            // SAFETY: the mask enables only the `n - i` lanes left in `a`.
            let x = unsafe { _mm512_maskz_loadu_ps(m, pa.add(i)) };
            // SAFETY: the same mask for `b` (`n` is the shorter length).
            let y = unsafe { _mm512_maskz_loadu_ps(m, pb.add(i)) };
            acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
        }
        let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(sum)
    }

    #[target_feature(enable = "avx512f")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel that calls the one-row kernel for each row, under the same feature"
    )]
    unsafe fn l2_sq_batch_avx512(query: &[f32], vectors: &[f32], out: &mut [f32]) {
        batch_of!(l2_sq_avx512, query, vectors, out, |p, n| prefetch(p, n))
    }

    #[target_feature(enable = "avx512f")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel that calls the one-row kernel for each row, under the same feature"
    )]
    unsafe fn dot_batch_avx512(query: &[f32], vectors: &[f32], out: &mut [f32]) {
        batch_of!(dot_avx512, query, vectors, out, |p, n| prefetch(p, n))
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    use super::super::{Isa, Kernels};
    use super::PREFETCH_BYTES;

    pub(super) const NEON: Kernels = Kernels {
        isa: Isa::Neon,
        l2_sq: l2_sq_entry,
        dot: dot_entry,
        l2_sq_batch: l2_sq_batch_entry,
        dot_batch: dot_batch_entry,
        blocked_dots: blocked_dots_entry,
        dot_matrix: super::gemm_entry,
        // No kernel of its own yet (NEON's table lookup would be one).
        block_dots: super::super::fastscan::portable,
        // NEON is part of the aarch64 baseline: the portable body
        // vectorises with it already.
        lower_bounds: super::super::bits::lower_bounds_portable,
        byte_dot: byte_dot_entry,
        // No kernel of its own yet: the portable one, whose first pass
        // vectorises with the baseline.
        quantize: super::super::quantize::portable,
    };

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn byte_dot_entry(code: &[u8], query: &[f32]) -> f32 {
        // SAFETY: only reachable through `NEON`, returned by `kernels` only
        // after detecting neon.
        unsafe { byte_dot_neon(code, query) }
    }

    /// The safe generic kernel, compiled with NEON (which has FMA).
    #[target_feature(enable = "neon")]
    fn byte_dot_neon(code: &[u8], query: &[f32]) -> f32 {
        super::super::bytes::generic::<true>(code, query)
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn blocked_dots_entry(q: &[f32], data: &[f32], dim: usize, count: usize, out: &mut [f32]) {
        // SAFETY: only reachable through `NEON`, returned by `kernels` only
        // after detecting neon.
        unsafe { blocked_dots_neon(q, data, dim, count, out) }
    }

    /// The safe generic kernel, compiled with NEON (which has FMA).
    #[target_feature(enable = "neon")]
    fn blocked_dots_neon(q: &[f32], data: &[f32], dim: usize, count: usize, out: &mut [f32]) {
        super::super::blocked::dots_generic::<true>(q, data, dim, count, out)
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn l2_sq_entry(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only reachable through `NEON`, returned by `kernels` only
        // after detecting neon.
        unsafe { l2_sq_neon(a, b) }
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn dot_entry(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: as in `l2_sq_entry`.
        unsafe { dot_neon(a, b) }
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn l2_sq_batch_entry(q: &[f32], v: &[f32], out: &mut [f32]) {
        // SAFETY: as in `l2_sq_entry`.
        unsafe { l2_sq_batch_neon(q, v, out) }
    }

    #[expect(
        unsafe_code,
        reason = "calls a #[target_feature] kernel; reachable only through a table returned after the feature was detected"
    )]
    fn dot_batch_entry(q: &[f32], v: &[f32], out: &mut [f32]) {
        // SAFETY: as in `l2_sq_entry`.
        unsafe { dot_batch_neon(q, v, out) }
    }

    #[inline]
    #[target_feature(enable = "neon")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel: raw loads and stores, each bounded as its SAFETY comment says"
    )]
    unsafe fn l2_sq_neon(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        // SAFETY (all loads below): every 4-wide load at `i + off` is guarded
        // by `i + off + 4 <= n`.
        while i + 16 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: lane group `j` ends at `i + 4·(j + 1) <= i + 16 <= n` (the loop condition).
                let x = unsafe { vld1q_f32(pa.add(i + 4 * j)) };
                // SAFETY: the same bound for `b` (`n` is the shorter length).
                let y = unsafe { vld1q_f32(pb.add(i + 4 * j)) };
                let d = vsubq_f32(x, y);
                *acc = vfmaq_f32(*acc, d, d);
            }
            i += 16;
        }
        while i + 4 <= n {
            // SAFETY: the loop condition keeps this full-width load inside `a`.
            let x = unsafe { vld1q_f32(pa.add(i)) };
            // SAFETY: the same bound for `b` (`n` is the shorter length).
            let y = unsafe { vld1q_f32(pb.add(i)) };
            let d = vsubq_f32(x, y);
            acc[0] = vfmaq_f32(acc[0], d, d);
            i += 4;
        }
        let sum = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
        let mut total = vaddvq_f32(sum);
        for (x, y) in a[i..n].iter().zip(&b[i..n]) {
            total += (x - y) * (x - y);
        }
        total
    }

    #[inline]
    #[target_feature(enable = "neon")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel: raw loads and stores, each bounded as its SAFETY comment says"
    )]
    unsafe fn dot_neon(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        // SAFETY (all loads below): guarded as in `l2_sq_neon`.
        while i + 16 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: lane group `j` ends at `i + 4·(j + 1) <= i + 16 <= n` (the loop condition).
                let x = unsafe { vld1q_f32(pa.add(i + 4 * j)) };
                // SAFETY: the same bound for `b` (`n` is the shorter length).
                let y = unsafe { vld1q_f32(pb.add(i + 4 * j)) };
                *acc = vfmaq_f32(*acc, x, y);
            }
            i += 16;
        }
        while i + 4 <= n {
            // SAFETY: the loop condition keeps this full-width load inside `a`.
            let x = unsafe { vld1q_f32(pa.add(i)) };
            // SAFETY: the same bound for `b` (`n` is the shorter length).
            let y = unsafe { vld1q_f32(pb.add(i)) };
            acc[0] = vfmaq_f32(acc[0], x, y);
            i += 4;
        }
        let sum = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
        let mut total = vaddvq_f32(sum);
        for (x, y) in a[i..n].iter().zip(&b[i..n]) {
            total += x * y;
        }
        total
    }

    #[target_feature(enable = "neon")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel that calls the one-row kernel for each row, under the same feature"
    )]
    unsafe fn l2_sq_batch_neon(query: &[f32], vectors: &[f32], out: &mut [f32]) {
        batch_of!(l2_sq_neon, query, vectors, out)
    }

    #[target_feature(enable = "neon")]
    #[expect(
        unsafe_code,
        reason = "a #[target_feature] kernel that calls the one-row kernel for each row, under the same feature"
    )]
    unsafe fn dot_batch_neon(query: &[f32], vectors: &[f32], out: &mut [f32]) {
        batch_of!(dot_neon, query, vectors, out)
    }
}

/// The checks of every matrix product kernel: panics unless `a`, `b` and
/// `out` hold `m × dim`, `n × dim` and `m × n` values; returns whether
/// there is anything to multiply (with `dim` 0 the products are zeros,
/// written here).
fn product_shape(a: &[f32], m: usize, b: &[f32], n: usize, dim: usize, out: &mut [f32]) -> bool {
    assert!(
        a.len() >= m * dim && b.len() >= n * dim && out.len() >= m * n,
        "dot_matrix: operands too short for {m}x{dim} · ({n}x{dim})ᵀ"
    );
    if m == 0 || n == 0 {
        return false;
    }
    if dim == 0 {
        out[..m * n].iter_mut().for_each(|x| *x = 0.0);
        return false;
    }
    true
}

/// [`super::prefetch`]: `_mm_prefetch` (T0) of each of `v`'s first
/// `max_lines` cache lines on x86-64, nothing elsewhere.
#[cfg_attr(
    target_arch = "x86_64",
    expect(unsafe_code, reason = "_mm_prefetch takes a raw pointer")
)]
#[inline]
pub(super) fn prefetch<T>(v: &[T], max_lines: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = v.as_ptr().cast::<i8>();
        for line in (0..size_of_val(v)).step_by(64).take(max_lines) {
            // SAFETY: SSE (the instruction's feature) is part of the x86-64
            // baseline; a prefetch is a hint that reads nothing the program
            // sees and never faults, and `p + line` stays within `v`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.add(line)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (v, max_lines);
}

/// [`gemm_abt`] as a kernel table entry (it has no use for blocked vectors).
pub(super) fn gemm_entry(
    a: &[f32],
    m: usize,
    b: &[f32],
    n: usize,
    dim: usize,
    _blocked: Option<&super::BlockedVectors>,
    out: &mut [f32],
) {
    gemm_abt(a, m, b, n, dim, out)
}

/// `out[i * n + j] = Σ_d a[i * dim + d] · b[j * dim + d]` for the `m` rows of
/// `a` and `n` rows of `b`: a matrix product `a · bᵀ`, computed by the
/// `matrixmultiply` crate's blocked SGEMM (which picks AVX/FMA at run time).
///
/// # Panics
/// If `a`, `b` or `out` is shorter than `m * dim`, `n * dim` or `m * n`.
#[expect(
    unsafe_code,
    reason = "matrixmultiply::sgemm takes raw pointers and strides; product_shape checked their bounds"
)]
pub(super) fn gemm_abt(a: &[f32], m: usize, b: &[f32], n: usize, dim: usize, out: &mut [f32]) {
    if !product_shape(a, m, b, n, dim, out) {
        return;
    }
    // SAFETY: `product_shape` asserted that every element the strides can
    // reach is inside its slice: `a` is read at `i*dim + d` (i < m, d < dim),
    // `b` at `j*dim + d` (j < n), `out` written at `i*n + j`. `out` is a
    // unique borrow, so it does not alias `a` or `b`. With beta = 0 the
    // previous contents of `out` are not read.
    unsafe {
        matrixmultiply::sgemm(
            m,
            dim,
            n,
            1.0,
            a.as_ptr(),
            dim as isize,
            1,
            b.as_ptr(),
            1,
            dim as isize,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}
