//! Snapshots of collections on a real S3-compatible server (moto or s3s-fs, `s3server/mod.rs`): into
//! the store's own repository (copied by the server, no bytes through the
//! node), into another bucket (uploaded), restored on the same node, on a
//! new node with an empty directory, and on a node without object
//! storage (downloaded); each restore searches exactly like its source.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod data;
mod s3server;

use std::path::Path;
use std::sync::Arc;

use vdb_engine::{Collection, CollectionConfig, Engine, EngineOptions, SearchOptions, SyncMode};
use vdb_objstore::ObjectRoot;

use data::rows;
use s3server::S3Server;

fn open(s3: &S3Server, url: &str, dir: &Path) -> Engine {
    let options = EngineOptions {
        store: Some(Arc::new(s3.root(url))),
        ..EngineOptions::default()
    };
    Engine::open_with(dir, options).unwrap()
}

/// One hit: id, distance, payload.
type Hit = (u64, f32, Option<Vec<u8>>);

/// Hits of a fixed set of queries at nprobe 1 and 2, and the row count.
fn answers(c: &Collection) -> (u64, Vec<Vec<Hit>>) {
    let queries: Vec<Vec<f32>> = rows(9000..9010, 8).into_iter().map(|r| r.vector).collect();
    let mut out = Vec::new();
    for nprobe in [1, 2] {
        let opts = SearchOptions {
            k: 8,
            nprobe: Some(nprobe),
            with_payload: true,
            ..SearchOptions::default()
        };
        for hits in c.search(&queries, opts).unwrap() {
            out.push(
                hits.into_iter()
                    .map(|h| (h.id, h.distance, h.payload))
                    .collect(),
            );
        }
    }
    (c.stats().rows, out)
}

#[test]
fn snapshots_copy_in_the_store_upload_elsewhere_and_restore_anywhere() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    s3.create_bucket("backup");
    let url = "s3://vdb/prod";
    let (a, b, local) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let engine = open(&s3, url, a.path());
    let config = CollectionConfig {
        nlist: 4,
        flush_rows: 1_000_000,
        min_rows_per_list: 10,
        sync: SyncMode::Object,
        ..CollectionConfig::new(8)
    };
    let c = engine.create_collection("docs", config).unwrap();
    c.upsert(rows(0..600, 8)).unwrap();
    c.flush().unwrap();
    assert!(c.stats().generation > 0);
    // Some rows only in the shipped log: the snapshot flushes them.
    c.upsert(rows(600..650, 8)).unwrap();
    c.delete(&[1, 2, 3]).unwrap();
    let repo = engine.default_repository();
    assert_eq!(repo.location(), "s3://vdb/prod/snapshots");
    let first = engine
        .create_snapshot("docs", repo.as_ref(), Some("first"))
        .unwrap();
    assert_eq!(first.added_bytes, first.bytes());
    let want = answers(&c);
    assert_eq!(want.0, 647);

    // Another bucket: uploaded from the node.
    let other = ObjectRoot::repository_at("s3://backup/vdb", &s3.options()).unwrap();
    let offsite = engine
        .create_snapshot("docs", &other, Some("offsite"))
        .unwrap();
    assert_eq!(offsite.bytes(), first.bytes());

    // The collection moves on; its old files leave the store.
    c.upsert(rows(650..700, 8)).unwrap();
    c.compact().unwrap();
    assert_ne!(answers(&c).0, want.0);
    let second = engine
        .create_snapshot("docs", repo.as_ref(), Some("second"))
        .unwrap();
    assert!(second.added_bytes > 0 && second.added_bytes <= second.bytes());

    let back = engine
        .restore_snapshot(repo.as_ref(), "first", "back")
        .unwrap();
    assert_eq!(answers(&back), want);
    back.upsert(rows(5000..5001, 8)).unwrap();
    assert_eq!(back.stats().rows, 648);
    drop((c, back));
    engine.close().unwrap();

    // A new node with an empty directory sees the snapshots and restores.
    let engine = open(&s3, url, b.path());
    let names: Vec<String> = engine
        .list_snapshots(engine.default_repository().as_ref())
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(engine.collection("back").unwrap().stats().rows, 648);
    let again = engine
        .restore_snapshot(engine.default_repository().as_ref(), "first", "again")
        .unwrap();
    assert_eq!(answers(&again), want);
    engine
        .delete_snapshot(engine.default_repository().as_ref(), "first")
        .unwrap();
    let restored = engine.restore_snapshot(engine.default_repository().as_ref(), "second", "third");
    assert_eq!(restored.unwrap().stats().rows, 697);
    drop(again);
    engine.close().unwrap();

    // A node without object storage restores the offsite copy
    // (downloaded); sync mode object becomes always there.
    let engine = Engine::open(local.path()).unwrap();
    let here = engine.restore_snapshot(&other, "offsite", "docs").unwrap();
    assert_eq!(answers(&here), want);
    assert_eq!(here.config().sync, SyncMode::Always);
    drop(here);
    engine.close().unwrap();
    let engine = Engine::open(local.path()).unwrap();
    assert_eq!(answers(&engine.collection("docs").unwrap()), want);
}
