//! One IVF query over a mapped segment: the coarse probe plus the scan of
//! one list, the unit of work of every search.
//!
//! `cargo bench -p vdb-benches --bench scan`

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use vdb_core::{Generation, ListId, Metric, SegmentId};
use vdb_format::{SegmentMeta, SegmentReader, SegmentWriter};
use vdb_ivf::{CoarseQuantizer, SearchParams, Searcher, SplitMix64};

fn scan(c: &mut Criterion) {
    let (dim, nlist, per_list) = (384usize, 256usize, 400usize);
    let mut rng = SplitMix64::new(7);
    let centroids: Vec<f32> = (0..nlist * dim).map(|_| rng.next_f32() - 0.5).collect();
    let q = CoarseQuantizer::new(dim, Metric::L2, centroids.clone()).expect("valid centroids");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("seg.seg");
    let meta = SegmentMeta {
        id: SegmentId(1),
        generation: Generation(1),
        metric: Metric::L2,
        dim,
        nlist,
        with_payloads: false,
    };
    let mut w = SegmentWriter::create(&path, meta).expect("create");
    let mut id = 0u64;
    for l in 0..nlist {
        for _ in 0..per_list {
            let v: Vec<f32> = centroids[l * dim..(l + 1) * dim]
                .iter()
                .map(|c| c + 0.1 * (rng.next_f32() - 0.5))
                .collect();
            w.push(ListId(l as u32), id, &v, None).expect("push");
            id += 1;
        }
    }
    w.finish().expect("finish");
    let seg = SegmentReader::open(&path).expect("open");
    // One query near each centroid, visited in a scrambled order, so every
    // search reads lists that are not in cache (the segment is ~160 MB).
    let queries: Vec<Vec<f32>> = (0..nlist)
        .map(|l| (l * 97) % nlist)
        .map(|l| {
            centroids[l * dim..(l + 1) * dim]
                .iter()
                .map(|c| c + 0.05 * (rng.next_f32() - 0.5))
                .collect()
        })
        .collect();
    let mut s = Searcher::new();
    let mut next = 0usize;

    let mut g = c.benchmark_group("ivf_search");
    for nprobe in [1usize, 8] {
        g.throughput(Throughput::Bytes((nprobe * per_list * dim * 4) as u64));
        g.bench_function(format!("nlist256_dim384_list400_nprobe{nprobe}"), |b| {
            b.iter(|| {
                next = (next + 1) % queries.len();
                s.search(
                    &q,
                    &[&seg],
                    black_box(&queries[next]),
                    SearchParams {
                        k: 10,
                        nprobe,
                        max_probes: None,
                    },
                    None,
                )
                .expect("search")
            })
        });
    }
    g.finish();
    c.bench_function("segment_open_nlist256", |b| {
        b.iter(|| SegmentReader::open(black_box(&path)).expect("open"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    targets = scan
}
criterion_main!(benches);
