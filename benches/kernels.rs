//! Distance kernel throughput, per instruction set, in bytes of stored
//! vectors read per second, next to a plain sequential read of the same
//! memory (the machine's bandwidth, the ceiling for a list scan); the
//! matrix product and the assignment of rows to lists (the write path);
//! RaBitQ's code scan and query quantization.
//!
//! `cargo bench -p vdb-benches --bench kernels`

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use vdb_core::distance::{self, Isa};

fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

fn kernels(c: &mut Criterion) {
    // 256 KiB blocks stay in L2; 64 MiB blocks come from memory.
    for (label, bytes) in [("l2-cache", 256 << 10), ("memory", 64 << 20)] {
        let mut g = c.benchmark_group(format!("l2_sq_batch/{label}"));
        for dim in [64usize, 128, 384, 768] {
            let rows = bytes / (dim * 4);
            let block = data(rows * dim, 1);
            let query = data(dim, 2);
            let mut out = vec![0.0f32; rows];
            g.throughput(Throughput::Bytes((rows * dim * 4) as u64));
            for isa in distance::available() {
                let k = distance::kernels_for(isa).expect("available");
                g.bench_with_input(BenchmarkId::new(isa.name(), dim), &dim, |b, _| {
                    b.iter(|| (k.l2_sq_batch)(black_box(&query), black_box(&block), &mut out))
                });
            }
            if dim == 384 {
                // One pass over the same bytes (a·a reads one stream) with the widest
                // kernel: the read-bandwidth baseline.
                let best = distance::kernels_for(Isa::Avx512)
                    .or_else(|| distance::kernels_for(Isa::Avx2))
                    .unwrap_or_else(|| *distance::active());
                g.bench_function(
                    BenchmarkId::new("read-baseline(sum of squares)", dim),
                    |b| b.iter(|| (best.dot)(black_box(&block), black_box(&block))),
                );
            }
        }
        g.finish();
    }
    // The coarse search: one query against 1024 centroids of dim 384.
    let mut g = c.benchmark_group("coarse_1024x384");
    let (n, dim) = (1024usize, 384usize);
    let cents = data(n * dim, 5);
    let q = data(dim, 6);
    let blocked = distance::BlockedVectors::new(&cents, dim);
    let mut out = vec![0.0f32; n];
    g.throughput(Throughput::Bytes((n * dim * 4) as u64));
    g.bench_function("l2_sq_batch (row-major)", |b| {
        b.iter(|| distance::l2_sq_batch(black_box(&q), black_box(&cents), &mut out))
    });
    g.bench_function("blocked dots (dimension-major blocks of 16)", |b| {
        b.iter(|| blocked.dots(black_box(&q), &mut out))
    });
    g.finish();

    let mut g = c.benchmark_group("dot_matrix");
    let (m, n, dim) = (256usize, 1024usize, 384usize);
    let a = data(m * dim, 3);
    let bm = data(n * dim, 4);
    let mut out = vec![0.0f32; m * n];
    g.throughput(Throughput::Elements((2 * m * n * dim) as u64));
    g.bench_function("256x1024x384 (flops)", |b| {
        b.iter(|| distance::dot_matrix(black_box(&a), m, black_box(&bm), n, dim, &mut out))
    });
    g.finish();

    // The RaBitQ code scan: 1-bit codes in fast-scan blocks against a
    // query's table, 256 rows (eight blocks) a call, from 2 MiB of codes
    // (more than L2), in codes per second. 128, 384 and 768 dimensions:
    // two words a code, six and twelve.
    let mut g = c.benchmark_group("block_dots");
    for words in [2usize, 6, 12] {
        let rows = (2 << 20) / (8 * words);
        let codes: Vec<u64> = data(rows * words * 2, 7)
            .chunks(2)
            .map(|p| u64::from(p[0].to_bits()) << 32 | u64::from(p[1].to_bits()))
            .collect();
        let mut blocks = Vec::new();
        distance::fastscan::interleave(&codes, words, &mut blocks);
        let levels: Vec<u8> = (0..64 * words).map(|j| (j * 7 % 16) as u8).collect();
        let mut table = vec![0u8; distance::fastscan::table_bytes(words)];
        distance::fastscan::table(&levels, words, &mut table);
        let mut out = vec![0u32; 256];
        g.throughput(Throughput::Elements(rows as u64));
        for isa in distance::available() {
            let k = distance::kernels_for(isa).expect("available");
            g.bench_with_input(BenchmarkId::new(isa.name(), 64 * words), &words, |b, &w| {
                b.iter(|| {
                    for chunk in blocks.chunks(8 * distance::fastscan::block_bytes(w)) {
                        (k.block_dots)(black_box(chunk), w, black_box(&table), &mut out);
                    }
                })
            });
        }
    }
    g.finish();

    // The RaBitQ query side: a query's residual against one list's
    // centroid, quantized to its fast-scan table, once per probed list (1,024
    // centroids cycled through, so mostly from L2 as in a search), in lists
    // per second.
    let mut g = c.benchmark_group("quantize");
    for dim in [128usize, 384, 768] {
        let lists = 1024;
        let centroids = data(lists * dim, 8);
        let query = data(dim, 9);
        let mut residual = vec![0.0f32; dim];
        let mut table = vec![0u8; distance::fastscan::table_bytes(dim.div_ceil(64))];
        g.throughput(Throughput::Elements(lists as u64));
        for isa in distance::available() {
            let k = distance::kernels_for(isa).expect("available");
            g.bench_with_input(BenchmarkId::new(isa.name(), dim), &dim, |b, &d| {
                b.iter(|| {
                    for c in centroids.chunks_exact(d) {
                        black_box((k.quantize)(
                            black_box(&query),
                            c,
                            &mut residual,
                            &mut table,
                        ));
                    }
                })
            });
        }
    }
    g.finish();

    // The write path: one batch of 1,000 rows to its nearest of 1,024 lists
    // (matrix product, then an argmin per row), in rows per second.
    let mut g = c.benchmark_group("assign");
    let (rows, nlist, dim) = (1000usize, 1024usize, 128usize);
    let batch = data(rows * dim, 5);
    let q = vdb_ivf::CoarseQuantizer::new(dim, vdb_core::Metric::L2, data(nlist * dim, 6))
        .expect("valid centroids");
    g.throughput(Throughput::Elements(rows as u64));
    g.bench_function("1000x128 to 1024 lists", |b| {
        b.iter(|| q.assign(black_box(&batch)).expect("assign"))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2));
    targets = kernels
}
criterion_main!(benches);
