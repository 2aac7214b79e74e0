//! Prometheus metrics: what the server counts as it serves (requests by
//! RPC and status code with their latencies, requests refused by the
//! concurrency limit) and what it reads from the engine when scraped (each
//! collection's rows, segments, memtable, lists, training). Served in
//! Prometheus's text format at `/metrics` over plain HTTP/1.1 on a listener
//! of its own (`vdbd --metrics-listen`); every metric is documented in
//! `docs/server.md`.
//!
//! Recording a request costs two atomic additions and a histogram bucket
//! search; the engine is only read when Prometheus scrapes.

mod http;
mod layer;
mod recall;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::proto::{Counter, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use tokio::sync::Semaphore;
use vdb_engine::Engine;

pub use http::serve_metrics;
pub(crate) use layer::RequestMetricsLayer;
pub(crate) use recall::{RecallSampler, RecallWindows, Sample};

/// Latency buckets of the request histogram, in seconds: 100 µs to 30 s,
/// about three a decade (a vdb search is tens of microseconds to tens of
/// milliseconds; a retraining or a snapshot may take seconds).
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The server's metrics and the registry they are encoded from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    refused: IntCounter,
    search: SearchCounters,
    in_flight: IntGauge,
    max_concurrent: IntGauge,
    /// Per collection, set from the engine at each scrape.
    collections: CollectionGauges,
    /// The recall samples' windows.
    pub(crate) recall: Arc<RecallWindows>,
    /// One scrape at a time: a scrape clears the per-collection gauges
    /// (a dropped collection must disappear) before setting them again.
    scrape: Mutex<()>,
    /// The concurrency permits the service hands out, to report how many
    /// are taken.
    permits: Mutex<Option<(Arc<Semaphore>, usize)>>,
}

/// What searches did, by collection, counted as they are answered.
#[derive(Debug)]
struct SearchCounters {
    queries: IntCounterVec,
    lists: IntCounterVec,
    scanned: IntCounterVec,
    exact: IntCounterVec,
    /// Rows scored per query, one observation per request (its mean).
    scanned_per_query: HistogramVec,
}

impl SearchCounters {
    fn new(registry: &Registry) -> prometheus::Result<SearchCounters> {
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), &["collection"])?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let scanned_per_query = HistogramVec::new(
            HistogramOpts::new(
                "vdb_search_rows_scanned_per_query",
                "Rows scored per query of a Search request (the request's mean)",
            )
            .buckets(prometheus::exponential_buckets(100.0, 4.0, 10)?),
            &["collection"],
        )?;
        registry.register(Box::new(scanned_per_query.clone()))?;
        Ok(SearchCounters {
            queries: counter("vdb_search_queries_total", "Queries searched (not exact)")?,
            lists: counter(
                "vdb_search_lists_probed_total",
                "Lists probed by those queries (a filtered search may probe past nprobe)",
            )?,
            scanned: counter(
                "vdb_search_rows_scanned_total",
                "Rows those queries scored, by exact distance or by code estimate",
            )?,
            exact: counter(
                "vdb_search_exact_distances_total",
                "Exact distances those queries computed (in ivf_rabitq lists: the reranked rows)",
            )?,
            scanned_per_query,
        })
    }
}

impl SearchCounters {
    /// Drops the series of collections not in `live` (dropped ones), so
    /// that they leave the page as the gauges do.
    fn forget_except(&self, live: &[String]) {
        use prometheus::core::Collector;
        let gone = |families: Vec<MetricFamily>| -> Vec<String> {
            let mut names: Vec<String> = families
                .iter()
                .flat_map(|f| f.get_metric())
                .flat_map(|m| m.get_label())
                .filter(|l| l.name() == "collection" && !live.iter().any(|n| n == l.value()))
                .map(|l| l.value().to_string())
                .collect();
            names.dedup();
            names
        };
        for vec in [&self.queries, &self.lists, &self.scanned, &self.exact] {
            for name in gone(vec.collect()) {
                let _ = vec.remove_label_values(&[&name]);
            }
        }
        for name in gone(self.scanned_per_query.collect()) {
            let _ = self.scanned_per_query.remove_label_values(&[&name]);
        }
    }
}

/// The per-collection gauges, each labelled `collection`.
#[derive(Debug)]
struct CollectionGauges {
    rows: GaugeVec,
    deleted_rows: GaugeVec,
    segments: GaugeVec,
    segment_bytes: GaugeVec,
    memtable_rows: GaugeVec,
    memtable_bytes: GaugeVec,
    unflushed_lsns: GaugeVec,
    lists: GaugeVec,
    imbalance: GaugeVec,
    generation: GaugeVec,
    rows_since_training: GaugeVec,
    trained_at: GaugeVec,
    compacted_at: GaugeVec,
    rebalances: GaugeVec,
    tuned_recall: GaugeVec,
    written_bytes: GaugeVec,
    recall_estimate: GaugeVec,
    recall_window: GaugeVec,
}

impl CollectionGauges {
    fn new(registry: &Registry) -> prometheus::Result<CollectionGauges> {
        let gauge = |name: &str, help: &str| -> prometheus::Result<GaugeVec> {
            let g = GaugeVec::new(Opts::new(name, help), &["collection"])?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let written_bytes = GaugeVec::new(
            Opts::new(
                "vdb_collection_written_bytes",
                "Bytes of segment files written since the collection was opened, by why: rows leaving the memtable (flushed) or rows already in segments (rewritten)",
            ),
            &["collection", "kind"],
        )?;
        registry.register(Box::new(written_bytes.clone()))?;
        Ok(CollectionGauges {
            rows: gauge("vdb_collection_rows", "Visible rows")?,
            deleted_rows: gauge(
                "vdb_collection_deleted_rows",
                "Rows still stored but hidden (deleted or replaced), awaiting compaction",
            )?,
            segments: gauge("vdb_collection_segments", "Segment files")?,
            segment_bytes: gauge("vdb_collection_segment_bytes", "Bytes of segment files")?,
            memtable_rows: gauge(
                "vdb_collection_memtable_rows",
                "Rows in the memtable, not yet in segments",
            )?,
            memtable_bytes: gauge(
                "vdb_collection_memtable_bytes",
                "Memory the memtable holds, roughly",
            )?,
            unflushed_lsns: gauge(
                "vdb_collection_unflushed_lsns",
                "Write-ahead log entries not yet in segments (replayed at a restart)",
            )?,
            lists: gauge(
                "vdb_collection_lists",
                "Inverted lists of the current centroids (1 before training)",
            )?,
            imbalance: gauge(
                "vdb_collection_list_imbalance",
                "faiss's imbalance factor of the list sizes (1: equal lists)",
            )?,
            generation: gauge(
                "vdb_collection_centroid_generation",
                "Centroid generation (0: untrained)",
            )?,
            rows_since_training: gauge(
                "vdb_collection_rows_since_training",
                "Visible rows beyond those present when the centroids were trained",
            )?,
            trained_at: gauge(
                "vdb_collection_trained_timestamp_seconds",
                "When the current centroids were trained (Unix seconds; 0: never)",
            )?,
            compacted_at: gauge(
                "vdb_collection_compacted_timestamp_seconds",
                "When the segments were last rewritten into one (Unix seconds; 0: never)",
            )?,
            rebalances: gauge(
                "vdb_collection_rebalances",
                "Lists split locally since the last training",
            )?,
            tuned_recall: gauge(
                "vdb_collection_tuned_recall",
                "Recall@10 measured when the recall target last chose the default nprobe (0: never)",
            )?,
            written_bytes,
            recall_estimate: gauge(
                "vdb_collection_recall_estimate",
                "Mean recall@k of the collection's last sampled searches, each searched again exactly (absent until one is)",
            )?,
            recall_window: gauge(
                "vdb_collection_recall_samples",
                "Sampled searches the recall estimate is the mean of",
            )?,
        })
    }

    fn reset(&self) {
        for g in [
            &self.rows,
            &self.deleted_rows,
            &self.segments,
            &self.segment_bytes,
            &self.memtable_rows,
            &self.memtable_bytes,
            &self.unflushed_lsns,
            &self.lists,
            &self.imbalance,
            &self.generation,
            &self.rows_since_training,
            &self.trained_at,
            &self.compacted_at,
            &self.rebalances,
            &self.tuned_recall,
            &self.written_bytes,
            &self.recall_estimate,
            &self.recall_window,
        ] {
            g.reset();
        }
    }

    fn set(&self, name: &str, s: &vdb_engine::CollectionStats) {
        let set = |g: &GaugeVec, v: f64| g.with_label_values(&[name]).set(v);
        set(&self.rows, s.rows as f64);
        set(&self.deleted_rows, s.deleted_rows as f64);
        set(&self.segments, s.segments as f64);
        set(&self.segment_bytes, s.segment_bytes as f64);
        set(&self.memtable_rows, s.memtable_rows as f64);
        set(&self.memtable_bytes, s.memtable_bytes as f64);
        set(
            &self.unflushed_lsns,
            s.last_lsn.saturating_sub(s.flushed_lsn) as f64,
        );
        set(&self.lists, s.lists as f64);
        set(&self.imbalance, s.imbalance);
        set(&self.generation, s.generation as f64);
        set(
            &self.rows_since_training,
            s.rows.saturating_sub(s.trained_rows) as f64,
        );
        set(&self.trained_at, s.trained_at as f64);
        set(&self.compacted_at, s.compacted_at as f64);
        set(&self.rebalances, s.rebalances as f64);
        set(&self.tuned_recall, s.tuned_recall);
        for (kind, bytes) in [
            ("flushed", s.flushed_bytes),
            ("rewritten", s.rewritten_bytes),
        ] {
            self.written_bytes
                .with_label_values(&[name, kind])
                .set(bytes as f64);
        }
    }
}

impl Metrics {
    /// A fresh set of metrics in a registry of its own.
    pub fn new() -> Arc<Metrics> {
        // Registering metrics with fixed, valid names into an empty
        // registry cannot fail.
        Arc::new(Metrics::build().expect("the metric definitions are valid and distinct"))
    }

    fn build() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "vdb_requests_total",
                "gRPC requests answered, by method and status code",
            ),
            &["rpc", "code"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "vdb_request_duration_seconds",
                "Time from a request's arrival to its status (the end of a streamed response), by method",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["rpc"],
        )?;
        let refused = IntCounter::new(
            "vdb_requests_refused_total",
            "Requests refused with RESOURCE_EXHAUSTED because the server was serving its limit of concurrent requests",
        )?;
        let in_flight = IntGauge::new(
            "vdb_requests_in_flight",
            "Concurrency permits taken: requests being served",
        )?;
        let max_concurrent = IntGauge::new(
            "vdb_requests_max_concurrent",
            "The limit of requests served at once (--max-concurrent)",
        )?;
        let info = IntGauge::with_opts(
            Opts::new(
                "vdb_build_info",
                "Always 1; the server's version as a label",
            )
            .const_label("version", env!("CARGO_PKG_VERSION")),
        )?;
        info.set(1);
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(max_concurrent.clone()))?;
        registry.register(Box::new(info))?;
        let collections = CollectionGauges::new(&registry)?;
        let search = SearchCounters::new(&registry)?;
        Ok(Metrics {
            search,
            registry,
            requests,
            latency,
            refused,
            in_flight,
            max_concurrent,
            collections,
            recall: Arc::default(),
            scrape: Mutex::new(()),
            permits: Mutex::new(None),
        })
    }

    /// Counts one answered request of `rpc` with status `code` that took
    /// `elapsed`.
    pub(crate) fn observe(&self, rpc: &str, code: tonic::Code, elapsed: Duration) {
        self.requests
            .with_label_values(&[rpc, code_name(code)])
            .inc();
        self.latency
            .with_label_values(&[rpc])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts the work of one Search request of `collection`.
    pub(crate) fn searched(&self, collection: &str, work: vdb_engine::SearchWork) {
        let s = &self.search;
        let labels = [collection];
        s.queries.with_label_values(&labels).inc_by(work.queries);
        s.lists.with_label_values(&labels).inc_by(work.lists);
        s.scanned.with_label_values(&labels).inc_by(work.scanned);
        s.exact.with_label_values(&labels).inc_by(work.exact);
        if work.queries > 0 {
            s.scanned_per_query
                .with_label_values(&labels)
                .observe(work.scanned as f64 / work.queries as f64);
        }
    }

    /// Counts one request refused for the concurrency limit.
    pub(crate) fn refused(&self) {
        self.refused.inc();
    }

    /// Reports the permits of `semaphore`, `limit` in all, at each scrape.
    pub(crate) fn watch_permits(&self, semaphore: Arc<Semaphore>, limit: usize) {
        *self.permits.lock().unwrap_or_else(|e| e.into_inner()) = Some((semaphore, limit));
    }

    /// Reads the engine and encodes every metric in Prometheus's text
    /// format (version 0.0.4).
    pub fn scrape(&self, engine: &Engine) -> Vec<u8> {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((semaphore, limit)) = &*self.permits.lock().unwrap_or_else(|e| e.into_inner()) {
            let limit = (*limit).max(1);
            self.max_concurrent.set(limit as i64);
            self.in_flight
                .set(limit.saturating_sub(semaphore.available_permits()) as i64);
        }
        self.collections.reset();
        let names = engine.list_collections();
        let mut counted = Vec::new();
        for name in &names {
            // A collection dropped since it was listed is left out.
            if let Ok(c) = engine.collection(name) {
                self.collections.set(name, &c.stats());
                counted.push(Counted {
                    collection: name,
                    runs: c.maintenance_runs(),
                    writes: c.write_counts(),
                });
            }
        }
        self.search.forget_except(&names);
        for (name, e) in self.recall.estimates(&names) {
            let g = &self.collections;
            g.recall_estimate.with_label_values(&[&name]).set(e.recall);
            g.recall_window
                .with_label_values(&[&name])
                .set(e.window as f64);
        }
        let mut families = self.registry.gather();
        families.extend(engine_counters(&counted));
        let mut out = Vec::new();
        // Encoding into a Vec fails only for metric families the
        // registry cannot hold; log rather than fail the scrape.
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// What one collection's engine counts, read at a scrape.
struct Counted<'a> {
    collection: &'a str,
    runs: Vec<(vdb_engine::MaintenanceKind, vdb_engine::MaintenanceRuns)>,
    writes: vdb_engine::WriteCounts,
}

/// A counter family of `samples` (labels, value).
fn counter_family(name: &str, help: &str, samples: Vec<(Vec<(&str, &str)>, f64)>) -> MetricFamily {
    let metrics = samples
        .into_iter()
        .map(|(labels, value)| {
            let labels = labels
                .into_iter()
                .map(|(k, v)| {
                    let mut l = LabelPair::default();
                    l.set_name(k.to_string());
                    l.set_value(v.to_string());
                    l
                })
                .collect();
            let mut c = Counter::default();
            c.set_value(value);
            let mut m = Metric::from_label(labels);
            m.set_counter(c);
            m
        })
        .collect();
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(MetricType::COUNTER);
    f.set_metric(metrics);
    f
}

/// The counters the engine keeps (writes, maintenance runs), as metric
/// families: read at each scrape, so built here rather than kept in the
/// registry.
fn engine_counters(counted: &[Counted<'_>]) -> Vec<MetricFamily> {
    if counted.is_empty() {
        return Vec::new();
    }
    let (mut rows, mut log_bytes, mut log_syncs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut runs, mut seconds) = (Vec::new(), Vec::new());
    for c in counted {
        let w = &c.writes;
        let name = ("collection", c.collection);
        rows.push((vec![name, ("op", "upsert")], w.rows_upserted as f64));
        rows.push((vec![name, ("op", "delete")], w.ids_deleted as f64));
        log_bytes.push((vec![name], w.log_bytes as f64));
        log_syncs.push((vec![name], w.log_syncs as f64));
        for (kind, r) in &c.runs {
            let kind = ("kind", kind.name());
            for (outcome, n) in [
                ("changed", r.changed),
                ("idle", r.idle),
                ("failed", r.failed),
            ] {
                runs.push((vec![name, kind, ("outcome", outcome)], n as f64));
            }
            seconds.push((vec![name, kind], r.seconds));
        }
    }
    vec![
        counter_family(
            "vdb_rows_written_total",
            "Rows of acknowledged writes since the collection was opened: upserted rows, and ids named by deletes",
            rows,
        ),
        counter_family(
            "vdb_log_bytes_total",
            "Bytes appended to the collection's write-ahead log since it was opened (with sync=always each is fsynced before its write is acknowledged)",
            log_bytes,
        ),
        counter_family(
            "vdb_log_syncs_total",
            "fsyncs of the collection's write-ahead log since it was opened (sync=object: chunks shipped); group commit makes them fewer than the writes",
            log_syncs,
        ),
        counter_family(
            "vdb_maintenance_runs_total",
            "Maintenance runs since the collection was opened, by kind (flush, compact, merge, train, step, rebalance) and outcome (changed, idle: nothing to do, failed)",
            runs,
        ),
        counter_family(
            "vdb_maintenance_seconds_total",
            "Time spent in maintenance runs since the collection was opened, by kind",
            seconds,
        ),
    ]
}

/// A status code as gRPC's documentation spells it (`OK`,
/// `RESOURCE_EXHAUSTED`, …): the `code` label.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_as_grpc_numbers_them() {
        // The gRPC status codes in the order of their numbers
        // (grpc/doc/statuscodes.md).
        let spec = [
            "OK",
            "CANCELLED",
            "UNKNOWN",
            "INVALID_ARGUMENT",
            "DEADLINE_EXCEEDED",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "FAILED_PRECONDITION",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNIMPLEMENTED",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        ];
        for (i, want) in spec.iter().enumerate() {
            assert_eq!(code_name(tonic::Code::from_i32(i as i32)), *want);
        }
    }
}
