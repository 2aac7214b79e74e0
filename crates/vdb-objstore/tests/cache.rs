//! The bounded cache on a real S3-compatible server (moto or s3s-fs,
//! `s3server/mod.rs`): a node with an empty directory and a cache far
//! smaller than the collection fetches byte ranges as searches need them,
//! gives idle ones back to the disk, and answers every search, get,
//! explain, export and compaction exactly as the node that wrote the
//! files did.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod data;
mod s3server;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use vdb_engine::{
    CollectionConfig, Engine, EngineOptions, ExplainOptions, Hit, IndexType, SearchOptions,
};
use vdb_objstore::ObjectRoot;

use data::rows;
use s3server::S3Server;

const DIM: usize = 32;

fn engine(root: &ObjectRoot, dir: &Path) -> Engine {
    let options = EngineOptions {
        store: Some(Arc::new(root.clone())),
        ..EngineOptions::default()
    };
    Engine::open_with(dir, options).unwrap()
}

/// The hits of an exact explain of `query`.
fn explained_hits(c: &vdb_engine::Collection, query: &[f32]) -> Vec<vdb_engine::TracedHit> {
    let opts = ExplainOptions {
        exact: true,
        ..ExplainOptions::new(10)
    };
    c.explain(query, opts).unwrap().hits
}

fn opts() -> SearchOptions {
    SearchOptions {
        k: 10,
        nprobe: Some(3),
        with_payload: true,
        with_vectors: true,
        ..Default::default()
    }
}

/// Bytes the `.part` files under `dir` take on disk (not their length).
fn allocated(dir: &Path) -> (u64, u64) {
    let mut disk = 0;
    let mut len = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().ends_with(".part") {
            let m = e.metadata().unwrap();
            disk += m.blocks() * 512;
            len += m.len();
        }
    }
    (disk, len)
}

#[test]
fn a_small_cache_evicts_and_answers_the_same() {
    small_cache_answers_the_same(IndexType::IvfFlat);
}

/// The same with RaBitQ codes: a node keeps the 1-bit codes of every
/// segment and fetches the extended codes' bytes with the vectors of the
/// lists a search probes (read without them, they would be zeros and the
/// estimates wrong).
#[test]
fn a_small_cache_answers_the_same_with_codes() {
    small_cache_answers_the_same(IndexType::IvfRabitq);
}

fn small_cache_answers_the_same(index_type: IndexType) {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("vdb");
    let url = "s3://vdb/cache";
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    // The writer keeps whole files: its answers are the reference.
    let writer = engine(&s3.root(url), a.path());
    let config = CollectionConfig {
        nlist: 16,
        flush_rows: 1_000_000,
        min_rows_per_list: 10,
        index_type,
        ..CollectionConfig::new(DIM)
    };
    let c = writer.create_collection("docs", config).unwrap();
    c.upsert(rows(0..12_000, DIM)).unwrap();
    c.flush().unwrap();
    c.retrain(None).unwrap();
    c.upsert(rows(12_000..17_000, DIM)).unwrap();
    c.delete(&(0..17_000).step_by(11).collect::<Vec<u64>>())
        .unwrap();
    c.flush().unwrap();
    let queries: Vec<Vec<f32>> = rows(50_000..50_040, DIM)
        .into_iter()
        .map(|r| r.vector)
        .collect();
    let want: Vec<Vec<Hit>> = c.search(&queries, opts()).unwrap();
    let gets: Vec<u64> = (0..17_000).step_by(37).collect();
    let want_rows: Vec<_> = gets.iter().map(|&id| c.get(id).unwrap()).collect();
    let want_explained = explained_hits(&c, &queries[0]);
    let stats = c.stats();
    assert_eq!(stats.segments, 2);
    drop(c);
    writer.close().unwrap();

    // A node with an empty directory and a 1 MiB cache, for segments of
    // 1.5 and 0.6 MB of vectors.
    let root = s3.root(url);
    let limit = 1 << 20;
    root.set_cache_bytes(Some(limit));
    let node = engine(&root, b.path());
    let c = node.collection("docs").unwrap();
    let dir = b.path().join("collections/docs");
    let (disk, len) = allocated(&dir);
    assert!(
        len > 2 * limit,
        "the segments ({len} bytes) outgrow the cache"
    );
    assert!(disk < len / 2, "opening fetched {disk} of {len} bytes");

    // Searches from several threads at once, pinning and evicting.
    std::thread::scope(|s| {
        for t in 0..4 {
            let (c, queries, want) = (&c, &queries, &want);
            s.spawn(move || {
                for round in 0..3 {
                    let got = c.search(queries, opts()).unwrap();
                    // (Not assert_eq: thousands of floats would drown the message.)
                    assert!(
                        &got == want,
                        "thread {t} round {round}: not the writer's answers"
                    );
                }
            });
        }
    });
    for (id, want) in gets.iter().zip(&want_rows) {
        assert_eq!(&c.get(*id).unwrap(), want, "get {id}");
    }
    let explained = explained_hits(&c, &queries[0]);
    assert_eq!(explained, want_explained);
    let usage = root.cache_usage();
    assert!(usage.evicted_bytes > 0, "{usage:?}");
    assert!(usage.fetched_bytes > limit, "{usage:?}");
    // What is tracked is what the disk holds: evicted blocks are holes.
    let (disk, _) = allocated(&dir);
    assert!(
        disk <= usage.bytes + (64 << 10),
        "{disk} bytes on disk, {usage:?}"
    );

    // Export reads every list, a list at a time.
    let e = c.export();
    let mut exported = 0u64;
    e.for_each_chunk(500, |_, ids, _| {
        exported += ids.len() as u64;
        Ok::<(), vdb_engine::Error>(())
    })
    .unwrap();
    assert_eq!(exported, stats.rows);

    // Compaction reads every row (fetching the segments whole while it
    // runs) and writes one local segment; the answers stay the same.
    assert!(c.compact().unwrap());
    let got = c.search(&queries, opts()).unwrap();
    let ids = |hits: &[Vec<Hit>]| -> Vec<Vec<u64>> {
        hits.iter()
            .map(|h| h.iter().map(|x| x.id).collect())
            .collect()
    };
    assert_eq!(ids(&got), ids(&want));
    assert_eq!(c.stats().rows, stats.rows);
    // The segments it replaced left the cache.
    assert_eq!(allocated(&dir), (0, 0));
    assert_eq!(root.cache_usage().bytes, 0);
    drop(c);
    node.close().unwrap();
}
