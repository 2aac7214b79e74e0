//! `vdbctl bench`: build an IVF_Flat index from vector files in-process and
//! measure recall and speed over an nprobe sweep.
//!
//! Steps: read base/query (and ground truth); train k-means; assign every
//! base row to a list; write a segment and a centroid file into a temporary
//! directory; map them; then for each nprobe measure recall@k, one-query-at-
//! a-time QPS and latency percentiles on one thread, and batch QPS over the
//! thread pool. Row `i` of the base file gets id `i`, as texmex ground truth
//! assumes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use std::sync::Arc;

use vdb_core::{Generation, InvertedLists, ListId, Metric, SegmentId, distance};
use vdb_engine::{
    Collection, CollectionConfig, Engine, RetrainPolicy, Row as EngineRow, SearchOptions,
};
use vdb_format::{CentroidFile, CentroidMeta, SegmentMeta, SegmentReader, SegmentWriter};
use vdb_ivf::{
    CoarseQuantizer, KMeansParams, SearchParams, SearchTrace, Searcher, Source, flat_search,
    kmeans, search_batch,
};

use crate::json::JsonObject;
use crate::vecio::{self, Matrix};

/// Arguments of `vdbctl bench`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Example:\n  vdbctl bench --base data/digits/base.fvecs --query data/digits/query.fvecs \\\n      --gt data/digits/gt.ivecs --nlist 16 --nprobe 1,4,16 --k 10"
)]
pub struct BenchArgs {
    /// Base vectors (.fvecs, .bvecs or .npy float32); row i gets id i.
    #[arg(long)]
    pub base: PathBuf,
    /// Query vectors (same formats).
    #[arg(long)]
    pub query: PathBuf,
    /// Ground truth (.ivecs of base row numbers per query); computed by exact
    /// search when absent.
    #[arg(long)]
    pub gt: Option<PathBuf>,
    /// Number of inverted lists (k-means clusters).
    #[arg(long)]
    pub nlist: usize,
    /// Comma-separated nprobe values to sweep; values above nlist are
    /// clamped to nlist.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub nprobe: Vec<usize>,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Distance metric: l2, ip or cosine.
    #[arg(long, default_value = "l2")]
    pub metric: Metric,
    /// Threads for training and batch search (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// One JSON object per line per nprobe instead of a table (set by the
    /// global `--json`).
    #[arg(skip)]
    pub json: bool,
    /// k-means seed.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// k-means iterations.
    #[arg(long, default_value_t = 10)]
    pub niter: usize,
    /// k-means trains on at most this many points per centroid.
    #[arg(long, default_value_t = 256)]
    pub max_points_per_centroid: usize,
    /// Minimum seconds each QPS measurement runs (passes over the queries
    /// repeat until it is reached).
    #[arg(long, default_value_t = 1.0)]
    pub min_seconds: f64,
    /// Directory for the index files (default: a temporary directory that is
    /// removed afterwards).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Run against a real collection ("bench", replaced if present) in this
    /// data directory through the engine: rows are inserted through the
    /// write-ahead log in batches of 1,000 (sync=always), flushed and trained
    /// by the engine, then searched through the collection API.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// With --data-dir or --server: memtable rows per flush.
    #[arg(long, default_value_t = 100_000)]
    pub flush_rows: usize,
    /// With --data-dir or --server: train once, never retrain automatically (to measure
    /// what retraining saves).
    #[arg(long)]
    pub no_retrain: bool,
    /// With --data-dir: also measure single-query search latency at the
    /// first nprobe while a retraining runs and while a compaction runs,
    /// against idle (keys `idle_p99_ms`, `retrain_p99_ms`, `compact_p99_ms`).
    #[arg(long)]
    pub maintenance_latency: bool,
    /// With --data-dir or --server: insert this many rows first and let the
    /// collection flush and train, then time the ingest of the rest only
    /// (durable ingest into a trained collection; `ingest_rows` says how
    /// many). Over gRPC the timed rows go in ten alternating rounds as
    /// Upsert requests of 1,000 rows (`upsert_rows_per_s`) and as Import
    /// streams of 1,000-row messages (`ingest_rows_per_s`).
    #[arg(long, default_value_t = 0)]
    pub train_first: usize,
    /// Measure over gRPC against this server (`--server` given on the
    /// command line; `local` starts one in this process).
    #[arg(skip)]
    pub server: Option<String>,
    /// The API key and CA certificate for `server` (the global flags).
    #[arg(skip)]
    pub api_key: Option<String>,
    #[arg(skip)]
    pub tls_ca: Option<PathBuf>,
}

/// What the benchmark searches: one segment in-process, or a collection
/// through the engine's public API.
pub(crate) trait Target: Sync {
    /// The ids found for one query.
    fn search(&self, searcher: &mut Searcher, query: &[f32], sp: SearchParams) -> Result<Vec<u64>>;
    /// The ids found for one query and the vectors scanned.
    fn search_traced(&self, query: &[f32], sp: SearchParams) -> Result<(Vec<u64>, u64)>;
    /// Searches every query; returns how many were answered.
    fn search_all(&self, queries: &Matrix<f32>, sp: SearchParams) -> Result<usize>;
    /// The collection searched, when the target is one.
    fn collection(&self) -> Option<&Arc<Collection>> {
        None
    }
}

struct SegmentTarget {
    quantizer: CoarseQuantizer,
    segment: SegmentReader,
}

impl Target for SegmentTarget {
    fn search(&self, searcher: &mut Searcher, query: &[f32], sp: SearchParams) -> Result<Vec<u64>> {
        let sources: [&dyn InvertedLists; 1] = [&self.segment];
        let r = searcher.search(&self.quantizer, &sources, query, sp, None)?;
        Ok(r.into_iter().map(|n| n.id.0).collect())
    }

    fn search_traced(&self, query: &[f32], sp: SearchParams) -> Result<(Vec<u64>, u64)> {
        let sources: [&dyn InvertedLists; 1] = [&self.segment];
        let mut trace = SearchTrace::default();
        let r = Searcher::new().search(&self.quantizer, &sources, query, sp, Some(&mut trace))?;
        Ok((
            r.into_iter().map(|n| n.id.0).collect(),
            trace.fine_distances,
        ))
    }

    fn search_all(&self, queries: &Matrix<f32>, sp: SearchParams) -> Result<usize> {
        let r = search_batch(
            &self.quantizer,
            &[Source::all(&self.segment)],
            &queries.data,
            sp,
        )?;
        Ok(r.len())
    }
}

pub(crate) struct EngineTarget {
    pub(crate) collection: Arc<Collection>,
}

impl EngineTarget {
    fn opts(sp: SearchParams) -> SearchOptions {
        SearchOptions {
            k: sp.k,
            nprobe: Some(sp.nprobe),
            with_payload: false,
        }
    }
}

impl Target for EngineTarget {
    fn collection(&self) -> Option<&Arc<Collection>> {
        Some(&self.collection)
    }

    fn search(&self, _: &mut Searcher, query: &[f32], sp: SearchParams) -> Result<Vec<u64>> {
        let mut r = self.collection.search(&[query.to_vec()], Self::opts(sp))?;
        Ok(r.pop()
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.id)
            .collect())
    }

    fn search_traced(&self, query: &[f32], sp: SearchParams) -> Result<(Vec<u64>, u64)> {
        let (hits, trace) = self.collection.search_traced(query, Self::opts(sp))?;
        Ok((
            hits.into_iter().map(|h| h.id).collect(),
            trace.fine_distances,
        ))
    }

    fn search_all(&self, queries: &Matrix<f32>, sp: SearchParams) -> Result<usize> {
        let blocks: Vec<usize> = queries
            .data
            .par_chunks(32 * queries.dim)
            .map(|block| {
                let qs: Vec<Vec<f32>> = block
                    .chunks_exact(queries.dim)
                    .map(<[f32]>::to_vec)
                    .collect();
                self.collection.search(&qs, Self::opts(sp)).map(|r| r.len())
            })
            .collect::<Result<_, _>>()?;
        Ok(blocks.into_iter().sum())
    }
}

/// What building the index produced.
pub(crate) struct Built {
    pub(crate) target: Box<dyn Target>,
    pub(crate) train_s: f64,
    pub(crate) build_s: f64,
    pub(crate) disk_bytes: u64,
    pub(crate) open_ms: f64,
    pub(crate) imbalance: f64,
    pub(crate) rows: usize,
    /// How training went, for the human-readable header.
    pub(crate) training: String,
    /// Rows per second inserted through the WAL (engine runs).
    pub(crate) ingest_rows_per_s: Option<f64>,
    /// Over gRPC: rows/s of Upsert requests of 1,000 rows, one at a time.
    pub(crate) upsert_rows_per_s: Option<f64>,
    /// Rows per second the disk takes as bare appends of the same size,
    /// each followed by `fdatasync` (engine runs): the physical bound.
    pub(crate) disk_bound_rows_per_s: Option<f64>,
    /// Rows the ingest rate was measured over (engine runs).
    pub(crate) ingest_rows: Option<usize>,
    /// Median time of one 1,000-row write (engine runs): the writer's own
    /// cost when no flush or training holds it up.
    pub(crate) ingest_batch_p50_ms: Option<f64>,
    /// Over gRPC: the same requests against an empty collection of the
    /// same dimension, so they cost the transport and no search.
    pub(crate) floor: Option<Box<dyn Target>>,
}

/// One row of the results.
#[derive(Debug, Clone)]
struct Row {
    /// Over gRPC: QPS of 16 clients sending one query per request.
    qps_16_clients: Option<f64>,
    /// Over gRPC with `--server local`: the same collection searched in
    /// process (QPS, p50, p99 of one query per call).
    in_process: Option<(f64, f64, f64)>,
    /// The same, with [`PACE`] of idleness before each query (p50, p99).
    in_process_paced: Option<(f64, f64)>,
    /// Over gRPC: p50 ms of one query per request to an empty collection
    /// (what the transport alone costs).
    floor_p50_ms: Option<f64>,
    nprobe: usize,
    requested_nprobe: usize,
    recall: f64,
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    batch_qps: f64,
    batch_qps_1t: f64,
    scanned: f64,
}

/// Runs the benchmark and prints the results to stdout.
pub fn run(args: &BenchArgs) -> Result<()> {
    ensure!(args.k >= 1, "--k must be at least 1");
    ensure!(args.nlist >= 1, "--nlist must be at least 1");
    ensure!(!args.nprobe.is_empty(), "--nprobe needs at least one value");
    ensure!(
        !args.maintenance_latency || args.data_dir.is_some(),
        "--maintenance-latency needs --data-dir"
    );
    if let Some(p) = args.nprobe.iter().find(|&&p| p == 0) {
        bail!("--nprobe value {p} is invalid: nprobe must be at least 1");
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    ensure!(threads >= 1, "--threads must be at least 1");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start the thread pool")?;

    let progress = Progress::new();
    progress.phase("reading vectors");
    let mut base = vecio::read_vectors(&args.base)?;
    let mut queries = vecio::read_vectors(&args.query)?;
    ensure!(
        base.dim == queries.dim,
        "{} has dimension {}, but {} has {}",
        args.base.display(),
        base.dim,
        args.query.display(),
        queries.dim
    );
    if args.nlist > base.rows {
        bail!(
            "--nlist {} is larger than the {} base vectors: every list needs at least one vector to train",
            args.nlist,
            base.rows
        );
    }
    let metric = args.metric;
    if metric.normalizes() {
        base.data
            .chunks_exact_mut(base.dim)
            .for_each(distance::normalize);
        queries
            .data
            .chunks_exact_mut(queries.dim)
            .for_each(distance::normalize);
    }
    let gt = match &args.gt {
        Some(p) => Some(read_ground_truth(p, &queries, base.rows, args.k)?),
        None => None,
    };

    let mut local = None;
    let built = match (&args.server, &args.data_dir) {
        (Some(server), _) => {
            let server = if server == "local" {
                let (l, addr) = crate::bench_server::start_local(args.data_dir.as_deref())?;
                local = Some(l);
                addr
            } else {
                server.clone()
            };
            let addr = crate::bench_server::Addr {
                server,
                api_key: args.api_key.clone(),
                tls_ca: args.tls_ca.clone(),
            };
            crate::bench_server::build_server(args, &addr, &base, &progress)?
        }
        (None, Some(dir)) => build_engine(args, dir, &base, &progress)?,
        (None, None) => build_segment(args, &base, &pool, &progress)?,
    };
    let in_process = match &local {
        Some(l) => Some(crate::bench_server::in_process_target(l)?),
        None => None,
    };
    let imbalance = built.imbalance;
    let (train_s, build_s, disk_bytes, open_ms) = (
        built.train_s,
        built.build_s,
        built.disk_bytes,
        built.open_ms,
    );

    let truth: Vec<Vec<u64>> = match gt {
        Some(gt) => gt,
        None => {
            progress.phase("computing exact neighbours");
            let ids: Vec<u64> = (0..base.rows as u64).collect();
            pool.install(|| {
                (0..queries.rows)
                    .into_par_iter()
                    .map(|q| {
                        flat_search(metric, queries.row(q), &base.data, &ids, args.k)
                            .map(|r| r.into_iter().map(|n| n.id.0).collect())
                    })
                    .collect::<Result<Vec<_>, _>>()
            })?
        }
    };
    drop(base);

    let mut rows = Vec::new();
    for &requested in &args.nprobe {
        let nprobe = requested.min(args.nlist);
        if nprobe != requested {
            progress.note(&format!(
                "nprobe {requested} is larger than nlist {}: clamped to {nprobe}",
                args.nlist
            ));
        }
        progress.phase(&format!("searching with nprobe {nprobe}"));
        let sp = SearchParams { k: args.k, nprobe };
        let mut row = measure(
            built.target.as_ref(),
            &queries,
            &truth,
            sp,
            requested,
            &pool,
            args.min_seconds,
        )?;
        if args.server.is_some() {
            row.qps_16_clients = Some(crate::bench_server::concurrent_qps(
                built.target.as_ref(),
                &queries,
                sp,
                16,
                args.min_seconds.max(0.2),
            )?);
        }
        let min = Duration::from_secs_f64(args.min_seconds.max(0.0));
        if let Some(t) = &in_process {
            // Only the single-query numbers compare with gRPC's.
            row.in_process = Some(single_query_latency(t.as_ref(), &queries, sp, min, None)?);
            let (_, p50, p99) = single_query_latency(t.as_ref(), &queries, sp, min, Some(PACE))?;
            row.in_process_paced = Some((p50, p99));
        }
        if let Some(f) = &built.floor {
            row.floor_p50_ms = Some(single_query_latency(f.as_ref(), &queries, sp, min, None)?.1);
        }
        rows.push(row);
    }
    let maint = match (
        args.maintenance_latency,
        built.target.collection(),
        args.nprobe.first(),
    ) {
        (true, Some(c), Some(&nprobe)) => {
            progress.phase("measuring search latency during retraining and compaction");
            let sp = SearchParams {
                k: args.k,
                nprobe: nprobe.min(args.nlist),
            };
            Some(maintenance_latency(c, &queries, sp)?)
        }
        _ => None,
    };
    progress.finish();

    let isa = distance::active().isa;
    let peak_rss = peak_rss_bytes();
    let out = std::io::stdout();
    let mut out = out.lock();
    if args.json {
        for r in &rows {
            let mut o = JsonObject::new();
            o.uint("nlist", args.nlist as u64)
                .uint("nprobe", r.nprobe as u64)
                .uint("requested_nprobe", r.requested_nprobe as u64)
                .bool("nprobe_clamped", r.nprobe != r.requested_nprobe)
                .uint("k", args.k as u64)
                .num("recall", r.recall)
                .num("qps", r.qps)
                .num("p50_ms", r.p50_ms)
                .num("p99_ms", r.p99_ms)
                .num("batch_qps", r.batch_qps)
                .num("batch_qps_1t", r.batch_qps_1t)
                .num("train_s", train_s)
                .num("build_s", build_s)
                .uint("disk_bytes", disk_bytes)
                .num("open_ms", open_ms)
                .num("scanned_per_query", r.scanned)
                .num("imbalance", imbalance)
                .uint("rows", built.rows as u64)
                .uint("dim", queries.dim as u64)
                .uint("queries", queries.rows as u64)
                .str("metric", metric.name())
                .uint("threads", threads as u64)
                .str("isa", isa.name());
            if let Some(rss) = peak_rss {
                o.uint("peak_rss_bytes", rss);
            }
            if let Some(r) = built.disk_bound_rows_per_s {
                o.num("disk_bound_rows_per_s", r);
            }
            if let Some(r) = built.ingest_batch_p50_ms {
                o.num("ingest_batch_p50_ms", r);
            }
            if let Some(n) = built.ingest_rows {
                o.uint("ingest_rows", n as u64);
            }
            if let Some(m) = &maint {
                o.num("idle_p50_ms", m.idle.0)
                    .num("idle_p99_ms", m.idle.1)
                    .num("retrain_p50_ms", m.retrain.0)
                    .num("retrain_p99_ms", m.retrain.1)
                    .num("compact_p50_ms", m.compact.0)
                    .num("compact_p99_ms", m.compact.1)
                    .uint("retrain_searches", m.retrain.2 as u64)
                    .uint("compact_searches", m.compact.2 as u64);
            }
            if let Some(q) = r.qps_16_clients {
                o.num("qps_16_clients", q);
            }
            if let Some((q, p50, p99)) = r.in_process {
                o.num("inproc_qps", q)
                    .num("inproc_p50_ms", p50)
                    .num("inproc_p99_ms", p99)
                    .num("grpc_overhead", q / r.qps - 1.0);
                if let Some(f) = r.floor_p50_ms {
                    o.num("grpc_floor_overhead", f / p50);
                }
            }
            if let Some((p50, p99)) = r.in_process_paced {
                o.num("inproc_paced_p50_ms", p50)
                    .num("inproc_paced_p99_ms", p99)
                    .num("grpc_paced_overhead", r.p50_ms / p50 - 1.0);
            }
            if let Some(f) = r.floor_p50_ms {
                o.num("grpc_floor_p50_ms", f);
            }
            if args.server.is_some() {
                o.num("ingest_rows_per_s", built.ingest_rows_per_s.unwrap_or(0.0))
                    .num("upsert_rows_per_s", built.upsert_rows_per_s.unwrap_or(0.0))
                    .str("mode", "server");
            } else if let Some(r) = built.ingest_rows_per_s {
                o.num("ingest_rows_per_s", r).str("mode", "engine");
            } else {
                o.str("mode", "segment");
            }
            writeln!(out, "{}", o.finish())?;
        }
    } else {
        writeln!(
            out,
            "vdb bench: {} base vectors of dim {} ({metric}), {} queries, k={}, nlist={}, kernels {isa}, {threads} threads",
            built.rows, queries.dim, queries.rows, args.k, args.nlist
        )?;
        if args.server.is_some() {
            writeln!(
                out,
                "server: wrote {} rows over gRPC in alternating rounds: Upsert requests of 1,000 rows at {:.0} rows/s, Import streams (messages of 1,000) at {:.0} rows/s",
                built.ingest_rows.unwrap_or(0),
                built.upsert_rows_per_s.unwrap_or(0.0),
                built.ingest_rows_per_s.unwrap_or(0.0)
            )?;
        } else if let Some(r) = built.ingest_rows_per_s {
            writeln!(
                out,
                "engine: inserted {} rows through the WAL (sync=always) at {r:.0} rows/s (median write of 1,000 rows {:.2} ms); the disk alone takes {:.0} rows/s (same-size appends, each fdatasynced)",
                built.ingest_rows.unwrap_or(0),
                built.ingest_batch_p50_ms.unwrap_or(f64::NAN),
                built.disk_bound_rows_per_s.unwrap_or(f64::NAN)
            )?;
        }
        writeln!(
            out,
            "train {train_s:.3} s ({})   build {build_s:.3} s   disk {}   open {open_ms:.2} ms   list imbalance {imbalance:.2}{}",
            built.training,
            human_bytes(disk_bytes),
            peak_rss
                .map(|b| format!("   peak RSS {}", human_bytes(b)))
                .unwrap_or_default()
        )?;
        writeln!(
            out,
            "{:>7} {:>10} {:>12} {:>9} {:>9} {:>12} {:>14} {:>14}",
            "nprobe",
            format!("recall@{}", args.k),
            "QPS 1-thread",
            "p50 ms",
            "p99 ms",
            "batch QPS",
            "batch 1-thread",
            "scanned/query"
        )?;
        for r in &rows {
            let clamp = if r.nprobe != r.requested_nprobe {
                format!(" (asked {})", r.requested_nprobe)
            } else {
                String::new()
            };
            writeln!(
                out,
                "{:>7} {:>10.4} {:>12.0} {:>9.3} {:>9.3} {:>12.0} {:>14.0} {:>14.0}{clamp}",
                r.nprobe,
                r.recall,
                r.qps,
                r.p50_ms,
                r.p99_ms,
                r.batch_qps,
                r.batch_qps_1t,
                r.scanned
            )?;
        }
        for r in rows.iter().filter(|r| r.qps_16_clients.is_some()) {
            write!(
                out,
                "over gRPC at nprobe {}: {:.0} QPS with 16 clients",
                r.nprobe,
                r.qps_16_clients.unwrap_or(0.0)
            )?;
            if let Some((q, p50, p99)) = r.in_process {
                write!(
                    out,
                    "; the same collection in process: {q:.0} QPS 1-thread, p50 {p50:.3} / p99 {p99:.3} ms (gRPC costs {:.1} % of 1-thread QPS)",
                    100.0 * (q / r.qps - 1.0)
                )?;
            }
            if let Some((p50, _)) = r.in_process_paced {
                write!(
                    out,
                    "; in process with {} µs idle before each query: p50 {p50:.3} ms",
                    PACE.as_micros()
                )?;
            }
            match r.floor_p50_ms {
                Some(f) => writeln!(
                    out,
                    "; a request to an empty collection (transport only): p50 {f:.3} ms"
                )?,
                None => writeln!(out)?,
            }
        }
        if let Some(m) = &maint {
            writeln!(
                out,
                "single-query latency at nprobe {}: idle p50 {:.3} / p99 {:.3} ms; during retraining p50 {:.3} / p99 {:.3} ms ({} searches); during compaction p50 {:.3} / p99 {:.3} ms ({} searches)",
                args.nprobe.first().copied().unwrap_or(0).min(args.nlist),
                m.idle.0,
                m.idle.1,
                m.retrain.0,
                m.retrain.1,
                m.retrain.2,
                m.compact.0,
                m.compact.1,
                m.compact.2
            )?;
        }
    }
    Ok(())
}

/// Search latency (p50 ms, p99 ms, searches) idle and while maintenance
/// runs.
#[derive(Debug)]
struct MaintenanceLatency {
    idle: (f64, f64, usize),
    retrain: (f64, f64, usize),
    compact: (f64, f64, usize),
}

/// Single-query searches, one after another on this thread, idle for two
/// seconds and then for as long as a retraining (new centroids, every row
/// rewritten) and a compaction (after deleting 1 % of the rows) run on
/// another thread.
fn maintenance_latency(
    c: &Arc<Collection>,
    queries: &Matrix<f32>,
    sp: SearchParams,
) -> Result<MaintenanceLatency> {
    let opts = EngineTarget::opts(sp);
    let search_while = |busy: &dyn Fn() -> bool| -> Result<(f64, f64, usize)> {
        let mut lat = Vec::new();
        let mut q = 0;
        while busy() || lat.len() < 100 {
            let query = queries.row(q % queries.rows).to_vec();
            let t = Instant::now();
            c.search(&[query], opts)?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            q += 1;
        }
        lat.sort_by(f64::total_cmp);
        let at = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
        Ok((at(0.5), at(0.99), lat.len()))
    };
    let start = Instant::now();
    let idle = search_while(&|| start.elapsed().as_secs_f64() < 2.0)?;
    let during = |work: &(dyn Fn() -> vdb_engine::Result<()> + Sync)| -> Result<(f64, f64, usize)> {
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let worker = s.spawn(|| {
                let r = work();
                done.store(true, std::sync::atomic::Ordering::Release);
                r
            });
            let lat = search_while(&|| !done.load(std::sync::atomic::Ordering::Acquire));
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("maintenance thread panicked"))??;
            lat
        })
    };
    let retrain = during(&|| c.retrain(None))?;
    let rows = c.stats().rows;
    let doomed: Vec<u64> = (0..rows).step_by(100).collect();
    c.delete(&doomed)?;
    let compact = during(&|| c.compact().map(|_| ()))?;
    Ok(MaintenanceLatency {
        idle,
        retrain,
        compact,
    })
}

/// Trains, assigns and writes one segment in a temporary (or given)
/// directory, then maps it.
fn build_segment(
    args: &BenchArgs,
    base: &Matrix<f32>,
    pool: &rayon::ThreadPool,
    progress: &Progress,
) -> Result<Built> {
    let metric = args.metric;
    let tmp;
    let dir: &Path = match &args.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d
        }
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
            tmp.path()
        }
    };

    // Train.
    progress.phase(&format!(
        "training {} lists on up to {} vectors",
        args.nlist,
        args.nlist * args.max_points_per_centroid
    ));
    let params = KMeansParams {
        niter: args.niter,
        seed: args.seed,
        max_points_per_centroid: args.max_points_per_centroid,
        ..KMeansParams::default()
    };
    let t = Instant::now();
    let (centroids, report) =
        pool.install(|| kmeans::train(&base.data, base.dim, args.nlist, metric, &params))?;
    let train_s = t.elapsed().as_secs_f64();
    if let Some(w) = &report.warning {
        progress.note(&format!("warning: {w}"));
    }

    // Build: assign, group by list, write.
    progress.phase(&format!("assigning and writing {} vectors", base.rows));
    let t = Instant::now();
    let quantizer = CoarseQuantizer::new(base.dim, metric, centroids)?;
    let assignment = pool.install(|| quantizer.assign(&base.data))?;
    let order = group_by_list(&assignment, args.nlist);
    let seg_path = dir.join(vdb_format::segment_file_name(SegmentId(1)));
    let meta = SegmentMeta {
        id: SegmentId(1),
        generation: Generation(1),
        metric,
        dim: base.dim,
        nlist: args.nlist,
        with_payloads: false,
    };
    let mut w = SegmentWriter::create(&seg_path, meta)?;
    for &row in &order {
        w.push(assignment[row].0, row as u64, base.row(row), None)?;
    }
    let seg_info = w.finish()?;
    let cen_path = dir.join(vdb_format::centroid_file_name(Generation(1)));
    let cen_bytes = vdb_format::write_centroids(
        &cen_path,
        CentroidMeta {
            generation: Generation(1),
            metric,
            dim: base.dim,
        },
        quantizer.centroids(),
    )?;
    let build_s = t.elapsed().as_secs_f64();
    let disk_bytes = seg_info.bytes + cen_bytes;
    drop(assignment);

    // Open what was written, as a server would.
    let t = Instant::now();
    let segment = SegmentReader::open(&seg_path)?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let cen = CentroidFile::open(&cen_path)?;
    let quantizer =
        CoarseQuantizer::new(cen.meta().dim, cen.meta().metric, cen.centroids().to_vec())?;
    let sizes: Vec<u64> = (0..args.nlist as u32)
        .map(|l| segment.list_len(ListId(l)) as u64)
        .collect();
    Ok(Built {
        train_s,
        build_s,
        disk_bytes,
        open_ms,
        imbalance: vdb_ivf::imbalance_factor(&sizes),
        rows: segment.rows(),
        training: format!(
            "{} vectors, {} iterations",
            report.sample_size, report.iterations
        ),
        ingest_rows_per_s: None,
        upsert_rows_per_s: None,
        disk_bound_rows_per_s: None,
        ingest_batch_p50_ms: None,
        ingest_rows: None,
        floor: None,
        target: Box::new(SegmentTarget { quantizer, segment }),
    })
}

/// Inserts the base rows into a fresh collection through the engine (WAL,
/// memtable, flushes, automatic training), then reopens the data directory.
fn build_engine(
    args: &BenchArgs,
    dir: &Path,
    base: &Matrix<f32>,
    progress: &Progress,
) -> Result<Built> {
    let engine = Engine::open(dir)?;
    if engine.collection("bench").is_ok() {
        engine.drop_collection("bench")?;
    }
    let mut config = CollectionConfig::new(base.dim);
    config.metric = args.metric;
    config.nlist = args.nlist;
    config.flush_rows = args.flush_rows.max(1);
    if args.no_retrain {
        config.retrain = RetrainPolicy {
            growth: 0.0,
            error_drift: 0.0,
            imbalance: 0.0,
            ..RetrainPolicy::default()
        };
    }
    let c = engine.create_collection("bench", config)?;
    progress.phase("measuring the disk: appends of one batch's size, each fdatasynced");
    let disk_bound = disk_bound_rows_per_s(dir, base.dim)?;
    progress.phase(&format!(
        "inserting {} rows through the write-ahead log",
        base.rows
    ));
    let first_batches = args.train_first.div_ceil(1000);
    let mut t = Instant::now();
    let mut latencies = Vec::with_capacity(base.rows / 1000 + 1);
    for (b, chunk) in base.data.chunks(1000 * base.dim).enumerate() {
        if b == first_batches && b > 0 {
            progress.phase("flushing and training before the timed ingest");
            c.flush()?;
            if c.stats().generation == 0 {
                c.retrain(Some(args.nlist))?;
            }
            progress.phase("inserting the remaining rows (timed)");
            latencies.clear();
            t = Instant::now();
        }
        let rows = chunk
            .chunks_exact(base.dim)
            .enumerate()
            .map(|(i, v)| EngineRow {
                id: (b * 1000 + i) as u64,
                vector: v.to_vec(),
                payload: None,
            })
            .collect();
        let t_batch = Instant::now();
        c.upsert(rows)?;
        latencies.push(t_batch.elapsed().as_secs_f64());
    }
    let ingest_s = t.elapsed().as_secs_f64();
    let ingest_rows = base
        .rows
        .saturating_sub((first_batches * 1000).min(base.rows));
    latencies.sort_by(f64::total_cmp);
    let batch_p50_ms = latencies.get(latencies.len() / 2).copied().unwrap_or(0.0) * 1e3;
    progress.phase("flushing and training");
    let t = Instant::now();
    c.flush()?;
    if c.stats().generation == 0 {
        c.retrain(Some(args.nlist))?;
    }
    let train_s = t.elapsed().as_secs_f64();
    drop(c);
    engine.close()?;

    // Reopen a few times and keep the median: one open is a few tens of
    // milliseconds, where a shared machine's noise shows.
    let mut opens = Vec::new();
    for _ in 0..4 {
        let t = Instant::now();
        let engine = Engine::open(dir)?;
        opens.push(t.elapsed().as_secs_f64() * 1e3);
        engine.close()?;
    }
    let t = Instant::now();
    let engine = Engine::open(dir)?;
    opens.push(t.elapsed().as_secs_f64() * 1e3);
    opens.sort_by(f64::total_cmp);
    let open_ms = opens[opens.len() / 2];
    let c = engine.collection("bench")?;
    let stats = c.stats();
    let coll_dir = dir.join("collections").join("bench");
    let disk_bytes = dir_size(&coll_dir);
    Ok(Built {
        train_s,
        build_s: ingest_s + train_s,
        disk_bytes,
        open_ms,
        imbalance: stats.imbalance,
        rows: stats.rows as usize,
        training: format!(
            "by the engine, generation {}, {} lists",
            stats.generation, stats.lists
        ),
        ingest_rows_per_s: Some(ingest_rows as f64 / ingest_s),
        upsert_rows_per_s: None,
        ingest_rows: Some(ingest_rows),
        disk_bound_rows_per_s: Some(disk_bound),
        ingest_batch_p50_ms: Some(batch_p50_ms),
        floor: None,
        target: Box::new(EngineTarget { collection: c }),
    })
}

/// Rows per second the disk takes when each batch of 1,000 rows is a bare
/// append of the size the WAL writes for it (id, flag and vector per row)
/// followed by `fdatasync`: what durable ingest could reach if the engine
/// cost nothing. Appends for about two seconds to a scratch file in `dir`.
fn disk_bound_rows_per_s(dir: &Path, dim: usize) -> Result<f64> {
    use std::io::Write;
    const ROWS: usize = 1000;
    let path = dir.join("disk-probe.tmp");
    let chunk = vec![0x5au8; ROWS * (9 + 4 * dim) + 36];
    let mut f =
        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let t = Instant::now();
    let mut batches = 0u64;
    while t.elapsed().as_secs_f64() < 2.0 && batches < 100_000 {
        f.write_all(&chunk)
            .and_then(|()| f.sync_data())
            .with_context(|| format!("write {}", path.display()))?;
        batches += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
    Ok(batches as f64 * ROWS as f64 / secs)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Reads ground truth and cuts it to the first `k` neighbours per query.
fn read_ground_truth(
    path: &Path,
    queries: &Matrix<f32>,
    base_rows: usize,
    k: usize,
) -> Result<Vec<Vec<u64>>> {
    let gt = vecio::read_ivecs(path)?;
    ensure!(
        gt.rows == queries.rows,
        "{} has {} rows, but there are {} queries",
        path.display(),
        gt.rows,
        queries.rows
    );
    let want = k.min(base_rows);
    ensure!(
        gt.dim >= want,
        "{} holds {} neighbours per query, fewer than k = {k}",
        path.display(),
        gt.dim
    );
    (0..gt.rows)
        .map(|q| {
            gt.row(q)[..want]
                .iter()
                .map(|&id| {
                    usize::try_from(id)
                        .ok()
                        .filter(|&i| i < base_rows)
                        .map(|i| i as u64)
                        .with_context(|| {
                            format!(
                                "{}: query {q} names base row {id}, which does not exist",
                                path.display()
                            )
                        })
                })
                .collect()
        })
        .collect()
}

/// Row numbers ordered by list (stable within a list).
fn group_by_list(assignment: &[(ListId, f32)], nlist: usize) -> Vec<usize> {
    let mut starts = vec![0usize; nlist + 1];
    for (l, _) in assignment {
        starts[l.index() + 1] += 1;
    }
    for i in 0..nlist {
        starts[i + 1] += starts[i];
    }
    let mut order = vec![0usize; assignment.len()];
    for (row, (l, _)) in assignment.iter().enumerate() {
        order[starts[l.index()]] = row;
        starts[l.index()] += 1;
    }
    order
}

fn measure(
    target: &dyn Target,
    queries: &Matrix<f32>,
    truth: &[Vec<u64>],
    sp: SearchParams,
    requested: usize,
    pool: &rayon::ThreadPool,
    min_seconds: f64,
) -> Result<Row> {
    // Recall and work, with a trace.
    let (mut hits, mut total, mut scanned) = (0usize, 0usize, 0u64);
    for (q, want) in truth.iter().enumerate() {
        let (res, n) = target.search_traced(queries.row(q), sp)?;
        hits += res.iter().filter(|id| want.contains(id)).count();
        total += want.len();
        scanned += n;
    }
    let recall = if total == 0 {
        1.0
    } else {
        hits as f64 / total as f64
    };
    let min = Duration::from_secs_f64(min_seconds.max(0.0));
    let (qps, p50_ms, p99_ms) = single_query_latency(target, queries, sp, min, None)?;

    // Batches: the whole query set per call, on every thread and on one.
    let batch_qps = batch_throughput(target, queries, sp, pool, min)?;
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .context("cannot start a one-thread pool")?;
    let batch_qps_1t = batch_throughput(target, queries, sp, &one, min)?;
    Ok(Row {
        qps_16_clients: None,
        in_process: None,
        in_process_paced: None,
        floor_p50_ms: None,
        nprobe: sp.nprobe,
        requested_nprobe: requested,
        recall,
        qps,
        p50_ms,
        p99_ms,
        batch_qps,
        batch_qps_1t,
        scanned: scanned as f64 / truth.len().max(1) as f64,
    })
}

/// The idle time before each query of the paced in-process measurement:
/// about what a server's core idles between one client's requests on
/// loopback. A search that follows idleness runs slower than one of a
/// back-to-back loop (caches and the idle CPU), whatever the transport.
const PACE: Duration = Duration::from_micros(200);

/// One query at a time on this thread, passes over the queries until `min`
/// has passed, sleeping `pause` (untimed) before each: (QPS, p50 ms,
/// p99 ms).
fn single_query_latency(
    target: &dyn Target,
    queries: &Matrix<f32>,
    sp: SearchParams,
    min: Duration,
    pause: Option<Duration>,
) -> Result<(f64, f64, f64)> {
    let mut searcher = Searcher::new();
    let mut latencies = Vec::with_capacity(queries.rows);
    let start = Instant::now();
    loop {
        for q in 0..queries.rows {
            if let Some(p) = pause {
                std::thread::sleep(p);
            }
            let t = Instant::now();
            let r = target.search(&mut searcher, queries.row(q), sp)?;
            latencies.push(t.elapsed());
            std::hint::black_box(r);
        }
        if start.elapsed() >= min {
            break;
        }
    }
    let qps = latencies.len() as f64 / start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct =
        |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    Ok((qps, pct(0.5), pct(0.99)))
}

/// Queries per second of `search_batch` over the whole query set on `pool`,
/// repeated until `min` has passed.
fn batch_throughput(
    target: &dyn Target,
    queries: &Matrix<f32>,
    sp: SearchParams,
    pool: &rayon::ThreadPool,
    min: Duration,
) -> Result<f64> {
    let start = Instant::now();
    let mut done = 0usize;
    loop {
        let r = pool.install(|| target.search_all(queries, sp))?;
        std::hint::black_box(r);
        done += queries.rows;
        if start.elapsed() >= min {
            break;
        }
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

/// The process's peak resident set size, where the OS reports it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Progress on stderr: a spinner per phase when stderr is a terminal; notes
/// (warnings, clamped nprobe) always go to stderr.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new() -> Progress {
        // indicatif draws nothing when stderr is not a terminal.
        let bar = Some(()).map(|()| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress { bar }
    }

    pub(crate) fn phase(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_string());
        }
    }

    fn note(&self, msg: &str) {
        match &self.bar {
            Some(b) if !b.is_hidden() => b.println(msg),
            _ => eprintln!("{msg}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
