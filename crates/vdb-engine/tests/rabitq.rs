//! Guards `IVF_RABITQ` collections: their segments keep every row's code,
//! made with the one rotation searches use; searches find what an
//! `IVF_FLAT` collection of the same rows finds, with the exact distances;
//! deleted and replaced rows stay hidden; all of it after a reopen.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

mod common;

use std::path::Path;

use vdb_engine::{CollectionConfig, Engine, IndexType, RABITQ_SEED, SearchOptions};
use vdb_format::SegmentReader;

fn segments(dir: &Path) -> Vec<SegmentReader> {
    let mut out: Vec<SegmentReader> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .map(|p| SegmentReader::open(&p).unwrap())
        .collect();
    out.sort_by_key(|s| s.meta().id);
    out
}

fn config(index_type: IndexType) -> CollectionConfig {
    CollectionConfig {
        nlist: 16,
        nprobe: 4,
        target_recall: None,
        flush_rows: 1000,
        retrain: common::never_retrain(),
        index_type,
        ..CollectionConfig::new(48)
    }
}

fn search(c: &vdb_engine::Collection, queries: &[Vec<f32>], nprobe: usize) -> Vec<Vec<(u64, f32)>> {
    c.search(
        queries,
        SearchOptions {
            k: 10,
            nprobe: Some(nprobe),
            ..Default::default()
        },
    )
    .unwrap()
    .into_iter()
    .map(|hits| hits.into_iter().map(|h| (h.id, h.distance)).collect())
    .collect()
}

/// Of `want`'s hits, the share `got` has too, every shared one with the
/// same distance.
fn overlap(got: &[Vec<(u64, f32)>], want: &[Vec<(u64, f32)>]) -> f64 {
    let (mut shared, mut total) = (0, 0);
    for (g, w) in got.iter().zip(want) {
        total += w.len();
        for (id, d) in g {
            if let Some((_, wd)) = w.iter().find(|(wid, _)| wid == id) {
                assert_eq!(d, wd, "id {id}: distances differ");
                shared += 1;
            }
        }
    }
    shared as f64 / total as f64
}

#[test]
fn coded_segments_answer_like_flat_ones_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let flat = engine
        .create_collection("flat", config(IndexType::IvfFlat))
        .unwrap();
    let coded = engine
        .create_collection("coded", config(IndexType::IvfRabitq))
        .unwrap();
    let rows = common::numbered(&common::clustered(4000, 48, 16, 1));
    for c in [&flat, &coded] {
        for chunk in rows.chunks(1000) {
            c.upsert(chunk.to_vec()).unwrap();
            c.flush().unwrap();
        }
        // Some rows replaced, some deleted, after their segments were written.
        let mut replaced = rows[100..150].to_vec();
        for r in &mut replaced {
            r.vector.iter_mut().for_each(|x| *x += 0.5);
        }
        c.upsert(replaced).unwrap();
        c.delete(&(200..260).collect::<Vec<_>>()).unwrap();
        c.flush().unwrap();
    }
    assert_eq!(coded.config().index_type, IndexType::IvfRabitq);
    let manifest = std::fs::read_to_string(dir.path().join("collections/coded/MANIFEST")).unwrap();
    assert!(manifest.contains("\nindex_type ivf_rabitq\n"), "{manifest}");
    let coded_segs = segments(&dir.path().join("collections/coded"));
    assert!(!coded_segs.is_empty());
    for s in &coded_segs {
        assert_eq!(s.codes_seed(), Some(RABITQ_SEED), "{}", s.path().display());
        s.verify().unwrap();
    }
    for s in segments(&dir.path().join("collections/flat")) {
        assert_eq!(s.codes_seed(), None);
    }

    let queries: Vec<Vec<f32>> = common::clustered(60, 48, 16, 2);
    for nprobe in [1, 4, 16] {
        let want = search(&flat, &queries, nprobe);
        let got = search(&coded, &queries, nprobe);
        let share = overlap(&got, &want);
        assert!(
            share >= 0.99,
            "nprobe {nprobe}: {share} of the flat collection's hits"
        );
        for hits in &got {
            assert!(
                hits.iter().all(|(id, _)| !(200..260).contains(id)),
                "a deleted row came back"
            );
        }
    }
    // The coded collection estimated distances from codes and computed
    // few exact ones; the flat one computed every probed row's.
    let opts = SearchOptions {
        k: 10,
        nprobe: Some(4),
        ..Default::default()
    };
    let (_, t) = coded.search_traced(&queries[0], opts.clone()).unwrap();
    assert!(t.code_estimates > 0, "{t:?}");
    assert!(
        t.fine_distances * 2 < t.code_estimates,
        "{} exact of {}",
        t.fine_distances,
        t.code_estimates
    );
    let (_, t) = flat.search_traced(&queries[0], opts).unwrap();
    assert_eq!(t.code_estimates, 0);
    let before = search(&coded, &queries, 4);
    drop((flat, coded));
    engine.close().unwrap();

    let engine = Engine::open(dir.path()).unwrap();
    let coded = engine.collection("coded").unwrap();
    assert_eq!(coded.config().index_type, IndexType::IvfRabitq);
    assert_eq!(search(&coded, &queries, 4), before);
}

/// `alter` changes the index type; the next flush retrains, rewriting
/// every segment with codes (or without them, going back), and the
/// answers stay those of the same rows in an unchanged collection.
#[test]
fn alter_rewrites_the_segments_for_the_new_index_type() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine
        .create_collection("c", config(IndexType::IvfFlat))
        .unwrap();
    let rows = common::numbered(&common::clustered(3000, 48, 16, 5));
    for chunk in rows.chunks(1000) {
        c.upsert(chunk.to_vec()).unwrap();
        c.flush().unwrap();
    }
    let path = dir.path().join("collections/c");
    assert!(segments(&path).iter().all(|s| s.codes_seed().is_none()));
    let queries = common::clustered(40, 48, 16, 6);
    let exact = search(&c, &queries, 16);

    for (to, coded) in [(IndexType::IvfRabitq, true), (IndexType::IvfFlat, false)] {
        let changed = c
            .alter(vdb_engine::Alter {
                index_type: Some(to),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(changed.index_type, to);
        let generation = c.stats().generation;
        c.upsert(rows[..10].to_vec()).unwrap();
        c.flush().unwrap();
        assert!(c.stats().generation > generation, "{to}: not retrained");
        let segs = segments(&path);
        assert!(!segs.is_empty());
        for s in &segs {
            assert_eq!(
                s.codes_seed().is_some(),
                coded,
                "{to}: {}",
                s.path().display()
            );
        }
        // nprobe = nlist: exact search either way.
        let got = search(&c, &queries, 16);
        assert!(overlap(&got, &exact) >= 0.99, "{to}");
    }
}

/// The searches that stand for ground truth — exact search, explain's
/// exact comparison, tune's reference — give every row its exact
/// distance even in a coded collection, so with a bound tight enough to
/// rule true neighbours out (ε 0), the approximate search misses some
/// and explain places every miss in a probed list.
#[test]
fn ground_truth_ignores_codes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine
        .create_collection("coded", config(IndexType::IvfRabitq))
        .unwrap();
    let vectors = common::clustered(3000, 48, 16, 5);
    for chunk in common::numbered(&vectors).chunks(1000) {
        c.upsert(chunk.to_vec()).unwrap();
        c.flush().unwrap();
    }
    let queries = common::clustered(40, 48, 16, 6);
    let truth = |q: &[f32]| -> Vec<u64> {
        let mut d: Vec<(f32, u64)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (vdb_core::Metric::L2.distance(q, v), i as u64))
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        d.into_iter().take(10).map(|(_, id)| id).collect()
    };
    let tight = |nprobe| SearchOptions {
        k: 10,
        nprobe: Some(nprobe),
        rerank_epsilon: Some(0.0),
        ..Default::default()
    };
    let ids = |hits: Vec<vdb_engine::Hit>| hits.into_iter().map(|h| h.id).collect::<Vec<_>>();
    let mut missed_in_probed = 0;
    for q in &queries {
        let want = truth(q);
        // Exact search: every row's exact distance, whatever the bound.
        let exact = c
            .search(std::slice::from_ref(q), tight(usize::MAX))
            .unwrap();
        assert_eq!(ids(exact.into_iter().next().unwrap()), want);
        // Explain at every list with ε 0: the comparison is the truth,
        // and what the search missed was in lists it probed.
        let e = c
            .explain(
                q,
                vdb_engine::ExplainOptions {
                    nprobe: Some(16),
                    exact: true,
                    samples: 0,
                    rerank_epsilon: Some(0.0),
                    ..vdb_engine::ExplainOptions::new(10)
                },
            )
            .unwrap();
        let x = e.exact.unwrap();
        assert_eq!(x.hits.iter().map(|h| h.hit.id).collect::<Vec<_>>(), want);
        assert!(x.missed_lists.is_empty(), "every list was probed");
        missed_in_probed += x.missed.len();
    }
    assert!(
        missed_in_probed > 0,
        "ε 0 ruled no true neighbour out: the test shows nothing"
    );
    // Tune's reference is exact too: at nprobe = nlist the default bound
    // loses at most a few neighbours, never all the codes would.
    let report = c
        .tune(&vdb_engine::TuneOptions {
            nprobes: vec![16],
            ..vdb_engine::TuneOptions::new(0.9)
        })
        .unwrap();
    let all = &report.points[0];
    assert!(all.recall >= 0.95 && all.recall <= 1.0, "{all:?}");
    assert!(
        all.distances_per_query < (16 + 3000) as f64 / 2.0,
        "distances per query count the codes' estimates: {all:?}"
    );
}

/// An engine directory written by the format 1.4 build (`24014ed`, once,
/// never regenerated): one `ivf_rabitq` collection, "coded", of 600 rows
/// (`common::clustered(600, 16, 8, 5)`, numbered) in two segments whose
/// codes are row after row. This build reads every row and answers
/// searches from them (their lists scanned exactly); the segments count
/// as written for another index type, so the next flush retrains and
/// rewrites them with codes in fast-scan blocks, the answers the same.
#[test]
fn a_collection_of_format_1_4_is_rewritten_with_blocked_codes() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine-v1.4");
    common::copy_tree(&fixture, dir.path());
    let path = dir.path().join("collections/coded");
    assert!(
        segments(&path)
            .iter()
            .all(|s| s.minor_version() == 4 && s.codes_seed().is_none())
    );
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.collection("coded").unwrap();
    assert_eq!(c.stats().rows, 600);
    let rows = common::numbered(&common::clustered(600, 16, 8, 5));
    let queries: Vec<Vec<f32>> = rows.iter().step_by(37).map(|r| r.vector.clone()).collect();
    let before = search(&c, &queries, 8);
    for (q, hits) in rows.iter().step_by(37).zip(&before) {
        assert_eq!(hits[0], (q.id, 0.0), "a row finds itself");
    }
    let generation = c.stats().generation;
    c.upsert(vec![vdb_engine::Row {
        id: 10_000,
        ..rows[0].clone()
    }])
    .unwrap();
    c.flush().unwrap();
    assert!(c.stats().generation > generation, "not retrained");
    let segs = segments(&path);
    assert!(!segs.is_empty());
    for s in &segs {
        assert_eq!(s.minor_version(), vdb_format::header::MINOR);
        assert!(s.codes_seed().is_some(), "{}", s.path().display());
    }
    let after = search(&c, &queries, 8);
    for (b, a) in before.iter().zip(&after) {
        let a: Vec<_> = a.iter().filter(|h| h.0 != 10_000).copied().collect();
        assert_eq!(a[..5], b[..5]);
    }
}
