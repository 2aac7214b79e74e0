//! Guards the free space maintenance needs, on a real small disk (a
//! tmpfs): with segments capped at `max_segment_fraction` of the
//! collection, a full compaction of a collection a third of whose rows
//! were deleted runs with room for a quarter of the collection, and so
//! does a retraining, in steps; without the cap both are refused before
//! they write anything, and the collection works on.
//!
//! Mounting needs root: without it the test says so and passes, unless
//! `VDB_REQUIRE_TMPFS=1` (set by CI) makes that a failure.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

mod common;

use std::path::Path;
use std::process::Command;

use vdb_engine::{Alter, CollectionConfig, CompactionPolicy, Engine, Error, Row};
use vdb_fs::{Fs, OsFs};

/// A tmpfs mounted on a temporary directory; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

const DIM: usize = 64;
const ROWS: u64 = 60_000;

fn free(dir: &Path) -> u64 {
    OsFs.available_space(dir).unwrap().unwrap()
}

fn capped(fraction: f64) -> Alter {
    Alter {
        compaction: Some(CompactionPolicy {
            max_segment_fraction: fraction,
            ..CompactionPolicy::default()
        }),
        ..Alter::default()
    }
}

#[test]
fn a_compaction_fits_in_a_quarter_of_the_collection() {
    let Some(fs) = Tmpfs::mount(64 << 20) else {
        assert!(
            std::env::var_os("VDB_REQUIRE_TMPFS").is_none(),
            "VDB_REQUIRE_TMPFS is set but a tmpfs could not be mounted (run as root)"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let dir = fs.dir.path();
    let engine = Engine::open(dir).unwrap();
    let config = CollectionConfig {
        nlist: 32,
        target_recall: None,
        flush_rows: 3_000,
        retrain: common::never_retrain(),
        ..CollectionConfig::new(DIM)
    };
    let c = engine.create_collection("c", config).unwrap();
    let vectors = common::clustered(ROWS as usize, DIM, 32, 7);
    for (i, chunk) in vectors.chunks(3_000).enumerate() {
        let base = (i * 3_000) as u64;
        let rows = chunk.iter().enumerate().map(|(j, v)| Row {
            id: base + j as u64,
            vector: v.clone(),
            payload: None,
            fields: Default::default(),
        });
        c.upsert(rows.collect()).unwrap();
        c.flush().unwrap();
    }
    c.compact().unwrap();
    let st = c.stats();
    let collection = st.segment_bytes;
    assert_eq!((st.rows, st.generation), (ROWS, 1));
    // Pieces of at most 0.15 of the collection (give or take a row).
    assert!(st.segments >= 7, "{st:?}");

    // Leave room for a quarter of the collection, then delete a third of
    // its rows, spread over every segment.
    let ballast = free(dir) - collection / 4;
    std::fs::write(dir.join("ballast"), vec![1u8; ballast as usize]).unwrap();
    let gone: Vec<u64> = (0..ROWS).filter(|id| id % 3 == 0).collect();
    c.delete(&gone).unwrap();
    c.alter(capped(0.0)).unwrap();
    // Without the cap: one rewrite of everything, refused up front.
    let e = c.compact().unwrap_err();
    assert!(matches!(e, Error::NoSpace { .. }), "{e}");
    let e = c.retrain(None).unwrap_err();
    assert!(matches!(e, Error::NoSpace { .. }), "{e}");
    assert_eq!(c.stats().deleted_rows, gone.len() as u64);

    // With it: piece by piece, each fitting in the room left.
    c.alter(capped(0.15)).unwrap();
    assert!(c.compact().unwrap());
    let st = c.stats();
    assert_eq!(
        (st.rows, st.deleted_rows, st.postponed.as_deref()),
        (ROWS - gone.len() as u64, 0, None),
        "{st:?}"
    );
    assert!(st.segment_bytes < collection * 3 / 4, "{st:?}");

    // A retraining does not fit whole either: with room for a quarter of
    // the collection again it runs in steps, and leaves every row in the
    // list of its nearest new centroid, as a full retraining does.
    let collection = st.segment_bytes;
    let more = free(dir).saturating_sub(collection / 4);
    std::fs::write(dir.join("ballast-2"), vec![1u8; more as usize]).unwrap();
    let full = c.stats().generation;
    c.retrain(None).unwrap();
    let st = c.stats();
    assert!(st.generation > full + 2, "several steps: {st:?}");
    assert_eq!(st.rows, ROWS - gone.len() as u64);
    assert!(st.trained_at > 0 && st.postponed.is_none(), "{st:?}");
    assert_eq!(common::rows_outside_nearest_list(&c), (st.rows, 0));
    // Every row is where it should be, after a reopen too.
    drop(c);
    engine.close().unwrap();
    let engine = Engine::open(dir).unwrap();
    let c = engine.collection("c").unwrap();
    for id in (0..ROWS).step_by(7) {
        let row = c.get(id).unwrap();
        assert_eq!(row.is_some(), id % 3 != 0, "id {id}");
        if let Some(row) = row {
            assert_eq!(row.vector, vectors[id as usize], "id {id}");
        }
    }
    assert_eq!(c.stats().rows, ROWS - gone.len() as u64);
}
