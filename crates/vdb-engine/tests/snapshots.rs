//! Snapshots: a snapshot holds exactly what was acknowledged before it,
//! a restore searches like its source did, later snapshots share the
//! files they have in common, and deleting one keeps what others name.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use std::sync::Arc;

use common::{Model, Workload, apply, config, holds, perform};
use vdb_engine::{Collection, Engine, Error, Repository, SearchOptions};

/// Runs `n` writes of `w` on `c` and the model.
fn write(c: &Collection, w: &mut Workload, model: &mut Model, n: usize) {
    for _ in 0..n {
        let (version, op) = w.next_op();
        perform(c, version, &op).unwrap();
        apply(model, version, &op);
    }
}

/// Every query's hits (id and distance) at the default nprobe.
fn answers(c: &Collection) -> Vec<Vec<(u64, f32)>> {
    let queries: Vec<Vec<f32>> = (0..40)
        .map(|q| {
            (0..common::DIM)
                .map(|j| (q * 7_001 + j * 13) as f32)
                .collect()
        })
        .collect();
    let opts = SearchOptions {
        k: 10,
        ..SearchOptions::default()
    };
    c.search(&queries, opts)
        .unwrap()
        .into_iter()
        .map(|hits| hits.into_iter().map(|h| (h.id, h.distance)).collect())
        .collect()
}

#[test]
fn a_restore_holds_the_snapshot_and_searches_like_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.create_collection("src", config()).unwrap();
    let (mut w, mut model) = (Workload::new(7), Model::new());
    write(&c, &mut w, &mut model, 150);
    assert!(c.stats().generation > 0, "the collection should be trained");
    c.flush().unwrap();
    write(&c, &mut w, &mut model, 3);
    assert!(c.stats().memtable_rows > 0);
    let repo = engine.default_repository();
    // Not flushed yet: the snapshot flushes, so it holds every write.
    let snap = engine
        .create_snapshot("src", repo.as_ref(), Some("one"))
        .unwrap();
    assert_eq!(snap.name, "one");
    assert_eq!(snap.collection, "src");
    assert!(!snap.files.is_empty());
    assert_eq!(
        snap.added_bytes,
        snap.bytes(),
        "the first snapshot copies all"
    );
    let at_snapshot = model.clone();
    let source_answers = answers(&c);

    let copy = engine
        .restore_snapshot(repo.as_ref(), "one", "copy")
        .unwrap();
    holds(&copy, &at_snapshot).unwrap();
    assert_eq!(answers(&copy), source_answers);
    assert_eq!(copy.stats().generation, c.stats().generation);

    // The source moves on (flushes, retrains, compactions remove the files
    // the snapshot named); the snapshot and its restore do not.
    write(&c, &mut w, &mut model, 300);
    c.compact().unwrap();
    holds(&c, &model).unwrap();
    holds(&copy, &at_snapshot).unwrap();
    let again = engine
        .restore_snapshot(repo.as_ref(), "one", "again")
        .unwrap();
    holds(&again, &at_snapshot).unwrap();
    assert_eq!(answers(&again), source_answers);

    // A restore is a collection of its own: it takes writes and keeps
    // them across a restart.
    let (mut w2, mut m2) = (Workload::new(8), at_snapshot.clone());
    write(&copy, &mut w2, &mut m2, 50);
    drop((c, copy, again));
    engine.close().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    holds(&engine.collection("copy").unwrap(), &m2).unwrap();
    holds(&engine.collection("again").unwrap(), &at_snapshot).unwrap();
    holds(&engine.collection("src").unwrap(), &model).unwrap();
}

#[test]
fn later_snapshots_share_files_and_deletes_keep_what_others_name() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let mut cfg = config();
    // No compaction: the second snapshot shares the first one's segments.
    cfg.compaction.max_segments = 1_000;
    cfg.compaction.max_hidden = 0.0;
    let c = engine.create_collection("src", cfg).unwrap();
    let (mut w, mut model) = (Workload::new(11), Model::new());
    write(&c, &mut w, &mut model, 100);
    c.flush().unwrap();
    let generation = c.stats().generation;
    // Elsewhere than the data directory: a repository given by path.
    let backups = tempfile::tempdir().unwrap();
    let repo: Arc<dyn Repository> = Arc::new(vdb_engine::LocalRepository::new(
        vdb_fs::os(),
        &backups.path().join("repo"),
    ));
    let first = engine
        .create_snapshot("src", repo.as_ref(), Some("first"))
        .unwrap();
    write(&c, &mut w, &mut model, 10);
    let second = engine
        .create_snapshot("src", repo.as_ref(), Some("second"))
        .unwrap();
    assert_eq!(c.stats().generation, generation, "no retraining in between");
    assert!(
        second.added_bytes < second.bytes() && second.added_bytes > 0,
        "the second snapshot adds {} of its {} bytes",
        second.added_bytes,
        second.bytes()
    );
    let names: Vec<String> = engine
        .list_snapshots(repo.as_ref())
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["first", "second"]);

    engine.delete_snapshot(repo.as_ref(), "first").unwrap();
    let names: Vec<String> = engine
        .list_snapshots(repo.as_ref())
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["second"]);
    // Files only the first named are gone; the shared ones stay.
    let stored = |s: &vdb_engine::SnapshotInfo| {
        s.files
            .iter()
            .filter(|f| {
                std::fs::read_dir(backups.path().join("repo/files"))
                    .unwrap()
                    .flatten()
                    .any(|d| d.path().join(&f.name).exists())
            })
            .count()
    };
    assert_eq!(stored(&second), second.files.len());
    let only_first = first
        .files
        .iter()
        .filter(|f| !second.files.contains(f))
        .count();
    assert_eq!(stored(&first), first.files.len() - only_first);
    let restored = engine
        .restore_snapshot(repo.as_ref(), "second", "back")
        .unwrap();
    holds(&restored, &model).unwrap();
    assert!(matches!(
        engine.restore_snapshot(repo.as_ref(), "first", "gone"),
        Err(Error::SnapshotNotFound { .. })
    ));
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.create_collection("src", config()).unwrap();
    let (mut w, mut model) = (Workload::new(3), Model::new());
    write(&c, &mut w, &mut model, 30);
    let repo = engine.default_repository();
    engine
        .create_snapshot("src", repo.as_ref(), Some("s"))
        .unwrap();

    let e = engine
        .create_snapshot("src", repo.as_ref(), Some("s"))
        .unwrap_err();
    assert!(matches!(e, Error::SnapshotExists { .. }), "{e}");
    let e = engine
        .create_snapshot("src", repo.as_ref(), Some("a/b"))
        .unwrap_err();
    assert_eq!(e.field(), Some("snapshot"), "{e}");
    let e = engine
        .create_snapshot("nope", repo.as_ref(), None)
        .unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    let e = engine
        .restore_snapshot(repo.as_ref(), "missing", "x")
        .unwrap_err();
    assert!(matches!(e, Error::SnapshotNotFound { .. }), "{e}");
    assert!(e.to_string().contains("missing"), "{e}");
    let e = engine
        .restore_snapshot(repo.as_ref(), "s", "src")
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_)), "{e}");
    let e = engine
        .restore_snapshot(repo.as_ref(), "s", "../x")
        .unwrap_err();
    assert_eq!(e.field(), Some("name"), "{e}");
    let e = engine
        .delete_snapshot(repo.as_ref(), "missing")
        .unwrap_err();
    assert!(matches!(e, Error::SnapshotNotFound { .. }), "{e}");
    assert_eq!(engine.list_collections(), ["src"]);
    holds(&c, &model).unwrap();

    // A damaged descriptor is named, not trusted.
    let descriptor = dir.path().join("snapshots/s.snapshot");
    let mut bytes = std::fs::read(&descriptor).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&descriptor, bytes).unwrap();
    let e = engine
        .restore_snapshot(repo.as_ref(), "s", "x")
        .unwrap_err();
    assert!(e.is_corruption(), "{e}");
    assert!(e.to_string().contains("s.snapshot"), "{e}");
    assert_eq!(engine.list_collections(), ["src"]);

    // A default name is the collection's and the time.
    let auto = engine.create_snapshot("src", repo.as_ref(), None).unwrap();
    assert!(
        auto.name.starts_with("src-") && auto.name.ends_with('Z'),
        "{}",
        auto.name
    );
}

/// Opens `dir` (through `sim` if given) and its collection `src`.
fn open(dir: &std::path::Path, sim: Option<&vdb_fs::SimFs>) -> Engine {
    match sim {
        Some(sim) => Engine::open_with(
            dir,
            vdb_engine::EngineOptions {
                fs: sim.shared(),
                ..Default::default()
            },
        )
        .unwrap(),
        None => Engine::open(dir).unwrap(),
    }
}

#[test]
fn a_crash_at_any_step_of_a_snapshot_or_restore_leaves_it_whole_or_absent() {
    use vdb_fs::{Fault, SimFs};
    let work = tempfile::tempdir().unwrap();
    let origin = work.path().join("base");
    let (mut w, mut model) = (Workload::new(5), Model::new());
    {
        let engine = Engine::open(&origin).unwrap();
        let c = engine.create_collection("src", config()).unwrap();
        write(&c, &mut w, &mut model, 60);
        // Dropped without close: the memtable is in the log only.
    }
    for restore in [false, true] {
        let mut steps = 0;
        for power_cut in [false, true] {
            for n in 0.. {
                let dir = work.path().join(format!("{restore}-{power_cut}-{n}"));
                common::copy_tree(&origin, &dir);
                if restore {
                    let engine = Engine::open(&dir).unwrap();
                    let repo = engine.default_repository();
                    engine
                        .create_snapshot("src", repo.as_ref(), Some("s"))
                        .unwrap();
                    engine.close().unwrap();
                }
                let sim = SimFs::new(&dir).unwrap();
                let engine = open(&dir, Some(&sim));
                let repo = engine.default_repository();
                sim.set_fault(Some(Fault::CrashAt(n)));
                let result = if restore {
                    engine
                        .restore_snapshot(repo.as_ref(), "s", "copy")
                        .map(|_| ())
                } else {
                    engine
                        .create_snapshot("src", repo.as_ref(), Some("s"))
                        .map(|_| ())
                };
                if !sim.fault_hit() {
                    result.unwrap();
                    steps = n;
                    break;
                }
                drop(engine);
                if power_cut {
                    sim.power_loss().unwrap();
                }
                let what = format!("restore {restore}, crash at step {n}, power cut {power_cut}");
                let engine = open(&dir, None);
                let repo = engine.default_repository();
                holds(&engine.collection("src").unwrap(), &model)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let listed = engine.list_snapshots(repo.as_ref());
                let listed = listed.unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(listed.len() <= 1, "{what}: {listed:?}");
                if listed.is_empty() {
                    assert!(!restore, "{what}: the snapshot restored from is gone");
                    engine
                        .create_snapshot("src", repo.as_ref(), Some("s"))
                        .unwrap_or_else(|e| panic!("{what}, snapshot again: {e}"));
                }
                match engine.collection("copy") {
                    Ok(copy) => {
                        assert!(restore, "{what}");
                        holds(&copy, &model).unwrap_or_else(|e| panic!("{what}: {e}"));
                    }
                    Err(_) => {
                        let copy = engine
                            .restore_snapshot(repo.as_ref(), "s", "copy")
                            .unwrap_or_else(|e| panic!("{what}, restore again: {e}"));
                        holds(&copy, &model).unwrap_or_else(|e| panic!("{what}: {e}"));
                    }
                }
                engine.close().unwrap();
                std::fs::remove_dir_all(&dir).unwrap();
            }
        }
        assert!(
            steps >= 4,
            "restore {restore}: only {steps} disk operations"
        );
    }
}
