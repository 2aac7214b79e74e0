//! What the benchmark searches: one segment in-process, a collection
//! through the engine's public API, or a collection over gRPC.

use std::sync::Arc;

use anyhow::{Context, Result};
use rayon::prelude::*;
use vdb_core::InvertedLists;
use vdb_engine::{Collection, SearchOptions};
use vdb_format::SegmentReader;
use vdb_ivf::{CoarseQuantizer, SearchParams, SearchTrace, Searcher, Source, search_batch};
use vdb_proto::v1 as pb;

use crate::connection::Client;
use crate::local::LocalServer;
use crate::vecio::Matrix;

/// What the benchmark searches: one segment in-process, or a collection
/// through the engine's public API.
pub(super) trait Target: Sync {
    /// A searcher for [`Target::search`] (with the bench's error bound).
    fn searcher(&self) -> Searcher {
        Searcher::new()
    }
    /// The ids found for one query.
    fn search(&self, searcher: &mut Searcher, query: &[f32], sp: SearchParams) -> Result<Vec<u64>>;
    /// The ids found for one query and the work it took.
    fn search_traced(&self, query: &[f32], sp: SearchParams) -> Result<(Vec<u64>, Work)>;
    /// Searches every query; returns how many were answered.
    fn search_all(&self, queries: &Matrix<f32>, sp: SearchParams) -> Result<usize>;
    /// The collection searched, when the target is one.
    fn collection(&self) -> Option<&Arc<Collection>> {
        None
    }
    /// Takes the stored vectors out of memory (a segment only).
    fn evict_vectors(&self) -> Result<()> {
        anyhow::bail!("only a segment's vectors can be evicted")
    }
    /// Advises random (`Some(true)`) or default access to the stored
    /// vectors, or (`None`) what the segment was opened with (a segment
    /// only).
    fn advise_random_vectors(&self, _random: Option<bool>) -> Result<()> {
        anyhow::bail!("only a segment's vectors can be advised")
    }
}

/// What one search computed: rows scanned (by their full vectors, or by
/// their codes), and of those the exact distances.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Work {
    pub(super) scanned: u64,
    pub(super) exact: u64,
}

impl Work {
    fn of(trace: &SearchTrace) -> Work {
        Work {
            scanned: trace.probed.iter().map(|p| p.scanned).sum(),
            exact: trace.fine_distances,
        }
    }
}

pub(super) struct SegmentTarget {
    pub(super) quantizer: CoarseQuantizer,
    pub(super) segment: SegmentReader,
    /// The error bound's multiplier in coded lists.
    pub(super) epsilon: f32,
    /// The temporary directory holding the segment, if it is one.
    pub(super) _dir: Option<tempfile::TempDir>,
}

impl Target for SegmentTarget {
    #[cfg(target_os = "linux")]
    fn evict_vectors(&self) -> Result<()> {
        Ok(self.segment.evict_vectors()?)
    }

    fn advise_random_vectors(&self, random: Option<bool>) -> Result<()> {
        let coded = self.segment.codes_seed().is_some();
        Ok(self
            .segment
            .advise_random_vectors(random.unwrap_or(coded))?)
    }

    fn searcher(&self) -> Searcher {
        let mut s = Searcher::new();
        s.set_epsilon(self.epsilon);
        s
    }

    fn search(&self, searcher: &mut Searcher, query: &[f32], sp: SearchParams) -> Result<Vec<u64>> {
        let sources: [&dyn InvertedLists; 1] = [&self.segment];
        let r = searcher.search(&self.quantizer, &sources, query, sp, None)?;
        Ok(r.into_iter().map(|n| n.id.0).collect())
    }

    fn search_traced(&self, query: &[f32], sp: SearchParams) -> Result<(Vec<u64>, Work)> {
        let sources: [&dyn InvertedLists; 1] = [&self.segment];
        let mut trace = SearchTrace::default();
        let r = self
            .searcher()
            .search(&self.quantizer, &sources, query, sp, Some(&mut trace))?;
        Ok((r.into_iter().map(|n| n.id.0).collect(), Work::of(&trace)))
    }

    fn search_all(&self, queries: &Matrix<f32>, sp: SearchParams) -> Result<usize> {
        let r = search_batch(
            &self.quantizer,
            &[Source::all(&self.segment)],
            &queries.data,
            sp,
            self.epsilon,
        )?;
        Ok(r.len())
    }
}

pub(super) struct EngineTarget {
    pub(super) collection: Arc<Collection>,
    /// The error bound's multiplier in coded lists (`None`: the default).
    pub(super) epsilon: Option<f32>,
}

impl EngineTarget {
    fn opts(&self, sp: SearchParams) -> SearchOptions {
        search_options(sp, self.epsilon)
    }
}

/// The engine's options for a search of `sp` with the error bound's
/// multiplier `epsilon`: ids and distances only.
pub(super) fn search_options(sp: SearchParams, epsilon: Option<f32>) -> SearchOptions {
    SearchOptions {
        k: sp.k,
        nprobe: Some(sp.nprobe),
        with_payload: false,
        with_vectors: false,
        rerank_epsilon: epsilon,
        ..Default::default()
    }
}

impl Target for EngineTarget {
    fn collection(&self) -> Option<&Arc<Collection>> {
        Some(&self.collection)
    }

    fn search(&self, _: &mut Searcher, query: &[f32], sp: SearchParams) -> Result<Vec<u64>> {
        let mut r = self.collection.search(&[query.to_vec()], self.opts(sp))?;
        Ok(r.pop()
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.id)
            .collect())
    }

    fn search_traced(&self, query: &[f32], sp: SearchParams) -> Result<(Vec<u64>, Work)> {
        let (hits, trace) = self.collection.search_traced(query, self.opts(sp))?;
        Ok((hits.into_iter().map(|h| h.id).collect(), Work::of(&trace)))
    }

    fn search_all(&self, queries: &Matrix<f32>, sp: SearchParams) -> Result<usize> {
        let blocks: Vec<usize> = queries
            .data
            .par_chunks(32 * queries.dim)
            .map(|block| {
                let qs: Vec<Vec<f32>> = block
                    .chunks_exact(queries.dim)
                    .map(<[f32]>::to_vec)
                    .collect();
                self.collection.search(&qs, self.opts(sp)).map(|r| r.len())
            })
            .collect::<Result<_, _>>()?;
        Ok(blocks.into_iter().sum())
    }
}

/// Searches over gRPC. Each thread that searches is one client: its own
/// single-threaded runtime and its own connection, as an application's
/// client threads would have.
pub(super) struct ServerTarget {
    pub(super) addr: Addr,
    /// The collection searched.
    pub(super) collection: String,
    /// The error bound's multiplier in coded lists (`None`: the server's
    /// default).
    pub(super) epsilon: Option<f32>,
}

/// Where the server is and how to reach it: address (as `--server`
/// takes it), API key, CA certificate for `https://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Addr {
    pub server: String,
    pub api_key: Option<String>,
    pub tls_ca: Option<std::path::PathBuf>,
}

pub(super) type Local = (tokio::runtime::Runtime, Client);

thread_local! {
    static CLIENT: std::cell::RefCell<Option<(Addr, Local)>> = const { std::cell::RefCell::new(None) };
}

pub(super) fn connect(addr: &Addr) -> Result<Local> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = rt.block_on(crate::connection::connect(
        &addr.server,
        addr.api_key.as_deref(),
        addr.tls_ca.as_deref(),
    ))?;
    Ok((rt, client))
}

impl ServerTarget {
    pub(super) fn call<T>(
        &self,
        f: impl AsyncFnOnce(Client) -> Result<T, tonic::Status>,
    ) -> Result<T> {
        CLIENT.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|(a, _)| a != &self.addr) {
                *slot = Some((self.addr.clone(), connect(&self.addr)?));
            }
            let (_, (rt, client)) = slot.as_ref().context("client connection")?;
            rt.block_on(f(client.clone()))
                .map_err(crate::connection::server_err)
        })
    }

    fn request(&self, query: &[f32], sp: SearchParams) -> pb::SearchRequest {
        pb::SearchRequest {
            collection: self.collection.clone(),
            queries: vec![pb::Vector {
                values: query.to_vec(),
            }],
            k: sp.k as u32,
            nprobe: Some(sp.nprobe as u32),
            rerank_epsilon: self.epsilon,
            ..Default::default()
        }
    }
}

impl Target for ServerTarget {
    fn search(&self, _: &mut Searcher, query: &[f32], sp: SearchParams) -> Result<Vec<u64>> {
        let req = self.request(query, sp);
        let r = self
            .call(async move |mut c| c.search(req).await)?
            .into_inner();
        Ok(r.results
            .into_iter()
            .next()
            .map(|q| q.hits.into_iter().map(|h| h.id).collect())
            .unwrap_or_default())
    }

    fn search_traced(&self, query: &[f32], sp: SearchParams) -> Result<(Vec<u64>, Work)> {
        let req = pb::ExplainRequest {
            collection: self.collection.clone(),
            query: Some(pb::Vector {
                values: query.to_vec(),
            }),
            k: sp.k as u32,
            nprobe: Some(sp.nprobe as u32),
            with_payload: false,
            exact: false,
            samples: Some(0),
            rerank_epsilon: self.epsilon,
            ..Default::default()
        };
        let r = self
            .call(async move |mut c| c.explain(req).await)?
            .into_inner();
        Ok((
            r.hits.into_iter().map(|h| h.id).collect(),
            Work {
                scanned: r.probed.iter().map(|p| p.scanned).sum::<u64>(),
                exact: r.fine_distances,
            },
        ))
    }

    fn search_all(&self, queries: &Matrix<f32>, sp: SearchParams) -> Result<usize> {
        // Blocks of 32 queries per request, requests in parallel.
        let blocks: Vec<usize> = queries
            .data
            .par_chunks(32 * queries.dim)
            .map(|block| {
                let req = pb::SearchRequest {
                    collection: self.collection.clone(),
                    queries: block
                        .chunks_exact(queries.dim)
                        .map(|q| pb::Vector { values: q.to_vec() })
                        .collect(),
                    k: sp.k as u32,
                    nprobe: Some(sp.nprobe as u32),
                    rerank_epsilon: self.epsilon,
                    ..Default::default()
                };
                self.call(async move |mut c| c.search(req).await)
                    .map(|r| r.into_inner().results.len())
            })
            .collect::<Result<_>>()?;
        Ok(blocks.into_iter().sum())
    }
}

/// The engine target over the local server's collection.
pub(super) fn in_process_target(
    local: &LocalServer,
    epsilon: Option<f32>,
) -> Result<Box<dyn Target>> {
    Ok(Box::new(EngineTarget {
        collection: local.engine.collection("bench")?,
        epsilon,
    }))
}
