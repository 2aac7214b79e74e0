//! What searches did, counted per Search request by collection.

use prometheus::proto::MetricFamily;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// What searches did, by collection, counted as they are answered.
#[derive(Debug)]
pub(super) struct SearchCounters {
    pub(super) queries: IntCounterVec,
    pub(super) lists: IntCounterVec,
    pub(super) scanned: IntCounterVec,
    pub(super) exact: IntCounterVec,
    /// Rows scored per query, one observation per request (its mean).
    pub(super) scanned_per_query: HistogramVec,
}

impl SearchCounters {
    pub(super) fn new(registry: &Registry) -> prometheus::Result<SearchCounters> {
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

    /// Drops the series of collections not in `live` (dropped ones), so
    /// that they leave the page as the gauges do.
    pub(super) fn forget_except(&self, live: &[String]) {
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
