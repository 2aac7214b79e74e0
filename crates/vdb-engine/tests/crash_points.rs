//! Guards the commit protocol of flush, compaction, retraining and local
//! rebalancing: a fault
//! is injected at every disk operation of each (every write, fsync, rename,
//! removal and directory fsync, counted by the simulated disk), the process
//! "dies" there, and the collection is reopened — once as after `kill -9`
//! (what reached the OS stays), once as after a power cut (only what was
//! fsynced stays). Each time the collection must hold exactly the rows it
//! held before, be in the old or the new state (generation and segments),
//! keep no file its manifest does not name, and work on.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Model, Workload, apply, config, copy_tree, holds, leaked_files, perform};
use vdb_engine::{Collection, Engine, IndexType};
use vdb_fs::{Fault, SimFs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Flush,
    Compact,
    Retrain,
    Rebalance,
    /// With segments capped at 10 rows' worth (flushes of 10 rows): the
    /// rewrites are split into pieces, a compaction in several commits.
    CompactInPieces,
    RetrainInPieces,
    /// A retraining on a disk reporting too little room for a full one:
    /// in bounded steps, each a commit.
    RetrainInSteps,
}

fn run(c: &Collection, task: Task) -> vdb_engine::Result<()> {
    match task {
        Task::Flush => c.flush(),
        Task::Compact | Task::CompactInPieces => c.compact().map(|_| ()),
        Task::Retrain | Task::RetrainInPieces => c.retrain(Some(5)),
        Task::RetrainInSteps => c.retrain(None),
        Task::Rebalance => c.rebalance().map(|_| ()),
    }
}

/// Settings a task runs with, changed before any fault.
fn prepare(c: &Collection, sim: &SimFs, task: Task) {
    if task == Task::RetrainInSteps {
        c.alter(vdb_engine::Alter {
            flush_rows: Some(10),
            ..Default::default()
        })
        .unwrap();
        // In pieces first (a flush's worth each); then a disk with room
        // for any one piece's merge or step, not for a second copy.
        c.compact().unwrap();
        sim.set_available(Some(c.stats().segment_bytes));
    }
    if matches!(task, Task::CompactInPieces | Task::RetrainInPieces) {
        c.alter(vdb_engine::Alter {
            flush_rows: Some(10),
            compaction: Some(vdb_engine::CompactionPolicy {
                max_segment_fraction: 0.01,
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap();
    }
}

/// A collection with segments, delete files and a memtable, and its model.
fn base(dir: &Path, index_type: IndexType) -> Model {
    let engine = Engine::open(dir).unwrap();
    let config = vdb_engine::CollectionConfig {
        flush_rows: 100_000,
        // Only the task under test retrains.
        retrain: vdb_engine::RetrainPolicy {
            growth: 0.0,
            error_drift: 0.0,
            imbalance: 0.0,
            ..Default::default()
        },
        nlist: 8,
        index_type,
        ..config()
    };
    let c = engine.create_collection("points", config).unwrap();
    let mut model = Model::new();
    let mut w = Workload::new(7);
    for i in 0..60 {
        let (version, op) = w.next_op();
        perform(&c, version, &op).unwrap();
        apply(&mut model, version, &op);
        if i == 30 || i == 45 {
            c.flush().unwrap();
        }
    }
    // A third of the line emptied: its lists shrink, so the lists are
    // more uneven than at training and a rebalancing splits some.
    let (version, _) = w.next_op();
    let emptied = common::Op::Delete((0..100).collect());
    perform(&c, version, &emptied).unwrap();
    apply(&mut model, version, &emptied);
    let s = c.stats();
    assert!(
        s.memtable_rows > 0 && s.segments >= 1 && s.deleted_rows > 0,
        "{s:?}"
    );
    drop(c);
    // Dropping without close keeps the memtable in the WAL only.
    drop(engine);
    model
}

fn open(dir: &Path, fs: Option<&SimFs>) -> (Engine, Arc<Collection>) {
    let engine = match fs {
        Some(sim) => common::open_on(dir, sim),
        None => Engine::open(dir),
    }
    .unwrap();
    let c = engine.collection("points").unwrap();
    (engine, c)
}

/// What tells the old state from the new: generation, segments, and how
/// much of the log is in segments.
fn shape(c: &Collection) -> (u64, usize, u64) {
    let s = c.stats();
    (s.generation, s.segments, s.flushed_lsn)
}

#[test]
fn a_crash_at_any_step_of_maintenance_leaves_the_old_or_the_new_state() {
    let all = [
        Task::Flush,
        Task::Compact,
        Task::Retrain,
        Task::Rebalance,
        Task::CompactInPieces,
        Task::RetrainInPieces,
        Task::RetrainInSteps,
    ];
    crash_at_every_step(IndexType::IvfFlat, &all);
}

/// The same for a collection whose segments keep RaBitQ codes: every
/// rewrite writes them, and no crash leaves a segment without them.
#[test]
fn a_crash_at_any_step_of_maintenance_of_a_coded_collection_leaves_the_old_or_the_new_state() {
    crash_at_every_step(
        IndexType::IvfRabitq,
        &[Task::Flush, Task::Compact, Task::Retrain, Task::Rebalance],
    );
}

fn crash_at_every_step(index_type: IndexType, tasks: &[Task]) {
    let work = tempfile::tempdir().unwrap();
    let origin = work.path().join("base");
    let model = base(&origin, index_type);
    for &task in tasks {
        // The old and the new shape, from a run without faults.
        let clean = work.path().join(format!("{task:?}-clean"));
        copy_tree(&origin, &clean);
        let sim = SimFs::new(&clean).unwrap();
        let (engine, c) = open(&clean, Some(&sim));
        prepare(&c, &sim, task);
        let old = shape(&c);
        run(&c, task).unwrap();
        let new = shape(&c);
        if matches!(task, Task::RetrainInPieces | Task::CompactInPieces) {
            assert!(new.1 >= 3, "{task:?} writes pieces: {new:?}");
        }
        if task == Task::RetrainInSteps {
            assert!(
                new.0 >= old.0 + 3,
                "{task:?} takes steps: {old:?} -> {new:?}"
            );
        }
        assert_ne!(old, new, "{task:?} changes the collection");
        // The base has many replaced rows, so a flush is followed by the
        // compaction policy's rewrite: two commits, with a valid state
        // between them.
        let mut valid = vec![old, new];
        if task == Task::Flush {
            valid.push((old.0, old.1 + 1, new.2));
        }
        // A rebalancing writes one segment, then the compaction policy
        // merges the hidden rows away: two commits as well.
        if task == Task::Rebalance {
            valid.push((new.0, old.1 + 1, new.2));
        }
        drop(c);
        engine.close().unwrap();

        let mut steps = 0;
        for power_cut in [false, true] {
            for n in 0.. {
                let dir = work.path().join(format!("{task:?}-{power_cut}-{n}"));
                copy_tree(&origin, &dir);
                let sim = SimFs::new(&dir).unwrap();
                let (engine, c) = open(&dir, Some(&sim));
                prepare(&c, &sim, task);
                sim.set_fault(Some(Fault::CrashAt(n)));
                let result = run(&c, task);
                if !sim.fault_hit() {
                    result.unwrap();
                    steps = n;
                    break;
                }
                // A failure after the commit (removing replaced files) is
                // not the task's failure: those files are removed at open.
                if result.is_ok() {
                    assert_eq!(
                        shape(&c),
                        new,
                        "{task:?}: step {n} failed, yet the task says it is done"
                    );
                }
                drop(c);
                drop(engine);
                if power_cut {
                    sim.power_loss().unwrap();
                }

                let what = format!("{task:?}, crash at step {n}, power cut {power_cut}");
                let (engine, c) = open(&dir, None);
                holds(&c, &model).unwrap_or_else(|e| panic!("{what}: {e}"));
                let now = shape(&c);
                // A compaction in pieces commits after each piece: any
                // number of segments, the log flushed or not yet.
                let between = (task == Task::CompactInPieces && now.0 == old.0
                    || task == Task::RetrainInSteps && (old.0..=new.0).contains(&now.0))
                    && [old.2, new.2].contains(&now.2);
                assert!(
                    valid.contains(&now) || between,
                    "{what}: shape {now:?}, none of the committed states {valid:?}"
                );
                let leaked = leaked_files(&dir.join("collections/points"));
                assert!(leaked.is_empty(), "{what}: files left behind: {leaked:?}");
                if index_type == IndexType::IvfRabitq {
                    for e in std::fs::read_dir(dir.join("collections/points")).unwrap() {
                        let path = e.unwrap().path();
                        if path.extension().is_some_and(|x| x == "seg") {
                            let seg = vdb_format::SegmentReader::open(&path).unwrap();
                            assert_eq!(
                                seg.codes_seed(),
                                Some(vdb_engine::RABITQ_SEED),
                                "{what}: {} without codes",
                                path.display()
                            );
                        }
                    }
                }
                // And it works on: the task succeeds and a write lands.
                run(&c, task).unwrap();
                let mut more = model.clone();
                let (version, op) = Workload::new(99).next_op();
                perform(&c, version, &op).unwrap();
                apply(&mut more, version, &op);
                holds(&c, &more)
                    .unwrap_or_else(|e| panic!("{what}, then the task and a write: {e}"));
                drop(c);
                engine.close().unwrap();
                std::fs::remove_dir_all(&dir).unwrap();
            }
        }
        assert!(steps >= 6, "{task:?} has only {steps} disk operations");
    }
}
