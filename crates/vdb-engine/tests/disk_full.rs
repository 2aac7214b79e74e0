//! Guards what a full disk does: a write or a flush that cannot get its
//! bytes onto the disk fails with an error that says so, later writes are
//! refused (the collection is poisoned rather than guessing what reached
//! the disk), searches and reads keep answering from memory, and after a
//! reopen with space again every acknowledged row is there and nothing
//! else.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

mod common;

use common::{Model, Workload, apply, config, holds, leaked_files, perform};
use vdb_engine::{Engine, Error};
use vdb_fs::{Fault, SimFs};

#[test]
fn a_full_disk_fails_writes_cleanly_and_loses_nothing_acknowledged() {
    for budget in [0u64, 100, 2_000, 9_000, 30_000, 60_000] {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimFs::new(dir.path()).unwrap();
        let engine = common::open_on(dir.path(), &sim).unwrap();
        let c = engine.create_collection("full", config()).unwrap();
        let mut model = Model::new();
        let mut w = Workload::new(budget + 3);
        sim.set_fault(Some(Fault::DiskFull { bytes: budget }));
        let mut failure = None;
        for _ in 0..400 {
            let (version, op) = w.next_op();
            // A background flush that fails poisons the collection; the
            // next write reports it.
            match perform(&c, version, &op) {
                Ok(()) => apply(&mut model, version, &op),
                Err(e) => {
                    failure = Some((e, version, op));
                    break;
                }
            }
        }
        let (err, version, op) =
            failure.unwrap_or_else(|| panic!("budget {budget}: the disk never filled"));
        let text = err.to_string();
        assert!(
            text.contains("full") || text.contains("No space"),
            "budget {budget}: the error says the disk is full: {text}"
        );
        // Writes are refused from now on, with the cause.
        let (v2, op2) = w.next_op();
        let again = perform(&c, v2, &op2).unwrap_err();
        assert!(
            matches!(again, Error::Poisoned { .. }),
            "budget {budget}: {again}"
        );
        // Reads still answer: every acknowledged row, plus possibly the
        // failed write if it was applied before its flush failed.
        let mut with = model.clone();
        apply(&mut with, version, &op);
        if holds(&c, &model).is_err() {
            holds(&c, &with)
                .unwrap_or_else(|e| panic!("budget {budget}, reads after the failure: {e}"));
        }
        drop(c);
        drop(engine);

        // Space again: reopen on the real disk.
        let engine = Engine::open(dir.path()).unwrap();
        let c = engine.collection("full").unwrap();
        if let Err(e) = holds(&c, &model) {
            holds(&c, &with)
                .unwrap_or_else(|e2| panic!("budget {budget}, after reopen: {e}; {e2}"));
            model = with;
        }
        let leaked = leaked_files(&dir.path().join("collections/full"));
        assert!(
            leaked.is_empty(),
            "budget {budget}: files left behind: {leaked:?}"
        );
        let (version, op) = w.next_op();
        perform(&c, version, &op).unwrap();
        apply(&mut model, version, &op);
        c.flush().unwrap();
        holds(&c, &model).unwrap();
        drop(c);
        engine.close().unwrap();
    }
}

#[test]
fn a_flush_or_retrain_that_runs_out_of_space_keeps_the_old_state() {
    for budget in (0..40_000u64).step_by(2_500) {
        let dir = tempfile::tempdir().unwrap();
        let config = vdb_engine::CollectionConfig {
            flush_rows: 100_000,
            ..config()
        };
        let sim = SimFs::new(dir.path()).unwrap();
        let engine = common::open_on(dir.path(), &sim).unwrap();
        let c = engine.create_collection("full", config).unwrap();
        let mut model = Model::new();
        let mut w = Workload::new(11);
        for _ in 0..40 {
            let (version, op) = w.next_op();
            perform(&c, version, &op).unwrap();
            apply(&mut model, version, &op);
        }
        sim.set_fault(Some(Fault::DiskFull { bytes: budget }));
        // The first flush trains the collection: segment, centroid and
        // delete files and the manifest all need space.
        let flushed = c.flush();
        if let Err(e) = &flushed {
            assert!(e.to_string().contains("full"), "budget {budget}: {e}");
            let (version, op) = w.next_op();
            assert!(matches!(
                perform(&c, version, &op),
                Err(Error::Poisoned { .. })
            ));
        }
        holds(&c, &model).unwrap_or_else(|e| panic!("budget {budget}, reads: {e}"));
        drop(c);
        drop(engine);
        let engine = Engine::open(dir.path()).unwrap();
        let c = engine.collection("full").unwrap();
        holds(&c, &model).unwrap_or_else(|e| panic!("budget {budget}, after reopen: {e}"));
        let leaked = leaked_files(&dir.path().join("collections/full"));
        assert!(
            leaked.is_empty(),
            "budget {budget}: files left behind: {leaked:?}"
        );
        c.flush().unwrap();
        assert!(c.stats().generation >= 1);
        holds(&c, &model).unwrap();
        drop(c);
        engine.close().unwrap();
    }
}
