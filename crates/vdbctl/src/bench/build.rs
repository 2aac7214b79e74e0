//! Building what the benchmark searches from the base vectors: a segment
//! written directly, a collection filled through the engine, or one filled
//! over gRPC.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use vdb_core::{Generation, InvertedLists, ListId, SegmentId};
use vdb_engine::{
    CollectionConfig, Engine, IndexType, RABITQ_SEED, RetrainPolicy, Row as EngineRow,
};
use vdb_format::{CentroidFile, CentroidMeta, CodeSpec, SegmentMeta, SegmentReader, SegmentWriter};
use vdb_fs::LocalDirectory;
use vdb_ivf::rabitq::{DEFAULT_EPSILON, Encoder};
use vdb_ivf::{CoarseQuantizer, KMeansParams, kmeans};
use vdb_proto::v1 as pb;

use super::args::BenchArgs;
use super::progress::Progress;
use super::target::{Addr, EngineTarget, SegmentTarget, ServerTarget, Target};
use crate::vecio::Matrix;

/// What building the index produced.
pub(super) struct Built {
    pub(super) target: Box<dyn Target>,
    pub(super) train_s: f64,
    pub(super) build_s: f64,
    pub(super) disk_bytes: u64,
    pub(super) open_ms: f64,
    pub(super) imbalance: f64,
    pub(super) rows: usize,
    /// How training went, for the human-readable header.
    pub(super) training: String,
    /// Rows per second inserted through the WAL (engine runs).
    pub(super) ingest_rows_per_s: Option<f64>,
    /// Over gRPC: rows/s of Upsert requests of 1,000 rows, one at a time.
    pub(super) upsert_rows_per_s: Option<f64>,
    /// Rows per second the disk takes as bare appends of the same size,
    /// each followed by `fdatasync` (engine runs): the physical bound.
    pub(super) disk_bound_rows_per_s: Option<f64>,
    /// Rows the ingest rate was measured over (engine runs).
    pub(super) ingest_rows: Option<usize>,
    /// Median time of one 1,000-row write (engine runs): the writer's own
    /// cost when no flush or training holds it up.
    pub(super) ingest_batch_p50_ms: Option<f64>,
    /// Bytes of segments compactions and trainings wrote per byte flushes
    /// wrote, over the whole load (engine runs).
    pub(super) rewrite_amplification: Option<f64>,
    /// Over gRPC: the same requests against an empty collection of the
    /// same dimension, so they cost the transport and no search.
    pub(super) floor: Option<Box<dyn Target>>,
}

/// Trains, assigns and writes one segment in a temporary (or given)
/// directory, then maps it.
pub(super) fn build_segment(
    args: &BenchArgs,
    base: &Matrix<f32>,
    pool: &rayon::ThreadPool,
    progress: &Progress,
) -> Result<Built> {
    let metric = args.metric;
    // A temporary directory lives as long as the segment is searched:
    // evicting its vectors opens the file again.
    let (tmp, dir) = match &args.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            (None, d.clone())
        }
        None => {
            let t = tempfile::tempdir().context("cannot create a temporary directory")?;
            let p = t.path().to_path_buf();
            (Some(t), p)
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
        warm_points_per_centroid: args.warm_points_per_centroid,
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
    let mut quantizer = CoarseQuantizer::new(base.dim, metric, centroids)?;
    if args.index_type == IndexType::IvfRabitq {
        // The engine's rotation, so the segment is one it could have written.
        quantizer = quantizer.with_codes(RABITQ_SEED);
    }
    let assignment = pool.install(|| quantizer.assign(&base.data))?;
    let order = group_by_list(&assignment, args.nlist);
    let seg_name = vdb_format::segment_file_name(SegmentId(1));
    let seg_path = dir.join(&seg_name);
    let meta = SegmentMeta {
        id: SegmentId(1),
        generation: Generation(1),
        metric,
        dim: base.dim,
        nlist: args.nlist,
        with_payloads: false,
    };
    let codebook = quantizer.codebook();
    let mut w = SegmentWriter::create_with_codes(
        &LocalDirectory::new(vdb_fs::os(), &dir),
        &seg_name,
        meta,
        None,
        codebook.map(|b| CodeSpec {
            seed: b.rotation().seed(),
            extended: true,
        }),
    )?;
    let mut encoder = codebook.map(|b| Encoder::new(b, true));
    for &row in &order {
        let (list, vector) = (assignment[row].0, base.row(row));
        w.push_coded(
            list,
            row as u64,
            vector,
            None,
            &[],
            encoder.as_mut().map(|e| e.encode(list, vector)),
        )?;
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
    let mut quantizer =
        CoarseQuantizer::new(cen.meta().dim, cen.meta().metric, cen.centroids().to_vec())?;
    if let Some(seed) = segment.codes_seed() {
        quantizer = quantizer.with_codes(seed);
    }
    let sizes: Vec<u64> = (0..args.nlist as u32)
        .map(|l| segment.list_len(ListId(l)) as u64)
        .collect();
    Ok(Built {
        train_s,
        build_s,
        disk_bytes,
        open_ms,
        imbalance: vdb_ivf::imbalance_factor(&sizes),
        rows: segment.rows(),
        training: format!(
            "{} vectors, {} iterations",
            report.sample_size, report.iterations
        ),
        ingest_rows_per_s: None,
        upsert_rows_per_s: None,
        disk_bound_rows_per_s: None,
        ingest_batch_p50_ms: None,
        rewrite_amplification: None,
        ingest_rows: None,
        floor: None,
        target: Box::new(SegmentTarget {
            quantizer,
            segment,
            _dir: tmp,
            epsilon: args.rerank_epsilon.unwrap_or(DEFAULT_EPSILON),
        }),
    })
}

/// Inserts the base rows into a fresh collection through the engine (WAL,
/// memtable, flushes, automatic training), then reopens the data directory.
pub(super) fn build_engine(
    args: &BenchArgs,
    dir: &Path,
    base: &Matrix<f32>,
    progress: &Progress,
) -> Result<Built> {
    let engine = Engine::open(dir)?;
    if engine.collection("bench").is_ok() {
        engine.drop_collection("bench")?;
    }
    let mut config = CollectionConfig::new(base.dim);
    config.metric = args.metric;
    config.nlist = args.nlist;
    config.flush_rows = args.flush_rows.max(1);
    config.index_type = args.index_type;
    if let Some(f) = args.max_segment_fraction {
        config.compaction.max_segment_fraction = f;
    }
    if args.no_retrain {
        config.retrain = RetrainPolicy {
            growth: 0.0,
            error_drift: 0.0,
            imbalance: 0.0,
            ..RetrainPolicy::default()
        };
    }
    if let Some(spec) = &args.retrain {
        let factors: Vec<f64> = spec
            .split(',')
            .map(|f| f.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("--retrain {spec:?}: {e}"))?;
        let [growth, error_drift, imbalance] = factors[..] else {
            anyhow::bail!("--retrain {spec:?}: give three factors, GROWTH,DRIFT,IMBALANCE");
        };
        config.retrain = RetrainPolicy {
            growth,
            error_drift,
            imbalance,
            ..RetrainPolicy::default()
        };
    }
    let c = engine.create_collection("bench", config)?;
    progress.phase("measuring the disk: appends of one batch's size, each fdatasynced");
    let disk_bound = disk_bound_rows_per_s(dir, base.dim)?;
    progress.phase(&format!(
        "inserting {} rows through the write-ahead log",
        base.rows
    ));
    let first_batches = args.train_first.div_ceil(1000);
    let mut t = Instant::now();
    let batches = write_batches(base.rows, args.churn);
    let mut latencies = Vec::with_capacity(batches.len());
    for (b, batch) in batches.iter().enumerate() {
        if b == first_batches && b > 0 {
            progress.phase("flushing and training before the timed ingest");
            c.flush()?;
            if c.stats().generation == 0 {
                c.retrain(Some(args.nlist))?;
            }
            progress.phase("inserting the remaining rows (timed)");
            latencies.clear();
            t = Instant::now();
        }
        let rows = batch
            .iter()
            .map(|&(id, from)| EngineRow {
                id: id as u64,
                vector: base.data[from * base.dim..(from + 1) * base.dim].to_vec(),
                payload: None,
                fields: Default::default(),
            })
            .collect();
        let t_batch = Instant::now();
        c.upsert(rows)?;
        latencies.push(t_batch.elapsed().as_secs_f64());
    }
    let ingest_s = t.elapsed().as_secs_f64();
    let ingest_rows: usize = batches.iter().skip(first_batches).map(Vec::len).sum();
    latencies.sort_by(f64::total_cmp);
    let batch_p50_ms = latencies.get(latencies.len() / 2).copied().unwrap_or(0.0) * 1e3;
    progress.phase("flushing and training");
    let t = Instant::now();
    c.flush()?;
    if c.stats().generation == 0 {
        c.retrain(Some(args.nlist))?;
    }
    let train_s = t.elapsed().as_secs_f64();
    let written = c.stats();
    let rewrite_amplification =
        written.rewritten_bytes as f64 / written.flushed_bytes.max(1) as f64;
    drop(c);
    engine.close()?;

    // Reopen a few times and keep the median: one open is a few tens of
    // milliseconds, where a shared machine's noise shows.
    let mut opens = Vec::new();
    for _ in 0..4 {
        let t = Instant::now();
        let engine = Engine::open(dir)?;
        opens.push(t.elapsed().as_secs_f64() * 1e3);
        engine.close()?;
    }
    let t = Instant::now();
    let engine = Engine::open(dir)?;
    opens.push(t.elapsed().as_secs_f64() * 1e3);
    opens.sort_by(f64::total_cmp);
    let open_ms = opens[opens.len() / 2];
    let c = engine.collection("bench")?;
    let stats = c.stats();
    let coll_dir = dir.join("collections").join("bench");
    let disk_bytes = dir_size(&coll_dir);
    Ok(Built {
        train_s,
        build_s: ingest_s + train_s,
        disk_bytes,
        open_ms,
        imbalance: stats.imbalance,
        rows: stats.rows as usize,
        training: format!(
            "by the engine, generation {} ({} list splits since training), {} lists",
            stats.generation, stats.rebalances, stats.lists
        ),
        ingest_rows_per_s: Some(ingest_rows as f64 / ingest_s),
        upsert_rows_per_s: None,
        ingest_rows: Some(ingest_rows),
        disk_bound_rows_per_s: Some(disk_bound),
        ingest_batch_p50_ms: Some(batch_p50_ms),
        rewrite_amplification: Some(rewrite_amplification),
        floor: None,
        target: Box::new(EngineTarget {
            collection: c,
            epsilon: args.rerank_epsilon,
        }),
    })
}

/// The engine bench's writes in batches of 1,000, each row as (id, base
/// row of its vector): the base rows in order, or with `churn` the first
/// half interleaved with copies of it under the second half's ids, then
/// the second half written over those copies.
fn write_batches(rows: usize, churn: bool) -> Vec<Vec<(usize, usize)>> {
    let writes: Vec<(usize, usize)> = if churn {
        let half = rows / 2;
        let copies = (0..half).flat_map(|i| [(i, i), (rows - half + i, i)]);
        let odd = (half..rows - half).map(|i| (i, i));
        let replaced = (rows - half..rows).map(|i| (i, i));
        copies.chain(odd).chain(replaced).collect()
    } else {
        (0..rows).map(|i| (i, i)).collect()
    };
    writes.chunks(1000).map(<[_]>::to_vec).collect()
}

/// Loads the base rows through the server and returns what to search.
pub(super) fn build_server(
    args: &BenchArgs,
    addr: &Addr,
    base: &Matrix<f32>,
    progress: &Progress,
) -> Result<Built> {
    let target = ServerTarget {
        addr: addr.clone(),
        collection: "bench".into(),
        epsilon: args.rerank_epsilon,
    };
    let floor = ServerTarget {
        addr: addr.clone(),
        collection: "bench-floor".into(),
        epsilon: args.rerank_epsilon,
    };
    if args.existing {
        return existing_server(target, floor);
    }
    for name in ["bench", "bench-floor"] {
        let _ = target.call(async |mut c| {
            c.drop_collection(pb::DropCollectionRequest { name: name.into() })
                .await
        });
    }
    let metric = match args.metric {
        vdb_engine::Metric::L2 => pb::Metric::L2,
        vdb_engine::Metric::InnerProduct => pb::Metric::InnerProduct,
        vdb_engine::Metric::Cosine => pb::Metric::Cosine,
    };
    let create = pb::CreateCollectionRequest {
        name: "bench".into(),
        config: Some(pb::CollectionConfig {
            dim: base.dim as u32,
            metric: metric as i32,
            nlist: Some(args.nlist as u32),
            flush_rows: Some(args.flush_rows as u64),
            sync: args.sync.clone(),
            index_type: Some(args.index_type.name().into()),
            // Zero thresholds: never retrain automatically.
            retrain: args.no_retrain.then(|| pb::RetrainPolicy {
                min_new_rows: 1000,
                ..Default::default()
            }),
            ..Default::default()
        }),
        centroids: None,
    };
    let empty = pb::CreateCollectionRequest {
        name: "bench-floor".into(),
        ..create.clone()
    };
    target.call(async move |mut c| c.create_collection(create).await)?;
    target.call(async move |mut c| c.create_collection(empty).await)?;

    let dim = base.dim;
    let rows_of = |first: usize, chunk: &[f32]| -> Vec<pb::Row> {
        chunk
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, v)| pb::Row {
                id: (first + i) as u64,
                vector: v.to_vec(),
                payload: None,
                fields: Default::default(),
            })
            .collect()
    };
    // Rows [from, to) as one Import stream of 1,000-row messages.
    let import = |from: usize, to: usize| -> Result<()> {
        let batches: Vec<pb::ImportRequest> = base.data[from * dim..to * dim]
            .chunks(1000 * dim)
            .enumerate()
            .map(|(b, chunk)| pb::ImportRequest {
                collection: if b == 0 {
                    "bench".into()
                } else {
                    String::new()
                },
                rows: rows_of(from + b * 1000, chunk),
            })
            .collect();
        if !batches.is_empty() {
            target.call(async move |mut c| c.import(tokio_stream::iter(batches)).await)?;
        }
        Ok(())
    };
    let flush_and_train = || -> Result<pb::CollectionInfo> {
        let flush = pb::MaintenanceRequest {
            collection: "bench".into(),
            nlist: None,
        };
        let mut info = target
            .call(async move |mut c| c.flush(flush).await)?
            .into_inner()
            .info
            .unwrap_or_default();
        if info.stats.as_ref().map_or(0, |s| s.generation) == 0 {
            let retrain = pb::MaintenanceRequest {
                collection: "bench".into(),
                nlist: Some(args.nlist as u32),
            };
            info = target
                .call(async move |mut c| c.retrain(retrain).await)?
                .into_inner()
                .info
                .unwrap_or_default();
        }
        Ok(info)
    };

    let first = args.train_first.min(base.rows);
    if first > 0 {
        progress.phase(&format!(
            "importing {first} rows over gRPC, then flushing and training"
        ));
        import(0, first)?;
        flush_and_train()?;
    }
    // The timed rows, in ten rounds that alternate between Upsert requests
    // of 1,000 rows (one after another) and one Import stream of 1,000-row
    // messages, so background flushes and compactions fall on both alike.
    // `--writers` clients take the requests in turn, each on its own
    // connection (the target keeps one per thread).
    let writers = args.writers.max(1);
    let upsert = |from: usize, to: usize| -> Result<()> {
        let requests: Vec<pb::UpsertRequest> = base.data[from * dim..to * dim]
            .chunks(1000 * dim)
            .enumerate()
            .map(|(b, chunk)| pb::UpsertRequest {
                collection: "bench".into(),
                rows: rows_of(from + b * 1000, chunk),
            })
            .collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..writers)
                .map(|w| {
                    let mine: Vec<pb::UpsertRequest> =
                        requests.iter().skip(w).step_by(writers).cloned().collect();
                    let target = &target;
                    s.spawn(move || -> Result<()> {
                        for req in mine {
                            target.call(async move |mut c| c.upsert(req).await)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("a writer panicked"))?)
        })
    };
    progress.phase(&format!(
        "writing {} rows over gRPC, alternating Upsert requests of 1,000 and Import streams",
        base.rows - first
    ));
    let round = (base.rows - first).div_ceil(10).max(1000);
    let (mut upsert_s, mut import_s) = (0.0, 0.0);
    let (mut upserted, mut imported) = (0usize, 0usize);
    for (i, from) in (first..base.rows).step_by(round).enumerate() {
        let to = (from + round).min(base.rows);
        let t = Instant::now();
        if i % 2 == 0 {
            upsert(from, to)?;
            upsert_s += t.elapsed().as_secs_f64();
            upserted += to - from;
        } else {
            import(from, to)?;
            import_s += t.elapsed().as_secs_f64();
            imported += to - from;
        }
    }

    progress.phase("flushing and training");
    let t = Instant::now();
    let info = flush_and_train()?;
    let train_s = t.elapsed().as_secs_f64();
    let stats = info.stats.unwrap_or_default();
    Ok(Built {
        target: Box::new(target),
        train_s,
        build_s: upsert_s + import_s + train_s,
        disk_bytes: stats.segment_bytes,
        open_ms: 0.0,
        imbalance: stats.imbalance,
        rows: stats.rows as usize,
        training: format!(
            "by the server, generation {}, {} lists",
            stats.generation, stats.lists
        ),
        ingest_rows_per_s: (imported > 0).then(|| imported as f64 / import_s),
        upsert_rows_per_s: (upserted > 0).then(|| upserted as f64 / upsert_s),
        disk_bound_rows_per_s: None,
        ingest_batch_p50_ms: None,
        rewrite_amplification: None,
        ingest_rows: Some(base.rows - first),
        floor: Some(Box::new(floor)),
    })
}

/// `--existing`: the server's `bench` collection as it is, nothing
/// written.
fn existing_server(target: ServerTarget, floor: ServerTarget) -> Result<Built> {
    let describe = |name: &str| {
        let req = pb::DescribeCollectionRequest {
            name: name.into(),
            lists: false,
        };
        target.call(async move |mut c| c.describe_collection(req).await)
    };
    let info = describe("bench")
        .context("--existing: the server has no collection \"bench\" left by an earlier run")?
        .into_inner();
    let stats = info.stats.unwrap_or_default();
    let has_floor = describe("bench-floor").is_ok();
    Ok(Built {
        target: Box::new(target),
        train_s: 0.0,
        build_s: 0.0,
        disk_bytes: stats.segment_bytes,
        open_ms: 0.0,
        imbalance: stats.imbalance,
        rows: stats.rows as usize,
        training: format!(
            "as the server has it, generation {}, {} lists",
            stats.generation, stats.lists
        ),
        ingest_rows_per_s: None,
        upsert_rows_per_s: None,
        disk_bound_rows_per_s: None,
        ingest_batch_p50_ms: None,
        rewrite_amplification: None,
        ingest_rows: None,
        floor: has_floor.then(|| Box::new(floor) as Box<dyn Target>),
    })
}

/// Rows per second the disk takes when each batch of 1,000 rows is a bare
/// append of the size the WAL writes for it (id, flag and vector per row)
/// followed by `fdatasync`: what durable ingest could reach if the engine
/// cost nothing. Appends for about two seconds to a scratch file in `dir`.
pub(super) fn disk_bound_rows_per_s(dir: &Path, dim: usize) -> Result<f64> {
    use std::io::Write;
    const ROWS: usize = 1000;
    let path = dir.join("disk-probe.tmp");
    let chunk = vec![0x5au8; ROWS * (9 + 4 * dim) + 36];
    let mut f =
        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let t = Instant::now();
    let mut batches = 0u64;
    while t.elapsed().as_secs_f64() < 2.0 && batches < 100_000 {
        f.write_all(&chunk)
            .and_then(|()| f.sync_data())
            .with_context(|| format!("write {}", path.display()))?;
        batches += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
    Ok(batches as f64 * ROWS as f64 / secs)
}

pub(super) fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Row numbers ordered by list (stable within a list).
pub(super) fn group_by_list(assignment: &[(ListId, f32)], nlist: usize) -> Vec<usize> {
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
