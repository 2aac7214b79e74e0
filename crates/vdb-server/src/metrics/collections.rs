//! What a scrape reads from the engine for each collection: its state as
//! gauges, and the counters the engine keeps (writes, maintenance runs) as
//! counter families built at the scrape.

use prometheus::proto::{Counter, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{GaugeVec, Opts, Registry};

/// The per-collection gauges, each labelled `collection`.
#[derive(Debug)]
pub(super) struct CollectionGauges {
    rows: GaugeVec,
    deleted_rows: GaugeVec,
    segments: GaugeVec,
    segment_bytes: GaugeVec,
    memtable_rows: GaugeVec,
    memtable_bytes: GaugeVec,
    log_bytes: GaugeVec,
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
    pub(super) recall_estimate: GaugeVec,
    pub(super) recall_window: GaugeVec,
}

impl CollectionGauges {
    pub(super) fn new(registry: &Registry) -> prometheus::Result<CollectionGauges> {
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
            log_bytes: gauge(
                "vdb_collection_log_bytes",
                "Bytes of the write-ahead log's files on disk: what a restart replays",
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

    pub(super) fn reset(&self) {
        for g in [
            &self.rows,
            &self.deleted_rows,
            &self.segments,
            &self.segment_bytes,
            &self.memtable_rows,
            &self.memtable_bytes,
            &self.log_bytes,
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

    pub(super) fn set(&self, name: &str, s: &vdb_engine::CollectionStats, log_bytes: u64) {
        let set = |g: &GaugeVec, v: f64| g.with_label_values(&[name]).set(v);
        set(&self.rows, s.rows as f64);
        set(&self.deleted_rows, s.deleted_rows as f64);
        set(&self.segments, s.segments as f64);
        set(&self.segment_bytes, s.segment_bytes as f64);
        set(&self.memtable_rows, s.memtable_rows as f64);
        set(&self.memtable_bytes, s.memtable_bytes as f64);
        set(&self.log_bytes, log_bytes as f64);
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

/// What one collection's engine counts, read at a scrape.
pub(super) struct Counted<'a> {
    pub(super) collection: &'a str,
    pub(super) runs: Vec<(vdb_engine::MaintenanceKind, vdb_engine::MaintenanceRuns)>,
    pub(super) writes: vdb_engine::WriteCounts,
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
pub(super) fn engine_counters(counted: &[Counted<'_>]) -> Vec<MetricFamily> {
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
