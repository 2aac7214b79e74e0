//! Guards snapshot isolation: searches running while other threads insert,
//! replace, flush and retrain always see one complete state — every live row
//! exactly once, never a torn mix of before and after; compactions too.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use vdb_engine::{CollectionConfig, Engine, Row, SearchOptions};

#[test]
fn searches_see_every_live_row_exactly_once_through_flushes_and_retrains() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let config = CollectionConfig {
        nlist: 4,
        min_rows_per_list: 5,
        flush_rows: 64,
        ..CollectionConfig::new(4)
    };
    let c = engine.create_collection("c", config).unwrap();
    let vector = |id: u64, round: u64| vec![id as f32, round as f32, (id % 7) as f32, 1.0];
    // Ids 0..100 always exist; inserts add ids 1000.. in order.
    c.upsert(
        (0..100)
            .map(|id| Row {
                id,
                vector: vector(id, 0),
                payload: None,
            })
            .collect(),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    let writer = {
        let c = Arc::clone(&c);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut next = 1000u64;
            for round in 1..=60u64 {
                // Replace the base ids, add new ones, sometimes flush or retrain.
                c.upsert(
                    (0..100)
                        .step_by(3)
                        .map(|id| Row {
                            id,
                            vector: vector(id, round),
                            payload: None,
                        })
                        .collect(),
                )
                .unwrap();
                c.upsert(
                    (next..next + 10)
                        .map(|id| Row {
                            id,
                            vector: vector(id, round),
                            payload: None,
                        })
                        .collect(),
                )
                .unwrap();
                next += 10;
                match round % 10 {
                    3 => c.flush().unwrap(),
                    5 => {
                        c.compact().unwrap();
                    }
                    7 => c.retrain(Some(2 + (round as usize % 5))).unwrap(),
                    _ => {}
                }
            }
            stop.store(true, Ordering::Release);
        })
    };

    // A second writer keeps inserting while the first one's flushes,
    // compactions and retrains run: it must never wait for them to finish
    // a file, and its rows must appear in order too.
    let inserter = {
        let c = Arc::clone(&c);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut next = 1_000_000u64;
            while !stop.load(Ordering::Acquire) {
                c.upsert(vec![Row {
                    id: next,
                    vector: vector(next, 0),
                    payload: None,
                }])
                .unwrap();
                next += 1;
            }
            next - 1_000_000
        })
    };

    let readers: Vec<_> = (0..2)
        .map(|_| {
            let c = Arc::clone(&c);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let exact = SearchOptions {
                    k: 100_000,
                    nprobe: Some(usize::MAX),
                    with_payload: false,
                };
                let mut searches = 0;
                while !stop.load(Ordering::Acquire) || searches == 0 {
                    let hits = c.search(&[vec![0.0; 4]], exact).unwrap().remove(0);
                    let ids: HashSet<u64> = hits.iter().map(|h| h.id).collect();
                    assert_eq!(ids.len(), hits.len(), "a row was returned twice");
                    assert!(
                        (0..100).all(|id| ids.contains(&id)),
                        "a replaced row went missing"
                    );
                    // Each writer's inserts are visible as a prefix of its
                    // order: never a later one without all earlier ones.
                    for (from, to) in [(1000u64, 1_000_000u64), (1_000_000, u64::MAX)] {
                        let added: Vec<u64> = ids
                            .iter()
                            .copied()
                            .filter(|id| (from..to).contains(id))
                            .collect();
                        let n = added.len() as u64;
                        assert!(
                            added.iter().all(|&id| id < from + n),
                            "inserts from {from} seen out of order: {n} rows"
                        );
                    }
                    searches += 1;
                }
                searches
            })
        })
        .collect();
    writer.join().unwrap();
    let inserted = inserter.join().unwrap();
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(c.stats().rows, 100 + 600 + inserted);
    c.compact().unwrap();
    assert_eq!(c.stats().rows, 100 + 600 + inserted);
    assert_eq!(c.stats().deleted_rows, 0);
}
