//! Tuning nprobe with evidence: measured recall@k against exact search,
//! latency and work, over a sweep of nprobe values, on a sample of the
//! collection's own rows used as queries.

use std::collections::BinaryHeap;
use std::time::Instant;

use rayon::prelude::*;
use vdb_core::{ListId, RowAddr};
use vdb_ivf::{CoarseQuantizer, SearchParams, Searcher, Source, SplitMix64};

use crate::collection::Collection;
use crate::error::{Error, Result};

/// The most sampled queries one tuning run takes.
pub const MAX_TUNE_SAMPLE: usize = 10_000;

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneOptions {
    /// Neighbours per query (recall@k).
    pub k: usize,
    /// Stored rows used as queries.
    pub sample: usize,
    /// Recall wanted, in (0, 1].
    pub target_recall: f64,
    /// nprobe values to measure; empty = 1, 2, 3, 4, 6, 8, 12, 16, … (steps
    /// of about 1.5×) up to nlist.
    pub nprobes: Vec<usize>,
    /// Which rows are sampled.
    pub seed: u64,
    /// Measure filtered searches: recall against the exact top-k of the
    /// rows the filter holds for (the queries are sampled from all rows).
    pub filter: Option<vdb_core::Filter>,
}

impl TuneOptions {
    /// recall@10 on 200 sampled rows against `target_recall`.
    pub fn new(target_recall: f64) -> TuneOptions {
        TuneOptions {
            k: 10,
            sample: 200,
            target_recall,
            nprobes: Vec::new(),
            seed: 42,
            filter: None,
        }
    }
}

/// One nprobe of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct TunePoint {
    /// Lists probed.
    pub nprobe: usize,
    /// Mean recall@k against exact search.
    pub recall: f64,
    /// Mean and 99th-percentile time of one search, in milliseconds
    /// (measured one query at a time on one thread).
    pub mean_ms: f64,
    /// See `mean_ms`.
    pub p99_ms: f64,
    /// Mean distances computed per query (coarse + fine); in lists with
    /// codes, exact distances only (the rows the codes' bound let
    /// through), not the codes' estimates.
    pub distances_per_query: f64,
}

/// The result of a tuning run.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneReport {
    /// The sweep, by nprobe.
    pub points: Vec<TunePoint>,
    /// The smallest nprobe of the sweep whose recall meets the target.
    pub recommended: Option<usize>,
    /// Queries measured (fewer than asked when the collection is small).
    pub sample: usize,
    /// Lists of the generation measured.
    pub nlist: usize,
    /// That generation.
    pub generation: u64,
}

/// 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, … up to `nlist`, and `nlist`.
pub fn default_sweep(nlist: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut p = 1usize;
    while p < nlist {
        out.push(p);
        let half = p / 2;
        if p >= 2 && p + half < nlist && p.is_power_of_two() {
            out.push(p + half);
        }
        p *= 2;
    }
    out.push(nlist.max(1));
    out.dedup();
    out
}

/// `sample` of the visible rows of `sources` (chosen by `seed`), as
/// `(id, vector)`, and how many visible rows there are.
///
/// The rows whose ids hash lowest under `seed` (bottom-k sampling): the
/// sample depends on which rows the collection holds, not on how
/// segments lay them out, so a measurement repeated after a compaction
/// (or a tune after the recall target's measurement) samples the same
/// rows.
fn sample_rows(
    sources: &[Source<'_>],
    nlist: usize,
    dim: usize,
    sample: usize,
    seed: u64,
) -> (usize, Vec<(u64, Vec<f32>)>) {
    // The `sample` lowest (hash, id), with where the row is: (source,
    // list, index in list).
    let mut lowest: BinaryHeap<(u64, u64, usize, u32, u32)> = BinaryHeap::new();
    let mut visible = 0usize;
    for (s, src) in sources.iter().enumerate() {
        for l in 0..nlist {
            let list = ListId(l as u32);
            let start = src.lists.list_row_start(list);
            for (i, &id) in src.lists.list_ids(list).iter().enumerate() {
                if src.deleted.is_some_and(|d| d.contains(start + i)) {
                    continue;
                }
                visible += 1;
                let key = (SplitMix64::new(id ^ seed).next_u64(), id);
                if lowest.len() < sample {
                    lowest.push((key.0, key.1, s, l as u32, i as u32));
                } else if lowest.peek().is_some_and(|top| key < (top.0, top.1)) {
                    lowest.pop();
                    lowest.push((key.0, key.1, s, l as u32, i as u32));
                }
            }
        }
    }
    let rows = lowest
        .into_sorted_vec()
        .into_iter()
        .map(|(_, id, s, l, i)| {
            let (list, i) = (ListId(l), i as usize);
            let lists = sources[s].lists;
            (
                id,
                lists.list_vectors(list)[i * dim..(i + 1) * dim].to_vec(),
            )
        })
        .collect();
    (visible, rows)
}

/// Queries, neighbours per query and sampling seed of the measurement a
/// recall target chooses nprobe by.
pub const TARGET_SAMPLE: usize = 200;
/// See [`TARGET_SAMPLE`].
pub const TARGET_K: usize = 10;
const TARGET_SEED: u64 = 42;

/// The nprobe a recall target chose, and the recall measured at it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tuned {
    pub nprobe: usize,
    pub recall: f64,
}

/// The smallest nprobe whose recall@[`TARGET_K`] reaches `target` on
/// [`TARGET_SAMPLE`] visible rows of `sources` used as queries (each
/// excluded from its own results); `None` with fewer than 2 rows.
///
/// No sweep is needed: one exact search per query says in which list each
/// true neighbour lies and that list's coarse rank, and a search at
/// nprobe `p` finds exactly the neighbours whose list ranks below `p`.
pub(crate) fn nprobe_for_recall(
    q: &CoarseQuantizer,
    sources: &[Source<'_>],
    target: f64,
) -> Result<Option<Tuned>> {
    let nlist = q.nlist();
    let (visible, queries) = sample_rows(sources, nlist, q.dim(), TARGET_SAMPLE, TARGET_SEED);
    if visible < 2 {
        return Ok(None);
    }
    // The exact neighbours of all the queries, each list read once for a
    // block of them; then each neighbour's list's coarse rank.
    let metric = q.metric();
    let mut flat: Vec<f32> = queries
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    flat.chunks_exact_mut(q.dim())
        .for_each(|v| metric.prepare(v));
    let found = vdb_ivf::exact_batch(q, sources, &flat, TARGET_K + 1)?;
    let ranks: Vec<Vec<u32>> = queries
        .par_iter()
        .zip(flat.par_chunks(q.dim()))
        .zip(found)
        .map_init(
            || (Vec::new(), Vec::new()),
            |(scratch, order), (((id, _), v), found)| {
                q.probe(v, nlist, scratch, order);
                found
                    .iter()
                    .filter(|n| n.id.0 != *id)
                    .take(TARGET_K)
                    .map(|n| coarse_rank(order, sources, n.addr))
                    .collect()
            },
        )
        .collect();
    // Neighbours first found at each nprobe - 1.
    let mut at = vec![0u64; nlist];
    let mut total = 0u64;
    for r in ranks.iter().flatten() {
        total += 1;
        if let Some(n) = at.get_mut(*r as usize) {
            *n += 1;
        }
    }
    let mut found = 0u64;
    for (p, n) in at.iter().enumerate() {
        found += n;
        let recall = found as f64 / total.max(1) as f64;
        if recall >= target {
            return Ok(Some(Tuned {
                nprobe: p + 1,
                recall,
            }));
        }
    }
    Ok(Some(Tuned {
        nprobe: nlist,
        recall: found as f64 / total.max(1) as f64,
    }))
}

/// The coarse rank (position in `order`) of the list holding the row at
/// `addr`; `u32::MAX` if no list of `order` holds it.
fn coarse_rank(order: &[(ListId, f32)], sources: &[Source<'_>], addr: RowAddr) -> u32 {
    let Some(src) = sources.get(addr.source as usize) else {
        return u32::MAX;
    };
    let row = addr.row as usize;
    order
        .iter()
        .position(|&(l, _)| {
            let start = src.lists.list_row_start(l);
            (start..start + src.lists.list_len(l)).contains(&row)
        })
        .map_or(u32::MAX, |r| r as u32)
}

impl Collection {
    /// Measures recall@k, latency and distance computations over a sweep
    /// of nprobe values, using `sample` stored rows (chosen by `seed`) as
    /// queries, each row excluded from its own results; recommends the
    /// smallest nprobe whose recall meets `target_recall`. Searches only;
    /// set the default with [`Collection::alter`].
    pub fn tune(&self, opts: &TuneOptions) -> Result<TuneReport> {
        if opts.k == 0 {
            return Err(Error::invalid("k", "must be at least 1"));
        }
        if !(opts.target_recall > 0.0 && opts.target_recall <= 1.0) {
            return Err(Error::invalid(
                "target_recall",
                format!("{} is not in (0, 1]", opts.target_recall),
            ));
        }
        if opts.sample == 0 || opts.sample > MAX_TUNE_SAMPLE {
            return Err(Error::invalid(
                "sample",
                format!("{} is not in 1..={MAX_TUNE_SAMPLE}", opts.sample),
            ));
        }
        if let Some(f) = &opts.filter {
            f.check(&self.fields()).map_err(Error::invalid_field)?;
        }
        let snap = self.snapshot();
        let bound = opts.filter.as_ref().map(|f| snap.bind(f));
        let sources = snap.sources_filtered(bound.as_deref());
        let q = snap.quantizer();
        let (nlist, dim) = (q.nlist(), q.dim());
        // The exact neighbours read every row.
        let all: Vec<ListId> = (0..nlist as u32).map(ListId).collect();
        let _held = snap.hold_lists(&all)?;
        let sweep = if opts.nprobes.is_empty() {
            default_sweep(nlist)
        } else {
            let mut s = opts.nprobes.clone();
            if let Some(&bad) = s.iter().find(|&&p| p == 0) {
                return Err(Error::invalid(
                    "nprobes",
                    format!("{bad} is not at least 1"),
                ));
            }
            s.sort_unstable();
            s.dedup();
            s
        };

        let (visible, queries) = sample_rows(&sources, nlist, dim, opts.sample, opts.seed);
        if visible < 2 {
            return Err(Error::invalid(
                "sample",
                format!("the collection has {visible} visible rows; tuning needs at least 2"),
            ));
        }
        let k = opts.k;
        // Each query finds itself first; ask for one more and drop it.
        let without_self = |id: u64, found: Vec<vdb_core::Neighbor>| -> Vec<u64> {
            found
                .into_iter()
                .map(|n| n.id.0)
                .filter(|&x| x != id)
                .take(k)
                .collect()
        };

        // Exact neighbours and each query's coarse ranking, in parallel.
        let sizes: Vec<u64> = (0..nlist)
            .map(|l| {
                sources
                    .iter()
                    .map(|s| s.lists.list_len(ListId(l as u32)) as u64)
                    .sum()
            })
            .collect();
        let exact: Vec<(Vec<u64>, Vec<u64>)> = queries
            .par_iter()
            // Exact: with codes too, every row's exact distance.
            .map_init(Searcher::exact, |searcher, (id, v)| {
                let all = SearchParams {
                    k: k + 1,
                    nprobe: nlist,
                    max_probes: None,
                };
                let found = searcher.search_sources(q, &sources, v, all, None)?;
                // Rows scanned at nprobe p: the stored rows of the p
                // nearest lists.
                let mut dists = Vec::new();
                let mut ranked = Vec::new();
                let mut prepared = v.clone();
                q.metric().prepare(&mut prepared);
                q.probe(&prepared, nlist, &mut dists, &mut ranked);
                let mut cumulative = Vec::with_capacity(nlist);
                let mut sum = 0u64;
                for (l, _) in &ranked {
                    sum += sizes[l.index()];
                    cumulative.push(sum);
                }
                Ok((without_self(*id, found), cumulative))
            })
            .collect::<Result<_>>()?;

        let mut points = Vec::with_capacity(sweep.len());
        let mut searcher = Searcher::new();
        for &nprobe in &sweep {
            let params = SearchParams {
                k: k + 1,
                nprobe,
                max_probes: None,
            };
            let mut found_total = 0usize;
            let mut wanted_total = 0usize;
            let mut times = Vec::with_capacity(queries.len());
            let mut distances = 0u64;
            for ((id, v), (truth, cumulative)) in queries.iter().zip(&exact) {
                let t = Instant::now();
                let found = searcher.search_sources(q, &sources, v, params, None)?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
                let got = without_self(*id, found);
                found_total += got.iter().filter(|x| truth.contains(x)).count();
                wanted_total += truth.len();
                distances += if bound.is_some() || q.codebook().is_some() {
                    // How far a filtered search probes depends on the
                    // rows that pass, and how many rows get an exact
                    // distance in coded lists on their estimates: ask the
                    // search (untimed).
                    let mut trace = vdb_ivf::SearchTrace::default();
                    searcher.search_sources(q, &sources, v, params, Some(&mut trace))?;
                    trace.total_distances()
                } else {
                    nlist as u64 + cumulative.get(nprobe.min(nlist) - 1).copied().unwrap_or(0)
                };
            }
            times.sort_by(f64::total_cmp);
            let n = times.len().max(1);
            points.push(TunePoint {
                nprobe,
                recall: if wanted_total == 0 {
                    1.0
                } else {
                    found_total as f64 / wanted_total as f64
                },
                mean_ms: times.iter().sum::<f64>() / n as f64,
                p99_ms: times
                    .get(((times.len().saturating_sub(1)) as f64 * 0.99).round() as usize)
                    .copied()
                    .unwrap_or(0.0),
                distances_per_query: distances as f64 / n as f64,
            });
        }
        let recommended = points
            .iter()
            .find(|p| p.recall >= opts.target_recall)
            .map(|p| p.nprobe);
        Ok(TuneReport {
            points,
            recommended,
            sample: queries.len(),
            nlist,
            generation: snap.generation(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_sweep_steps_by_about_one_and_a_half() {
        assert_eq!(default_sweep(1), vec![1]);
        assert_eq!(default_sweep(2), vec![1, 2]);
        assert_eq!(default_sweep(16), vec![1, 2, 3, 4, 6, 8, 12, 16]);
        assert_eq!(default_sweep(20), vec![1, 2, 3, 4, 6, 8, 12, 16, 20]);
        let big = default_sweep(1024);
        assert_eq!(big.first(), Some(&1));
        assert_eq!(big.last(), Some(&1024));
        assert!(big.contains(&768) && big.contains(&48));
    }
}
