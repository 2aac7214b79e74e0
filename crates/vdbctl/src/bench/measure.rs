//! Measuring a target: recall against the ground truth, single-query QPS
//! and latency, batch QPS, concurrent clients, and latency while
//! maintenance runs.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use vdb_engine::{Collection, SearchOptions};
use vdb_ivf::SearchParams;

use super::build::dir_size;
use super::target::Target;
use crate::vecio::Matrix;

/// One row of the results.
#[derive(Debug, Clone)]
pub(super) struct Row {
    /// Over gRPC: QPS of 16 clients sending one query per request.
    pub(super) qps_16_clients: Option<f64>,
    /// Over gRPC with `--server local`: the same collection searched in
    /// process (QPS, p50, p99 of one query per call).
    pub(super) in_process: Option<(f64, f64, f64)>,
    /// The same, with [`PACE`] of idleness before each query (p50, p99).
    pub(super) in_process_paced: Option<(f64, f64)>,
    /// Over gRPC: p50 ms of one query per request to an empty collection
    /// (what the transport alone costs).
    pub(super) floor_p50_ms: Option<f64>,
    pub(super) nprobe: usize,
    pub(super) requested_nprobe: usize,
    pub(super) recall: f64,
    pub(super) qps: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) batch_qps: f64,
    pub(super) batch_qps_1t: f64,
    /// Rows scanned per query (by vector or by code).
    pub(super) scanned: f64,
    /// Exact distances per query (fine search only).
    pub(super) exact: f64,
    /// With `--cold-vectors`: one query at a time, the vectors evicted
    /// before each; with the kernel's read-around, then advised random.
    pub(super) cold: Option<(Cold, Cold)>,
}

/// Searches with the vectors out of memory before each query.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cold {
    pub(super) queries: usize,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) mean_ms: f64,
    /// Bytes this process read from the disk per query (`read_bytes` of
    /// `/proc/self/io`); `None` where the kernel does not count them.
    pub(super) read_bytes: Option<f64>,
}

/// The value at quantile `p` of `sorted` (ascending; 0 when empty).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get((sorted.len().saturating_sub(1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

/// Bytes this process caused to be read from storage so far.
fn read_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("read_bytes:"))?
        .trim()
        .parse()
        .ok()
}

/// [`cold_latency`] with the kernel's read-around on page faults, then
/// with random access advised; afterwards the advice the segment was
/// opened with (random for a segment with codes).
pub(super) fn cold_latencies(
    target: &dyn Target,
    queries: &Matrix<f32>,
    sp: SearchParams,
    min: Duration,
) -> Result<(Cold, Cold)> {
    target.advise_random_vectors(Some(false))?;
    let around = cold_latency(target, queries, sp, min);
    target.advise_random_vectors(Some(true))?;
    let random = cold_latency(target, queries, sp, min);
    target.advise_random_vectors(None)?;
    Ok((around?, random?))
}

/// One query at a time with the target's vectors evicted (untimed)
/// before each, for at least `min` and 50 queries (at most one pass).
fn cold_latency(
    target: &dyn Target,
    queries: &Matrix<f32>,
    sp: SearchParams,
    min: Duration,
) -> Result<Cold> {
    let mut searcher = target.searcher();
    let mut latencies = Vec::new();
    let mut read = Some(0u64);
    let start = Instant::now();
    for q in 0..queries.rows {
        if latencies.len() >= 50 && start.elapsed() >= min {
            break;
        }
        target.evict_vectors()?;
        let before = read_bytes();
        let t = Instant::now();
        let r = target.search(&mut searcher, queries.row(q), sp)?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(r);
        read = match (read, before, read_bytes()) {
            (Some(sum), Some(b), Some(a)) => Some(sum + a.saturating_sub(b)),
            _ => None,
        };
    }
    let n = latencies.len().max(1);
    let mean_ms = latencies.iter().sum::<f64>() / n as f64;
    latencies.sort_by(f64::total_cmp);
    Ok(Cold {
        queries: latencies.len(),
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        mean_ms,
        read_bytes: read.map(|r| r as f64 / n as f64),
    })
}

/// Search latency while one kind of maintenance runs (or idle).
#[derive(Debug, Clone, Copy)]
pub(super) struct Phase {
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) searches: usize,
    /// How long the maintenance ran.
    pub(super) seconds: f64,
    /// The most the collection's directory grew while it ran, as a
    /// fraction of its size before (sampled every 10 ms).
    pub(super) peak_extra_disk: f64,
}

/// Search latency while maintenance runs, each (idle before, during).
#[derive(Debug)]
pub(super) struct MaintenanceLatency {
    pub(super) retrain: (Phase, Phase),
    pub(super) rebalance: (Phase, Phase),
    /// Lists the rebalancing split.
    pub(super) splits: u64,
    pub(super) compact: (Phase, Phase),
}

/// Single-query searches, one after another on this thread, idle for a
/// second and then for as long as a retraining (new centroids, every row
/// rewritten), a local rebalancing (lists split until they are about as
/// even as the policy's target) and a compaction (after deleting 1 % of
/// the rows) runs on another thread, for each in turn; meanwhile a third
/// samples the size of `dir`, the collection's directory.
pub(super) fn maintenance_latency(
    c: &Arc<Collection>,
    dir: &Path,
    queries: &Matrix<f32>,
    opts: SearchOptions,
) -> Result<MaintenanceLatency> {
    let search_while = |busy: &dyn Fn() -> bool| -> Result<Phase> {
        let mut lat = Vec::new();
        let mut q = 0;
        while busy() || lat.len() < 100 {
            let query = queries.row(q % queries.rows).to_vec();
            let t = Instant::now();
            c.search(&[query], opts.clone())?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            q += 1;
        }
        lat.sort_by(f64::total_cmp);
        Ok(Phase {
            p50_ms: percentile(&lat, 0.5),
            p99_ms: percentile(&lat, 0.99),
            searches: lat.len(),
            seconds: 0.0,
            peak_extra_disk: 0.0,
        })
    };
    // Each kind of maintenance changes what a search costs (a
    // rebalancing evens lists out), so each is compared with a second of
    // idle searches of the state it starts from.
    let during = |work: &(dyn Fn() -> vdb_engine::Result<()> + Sync)| -> Result<(Phase, Phase)> {
        let start = Instant::now();
        let idle = search_while(&|| start.elapsed().as_secs_f64() < 1.0)?;
        let done = AtomicBool::new(false);
        let before = dir_size(dir);
        let t = Instant::now();
        std::thread::scope(|s| {
            let worker = s.spawn(|| {
                let r = work();
                done.store(true, Ordering::Release);
                r
            });
            let sampler = s.spawn(|| {
                let mut peak = before;
                while !done.load(Ordering::Acquire) {
                    peak = peak.max(dir_size(dir));
                    std::thread::sleep(Duration::from_millis(10));
                }
                peak
            });
            let lat = search_while(&|| !done.load(Ordering::Acquire));
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("maintenance thread panicked"))??;
            let seconds = t.elapsed().as_secs_f64();
            let peak = sampler
                .join()
                .map_err(|_| anyhow::anyhow!("disk sampler panicked"))?;
            let busy = Phase {
                seconds,
                peak_extra_disk: peak.saturating_sub(before) as f64 / before.max(1) as f64,
                ..lat?
            };
            Ok((idle, busy))
        })
    };
    let retrain = during(&|| c.retrain(None))?;
    let before = c.stats().rebalances;
    let rebalance = during(&|| c.rebalance().map(|_| ()))?;
    let splits = c.stats().rebalances.saturating_sub(before);
    let rows = c.stats().rows;
    let doomed: Vec<u64> = (0..rows).step_by(100).collect();
    c.delete(&doomed)?;
    let compact = during(&|| c.compact().map(|_| ()))?;
    Ok(MaintenanceLatency {
        retrain,
        rebalance,
        splits,
        compact,
    })
}

pub(super) fn measure(
    target: &dyn Target,
    queries: &Matrix<f32>,
    truth: &[Vec<u64>],
    sp: SearchParams,
    requested: usize,
    pool: &rayon::ThreadPool,
    min_seconds: f64,
) -> Result<Row> {
    // Recall and work, with a trace.
    let (mut hits, mut total, mut scanned, mut exact) = (0usize, 0usize, 0u64, 0u64);
    for (q, want) in truth.iter().enumerate() {
        let (res, work) = target.search_traced(queries.row(q), sp)?;
        hits += res.iter().filter(|id| want.contains(id)).count();
        total += want.len();
        scanned += work.scanned;
        exact += work.exact;
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
        exact: exact as f64 / truth.len().max(1) as f64,
        cold: None,
    })
}

/// The idle time before each query of the paced in-process measurement:
/// about what a server's core idles between one client's requests on
/// loopback. A search that follows idleness runs slower than one of a
/// back-to-back loop (caches and the idle CPU), whatever the transport.
pub(super) const PACE: Duration = Duration::from_micros(200);

/// One query at a time on this thread, passes over the queries until `min`
/// has passed, sleeping `pause` (untimed) before each: (QPS, p50 ms,
/// p99 ms).
pub(super) fn single_query_latency(
    target: &dyn Target,
    queries: &Matrix<f32>,
    sp: SearchParams,
    min: Duration,
    pause: Option<Duration>,
) -> Result<(f64, f64, f64)> {
    let mut searcher = target.searcher();
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
pub(super) fn batch_throughput(
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

/// QPS of `clients` threads each sending one query per request, one after
/// another, for `seconds`.
pub(super) fn concurrent_qps(
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
                    let mut searcher = target.searcher();
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
