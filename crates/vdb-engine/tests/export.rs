//! Export gives exactly the visible rows, each once, in the list the
//! collection assigned it to, list by list in chunks of the size asked for.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

mod common;

use std::collections::HashMap;

use vdb_engine::{CollectionConfig, Engine, Metric, Row};

#[test]
fn export_has_every_visible_row_once_in_its_list() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let config = CollectionConfig {
        nlist: 8,
        ..CollectionConfig::new(6)
    };
    let c = engine.create_collection("x", config).unwrap();
    let data = common::clustered(1500, 6, 20, 7);
    let rows = |ids: std::ops::Range<usize>, shift: usize| -> Vec<Row> {
        ids.map(|i| Row {
            id: i as u64,
            vector: data[(i + shift) % data.len()].clone(),
            payload: None,
            fields: Default::default(),
        })
        .collect()
    };
    c.upsert(rows(0..1000, 0)).unwrap();
    c.flush().unwrap();
    assert!(c.stats().generation > 0);
    c.upsert(rows(1000..1500, 0)).unwrap(); // in the memtable
    c.upsert(rows(0..100, 700)).unwrap(); // overwrites
    c.delete(&(100..200).collect::<Vec<u64>>()).unwrap();

    let e = c.export();
    assert_eq!((e.dim, e.metric, e.sizes.len()), (6, Metric::L2, 8));
    assert_eq!(e.centroids.len(), 8 * 6);
    assert_eq!(e.sizes.iter().sum::<u64>(), c.stats().rows);
    let mut seen: HashMap<u64, (u32, Vec<f32>)> = HashMap::new();
    let mut last_list = 0;
    let mut per_list = vec![0u64; 8];
    e.for_each_chunk(37, |list, ids, vectors| {
        assert!(list >= last_list, "lists in order");
        last_list = list;
        assert!(!ids.is_empty() && ids.len() <= 37);
        assert_eq!(vectors.len(), ids.len() * 6);
        per_list[list as usize] += ids.len() as u64;
        for (id, v) in ids.iter().zip(vectors.chunks_exact(6)) {
            assert!(
                seen.insert(*id, (list, v.to_vec())).is_none(),
                "id {id} twice"
            );
        }
        Ok::<(), vdb_engine::Error>(())
    })
    .unwrap();
    assert_eq!(per_list, e.sizes);
    assert_eq!(seen.len() as u64, c.stats().rows);
    for id in 0..1500u64 {
        match c.get(id).unwrap() {
            None => assert!(!seen.contains_key(&id), "deleted {id} exported"),
            Some(row) => {
                let (list, v) = &seen[&id];
                assert_eq!(&row.vector, v, "id {id}: the newest version");
                // The row sits in the list of its nearest centroid.
                let nearest = e
                    .centroids
                    .chunks_exact(6)
                    .map(|c| Metric::L2.distance(c, v))
                    .enumerate()
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .unwrap()
                    .0;
                let d = |l: usize| Metric::L2.distance(&e.centroids[l * 6..l * 6 + 6], v);
                assert!(d(*list as usize) <= d(nearest) + 1e-4, "id {id}");
            }
        }
    }
}

#[test]
fn a_collection_created_with_centroids_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::clustered(2000, 6, 20, 8);
    // Centroids from elsewhere: 10 of the points.
    let centroids: Vec<f32> = data[..10].iter().flatten().copied().collect();
    {
        let engine = Engine::open(dir.path()).unwrap();
        let c = engine
            .create_collection_with_centroids(
                "given",
                CollectionConfig::new(6),
                vdb_engine::TrainedCentroids {
                    values: centroids.clone(),
                    trained_rows: 2000,
                    imbalance: 1.3,
                },
            )
            .unwrap();
        let s = c.stats();
        assert_eq!((s.generation, s.lists, s.rows), (1, 10, 0));
        assert_eq!(c.config().nlist, 10);
        c.upsert(common::numbered(&data)).unwrap();
        c.flush().unwrap();
        assert_eq!(
            c.stats().generation,
            1,
            "2,000 rows are no growth over 2,000"
        );
        engine.close().unwrap();
    }
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.collection("given").unwrap();
    let e = c.export();
    assert_eq!(e.generation, 1);
    assert_eq!(e.centroids, centroids, "the centroids are the given ones");
    e.for_each_chunk(1000, |list, _, vectors| {
        for v in vectors.chunks_exact(6) {
            let d = |l: usize| Metric::L2.distance(&centroids[l * 6..l * 6 + 6], v);
            let best = (0..10).map(d).fold(f32::INFINITY, f32::min);
            assert!(d(list as usize) <= best + 1e-4);
        }
        Ok::<(), vdb_engine::Error>(())
    })
    .unwrap();

    // Bad centroids create nothing.
    for (values, field) in [
        (vec![1.0; 7], "centroids"),
        (vec![], "centroids"),
        (vec![f32::NAN; 6], "centroids"),
    ] {
        let e = engine
            .create_collection_with_centroids(
                "bad",
                CollectionConfig::new(6),
                vdb_engine::TrainedCentroids {
                    values,
                    trained_rows: 0,
                    imbalance: 0.0,
                },
            )
            .unwrap_err();
        assert!(e.to_string().contains(field), "{e}");
        assert!(engine.collection("bad").is_err());
    }
    // A dimension of 0 is refused as such, not divided by.
    let e = engine
        .create_collection_with_centroids(
            "bad",
            CollectionConfig::new(0),
            vdb_engine::TrainedCentroids {
                values: vec![1.0; 6],
                trained_rows: 0,
                imbalance: 0.0,
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("dim"), "{e}");
}
