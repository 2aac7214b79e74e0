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
use vdb_core::{Generation, InvertedLists, ListId, Metric, SegmentId, distance};
use vdb_format::{CentroidFile, CentroidMeta, SegmentMeta, SegmentReader, SegmentWriter};
use vdb_ivf::{
    CoarseQuantizer, KMeansParams, SearchParams, SearchTrace, Searcher, Source, flat_search,
    kmeans, search_batch,
};

use crate::json::JsonObject;
use crate::vecio::{self, Matrix};

/// Arguments of `vdbctl bench`.
#[derive(Debug, clap::Args)]
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
    /// One JSON object per line per nprobe instead of a table.
    #[arg(long)]
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
}

/// One row of the results.
#[derive(Debug, Clone)]
struct Row {
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
    let imbalance = vdb_ivf::imbalance_factor(&sizes);

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
        rows.push(measure(
            &quantizer,
            &segment,
            &queries,
            &truth,
            sp,
            requested,
            &pool,
            args.min_seconds,
        )?);
    }
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
                .uint("rows", segment.rows() as u64)
                .uint("dim", segment.dim() as u64)
                .uint("queries", queries.rows as u64)
                .str("metric", metric.name())
                .uint("threads", threads as u64)
                .str("isa", isa.name());
            if let Some(rss) = peak_rss {
                o.uint("peak_rss_bytes", rss);
            }
            writeln!(out, "{}", o.finish())?;
        }
    } else {
        writeln!(
            out,
            "vdb bench: {} base vectors of dim {} ({metric}), {} queries, k={}, nlist={}, kernels {isa}, {threads} threads",
            segment.rows(),
            segment.dim(),
            queries.rows,
            args.k,
            args.nlist
        )?;
        writeln!(
            out,
            "train {train_s:.3} s ({} vectors, {} iterations)   build {build_s:.3} s   disk {}   open {open_ms:.2} ms   list imbalance {imbalance:.2}{}",
            report.sample_size,
            report.iterations,
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
    }
    Ok(())
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

#[allow(clippy::too_many_arguments)]
fn measure(
    quantizer: &CoarseQuantizer,
    segment: &SegmentReader,
    queries: &Matrix<f32>,
    truth: &[Vec<u64>],
    sp: SearchParams,
    requested: usize,
    pool: &rayon::ThreadPool,
    min_seconds: f64,
) -> Result<Row> {
    let sources: [&dyn InvertedLists; 1] = [segment];
    // Recall and work, with a trace.
    let mut searcher = Searcher::new();
    let mut trace = SearchTrace::default();
    let (mut hits, mut total, mut scanned) = (0usize, 0usize, 0u64);
    for (q, want) in truth.iter().enumerate() {
        let res = searcher.search(quantizer, &sources, queries.row(q), sp, Some(&mut trace))?;
        hits += res.iter().filter(|n| want.contains(&n.id.0)).count();
        total += want.len();
        scanned += trace.fine_distances;
    }
    let recall = if total == 0 {
        1.0
    } else {
        hits as f64 / total as f64
    };

    // One query at a time on this thread.
    let min = Duration::from_secs_f64(min_seconds.max(0.0));
    let mut latencies = Vec::with_capacity(queries.rows);
    let start = Instant::now();
    loop {
        for q in 0..queries.rows {
            let t = Instant::now();
            let r = searcher.search(quantizer, &sources, queries.row(q), sp, None)?;
            latencies.push(t.elapsed());
            std::hint::black_box(r);
        }
        if start.elapsed() >= min {
            break;
        }
    }
    let single = start.elapsed().as_secs_f64();
    let qps = latencies.len() as f64 / single;
    latencies.sort_unstable();
    let pct =
        |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;

    // Batches: the whole query set per call, on every thread and on one.
    let batch_sources = [Source::all(segment)];
    let batch_qps = batch_throughput(quantizer, &batch_sources, queries, sp, pool, min)?;
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .context("cannot start a one-thread pool")?;
    let batch_qps_1t = batch_throughput(quantizer, &batch_sources, queries, sp, &one, min)?;
    Ok(Row {
        nprobe: sp.nprobe,
        requested_nprobe: requested,
        recall,
        qps,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        batch_qps,
        batch_qps_1t,
        scanned: scanned as f64 / truth.len().max(1) as f64,
    })
}

/// Queries per second of `search_batch` over the whole query set on `pool`,
/// repeated until `min` has passed.
fn batch_throughput(
    quantizer: &CoarseQuantizer,
    sources: &[Source<'_>],
    queries: &Matrix<f32>,
    sp: SearchParams,
    pool: &rayon::ThreadPool,
    min: Duration,
) -> Result<f64> {
    let start = Instant::now();
    let mut done = 0usize;
    loop {
        let r = pool.install(|| search_batch(quantizer, sources, &queries.data, sp))?;
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
struct Progress {
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

    fn phase(&self, msg: &str) {
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
