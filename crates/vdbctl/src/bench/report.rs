//! The benchmark's output: a table for people, or one JSON object per
//! nprobe.

use std::io::Write;

use anyhow::Result;
use vdb_core::distance;

use super::args::BenchArgs;
use super::build::Built;
use super::measure::{MaintenanceLatency, PACE, Row};
use crate::json::JsonObject;

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
                    .uint("dim", dim as u64)
                    .uint("queries", queries as u64)
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
                if let Some(m) = maint {
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
                built.rows, dim, queries, args.k, args.nlist
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
            for r in rows {
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
            if let Some(m) = maint {
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
}

/// The process's peak resident set size, where the OS reports it.
pub(super) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub(super) fn human_bytes(b: u64) -> String {
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
