//! Embedding vdb: open a data directory, create a collection, write rows,
//! search, look at what a search did, and reopen.
//!
//! `cargo run --release -p vdb-engine --example quickstart [DATA_DIR]`

use std::path::PathBuf;

use vdb_engine::{CollectionConfig, Engine, Metric, Row, SearchOptions};

fn main() -> Result<(), vdb_engine::Error> {
    let dir = std::env::args().nth(1).map_or_else(
        || std::env::temp_dir().join("vdb-quickstart"),
        PathBuf::from,
    );
    let engine = Engine::open(&dir)?;
    let docs = match engine.collection("docs") {
        Ok(c) => c,
        Err(_) => {
            let mut config = CollectionConfig::new(32);
            config.metric = Metric::Cosine;
            config.nlist = 16;
            config.nprobe = 4;
            engine.create_collection("docs", config)?
        }
    };

    // 5,000 rows in 8 families of similar vectors; payloads name them.
    let vector = |id: u64| -> Vec<f32> {
        let family = (id % 8) as usize;
        (0..32)
            .map(|j| {
                if j % 8 == family {
                    1.0
                } else {
                    ((id.wrapping_mul(2_654_435_761) >> (j % 24)) % 97) as f32 / 300.0
                }
            })
            .collect()
    };
    for start in (0..5000u64).step_by(500) {
        let rows = (start..start + 500)
            .map(|id| Row {
                id,
                vector: vector(id),
                payload: Some(format!("doc-{id}").into_bytes()),
                fields: Default::default(),
            })
            .collect();
        docs.upsert(rows)?; // returns once durable (sync=always)
    }
    docs.delete(&[7])?;
    docs.flush()?; // trains the 16 lists: 5,000 rows ≥ 16 × 39

    let query = vector(42);
    let opts = SearchOptions {
        k: 3,
        nprobe: None,
        with_payload: true,
        with_vectors: false,
        ..Default::default()
    };
    let hits = docs.search(std::slice::from_ref(&query), opts.clone())?;
    for h in &hits[0] {
        let payload = String::from_utf8_lossy(h.payload.as_deref().unwrap_or_default());
        println!("id {:>5}  distance {:.4}  {payload}", h.id, h.distance);
    }
    let (_, trace) = docs.search_traced(&query, opts)?;
    let stats = docs.stats();
    println!(
        "probed {} of {} lists, computed {} distances for {} rows (generation {}, imbalance {:.2})",
        trace.nprobe,
        trace.nlist,
        trace.total_distances(),
        stats.rows,
        stats.generation,
        stats.imbalance
    );
    engine.close()?;
    println!("data kept in {}", dir.display());
    Ok(())
}
