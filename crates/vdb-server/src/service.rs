//! The `vdb.v1.Vdb` service over an [`Engine`].
//!
//! Engine calls (writes wait for an fsync; searches are CPU work) run on
//! tokio's blocking pool, not on the runtime's worker threads, with one
//! exception: a search whose expected work ([`Collection::search_work`]) is
//! within [`Limits::inline_search_work`] runs on the worker that received
//! it. Handing a sub-millisecond search to another thread and back costs
//! two thread wake-ups, which measured as a third of the request's cost
//! (`docs/benchmarks.md`). `Import` commits the messages that arrive while
//! a write runs as one engine batch.
//!
//! A request first takes a permit of the concurrency limit without waiting:
//! when none is free the answer is `RESOURCE_EXHAUSTED`, so load beyond
//! the limit is refused instead of queued without bound. If the client
//! cancels or its deadline passes, the handler is dropped; a write already
//! handed to the engine still completes (it may be acknowledged to no one,
//! which a client must treat like any unacknowledged write).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status, Streaming};
use vdb_engine::{
    Alter, Collection, DEFAULT_SAMPLES, Engine, ExplainOptions, Repository, SearchOptions,
    TrainedCentroids, TuneOptions,
};
use vdb_proto::v1 as pb;
use vdb_proto::v1::vdb_server::Vdb;

use crate::auth::{ApiKeys, Rpc};
use crate::convert::{
    compaction_from_pb, config_from_pb, explanation_to_pb, export_header_to_pb, hit_to_pb, info,
    retrain_from_pb, row_to_pb, rows_from_pb, tune_to_pb,
};
use crate::fields::filter_from_pb;
use crate::metrics::{RecallSampler, Sample};
use crate::snapshots::{Repositories, snapshot_to_pb};
use crate::status::{invalid, status};

/// Limits the server enforces on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Rows per write or import batch, ids per delete or get, queries per
    /// search.
    pub max_batch: usize,
    /// Results per query.
    pub max_k: usize,
    /// Requests served at once; more get `RESOURCE_EXHAUSTED`.
    pub max_concurrent: usize,
    /// Searches expected to compare at most this many vector components
    /// ([`Collection::search_work`]) run on the thread that received them;
    /// larger ones on the blocking pool. 0: every search on the pool.
    pub inline_search_work: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch: 10_000,
            max_k: 10_000,
            max_concurrent: 64,
            // About 1 ms of distance computations on one core: 384-d
            // vectors at nlist 1,024 and nprobe 16 over 100,000 rows are
            // 1.0 M components.
            inline_search_work: 4 << 20,
        }
    }
}

/// The service: an engine, the limits, the keys and the concurrency
/// permits.
#[derive(Debug, Clone)]
pub struct VdbService {
    pub(crate) engine: Arc<Engine>,
    pub(crate) limits: Limits,
    keys: Arc<ApiKeys>,
    permits: Arc<Semaphore>,
    repositories: Arc<Repositories>,
    metrics: Arc<crate::Metrics>,
    /// Picks searches to repeat exactly for the recall estimate.
    recall: Option<Arc<RecallSampler>>,
}

impl VdbService {
    /// Serves `engine` with `limits`, allowing the holders of `keys`.
    pub fn new(engine: Arc<Engine>, limits: Limits, keys: ApiKeys) -> VdbService {
        VdbService {
            permits: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            engine,
            limits,
            keys: Arc::new(keys),
            repositories: Arc::new(Repositories::default()),
            metrics: crate::Metrics::new(),
            recall: None,
        }
    }

    /// Samples searches for the online recall estimate with `sampler`.
    pub(crate) fn with_recall_sampler(mut self, sampler: Arc<RecallSampler>) -> VdbService {
        self.recall = Some(sampler);
        self
    }

    /// Counts refused requests into `metrics`, which also reports the
    /// concurrency permits taken.
    pub fn with_metrics(mut self, metrics: Arc<crate::Metrics>) -> VdbService {
        metrics.watch_permits(Arc::clone(&self.permits), self.limits.max_concurrent.max(1));
        self.metrics = metrics;
        self
    }

    /// Reaches `s3://` snapshot repositories as `repositories` says.
    pub fn with_repositories(mut self, repositories: Repositories) -> VdbService {
        self.repositories = Arc::new(repositories);
        self
    }

    /// Runs `f` on the blocking pool with the engine and the repository
    /// `name` names.
    async fn with_repository<T: Send + 'static>(
        &self,
        name: String,
        f: impl FnOnce(&Engine, &dyn Repository) -> vdb_engine::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let engine = Arc::clone(&self.engine);
        let repositories = Arc::clone(&self.repositories);
        // Building an S3 client and asking the store both block.
        let repo = tokio::task::spawn_blocking(move || {
            repositories.resolve(&engine, &name).map(|r| (engine, r))
        })
        .await
        .map_err(|e| Status::internal(format!("request task failed: {e}")))?;
        let (engine, repo) = repo?;
        blocking(move || f(&engine, repo.as_ref())).await
    }

    /// Checks the caller's key for `need`, then takes a permit.
    pub(crate) fn admit<T>(
        &self,
        req: &Request<T>,
        rpc: Rpc,
    ) -> Result<OwnedSemaphorePermit, Status> {
        self.keys.check(req, rpc)?;
        self.permit()
    }

    fn permit(&self) -> Result<OwnedSemaphorePermit, Status> {
        Arc::clone(&self.permits).try_acquire_owned().map_err(|_| {
            self.metrics.refused();
            Status::resource_exhausted(format!(
                "the server is serving its limit of {} requests; retry later",
                self.limits.max_concurrent
            ))
        })
    }

    /// Runs `f` with the collection `name` on the blocking pool.
    async fn with_collection<T: Send + 'static>(
        &self,
        name: String,
        f: impl FnOnce(Arc<Collection>) -> vdb_engine::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        tracing::Span::current().record("collection", name.as_str());
        let engine = Arc::clone(&self.engine);
        blocking(move || f(engine.collection(&name)?)).await
    }

    /// Runs `f` here, on the runtime's worker thread, if `inline`, else on
    /// the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        inline: bool,
        f: impl FnOnce() -> vdb_engine::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        if inline {
            f().map_err(status)
        } else {
            blocking(f).await
        }
    }

    /// Flush, Compact and Retrain (`rpc`): run `op` (given the requested
    /// nlist, which only Retrain accepts) and report whether it changed anything
    /// and the collection afterwards.
    async fn maintenance(
        &self,
        req: Request<pb::MaintenanceRequest>,
        rpc: Rpc,
        op: impl FnOnce(&Collection, Option<usize>) -> vdb_engine::Result<bool> + Send + 'static,
    ) -> Result<Response<pb::MaintenanceResponse>, Status> {
        let _p = self.admit(&req, rpc)?;
        let r = req.into_inner();
        if r.nlist.is_some() && rpc != Rpc::Retrain {
            return Err(invalid("nlist", "only Retrain takes nlist"));
        }
        let nlist = r.nlist.map(|n| n as usize);
        let out = self
            .with_collection(r.collection, move |c| {
                let changed = op(&c, nlist)?;
                Ok(pb::MaintenanceResponse {
                    changed,
                    info: Some(info(&c)),
                })
            })
            .await?;
        Ok(Response::new(out))
    }

    pub(crate) fn check_batch(&self, field: &str, n: usize) -> Result<(), Status> {
        if n == 0 {
            return Err(invalid(field, "empty; send at least one"));
        }
        if n > self.limits.max_batch {
            return Err(invalid(
                field,
                format!(
                    "{n} items exceed the server's limit of {} per request; split the request",
                    self.limits.max_batch
                ),
            ));
        }
        Ok(())
    }

    fn check_k(&self, k: u32) -> Result<usize, Status> {
        let k = k as usize;
        if k == 0 {
            return Err(invalid("k", "must be at least 1"));
        }
        if k > self.limits.max_k {
            return Err(invalid(
                "k",
                format!("{k} is above the server's limit of {}", self.limits.max_k),
            ));
        }
        Ok(k)
    }
}

/// Runs blocking engine work off the runtime's worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> vdb_engine::Result<T> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("request task failed: {e}")))?
        .map_err(status)
}

fn nprobe_of(n: Option<u32>) -> Result<Option<usize>, Status> {
    match n {
        Some(0) => Err(invalid("nprobe", "must be at least 1")),
        other => Ok(other.map(|n| n as usize)),
    }
}

fn max_probes_of(n: Option<u32>) -> Result<Option<usize>, Status> {
    match n {
        Some(0) => Err(invalid("max_probes", "must be at least 1")),
        other => Ok(other.map(|n| n as usize)),
    }
}

#[tonic::async_trait]
impl Vdb for VdbService {
    async fn create_snapshot(
        &self,
        req: Request<pb::CreateSnapshotRequest>,
    ) -> Result<Response<pb::SnapshotInfo>, Status> {
        let _p = self.admit(&req, Rpc::CreateSnapshot)?;
        let r = req.into_inner();
        let info = self
            .with_repository(r.repository, move |engine, repo| {
                let name = (!r.name.is_empty()).then_some(r.name.as_str());
                engine.create_snapshot(&r.collection, repo, name)
            })
            .await?;
        Ok(Response::new(snapshot_to_pb(&info)))
    }

    async fn list_snapshots(
        &self,
        req: Request<pb::ListSnapshotsRequest>,
    ) -> Result<Response<pb::ListSnapshotsResponse>, Status> {
        let _p = self.admit(&req, Rpc::ListSnapshots)?;
        let r = req.into_inner();
        let list = self
            .with_repository(r.repository, |engine, repo| engine.list_snapshots(repo))
            .await?;
        Ok(Response::new(pb::ListSnapshotsResponse {
            snapshots: list.iter().map(snapshot_to_pb).collect(),
        }))
    }

    async fn restore_snapshot(
        &self,
        req: Request<pb::RestoreSnapshotRequest>,
    ) -> Result<Response<pb::CollectionInfo>, Status> {
        let _p = self.admit(&req, Rpc::RestoreSnapshot)?;
        let r = req.into_inner();
        let c = self
            .with_repository(r.repository, move |engine, repo| {
                engine.restore_snapshot(repo, &r.snapshot, &r.name)
            })
            .await?;
        Ok(Response::new(info(&c)))
    }

    async fn delete_snapshot(
        &self,
        req: Request<pb::DeleteSnapshotRequest>,
    ) -> Result<Response<pb::DeleteSnapshotResponse>, Status> {
        let _p = self.admit(&req, Rpc::DeleteSnapshot)?;
        let r = req.into_inner();
        self.with_repository(r.repository, move |engine, repo| {
            engine.delete_snapshot(repo, &r.snapshot)
        })
        .await?;
        Ok(Response::new(pb::DeleteSnapshotResponse {}))
    }

    async fn create_collection(
        &self,
        req: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::CollectionInfo>, Status> {
        let _p = self.admit(&req, Rpc::CreateCollection)?;
        let r = req.into_inner();
        let config = config_from_pb(r.config)?;
        let engine = Arc::clone(&self.engine);
        let c = blocking(move || match r.centroids {
            None => engine.create_collection(&r.name, config),
            Some(c) => engine.create_collection_with_centroids(
                &r.name,
                config,
                TrainedCentroids {
                    values: c.values,
                    trained_rows: c.trained_rows,
                    imbalance: c.imbalance,
                },
            ),
        })
        .await?;
        Ok(Response::new(info(&c)))
    }

    async fn drop_collection(
        &self,
        req: Request<pb::DropCollectionRequest>,
    ) -> Result<Response<pb::DropCollectionResponse>, Status> {
        let _p = self.admit(&req, Rpc::DropCollection)?;
        let name = req.into_inner().name;
        let engine = Arc::clone(&self.engine);
        blocking(move || engine.drop_collection(&name)).await?;
        Ok(Response::new(pb::DropCollectionResponse {}))
    }

    async fn list_collections(
        &self,
        req: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        let _p = self.admit(&req, Rpc::ListCollections)?;
        Ok(Response::new(pb::ListCollectionsResponse {
            names: self.engine.list_collections(),
        }))
    }

    async fn describe_collection(
        &self,
        req: Request<pb::DescribeCollectionRequest>,
    ) -> Result<Response<pb::CollectionInfo>, Status> {
        let _p = self.admit(&req, Rpc::DescribeCollection)?;
        let r = req.into_inner();
        let lists = r.lists;
        let out = self
            .with_collection(r.name, move |c| {
                let mut out = info(&c);
                if lists {
                    out.list_sizes = c.list_sizes();
                }
                Ok(out)
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn alter_collection(
        &self,
        req: Request<pb::AlterCollectionRequest>,
    ) -> Result<Response<pb::CollectionInfo>, Status> {
        let _p = self.admit(&req, Rpc::AlterCollection)?;
        let r = req.into_inner();
        let change = Alter {
            nprobe: r.nprobe.map(|v| v as usize),
            nlist: r.nlist.map(|v| v as usize),
            flush_rows: r
                .flush_rows
                .map(usize::try_from)
                .transpose()
                .map_err(|_| invalid("flush_rows", "too large"))?,
            retrain: r.retrain.as_ref().map(retrain_from_pb),
            compaction: r.compaction.as_ref().map(compaction_from_pb),
            target_recall: r.target_recall,
            index_type: r
                .index_type
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e: String| invalid("index_type", e))?,
            add_fields: r
                .add_fields
                .iter()
                .enumerate()
                .map(|(i, f)| crate::fields::field_def_from_pb(f, &format!("add_fields[{i}]")))
                .collect::<Result<_, _>>()?,
        };
        let out = self
            .with_collection(r.name, move |c| {
                c.alter(change)?;
                Ok(info(&c))
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn upsert(
        &self,
        req: Request<pb::UpsertRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let _p = self.admit(&req, Rpc::Upsert)?;
        let r = req.into_inner();
        self.check_batch("rows", r.rows.len())?;
        let count = r.rows.len() as u64;
        let rows = rows_from_pb(r.rows, "rows")?;
        let lsn = self
            .with_collection(r.collection, move |c| c.upsert(rows))
            .await?;
        Ok(Response::new(pb::WriteResponse { lsn: lsn.0, count }))
    }

    async fn import(
        &self,
        req: Request<Streaming<pb::ImportRequest>>,
    ) -> Result<Response<pb::ImportResponse>, Status> {
        self.import_stream(req).await
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let _p = self.admit(&req, Rpc::Delete)?;
        let r = req.into_inner();
        self.check_batch("ids", r.ids.len())?;
        let count = r.ids.len() as u64;
        let ids = r.ids;
        let lsn = self
            .with_collection(r.collection, move |c| c.delete(&ids))
            .await?;
        Ok(Response::new(pb::WriteResponse { lsn: lsn.0, count }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let _p = self.admit(&req, Rpc::Get)?;
        let r = req.into_inner();
        self.check_batch("ids", r.ids.len())?;
        let ids = r.ids;
        let out = self
            .with_collection(r.collection, move |c| {
                let mut out = pb::GetResponse::default();
                for id in ids {
                    match c.get(id)? {
                        Some(row) => out.rows.push(row_to_pb(row)),
                        None => out.missing.push(id),
                    }
                }
                Ok(out)
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn search(
        &self,
        req: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let _p = self.admit(&req, Rpc::Search)?;
        let r = req.into_inner();
        self.check_batch("queries", r.queries.len())?;
        let k = self.check_k(r.k)?;
        let nprobe = if r.exact {
            Some(usize::MAX)
        } else {
            nprobe_of(r.nprobe)?
        };
        let filter = r
            .filter
            .as_ref()
            .map(|f| filter_from_pb(f, "filter"))
            .transpose()?;
        let max_probes = max_probes_of(r.max_probes)?;
        let queries: Vec<Vec<f32>> = r.queries.into_iter().map(|q| q.values).collect();
        let c = self.engine.collection(&r.collection).map_err(status)?;
        // The first query of a search chosen for the recall estimate
        // (exact searches need none).
        let sampled = self
            .recall
            .as_ref()
            .filter(|s| !r.exact && s.due(&r.collection))
            .map(|s| (Arc::clone(s), queries[0].clone(), filter.clone()));
        // A filtered search may probe on past nprobe: never in place.
        let inline = filter.is_none()
            && c.search_work(queries.len(), nprobe) <= self.limits.inline_search_work;
        let opts = SearchOptions {
            k,
            nprobe,
            with_payload: r.with_payload,
            with_vectors: r.with_vectors,
            with_fields: r.with_fields,
            filter,
            max_probes,
            rerank_epsilon: r.rerank_epsilon,
        };
        let span = tracing::Span::current();
        // Integers as i64: what OpenTelemetry's attributes hold.
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        span.record("collection", r.collection.as_str())
            .record("queries", int(queries.len() as u64));
        let (out, work) = self
            .run(inline, move || {
                let (found, work) = c.search_with_work(&queries, opts)?;
                let used = nprobe
                    .unwrap_or_else(|| c.default_nprobe())
                    .min(c.snapshot().nlist());
                let results = found
                    .into_iter()
                    .map(|hits| pb::QueryResult {
                        hits: hits.into_iter().map(hit_to_pb).collect(),
                    })
                    .collect();
                let out = pb::SearchResponse {
                    results,
                    nprobe: used as u32,
                };
                Ok((out, work))
            })
            .await?;
        span.record("nprobe", i64::from(out.nprobe))
            .record("lists_probed", int(work.lists))
            .record("rows_scanned", int(work.scanned))
            .record("exact_distances", int(work.exact));
        // Exact searches (ground truth) are not the index's work.
        if !r.exact {
            self.metrics.searched(&r.collection, work);
        }
        if let (Some((sampler, query, filter)), Some(first)) = (sampled, out.results.first()) {
            sampler.offer(Sample {
                collection: r.collection,
                query,
                k,
                filter,
                found: first.hits.iter().map(|h| h.id).collect(),
            });
        }
        Ok(Response::new(out))
    }

    async fn explain(
        &self,
        req: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let _p = self.admit(&req, Rpc::Explain)?;
        let r = req.into_inner();
        let k = self.check_k(r.k)?;
        let nprobe = nprobe_of(r.nprobe)?;
        let query = r.query.ok_or_else(|| invalid("query", "missing"))?.values;
        // The engine refuses more than MAX_SAMPLES by field.
        let samples = r.samples.map_or(DEFAULT_SAMPLES, |s| s as usize);
        let opts = ExplainOptions {
            k,
            nprobe,
            with_payload: r.with_payload,
            exact: r.exact,
            samples,
            filter: r
                .filter
                .as_ref()
                .map(|f| filter_from_pb(f, "filter"))
                .transpose()?,
            max_probes: max_probes_of(r.max_probes)?,
            rerank_epsilon: r.rerank_epsilon,
        };
        let out = self
            .with_collection(r.collection, move |c| {
                Ok(explanation_to_pb(c.explain(&query, opts)?))
            })
            .await?;
        Ok(Response::new(out))
    }

    async fn flush(
        &self,
        req: Request<pb::MaintenanceRequest>,
    ) -> Result<Response<pb::MaintenanceResponse>, Status> {
        self.maintenance(req, Rpc::Flush, |c, _| {
            let before = c.stats().flushed_lsn;
            c.flush()?;
            Ok(c.stats().flushed_lsn != before)
        })
        .await
    }

    async fn compact(
        &self,
        req: Request<pb::MaintenanceRequest>,
    ) -> Result<Response<pb::MaintenanceResponse>, Status> {
        self.maintenance(req, Rpc::Compact, |c, _| c.compact())
            .await
    }

    async fn retrain(
        &self,
        req: Request<pb::MaintenanceRequest>,
    ) -> Result<Response<pb::MaintenanceResponse>, Status> {
        self.maintenance(req, Rpc::Retrain, |c, nlist| {
            let before = c.stats().generation;
            c.retrain(nlist)?;
            Ok(c.stats().generation != before)
        })
        .await
    }

    async fn rebalance(
        &self,
        req: Request<pb::MaintenanceRequest>,
    ) -> Result<Response<pb::MaintenanceResponse>, Status> {
        self.maintenance(req, Rpc::Rebalance, |c, _| c.rebalance())
            .await
    }

    type ExportStream = tokio_stream::wrappers::ReceiverStream<Result<pb::ExportChunk, Status>>;

    async fn export(
        &self,
        req: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let permit = self.admit(&req, Rpc::Export)?;
        let name = req.into_inner().collection;
        let engine = Arc::clone(&self.engine);
        let c = blocking(move || engine.collection(&name)).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            // The permit is held until the stream is written out.
            let _permit = permit;
            let e = c.export();
            let first = pb::ExportChunk {
                header: Some(export_header_to_pb(&e, c.default_nprobe())),
                ..Default::default()
            };
            if tx.blocking_send(Ok(first)).is_err() {
                return;
            }
            // About 1 MiB of vectors per message.
            let rows = ((1 << 20) / (e.dim * 4 + 8)).max(1);
            // A closed channel means the client went away: stop reading,
            // there is no one to tell.
            let sent = e.for_each_chunk(rows, |list, ids, vectors| {
                let chunk = pb::ExportChunk {
                    header: None,
                    list,
                    ids: ids.to_vec(),
                    vectors: vectors.to_vec(),
                };
                tx.blocking_send(Ok(chunk)).map_err(|_| Stop::HungUp)
            });
            if let Err(Stop::Failed(e)) = sent {
                let _ = tx.blocking_send(Err(status(e)));
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn tune(
        &self,
        req: Request<pb::TuneRequest>,
    ) -> Result<Response<pb::TuneResponse>, Status> {
        let need = if req.get_ref().apply {
            Rpc::TuneApply
        } else {
            Rpc::Tune
        };
        let _p = self.admit(&req, need)?;
        let r = req.into_inner();
        // Unset fields take the engine's defaults.
        let mut opts = TuneOptions::new(r.target_recall);
        if let Some(k) = r.k {
            opts.k = self.check_k(k)?;
        }
        if let Some(sample) = r.sample {
            opts.sample = sample as usize;
        }
        if let Some(seed) = r.seed {
            opts.seed = seed;
        }
        opts.nprobes = r.nprobes.iter().map(|&p| p as usize).collect();
        opts.filter = r
            .filter
            .as_ref()
            .map(|f| filter_from_pb(f, "filter"))
            .transpose()?;
        let k = opts.k;
        let apply = r.apply;
        let out = self
            .with_collection(r.collection, move |c| {
                let report = c.tune(&opts)?;
                let applied = match (apply, report.recommended) {
                    (true, Some(nprobe)) => {
                        c.alter(Alter {
                            nprobe: Some(nprobe),
                            ..Alter::default()
                        })?;
                        true
                    }
                    _ => false,
                };
                Ok(tune_to_pb(&report, k, applied, info(&c)))
            })
            .await?;
        Ok(Response::new(out))
    }
}

/// Why an export stream stopped early.
#[derive(Debug)]
enum Stop {
    /// The client went away.
    HungUp,
    /// A list could not be read (told to the client).
    Failed(vdb_engine::Error),
}

impl From<vdb_engine::Error> for Stop {
    fn from(e: vdb_engine::Error) -> Stop {
        Stop::Failed(e)
    }
}
