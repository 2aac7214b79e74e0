//! Searches through the engine while another thread writes: with and
//! without payloads, against the same searches with no writer. A search
//! that reads its payloads from its own snapshot costs the same whether a
//! writer is applying batches or not; one that reads them under the
//! collection's lock waits for every write applied meanwhile.
//!
//! `cargo bench -p vdb-benches --bench search_under_writes`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use vdb_engine::{Collection, CollectionConfig, Engine, Row, SearchOptions, SyncMode};
use vdb_ivf::SplitMix64;

const DIM: usize = 64;
const ROWS: u64 = 40_000;
const BATCH: u64 = 2_000;

fn vector(rng: &mut SplitMix64) -> Vec<f32> {
    (0..DIM).map(|_| rng.next_f32() - 0.5).collect()
}

fn rows(rng: &mut SplitMix64, ids: std::ops::Range<u64>) -> Vec<Row> {
    ids.map(|id| Row {
        id,
        vector: vector(rng),
        payload: Some(format!("row {id}").into_bytes()),
        fields: Default::default(),
    })
    .collect()
}

fn options(with_payload: bool) -> SearchOptions {
    SearchOptions {
        k: 10,
        nprobe: Some(4),
        with_payload,
        with_vectors: false,
        ..Default::default()
    }
}

/// Replaces rows in batches of [`BATCH`] until `stop` is set.
fn writer(c: Arc<Collection>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut rng = SplitMix64::new(99);
        let mut start = 0u64;
        let mut batches = 0u64;
        while !stop.load(Ordering::Acquire) {
            c.upsert(rows(&mut rng, start..start + BATCH))
                .expect("upsert");
            start = (start + BATCH) % ROWS;
            batches += 1;
        }
        batches
    })
}

fn search_under_writes(cr: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Engine::open(dir.path()).expect("open");
    let config = CollectionConfig {
        nlist: 64,
        nprobe: 4,
        sync: SyncMode::Never,
        flush_rows: 200_000,
        ..CollectionConfig::new(DIM)
    };
    let c = engine.create_collection("bench", config).expect("create");
    let mut rng = SplitMix64::new(7);
    for start in (0..ROWS).step_by(BATCH as usize) {
        c.upsert(rows(&mut rng, start..start + BATCH))
            .expect("load");
    }
    c.flush().expect("flush and train");
    let queries: Vec<Vec<f32>> = (0..256).map(|_| vector(&mut rng)).collect();
    let mut next = 0usize;

    let mut g = cr.benchmark_group("search_under_writes");
    g.measurement_time(Duration::from_secs(4));
    for writing in [false, true] {
        let stop = Arc::new(AtomicBool::new(false));
        let w = writing.then(|| writer(Arc::clone(&c), Arc::clone(&stop)));
        for with_payload in [false, true] {
            let name = format!(
                "{}_{}",
                if with_payload { "payload" } else { "ids" },
                if writing { "writer" } else { "idle" }
            );
            g.bench_function(name, |b| {
                b.iter(|| {
                    next = (next + 1) % queries.len();
                    black_box(
                        c.search(&queries[next..next + 1], options(with_payload))
                            .expect("search"),
                    )
                });
            });
        }
        stop.store(true, Ordering::Release);
        if let Some(w) = w {
            let batches = w.join().expect("writer");
            eprintln!("writer applied {batches} batches of {BATCH} rows");
        }
    }
    g.finish();
}

criterion_group!(benches, search_under_writes);
criterion_main!(benches);
