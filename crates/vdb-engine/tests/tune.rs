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
        target_recall: None,
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

#[test]
fn a_recall_target_chooses_the_default_nprobe_at_each_training() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let config = CollectionConfig {
        nlist: 32,
        retrain: common::never_retrain(),
        ..CollectionConfig::new(DIM)
    };
    assert_eq!(
        config.target_recall,
        Some(vdb_engine::DEFAULT_TARGET_RECALL)
    );
    let c = engine.create_collection("t", config).unwrap();
    let data = common::clustered(8000, DIM, 400, 1);
    c.upsert(common::numbered(&data)).unwrap();
    assert_eq!(c.default_nprobe(), 8, "untrained: the initial value");
    c.flush().unwrap();
    assert_eq!(c.stats().lists, 32);

    // The chosen nprobe is the one a full sweep over the same sample
    // recommends, and the recall recorded is the sweep's at it.
    let chosen = |c: &vdb_engine::Collection, target: f64| {
        let opts = TuneOptions {
            nprobes: (1..=c.stats().lists).collect(),
            ..TuneOptions::new(target)
        };
        let report = c.tune(&opts).unwrap();
        let p = report.recommended.unwrap();
        (p, report.points[p - 1].recall)
    };
    let (nprobe, recall) = chosen(&c, 0.95);
    assert!(nprobe > 1, "the data should make nprobe 1 too low");
    assert_eq!(c.default_nprobe(), nprobe);
    assert_eq!(c.config().nprobe, nprobe);
    assert_eq!(c.stats().tuned_recall, recall);

    // A new target is measured at once; a fixed nprobe clears it.
    let cfg = c
        .alter(Alter {
            target_recall: Some(0.6),
            ..Default::default()
        })
        .unwrap();
    let (low, low_recall) = chosen(&c, 0.6);
    assert!(low < nprobe, "{low} vs {nprobe}");
    assert_eq!((cfg.nprobe, cfg.target_recall), (low, Some(0.6)));
    assert_eq!(c.stats().tuned_recall, low_recall);
    for (alter, want) in [
        (
            Alter {
                target_recall: Some(1.5),
                ..Default::default()
            },
            "target_recall: 1.5 is not in (0, 1]",
        ),
        (
            Alter {
                target_recall: Some(0.9),
                nprobe: Some(3),
                ..Default::default()
            },
            "not both",
        ),
    ] {
        let e = c.alter(alter).unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
    }
    assert_eq!(
        c.config().target_recall,
        Some(0.6),
        "a refused alter changes nothing"
    );

    // Retraining chooses again, for the target kept across a reopen.
    drop(c);
    drop(engine);
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.collection("t").unwrap();
    assert_eq!(c.default_nprobe(), low);
    c.retrain(Some(16)).unwrap();
    assert_eq!(c.config().target_recall, Some(0.6));
    assert_eq!(c.stats().lists, 16);
    assert_eq!(c.default_nprobe(), chosen(&c, 0.6).0);

    let cfg = c
        .alter(Alter {
            nprobe: Some(5),
            ..Default::default()
        })
        .unwrap();
    assert_eq!((cfg.nprobe, cfg.target_recall), (5, None));
    c.retrain(Some(32)).unwrap();
    assert_eq!(c.default_nprobe(), 5, "a fixed nprobe stays fixed");
}
