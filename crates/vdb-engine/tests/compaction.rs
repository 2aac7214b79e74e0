//! Size-tiered compaction: segments of one tier are merged while the
//! others stay, delete files stay exactly while a kept segment is older
//! than them, and a long ingest rewrites each row once per tier, not the
//! whole collection every few flushes.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

mod common;

use std::path::Path;

use vdb_engine::{CollectionConfig, CompactionPolicy, Engine, Row};

fn config(fanout: usize) -> CollectionConfig {
    CollectionConfig {
        nlist: 2,
        // Never trained: maintenance here is flushes and merges only.
        min_rows_per_list: 1_000_000,
        flush_rows: 100,
        compaction: CompactionPolicy {
            max_segments: 0,
            max_hidden: 0.0,
            fanout,
            // No cap: which segments merge is exact (the cap has its own
            // tests below).
            max_segment_fraction: 0.0,
        },
        ..CollectionConfig::new(common::DIM)
    }
}

/// Tiers off: segments merge only when more than 20 % of their rows are
/// hidden, so which segments merge is exact.
fn by_hidden_rows() -> CollectionConfig {
    CollectionConfig {
        compaction: CompactionPolicy {
            max_segments: 0,
            max_hidden: 0.2,
            fanout: 0,
            max_segment_fraction: 0.0,
        },
        ..config(0)
    }
}

fn rows(ids: std::ops::Range<u64>, version: u64) -> Vec<Row> {
    ids.map(|id| Row {
        id,
        vector: common::vector(id, version),
        payload: None,
        fields: Default::default(),
    })
    .collect()
}

fn files(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir.join("collections/c"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(ext)
        })
        .count()
}

#[test]
fn a_merge_keeps_the_delete_files_older_kept_segments_need() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.create_collection("c", by_hidden_rows()).unwrap();
    c.upsert(rows(0..250, 1)).unwrap();
    c.flush().unwrap(); // B
    c.upsert(rows(250..300, 1)).unwrap();
    c.flush().unwrap(); // A
    c.delete(&[150]).unwrap();
    c.flush().unwrap(); // a delete file hiding 150 in B (B 0.4 % hidden)
    assert_eq!((c.stats().segments, files(dir.path(), ".del")), (2, 1));
    // 20 of A's 50 rows replaced: A alone is rewritten.
    c.upsert(rows(250..270, 2)).unwrap();
    c.flush().unwrap();
    assert_eq!(c.stats().segments, 3, "B, the new rows, A rewritten");
    assert_eq!(c.stats().deleted_rows, 1, "only B's row 150 is hidden");
    assert_eq!(
        files(dir.path(), ".del"),
        1,
        "B is older than the delete file and kept: it still needs it"
    );
    assert!(c.get(150).unwrap().is_none());
    drop(c);
    drop(engine);
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.collection("c").unwrap();
    assert!(c.get(150).unwrap().is_none(), "no resurrection at open");
    assert_eq!(c.stats().rows, 299);

    // B loses 100 more rows and is rewritten too: no kept segment has a
    // hidden row, so none holds an id a delete file hides — the first
    // delete file goes, and the new deletes (all in B) need none.
    c.delete(&(0..100).collect::<Vec<u64>>()).unwrap();
    c.flush().unwrap();
    assert_eq!(c.stats().segments, 3);
    assert_eq!(c.stats().deleted_rows, 0);
    assert_eq!(files(dir.path(), ".del"), 0);
    let mut model = common::Model::new();
    for id in (100..300).filter(|&id| id != 150) {
        let version = if (250..270).contains(&id) { 2 } else { 1 };
        model.insert(id, (common::vector(id, version), None));
    }
    common::holds(&c, &model).unwrap();
    drop(c);
    drop(engine);
    let engine = Engine::open(dir.path()).unwrap();
    common::holds(&engine.collection("c").unwrap(), &model).unwrap();
    assert!(common::leaked_files(&dir.path().join("collections/c")).is_empty());
}

#[test]
fn rows_replaced_in_a_kept_segment_stay_replaced_after_merges() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.create_collection("c", config(2)).unwrap();
    let mut model = common::Model::new();
    // Every round replaces some rows written rounds before, so versions of
    // one id sit in segments of different tiers, merged at different times.
    for round in 0..24u64 {
        let start = (round * 37) % 300;
        let ids = start..start + 60;
        for id in ids.clone() {
            model.insert(id, (common::vector(id, round), None));
        }
        c.upsert(rows(ids, round)).unwrap();
        if round % 5 == 4 {
            let gone: Vec<u64> = (0..300).filter(|id| id % 23 == round % 23).collect();
            for id in &gone {
                model.remove(id);
            }
            c.delete(&gone).unwrap();
        }
        c.flush().unwrap();
        common::holds(&c, &model).unwrap();
    }
    drop(c);
    drop(engine);
    let engine = Engine::open(dir.path()).unwrap();
    common::holds(&engine.collection("c").unwrap(), &model).unwrap();
}

/// Segments and bytes rewritten over a long ingest of equal flushes.
#[test]
fn a_long_ingest_rewrites_each_row_once_per_tier() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.create_collection("c", config(4)).unwrap();
    for i in 0..64u64 {
        c.upsert(rows(i * 100..(i + 1) * 100, 0)).unwrap();
        c.flush().unwrap();
        // At most 3 segments per tier, 3 tiers from one flush to 64.
        assert!(c.stats().segments <= 9, "{:?}", c.stats());
    }
    // 64 flushes = 4³: each row rewritten at most 3 times (once per
    // tier). Merging everything past 8 segments rewrote the collection
    // every 8 flushes: 3.6 times here, but about N / 16 times for N
    // flushes (62 at 1,000, where tiers stay near log₄ 1000 ≈ 5).
    let st = c.stats();
    assert_eq!(st.rows, 6_400);
    let amplification = st.rewritten_bytes as f64 / st.flushed_bytes as f64;
    assert!(
        (1.0..=3.0).contains(&amplification),
        "{amplification}: {st:?}"
    );
}

/// A rewrite that would not fit in the free space is refused before it
/// writes anything, and the collection works on; the flush that asked for
/// it is done and `stats` says why the rewrite waits.
#[test]
fn a_rewrite_that_would_not_fit_is_refused_up_front() {
    use vdb_engine::Error;
    use vdb_fs::{Fault, SimFs};

    let dir = tempfile::tempdir().unwrap();
    let sim = SimFs::new(dir.path()).unwrap();
    let engine = common::open_on(dir.path(), &sim).unwrap();
    let c = engine.create_collection("c", by_hidden_rows()).unwrap();
    c.upsert(rows(0..3000, 1)).unwrap();
    c.flush().unwrap();
    let segment = c.stats().segment_bytes;
    let mut model = common::Model::new();
    for id in 1000..3000 {
        model.insert(id, (common::vector(id, 1), None));
    }
    c.delete(&(0..1000).collect::<Vec<u64>>()).unwrap();

    // Room for the flush (a delete file, a manifest), not for rewriting
    // the segment a third of which is now hidden.
    sim.set_fault(Some(Fault::DiskFull { bytes: 32_768 }));
    assert!(segment > 32_768, "{segment}");
    c.flush().unwrap();
    let st = c.stats();
    let why = st.postponed.clone().unwrap();
    assert!(
        why.contains(&format!(
            "compaction of collection \"c\" needs about {segment} bytes"
        )),
        "{why}"
    );
    assert_eq!((st.segments, st.deleted_rows), (1, 1000));
    // Asked for directly, it is refused with the same reason; nothing of
    // it was written and writes go on.
    let e = c.compact().unwrap_err();
    assert!(
        matches!(e, Error::NoSpace { .. }) && e.is_storage_full(),
        "{e}"
    );
    assert!(!sim.fault_hit(), "refused before any write failed");
    c.upsert(rows(3000..3001, 2)).unwrap();
    model.insert(3000, (common::vector(3000, 2), None));
    common::holds(&c, &model).unwrap();

    // With room again it runs, and the reason is gone.
    sim.set_fault(None);
    assert!(c.compact().unwrap());
    let st = c.stats();
    assert_eq!((st.segments, st.deleted_rows, st.postponed), (1, 0, None));
    common::holds(&c, &model).unwrap();
}
