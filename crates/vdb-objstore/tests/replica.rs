//! Read replicas on a real S3-compatible server (moto or s3s-fs, `s3server/mod.rs`): a replica engine
//! follows a writer's flushes, compactions, trainings and settings (and,
//! with `sync=object`, its writes before any flush), follows a new writer
//! after a takeover, picks up created and dropped collections, and refuses
//! every write.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod data;
mod s3server;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vdb_engine::{
    Alter, Collection, CollectionConfig, Engine, EngineOptions, Error, SearchOptions, StorageRole,
    SyncMode,
};

use data::rows;
use s3server::S3Server;

fn config(sync: SyncMode) -> CollectionConfig {
    CollectionConfig {
        nlist: 4,
        flush_rows: 1_000_000,
        min_rows_per_list: 10,
        sync,
        ..CollectionConfig::new(8)
    }
}

fn engine(s3: &S3Server, url: &str, dir: &Path, replica: bool) -> Result<Engine, Error> {
    Engine::open_with(
        dir,
        EngineOptions {
            store: Some(Arc::new(s3.root(url))),
            replica,
            follow_interval: Duration::from_millis(50),
            ..EngineOptions::default()
        },
    )
}

/// Waits (at most a minute) until `done` holds, else fails naming `what`.
fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "the replica never {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The replica's collection `name`, once it serves `rows` rows and the
/// writer's manifest version.
fn converged(replica: &Engine, writer: &Collection, rows: u64) -> Arc<Collection> {
    let want = writer.storage().manifest_version;
    let mut got = None;
    until(&format!("reached {rows} rows at manifest {want}"), || {
        got = replica.collection(writer.name()).ok();
        got.as_ref().is_some_and(|c| {
            let s = c.storage();
            c.stats().rows == rows && s.manifest_version == want && s.follow_error.is_none()
        })
    });
    got.unwrap()
}

fn queries() -> Vec<Vec<f32>> {
    rows(5000..5012, 8).into_iter().map(|r| r.vector).collect()
}

/// The writer's and the replica's answers are the same, payloads and
/// vectors included, at every nprobe.
fn same_answers(writer: &Collection, replica: &Collection) {
    for nprobe in [1, 2, usize::MAX] {
        let opts = SearchOptions {
            k: 7,
            nprobe: Some(nprobe),
            with_payload: true,
            with_vectors: true,
            ..Default::default()
        };
        assert_eq!(
            writer.search(&queries(), opts.clone()).unwrap(),
            replica.search(&queries(), opts).unwrap(),
            "nprobe {nprobe}"
        );
    }
    let (w, r) = (writer.stats(), replica.stats());
    assert_eq!(
        (w.rows, w.generation, w.lists),
        (r.rows, r.generation, r.lists)
    );
}

fn assert_read_only(e: Error) {
    assert!(matches!(e, Error::ReadOnly { .. }), "{e}");
    assert!(e.to_string().contains("read replica"), "{e}");
}

#[test]
fn a_replica_follows_flushes_compactions_trainings_and_settings() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    let url = "s3://vdb/r";
    let (a, r) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let writer = engine(&s3, url, a.path(), false).unwrap();
    let w = writer
        .create_collection("docs", config(SyncMode::Always))
        .unwrap();
    w.upsert(rows(0..300, 8)).unwrap();
    w.flush().unwrap();

    let replica = engine(&s3, url, r.path(), true).unwrap();
    assert!(replica.is_replica());
    let c = converged(&replica, &w, 300);
    same_answers(&w, &c);
    let info = c.storage();
    assert_eq!(info.role, StorageRole::Replica);
    assert_eq!(info.writer, w.storage().writer);
    assert_ne!(info.writer, 0);
    assert!(info.behind.is_some());
    assert_eq!(w.storage().role, StorageRole::Writer);

    // Training, deletes, compaction: each a new manifest (and new files).
    w.retrain(None).unwrap();
    let c = converged(&replica, &w, 300);
    assert!(c.stats().generation > 0);
    same_answers(&w, &c);
    w.upsert(rows(300..400, 8)).unwrap();
    w.delete(&[1, 2, 3, 350]).unwrap();
    w.flush().unwrap();
    let c = converged(&replica, &w, 396);
    same_answers(&w, &c);
    assert!(w.compact().unwrap());
    let c = converged(&replica, &w, 396);
    same_answers(&w, &c);
    assert_eq!(c.get(350).unwrap(), None);
    assert_eq!(c.get(351).unwrap(), w.get(351).unwrap());
    // Only the files the manifest names stay in the replica's cache.
    let cached = std::fs::read_dir(r.path().join("collections/docs"))
        .unwrap()
        .count();
    assert_eq!(cached, c.stats().segments + 1, "segments and centroids");

    // Settings follow too.
    w.alter(Alter {
        nprobe: Some(3),
        ..Alter::default()
    })
    .unwrap();
    until("took the writer's nprobe", || c.default_nprobe() == 3);

    // With a local log, writes the writer has not flushed are not in the
    // store, so not on the replica.
    w.upsert(rows(400..410, 8)).unwrap();
    let version = w.storage().manifest_version;
    assert_eq!(c.storage().manifest_version, version);
    assert_eq!(c.stats().rows, 396);

    // The replica writes nothing, and says who does.
    assert_read_only(c.upsert(rows(900..901, 8)).unwrap_err());
    assert_read_only(c.delete(&[5]).unwrap_err());
    assert_read_only(c.flush().unwrap_err());
    assert_read_only(c.compact().unwrap_err());
    assert_read_only(c.retrain(None).unwrap_err());
    assert_read_only(c.alter(Alter::default()).unwrap_err());
    let e = c.upsert(rows(900..901, 8)).unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("{:016x}", w.storage().writer)),
        "{e}"
    );
    assert_read_only(
        replica
            .create_collection("new", config(SyncMode::Always))
            .unwrap_err(),
    );
    assert_read_only(replica.drop_collection("docs").unwrap_err());
    // Closing a replica flushes nothing and the store is unchanged.
    replica.close().unwrap();
    assert_eq!(w.storage().manifest_version, version);
    drop(w);
    writer.close().unwrap();
}

#[test]
fn with_sync_object_a_replica_follows_writes_before_a_flush_and_a_new_writer() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    let url = "s3://vdb";
    let (a, b, r) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let writer = engine(&s3, url, a.path(), false).unwrap();
    // Too few rows to train: the writer's manifest changes only when the
    // test flushes (an untrained collection flushes as soon as it holds
    // the rows its first training needs).
    let untrained = CollectionConfig {
        min_rows_per_list: 100,
        ..config(SyncMode::Object)
    };
    let w = writer.create_collection("docs", untrained).unwrap();
    let replica = engine(&s3, url, r.path(), true).unwrap();
    w.upsert(rows(0..50, 8)).unwrap();
    w.delete(&[7]).unwrap();
    let c = converged(&replica, &w, 49);
    same_answers(&w, &c);
    assert_eq!(c.stats().last_lsn, w.stats().last_lsn);
    // A flush trims the shipped log; the replica moves to the new manifest.
    w.flush().unwrap();
    w.upsert(rows(50..60, 8)).unwrap();
    let c = converged(&replica, &w, 59);
    same_answers(&w, &c);

    // The writer's node is lost; another takes over and writes on.
    let old_writer = w.storage().writer;
    drop(w);
    drop(writer);
    let writer = engine(&s3, url, b.path(), false).unwrap();
    let w = writer.collection("docs").unwrap();
    assert_ne!(w.storage().writer, old_writer);
    w.upsert(rows(60..70, 8)).unwrap();
    let c = converged(&replica, &w, 69);
    until("named the new writer", || {
        c.storage().writer == w.storage().writer
    });
    same_answers(&w, &c);
    drop(w);
    writer.close().unwrap();
}

#[test]
fn a_replica_picks_up_created_dropped_and_recreated_collections() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    let url = "s3://vdb/p";
    let (a, r) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let writer = engine(&s3, url, a.path(), false).unwrap();
    let replica = engine(&s3, url, r.path(), true).unwrap();
    assert!(replica.list_collections().is_empty());

    let w = writer
        .create_collection("a", config(SyncMode::Always))
        .unwrap();
    w.upsert(rows(0..40, 8)).unwrap();
    w.flush().unwrap();
    let old = converged(&replica, &w, 40);
    drop(w);
    writer.drop_collection("a").unwrap();
    until("dropped a", || replica.collection("a").is_err());
    // A handle held across the drop keeps answering from its snapshot.
    assert_eq!(
        old.search(&queries(), SearchOptions::default())
            .unwrap()
            .len(),
        12
    );

    // Created again under the same name, with another dimension: the
    // replica serves the new one, not files cached for the old.
    let cfg = CollectionConfig {
        dim: 4,
        ..config(SyncMode::Always)
    };
    let w = writer.create_collection("a", cfg).unwrap();
    w.upsert(rows(0..20, 4)).unwrap();
    w.flush().unwrap();
    let c = converged(&replica, &w, 20);
    assert_eq!(c.config().dim, 4);
    assert_eq!(c.get(3).unwrap(), w.get(3).unwrap());
    drop((w, c, old));
    replica.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn a_replica_needs_an_object_store() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open_with(
        dir.path(),
        EngineOptions {
            replica: true,
            ..EngineOptions::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("object storage"), "{e}");
}
