//! A load from empty races the first training: the collection trains as
//! soon as it holds the rows it needs, writers group rows by the new
//! centroids once k-means has them, and the rows written while it ran
//! are assigned by maintenance and the writers together. Whatever the
//! interleaving, searches see every live row once throughout, and
//! afterwards every row is in the list of its nearest centroid and
//! searches at nprobe = nlist are exact.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod common;

use vdb_engine::{CollectionConfig, Engine, Row, SearchOptions};

const DIM: usize = 16;
const NLIST: usize = 32;

/// Row `id`'s vector at `version`: points around 64 cluster centres.
fn vector(id: u64, version: u64) -> Vec<f32> {
    let mut s = (id * 7919 + version * 104_729) | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 10_000) as f32 / 10_000.0
    };
    let centre = (id * 31 + version) % 64;
    (0..DIM)
        .map(|j| ((centre as usize * 7 + j * 3) % 64) as f32 + next())
        .collect()
}

fn rows(ids: impl Iterator<Item = u64>, version: u64) -> Vec<Row> {
    ids.map(|id| Row {
        id,
        vector: vector(id, version),
        payload: None,
        fields: Default::default(),
    })
    .collect()
}

fn dist(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[test]
fn rows_written_during_the_first_training_are_found_and_placed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let config = CollectionConfig {
        nlist: NLIST,
        // Trains at 1,280 rows, long before a flush's worth.
        min_rows_per_list: 40,
        flush_rows: 1_000_000,
        ..CollectionConfig::new(DIM)
    };
    let c = engine.create_collection("c", config).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (c, stop) = (Arc::clone(&c), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut searches = 0;
                while !stop.load(Ordering::Acquire) || searches == 0 {
                    for nprobe in [usize::MAX, NLIST] {
                        let opts = SearchOptions {
                            k: 100_000,
                            nprobe: Some(nprobe),
                            ..Default::default()
                        };
                        let hits = c.search(&[vector(0, 0)], opts).unwrap().remove(0);
                        let ids: HashSet<u64> = hits.iter().map(|h| h.id).collect();
                        assert_eq!(ids.len(), hits.len(), "a row was returned twice");
                        // Ids 0..1000 are written first and never deleted.
                        if hits.len() >= 1000 {
                            assert!((0..1000).all(|id| ids.contains(&id)), "a row went missing");
                        }
                    }
                    searches += 1;
                }
                searches
            })
        })
        .collect();

    // Batches of 100 rows, replacing and deleting earlier rows as it goes.
    let mut model: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
    for b in 0..120u64 {
        let batch = rows(b * 100..(b + 1) * 100, 0);
        for r in &batch {
            model.insert(r.id, r.vector.clone());
        }
        c.upsert(batch).unwrap();
        if b >= 12 {
            let again = rows(
                (0..10).map(|i| 1000 + (b * 37 + i * 13) % (b * 100 - 1000)),
                b,
            );
            for r in &again {
                model.insert(r.id, r.vector.clone());
            }
            c.upsert(again).unwrap();
            let gone: Vec<u64> = (0..5)
                .map(|i| 1000 + (b * 53 + i * 7) % (b * 100 - 1000))
                .collect();
            for id in &gone {
                model.remove(id);
            }
            c.delete(&gone).unwrap();
        }
    }
    stop.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }

    let st = c.stats();
    assert_eq!(st.generation, 1, "trained once: {st:?}");
    assert_eq!(st.rows, model.len() as u64);
    for (&id, v) in &model {
        assert_eq!(&c.get(id).unwrap().unwrap().vector, v, "id {id}");
    }
    // Every row, memtable ones included, in the list of its nearest
    // centroid.
    assert_eq!(
        common::rows_outside_nearest_list(&c),
        (model.len() as u64, 0)
    );
    // Searches at nprobe = nlist are exact: the top 50 of the model.
    for q in [vector(5, 0), vector(4242, 3), vector(99_999, 1)] {
        let mut want: Vec<(f32, u64)> = model.iter().map(|(&id, v)| (dist(&q, v), id)).collect();
        want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let opts = SearchOptions {
            k: 50,
            nprobe: Some(NLIST),
            ..Default::default()
        };
        let got = c.search(std::slice::from_ref(&q), opts).unwrap().remove(0);
        let got: Vec<f32> = got.iter().map(|h| h.distance).collect();
        let want: Vec<f32> = want.iter().take(50).map(|w| w.0).collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-3 * w.max(1.0), "{got:?} != {want:?}");
        }
    }
    // And all of it after a flush and a reopen.
    c.flush().unwrap();
    drop(c);
    engine.close().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.collection("c").unwrap();
    assert_eq!(c.stats().rows, model.len() as u64);
    for (&id, v) in model.iter().step_by(17) {
        assert_eq!(&c.get(id).unwrap().unwrap().vector, v, "id {id}");
    }
}
