//! Explain agrees with the search it describes: the probed lists are the
//! nprobe nearest centroids, the scanned rows add up to the fine-stage
//! count, the results are a plain search's, the missed neighbours are the
//! exact top-k minus the returned top-k, and the nprobe it suggests really
//! returns the exact top-k (and one less does not).

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::collections::HashSet;

use vdb_engine::{CollectionConfig, Engine, Error, ExplainOptions, Row, SearchOptions};

mod common;

const DIM: usize = 12;
/// The default nprobe: low enough that some neighbours are missed.
const NPROBE: usize = 1;

fn clustered(n: usize, seed: u64) -> Vec<Vec<f32>> {
    common::clustered(n, DIM, 40, seed)
}

fn setup(dir: &std::path::Path) -> (Engine, std::sync::Arc<vdb_engine::Collection>) {
    let engine = Engine::open(dir).unwrap();
    let config = CollectionConfig {
        nlist: 16,
        nprobe: NPROBE,
        target_recall: None,
        retrain: common::never_retrain(),
        ..CollectionConfig::new(DIM)
    };
    let c = engine.create_collection("e", config).unwrap();
    let data = clustered(4000, 1);
    let rows = |from: usize, to: usize| -> Vec<Row> {
        (from..to)
            .map(|i| Row {
                id: i as u64,
                vector: data[i].clone(),
                payload: Some(format!("row {i}").into_bytes()),
                fields: Default::default(),
            })
            .collect()
    };
    c.upsert(rows(0, 3000)).unwrap();
    c.flush().unwrap();
    assert!(c.stats().generation > 0, "trained");
    // Unflushed rows, overwrites and deletes: explain must see what search
    // sees.
    c.upsert(rows(3000, 4000)).unwrap();
    c.upsert(
        (0..200)
            .map(|i| Row {
                id: i,
                vector: data[3999 - i as usize].clone(),
                payload: Some(format!("moved {i}").into_bytes()),
                fields: Default::default(),
            })
            .collect(),
    )
    .unwrap();
    c.delete(&(200..400).collect::<Vec<u64>>()).unwrap();
    (engine, c)
}

#[test]
fn explain_agrees_with_the_search_it_describes() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, c) = setup(dir.path());
    let rows = c.stats().rows;
    let queries = clustered(30, 2);
    let mut some_missed = 0;
    for (qi, q) in queries.iter().enumerate() {
        let opts = ExplainOptions {
            exact: true,
            ..ExplainOptions::new(10)
        };
        let e = c.explain(q, opts).unwrap();
        let t = &e.trace;
        // Coarse stage: every list ranked by centroid distance; the probed
        // ones are the nprobe nearest.
        assert_eq!(t.nlist, 16);
        assert_eq!(t.nprobe, NPROBE);
        assert_eq!(t.coarse_distances, 16);
        assert_eq!(e.lists.len(), 16);
        assert!(
            e.lists
                .windows(2)
                .all(|w| w[0].centroid_distance <= w[1].centroid_distance)
        );
        let probed: Vec<u32> = t.probed.iter().map(|p| p.list.0).collect();
        let nearest: Vec<u32> = e.lists[..NPROBE].iter().map(|l| l.list).collect();
        assert_eq!(probed, nearest, "query {qi}");
        assert_eq!(e.lists.iter().map(|l| l.size).sum::<u64>(), rows);
        assert_eq!(e.rows, rows);
        // Fine stage: the scanned rows add up, each list's results add up.
        assert_eq!(
            t.probed.iter().map(|p| p.scanned).sum::<u64>(),
            t.fine_distances
        );
        assert_eq!(
            t.probed.iter().map(|p| p.results as usize).sum::<usize>(),
            e.hits.len()
        );
        // The results are a plain search's.
        let plain = c
            .search(
                std::slice::from_ref(q),
                SearchOptions {
                    k: 10,
                    nprobe: None,
                    with_payload: true,
                    with_vectors: false,
                    ..Default::default()
                },
            )
            .unwrap()
            .remove(0);
        let got: Vec<_> = e.hits.iter().map(|h| h.hit.clone()).collect();
        assert_eq!(got, plain);
        for h in &e.hits {
            assert!(
                (h.list_rank as usize) < NPROBE,
                "a result from an unprobed list"
            );
            assert!(probed.contains(&h.list));
        }
        // Samples: up to 9 per probed list, nearest the centroid first,
        // with payloads.
        assert_eq!(e.samples.len(), NPROBE);
        for s in &e.samples {
            assert!(!s.is_empty() && s.len() <= 9);
            assert!(s.windows(2).all(|w| w[0].hit.distance <= w[1].hit.distance));
            assert!(s.iter().all(|m| m.hit.payload.is_some()));
            assert!(s.iter().all(|m| !(200..400).contains(&m.hit.id)));
        }

        // Exact: the exhaustive top-k, the missed set, the nprobe that finds
        // them all.
        let x = e.exact.as_ref().unwrap();
        let exhaustive = c
            .search(
                std::slice::from_ref(q),
                SearchOptions {
                    k: 10,
                    nprobe: Some(usize::MAX),
                    with_payload: true,
                    with_vectors: false,
                    ..Default::default()
                },
            )
            .unwrap()
            .remove(0);
        let exact_hits: Vec<_> = x.hits.iter().map(|h| h.hit.clone()).collect();
        assert_eq!(exact_hits, exhaustive);
        let returned: HashSet<u64> = e.hits.iter().map(|h| h.hit.id).collect();
        let want_missed: Vec<u64> = exhaustive
            .iter()
            .map(|h| h.id)
            .filter(|id| !returned.contains(id))
            .collect();
        let missed: Vec<u64> = x.missed.iter().map(|h| h.hit.id).collect();
        assert_eq!(missed, want_missed);
        for m in &x.missed {
            assert!(
                m.list_rank as usize >= NPROBE,
                "a missed neighbour in a probed list"
            );
            assert_eq!(
                e.lists[m.list_rank as usize].list, m.list,
                "rank and list disagree"
            );
        }
        // Every list holding a missed neighbour is shown with its members,
        // by coarse rank.
        let mut holding: Vec<u32> = x.missed.iter().map(|m| m.list).collect();
        holding.sort_unstable();
        holding.dedup();
        let mut shown: Vec<u32> = x.missed_lists.iter().map(|(l, _)| *l).collect();
        let ranks: Vec<u32> = shown
            .iter()
            .map(|l| e.lists.iter().position(|v| v.list == *l).unwrap() as u32)
            .collect();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]), "by coarse rank");
        shown.sort_unstable();
        assert_eq!(shown, holding);
        assert!(
            x.missed_lists
                .iter()
                .all(|(_, s)| !s.is_empty() && s.len() <= 9)
        );
        some_missed += usize::from(!missed.is_empty());
        let ids_at = |nprobe: usize| -> Vec<u64> {
            c.search(
                std::slice::from_ref(q),
                SearchOptions {
                    k: 10,
                    nprobe: Some(nprobe),
                    with_payload: false,
                    with_vectors: false,
                    ..Default::default()
                },
            )
            .unwrap()
            .remove(0)
            .into_iter()
            .map(|h| h.id)
            .collect()
        };
        let exact_ids: Vec<u64> = exhaustive.iter().map(|h| h.id).collect();
        assert_eq!(ids_at(x.min_nprobe), exact_ids, "query {qi}");
        if x.min_nprobe > 1 {
            assert_ne!(ids_at(x.min_nprobe - 1), exact_ids, "query {qi}");
        }
        assert_eq!(missed.is_empty(), x.min_nprobe <= NPROBE);
    }
    assert!(
        some_missed > 0,
        "the data should make nprobe {NPROBE} miss sometimes"
    );
}

#[test]
fn the_map_is_stable_for_a_generation_and_moves_with_retraining() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, c) = setup(dir.path());
    let q = clustered(1, 3).remove(0);
    let a = c.explain(&q, ExplainOptions::new(5)).unwrap();
    let b = c.explain(&q, ExplainOptions::new(5)).unwrap();
    assert_eq!(a.lists, b.lists);
    assert_eq!(a.query_position, b.query_position);
    // Positions are spread out, not all at one point.
    let xs: HashSet<u32> = a.lists.iter().map(|l| l.position[0].to_bits()).collect();
    assert!(xs.len() > 8);
    c.retrain(Some(8)).unwrap();
    let r = c.explain(&q, ExplainOptions::new(5)).unwrap();
    assert_eq!(r.lists.len(), 8);
    assert!(r.generation > a.generation);
}

#[test]
fn bad_explain_requests_are_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, c) = setup(dir.path());
    let q = vec![0.5; DIM];
    let too_many = ExplainOptions {
        samples: 101,
        ..ExplainOptions::new(5)
    };
    let e = c.explain(&q, too_many).unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains("samples"),
        "{e}"
    );
    let e = c.explain(&q[..3], ExplainOptions::new(5)).unwrap_err();
    assert!(e.to_string().contains("query"), "{e}");
    let e = c.explain(&q, ExplainOptions::new(0)).unwrap_err();
    assert!(e.to_string().contains('k'), "{e}");
    // An untrained collection explains too: one list, searched flat.
    let engine = Engine::open(&dir.path().join("other")).unwrap();
    let small = engine
        .create_collection("small", CollectionConfig::new(DIM))
        .unwrap();
    small
        .upsert(vec![Row {
            id: 7,
            vector: q.clone(),
            payload: None,
            fields: Default::default(),
        }])
        .unwrap();
    let e = small
        .explain(
            &q,
            ExplainOptions {
                exact: true,
                ..ExplainOptions::new(5)
            },
        )
        .unwrap();
    assert_eq!(e.generation, 0);
    assert_eq!(e.lists.len(), 1);
    assert_eq!(e.hits[0].hit.id, 7);
    assert_eq!(e.exact.unwrap().min_nprobe, 1);
}
