//! Tune: the nprobe it recommends meets the recall target on queries it
//! never saw (drawn from the same distribution), and its numbers are
//! consistent: recall 1 when every list is probed, work growing with
//! nprobe, the recommendation the smallest that meets the target.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

mod common;

use vdb_engine::{Alter, CollectionConfig, Engine, Error, Row, SearchOptions, TuneOptions};

const DIM: usize = 16;

#[test]
fn the_recommended_nprobe_meets_the_target_on_unseen_queries() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let config = CollectionConfig {
        nlist: 32,
        nprobe: 1,
        retrain: common::never_retrain(),
        ..CollectionConfig::new(DIM)
    };
    let c = engine.create_collection("t", config).unwrap();
    let data = common::clustered(8000, DIM, 400, 1);
    c.upsert(common::numbered(&data)).unwrap();
    c.flush().unwrap();
    assert_eq!(c.stats().lists, 32);

    let target = 0.9;
    let report = c.tune(&TuneOptions::new(target)).unwrap();
    assert_eq!(report.sample, 200);
    assert_eq!(report.nlist, 32);
    let sweep: Vec<usize> = report.points.iter().map(|p| p.nprobe).collect();
    assert_eq!(sweep, vec![1, 2, 3, 4, 6, 8, 12, 16, 24, 32]);
    let last = report.points.last().unwrap();
    assert!(last.recall > 0.999, "every list probed is exact: {last:?}");
    assert!(
        report
            .points
            .windows(2)
            .all(|w| w[0].distances_per_query < w[1].distances_per_query)
    );
    assert_eq!(last.distances_per_query, 32.0 + 8000.0);
    let recommended = report.recommended.unwrap();
    // The smallest of the sweep that meets the target on the sample.
    for p in &report.points {
        assert_eq!(p.recall >= target, p.nprobe >= recommended, "{p:?}");
    }
    assert!(recommended > 1, "the data should make nprobe 1 too low");

    // On 500 queries it never saw, recall@10 at the recommended nprobe meets
    // the target within the sampling error of 200 × 10 and 500 × 10 hits
    // (one standard error of the difference is about 0.008).
    let unseen = common::clustered(500, DIM, 400, 2);
    let search = |nprobe: usize| {
        c.search(
            &unseen,
            SearchOptions {
                k: 10,
                nprobe: Some(nprobe),
                with_payload: false,
                with_vectors: false,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let exact = search(usize::MAX);
    let got = search(recommended);
    let found: usize = got
        .iter()
        .zip(&exact)
        .map(|(g, e)| g.iter().filter(|h| e.iter().any(|x| x.id == h.id)).count())
        .sum();
    let recall = found as f64 / 5000.0;
    assert!(
        recall >= target - 0.02,
        "recall {recall} at nprobe {recommended}"
    );

    // --apply is an alter of the default.
    c.alter(Alter {
        nprobe: Some(recommended),
        ..Alter::default()
    })
    .unwrap();
    assert_eq!(c.config().nprobe, recommended);
}

#[test]
fn bad_tuning_requests_are_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine
        .create_collection("t", CollectionConfig::new(DIM))
        .unwrap();
    let refused = |o: TuneOptions, field: &str| {
        let e = c.tune(&o).unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains(field),
            "{e}"
        );
    };
    refused(TuneOptions::new(0.0), "target_recall");
    refused(TuneOptions::new(1.5), "target_recall");
    refused(TuneOptions::new(f64::NAN), "target_recall");
    refused(
        TuneOptions {
            sample: 0,
            ..TuneOptions::new(0.9)
        },
        "sample",
    );
    refused(
        TuneOptions {
            k: 0,
            ..TuneOptions::new(0.9)
        },
        "k",
    );
    refused(
        TuneOptions {
            nprobes: vec![4, 0],
            ..TuneOptions::new(0.9)
        },
        "nprobes",
    );
    // Too few rows to sample from.
    refused(TuneOptions::new(0.9), "sample");
    // A small untrained collection tunes to nprobe 1 (one list).
    c.upsert(
        (0..50)
            .map(|i| Row {
                id: i,
                vector: vec![i as f32; DIM],
                payload: None,
                fields: Default::default(),
            })
            .collect(),
    )
    .unwrap();
    let r = c
        .tune(&TuneOptions {
            sample: 1000,
            ..TuneOptions::new(0.99)
        })
        .unwrap();
    assert_eq!(r.sample, 50);
    assert_eq!(r.recommended, Some(1));
}
