//! IVF_RABITQ's scan against IVF_FLAT's, in process, on one set of lists:
//! recall@10 against the set's ground truth, queries per second on one
//! thread (one query per call), and the exact distances the codes left to
//! compute, at several nprobe and error-bound multipliers; with extended
//! codes, and with the 1-bit codes alone ("1-bit").
//!
//! `VDB_BENCH_DATA=DIR cargo bench -p vdb-benches --bench rabitq` with
//! `DIR` holding texmex files (`base.fvecs`, `query.fvecs`, `gt.ivecs`);
//! `VDB_BENCH_NLIST` (default 256), `VDB_BENCH_QUERIES` (default 1000),
//! `VDB_BENCH_ONLY` (run only the configurations whose name contains it).
//! Without `VDB_BENCH_DATA` it runs on 50,000 generated 128-d rows.
//! `VDB_BENCH_FILTER_EVERY=N` searches with a filter that every N-th row
//! of each list passes (recall against the exact top-k of those rows).

use std::path::Path;
use std::time::Instant;

use vdb_core::{Metric, RowFilter, VecInvertedLists};
use vdb_ivf::rabitq::{CodedLists, DEFAULT_EPSILON};
use vdb_ivf::{
    CoarseQuantizer, KMeansParams, SearchParams, SearchTrace, Searcher, Source, SplitMix64,
};

/// Every `.0`-th row of each list passes.
struct EveryNth(usize);

impl RowFilter for EveryNth {
    fn matches(&self, row: usize) -> bool {
        row.is_multiple_of(self.0)
    }
}

fn read_vecs(path: &Path) -> (usize, Vec<u32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let dim = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    let words: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    let rows: Vec<u32> = words
        .chunks_exact(dim + 1)
        .flat_map(|r| r[1..].to_vec())
        .collect();
    (dim, rows)
}

fn floats(words: Vec<u32>) -> Vec<f32> {
    words.into_iter().map(f32::from_bits).collect()
}

fn flat_truth(base: &[f32], queries: &[f32], dim: usize, k: usize) -> Vec<Vec<u64>> {
    let ids: Vec<u64> = (0..(base.len() / dim) as u64).collect();
    queries
        .chunks_exact(dim)
        .map(|q| {
            vdb_ivf::flat_search(Metric::L2, q, base, &ids, k)
                .expect("flat search")
                .iter()
                .map(|n| n.id.0)
                .collect()
        })
        .collect()
}

fn main() {
    let k = 10;
    let nlist: usize = std::env::var("VDB_BENCH_NLIST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let max_queries: usize = std::env::var("VDB_BENCH_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (dim, base, mut queries, truth) = match std::env::var_os("VDB_BENCH_DATA") {
        Some(dir) => {
            let dir = Path::new(&dir);
            let (dim, base) = read_vecs(&dir.join("base.fvecs"));
            let (_, queries) = read_vecs(&dir.join("query.fvecs"));
            let (gk, gt) = read_vecs(&dir.join("gt.ivecs"));
            let truth: Vec<Vec<u64>> = gt
                .chunks_exact(gk)
                .map(|r| r[..k].iter().map(|&i| u64::from(i)).collect())
                .collect();
            (dim, floats(base), floats(queries), Some(truth))
        }
        None => {
            let dim = 128;
            let mut rng = SplitMix64::new(1);
            let centres: Vec<f32> = (0..100 * dim).map(|_| rng.next_f32() * 4.0).collect();
            let mut gen_rows = |n: usize| -> Vec<f32> {
                (0..n)
                    .flat_map(|_| {
                        let c = rng.below(100);
                        (0..dim)
                            .map(|j| centres[c * dim + j] + rng.next_f32() - 0.5)
                            .collect::<Vec<_>>()
                    })
                    .collect()
            };
            let base = gen_rows(50_000);
            let queries = gen_rows(max_queries);
            (dim, base, queries, None)
        }
    };
    queries.truncate(max_queries * dim);
    let truth = truth.unwrap_or_else(|| flat_truth(&base, &queries, dim, k));
    let rows = base.len() / dim;

    let started = Instant::now();
    let (centroids, _) =
        vdb_ivf::kmeans::train(&base, dim, nlist, Metric::L2, &KMeansParams::default())
            .expect("train");
    let quantizer = CoarseQuantizer::new(dim, Metric::L2, centroids).expect("quantizer");
    let mut lists = VecInvertedLists::new(dim, nlist);
    for (i, (l, _)) in quantizer
        .assign(&base)
        .expect("assign")
        .into_iter()
        .enumerate()
    {
        lists.push(l, i as u64, &base[i * dim..(i + 1) * dim]);
    }
    let trained = started.elapsed();
    let every: usize = std::env::var("VDB_BENCH_FILTER_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let filter = EveryNth(every.max(1));
    let filter = (every > 1).then_some(&filter as &dyn RowFilter);
    // With a filter, the truth is the exact top-k of the rows passing it.
    let truth = match filter {
        None => truth,
        Some(f) => queries
            .chunks_exact(dim)
            .map(|query| {
                let all = SearchParams::new(k, nlist);
                let source = [Source {
                    lists: &lists,
                    deleted: None,
                    filter: Some(f),
                }];
                Searcher::exact()
                    .search_sources(&quantizer, &source, query, all, None)
                    .expect("exact search")
                    .iter()
                    .map(|n| n.id.0)
                    .collect()
            })
            .collect(),
    };
    let coded_quantizer = quantizer.clone().with_codes(0x5eed);
    let started = Instant::now();
    let book = coded_quantizer.codebook().expect("codebook");
    let coded = CodedLists::new(lists.clone(), book);
    let coded_in = started.elapsed();
    // The same codes without their extended part (format 1.3's segments).
    let one_bit = CodedLists::without_extended(lists.clone(), book);
    println!(
        "{rows} rows x {dim}, nlist {nlist}, {} queries; train+assign {:.1} s, codes {:.2} s{}",
        queries.len() / dim,
        trained.as_secs_f64(),
        coded_in.as_secs_f64(),
        if every > 1 {
            format!("; filter: every {every}th row of each list")
        } else {
            String::new()
        }
    );
    println!(
        "{:>6} {:>14} {:>9} {:>9} {:>12} {:>12} {:>8}",
        "nprobe", "index", "recall", "QPS", "scanned/q", "exact/q", "speedup"
    );
    // `VDB_BENCH_ONLY=rabitq` runs only the names containing it (for a
    // profiler); speedups are then against nothing.
    let only = std::env::var("VDB_BENCH_ONLY").unwrap_or_default();
    // `VDB_BENCH_REPEAT`: timed passes over the queries (default 1).
    let repeat: usize = std::env::var("VDB_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for nprobe in [4usize, 8, 16, 32, 64, 128] {
        let mut flat_qps = f64::NAN;
        // "1-bit": the 1-bit codes alone; the others with extended codes.
        for (name, epsilon) in [
            ("ivf_flat", None),
            ("1-bit 1.9", Some(DEFAULT_EPSILON)),
            ("rabitq 1.9", Some(DEFAULT_EPSILON)),
            ("rabitq 3.0", Some(3.0)),
            ("rabitq 4.0", Some(4.0)),
        ] {
            if !name.contains(&only) {
                continue;
            }
            let (q, l): (&CoarseQuantizer, &dyn vdb_core::InvertedLists) = match epsilon {
                None => (&quantizer, &lists),
                Some(_) if name.starts_with("1-bit") => (&coded_quantizer, &one_bit),
                Some(_) => (&coded_quantizer, &coded),
            };
            let l = [Source {
                lists: l,
                deleted: None,
                filter,
            }];
            let mut s = Searcher::new();
            s.set_epsilon(epsilon.unwrap_or(0.0));
            let params = SearchParams::new(k, nprobe);
            // Counting pass (with traces), then the timed pass.
            let (mut found, mut scanned, mut exact) = (0usize, 0u64, 0u64);
            for (query, want) in queries.chunks_exact(dim).zip(&truth) {
                let mut trace = SearchTrace::default();
                let got = s
                    .search_sources(q, &l, query, params, Some(&mut trace))
                    .expect("search");
                found += got.iter().filter(|n| want.contains(&n.id.0)).count();
                scanned += trace.code_estimates.max(trace.fine_distances);
                exact += trace.fine_distances;
            }
            let started = Instant::now();
            for _ in 0..repeat {
                for query in queries.chunks_exact(dim) {
                    std::hint::black_box(
                        s.search_sources(q, &l, query, params, None)
                            .expect("search"),
                    );
                }
            }
            let n = (queries.len() / dim) as f64;
            let qps_n = n * repeat as f64;
            let qps = qps_n / started.elapsed().as_secs_f64();
            if epsilon.is_none() {
                flat_qps = qps;
            }
            println!(
                "{nprobe:>6} {name:>14} {:>9.4} {qps:>9.0} {:>12.0} {:>12.0} {:>7.2}x",
                found as f64 / (n * k as f64),
                scanned as f64 / n,
                exact as f64 / n,
                qps / flat_qps
            );
        }
    }
}
