//! Guards the id index rebuilt at open for large collections (which is
//! built in shards on several threads above 100,000 stored rows): after
//! flushes that leave several segments, overwrites across segments and
//! delete files, a reopen must find every id at its latest version, hide
//! every older version, and count rows exactly.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::collections::BTreeMap;

use vdb_engine::{CollectionConfig, CompactionPolicy, Engine, RetrainPolicy, Row, SearchOptions};

const DIM: usize = 2;

fn row(id: u64, version: u64) -> Row {
    Row {
        id,
        vector: vec![id as f32, version as f32],
        payload: None,
        fields: Default::default(),
    }
}

#[test]
fn a_large_reopen_finds_every_latest_version() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let config = CollectionConfig {
        nlist: 1,
        flush_rows: 1_000_000,
        // Keep the segments apart: no retraining or compaction rewrites them.
        retrain: RetrainPolicy {
            growth: 0.0,
            error_drift: 0.0,
            imbalance: 0.0,
            ..RetrainPolicy::default()
        },
        compaction: CompactionPolicy {
            max_segments: 0,
            max_hidden: 0.0,
            fanout: 0,
            ..CompactionPolicy::default()
        },
        ..CollectionConfig::new(DIM)
    };
    let c = engine.create_collection("big", config).unwrap();
    let mut model: BTreeMap<u64, u64> = BTreeMap::new();
    // Three flushes: 80k new rows, then 40k overwrites + 30k new, then
    // deletes of 5k and overwrites of 5k. 155k rows stored in segments.
    let write = |ids: Vec<u64>, version: u64, model: &mut BTreeMap<u64, u64>| {
        for chunk in ids.chunks(5_000) {
            c.upsert(chunk.iter().map(|&id| row(id, version)).collect())
                .unwrap();
            for &id in chunk {
                model.insert(id, version);
            }
        }
    };
    write((0..80_000).collect(), 1, &mut model);
    c.flush().unwrap();
    write((40_000..110_000).collect(), 2, &mut model);
    c.flush().unwrap();
    let doomed: Vec<u64> = (0..110_000).step_by(22).collect();
    c.delete(&doomed).unwrap();
    for id in &doomed {
        model.remove(id);
    }
    write((1..110_000).step_by(22).collect(), 3, &mut model);
    c.flush().unwrap();
    // An unflushed tail too.
    write((200_000..200_100).collect(), 4, &mut model);
    let stats = c.stats();
    assert!(stats.segments >= 3, "{stats:?}");
    drop(c);
    drop(engine);

    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.collection("big").unwrap();
    assert_eq!(c.stats().rows, model.len() as u64);
    for id in (0..110_000).chain(200_000..200_100) {
        let got = c.get(id).unwrap().map(|r| r.vector[1] as u64);
        assert_eq!(got, model.get(&id).copied(), "id {id}");
    }
    // Hidden versions stay hidden in search: every row exactly once.
    let hits = c
        .search(
            &[vec![0.0, 0.0]],
            SearchOptions {
                k: model.len() + 10,
                nprobe: None,
                with_payload: false,
                with_vectors: false,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(hits[0].len(), model.len());
    let mut seen: Vec<u64> = hits[0].iter().map(|h| h.id).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), model.len());
}
