//! Explain: what one search did, in enough detail to draw it — every
//! centroid ranked, the probed lists with example members, where each
//! result came from and, on request, what an exact search would have
//! returned instead.

use vdb_core::{ListId, Neighbor};
use vdb_ivf::{SearchTrace, list_members_near_centroid};

use crate::collection::Collection;
use crate::error::{Error, Result};
use crate::{Hit, SearchOptions};

/// Members shown per probed list unless asked otherwise, and at most.
pub const DEFAULT_SAMPLES: usize = 9;
/// The most members shown per probed list.
pub const MAX_SAMPLES: usize = 100;

/// What to explain.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainOptions {
    /// Results wanted.
    pub k: usize,
    /// Lists to probe; `None` uses the collection's default.
    pub nprobe: Option<usize>,
    /// Return payloads with the hits and the members.
    pub with_payload: bool,
    /// Also search exhaustively and compare.
    pub exact: bool,
    /// Example members per probed list (at most [`MAX_SAMPLES`]).
    pub samples: usize,
    /// Explain a filtered search (as [`SearchOptions::filter`]).
    pub filter: Option<vdb_core::Filter>,
    /// With a filter: most lists searched (as [`SearchOptions::max_probes`]).
    pub max_probes: Option<usize>,
    /// With codes: the error bound's multiplier (as
    /// [`SearchOptions::rerank_epsilon`]).
    pub rerank_epsilon: Option<f32>,
}

impl ExplainOptions {
    /// `k` results at the default nprobe, payloads, [`DEFAULT_SAMPLES`]
    /// members per list, no exact comparison.
    pub fn new(k: usize) -> ExplainOptions {
        ExplainOptions {
            k,
            nprobe: None,
            with_payload: true,
            exact: false,
            samples: DEFAULT_SAMPLES,
            filter: None,
            max_probes: None,
            rerank_epsilon: None,
        }
    }
}

/// A result placed in the index.
#[derive(Debug, Clone, PartialEq)]
pub struct TracedHit {
    /// The row's id, distance to the query and payload.
    pub hit: Hit,
    /// The list it is stored in.
    pub list: u32,
    /// That list's coarse rank for this query (0 = nearest centroid).
    pub list_rank: u32,
}

/// One list on the map.
#[derive(Debug, Clone, PartialEq)]
pub struct ListView {
    /// The list number.
    pub list: u32,
    /// Its centroid's distance to the query.
    pub centroid_distance: f32,
    /// Visible rows in it.
    pub size: u64,
    /// Its centroid's position on the 2-D map.
    pub position: [f32; 2],
}

/// An example member of a probed list.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The row's id, its distance to the list's centroid, and its payload.
    pub hit: Hit,
    /// Its position on the 2-D map.
    pub position: [f32; 2],
}

/// The exact search next to the approximate one.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactComparison {
    /// The exact top-k.
    pub hits: Vec<TracedHit>,
    /// The exact neighbours the search did not return, nearest first.
    pub missed: Vec<TracedHit>,
    /// The smallest nprobe whose search returns the exact top-k for this
    /// query: one more than the largest coarse rank among the lists the
    /// exact neighbours live in.
    pub min_nprobe: usize,
    /// Example members of each unprobed list that holds a missed
    /// neighbour (list number, members nearest its centroid), by coarse
    /// rank: what the skipped clusters hold. A neighbour missed in a
    /// probed list (its code estimate ruled it out) adds no list here.
    pub missed_lists: Vec<(u32, Vec<Sample>)>,
}

/// Everything explain reports about one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The centroid generation searched (0 = untrained, one list).
    pub generation: u64,
    /// Rows visible to the search.
    pub rows: u64,
    /// The results, each with the list it came from.
    pub hits: Vec<TracedHit>,
    /// The search's record: probed lists with their work, and every
    /// centroid's distance in coarse rank order.
    pub trace: SearchTrace,
    /// Every list in coarse rank order (as `trace.coarse`), with its size
    /// and map position.
    pub lists: Vec<ListView>,
    /// The query's position on the map.
    pub query_position: [f32; 2],
    /// Example members of each probed list (parallel to `trace.probed`):
    /// the visible rows nearest the centroid, nearest first.
    pub samples: Vec<Vec<Sample>>,
    /// With `exact`: the comparison with an exhaustive search.
    pub exact: Option<ExactComparison>,
    /// The search's filter, if any.
    pub filter: Option<vdb_core::Filter>,
    /// With a filter: the visible rows that pass it, counted by testing
    /// every row (the trace has the estimate the search had).
    pub filter_rows: Option<u64>,
}

/// The visible rows of `sources` that pass their filters.
fn passing_rows(sources: &[vdb_ivf::Source<'_>]) -> u64 {
    sources
        .iter()
        .map(|s| {
            (0..s.lists.total_len())
                .filter(|&r| !s.deleted.is_some_and(|d| d.contains(r)))
                .filter(|&r| s.filter.is_none_or(|f| f.matches(r)))
                .count() as u64
        })
        .sum()
}

impl Collection {
    /// Searches one query like [`Collection::search`] and explains it: the
    /// coarse stage (every centroid ranked, the probed lists with example
    /// members), the fine stage (rows scanned per list, skipped, best
    /// distance, distance deciles, results contributed), a 2-D map of the
    /// lists, and with `exact` the exhaustive top-k with every missed
    /// neighbour placed in its list and the nprobe that would have found
    /// them all.
    pub fn explain(&self, query: &[f32], opts: ExplainOptions) -> Result<Explanation> {
        if opts.samples > MAX_SAMPLES {
            return Err(Error::invalid(
                "samples",
                format!("{} is above the limit of {MAX_SAMPLES}", opts.samples),
            ));
        }
        self.check_query(query, || "query".into())?;
        let search = SearchOptions {
            k: opts.k,
            nprobe: opts.nprobe,
            with_payload: opts.with_payload,
            filter: opts.filter.clone(),
            max_probes: opts.max_probes,
            rerank_epsilon: opts.rerank_epsilon,
            ..SearchOptions::default()
        };
        let params = self.params(&search)?;
        let snap = self.snapshot();
        let bound = opts.filter.as_ref().map(|f| snap.bind(f));
        let sources = snap.sources_filtered(bound.as_deref());
        let quantizer = snap.quantizer();
        let mut searcher = search.searcher();
        let mut trace = SearchTrace::default();
        let found =
            searcher.search_sources(quantizer, &sources, query, params, Some(&mut trace))?;
        let ranks = trace.ranks();
        let filter_rows = bound.as_ref().map(|_| passing_rows(&sources));
        let hits = traced(snap.hits(found, &search)?, &trace.result_lists, &ranks);

        let layout = quantizer.layout();
        let mut prepared = query.to_vec();
        quantizer.metric().prepare(&mut prepared);
        let query_position = layout.project(&prepared);
        let sizes = crate::collection::visible_sizes(&sources, quantizer.nlist());
        let lists = trace
            .coarse
            .iter()
            .map(|&(l, d)| ListView {
                list: l.0,
                centroid_distance: d,
                size: sizes.get(l.index()).copied().unwrap_or(0),
                position: layout.centroid(l),
            })
            .collect();
        let sample = |list: ListId| -> Result<Vec<Sample>> {
            let members = list_members_near_centroid(quantizer, &sources, list, opts.samples)?;
            let positions: Vec<[f32; 2]> =
                members.iter().map(|m| layout.project(&m.vector)).collect();
            let found = members
                .iter()
                .map(|m| Neighbor {
                    id: m.id,
                    distance: m.distance,
                    addr: m.addr,
                })
                .collect();
            Ok(snap
                .hits(found, &search)?
                .into_iter()
                .zip(positions)
                .map(|(hit, position)| Sample { hit, position })
                .collect())
        };
        let samples = trace
            .probed
            .iter()
            .map(|p| sample(p.list))
            .collect::<Result<_>>()?;

        let exact = if opts.exact {
            let all = vdb_ivf::SearchParams {
                k: params.k,
                nprobe: quantizer.nlist(),
                max_probes: None,
            };
            // Every row's exact distance, codes or not: the true top-k.
            let mut t = SearchTrace::default();
            let found = vdb_ivf::Searcher::exact().search_sources(
                quantizer,
                &sources,
                query,
                all,
                Some(&mut t),
            )?;
            let exact = traced(snap.hits(found, &search)?, &t.result_lists, &ranks);
            let returned: std::collections::HashSet<u64> = hits.iter().map(|h| h.hit.id).collect();
            let missed: Vec<TracedHit> = exact
                .iter()
                .filter(|h| !returned.contains(&h.hit.id))
                .cloned()
                .collect();
            let min_nprobe = exact
                .iter()
                .map(|h| h.list_rank as usize + 1)
                .max()
                .unwrap_or(0);
            // A neighbour missed in a probed list (with codes: its
            // estimate ruled it out) is not in an unprobed list to show.
            let probed: std::collections::HashSet<u32> =
                trace.probed.iter().map(|p| p.list.0).collect();
            let mut lists: Vec<(u32, u32)> = missed
                .iter()
                .filter(|h| !probed.contains(&h.list))
                .map(|h| (h.list_rank, h.list))
                .collect();
            lists.sort_unstable();
            lists.dedup();
            let missed_lists = lists
                .into_iter()
                .map(|(_, l)| Ok((l, sample(ListId(l))?)))
                .collect::<Result<_>>()?;
            Some(ExactComparison {
                hits: exact,
                missed,
                min_nprobe,
                missed_lists,
            })
        } else {
            None
        };
        Ok(Explanation {
            generation: snap.generation(),
            rows: snap.live_rows() as u64,
            hits,
            trace,
            lists,
            query_position,
            samples,
            exact,
            filter: opts.filter,
            filter_rows,
        })
    }

    /// Visible rows in each list of the current generation, by list
    /// number.
    pub fn list_sizes(&self) -> Vec<u64> {
        let snap = self.snapshot();
        crate::collection::visible_sizes(&snap.sources(), snap.nlist())
    }
}

/// Hits placed in their lists, with each list's coarse rank.
fn traced(hits: Vec<Hit>, lists: &[ListId], ranks: &[u32]) -> Vec<TracedHit> {
    hits.into_iter()
        .zip(lists)
        .map(|(hit, &l)| TracedHit {
            hit,
            list: l.0,
            list_rank: ranks.get(l.index()).copied().unwrap_or(u32::MAX),
        })
        .collect()
}
