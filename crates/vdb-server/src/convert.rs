//! Between the API's messages and the engine's types. Every field that
//! comes from the network is checked here or by the engine, and errors
//! name the field as the client sent it.

use tonic::Status;
use vdb_engine::{
    CollectionConfig, CollectionStats, CompactionPolicy, Metric, RetrainPolicy, SyncMode,
};
use vdb_proto::v1 as pb;

use crate::fields::{field_def_from_pb, field_def_to_pb, values_from_pb, values_to_pb};
use crate::status::invalid;

/// The engine's settings from a create request; unset fields take the
/// engine's defaults.
pub fn config_from_pb(c: Option<pb::CollectionConfig>) -> Result<CollectionConfig, Status> {
    let c = c.ok_or_else(|| invalid("config", "missing (dim is required)"))?;
    if c.dim == 0 {
        return Err(invalid("config.dim", "missing or 0; it must be 1..=65536"));
    }
    let mut out = CollectionConfig::new(c.dim as usize);
    out.metric = match pb::Metric::try_from(c.metric) {
        Ok(pb::Metric::Unspecified | pb::Metric::L2) => Metric::L2,
        Ok(pb::Metric::InnerProduct) => Metric::InnerProduct,
        Ok(pb::Metric::Cosine) => Metric::Cosine,
        Err(_) => {
            return Err(invalid(
                "config.metric",
                format!("unknown value {}", c.metric),
            ));
        }
    };
    if let Some(v) = c.nlist {
        out.nlist = v as usize;
    }
    if let Some(v) = c.nprobe {
        out.nprobe = v as usize;
        out.target_recall = None;
    }
    match c.target_recall {
        Some(0.0) => out.target_recall = None,
        Some(t) => out.target_recall = Some(t),
        None => {}
    }
    if let Some(t) = c.index_type {
        out.index_type = t.parse().map_err(|e| invalid("config.index_type", e))?;
    }
    if let Some(s) = c.sync {
        out.sync = s
            .parse::<SyncMode>()
            .map_err(|e| invalid("config.sync", e))?;
    }
    if let Some(v) = c.flush_rows {
        out.flush_rows =
            usize::try_from(v).map_err(|_| invalid("config.flush_rows", "too large"))?;
    }
    if let Some(v) = c.min_rows_per_list {
        out.min_rows_per_list = v as usize;
    }
    if let Some(r) = c.retrain {
        out.retrain = retrain_from_pb(&r);
    }
    if let Some(p) = c.compaction {
        out.compaction = compaction_from_pb(&p);
    }
    out.fields = c
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| field_def_from_pb(f, &format!("config.fields[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(out)
}

pub fn retrain_from_pb(r: &pb::RetrainPolicy) -> RetrainPolicy {
    RetrainPolicy {
        growth: r.growth,
        error_drift: r.error_drift,
        imbalance: r.imbalance,
        min_new_rows: r.min_new_rows,
    }
}

pub fn compaction_from_pb(p: &pb::CompactionPolicy) -> CompactionPolicy {
    CompactionPolicy {
        max_segments: p.max_segments as usize,
        max_hidden: p.max_hidden,
        fanout: p.fanout as usize,
        max_segment_fraction: p.max_segment_fraction,
    }
}

pub fn metric_to_pb(m: Metric) -> pb::Metric {
    match m {
        Metric::L2 => pb::Metric::L2,
        Metric::InnerProduct => pb::Metric::InnerProduct,
        Metric::Cosine => pb::Metric::Cosine,
    }
}

pub fn config_to_pb(c: &CollectionConfig) -> pb::CollectionConfig {
    pb::CollectionConfig {
        dim: c.dim as u32,
        metric: metric_to_pb(c.metric) as i32,
        nlist: Some(c.nlist as u32),
        nprobe: Some(c.nprobe as u32),
        sync: Some(c.sync.to_string()),
        flush_rows: Some(c.flush_rows as u64),
        min_rows_per_list: Some(c.min_rows_per_list as u32),
        retrain: Some(pb::RetrainPolicy {
            growth: c.retrain.growth,
            error_drift: c.retrain.error_drift,
            imbalance: c.retrain.imbalance,
            min_new_rows: c.retrain.min_new_rows,
        }),
        compaction: Some(pb::CompactionPolicy {
            max_segments: c.compaction.max_segments as u32,
            max_hidden: c.compaction.max_hidden,
            fanout: c.compaction.fanout as u32,
            max_segment_fraction: c.compaction.max_segment_fraction,
        }),
        fields: c.fields.iter().map(field_def_to_pb).collect(),
        target_recall: Some(c.target_recall.unwrap_or(0.0)),
        index_type: Some(c.index_type.to_string()),
    }
}

pub fn stats_to_pb(s: &CollectionStats) -> pb::CollectionStats {
    pb::CollectionStats {
        rows: s.rows,
        deleted_rows: s.deleted_rows,
        segments: s.segments as u32,
        memtable_rows: s.memtable_rows,
        segment_bytes: s.segment_bytes,
        generation: s.generation,
        lists: s.lists as u32,
        imbalance: s.imbalance,
        last_lsn: s.last_lsn,
        flushed_lsn: s.flushed_lsn,
        trained_at: s.trained_at,
        trained_rows: s.trained_rows,
        compacted_at: s.compacted_at,
        rebalances: s.rebalances,
        rebalanced_at: s.rebalanced_at,
        tuned_recall: s.tuned_recall,
        memtable_bytes: s.memtable_bytes,
        flushed_bytes: s.flushed_bytes,
        rewritten_bytes: s.rewritten_bytes,
        postponed: s.postponed.clone().unwrap_or_default(),
    }
}

/// Rows from the API's; `path` names the list in errors (`rows`).
pub fn rows_from_pb(rows: Vec<pb::Row>, path: &str) -> Result<Vec<vdb_engine::Row>, Status> {
    rows.into_iter()
        .enumerate()
        .map(|(i, r)| {
            Ok(vdb_engine::Row {
                id: r.id,
                vector: r.vector,
                payload: r.payload,
                fields: values_from_pb(r.fields, &format!("{path}[{i}].fields"))?,
            })
        })
        .collect()
}

fn point(p: [f32; 2]) -> Option<pb::Point> {
    Some(pb::Point { x: p[0], y: p[1] })
}

fn samples_to_pb(samples: Vec<vdb_engine::Sample>) -> Vec<pb::Sample> {
    samples
        .into_iter()
        .map(|s| pb::Sample {
            id: s.hit.id,
            distance: s.hit.distance,
            payload: s.hit.payload,
            position: point(s.position),
        })
        .collect()
}

/// A search hit as the API's (an empty vector when none was asked for).
pub fn hit_to_pb(h: vdb_engine::Hit) -> pb::Hit {
    pb::Hit {
        id: h.id,
        distance: h.distance,
        payload: h.payload,
        vector: h.vector.unwrap_or_default(),
        fields: values_to_pb(&h.fields),
    }
}

fn traced_to_pb(h: vdb_engine::TracedHit) -> pb::TracedHit {
    pb::TracedHit {
        id: h.hit.id,
        distance: h.hit.distance,
        payload: h.hit.payload,
        list: h.list,
        list_rank: h.list_rank,
    }
}

/// Explain's engine answer as the API's.
pub fn explanation_to_pb(e: vdb_engine::Explanation) -> pb::ExplainResponse {
    let t = e.trace;
    pb::ExplainResponse {
        hits: e.hits.into_iter().map(traced_to_pb).collect(),
        nlist: t.nlist as u32,
        nprobe: t.nprobe as u32,
        nprobe_clamped: t.nprobe_clamped,
        probed: t
            .probed
            .into_iter()
            .zip(e.samples)
            .map(|(p, samples)| pb::ProbedList {
                list: p.list.0,
                rank: p.rank,
                centroid_distance: p.centroid_distance,
                size: p.size,
                scanned: p.scanned,
                deleted_skipped: p.deleted_skipped,
                filtered_out: p.filtered_out,
                ruled_out: p.ruled_out,
                reranked: p.reranked,
                refined: p.refined,
                results: p.results,
                best_distance: p.best_distance,
                distance_deciles: p.distance_quantiles,
                samples: samples_to_pb(samples),
            })
            .collect(),
        coarse_distances: t.coarse_distances,
        fine_distances: t.fine_distances,
        code_estimates: t.code_estimates,
        rows: e.rows,
        coarse: e
            .lists
            .into_iter()
            .map(|l| pb::RankedList {
                list: l.list,
                centroid_distance: l.centroid_distance,
                size: l.size,
                position: point(l.position),
            })
            .collect(),
        query_position: point(e.query_position),
        exact: e.exact.map(|x| pb::ExactComparison {
            hits: x.hits.into_iter().map(traced_to_pb).collect(),
            missed: x.missed.into_iter().map(traced_to_pb).collect(),
            min_nprobe: x.min_nprobe as u32,
            missed_lists: x
                .missed_lists
                .into_iter()
                .map(|(list, samples)| pb::ListSamples {
                    list,
                    samples: samples_to_pb(samples),
                })
                .collect(),
        }),
        generation: e.generation,
        filter: e.filter.map(|f| f.to_string()),
        filter_target: t.filter_target,
        filter_matched: t.filter_matched,
        filter_estimate: t.filter_estimate.unwrap_or(0.0),
        filter_rows: e.filter_rows.unwrap_or(0),
    }
}

/// A collection's settings and numbers (list sizes left empty).
pub fn info(c: &vdb_engine::Collection) -> pb::CollectionInfo {
    pb::CollectionInfo {
        name: c.name().to_string(),
        config: Some(config_to_pb(&c.config())),
        stats: Some(stats_to_pb(&c.stats())),
        list_sizes: Vec::new(),
        storage: Some(storage_to_pb(&c.storage())),
    }
}

/// Where a collection is kept, as the API's.
pub fn storage_to_pb(s: &vdb_engine::StorageInfo) -> pb::Storage {
    use vdb_engine::StorageRole as R;
    let role = match s.role {
        R::Local => pb::StorageRole::Local,
        R::Writer => pb::StorageRole::Writer,
        R::Replica => pb::StorageRole::Replica,
    };
    pb::Storage {
        role: role as i32,
        writer: if s.writer == 0 {
            String::new()
        } else {
            format!("{:016x}", s.writer)
        },
        manifest_version: s.manifest_version,
        seconds_behind: s.behind.map_or(0.0, |d| d.as_secs_f64()),
        follow_error: s.follow_error.clone().unwrap_or_default(),
    }
}

/// A stored row as the API's.
pub fn row_to_pb(row: vdb_engine::Row) -> pb::Row {
    pb::Row {
        id: row.id,
        vector: row.vector,
        payload: row.payload,
        fields: values_to_pb(&row.fields),
    }
}

/// The first message of an export: the centroids and list sizes.
pub fn export_header_to_pb(e: &vdb_engine::ListExport, nprobe: usize) -> pb::ExportHeader {
    pb::ExportHeader {
        dim: e.dim as u32,
        metric: metric_to_pb(e.metric) as i32,
        generation: e.generation,
        centroids: e.centroids.clone(),
        sizes: e.sizes.clone(),
        nprobe: nprobe as u32,
    }
}

/// A tuning report as the API's.
pub fn tune_to_pb(
    report: &vdb_engine::TuneReport,
    k: usize,
    applied: bool,
    info: pb::CollectionInfo,
) -> pb::TuneResponse {
    pb::TuneResponse {
        points: report
            .points
            .iter()
            .map(|p| pb::TunePoint {
                nprobe: p.nprobe as u32,
                recall: p.recall,
                mean_ms: p.mean_ms,
                p99_ms: p.p99_ms,
                distances_per_query: p.distances_per_query,
            })
            .collect(),
        recommended: report.recommended.map(|n| n as u32),
        applied,
        sample: report.sample as u32,
        k: k as u32,
        info: Some(info),
    }
}
