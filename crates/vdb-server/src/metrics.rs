//! Prometheus metrics: what the server counts as it serves (requests by
//! RPC and status code with their latencies, requests refused by the
//! concurrency limit) and what it reads from the engine when scraped (each
//! collection's rows, segments, memtable, lists, training). Served in
//! Prometheus's text format at `/metrics` over plain HTTP/1.1 on a listener
//! of its own (`vdbd --metrics-listen`); every metric is documented in
//! `docs/server.md`.
//!
//! Recording a request costs two atomic additions and a histogram bucket
//! search, a Search four more additions and a bucket under its
//! collection's labels (and, with the endpoint on, the recall sampler's
//! map lookup); the engine is only read when Prometheus scrapes.

mod collections;
mod http;
mod layer;
mod recall;
mod search;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use tokio::sync::Semaphore;
use vdb_engine::Engine;

pub use http::serve_metrics;
pub(crate) use layer::RequestMetricsLayer;
pub(crate) use recall::{RecallSampler, RecallWindows, Sample};

use collections::{CollectionGauges, Counted, engine_counters};
use search::SearchCounters;

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
                self.collections.set(name, &c.stats(), c.log_disk_bytes());
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

/// A status code as gRPC's documentation spells it (`OK`,
/// `RESOURCE_EXHAUSTED`, …): the `code` label.
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
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
