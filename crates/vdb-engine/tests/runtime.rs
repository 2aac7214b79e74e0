//! Guards background maintenance on a runtime the application provides
//! (as the server does): flushes requested by writes run on that runtime's
//! blocking pool while writes and searches go on, and closing the engine
//! finishes them.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::time::{Duration, Instant};

use vdb_engine::{CollectionConfig, Engine, EngineOptions, Row, SearchOptions};

#[test]
fn flushes_run_on_the_given_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("app-runtime")
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions {
        runtime: Some(rt.handle().clone()),
        ..EngineOptions::default()
    };
    let engine = Engine::open_with(dir.path(), options).unwrap();
    let config = CollectionConfig {
        nlist: 2,
        flush_rows: 100,
        min_rows_per_list: 10,
        ..CollectionConfig::new(4)
    };
    let c = engine.create_collection("bg", config).unwrap();
    for b in 0..10u64 {
        let rows = (0..50u64)
            .map(|i| Row {
                id: b * 50 + i,
                vector: vec![(b * 50 + i) as f32, 1.0, 2.0, 3.0],
                payload: None,
                fields: Default::default(),
            })
            .collect();
        c.upsert(rows).unwrap();
    }
    // The background flushes land without any explicit flush call.
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.stats().segments == 0 || c.stats().generation == 0 {
        assert!(
            Instant::now() < deadline,
            "no background flush: {:?}",
            c.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let hits = c
        .search(
            &[vec![0.0, 1.0, 2.0, 3.0]],
            SearchOptions {
                k: 1,
                nprobe: Some(2),
                with_payload: false,
                with_vectors: false,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(hits[0][0].id, 0);
    drop(c);
    engine.close().unwrap();
    // The application's runtime is still the application's.
    assert_eq!(rt.block_on(async { 41 + 1 }), 42);

    let engine = Engine::open(dir.path()).unwrap();
    assert_eq!(engine.collection("bg").unwrap().stats().rows, 500);
}

#[test]
fn a_shut_down_engine_refuses_to_name_collections_and_handles_keep_reading() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine
        .create_collection("c", CollectionConfig::new(2))
        .unwrap();
    c.upsert(vec![Row {
        id: 1,
        vector: vec![1.0, 0.0],
        payload: None,
        fields: Default::default(),
    }])
    .unwrap();
    engine.shutdown().unwrap();
    for e in [
        engine.collection("c").unwrap_err(),
        engine
            .create_collection("d", CollectionConfig::new(2))
            .unwrap_err(),
        engine.drop_collection("c").unwrap_err(),
    ] {
        assert!(matches!(e, vdb_engine::Error::Closed(_)), "{e}");
    }
    assert!(engine.list_collections().is_empty());
    let hits = c
        .search(&[vec![1.0, 0.0]], SearchOptions::default())
        .unwrap();
    assert_eq!(hits[0][0].id, 1);
    // Everything acknowledged is there after a restart.
    drop(c);
    drop(engine);
    let engine = Engine::open(dir.path()).unwrap();
    assert!(engine.collection("c").unwrap().get(1).unwrap().is_some());
}
