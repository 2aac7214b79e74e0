//! Guards payloads through every kind of file: a row written without a
//! payload reads back without one, a row with an empty payload reads back
//! with an empty one, whether it is in the log (after a reopen), in a
//! flushed segment, or rewritten by a compaction or a training.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use vdb_engine::{CollectionConfig, Engine, Row, SearchOptions};

fn rows(version: f32) -> Vec<Row> {
    (0..60u64)
        .map(|id| Row {
            id,
            vector: vec![id as f32, version, (id % 7) as f32],
            payload: match id % 3 {
                0 => None,
                1 => Some(Vec::new()),
                _ => Some(format!("row {id}").into_bytes()),
            },
            fields: Default::default(),
        })
        .collect()
}

fn check(engine: &Engine, stage: &str) {
    let c = engine.collection("p").unwrap();
    for id in 0..60u64 {
        let want = match id % 3 {
            0 => None,
            1 => Some(Vec::new()),
            _ => Some(format!("row {id}").into_bytes()),
        };
        let got = c.get(id).unwrap().unwrap();
        assert_eq!(got.payload, want, "{stage}: get {id}");
        let hits = c
            .search(
                std::slice::from_ref(&got.vector),
                SearchOptions {
                    k: 1,
                    nprobe: Some(usize::MAX),
                    with_payload: true,
                    with_vectors: false,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(hits[0][0].id, id, "{stage}");
        assert_eq!(hits[0][0].payload, want, "{stage}: search hit {id}");
    }
}

#[test]
fn absent_and_empty_payloads_stay_apart_in_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectionConfig {
        nlist: 3,
        min_rows_per_list: 5,
        ..CollectionConfig::new(3)
    };
    {
        let engine = Engine::open(dir.path()).unwrap();
        let c = engine.create_collection("p", config).unwrap();
        c.upsert(rows(0.0)).unwrap();
        check(&engine, "memtable");
        // Dropped without close: the rows are only in the log.
    }
    let engine = Engine::open(dir.path()).unwrap();
    check(&engine, "replayed from the log");
    let c = engine.collection("p").unwrap();
    c.flush().unwrap();
    assert!(c.stats().segments >= 1);
    check(&engine, "flushed");
    c.upsert(rows(1.0)).unwrap();
    c.flush().unwrap();
    c.compact().unwrap();
    check(&engine, "compacted");
    c.retrain(Some(2)).unwrap();
    check(&engine, "retrained");
    drop(c);
    engine.close().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    check(&engine, "reopened");
}
