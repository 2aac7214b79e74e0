//! The benchmark's output: a table for people, or one JSON object per
//! nprobe.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use vdb_core::distance;

use super::args::BenchArgs;
use super::build::Built;
use super::measure::{Cold, MaintenanceLatency, PACE, Row};

/// Everything one run measured.
pub(super) struct Report<'a> {
    pub(super) args: &'a BenchArgs,
    pub(super) built: &'a Built,
    pub(super) rows: &'a [Row],
    pub(super) maint: Option<&'a MaintenanceLatency>,
    pub(super) dim: usize,
    pub(super) queries: usize,
    pub(super) threads: usize,
}

impl Report<'_> {
    /// Writes the report to stdout.
    pub(super) fn write(&self) -> Result<()> {
        let Report {
            args,
            built,
            rows,
            maint,
            dim,
            queries,
            threads,
        } = *self;
        let metric = args.metric;
        let (train_s, build_s, disk_bytes, open_ms, imbalance) = (
            built.train_s,
            built.build_s,
            built.disk_bytes,
            built.open_ms,
            built.imbalance,
        );
        let isa = distance::active().isa;
        let peak_rss = peak_rss_bytes();
        let out = std::io::stdout();
        let mut out = out.lock();
        if args.json {
            for r in rows {
                let line = Line::new(self, r, isa.name(), peak_rss);
                writeln!(out, "{}", serde_json::to_string(&line)?)?;
            }
        } else {
            writeln!(
                out,
                "vdb bench: {} base vectors of dim {} ({metric}), {} queries, k={}, {}, nlist={}, kernels {isa}, {threads} threads",
                built.rows,
                dim,
                queries,
                args.k,
                index_text(args),
                args.nlist
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
                    "engine: inserted {} rows through the WAL (sync=always) at {r:.0} rows/s (median write of 1,000 rows {:.2} ms); the disk alone takes {:.0} rows/s (same-size appends, each fdatasynced); compactions and trainings rewrote {:.2} bytes per byte flushed",
                    built.ingest_rows.unwrap_or(0),
                    built.ingest_batch_p50_ms.unwrap_or(f64::NAN),
                    built.disk_bound_rows_per_s.unwrap_or(f64::NAN),
                    built.rewrite_amplification.unwrap_or(f64::NAN)
                )?;
            }
            writeln!(
                out,
                "train {train_s:.3} s ({})   build {build_s:.3} s   disk {}   open {open_ms:.2} ms   list imbalance {imbalance:.2}{}",
                built.training,
                crate::human::bytes(disk_bytes),
                peak_rss
                    .map(|b| format!("   peak RSS {}", crate::human::bytes(b)))
                    .unwrap_or_default()
            )?;
            writeln!(
                out,
                "{:>7} {:>10} {:>12} {:>9} {:>9} {:>12} {:>14} {:>14} {:>12}",
                "nprobe",
                format!("recall@{}", args.k),
                "QPS 1-thread",
                "p50 ms",
                "p99 ms",
                "batch QPS",
                "batch 1-thread",
                "scanned/query",
                "exact/query"
            )?;
            for r in rows {
                let clamp = if r.nprobe != r.requested_nprobe {
                    format!(" (asked {})", r.requested_nprobe)
                } else {
                    String::new()
                };
                writeln!(
                    out,
                    "{:>7} {:>10.4} {:>12.0} {:>9.3} {:>9.3} {:>12.0} {:>14.0} {:>14.0} {:>12.0}{clamp}",
                    r.nprobe,
                    r.recall,
                    r.qps,
                    r.p50_ms,
                    r.p99_ms,
                    r.batch_qps,
                    r.batch_qps_1t,
                    r.scanned,
                    r.exact
                )?;
            }
            for r in rows {
                let Some(cold) = r.cold else { continue };
                for (c, how) in [(cold.0, "read-around"), (cold.1, "random access advised")] {
                    writeln!(
                        out,
                        "vectors evicted before each query at nprobe {} ({how}): p50 {:.3} ms, p99 {:.3} ms ({:.0} QPS 1-thread, {} queries){}",
                        r.nprobe,
                        c.p50_ms,
                        c.p99_ms,
                        1e3 / c.mean_ms.max(1e-9),
                        c.queries,
                        c.read_bytes
                            .map(|b| format!(
                                ", {} read from the disk a query",
                                crate::human::bytes(b as u64)
                            ))
                            .unwrap_or_default()
                    )?;
                }
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
            if let Some(m) = maint {
                write!(
                    out,
                    "single-query latency at nprobe {}, idle the second before / during",
                    args.nprobe.first().copied().unwrap_or(0).min(args.nlist),
                )?;
                let splits = format!("rebalancing ({} list splits)", m.splits);
                for (name, (idle, p)) in [
                    ("retraining", &m.retrain),
                    (splits.as_str(), &m.rebalance),
                    ("compaction", &m.compact),
                ] {
                    write!(
                        out,
                        "; {name}: p50 {:.3} / {:.3} ms, p99 {:.3} / {:.3} ms ({:.2}×; {} searches, {:.1} s, peak extra disk {:.0} % of the collection)",
                        idle.p50_ms,
                        p.p50_ms,
                        idle.p99_ms,
                        p.p99_ms,
                        p.p99_ms / idle.p99_ms.max(1e-9),
                        p.searches,
                        p.seconds,
                        p.peak_extra_disk * 100.0
                    )?;
                }
                writeln!(out)?;
            }
        }
        Ok(())
    }
}

/// The process's peak resident set size, where the OS reports it.
pub(super) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// One JSON line of `--json`: the measurements at one nprobe with the
/// run's context. Optional keys appear only when measured.
#[derive(Debug, Serialize)]
struct Line<'a> {
    nlist: usize,
    nprobe: usize,
    requested_nprobe: usize,
    nprobe_clamped: bool,
    k: usize,
    recall: f64,
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    batch_qps: f64,
    batch_qps_1t: f64,
    train_s: f64,
    build_s: f64,
    disk_bytes: u64,
    open_ms: f64,
    scanned_per_query: f64,
    /// Exact distances of the fine search per query: every scanned row's
    /// with ivf_flat, the rows the codes' bound let through with
    /// ivf_rabitq.
    exact_per_query: f64,
    index_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rerank_epsilon: Option<f32>,
    imbalance: f64,
    rows: usize,
    dim: usize,
    queries: usize,
    metric: &'a str,
    threads: usize,
    isa: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk_bound_rows_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ingest_batch_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ingest_rows: Option<usize>,
    /// Bytes compactions and trainings wrote per byte flushes wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    rewrite_amplification: Option<f64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    maintenance: Option<MaintenanceKeys>,
    #[serde(skip_serializing_if = "Option::is_none")]
    qps_16_clients: Option<f64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    in_process: Option<InProcessKeys>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc_floor_overhead: Option<f64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    in_process_paced: Option<PacedKeys>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc_floor_p50_ms: Option<f64>,
    /// `--cold-vectors`: `cold_*` (read-around) and `cold_random_*`.
    #[serde(flatten)]
    cold: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ingest_rows_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upsert_rows_per_s: Option<f64>,
    /// Clients sending the timed Upsert requests at once (`--writers`).
    #[serde(skip_serializing_if = "Option::is_none")]
    upsert_writers: Option<usize>,
    /// The bench collection's sync mode, when `--sync` set it.
    #[serde(skip_serializing_if = "Option::is_none")]
    sync: Option<String>,
    /// `segment`, `engine` or `server`: what was measured.
    mode: &'static str,
}

/// Search latency idle and during maintenance (`--maintenance-latency`);
/// `idle_*` is the second before the retraining, `*_idle_p99_ms` the
/// second before the others.
#[derive(Debug, Serialize)]
struct MaintenanceKeys {
    idle_p50_ms: f64,
    idle_p99_ms: f64,
    rebalance_idle_p99_ms: f64,
    compact_idle_p99_ms: f64,
    retrain_p50_ms: f64,
    retrain_p99_ms: f64,
    compact_p50_ms: f64,
    compact_p99_ms: f64,
    retrain_searches: usize,
    compact_searches: usize,
    rebalance_p50_ms: f64,
    rebalance_p99_ms: f64,
    rebalance_searches: usize,
    rebalance_splits: u64,
    retrain_s: f64,
    rebalance_s: f64,
    compact_s: f64,
    /// Peak growth of the collection's directory while each ran, as a
    /// fraction of its size before.
    retrain_peak_extra_disk: f64,
    rebalance_peak_extra_disk: f64,
    compact_peak_extra_disk: f64,
}

/// The same collection searched in process (`--server local`).
#[derive(Debug, Serialize)]
struct InProcessKeys {
    inproc_qps: f64,
    inproc_p50_ms: f64,
    inproc_p99_ms: f64,
    grpc_overhead: f64,
}

/// In process with idle time before each query.
#[derive(Debug, Serialize)]
struct PacedKeys {
    inproc_paced_p50_ms: f64,
    inproc_paced_p99_ms: f64,
    grpc_paced_overhead: f64,
}

impl<'a> Line<'a> {
    fn new(report: &Report<'a>, r: &Row, isa: &'a str, peak_rss_bytes: Option<u64>) -> Line<'a> {
        let (args, built) = (report.args, report.built);
        let mode = if args.server.is_some() {
            "server"
        } else if built.ingest_rows_per_s.is_some() {
            "engine"
        } else {
            "segment"
        };
        Line {
            nlist: args.nlist,
            nprobe: r.nprobe,
            requested_nprobe: r.requested_nprobe,
            nprobe_clamped: r.nprobe != r.requested_nprobe,
            k: args.k,
            recall: r.recall,
            qps: r.qps,
            p50_ms: r.p50_ms,
            p99_ms: r.p99_ms,
            batch_qps: r.batch_qps,
            batch_qps_1t: r.batch_qps_1t,
            train_s: built.train_s,
            build_s: built.build_s,
            disk_bytes: built.disk_bytes,
            open_ms: built.open_ms,
            cold: r
                .cold
                .map(|(around, random)| {
                    let mut keys = cold_keys("cold", &around);
                    keys.extend(cold_keys("cold_random", &random));
                    keys
                })
                .unwrap_or_default(),
            scanned_per_query: r.scanned,
            exact_per_query: r.exact,
            index_type: args.index_type.name(),
            rerank_epsilon: args.rerank_epsilon,
            imbalance: built.imbalance,
            rows: built.rows,
            dim: report.dim,
            queries: report.queries,
            metric: args.metric.name(),
            threads: report.threads,
            isa,
            peak_rss_bytes,
            disk_bound_rows_per_s: built.disk_bound_rows_per_s,
            ingest_batch_p50_ms: built.ingest_batch_p50_ms,
            ingest_rows: built.ingest_rows,
            rewrite_amplification: built.rewrite_amplification,
            maintenance: report.maint.map(|m| MaintenanceKeys {
                idle_p50_ms: m.retrain.0.p50_ms,
                idle_p99_ms: m.retrain.0.p99_ms,
                retrain_p50_ms: m.retrain.1.p50_ms,
                retrain_p99_ms: m.retrain.1.p99_ms,
                compact_idle_p99_ms: m.compact.0.p99_ms,
                compact_p50_ms: m.compact.1.p50_ms,
                compact_p99_ms: m.compact.1.p99_ms,
                retrain_searches: m.retrain.1.searches,
                compact_searches: m.compact.1.searches,
                rebalance_idle_p99_ms: m.rebalance.0.p99_ms,
                rebalance_p50_ms: m.rebalance.1.p50_ms,
                rebalance_p99_ms: m.rebalance.1.p99_ms,
                rebalance_searches: m.rebalance.1.searches,
                rebalance_splits: m.splits,
                retrain_s: m.retrain.1.seconds,
                rebalance_s: m.rebalance.1.seconds,
                compact_s: m.compact.1.seconds,
                retrain_peak_extra_disk: m.retrain.1.peak_extra_disk,
                rebalance_peak_extra_disk: m.rebalance.1.peak_extra_disk,
                compact_peak_extra_disk: m.compact.1.peak_extra_disk,
            }),
            qps_16_clients: r.qps_16_clients,
            in_process: r.in_process.map(|(q, p50, p99)| InProcessKeys {
                inproc_qps: q,
                inproc_p50_ms: p50,
                inproc_p99_ms: p99,
                grpc_overhead: q / r.qps - 1.0,
            }),
            grpc_floor_overhead: r
                .in_process
                .zip(r.floor_p50_ms)
                .map(|((_, p50, _), f)| f / p50),
            in_process_paced: r.in_process_paced.map(|(p50, p99)| PacedKeys {
                inproc_paced_p50_ms: p50,
                inproc_paced_p99_ms: p99,
                grpc_paced_overhead: r.p50_ms / p50 - 1.0,
            }),
            grpc_floor_p50_ms: r.floor_p50_ms,
            ingest_rows_per_s: match mode {
                "server" => Some(built.ingest_rows_per_s.unwrap_or(0.0)),
                _ => built.ingest_rows_per_s,
            },
            upsert_rows_per_s: (mode == "server").then(|| built.upsert_rows_per_s.unwrap_or(0.0)),
            upsert_writers: (mode == "server").then_some(args.writers.max(1)),
            sync: args.sync.clone(),
            mode,
        }
    }
}

/// One `--cold-vectors` measurement as JSON keys `{prefix}_queries`,
/// `_p50_ms`, `_p99_ms`, `_qps` (one thread, one query after another,
/// evictions untimed) and `_read_bytes_per_query` (where counted).
fn cold_keys(prefix: &str, c: &Cold) -> serde_json::Map<String, serde_json::Value> {
    let mut keys = serde_json::Map::new();
    keys.insert(format!("{prefix}_queries"), c.queries.into());
    keys.insert(format!("{prefix}_p50_ms"), c.p50_ms.into());
    keys.insert(format!("{prefix}_p99_ms"), c.p99_ms.into());
    keys.insert(format!("{prefix}_qps"), (1e3 / c.mean_ms.max(1e-9)).into());
    if let Some(b) = c.read_bytes {
        keys.insert(format!("{prefix}_read_bytes_per_query"), b.into());
    }
    keys
}

/// The index type for the header, with the error bound's multiplier when
/// it applies.
fn index_text(args: &BenchArgs) -> String {
    match (args.index_type, args.rerank_epsilon) {
        (vdb_engine::IndexType::IvfRabitq, Some(e)) => format!("ivf_rabitq (rerank epsilon {e})"),
        (t, _) => t.name().to_string(),
    }
}
