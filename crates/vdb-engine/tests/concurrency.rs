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
                fields: Default::default(),
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
                            fields: Default::default(),
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
                            fields: Default::default(),
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
                    fields: Default::default(),
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
                    with_vectors: false,
                    ..Default::default()
                };
                let mut searches = 0;
                while !stop.load(Ordering::Acquire) || searches == 0 {
                    let hits = c.search(&[vec![0.0; 4]], exact.clone()).unwrap().remove(0);
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

/// Row `id`'s vector at `version`: every version of a row is a different
/// point, so a distance scored on one version does not fit another.
fn versioned(id: u64, version: u64) -> Vec<f32> {
    let (i, v) = (id as f32, version as f32);
    vec![
        i,
        v,
        (id % 5) as f32 - v / 3.0,
        (i * 0.37 + v * 1.3).sin() * 10.0,
    ]
}

fn versioned_row(id: u64, version: u64) -> Row {
    Row {
        id,
        vector: versioned(id, version),
        payload: Some(format!("{id}@{version}").into_bytes()),
        fields: Default::default(),
    }
}

#[test]
fn every_hit_returns_the_payload_and_vector_of_the_row_it_scored() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let config = CollectionConfig {
        nlist: 4,
        nprobe: 2,
        target_recall: None,
        min_rows_per_list: 5,
        flush_rows: 96,
        compaction: vdb_engine::CompactionPolicy {
            max_segments: 3,
            max_hidden: 0.3,
            fanout: 2,
            ..vdb_engine::CompactionPolicy::default()
        },
        ..CollectionConfig::new(4)
    };
    let c = engine.create_collection("c", config).unwrap();
    const IDS: u64 = 300;
    c.upsert((0..IDS).map(|id| versioned_row(id, 0)).collect())
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    // Two writers replace overlapping rows with new versions; one of them
    // also flushes, compacts and retrains now and then, so searches run
    // across every kind of snapshot switch.
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                for round in 1..=80u64 {
                    let version = round * 2 + w;
                    let rows = (0..IDS)
                        .filter(|id| (id + round + w) % 3 == 0)
                        .map(|id| versioned_row(id, version))
                        .collect();
                    c.upsert(rows).unwrap();
                    if w == 0 {
                        match round % 16 {
                            5 => c.flush().unwrap(),
                            9 => {
                                c.compact().unwrap();
                            }
                            13 => c.retrain(Some(3 + round as usize % 4)).unwrap(),
                            _ => {}
                        }
                    }
                }
            })
        })
        .collect();

    let readers: Vec<_> = (0..2u64)
        .map(|r| {
            let c = Arc::clone(&c);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut checked = 0u64;
                let mut q = r;
                while !stop.load(Ordering::Acquire) || checked == 0 {
                    q += 1;
                    let query = versioned(q % IDS, q % 50);
                    let opts = SearchOptions {
                        k: 20,
                        nprobe: Some(1 + q as usize % 4),
                        with_payload: true,
                        with_vectors: true,
                        ..Default::default()
                    };
                    for hit in c
                        .search(std::slice::from_ref(&query), opts)
                        .unwrap()
                        .remove(0)
                    {
                        let payload = String::from_utf8(hit.payload.clone().unwrap()).unwrap();
                        let (id, version) = payload.split_once('@').unwrap();
                        let (id, version): (u64, u64) =
                            (id.parse().unwrap(), version.parse().unwrap());
                        assert_eq!(id, hit.id, "the payload of another row: {hit:?}");
                        let vector = hit.vector.clone().unwrap();
                        assert_eq!(
                            vector,
                            versioned(id, version),
                            "vector and payload of different versions: {hit:?}"
                        );
                        let want = vdb_engine::Metric::L2.distance(&query, &vector);
                        assert!(
                            (hit.distance - want).abs() <= 1e-4 * (1.0 + want),
                            "distance {} scored on another version than the returned \
                             vector (distance {want}): {hit:?}",
                            hit.distance
                        );
                        checked += 1;
                    }
                }
                checked
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let s = c.stats();
    assert_eq!(s.rows, IDS);
    assert!(s.generation > 1, "retraining ran: {s:?}");
}
