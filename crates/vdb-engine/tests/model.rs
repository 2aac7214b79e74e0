//! Guards the engine against a plain in-memory model: random sequences of
//! upserts, deletes, flushes, compactions, retrains, local rebalancings,
//! index type changes and reopens must leave exactly the model's rows, and
//! exact search must return exactly the model's nearest: every row is in
//! exactly one list. Collections start as `ivf_flat` or `ivf_rabitq`; the
//! coded scan must return live rows only, each with its exact distance.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::collections::BTreeMap;

use proptest::prelude::*;
use vdb_engine::{Alter, CollectionConfig, Engine, IndexType, Metric, Row, SearchOptions};

#[derive(Debug, Clone)]
enum Op {
    Upsert(Vec<(u64, [i8; 4])>),
    Delete(Vec<u64>),
    Flush,
    Compact,
    Retrain(usize),
    Rebalance,
    /// Switches between ivf_flat and ivf_rabitq.
    AlterIndex,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u64..40;
    prop_oneof![
        6 => prop::collection::vec((id.clone(), any::<[i8; 4]>()), 1..8).prop_map(|mut rows| {
            rows.sort_by_key(|r| r.0);
            rows.dedup_by_key(|r| r.0);
            Op::Upsert(rows)
        }),
        2 => prop::collection::vec(id, 1..5).prop_map(Op::Delete),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => (1usize..5).prop_map(Op::Retrain),
        2 => Just(Op::Rebalance),
        1 => Just(Op::AlterIndex),
        1 => Just(Op::Reopen),
    ]
}

fn vector(v: [i8; 4]) -> Vec<f32> {
    v.iter().map(|&x| x as f32 / 8.0).collect()
}

fn check(engine: &Engine, model: &BTreeMap<u64, (Vec<f32>, Vec<u8>)>) -> Result<(), TestCaseError> {
    let c = engine.collection("m").unwrap();
    prop_assert_eq!(c.stats().rows as usize, model.len());
    for id in 0..40u64 {
        let got = c.get(id).unwrap();
        match model.get(&id) {
            Some((v, p)) => {
                let got = got.expect("a live row is readable");
                prop_assert_eq!(&got.vector, v);
                prop_assert_eq!(got.payload.as_deref(), Some(&p[..]));
            }
            None => prop_assert!(got.is_none(), "id {} should be gone", id),
        }
    }
    for q in [[0i8, 0, 0, 0], [8, -8, 3, 1], [-5, 5, -5, 5]] {
        let q = vector(q);
        let exact = SearchOptions {
            k: 5,
            nprobe: Some(usize::MAX),
            with_payload: true,
            with_vectors: false,
            ..Default::default()
        };
        let hits = c.search(std::slice::from_ref(&q), exact).unwrap().remove(0);
        let mut want: Vec<(f32, u64)> = model
            .iter()
            .map(|(&id, (v, _))| (Metric::L2.distance(&q, v), id))
            .collect();
        want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        want.truncate(5);
        let got: Vec<(f32, u64)> = hits.iter().map(|h| (h.distance, h.id)).collect();
        prop_assert_eq!(got, want);
        for h in &hits {
            prop_assert_eq!(h.payload.as_deref(), Some(&model[&h.id].1[..]));
        }
        // Every list probed, the scan of ivf_rabitq's codes included:
        // live rows only, each once, each with its exact distance, as many
        // as k allows.
        let all = SearchOptions {
            k: 5,
            nprobe: Some(4),
            ..Default::default()
        };
        let hits = c.search(std::slice::from_ref(&q), all).unwrap().remove(0);
        prop_assert_eq!(hits.len(), model.len().min(5));
        let mut seen = std::collections::BTreeSet::new();
        for h in &hits {
            let Some((v, _)) = model.get(&h.id) else {
                return Err(TestCaseError::fail(format!("id {} is not live", h.id)));
            };
            prop_assert!(seen.insert(h.id), "id {} twice", h.id);
            prop_assert_eq!(h.distance, Metric::L2.distance(&q, v));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn engine_matches_the_model(ops in prop::collection::vec(op(), 1..40), coded in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = Engine::open(dir.path()).unwrap();
        // Merges of some segments after most flushes (tiers of 2 flushes,
        // a segment a third hidden, at most 4 segments).
        let compaction = vdb_engine::CompactionPolicy { max_segments: 4, max_hidden: 0.3, fanout: 2, ..Default::default() };
        // Lists split and dissolved whenever they are more uneven than
        // right after training (from 1.01 × it, down to 1.0025 × it), by
        // `rebalance` and after flushes.
        let retrain = vdb_engine::RetrainPolicy { imbalance: 1.01, ..Default::default() };
        let mut altered = false;
        let mut index_type = if coded { IndexType::IvfRabitq } else { IndexType::IvfFlat };
        let config = CollectionConfig { nlist: 4, min_rows_per_list: 3, flush_rows: 11, compaction, retrain, index_type, ..CollectionConfig::new(4) };
        engine.create_collection("m", config).unwrap();
        let mut model: BTreeMap<u64, (Vec<f32>, Vec<u8>)> = BTreeMap::new();
        let mut version = 0u32;
        for op in ops {
            let c = engine.collection("m").unwrap();
            match op {
                Op::Upsert(rows) => {
                    version += 1;
                    let rows: Vec<Row> = rows
                        .into_iter()
                        .map(|(id, v)| Row { id, vector: vector(v), payload: Some(format!("{id}@{version}").into_bytes()), fields: Default::default() })
                        .collect();
                    for r in &rows {
                        model.insert(r.id, (r.vector.clone(), r.payload.clone().unwrap()));
                    }
                    c.upsert(rows).unwrap();
                }
                Op::Delete(ids) => {
                    for id in &ids {
                        model.remove(id);
                    }
                    c.delete(&ids).unwrap();
                }
                Op::Flush => c.flush().unwrap(),
                Op::Compact => {
                    c.compact().unwrap();
                    let st = c.stats();
                    prop_assert!(st.deleted_rows == 0, "{:?}", st);
                    prop_assert!(!c.compact().unwrap(), "a second compaction has nothing to do: {:?}", st);
                }
                Op::Retrain(nlist) => {
                    if nlist <= model.len() {
                        c.retrain(Some(nlist)).unwrap();
                    } else {
                        prop_assert!(c.retrain(Some(nlist)).is_err());
                    }
                }
                Op::Rebalance => {
                    let before = c.stats();
                    if c.rebalance().unwrap() {
                        let after = c.stats();
                        prop_assert!(after.generation > before.generation, "{:?}", after);
                        // A retraining for a changed index type may follow
                        // the splits, and starts their count again.
                        prop_assert!(after.rebalances > 0 || altered, "{:?}", after);
                    }
                }
                Op::AlterIndex => {
                    altered = true;
                    index_type = match index_type {
                        IndexType::IvfFlat => IndexType::IvfRabitq,
                        IndexType::IvfRabitq => IndexType::IvfFlat,
                    };
                    let config = c.alter(Alter { index_type: Some(index_type), ..Default::default() }).unwrap();
                    prop_assert_eq!(config.index_type, index_type);
                }
                Op::Reopen => {
                    drop(c);
                    drop(engine);
                    engine = Engine::open(dir.path()).unwrap();
                }
            }
            check(&engine, &model)?;
        }
    }
}
