//! Guards a collection's life: creation and its errors, automatic training
//! once enough rows arrive, search quality after training, bad writes that
//! change nothing, stats, and drop.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use vdb_engine::{CollectionConfig, Engine, Error, Row, SearchOptions};

fn rows(n: u64, dim: usize, seed: u64) -> Vec<Row> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|id| {
            let cluster = (id % 8) as f32;
            let vector = (0..dim)
                .map(|j| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    let noise = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                    if j % 8 == cluster as usize {
                        10.0 + noise
                    } else {
                        noise
                    }
                })
                .collect();
            Row {
                id,
                vector,
                payload: Some(id.to_le_bytes().to_vec()),
                fields: Default::default(),
            }
        })
        .collect()
}

#[test]
fn trains_itself_and_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let config = CollectionConfig {
        nlist: 8,
        flush_rows: 500,
        // Growth retrains while the trainings saw fewer than 256 rows a
        // list (off by default).
        retrain: vdb_engine::RetrainPolicy {
            growth: 1.5,
            ..Default::default()
        },
        ..CollectionConfig::new(16)
    };
    let c = engine.create_collection("docs", config).unwrap();
    let all = rows(2000, 16, 1);
    // Explicit flushes make the sequence deterministic (writes also ask for
    // background flushes at 500 rows, whose timing varies).
    for (i, chunk) in all.chunks(500).enumerate() {
        c.upsert(chunk.to_vec()).unwrap();
        c.flush().unwrap();
        // Trained at 500 rows, retrained each time the collection grew by
        // half since the last training (1,000 and 1,500 rows).
        let want = match i {
            0 => 1,
            1 => 2,
            _ => 3,
        };
        assert_eq!(c.stats().generation, want, "after {} rows", (i + 1) * 500);
    }
    let st = c.stats();
    assert_eq!(st.rows, 2000);
    assert_eq!(st.lists, 8);
    // Expected work: 8 centroids plus nprobe/8 of 2,000 rows, 16 components
    // each, per query; exact search and nprobe above nlist read every row;
    // no nprobe means the default, chosen at the last training for recall
    // 0.95 (the lists hold 250 rows each).
    assert_eq!(c.search_work(1, Some(2)), (8 + 500) * 16);
    assert_eq!(c.search_work(3, Some(2)), 3 * (8 + 500) * 16);
    assert_eq!(c.search_work(1, Some(usize::MAX)), (8 + 2000) * 16);
    assert_eq!(c.search_work(1, Some(9)), (8 + 2000) * 16);
    let nprobe = c.default_nprobe();
    assert!((1..=8).contains(&nprobe), "{nprobe}");
    assert_eq!(c.search_work(1, None), (8 + 250 * nprobe as u64) * 16);
    assert_eq!(c.search_work(0, Some(2)), 0);
    assert!(st.segments >= 1);
    // Trained at 1,500 rows, just now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(st.trained_rows, 1500);
    assert!(now.abs_diff(st.trained_at) < 600, "{st:?}");
    assert!(
        st.compacted_at >= st.trained_at,
        "training rewrites every segment"
    );

    // Every row finds itself; probing all lists is exact.
    let opts = SearchOptions {
        k: 3,
        nprobe: Some(2),
        with_payload: true,
        with_vectors: false,
        ..Default::default()
    };
    for r in all.iter().step_by(97) {
        let hits = c
            .search(std::slice::from_ref(&r.vector), opts.clone())
            .unwrap()
            .remove(0);
        assert_eq!(hits[0].id, r.id);
        assert_eq!(hits[0].payload, r.payload);
    }
    let (hits, trace) = c
        .search_traced(
            &all[5].vector,
            SearchOptions {
                k: 5,
                nprobe: Some(3),
                with_payload: false,
                with_vectors: false,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(hits[0].id, 5);
    assert_eq!(trace.nprobe, 3);
    assert!(trace.fine_distances < 2000);

    // Deletes and upserts are visible at once, and survive a restart.
    c.delete(&[5, 6]).unwrap();
    c.upsert(vec![Row {
        id: 7,
        vector: all[100].vector.clone(),
        payload: None,
        fields: Default::default(),
    }])
    .unwrap();
    let hits = c
        .search(
            &[all[100].vector.clone()],
            SearchOptions {
                k: 2,
                nprobe: Some(8),
                with_payload: false,
                with_vectors: false,
                ..Default::default()
            },
        )
        .unwrap();
    let ids: Vec<u64> = hits[0].iter().map(|h| h.id).collect();
    assert!(ids.contains(&7) && ids.contains(&100), "{ids:?}");
    assert_eq!(c.stats().rows, 1998);
    c.flush().unwrap();
    assert!(c.stats().deleted_rows > 0);
    assert!(c.compact().unwrap());
    let st = c.stats();
    assert_eq!((st.rows, st.deleted_rows), (1998, 0), "{st:?}");
    // Segments of at most 0.15 of the collection (but a flush's worth).
    assert!((1..=7).contains(&st.segments), "{st:?}");
    assert!(!c.compact().unwrap(), "nothing left to compact");
    drop(c);
    engine.close().unwrap();

    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.collection("docs").unwrap();
    assert_eq!(c.stats().rows, 1998);
    assert_eq!(c.stats().trained_at, st.trained_at, "kept in the manifest");
    assert!(c.stats().compacted_at >= st.trained_at);
    assert!(c.get(5).unwrap().is_none());
    assert_eq!(c.get(7).unwrap().unwrap().vector, all[100].vector);
    assert_eq!(c.get(7).unwrap().unwrap().payload, None);
}

#[test]
fn bad_requests_name_the_problem_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine
        .create_collection("a", CollectionConfig::new(2))
        .unwrap();
    c.upsert(vec![Row {
        id: 1,
        vector: vec![1.0, 2.0],
        payload: None,
        fields: Default::default(),
    }])
    .unwrap();
    let cases: Vec<(Vec<Row>, &str)> = vec![
        (vec![], "rows"),
        (
            vec![Row {
                id: 2,
                vector: vec![1.0],
                payload: None,
                fields: Default::default(),
            }],
            "rows[0].vector",
        ),
        (
            vec![
                Row {
                    id: 2,
                    vector: vec![1.0, 0.0],
                    payload: None,
                    fields: Default::default(),
                },
                Row {
                    id: 3,
                    vector: vec![f32::NAN, 0.0],
                    payload: None,
                    fields: Default::default(),
                },
            ],
            "rows[1].vector",
        ),
        (
            vec![
                Row {
                    id: 2,
                    vector: vec![1.0, 0.0],
                    payload: None,
                    fields: Default::default(),
                },
                Row {
                    id: 2,
                    vector: vec![0.0, 0.0],
                    payload: None,
                    fields: Default::default(),
                },
            ],
            "rows[1].id",
        ),
    ];
    for (rows, field) in cases {
        let e = c.upsert(rows).unwrap_err();
        assert_eq!(e.field(), Some(field), "{e}");
    }
    assert_eq!(c.stats().rows, 1);
    assert!(c.get(2).unwrap().is_none());
    let e = c
        .search(
            &[vec![1.0]],
            SearchOptions {
                k: 1,
                nprobe: None,
                with_payload: false,
                with_vectors: false,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("queries[0]"), "{e}");
    let e = c
        .search(
            &[vec![1.0, 1.0]],
            SearchOptions {
                k: 0,
                nprobe: None,
                with_payload: false,
                with_vectors: false,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("invalid k"), "{e}");

    assert!(matches!(
        engine.create_collection("a", CollectionConfig::new(2)),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        engine.create_collection("../x", CollectionConfig::new(2)),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        engine.create_collection("b", CollectionConfig::new(0)),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(engine.collection("nope"), Err(Error::NotFound(_))));
    assert_eq!(engine.list_collections(), vec!["a".to_string()]);

    engine.drop_collection("a").unwrap();
    assert!(matches!(
        c.upsert(vec![Row {
            id: 9,
            vector: vec![0.0, 0.0],
            payload: None,
            fields: Default::default(),
        }]),
        Err(Error::NotFound(_))
    ));
    assert!(engine.list_collections().is_empty());
    assert!(matches!(
        engine.drop_collection("a"),
        Err(Error::NotFound(_))
    ));
    let left: Vec<_> = std::fs::read_dir(dir.path().join("collections"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "dropped files remain");
}

#[test]
fn unreferenced_files_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine
        .create_collection("g", CollectionConfig::new(2))
        .unwrap();
    c.upsert(vec![Row {
        id: 1,
        vector: vec![1.0, 2.0],
        payload: None,
        fields: Default::default(),
    }])
    .unwrap();
    c.flush().unwrap();
    drop(c);
    drop(engine);
    let cdir = dir.path().join("collections/g");
    std::fs::write(cdir.join("seg-00000000000000ff.seg"), b"half-written").unwrap();
    std::fs::write(cdir.join("seg-0000000000000100.seg.tmp"), b"tmp").unwrap();
    std::fs::create_dir(dir.path().join("collections/crashed-create")).unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    assert!(!cdir.join("seg-00000000000000ff.seg").exists());
    assert!(!cdir.join("seg-0000000000000100.seg.tmp").exists());
    assert!(!dir.path().join("collections/crashed-create").exists());
    assert_eq!(
        engine
            .collection("g")
            .unwrap()
            .get(1)
            .unwrap()
            .unwrap()
            .vector,
        vec![1.0, 2.0]
    );
}

#[test]
fn alter_changes_settings_durably() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let config = CollectionConfig {
        nlist: 8,
        flush_rows: 10_000,
        ..CollectionConfig::new(16)
    };
    let c = engine.create_collection("alt", config).unwrap();
    c.upsert(rows(1000, 16, 2)).unwrap();
    c.flush().unwrap();
    assert_eq!(c.stats().lists, 8);

    let q = rows(1, 16, 3).remove(0).vector;
    let opts = SearchOptions {
        k: 1,
        nprobe: None,
        with_payload: false,
        with_vectors: false,
        ..Default::default()
    };
    let e = c
        .alter(vdb_engine::Alter {
            nprobe: Some(0),
            ..Default::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("nprobe"), "{e}");
    let cfg = c
        .alter(vdb_engine::Alter {
            nprobe: Some(3),
            nlist: Some(4),
            ..Default::default()
        })
        .unwrap();
    assert_eq!((cfg.nprobe, cfg.nlist), (3, 4));
    assert_eq!(c.search_traced(&q, opts.clone()).unwrap().1.nprobe, 3);

    // The nlist change retrains at the next flush.
    c.upsert(vec![Row {
        id: 5000,
        vector: q.clone(),
        payload: None,
        fields: Default::default(),
    }])
    .unwrap();
    c.flush().unwrap();
    assert_eq!(c.stats().lists, 4);
    drop(c);
    drop(engine);
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.collection("alt").unwrap();
    assert_eq!((c.config().nprobe, c.config().nlist), (3, 4));
    assert_eq!(c.search_traced(&q, opts).unwrap().1.nprobe, 3);
}

#[test]
fn the_memtable_is_bounded_by_its_memory_not_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 256 << 10;
    let engine = Engine::open_with(
        dir.path(),
        vdb_engine::EngineOptions {
            memtable_limit: limit,
            ..Default::default()
        },
    )
    .unwrap();
    let config = CollectionConfig {
        flush_rows: 1_000_000,
        ..CollectionConfig::new(16)
    };
    let c = engine.create_collection("big", config).unwrap();
    // Rows with 16 KiB payloads: 400 rows, 6.4 MiB, far below flush_rows.
    let mut peak = 0;
    for b in 0..40u64 {
        let batch = (0..10u64)
            .map(|i| Row {
                id: b * 10 + i,
                vector: vec![(b * 10 + i) as f32; 16],
                payload: Some(vec![7u8; 16 << 10]),
                fields: Default::default(),
            })
            .collect();
        c.upsert(batch).unwrap();
        peak = peak.max(c.stats().memtable_bytes);
    }
    // The limit, plus the write that crossed it (10 rows, 160 KiB).
    assert!(peak > 0 && peak <= limit + (200 << 10), "peak {peak}");
    c.flush().unwrap();
    let st = c.stats();
    assert_eq!((st.rows, st.memtable_bytes), (400, 0));
    assert!(st.flushed_bytes > 6 << 20, "{st:?}");
    for id in [0, 199, 399] {
        let row = c.get(id).unwrap().unwrap();
        assert_eq!(row.payload.unwrap().len(), 16 << 10);
    }
}
