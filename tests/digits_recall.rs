//! Guards search quality on real data: on the bundled digits images, an
//! index written to disk and mapped back reaches recall@10 = 1.0 with every
//! list probed and stays close to faiss's 0.997 at nprobe = 4 (nlist = 16).

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use vdb_core::{Generation, InvertedLists, ListId, Metric, SegmentId};
use vdb_format::{
    CentroidFile, CentroidMeta, SegmentMeta, SegmentReader, SegmentWriter, write_centroids,
};
use vdb_ivf::{CoarseQuantizer, KMeansParams, SearchParams, Searcher, kmeans};
use vdb_tests::{fvecs, ivecs};

fn recall_at_10(nprobe: usize, q: &CoarseQuantizer, seg: &SegmentReader) -> f64 {
    let queries = fvecs("digits/query.fvecs");
    let gt = ivecs("digits/gt.ivecs");
    let mut s = Searcher::new();
    let mut hits = 0;
    for i in 0..queries.rows {
        let res = s
            .search(
                q,
                &[seg],
                queries.row(i),
                SearchParams {
                    k: 10,
                    nprobe,
                    max_probes: None,
                },
                None,
            )
            .unwrap();
        let want: Vec<u64> = gt.row(i)[..10].iter().map(|&x| x as u64).collect();
        hits += res.iter().filter(|n| want.contains(&n.id.0)).count();
    }
    hits as f64 / (queries.rows * 10) as f64
}

#[test]
fn digits_recall_through_files_on_disk() {
    let base = fvecs("digits/base.fvecs");
    assert_eq!((base.rows, base.dim), (1697, 64));
    let nlist = 16;
    let (centroids, report) = kmeans::train(
        &base.data,
        base.dim,
        nlist,
        Metric::L2,
        &KMeansParams::default(),
    )
    .unwrap();
    assert!(report.warning.is_none());

    let dir = tempfile::tempdir().unwrap();
    let cen_path = dir
        .path()
        .join(vdb_format::centroid_file_name(Generation(1)));
    let meta = CentroidMeta {
        generation: Generation(1),
        metric: Metric::L2,
        dim: base.dim,
    };
    write_centroids(&cen_path, meta, &centroids).unwrap();
    let cen = CentroidFile::open(&cen_path).unwrap();
    let q = CoarseQuantizer::new(base.dim, Metric::L2, cen.centroids().to_vec()).unwrap();

    let assignment = q.assign(&base.data).unwrap();
    let mut order: Vec<usize> = (0..base.rows).collect();
    order.sort_by_key(|&r| assignment[r].0);
    let seg_path = dir.path().join(vdb_format::segment_file_name(SegmentId(1)));
    let mut w = SegmentWriter::create(
        &seg_path,
        SegmentMeta {
            id: SegmentId(1),
            generation: Generation(1),
            metric: Metric::L2,
            dim: base.dim,
            nlist,
            with_payloads: false,
        },
    )
    .unwrap();
    for r in order {
        w.push(assignment[r].0, r as u64, base.row(r), None)
            .unwrap();
    }
    w.finish().unwrap();
    let seg = SegmentReader::open(&seg_path).unwrap();
    seg.verify().unwrap();
    assert_eq!(seg.total_len(), base.rows);
    assert!(
        (0..nlist as u32).all(|l| seg.list_len(ListId(l)) > 0),
        "no empty list"
    );

    assert_eq!(recall_at_10(nlist, &q, &seg), 1.0);
    let r4 = recall_at_10(4, &q, &seg);
    assert!(
        r4 >= 0.99,
        "recall@10 at nprobe=4 is {r4}; faiss reaches 0.997"
    );
    let r1 = recall_at_10(1, &q, &seg);
    assert!(
        r1 < r4,
        "probing fewer lists cannot find more: {r1} vs {r4}"
    );
}
