//! `vdbctl bench`: build an IVF_Flat index from vector files in-process and
//! measure recall and speed over an nprobe sweep.
//!
//! Steps: read base/query (and ground truth); train k-means; assign every
//! base row to a list; write a segment and a centroid file into a temporary
//! directory; map them; then for each nprobe measure recall@k, one-query-at-
//! a-time QPS and latency percentiles on one thread, and batch QPS over the
//! thread pool. Row `i` of the base file gets id `i`, as texmex ground truth
//! assumes.
//!
//! With `--server` the same benchmark is measured over gRPC: the base rows
//! are streamed into a collection "bench" with `Import` (replacing one of
//! that name), flushed so it trains, and every search is one `Search`
//! request (recall through `Explain`, to count the vectors scanned).
//! `--server local` starts the server in this process on a free loopback
//! port, over a data directory (`--data-dir` or a temporary one), and also
//! measures the same collection through the engine directly, so the gRPC
//! overhead comes from one run. The same single-query requests also go to
//! an empty collection "bench-floor" of the same dimension: what a request
//! costs with no search in it.
//!
//! The pieces: [`args`] (the flags), [`target`] (what is searched: a
//! segment, a collection through the engine, or a server over gRPC),
//! [`build`] (making it from the base vectors), [`measure`] (recall, QPS,
//! latency), [`report`] (the table or JSON lines) and [`progress`].

mod args;
mod build;
mod measure;
mod progress;
mod report;
mod target;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use rayon::prelude::*;
use vdb_core::distance;
use vdb_ivf::{SearchParams, flat_search};

pub use args::BenchArgs;
use build::{build_engine, build_segment, build_server};
use measure::{
    PACE, cold_latencies, concurrent_qps, maintenance_latency, measure, single_query_latency,
};
use progress::Progress;
use report::Report;
use target::{Addr, in_process_target, search_options};

use crate::vecio::{self, Matrix};

/// Runs the benchmark and prints the results to stdout.
pub fn run(args: &BenchArgs) -> Result<()> {
    ensure!(args.k >= 1, "--k must be at least 1");
    ensure!(args.nlist >= 1, "--nlist must be at least 1");
    ensure!(!args.nprobe.is_empty(), "--nprobe needs at least one value");
    ensure!(
        !args.maintenance_latency || args.data_dir.is_some(),
        "--maintenance-latency needs --data-dir"
    );
    ensure!(
        !args.churn || args.data_dir.is_some(),
        "--churn needs --data-dir"
    );
    ensure!(
        !args.cold_vectors || (args.data_dir.is_none() && args.server.is_none()),
        "--cold-vectors measures a segment: not with --data-dir or --server"
    );
    if let Some(e) = args.rerank_epsilon {
        ensure!(
            e.is_finite() && e >= 0.0,
            "--rerank-epsilon {e} must be a finite number of at least 0"
        );
    }
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
                let (l, addr) = crate::local::start_local(args.data_dir.as_deref())?;
                local = Some(l);
                addr
            } else {
                server.clone()
            };
            let addr = Addr {
                server,
                api_key: args.api_key.clone(),
                tls_ca: args.tls_ca.clone(),
            };
            build_server(args, &addr, &base, &progress)?
        }
        (None, Some(dir)) => build_engine(args, dir, &base, &progress)?,
        (None, None) => build_segment(args, &base, &pool, &progress)?,
    };
    let in_process = match &local {
        Some(l) => Some(in_process_target(l, args.rerank_epsilon)?),
        None => None,
    };
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
        let sp = SearchParams {
            k: args.k,
            nprobe,
            max_probes: None,
        };
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
            row.qps_16_clients = Some(concurrent_qps(
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
        if args.cold_vectors {
            progress.phase(&format!(
                "searching with nprobe {nprobe}, the vectors evicted before each query"
            ));
            row.cold = Some(cold_latencies(built.target.as_ref(), &queries, sp, min)?);
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
        &args.data_dir,
    ) {
        (true, Some(c), Some(&nprobe), Some(data_dir)) => {
            progress
                .phase("measuring search latency during retraining, rebalancing and compaction");
            let sp = SearchParams {
                k: args.k,
                nprobe: nprobe.min(args.nlist),
                max_probes: None,
            };
            let dir = data_dir.join("collections").join("bench");
            Some(maintenance_latency(
                c,
                &dir,
                &queries,
                search_options(sp, args.rerank_epsilon),
            )?)
        }
        _ => None,
    };
    progress.finish();

    Report {
        args,
        built: &built,
        rows: &rows,
        maint: maint.as_ref(),
        dim: queries.dim,
        queries: queries.rows,
        threads,
    }
    .write()
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
