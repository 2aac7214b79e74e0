//! `vdbctl bench --server`: the same benchmark measured over gRPC.
//!
//! The base rows are streamed into a collection "bench" with `Import`
//! (replacing one of that name), flushed so it trains, and every search is
//! one `Search` request (recall through `Explain`, to count the vectors
//! scanned). `--server local` starts the server in this process on a free
//! loopback port, over a data directory (`--data-dir` or a temporary one),
//! and also measures the same collection through the engine directly, so
//! the gRPC overhead comes from one run. The same single-query requests
//! also go to an empty collection "bench-floor" of the same dimension:
//! what a request costs with no search in it.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use rayon::prelude::*;
use vdb_ivf::{SearchParams, Searcher};
use vdb_proto::v1 as pb;

use crate::bench::{BenchArgs, Built, EngineTarget, Progress, Target};
use crate::client::Client;
use crate::vecio::Matrix;

/// A server the benchmark started in this process.
pub struct LocalServer {
    /// The engine under the server, for the in-process comparison.
    pub engine: Arc<vdb_engine::Engine>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    _tmp: Option<tempfile::TempDir>,
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a server on a free loopback port over `data_dir` (a temporary
/// directory if none); returns it and its address.
pub fn start_local(data_dir: Option<&std::path::Path>) -> Result<(LocalServer, String)> {
    let (dir, tmp) = match data_dir {
        Some(d) => (d.to_path_buf(), None),
        None => {
            let t = tempfile::tempdir().context("create a temporary data directory")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("bench-server".into())
        .spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let options = vdb_engine::EngineOptions {
                    runtime: Some(tokio::runtime::Handle::current()),
                    ..vdb_engine::EngineOptions::default()
                };
                let engine = Arc::new(
                    tokio::task::spawn_blocking(move || {
                        vdb_engine::Engine::open_with(&dir, options)
                    })
                    .await??,
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let _ = tx.send((Arc::clone(&engine), listener.local_addr()?));
                vdb_server::serve(
                    Arc::clone(&engine),
                    listener,
                    vdb_server::ServerOptions {
                        // Clients of this process may keep idle
                        // connections open; do not wait long for them.
                        shutdown_grace: std::time::Duration::from_millis(500),
                        ..vdb_server::ServerOptions::default()
                    },
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await?;
                tokio::task::spawn_blocking(move || engine.shutdown()).await??;
                Ok(())
            })
        })?;
    let (engine, addr) = rx.recv().context("the in-process server failed to start")?;
    Ok((
        LocalServer {
            engine,
            stop: Some(stop_tx),
            thread: Some(thread),
            _tmp: tmp,
        },
        format!("http://{addr}"),
    ))
}

/// Searches over gRPC. Each thread that searches is one client: its own
/// single-threaded runtime and its own connection, as an application's
/// client threads would have.
pub struct ServerTarget {
    addr: Addr,
    /// The collection searched.
    collection: String,
}

/// Where the server is and how to reach it: address (as `--server`
/// takes it), API key, CA certificate for `https://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub server: String,
    pub api_key: Option<String>,
    pub tls_ca: Option<std::path::PathBuf>,
}

type Local = (tokio::runtime::Runtime, Client);

thread_local! {
    static CLIENT: std::cell::RefCell<Option<(Addr, Local)>> = const { std::cell::RefCell::new(None) };
}

fn connect(addr: &Addr) -> Result<Local> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = rt.block_on(crate::client::connect(
        &addr.server,
        addr.api_key.as_deref(),
        addr.tls_ca.as_deref(),
    ))?;
    Ok((rt, client))
}

impl ServerTarget {
    fn call<T>(&self, f: impl AsyncFnOnce(Client) -> Result<T, tonic::Status>) -> Result<T> {
        CLIENT.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|(a, _)| a != &self.addr) {
                *slot = Some((self.addr.clone(), connect(&self.addr)?));
            }
            let (_, (rt, client)) = slot.as_ref().context("client connection")?;
            rt.block_on(f(client.clone()))
                .map_err(crate::client::server_err)
        })
    }

    fn request(&self, query: &[f32], sp: SearchParams) -> pb::SearchRequest {
        pb::SearchRequest {
            collection: self.collection.clone(),
            queries: vec![pb::Vector {
                values: query.to_vec(),
            }],
            k: sp.k as u32,
            nprobe: Some(sp.nprobe as u32),
            ..Default::default()
        }
    }
}

impl Target for ServerTarget {
    fn search(&self, _: &mut Searcher, query: &[f32], sp: SearchParams) -> Result<Vec<u64>> {
        let req = self.request(query, sp);
        let r = self
            .call(async move |mut c| c.search(req).await)?
            .into_inner();
        Ok(r.results
            .into_iter()
            .next()
            .map(|q| q.hits.into_iter().map(|h| h.id).collect())
            .unwrap_or_default())
    }

    fn search_traced(&self, query: &[f32], sp: SearchParams) -> Result<(Vec<u64>, u64)> {
        let req = pb::ExplainRequest {
            collection: self.collection.clone(),
            query: Some(pb::Vector {
                values: query.to_vec(),
            }),
            k: sp.k as u32,
            nprobe: Some(sp.nprobe as u32),
            with_payload: false,
            exact: false,
            samples: Some(0),
        };
        let r = self
            .call(async move |mut c| c.explain(req).await)?
            .into_inner();
        Ok((r.hits.into_iter().map(|h| h.id).collect(), r.fine_distances))
    }

    fn search_all(&self, queries: &Matrix<f32>, sp: SearchParams) -> Result<usize> {
        // Blocks of 32 queries per request, requests in parallel.
        let blocks: Vec<usize> = queries
            .data
            .par_chunks(32 * queries.dim)
            .map(|block| {
                let req = pb::SearchRequest {
                    collection: self.collection.clone(),
                    queries: block
                        .chunks_exact(queries.dim)
                        .map(|q| pb::Vector { values: q.to_vec() })
                        .collect(),
                    k: sp.k as u32,
                    nprobe: Some(sp.nprobe as u32),
                    ..Default::default()
                };
                self.call(async move |mut c| c.search(req).await)
                    .map(|r| r.into_inner().results.len())
            })
            .collect::<Result<_>>()?;
        Ok(blocks.into_iter().sum())
    }
}

/// Loads the base rows through the server and returns what to search.
pub fn build_server(
    args: &BenchArgs,
    addr: &Addr,
    base: &Matrix<f32>,
    progress: &Progress,
) -> Result<Built> {
    let target = ServerTarget {
        addr: addr.clone(),
        collection: "bench".into(),
    };
    let floor = ServerTarget {
        addr: addr.clone(),
        collection: "bench-floor".into(),
    };
    for name in ["bench", "bench-floor"] {
        let _ = target.call(async |mut c| {
            c.drop_collection(pb::DropCollectionRequest { name: name.into() })
                .await
        });
    }
    let metric = match args.metric {
        vdb_engine::Metric::L2 => pb::Metric::L2,
        vdb_engine::Metric::InnerProduct => pb::Metric::InnerProduct,
        vdb_engine::Metric::Cosine => pb::Metric::Cosine,
    };
    let create = pb::CreateCollectionRequest {
        name: "bench".into(),
        config: Some(pb::CollectionConfig {
            dim: base.dim as u32,
            metric: metric as i32,
            nlist: Some(args.nlist as u32),
            flush_rows: Some(args.flush_rows as u64),
            // Zero thresholds: never retrain automatically.
            retrain: args.no_retrain.then(|| pb::RetrainPolicy {
                min_new_rows: 1000,
                ..Default::default()
            }),
            ..Default::default()
        }),
        centroids: None,
    };
    let empty = pb::CreateCollectionRequest {
        name: "bench-floor".into(),
        ..create.clone()
    };
    target.call(async move |mut c| c.create_collection(create).await)?;
    target.call(async move |mut c| c.create_collection(empty).await)?;

    let dim = base.dim;
    let rows_of = |first: usize, chunk: &[f32]| -> Vec<pb::Row> {
        chunk
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, v)| pb::Row {
                id: (first + i) as u64,
                vector: v.to_vec(),
                payload: None,
            })
            .collect()
    };
    // Rows [from, to) as one Import stream of 1,000-row messages.
    let import = |from: usize, to: usize| -> Result<()> {
        let batches: Vec<pb::ImportRequest> = base.data[from * dim..to * dim]
            .chunks(1000 * dim)
            .enumerate()
            .map(|(b, chunk)| pb::ImportRequest {
                collection: if b == 0 {
                    "bench".into()
                } else {
                    String::new()
                },
                rows: rows_of(from + b * 1000, chunk),
            })
            .collect();
        if !batches.is_empty() {
            target.call(async move |mut c| c.import(tokio_stream::iter(batches)).await)?;
        }
        Ok(())
    };
    let flush_and_train = || -> Result<pb::CollectionInfo> {
        let flush = pb::MaintenanceRequest {
            collection: "bench".into(),
            nlist: None,
        };
        let mut info = target
            .call(async move |mut c| c.flush(flush).await)?
            .into_inner()
            .info
            .unwrap_or_default();
        if info.stats.unwrap_or_default().generation == 0 {
            let retrain = pb::MaintenanceRequest {
                collection: "bench".into(),
                nlist: Some(args.nlist as u32),
            };
            info = target
                .call(async move |mut c| c.retrain(retrain).await)?
                .into_inner()
                .info
                .unwrap_or_default();
        }
        Ok(info)
    };

    let first = args.train_first.min(base.rows);
    if first > 0 {
        progress.phase(&format!(
            "importing {first} rows over gRPC, then flushing and training"
        ));
        import(0, first)?;
        flush_and_train()?;
    }
    // The timed rows, in ten rounds that alternate between Upsert requests
    // of 1,000 rows (one after another) and one Import stream of 1,000-row
    // messages, so background flushes and compactions fall on both alike.
    let upsert = |from: usize, to: usize| -> Result<()> {
        for (b, chunk) in base.data[from * dim..to * dim]
            .chunks(1000 * dim)
            .enumerate()
        {
            let req = pb::UpsertRequest {
                collection: "bench".into(),
                rows: rows_of(from + b * 1000, chunk),
            };
            target.call(async move |mut c| c.upsert(req).await)?;
        }
        Ok(())
    };
    progress.phase(&format!(
        "writing {} rows over gRPC, alternating Upsert requests of 1,000 and Import streams",
        base.rows - first
    ));
    let round = (base.rows - first).div_ceil(10).max(1000);
    let (mut upsert_s, mut import_s) = (0.0, 0.0);
    let (mut upserted, mut imported) = (0usize, 0usize);
    for (i, from) in (first..base.rows).step_by(round).enumerate() {
        let to = (from + round).min(base.rows);
        let t = Instant::now();
        if i % 2 == 0 {
            upsert(from, to)?;
            upsert_s += t.elapsed().as_secs_f64();
            upserted += to - from;
        } else {
            import(from, to)?;
            import_s += t.elapsed().as_secs_f64();
            imported += to - from;
        }
    }

    progress.phase("flushing and training");
    let t = Instant::now();
    let info = flush_and_train()?;
    let train_s = t.elapsed().as_secs_f64();
    let stats = info.stats.unwrap_or_default();
    Ok(Built {
        target: Box::new(target),
        train_s,
        build_s: upsert_s + import_s + train_s,
        disk_bytes: stats.segment_bytes,
        open_ms: 0.0,
        imbalance: stats.imbalance,
        rows: stats.rows as usize,
        training: format!(
            "by the server, generation {}, {} lists",
            stats.generation, stats.lists
        ),
        ingest_rows_per_s: (imported > 0).then(|| imported as f64 / import_s),
        upsert_rows_per_s: (upserted > 0).then(|| upserted as f64 / upsert_s),
        disk_bound_rows_per_s: None,
        ingest_batch_p50_ms: None,
        ingest_rows: Some(base.rows - first),
        floor: Some(Box::new(floor)),
    })
}

/// QPS of `clients` threads each sending one query per request, one after
/// another, for `seconds`.
pub fn concurrent_qps(
    target: &dyn Target,
    queries: &Matrix<f32>,
    sp: SearchParams,
    clients: usize,
    seconds: f64,
) -> Result<f64> {
    let start = Instant::now();
    let counts: Vec<Result<usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|t| {
                s.spawn(move || -> Result<usize> {
                    let mut searcher = Searcher::new();
                    let mut n = 0;
                    while start.elapsed().as_secs_f64() < seconds {
                        let q = (t * 7919 + n) % queries.rows;
                        target.search(&mut searcher, queries.row(q), sp)?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("client thread panicked")))
            })
            .collect()
    });
    let mut total = 0;
    for c in counts {
        total += c?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// The engine target over the local server's collection.
pub fn in_process_target(local: &LocalServer) -> Result<Box<dyn Target>> {
    Ok(Box::new(EngineTarget {
        collection: local.engine.collection("bench")?,
    }))
}
