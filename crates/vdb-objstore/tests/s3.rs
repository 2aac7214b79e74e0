//! Collections on a real S3-compatible server (moto or s3s-fs, `s3server/mod.rs`): a collection lives in
//! the bucket and opens on a node whose data directory is empty; a second
//! writer fences the first; a restart replays the node's own log and sets
//! aside a log a newer writer has overtaken; create and drop across nodes;
//! files larger than one upload part; an unreachable store.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod data;
mod s3server;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};
use vdb_engine::{CollectionConfig, Engine, EngineOptions, Error, SearchOptions};

use data::rows;
use s3server::S3Server;

fn config() -> CollectionConfig {
    CollectionConfig {
        nlist: 4,
        flush_rows: 1_000_000,
        min_rows_per_list: 10,
        ..CollectionConfig::new(8)
    }
}

/// An engine on `dir` whose collections live at `url`.
fn open(s3: &S3Server, url: &str, dir: &Path) -> Result<Engine, Error> {
    let options = EngineOptions {
        store: Some(Arc::new(s3.root(url))),
        ..EngineOptions::default()
    };
    Engine::open_with(dir, options)
}

/// A direct client of `bucket`, to look at and plant objects.
struct Bucket {
    store: object_store::aws::AmazonS3,
    rt: tokio::runtime::Runtime,
}

impl Bucket {
    fn new(s3: &S3Server, bucket: &str) -> Bucket {
        // The client's TLS needs a provider even for plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_endpoint(s3.endpoint())
            .with_region("us-east-1")
            .with_allow_http(true)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Bucket { store, rt }
    }

    /// The names of the objects under `prefix`.
    fn list(&self, prefix: &str) -> Vec<String> {
        let prefix = object_store::path::Path::from(prefix);
        let mut names: Vec<String> = self.rt.block_on(async {
            self.store
                .list(Some(&prefix))
                .map(|m| m.unwrap().location.to_string())
                .collect()
                .await
        });
        names.sort();
        names
    }

    fn put(&self, name: &str, bytes: &[u8]) {
        let at = object_store::path::Path::from(name);
        let payload = object_store::PutPayload::from(bytes.to_vec());
        self.rt.block_on(self.store.put(&at, payload)).unwrap();
    }
}

fn objects(s3: &S3Server, bucket: &str, prefix: &str) -> Vec<String> {
    Bucket::new(s3, bucket).list(prefix)
}

fn ids_of(hits: &[vdb_engine::Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.id).collect()
}

#[test]
fn a_collection_lives_in_the_bucket_and_opens_on_an_empty_node() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    let url = "s3://vdb/prod";
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    let engine = open(&s3, url, a.path()).unwrap();
    let c = engine.create_collection("docs", config()).unwrap();
    c.upsert(rows(0..200, 8)).unwrap();
    c.flush().unwrap();
    c.retrain(None).unwrap();
    c.upsert(rows(200..300, 8)).unwrap();
    c.delete(&[3, 4, 5]).unwrap();
    c.flush().unwrap();
    assert!(c.compact().unwrap());
    c.upsert(rows(300..310, 8)).unwrap();
    // (This flush retrains: the collection grew by half since training.)
    c.flush().unwrap();
    let queries: Vec<Vec<f32>> = rows(1000..1010, 8).into_iter().map(|r| r.vector).collect();
    let opts = SearchOptions {
        k: 5,
        nprobe: Some(2),
        ..SearchOptions::default()
    };
    let want: Vec<Vec<u64>> = c
        .search(&queries, opts.clone())
        .unwrap()
        .iter()
        .map(|h| ids_of(h))
        .collect();
    let stats = c.stats();
    drop(c);
    engine.close().unwrap();

    // Every file and the manifests are objects; the manifest names the
    // files the compaction left, and nothing else is there.
    let names = objects(&s3, "vdb", "prod/collections/docs");
    let manifests: Vec<&String> = names.iter().filter(|n| n.contains("/manifest/")).collect();
    let files: Vec<&String> = names.iter().filter(|n| n.contains("/files/")).collect();
    assert!(!manifests.is_empty() && manifests.len() <= 9, "{names:?}");
    assert!(
        files.iter().any(|f| f.ends_with(".cen")) && files.iter().any(|f| f.ends_with(".seg")),
        "{names:?}"
    );
    assert_eq!(manifests.len() + files.len(), names.len(), "{names:?}");

    // A node with an empty data directory finds the collection and every
    // row, and answers the same.
    let engine = open(&s3, url, b.path()).unwrap();
    assert_eq!(engine.list_collections(), vec!["docs".to_string()]);
    let c = engine.collection("docs").unwrap();
    let got = c.stats();
    assert_eq!(got.rows, stats.rows);
    assert_eq!(got.rows, 307);
    assert_eq!(got.generation, stats.generation);
    assert_eq!(got.lists, 4);
    let answered: Vec<Vec<u64>> = c
        .search(&queries, opts)
        .unwrap()
        .iter()
        .map(|h| ids_of(h))
        .collect();
    assert_eq!(answered, want);
    for r in rows(0..310, 8) {
        let got = c.get(r.id).unwrap();
        if (3..=5).contains(&r.id) {
            assert!(got.is_none(), "{} was deleted", r.id);
        } else {
            assert_eq!(got.as_ref(), Some(&r), "row {}", r.id);
        }
    }
    // The segments it maps are cached (in part) in its directory.
    let cached = std::fs::read_dir(b.path().join("collections/docs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg.part"))
        .count();
    assert!(cached >= 1);
    drop(c);
    engine.close().unwrap();
}

#[test]
fn a_second_writer_fences_the_first() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    let url = "s3://vdb";
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    let first = open(&s3, url, a.path()).unwrap();
    let c1 = first.create_collection("docs", config()).unwrap();
    c1.upsert(rows(0..50, 8)).unwrap();
    c1.flush().unwrap();

    // Opening the prefix elsewhere takes the collection over.
    let second = open(&s3, url, b.path()).unwrap();
    let c2 = second.collection("docs").unwrap();
    assert_eq!(c2.stats().rows, 50);

    // The first writer still acknowledges writes to its log, but cannot
    // publish them: its flush is refused as fenced and it stops writing.
    c1.upsert(rows(50..60, 8)).unwrap();
    let e = c1.flush().unwrap_err();
    assert!(e.is_fenced(), "{e}");
    assert!(e.to_string().contains("fenced"), "{e}");
    let e = c1.upsert(rows(60..61, 8)).unwrap_err();
    assert!(e.is_fenced(), "{e}");
    assert!(matches!(e, Error::Poisoned { .. }), "{e}");
    // The advice is not to restart it (that would take the collection back).
    assert!(e.to_string().contains("another node writes it now"), "{e}");

    // The second writer carries on and never sees the fenced writes.
    c2.upsert(rows(100..120, 8)).unwrap();
    c2.flush().unwrap();
    assert_eq!(c2.stats().rows, 70);
    assert!(c2.get(55).unwrap().is_none());
    drop((c1, c2));
    drop(first);
    second.close().unwrap();

    let c = tempfile::tempdir().unwrap();
    let third = open(&s3, url, c.path()).unwrap();
    assert_eq!(third.collection("docs").unwrap().stats().rows, 70);
}

#[test]
fn a_restart_replays_its_own_log_and_sets_aside_an_overtaken_one() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    let url = "s3://vdb/p";
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    // Node A flushes 40 rows, logs 10 more and stops without flushing.
    let engine = open(&s3, url, a.path()).unwrap();
    let c = engine.create_collection("docs", config()).unwrap();
    c.upsert(rows(0..40, 8)).unwrap();
    c.flush().unwrap();
    c.upsert(rows(40..50, 8)).unwrap();
    drop(c);
    drop(engine);

    // A restart of A replays its log: all 50.
    let engine = open(&s3, url, a.path()).unwrap();
    assert_eq!(engine.collection("docs").unwrap().stats().rows, 50);
    drop(engine);

    // Node B takes over without A's log: it has what was flushed. Its own
    // log continues the numbering after the files, so a restart of B
    // replays what B logged.
    let engine = open(&s3, url, b.path()).unwrap();
    let c = engine.collection("docs").unwrap();
    assert_eq!(c.stats().rows, 40);
    c.upsert(rows(100..105, 8)).unwrap();
    drop(c);
    drop(engine);
    let engine = open(&s3, url, b.path()).unwrap();
    let c = engine.collection("docs").unwrap();
    assert_eq!(c.stats().rows, 45);
    assert!(c.get(104).unwrap().is_some());
    drop(c);
    engine.close().unwrap();

    // A comes back: B published since, so A's log belongs to a history the
    // store has left; it is set aside, not replayed.
    let engine = open(&s3, url, a.path()).unwrap();
    let c = engine.collection("docs").unwrap();
    assert_eq!(c.stats().rows, 45);
    assert!(c.get(45).unwrap().is_none());
    assert!(c.get(104).unwrap().is_some());
    let aside: Vec<String> = std::fs::read_dir(a.path().join("collections/docs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("wal.stale-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    // And A writes again.
    c.upsert(rows(200..201, 8)).unwrap();
    c.flush().unwrap();
    assert_eq!(c.stats().rows, 46);
}

#[test]
fn sweeping_spares_what_a_later_writer_may_still_publish() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    let url = "s3://vdb";
    let bucket = Bucket::new(&s3, "vdb");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let engine = open(&s3, url, a.path()).unwrap();
    let c = engine.create_collection("docs", config()).unwrap();
    c.upsert(rows(0..20, 8)).unwrap();
    c.flush().unwrap();
    drop(c);
    engine.close().unwrap();

    // Files no manifest names: one from a writer before the next claim (a
    // crash between upload and publication), one numbered from far above
    // (a later writer that claimed since and has not published yet).
    let dir = "collections/docs/files";
    let before = format!("{dir}/seg-{:016x}.seg", 7);
    let after = format!("{dir}/seg-{:016x}.seg", 1u64 << 60);
    bucket.put(&before, b"left by a crash");
    bucket.put(&after, b"being written");

    let engine = open(&s3, url, b.path()).unwrap();
    assert_eq!(engine.collection("docs").unwrap().stats().rows, 20);
    let left = bucket.list(dir);
    assert!(!left.contains(&before), "{left:?}");
    assert!(left.contains(&after), "{left:?}");
}

#[test]
fn create_and_drop_are_seen_across_nodes() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    let url = "s3://vdb";
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    let one = open(&s3, url, a.path()).unwrap();
    let two = open(&s3, url, b.path()).unwrap();
    one.create_collection("docs", config()).unwrap();
    // The name is taken in the bucket, though node two had not seen it.
    let e = two.create_collection("docs", config()).unwrap_err();
    assert!(
        matches!(e, Error::AlreadyExists(ref n) if n == "docs"),
        "{e}"
    );
    assert!(!b.path().join("collections/docs").exists());
    drop(one);
    drop(two);

    // Dropped on one node: gone from the bucket, and the other node's
    // cache of it is removed when it next opens.
    let two = open(&s3, url, b.path()).unwrap();
    two.collection("docs")
        .unwrap()
        .upsert(rows(0..5, 8))
        .unwrap();
    assert!(b.path().join("collections/docs").exists());
    two.close().unwrap();
    let one = open(&s3, url, a.path()).unwrap();
    one.drop_collection("docs").unwrap();
    assert_eq!(
        objects(&s3, "vdb", "collections/docs"),
        Vec::<String>::new()
    );
    drop(one);
    let two = open(&s3, url, b.path()).unwrap();
    assert!(two.list_collections().is_empty());
    assert!(!b.path().join("collections/docs").exists());
    // The name is free again, even with files an interrupted drop left
    // (one numbered as the new collection's first segment would be).
    let bucket = Bucket::new(&s3, "vdb");
    let left = format!("collections/docs/files/seg-{:016x}.seg", 2u64 << 40);
    bucket.put(&left, b"left by an interrupted drop");
    let c = two.create_collection("docs", config()).unwrap();
    c.upsert(rows(0..20, 8)).unwrap();
    c.flush().unwrap();
    assert!(!bucket.list("collections/docs").contains(&left));
    drop(c);
    two.close().unwrap();
    let three = tempfile::tempdir().unwrap();
    let three = open(&s3, url, three.path()).unwrap();
    assert_eq!(three.collection("docs").unwrap().stats().rows, 20);
}

#[test]
fn files_larger_than_one_part_upload_in_parts() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    let url = "s3://vdb";
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // 9,000 rows of 1,024 components: a segment of 37 MB, more than the
    // 32 MiB of one part.
    let dim = 1024;
    let engine = open(&s3, url, a.path()).unwrap();
    let c = engine
        .create_collection("big", CollectionConfig::new(dim))
        .unwrap();
    for start in (0..9000).step_by(1000) {
        c.upsert(rows(start..start + 1000, dim)).unwrap();
    }
    c.flush().unwrap();
    drop(c);
    engine.close().unwrap();

    let engine = open(&s3, url, b.path()).unwrap();
    let c = engine.collection("big").unwrap();
    assert_eq!(c.stats().rows, 9000);
    let r = &rows(8999..9000, dim)[0];
    assert_eq!(c.get(8999).unwrap().as_ref(), Some(r));
    let seg = std::fs::read_dir(b.path().join("collections/big"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".seg.part"))
        .unwrap();
    // Opened and read one row: the local copy has the file's length, but
    // only the blocks read (tables, ids, that row) take disk space.
    let meta = seg.metadata().unwrap();
    assert!(meta.len() > 32 << 20);
    assert!(meta.blocks() * 512 < 4 << 20, "{} blocks", meta.blocks());
}

#[test]
fn an_unreachable_store_fails_the_open_naming_it() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = vec![
        ("endpoint".to_string(), format!("http://127.0.0.1:{port}")),
        ("region".to_string(), "us-east-1".to_string()),
        ("allow_http".to_string(), "true".to_string()),
        ("access_key_id".to_string(), "test".to_string()),
        ("secret_access_key".to_string(), "test".to_string()),
        ("max_retries".to_string(), "1".to_string()),
        ("retry_timeout_secs".to_string(), "5".to_string()),
    ];
    let root = vdb_objstore::ObjectRoot::from_url("s3://nowhere/p", &options).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions {
        store: Some(Arc::new(root)),
        ..EngineOptions::default()
    };
    let e = Engine::open_with(dir.path(), options).unwrap_err();
    assert!(e.to_string().contains("s3://nowhere/p/collections"), "{e}");
}

fn shipped_config() -> CollectionConfig {
    CollectionConfig {
        sync: vdb_engine::SyncMode::Object,
        ..config()
    }
}

#[test]
fn with_sync_object_losing_the_node_loses_nothing_acknowledged() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    let url = "s3://vdb";
    let bucket = Bucket::new(&s3, "vdb");
    let a = tempfile::tempdir().unwrap();
    let engine = open(&s3, url, a.path()).unwrap();
    let c = engine.create_collection("docs", shipped_config()).unwrap();
    c.upsert(rows(0..30, 8)).unwrap();
    c.flush().unwrap();
    c.upsert(rows(30..60, 8)).unwrap();
    c.delete(&[1, 2, 31]).unwrap();
    c.upsert(rows(60..61, 8)).unwrap();
    // The node is lost, its disk with it: no close, no flush.
    drop(c);
    drop(engine);
    drop(a);

    let b = tempfile::tempdir().unwrap();
    let engine = open(&s3, url, b.path()).unwrap();
    let c = engine.collection("docs").unwrap();
    assert_eq!(c.stats().rows, 58);
    for r in rows(0..61, 8) {
        let got = c.get(r.id).unwrap();
        if [1, 2, 31].contains(&r.id) {
            assert!(got.is_none(), "{} was deleted", r.id);
        } else {
            assert_eq!(got.as_ref(), Some(&r), "row {}", r.id);
        }
    }
    // Its own writes are shipped too, and a flush trims the shipped log to
    // its last chunk.
    c.upsert(rows(100..110, 8)).unwrap();
    assert!(bucket.list("collections/docs/wal").len() > 1);
    c.flush().unwrap();
    assert_eq!(bucket.list("collections/docs/wal").len(), 1);
    drop(c);
    engine.close().unwrap();
    let c2 = tempfile::tempdir().unwrap();
    let engine = open(&s3, url, c2.path()).unwrap();
    assert_eq!(engine.collection("docs").unwrap().stats().rows, 68);
}

#[test]
fn with_sync_object_a_takeover_keeps_every_acknowledged_write() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    let url = "s3://vdb";
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = open(&s3, url, a.path()).unwrap();
    let c1 = first.create_collection("docs", shipped_config()).unwrap();

    // Four writers on the first node; the second node takes over while
    // they write. Each batch is acknowledged or refused, never both.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let c = Arc::clone(&c1);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut refused = Vec::new();
                for i in 0..10_000u64 {
                    let start = t * 1_000_000 + i * 10;
                    match c.upsert(rows(start..start + 10, 8)) {
                        Ok(_) => acked.push(start),
                        Err(e) => {
                            assert!(e.is_fenced(), "{e}");
                            refused.push(start);
                            break;
                        }
                    }
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                }
                (acked, refused)
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let second = open(&s3, url, b.path()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for w in writers {
        let (a, r) = w.join().unwrap();
        acked.extend(a);
        refused.extend(r);
    }
    assert!(!refused.is_empty(), "no writer was fenced");
    assert!(!acked.is_empty());

    // Every acknowledged batch is there; a refused one whole or not at all
    // (one shipped as the takeover happened is refused with its outcome
    // unknown, and the new writer may have read it).
    let c2 = second.collection("docs").unwrap();
    for start in &acked {
        for r in rows(*start..start + 10, 8) {
            assert_eq!(c2.get(r.id).unwrap().as_ref(), Some(&r), "row {}", r.id);
        }
    }
    let mut kept = 0;
    for start in &refused {
        let present: Vec<bool> = rows(*start..start + 10, 8)
            .iter()
            .map(|r| c2.get(r.id).unwrap().as_ref() == Some(r))
            .collect();
        assert!(
            present.iter().all(|p| *p) || present.iter().all(|p| !p),
            "{present:?}"
        );
        kept += usize::from(present[0]);
    }
    assert_eq!(c2.stats().rows, (acked.len() + kept) as u64 * 10);
    // The first node's next write is refused too, and the second writes on.
    assert!(c1.upsert(rows(5..6, 8)).unwrap_err().is_fenced());
    c2.upsert(rows(5..6, 8)).unwrap();
    c2.flush().unwrap();
}

#[test]
fn sync_object_needs_an_object_store() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let e = engine
        .create_collection("docs", shipped_config())
        .unwrap_err();
    assert!(e.to_string().contains("object"), "{e}");
    assert!(engine.list_collections().is_empty());
}
