//! Guards the seam between search and storage: IVF search over mapped
//! segment files (several at once, as after flushes) with nprobe = nlist
//! returns exactly what exact search over the same rows returns.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use proptest::prelude::*;
use vdb_core::{Generation, InvertedLists, Metric, SegmentId};
use vdb_format::{SegmentMeta, SegmentReader, SegmentWriter};
use vdb_ivf::{
    CoarseQuantizer, KMeansParams, SearchParams, Searcher, SplitMix64, flat_search, kmeans,
};

fn write_segment(
    dir: &std::path::Path,
    id: u64,
    q: &CoarseQuantizer,
    rows: &[(u64, Vec<f32>)],
) -> SegmentReader {
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.1.clone()).collect();
    let assignment = q.assign(&flat).unwrap();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| assignment[i].0);
    let path = dir.join(vdb_format::segment_file_name(SegmentId(id)));
    let meta = SegmentMeta {
        id: SegmentId(id),
        generation: Generation(1),
        metric: q.metric(),
        dim: q.dim(),
        nlist: q.nlist(),
        with_payloads: true,
    };
    let mut w = SegmentWriter::create(&path, meta).unwrap();
    for i in order {
        w.push(
            assignment[i].0,
            rows[i].0,
            &rows[i].1,
            Some(&rows[i].0.to_le_bytes()),
        )
        .unwrap();
    }
    w.finish().unwrap();
    SegmentReader::open(&path).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn nprobe_equal_to_nlist_is_exact_search(seed in any::<u64>(), dim in 1usize..40, nlist in 1usize..10, k in 1usize..30, m in 0usize..3, split in 0usize..400) {
        let metric = [Metric::L2, Metric::InnerProduct, Metric::Cosine][m];
        let mut rng = SplitMix64::new(seed);
        let n = 400;
        let rows: Vec<(u64, Vec<f32>)> = (0..n)
            .map(|i| {
                let mut v: Vec<f32> = (0..dim).map(|_| rng.next_f32() * 10.0 - 5.0).collect();
                metric.prepare(&mut v);
                (i as u64 * 7 + 3, v)
            })
            .collect();
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.1.clone()).collect();
        let ids: Vec<u64> = rows.iter().map(|r| r.0).collect();
        let (c, _) = kmeans::train(&flat, dim, nlist, metric, &KMeansParams::default()).unwrap();
        let q = CoarseQuantizer::new(dim, metric, c).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let a = write_segment(dir.path(), 1, &q, &rows[..split]);
        let b = write_segment(dir.path(), 2, &q, &rows[split..]);
        prop_assert_eq!(a.total_len() + b.total_len(), n);
        let mut s = Searcher::new();
        for _ in 0..4 {
            let query: Vec<f32> = (0..dim).map(|_| rng.next_f32() * 10.0 - 5.0).collect();
            let got = s.search(&q, &[&a, &b], &query, SearchParams { k, nprobe: nlist, max_probes: None }, None).unwrap();
            let want = flat_search(metric, &query, &flat, &ids, k).unwrap();
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g.distance - w.distance).abs() <= 1e-4 * (1.0 + w.distance.abs()), "{:?} vs {:?}", g, w);
            }
        }
    }
}
