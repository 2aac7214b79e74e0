//! Guards local rebalancing: data that drifts away from where the lists
//! were trained makes lists uneven; the engine splits the largest and
//! dissolves the smallest instead of retraining, rewriting only the rows
//! that move, and every row stays in exactly one list, through reopen.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::collections::{BTreeMap, HashSet};

use vdb_engine::{
    Collection, CollectionConfig, Engine, Metric, RetrainPolicy, Row, SearchOptions, TuneOptions,
};

const DIM: usize = 8;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Row `i` of the drifting set: the first 2,000 in the unit cube, then
/// each thousand shifted further along the first two axes.
fn point(rng: &mut Rng, i: u64) -> Vec<f32> {
    let shift = if i < 2_000 {
        0.0
    } else {
        (i / 1_000) as f32 * 0.5
    };
    (0..DIM)
        .map(|j| rng.next() + if j < 2 { shift } else { 0.0 })
        .collect()
}

fn config(imbalance: f64) -> CollectionConfig {
    CollectionConfig {
        nlist: 16,
        nprobe: 2,
        target_recall: None,
        flush_rows: 1_000,
        // Only the imbalance rule: growth and drift would retrain globally.
        retrain: RetrainPolicy {
            growth: 0.0,
            error_drift: 0.0,
            imbalance,
            ..RetrainPolicy::default()
        },
        ..CollectionConfig::new(DIM)
    }
}

fn load(c: &Collection) -> BTreeMap<u64, Vec<f32>> {
    let mut rng = Rng(7);
    let mut model = BTreeMap::new();
    for start in (0..10_000u64).step_by(500) {
        let rows: Vec<Row> = (start..start + 500)
            .map(|id| Row {
                id,
                vector: point(&mut rng, id),
                payload: Some(id.to_le_bytes().to_vec()),
                fields: Default::default(),
            })
            .collect();
        for r in &rows {
            model.insert(r.id, r.vector.clone());
        }
        c.upsert(rows).unwrap();
        if start % 1_000 == 500 {
            c.flush().unwrap();
        }
    }
    // Some rows replaced and some deleted after the lists moved.
    let mut rng = Rng(8);
    let replaced: Vec<Row> = (0..10_000u64)
        .step_by(7)
        .map(|id| Row {
            id,
            vector: point(&mut rng, 9_999),
            payload: Some(id.to_le_bytes().to_vec()),
            fields: Default::default(),
        })
        .collect();
    for r in &replaced {
        model.insert(r.id, r.vector.clone());
    }
    c.upsert(replaced).unwrap();
    let gone: Vec<u64> = (3..10_000u64).step_by(11).collect();
    for id in &gone {
        model.remove(id);
    }
    c.delete(&gone).unwrap();
    c.flush().unwrap();
    model
}

/// The fraction of live rows stored in the list of their nearest centroid.
fn placed_nearest(c: &Collection) -> f64 {
    let e = c.export();
    let (mut near, mut all) = (0usize, 0usize);
    e.for_each_chunk::<vdb_engine::Error>(1_000, |list, _, vectors| {
        for x in vectors.chunks_exact(e.dim) {
            let best = e
                .centroids
                .chunks_exact(e.dim)
                .map(|c| Metric::L2.distance(x, c))
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(l, _)| l as u32);
            near += usize::from(best == Some(list));
            all += 1;
        }
        Ok(())
    })
    .unwrap();
    near as f64 / all as f64
}

/// Exact search returns the model's nearest, and every live row once.
fn exact(c: &Collection, model: &BTreeMap<u64, Vec<f32>>) {
    let all = SearchOptions {
        k: model.len() + 10,
        nprobe: Some(usize::MAX),
        ..SearchOptions::default()
    };
    let hits = c.search(&[vec![1.0; DIM]], all).unwrap().remove(0);
    assert_eq!(hits.len(), model.len());
    let ids: HashSet<u64> = hits.iter().map(|h| h.id).collect();
    assert_eq!(ids.len(), model.len(), "a row came back twice");
    assert!(ids.iter().all(|id| model.contains_key(id)));
    let mut rng = Rng(9);
    for q in 0..20u64 {
        let query = point(&mut rng, q * 500);
        let opts = SearchOptions {
            k: 10,
            nprobe: Some(usize::MAX),
            ..SearchOptions::default()
        };
        let got: Vec<u64> = c
            .search(std::slice::from_ref(&query), opts)
            .unwrap()
            .remove(0)
            .iter()
            .map(|h| h.id)
            .collect();
        let mut want: Vec<(f32, u64)> = model
            .iter()
            .map(|(&id, v)| (Metric::L2.distance(&query, v), id))
            .collect();
        want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let want: Vec<u64> = want.into_iter().take(10).map(|(_, id)| id).collect();
        assert_eq!(got, want, "query {q}");
    }
}

#[test]
fn drifting_rows_split_lists_locally_and_every_row_stays_in_one_list() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let local = engine.create_collection("local", config(1.2)).unwrap();
    let off = engine.create_collection("off", config(0.0)).unwrap();
    let model = load(&local);
    assert_eq!(load(&off), model);

    let (s, o) = (local.stats(), off.stats());
    // Trained once, on the first rows; then only local steps.
    assert_eq!(o.generation, 1, "{o:?}");
    assert!(s.rebalances > 0 && s.generation > 1, "{s:?}");
    assert_eq!(s.trained_rows, o.trained_rows);
    assert!(
        s.imbalance < o.imbalance * 0.8,
        "imbalance {} rebalanced, {} without",
        s.imbalance,
        o.imbalance
    );
    assert!(s.rebalanced_at > 0);
    // Rows of the split lists and those near them went to their nearest
    // list; rows farther away can be missed (only 16 neighbouring lists
    // are checked), rarely.
    let placed = placed_nearest(&local);
    assert!(placed_nearest(&off) > 0.999, "rows are placed at insert");
    assert!(placed > 0.99, "{placed} of rows in their nearest list");
    exact(&local, &model);

    // The same after reopening: old segments' moved rows stay hidden.
    drop((local, off));
    engine.close().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let local = engine.collection("local").unwrap();
    let again = local.stats();
    assert_eq!(
        (
            again.generation,
            again.rows,
            again.segments,
            again.rebalances
        ),
        (s.generation, s.rows, s.segments, s.rebalances)
    );
    exact(&local, &model);
    // A compaction drops the hidden copies and keeps the lists.
    local.compact().unwrap();
    let compacted = local.stats();
    assert_eq!(compacted.deleted_rows, 0);
    assert_eq!(compacted.generation, s.generation);
    exact(&local, &model);
    for id in [0u64, 1, 7, 9_998] {
        let row = local.get(id).unwrap().unwrap();
        assert_eq!(&row.vector, &model[&id]);
        assert_eq!(row.payload.unwrap(), id.to_le_bytes());
    }
}

#[test]
fn rebalance_on_even_lists_only_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.create_collection("even", config(1.2)).unwrap();
    let mut rng = Rng(3);
    let rows: Vec<Row> = (0..3_000u64)
        .map(|id| Row {
            id,
            vector: point(&mut rng, 0),
            payload: None,
            fields: Default::default(),
        })
        .collect();
    c.upsert(rows).unwrap();
    c.flush().unwrap();
    let before = c.stats();
    assert_eq!(before.generation, 1);
    c.upsert(vec![Row {
        id: 5_000,
        vector: vec![0.5; DIM],
        payload: None,
        fields: Default::default(),
    }])
    .unwrap();
    assert!(!c.rebalance().unwrap(), "lists as even as at training");
    let after = c.stats();
    assert_eq!(after.generation, 1);
    assert_eq!(after.memtable_rows, 0, "the memtable was flushed");
    assert_eq!(after.rows, 3_001);
}

#[test]
fn a_rebalancing_chooses_nprobe_again_for_the_recall_target() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let config = CollectionConfig {
        nprobe: CollectionConfig::new(DIM).nprobe,
        target_recall: Some(0.9),
        // The imbalance rule off: lists become uneven until asked.
        ..config(0.0)
    };
    let c = engine.create_collection("tuned", config).unwrap();
    let mut rng = Rng(11);
    for start in (0..8_000u64).step_by(1_000) {
        let rows: Vec<Row> = (start..start + 1_000)
            .map(|id| Row {
                id,
                vector: point(&mut rng, id),
                payload: None,
                fields: Default::default(),
            })
            .collect();
        c.upsert(rows).unwrap();
        c.flush().unwrap();
    }
    let before = c.stats();
    assert_eq!((before.generation, before.rebalances), (1, 0));
    assert!(c.rebalance().unwrap(), "uneven lists: some were split");
    assert!(c.stats().imbalance < before.imbalance);

    // The default nprobe is the one a sweep over the same sample (tune's
    // defaults: 200 rows, seed 42) recommends on the rebalanced lists,
    // and the recall recorded is the sweep's at it.
    let opts = TuneOptions {
        nprobes: (1..=c.stats().lists).collect(),
        ..TuneOptions::new(0.9)
    };
    let report = c.tune(&opts).unwrap();
    let p = report.recommended.unwrap();
    assert_eq!(c.default_nprobe(), p);
    assert_eq!(c.stats().tuned_recall, report.points[p - 1].recall);
}
