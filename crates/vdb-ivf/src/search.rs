//! IVF search: coarse probe, then an exhaustive scan of the probed lists.

use vdb_core::{
    CODE_FACTORS, ExtendedCodes, Hold, InvertedLists, ListCodes, ListId, Metric, Neighbor, RowAddr,
    RowFilter, RowSet, TopK, VectorId, validate_vector,
};

use vdb_core::distance::fastscan;

use crate::error::{Error, Result};
use crate::quantizer::CoarseQuantizer;
use crate::rabitq::{self, ListQuery};
use crate::trace::{ProbedList, SearchTrace, deciles};

/// Rows whose distances are computed in one kernel call before they are
/// offered to the top-k selector.
const SCAN_CHUNK: usize = 256;
const _: () = assert!(SCAN_CHUNK.is_multiple_of(fastscan::BLOCK_ROWS));

/// Per-request search parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParams {
    /// Results wanted. Fewer come back when fewer rows are reachable.
    pub k: usize,
    /// Lists to scan; values above `nlist` are clamped to `nlist` (and the
    /// trace says so).
    pub nprobe: usize,
    /// With a filter: the scan goes on past the `nprobe` lists, in
    /// centroid order, until it has scored as many rows that pass as an
    /// unfiltered search scores (every row of the `nprobe` lists, and at
    /// least `k`), or has scanned this many lists (`None`: every list, so
    /// `k` rows come back whenever `k` rows match). Without a filter it
    /// has no effect.
    pub max_probes: Option<usize>,
}

impl SearchParams {
    /// `k` results from `nprobe` lists, probing further with a filter
    /// until `k` are found.
    pub fn new(k: usize, nprobe: usize) -> SearchParams {
        SearchParams {
            k,
            nprobe,
            max_probes: None,
        }
    }

    /// Checks that `k` and `nprobe` are at least 1.
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return Err(vdb_core::Error::invalid("k", "must be at least 1").into());
        }
        if self.nprobe == 0 {
            return Err(vdb_core::Error::invalid("nprobe", "must be at least 1").into());
        }
        Ok(())
    }
}

/// One set of inverted lists to search (a segment, a memtable batch), the
/// rows of it that are no longer visible (deleted or replaced), numbered as
/// [`InvertedLists::list_row_start`] numbers them, and the filter its rows
/// must pass.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    /// The lists.
    pub lists: &'a dyn InvertedLists,
    /// Rows to skip, if any.
    pub deleted: Option<&'a RowSet>,
    /// Rows to return only if they pass, if any.
    pub filter: Option<&'a dyn RowFilter>,
}

impl std::fmt::Debug for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("rows", &self.lists.total_len())
            .field("deleted", &self.deleted.map_or(0, RowSet::count))
            .field("filtered", &self.filter.is_some())
            .finish()
    }
}

impl<'a> Source<'a> {
    /// All rows of `lists` visible.
    pub fn all(lists: &'a dyn InvertedLists) -> Source<'a> {
        Source {
            lists,
            deleted: None,
            filter: None,
        }
    }
}

/// What searches did, summed: counted by every search, traced or not
/// ([`Searcher::work`]), at the cost of three additions a probed list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchWork {
    /// Queries searched.
    pub queries: u64,
    /// Lists probed (a filtered search may probe past nprobe).
    pub lists: u64,
    /// Visible rows scored, by their exact distance or their code's
    /// estimate.
    pub scanned: u64,
    /// Exact distances computed: every scored row of a list without
    /// codes, the reranked rows of a list with them.
    pub exact: u64,
}

impl std::ops::Add for SearchWork {
    type Output = SearchWork;

    /// The sum of two counts.
    fn add(self, other: SearchWork) -> SearchWork {
        SearchWork {
            queries: self.queries + other.queries,
            lists: self.lists + other.lists,
            scanned: self.scanned + other.scanned,
            exact: self.exact + other.exact,
        }
    }
}

/// Scratch space for searches, reused across queries so the hot path does
/// not allocate. One per thread.
#[derive(Debug)]
pub struct Searcher {
    /// What the searches so far did.
    work: SearchWork,
    query: Vec<f32>,
    centroid_distances: Vec<f32>,
    probes: Vec<(ListId, f32)>,
    top: TopK,
    distances: Vec<f32>,
    /// Lists with codes: the query rotated, prepared per list, the bit
    /// products of a chunk, and the error bound's multiplier.
    rotated: Vec<f32>,
    list_query: ListQuery,
    dots: Vec<u32>,
    lowers: Vec<f32>,
    epsilon: f32,
    /// Whether lists with codes are scanned by them; `false` scans every
    /// list's full vectors.
    use_codes: bool,
}

impl Default for Searcher {
    fn default() -> Self {
        Searcher::new()
    }
}

impl Searcher {
    /// An empty searcher.
    pub fn new() -> Searcher {
        Searcher {
            work: SearchWork::default(),
            query: Vec::new(),
            centroid_distances: Vec::new(),
            probes: Vec::new(),
            top: TopK::new(0),
            distances: vec![0.0; SCAN_CHUNK],
            rotated: Vec::new(),
            list_query: ListQuery::new(),
            dots: vec![0; SCAN_CHUNK],
            lowers: vec![0.0; SCAN_CHUNK],
            epsilon: rabitq::DEFAULT_EPSILON,
            use_codes: true,
        }
    }

    /// A searcher that ignores codes: every probed row gets its exact
    /// distance, as in a list without codes. What an exhaustive search
    /// (nprobe = nlist) that must return the true neighbours uses.
    pub fn exact() -> Searcher {
        Searcher {
            use_codes: false,
            ..Searcher::new()
        }
    }

    /// Sets the multiplier of the error bound that decides, in lists with
    /// codes, which rows get their exact distance ([`rabitq`]): larger
    /// computes more exact distances and misses fewer neighbours.
    /// Values that are not finite or below 0 are taken as 0.
    pub fn set_epsilon(&mut self, epsilon: f32) {
        self.epsilon = if epsilon.is_finite() {
            epsilon.max(0.0)
        } else {
            0.0
        };
    }

    /// What the searches of this searcher did, summed since it was made.
    pub fn work(&self) -> SearchWork {
        self.work
    }

    /// Searches `sources` (lists clustered with `quantizer`'s centroids, e.g.
    /// several segments and a memtable) for the `params.k` nearest rows to
    /// `query`, scanning the `params.nprobe` lists nearest to it. The query
    /// is validated and prepared for the metric here. When `trace` is given
    /// it is filled with what the search did.
    pub fn search(
        &mut self,
        quantizer: &CoarseQuantizer,
        sources: &[&dyn InvertedLists],
        query: &[f32],
        params: SearchParams,
        trace: Option<&mut SearchTrace>,
    ) -> Result<Vec<Neighbor>> {
        let sources: Vec<Source<'_>> = sources.iter().map(|&l| Source::all(l)).collect();
        self.search_sources(quantizer, &sources, query, params, trace)
    }

    /// [`Searcher::search`] over sources that may have rows to skip.
    pub fn search_sources(
        &mut self,
        quantizer: &CoarseQuantizer,
        sources: &[Source<'_>],
        query: &[f32],
        params: SearchParams,
        trace: Option<&mut SearchTrace>,
    ) -> Result<Vec<Neighbor>> {
        params.validate()?;
        check_sources(quantizer, sources)?;
        validate_vector(query, quantizer.dim())?;
        self.query.clear();
        self.query.extend_from_slice(query);
        quantizer.metric().prepare(&mut self.query);
        quantizer.probe(
            &self.query,
            reach(quantizer, sources, params),
            &mut self.centroid_distances,
            &mut self.probes,
        );
        self.scan(quantizer, sources, params, trace)
    }

    /// The fine search over `self.probes` for `self.query`: the first
    /// `nprobe` lists, then (with a filter) the others in order until as
    /// many passing rows were scored as the `nprobe` lists hold rows.
    fn scan(
        &mut self,
        quantizer: &CoarseQuantizer,
        sources: &[Source<'_>],
        params: SearchParams,
        mut trace: Option<&mut SearchTrace>,
    ) -> Result<Vec<Neighbor>> {
        let (dim, nlist) = (quantizer.dim(), quantizer.nlist());
        let nprobe = params.nprobe.min(self.probes.len());
        let _held = hold(sources, self.probes[..nprobe].iter().map(|&(l, _)| l))?;
        if let Some(t) = trace.as_deref_mut() {
            *t = SearchTrace {
                nlist,
                nprobe,
                nprobe_clamped: params.nprobe > nlist,
                probed: Vec::with_capacity(self.probes.len()),
                coarse: coarse_ranking(&self.probes, &self.centroid_distances),
                result_lists: Vec::new(),
                coarse_distances: nlist as u64,
                fine_distances: 0,
                code_estimates: 0,
                filter_target: 0,
                filter_matched: 0,
                filter_estimate: None,
            };
        }
        // With a trace: the distances of the visible rows of the list
        // being scanned.
        let mut seen: Vec<f32> = Vec::new();
        // Rows of a chunk that pass the filter and are visible.
        let mut passing: Vec<u32> = Vec::with_capacity(SCAN_CHUNK);

        self.top.reset(params.k);
        self.distances.resize(SCAN_CHUNK, 0.0);
        let metric = quantizer.metric();
        let codebook = quantizer.codebook().filter(|_| self.use_codes);
        if let Some(book) = codebook {
            self.rotated.resize(dim, 0.0);
            book.rotation().apply(&self.query, &mut self.rotated);
        }
        // With a filter: the passing rows to score before stopping, as many
        // as an unfiltered search scores (every row of the nprobe lists),
        // and at least k; and how many were scored so far.
        let target = if sources.iter().any(|s| s.filter.is_some()) {
            self.probes[..nprobe]
                .iter()
                .map(|&(l, _)| {
                    sources
                        .iter()
                        .map(|s| s.lists.list_len(l) as u64)
                        .sum::<u64>()
                })
                .sum::<u64>()
                .max(params.k as u64)
        } else {
            0
        };
        let mut matched = 0u64;
        self.work.queries += 1;
        for (rank, &(list, centroid_distance)) in self.probes.iter().enumerate() {
            // The next list's rotated centroid and first codes start
            // loading while this one is prepared and scanned: lists are
            // far apart, and at high dimension the centroid is many lines.
            if let Some(book) = codebook
                && let Some(&(next, _)) = self.probes[..nprobe].get(rank + 1)
            {
                vdb_core::distance::prefetch(book.rotated_centroid(next), usize::MAX);
                for source in sources {
                    if let Some(codes) = source.lists.list_codes(next) {
                        vdb_core::distance::prefetch(codes.blocks, 8);
                        vdb_core::distance::prefetch(codes.factors, 4);
                    }
                }
            }
            let _more = if rank >= nprobe {
                if matched >= target {
                    break;
                }
                Some(hold(sources, std::iter::once(list))?)
            } else {
                None
            };
            let mut scanned = 0u64;
            let mut skipped = 0u64;
            let mut filtered = 0u64;
            let mut ruled_out = 0u64;
            let mut reranked = 0u64;
            let mut refined = 0u64;
            // Of `scanned`, the rows estimated from codes (the others got
            // exact distances: memtable batches, segments without codes).
            let mut estimated = 0u64;
            let mut list_query_ready = false;
            seen.clear();
            for (s, source) in sources.iter().enumerate() {
                let vectors = source.lists.list_vectors(list);
                let ids = source.lists.list_ids(list);
                let deleted = source.deleted.filter(|d| !d.is_empty());
                let mut row = source.lists.list_row_start(list);
                if let Some(filter) = source.filter
                    && (filter.is_none() || !filter.may_match(list))
                {
                    filtered += ids.len() as u64;
                    ruled_out += ids.len() as u64;
                    continue;
                }
                // The list's codes, if it has them and they fit; its query
                // is prepared for them when a chunk first uses them.
                let coded = codebook
                    .zip(source.lists.list_codes(list))
                    .filter(|&(book, codes)| codes_fit(codes, ids.len(), book))
                    .map(|(book, codes)| {
                        let list = Coded {
                            query: &self.query,
                            metric,
                            codes,
                            vectors,
                            ids,
                            deleted,
                            source: s,
                            first_row: row,
                            extended: extended_fit(codes, ids.len(), dim),
                        };
                        (book, list)
                    });
                if let Some(filter) = source.filter {
                    for (c, (vchunk, ichunk)) in vectors
                        .chunks(SCAN_CHUNK * dim)
                        .zip(ids.chunks(SCAN_CHUNK))
                        .enumerate()
                    {
                        passing.clear();
                        for i in 0..ichunk.len() {
                            if deleted.is_some_and(|d| d.contains(row + i)) {
                                skipped += 1;
                            } else if filter.matches(row + i) {
                                passing.push(i as u32);
                            } else {
                                filtered += 1;
                            }
                        }
                        matched += passing.len() as u64;
                        // Enough rows pass and the list has codes: the
                        // chunk is scanned as an unfiltered one, only the
                        // passing rows allowed through its bounds.
                        if let Some((book, coded)) = &coded
                            && passing.len() * CODED_SHARE >= ichunk.len()
                        {
                            if !list_query_ready {
                                self.list_query
                                    .prepare(book, list, &self.rotated, self.epsilon);
                                list_query_ready = true;
                            }
                            let mut allowed: ChunkMask = [0; SCAN_CHUNK / 64];
                            for &i in &passing {
                                allowed[i as usize / 64] |= 1 << (i % 64);
                            }
                            let mut work = CodedWork::default();
                            scan_coded_chunk(
                                coded,
                                &self.list_query,
                                (c, Some(&allowed)),
                                &mut self.top,
                                (&mut self.dots, &mut self.lowers),
                                trace.is_some().then_some(&mut seen),
                                &mut work,
                            );
                            scanned += work.estimated;
                            estimated += work.estimated;
                            reranked += work.reranked;
                            refined += work.refined;
                            row += ichunk.len();
                            continue;
                        }
                        // Few rows pass: their distances one by one; many:
                        // the whole chunk in one kernel call.
                        let out = &mut self.distances[..ichunk.len()];
                        if passing.len() * 4 >= ichunk.len() {
                            metric.distances(&self.query, vchunk, out);
                            scanned += ichunk.len() as u64;
                        } else {
                            scanned += passing.len() as u64;
                            for &i in &passing {
                                let i = i as usize;
                                out[i] =
                                    metric.distance(&self.query, &vchunk[i * dim..(i + 1) * dim]);
                            }
                        }
                        for &i in &passing {
                            let (i, d) = (i as usize, out[i as usize]);
                            if trace.is_some() {
                                seen.push(d);
                            }
                            if d <= self.top.threshold() {
                                self.top
                                    .push(VectorId(ichunk[i]), d, RowAddr::new(s, row + i));
                            }
                        }
                        row += ichunk.len();
                    }
                    continue;
                }
                if let Some((book, coded)) = &coded {
                    if !list_query_ready {
                        self.list_query
                            .prepare(book, list, &self.rotated, self.epsilon);
                        list_query_ready = true;
                    }
                    let work = scan_coded(
                        coded,
                        &self.list_query,
                        &mut self.top,
                        (&mut self.dots, &mut self.lowers),
                        trace.is_some().then_some(&mut seen),
                    );
                    scanned += work.estimated;
                    estimated += work.estimated;
                    skipped += work.skipped;
                    reranked += work.reranked;
                    refined += work.refined;
                    continue;
                }
                for (vchunk, ichunk) in vectors.chunks(SCAN_CHUNK * dim).zip(ids.chunks(SCAN_CHUNK))
                {
                    let out = &mut self.distances[..ichunk.len()];
                    // A chunk mostly hidden (a list whose rows moved to a
                    // newer segment, or were replaced): distances of its
                    // visible rows only, one by one.
                    let hidden = deleted.map_or(0, |d| d.count_in(row..row + ichunk.len()));
                    if hidden * 4 > ichunk.len() * 3
                        && let Some(del) = deleted
                    {
                        for (i, &id) in ichunk.iter().enumerate() {
                            if del.contains(row + i) {
                                continue;
                            }
                            let d = metric.distance(&self.query, &vchunk[i * dim..(i + 1) * dim]);
                            if trace.is_some() {
                                seen.push(d);
                            }
                            if d <= self.top.threshold() {
                                self.top.push(VectorId(id), d, RowAddr::new(s, row + i));
                            }
                        }
                        skipped += hidden as u64;
                        scanned += (ichunk.len() - hidden) as u64;
                        row += ichunk.len();
                        continue;
                    }
                    metric.distances(&self.query, vchunk, out);
                    match deleted {
                        None => {
                            self.top.push_block(ichunk, out, RowAddr::new(s, row));
                            if trace.is_some() {
                                seen.extend_from_slice(out);
                            }
                        }
                        Some(del) => {
                            for (i, (&id, &d)) in ichunk.iter().zip(out.iter()).enumerate() {
                                if del.contains(row + i) {
                                    skipped += 1;
                                    continue;
                                }
                                if trace.is_some() {
                                    seen.push(d);
                                }
                                if d <= self.top.threshold() {
                                    self.top.push(VectorId(id), d, RowAddr::new(s, row + i));
                                }
                            }
                        }
                    }
                    scanned += ichunk.len() as u64;
                    row += ichunk.len();
                }
            }
            self.work.lists += 1;
            self.work.scanned += scanned;
            self.work.exact += scanned - estimated + reranked;
            if let Some(t) = trace.as_deref_mut() {
                t.code_estimates += estimated;
                t.fine_distances += scanned - estimated + reranked;
                let distance_quantiles = deciles(&mut seen);
                t.probed.push(ProbedList {
                    list,
                    rank: rank as u32,
                    centroid_distance,
                    size: sources.iter().map(|s| s.lists.list_len(list) as u64).sum(),
                    scanned,
                    reranked,
                    refined,
                    deleted_skipped: skipped,
                    filtered_out: filtered,
                    ruled_out,
                    results: 0,
                    best_distance: distance_quantiles.first().copied(),
                    distance_quantiles,
                });
            }
        }
        let results = self.top.drain_sorted();
        if let Some(t) = trace {
            t.filter_target = target;
            t.filter_matched = matched;
            t.filter_estimate = estimate(sources, nlist);
            attribute_results(t, sources, &results);
        }
        Ok(results)
    }
}

/// Whether `codes` were made with `book`'s rotation and hold `rows` codes
/// and their factors (storage validated them; codes that do not fit are
/// not used and the list is scanned exactly).
fn codes_fit(codes: ListCodes<'_>, rows: usize, book: &rabitq::Codebook) -> bool {
    codes.seed == book.rotation().seed()
        && codes.words == book.words()
        && codes.blocks.len() == fastscan::blocks_for(rows) * fastscan::block_bytes(codes.words)
        && codes.factors.len() == rows
}

/// `codes`' extended codes if they hold `rows` codes of `dim` bytes and
/// their factors (else the list is scanned with its 1-bit codes alone).
fn extended_fit(codes: ListCodes<'_>, rows: usize, dim: usize) -> Option<ExtendedCodes<'_>> {
    codes
        .extended
        .filter(|e| e.codes.len() == rows * dim && e.factors.len() == rows)
}

/// One coded list of one source, and the query, for [`scan_coded`].
struct Coded<'a> {
    query: &'a [f32],
    metric: Metric,
    codes: ListCodes<'a>,
    vectors: &'a [f32],
    ids: &'a [u64],
    deleted: Option<&'a RowSet>,
    source: usize,
    first_row: usize,
    /// The list's extended codes, if it keeps them and they fit.
    extended: Option<ExtendedCodes<'a>>,
}

impl Coded<'_> {
    /// The exact distance of the list's row `i` (row `row` of its
    /// source, id `id`), offered to `top`; `None` if the list's vectors
    /// do not hold it (storage validated them).
    #[inline]
    fn rerank(&self, i: usize, id: u64, row: usize, top: &mut TopK) -> Option<f32> {
        let exact = self.metric.distance(self.query, self.vector(i)?);
        if exact <= top.threshold() {
            top.push(VectorId(id), exact, RowAddr::new(self.source, row));
        }
        Some(exact)
    }

    /// Starts loading the vector of the list's row `i` into the cache.
    #[inline]
    fn prefetch(&self, i: usize) {
        if let Some(vector) = self.vector(i) {
            vdb_core::distance::prefetch(vector, PREFETCH_LINES);
        }
    }

    /// Starts loading the extended code of the list's row `i` and its
    /// factors (another region: a miss of its own).
    #[inline]
    fn prefetch_extended(&self, ext: ExtendedCodes<'_>, i: usize) {
        let dim = self.query.len();
        if let Some(code) = ext.codes.get(i * dim..(i + 1) * dim) {
            vdb_core::distance::prefetch(code, PREFETCH_LINES);
        }
        if let Some(factors) = ext.factors.get(i..=i) {
            vdb_core::distance::prefetch(factors, 1);
        }
    }

    /// The estimate of the list's row `i` from its extended code, whose
    /// 1-bit factors are `factors`; `None` if the codes do not hold it.
    #[inline]
    fn estimate_extended(
        &self,
        list_query: &ListQuery,
        ext: ExtendedCodes<'_>,
        i: usize,
        factors: &[f32; CODE_FACTORS],
    ) -> Option<rabitq::Estimate> {
        let dim = self.query.len();
        let code = ext.codes.get(i * dim..(i + 1) * dim)?;
        let f = ext.factors.get(i)?;
        Some(list_query.estimate_extended(code, factors[rabitq::ADD], f))
    }

    /// The list's row `i`'s vector, if the list's vectors hold it.
    #[inline]
    fn vector(&self, i: usize) -> Option<&[f32]> {
        let dim = self.query.len();
        self.vectors.get(i * dim..(i + 1) * dim)
    }
}

/// How many candidates ahead of the one being reranked [`scan_coded`]
/// prefetches, and at most how many cache lines of each vector.
const PREFETCH_AHEAD: usize = 4;
const PREFETCH_LINES: usize = 8;
/// How many rows ahead of the one estimated again [`scan_coded`]
/// prefetches extended codes: 8 measured best of 4, 8, 16 and a whole
/// chunk's at once on 1M × 128 (docs/benchmarks.md).
const EXTENDED_AHEAD: usize = 8;

/// A filtered chunk of a coded list is scanned through its codes when at
/// least one row in this many passes, and its passing rows get exact
/// distances one by one otherwise: measured on pypi-minilm (nlist 256,
/// `benches/rabitq.rs` with `VDB_BENCH_FILTER_EVERY`), the codes were
/// 1.5–2.4× faster with 10 % of the rows passing and 0.70–0.86× with 5 %.
const CODED_SHARE: usize = 12;

/// The rows set in a chunk's masks (64 rows a word), in order.
struct MaskRows {
    masks: ChunkMask,
    word: usize,
}

impl MaskRows {
    fn new(masks: ChunkMask) -> MaskRows {
        MaskRows { masks, word: 0 }
    }
}

impl Iterator for MaskRows {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.word < self.masks.len() {
            let m = &mut self.masks[self.word];
            if *m != 0 {
                let j = m.trailing_zeros() as usize;
                *m &= *m - 1;
                return Some(self.word * 64 + j);
            }
            self.word += 1;
        }
        None
    }
}

/// A chunk's rows, one bit each (64 rows a word).
type ChunkMask = [u64; SCAN_CHUNK / 64];

/// The work [`scan_coded`] did.
#[derive(Debug, Default)]
struct CodedWork {
    estimated: u64,
    skipped: u64,
    /// Rows estimated again from their extended codes.
    refined: u64,
    reranked: u64,
}

/// Scans a coded list, chunk after chunk ([`scan_coded_chunk`]): every
/// row but the deleted may be scored.
fn scan_coded(
    list: &Coded<'_>,
    list_query: &ListQuery,
    top: &mut TopK,
    scratch: (&mut Vec<u32>, &mut Vec<f32>),
    mut seen: Option<&mut Vec<f32>>,
) -> CodedWork {
    let mut work = CodedWork::default();
    let (dots, lowers) = scratch;
    for c in 0..list.ids.len().div_ceil(SCAN_CHUNK) {
        scan_coded_chunk(
            list,
            list_query,
            (c, None),
            top,
            (dots, lowers),
            seen.as_deref_mut(),
            &mut work,
        );
    }
    work
}

/// Scans chunk `c` of a coded list (its rows `c·SCAN_CHUNK..`): the
/// chunk's codes against the query's table in one kernel call, then
/// the chunk's lower bounds; a row whose lower bound can still beat the
/// current k-th distance is estimated again from its extended code if the
/// list keeps them, and if that bound too lets it through, gets its exact
/// distance from its vector and is offered to `top`. The rows that may be
/// scored are those of `allowed` (a filter's passing rows, deleted ones
/// left out by the caller), or without it every row not deleted (counted
/// in `work.skipped`). With `seen`, every scored row's distance goes
/// there (the 1-bit estimate for a row not reranked).
fn scan_coded_chunk(
    list: &Coded<'_>,
    list_query: &ListQuery,
    (c, allowed): (usize, Option<&ChunkMask>),
    top: &mut TopK,
    (dots, lowers): (&mut Vec<u32>, &mut Vec<f32>),
    mut seen: Option<&mut Vec<f32>>,
    work: &mut CodedWork,
) {
    let words = list.codes.words;
    let base = c * SCAN_CHUNK;
    let n = list.ids.len().saturating_sub(base).min(SCAN_CHUNK);
    // A chunk is whole blocks: SCAN_CHUNK is a multiple of their rows.
    let block = fastscan::block_bytes(words);
    let first = base / fastscan::BLOCK_ROWS * block;
    let (Some(cchunk), Some(fchunk), Some(ichunk)) = (
        list.codes
            .blocks
            .get(first..first + fastscan::blocks_for(n) * block),
        list.codes.factors.get(base..base + n),
        list.ids.get(base..base + n),
    ) else {
        // Storage validated the codes against the ids (`codes_fit`).
        return;
    };
    let row = list.first_row + base;
    dots.resize(SCAN_CHUNK, 0);
    lowers.resize(SCAN_CHUNK, 0.0);
    let out = &mut dots[..n];
    vdb_core::distance::block_dots(cchunk, words, list_query.table(), out);
    let skip = |i: usize| match allowed {
        Some(mask) => mask[i / 64] >> (i % 64) & 1 == 0,
        None => list.deleted.is_some_and(|d| d.contains(row + i)),
    };
    match allowed {
        Some(mask) => {
            work.estimated += mask.iter().map(|m| u64::from(m.count_ones())).sum::<u64>();
        }
        None => {
            let hidden = list.deleted.map_or(0, |d| d.count_in(row..row + n));
            work.skipped += hidden as u64;
            work.estimated += (n - hidden) as u64;
        }
    }
    // Every lower bound of the chunk in one branch-free pass; then a mask
    // of the rows the bound lets through at the k-th distance as the chunk
    // starts (it only falls while the chunk is reranked, so the mask holds
    // every row reranked), each checked again at the current k-th distance
    // before its rerank.
    let lower = &mut lowers[..n];
    list_query.lower_bounds(out, fchunk, lower);
    let threshold = top.threshold();
    let mut through: ChunkMask = [0; SCAN_CHUNK / 64];
    for (mask, block) in through.iter_mut().zip(lower.chunks(64)) {
        for (j, &bound) in block.iter().enumerate() {
            *mask |= u64::from(bound <= threshold) << j;
        }
    }
    if let Some(allowed) = allowed {
        through.iter_mut().zip(allowed).for_each(|(t, a)| *t &= a);
    }
    // With extended codes, the rows let through are estimated again (their
    // codes lie in order in the list: a few are prefetched ahead); a row
    // keeps the higher of its two lower bounds, and those the second lets
    // through form the mask reranked.
    if let Some(ext) = list.extended {
        let mut ahead = MaskRows::new(through);
        for i in ahead.by_ref().take(EXTENDED_AHEAD) {
            list.prefetch_extended(ext, base + i);
        }
        let mut refined: ChunkMask = [0; SCAN_CHUNK / 64];
        for i in MaskRows::new(through) {
            if let Some(a) = ahead.next() {
                list.prefetch_extended(ext, base + a);
            }
            if skip(i) {
                continue;
            }
            match list.estimate_extended(list_query, ext, base + i, &fchunk[i]) {
                Some(e) => {
                    work.refined += 1;
                    lower[i] = lower[i].max(e.lower);
                    if lower[i] <= threshold {
                        refined[i / 64] |= 1 << (i % 64);
                    }
                }
                None => refined[i / 64] |= 1 << (i % 64),
            }
        }
        through = refined;
    }
    // The vectors of the rows a few places further on in the mask are
    // prefetched while one is reranked: they lie at random in the list's
    // vectors and each is a cache miss.
    let mut ahead = MaskRows::new(through);
    for i in ahead.by_ref().take(PREFETCH_AHEAD) {
        list.prefetch(base + i);
    }
    let mut reranked: ChunkMask = [0; SCAN_CHUNK / 64];
    for i in MaskRows::new(through) {
        if let Some(a) = ahead.next() {
            list.prefetch(base + a);
        }
        if lower[i] > top.threshold() || skip(i) {
            continue;
        }
        if let Some(exact) = list.rerank(base + i, ichunk[i], row + i, top) {
            work.reranked += 1;
            reranked[i / 64] |= 1 << (i % 64);
            if let Some(seen) = seen.as_deref_mut() {
                seen.push(exact);
            }
        }
    }
    // A trace has the estimate of every other scored row.
    if let Some(seen) = seen {
        for i in (0..n).filter(|&i| reranked[i / 64] >> (i % 64) & 1 == 0) {
            if !skip(i) {
                seen.push(list_query.estimate(out[i], &fchunk[i]).distance);
            }
        }
    }
}

/// Queries per matrix product in [`search_batch`]: enough to make the
/// product efficient, few enough to keep blocks for every thread.
const BATCH_BLOCK: usize = 32;

/// Searches every query of `queries` (row-major, `dim` wide) like
/// [`Searcher::search`], in parallel on the current rayon pool. The coarse
/// search of each block of queries is one matrix product against all
/// centroids, which is much faster than one query at a time. Results are in
/// query order. `epsilon` is the error bound's multiplier in lists with
/// codes ([`Searcher::set_epsilon`]; [`rabitq::DEFAULT_EPSILON`] by
/// default).
pub fn search_batch(
    quantizer: &CoarseQuantizer,
    sources: &[Source<'_>],
    queries: &[f32],
    params: SearchParams,
    epsilon: f32,
) -> Result<Vec<Vec<Neighbor>>> {
    use rayon::prelude::*;

    params.validate()?;
    check_sources(quantizer, sources)?;
    let dim = quantizer.dim();
    check_rows(queries, dim)?;
    let mut prepared = queries.to_vec();
    for q in prepared.chunks_exact_mut(dim) {
        validate_vector(q, dim)?;
        quantizer.metric().prepare(q);
    }
    let nlist = quantizer.nlist();
    let blocks = prepared
        .par_chunks(BATCH_BLOCK * dim)
        .map_init(
            || {
                let mut searcher = Searcher::new();
                searcher.set_epsilon(epsilon);
                (searcher, vec![0.0f32; BATCH_BLOCK * nlist])
            },
            |(searcher, dots), block| {
                let m = block.len() / dim;
                vdb_core::distance::dot_matrix_blocked(
                    block,
                    m,
                    quantizer.centroids(),
                    quantizer.blocked(),
                    dots,
                );
                block
                    .chunks_exact(dim)
                    .zip(dots.chunks_exact_mut(nlist))
                    .map(|(q, row)| {
                        searcher.query.clear();
                        searcher.query.extend_from_slice(q);
                        quantizer.probe_from_dots(
                            vdb_core::distance::norm_sq(q),
                            row,
                            reach(quantizer, sources, params),
                            &mut searcher.probes,
                        );
                        searcher.scan(quantizer, sources, params, None)
                    })
                    .collect::<Result<Vec<_>>>()
            },
        )
        .collect::<Result<Vec<_>>>()?;
    Ok(blocks.into_iter().flatten().collect())
}

/// The `k` nearest visible rows of every list of `sources` to each of
/// `queries` (row-major, already prepared for the metric), nearest first:
/// what [`Searcher::search_sources`] finds at `nprobe = nlist`, with the
/// same distances and order, but reading each list once for a block of
/// queries instead of once per query. One query at a time, an exact
/// search is bound by memory bandwidth (200 queries over 1M × 128 rows:
/// 8 s on one core); a list read once stays in cache for the block.
/// Parallel over blocks of queries on the current rayon pool; no filter.
pub fn exact_batch(
    quantizer: &CoarseQuantizer,
    sources: &[Source<'_>],
    queries: &[f32],
    k: usize,
) -> Result<Vec<Vec<Neighbor>>> {
    use rayon::prelude::*;

    SearchParams::new(k, 1).validate()?;
    check_sources(quantizer, sources)?;
    let (dim, nlist) = (quantizer.dim(), quantizer.nlist());
    check_rows(queries, dim)?;
    let metric = quantizer.metric();
    let blocks = queries
        .par_chunks(EXACT_BLOCK * dim)
        .map(|block| -> Result<Vec<Vec<Neighbor>>> {
            let mut tops: Vec<TopK> = block.chunks_exact(dim).map(|_| TopK::new(k)).collect();
            let mut out = vec![0.0f32; SCAN_CHUNK];
            for l in (0..nlist).map(|l| ListId(l as u32)) {
                let _held = hold(sources, std::iter::once(l))?;
                for (s, source) in sources.iter().enumerate() {
                    let vectors = source.lists.list_vectors(l);
                    let ids = source.lists.list_ids(l);
                    let deleted = source.deleted.filter(|d| !d.is_empty());
                    let start = source.lists.list_row_start(l);
                    for (c, (vchunk, ichunk)) in vectors
                        .chunks(SCAN_CHUNK * dim)
                        .zip(ids.chunks(SCAN_CHUNK))
                        .enumerate()
                    {
                        let row = start + c * SCAN_CHUNK;
                        let out = &mut out[..ichunk.len()];
                        for (query, top) in block.chunks_exact(dim).zip(&mut tops) {
                            metric.distances(query, vchunk, out);
                            for (i, (&id, &d)) in ichunk.iter().zip(out.iter()).enumerate() {
                                if d <= top.threshold()
                                    && !deleted.is_some_and(|del| del.contains(row + i))
                                {
                                    top.push(VectorId(id), d, RowAddr::new(s, row + i));
                                }
                            }
                        }
                    }
                }
            }
            Ok(tops.into_iter().map(TopK::into_sorted).collect())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(blocks.into_iter().flatten().collect())
}

/// Queries per pass over the lists in [`exact_batch`]: a 256-row chunk is
/// scored against all of them while it is in cache.
const EXACT_BLOCK: usize = 64;

/// With a filter: the visible rows expected to pass it, summed over every
/// list of every source from the filters' estimates (a list without one
/// counts whole; deleted rows are taken out in proportion).
fn estimate(sources: &[Source<'_>], nlist: usize) -> Option<f64> {
    if sources.iter().all(|s| s.filter.is_none()) {
        return None;
    }
    let mut total = 0.0;
    for s in sources {
        let rows = s.lists.total_len().max(1) as f64;
        let live = 1.0 - s.deleted.map_or(0, RowSet::count) as f64 / rows;
        for l in (0..nlist as u32).map(ListId) {
            let len = s.lists.list_len(l) as f64;
            let e = match s.filter {
                Some(f) if f.is_none() => 0.0,
                Some(f) => f.estimate(l).unwrap_or(len),
                None => len,
            };
            total += e * live;
        }
    }
    Some(total)
}

/// How many lists the coarse search ranks: `nprobe`, or with a filter as
/// far as probing may go.
fn reach(quantizer: &CoarseQuantizer, sources: &[Source<'_>], params: SearchParams) -> usize {
    if sources.iter().any(|s| s.filter.is_some()) {
        params
            .max_probes
            .unwrap_or(quantizer.nlist())
            .max(params.nprobe)
    } else {
        params.nprobe
    }
}

/// Holds `lists` readable in every source while the result lives.
fn hold(sources: &[Source<'_>], lists: impl Iterator<Item = ListId>) -> Result<Vec<Hold>> {
    let lists: Vec<ListId> = lists.collect();
    sources
        .iter()
        .map(|s| s.lists.hold(&lists).map_err(Error::Storage))
        .collect()
}

/// A batch of queries is whole rows of `dim` values.
fn check_rows(queries: &[f32], dim: usize) -> Result<()> {
    if queries.len().is_multiple_of(dim) {
        Ok(())
    } else {
        Err(vdb_core::Error::DimensionMismatch {
            expected: dim,
            actual: queries.len() % dim,
        }
        .into())
    }
}

fn check_sources(quantizer: &CoarseQuantizer, sources: &[Source<'_>]) -> Result<()> {
    let (dim, nlist) = (quantizer.dim(), quantizer.nlist());
    for s in sources.iter().map(|s| s.lists) {
        if s.dim() != dim || s.nlist() != nlist {
            return Err(Error::ListsMismatch {
                dim,
                nlist,
                lists_dim: s.dim(),
                lists_nlist: s.nlist(),
            });
        }
    }
    Ok(())
}

/// Counts, for each probed list, how many of the results came from it.
/// A stored row shown as an example of its list.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The row's id.
    pub id: VectorId,
    /// Its distance to the list's centroid.
    pub distance: f32,
    /// Its vector (as stored: prepared for the metric).
    pub vector: Vec<f32>,
    /// Where it is stored among the sources searched.
    pub addr: RowAddr,
}

/// The `n` visible rows of `list` nearest to its centroid, nearest first
/// (ties by id), over all `sources`: a deterministic sample of what the
/// list holds.
pub fn list_members_near_centroid(
    quantizer: &CoarseQuantizer,
    sources: &[Source<'_>],
    list: ListId,
    n: usize,
) -> Result<Vec<Member>> {
    let dim = quantizer.dim();
    if n == 0 || list.index() >= quantizer.nlist() {
        return Ok(Vec::new());
    }
    let _held = hold(sources, std::iter::once(list))?;
    let centroid = quantizer.centroid(list);
    let mut best: Vec<(f32, u64, usize, usize)> = Vec::new();
    let mut distances = vec![0.0f32; SCAN_CHUNK];
    for (s, source) in sources.iter().enumerate() {
        let vectors = source.lists.list_vectors(list);
        let ids = source.lists.list_ids(list);
        let start = source.lists.list_row_start(list);
        for (c, (vchunk, ichunk)) in vectors
            .chunks(SCAN_CHUNK * dim)
            .zip(ids.chunks(SCAN_CHUNK))
            .enumerate()
        {
            let out = &mut distances[..ichunk.len()];
            quantizer.metric().distances(centroid, vchunk, out);
            for (i, (&id, &d)) in ichunk.iter().zip(out.iter()).enumerate() {
                let row = c * SCAN_CHUNK + i;
                if source.deleted.is_some_and(|del| del.contains(start + row)) {
                    continue;
                }
                best.push((d, id, s, row));
            }
            // Keep the candidate list short.
            if best.len() > 4 * n + SCAN_CHUNK {
                best.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                best.truncate(n);
            }
        }
    }
    best.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    best.truncate(n);
    Ok(best
        .into_iter()
        .map(|(distance, id, s, row)| Member {
            id: VectorId(id),
            distance,
            vector: sources[s].lists.list_vectors(list)[row * dim..(row + 1) * dim].to_vec(),
            addr: RowAddr::new(s, sources[s].lists.list_row_start(list) + row),
        })
        .collect())
}

/// Finds the probed list of every result by its address: the list whose
/// rows in the result's source include the result's row and hold its id
/// there (storage that numbers every list's rows from 0 gives rows of
/// several lists one address; the id tells them apart). Counts each
/// list's results.
fn attribute_results(trace: &mut SearchTrace, sources: &[Source<'_>], results: &[Neighbor]) {
    trace.result_lists = vec![ListId(0); results.len()];
    for p in &mut trace.probed {
        p.results = 0;
    }
    for (r, n) in results.iter().enumerate() {
        let Some(source) = sources.get(n.addr.source as usize) else {
            continue;
        };
        let row = n.addr.row as usize;
        let holds = |l: ListId| {
            row.checked_sub(source.lists.list_row_start(l))
                .and_then(|i| source.lists.list_ids(l).get(i))
                == Some(&n.id.0)
        };
        if let Some(p) = trace.probed.iter_mut().find(|p| holds(p.list)) {
            trace.result_lists[r] = p.list;
            p.results += 1;
        }
    }
}

/// Every list in coarse rank order: `probes` (nearest first) and then the
/// rest by distance, ties by list number. `distances[j]` is list j's.
fn coarse_ranking(probes: &[(ListId, f32)], distances: &[f32]) -> Vec<(ListId, f32)> {
    let mut probed = vec![false; distances.len()];
    for (l, _) in probes {
        if let Some(p) = probed.get_mut(l.index()) {
            *p = true;
        }
    }
    let mut rest: Vec<(ListId, f32)> = distances
        .iter()
        .enumerate()
        .filter(|&(j, _)| !probed[j])
        .map(|(j, &d)| (ListId(j as u32), d))
        .collect();
    rest.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    probes.iter().copied().chain(rest).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KMeansParams, SplitMix64, flat_search, kmeans};
    use proptest::prelude::*;
    use vdb_core::{Metric, VecInvertedLists};

    fn build(
        data: &[f32],
        dim: usize,
        nlist: usize,
        metric: Metric,
    ) -> (CoarseQuantizer, VecInvertedLists) {
        let (c, _) = kmeans::train(data, dim, nlist, metric, &KMeansParams::default()).unwrap();
        let q = CoarseQuantizer::new(dim, metric, c).unwrap();
        let mut lists = VecInvertedLists::new(dim, nlist);
        for (i, (x, (l, _))) in data
            .chunks_exact(dim)
            .zip(q.assign(data).unwrap())
            .enumerate()
        {
            lists.push(l, i as u64, x);
        }
        (q, lists)
    }

    fn random(rows: usize, dim: usize, seed: u64, metric: Metric) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        let mut v: Vec<f32> = (0..rows * dim)
            .map(|_| rng.next_f32() * 2.0 - 1.0)
            .collect();
        v.chunks_exact_mut(dim).for_each(|x| metric.prepare(x));
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// With every list probed, IVF search is exact search.
        #[test]
        fn nprobe_nlist_equals_flat(seed in any::<u64>(), dim in 1usize..24, nlist in 1usize..12, k in 1usize..20, m in 0usize..3) {
            let metric = [Metric::L2, Metric::InnerProduct, Metric::Cosine][m];
            let data = random(300, dim, seed, metric);
            let (q, lists) = build(&data, dim, nlist, metric);
            let ids: Vec<u64> = (0..300).collect();
            let mut s = Searcher::new();
            for query in random(5, dim, seed ^ 1, Metric::L2).chunks_exact(dim) {
                let got = s.search(&q, &[&lists], query, SearchParams { k, nprobe: nlist, max_probes: None }, None).unwrap();
                let want = flat_search(metric, query, &data, &ids, k).unwrap();
                prop_assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    // Same distances; ids may differ only between exact ties.
                    prop_assert!((g.distance - w.distance).abs() <= 1e-5 * (1.0 + w.distance.abs()));
                }
            }
        }
    }

    #[test]
    fn trace_accounts_for_the_work() {
        let dim = 8;
        let data = random(2000, dim, 11, Metric::L2);
        let (q, lists) = build(&data, dim, 16, Metric::L2);
        let mut s = Searcher::new();
        let mut trace = SearchTrace::default();
        let query = &data[..dim];
        let res = s
            .search(
                &q,
                &[&lists, &lists],
                query,
                SearchParams {
                    k: 5,
                    nprobe: 4,
                    max_probes: None,
                },
                Some(&mut trace),
            )
            .unwrap();
        assert_eq!(trace.nprobe, 4);
        assert_eq!(trace.coarse_distances, 16);
        let scanned: u64 = trace.probed.iter().map(|p| p.scanned).sum();
        assert_eq!(trace.fine_distances, scanned);
        assert_eq!(scanned, trace.probed.iter().map(|p| p.size).sum::<u64>());
        assert!(
            trace
                .probed
                .windows(2)
                .all(|w| w[0].centroid_distance <= w[1].centroid_distance)
        );
        assert!(
            trace
                .probed
                .iter()
                .map(|p| p.results as usize)
                .sum::<usize>()
                >= res.len()
        );
        // The row itself is its own nearest neighbour, found in the first list.
        assert_eq!(res[0].id.0, 0);
        assert_eq!(res[0].distance, 0.0);

        let mut t2 = SearchTrace::default();
        s.search(
            &q,
            &[&lists],
            query,
            SearchParams {
                k: 5,
                nprobe: 99,
                max_probes: None,
            },
            Some(&mut t2),
        )
        .unwrap();
        assert!(t2.nprobe_clamped);
        assert_eq!(t2.nprobe, 16);
        assert_eq!(t2.fine_distances, 2000);
        // The searcher's sums, traced or not, are the traces'.
        assert_eq!(
            s.work(),
            SearchWork {
                queries: 2,
                lists: 4 + 16,
                scanned: scanned + 2000,
                exact: trace.fine_distances + 2000,
            }
        );
    }

    #[test]
    fn trace_ranks_every_centroid_and_places_every_result() {
        let dim = 6;
        let data = random(3000, dim, 5, Metric::L2);
        let (q, lists) = build(&data, dim, 24, Metric::L2);
        // Hide every third row of the store from the search.
        let mut deleted = RowSet::new(3000);
        for r in (0..3000).step_by(3) {
            deleted.insert(r);
        }
        let sources = [Source {
            lists: &lists,
            deleted: Some(&deleted),
            filter: None,
        }];
        // Rows are numbered by storage position; the ids they hold:
        let mut hidden = std::collections::HashSet::new();
        for l in 0..24 {
            let start = lists.list_row_start(ListId(l));
            for (i, &id) in lists.list_ids(ListId(l)).iter().enumerate() {
                if deleted.contains(start + i) {
                    hidden.insert(id);
                }
            }
        }
        let mut s = Searcher::new();
        for (i, query) in random(20, dim, 6, Metric::L2).chunks_exact(dim).enumerate() {
            let mut t = SearchTrace::default();
            let res = s
                .search_sources(
                    &q,
                    &sources,
                    query,
                    SearchParams {
                        k: 10,
                        nprobe: 5,
                        max_probes: None,
                    },
                    Some(&mut t),
                )
                .unwrap();
            // Every list once, nearest first, the probed ones leading.
            assert_eq!(t.coarse.len(), 24, "query {i}");
            let mut lists_seen: Vec<u32> = t.coarse.iter().map(|(l, _)| l.0).collect();
            lists_seen.sort_unstable();
            assert_eq!(lists_seen, (0..24).collect::<Vec<_>>());
            assert!(t.coarse.windows(2).all(|w| w[0].1 <= w[1].1));
            for (p, c) in t.probed.iter().zip(&t.coarse) {
                assert_eq!(p.list, c.0);
            }
            for (j, &(l, d)) in t.coarse.iter().enumerate() {
                let want = Metric::L2.distance(query, q.centroid(l));
                assert!((d - want).abs() <= 1e-4 * (1.0 + want), "{d} vs {want}");
                assert_eq!(t.ranks()[l.index()], j as u32);
            }
            // Each result sits in the list the trace names, and the per-list
            // counts add up.
            assert_eq!(t.result_lists.len(), res.len());
            for (r, l) in res.iter().zip(&t.result_lists) {
                assert!(lists.list_ids(*l).contains(&r.id.0));
                assert!(!hidden.contains(&r.id.0), "a hidden row came back");
            }
            let counted: u32 = t.probed.iter().map(|p| p.results).sum();
            assert_eq!(counted as usize, res.len());
            // The fine-stage summary: the best distance of each list is the
            // smallest visible distance in it, the deciles ascend.
            for p in &t.probed {
                let visible: Vec<f32> = lists
                    .list_ids(p.list)
                    .iter()
                    .zip(lists.list_vectors(p.list).chunks_exact(dim))
                    .filter(|(id, _)| !hidden.contains(*id))
                    .map(|(_, v)| Metric::L2.distance(query, v))
                    .collect();
                assert_eq!(p.scanned - p.deleted_skipped, visible.len() as u64);
                let best = visible.iter().copied().fold(f32::INFINITY, f32::min);
                match p.best_distance {
                    Some(b) => assert!((b - best).abs() <= 1e-4 * (1.0 + best)),
                    None => assert!(visible.is_empty()),
                }
                if !visible.is_empty() {
                    assert_eq!(p.distance_quantiles.len(), 11);
                    assert!(p.distance_quantiles.windows(2).all(|w| w[0] <= w[1]));
                    assert_eq!(p.distance_quantiles[0], p.best_distance.unwrap());
                }
            }
        }
    }

    #[test]
    fn members_near_the_centroid_are_the_nearest_visible_rows() {
        let dim = 5;
        let data = random(2000, dim, 9, Metric::L2);
        let (q, lists) = build(&data, dim, 8, Metric::L2);
        let mut deleted = RowSet::new(2000);
        for r in (0..2000).step_by(2) {
            deleted.insert(r);
        }
        let sources = [Source {
            lists: &lists,
            deleted: Some(&deleted),
            filter: None,
        }];
        for l in 0..8 {
            let list = ListId(l);
            let got = list_members_near_centroid(&q, &sources, list, 9).unwrap();
            let start = lists.list_row_start(list);
            let mut want: Vec<(f32, u64)> = lists
                .list_ids(list)
                .iter()
                .zip(lists.list_vectors(list).chunks_exact(dim))
                .enumerate()
                .filter(|(i, _)| !deleted.contains(start + i))
                .map(|(_, (&id, v))| (Metric::L2.distance(q.centroid(list), v), id))
                .collect();
            want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            want.truncate(9);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.id.0, w.1);
                let row = g.id.0 as usize;
                assert_eq!(g.vector, &data[row * dim..(row + 1) * dim]);
            }
            assert_eq!(
                list_members_near_centroid(&q, &sources, list, 9).unwrap(),
                got,
                "not deterministic"
            );
        }
        assert!(
            list_members_near_centroid(&q, &sources, ListId(99), 9)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn batch_search_equals_one_at_a_time() {
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let dim = 12;
            let data = random(1500, dim, 21, metric);
            let (q, lists) = build(&data, dim, 20, metric);
            let queries = random(70, dim, 22, Metric::L2);
            let p = SearchParams {
                k: 7,
                nprobe: 3,
                max_probes: None,
            };
            let batch = search_batch(
                &q,
                &[Source::all(&lists)],
                &queries,
                p,
                rabitq::DEFAULT_EPSILON,
            )
            .unwrap();
            assert_eq!(batch.len(), 70);
            let mut s = Searcher::new();
            for (query, got) in queries.chunks_exact(dim).zip(&batch) {
                let want = s.search(&q, &[&lists], query, p, None).unwrap();
                let ids = |v: &[Neighbor]| v.iter().map(|n| n.id).collect::<Vec<_>>();
                // Coarse distances differ in the last bits between the two
                // formulations, so compare as sets of ids with distances.
                assert_eq!(ids(got), ids(&want), "{metric}");
            }
        }
        let (q, lists) = build(&random(100, 4, 1, Metric::L2), 4, 2, Metric::L2);
        assert!(
            search_batch(
                &q,
                &[Source::all(&lists)],
                &[0.0; 5],
                SearchParams {
                    k: 1,
                    nprobe: 1,
                    max_probes: None
                },
                rabitq::DEFAULT_EPSILON
            )
            .is_err()
        );
        assert!(
            search_batch(
                &q,
                &[Source::all(&lists)],
                &[0.0, 0.0, 0.0, f32::NAN],
                SearchParams {
                    k: 1,
                    nprobe: 1,
                    max_probes: None
                },
                rabitq::DEFAULT_EPSILON
            )
            .is_err()
        );
        assert!(
            search_batch(
                &q,
                &[Source::all(&lists)],
                &[],
                SearchParams {
                    k: 1,
                    nprobe: 1,
                    max_probes: None
                },
                rabitq::DEFAULT_EPSILON
            )
            .unwrap()
            .is_empty()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// With a bound wide enough to hold for every row, a search of
        /// coded lists returns what the exact scan of the same lists
        /// returns, with the same distances and row addresses; rows with
        /// a bound that rules them out get no exact distance.
        #[test]
        fn coded_search_with_a_wide_bound_equals_the_exact_scan(
            seed in any::<u64>(), dim in 8usize..64, nlist in 1usize..8, k in 1usize..20,
            nprobe in 1usize..8, m in 0usize..3,
        ) {
            let metric = [Metric::L2, Metric::InnerProduct, Metric::Cosine][m];
            let data = random(400, dim, seed, metric);
            let (q, lists) = build(&data, dim, nlist, metric);
            let coded_q = q.clone().with_codes(seed ^ 5);
            let coded = rabitq::CodedLists::new(lists.clone(), coded_q.codebook().unwrap());
            let params = SearchParams::new(k, nprobe);
            let mut s = Searcher::new();
            s.set_epsilon(8.0);
            for query in random(5, dim, seed ^ 9, metric).chunks_exact(dim) {
                let want = s.search(&q, &[&lists], query, params, None).unwrap();
                let mut trace = SearchTrace::default();
                let got = s.search(&coded_q, &[&coded], query, params, Some(&mut trace)).unwrap();
                prop_assert_eq!(&got, &want);
                // Untraced, the same answers.
                let untraced = s.search(&coded_q, &[&coded], query, params, None).unwrap();
                prop_assert_eq!(&untraced, &want);
                // A searcher that ignores codes is exact at any bound.
                let mut exact = Searcher::exact();
                exact.set_epsilon(0.0);
                let mut t = SearchTrace::default();
                let e = exact.search(&coded_q, &[&coded], query, params, Some(&mut t)).unwrap();
                prop_assert_eq!(&e, &want);
                prop_assert_eq!(t.code_estimates, 0);
                let scanned: u64 = trace.probed.iter().map(|p| p.scanned).sum();
                let reranked: u64 = trace.probed.iter().map(|p| p.reranked).sum();
                prop_assert_eq!(trace.code_estimates, scanned);
                prop_assert_eq!(trace.fine_distances, reranked);
                prop_assert!(reranked <= scanned);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// A filtered search of coded lists, with a bound wide enough to
        /// hold for every row, returns what the exact filtered scan of the
        /// same lists returns: a chunk where many rows pass is scanned
        /// through its codes with only those rows let through, one where
        /// few pass gets their exact distances; deleted rows never count.
        #[test]
        fn filtered_coded_search_with_a_wide_bound_equals_the_exact_scan(
            seed in any::<u64>(), dim in 8usize..40, nlist in 1usize..4, k in 1usize..30,
            nprobe in 1usize..4, every in 1usize..8, m in 0usize..3,
        ) {
            let metric = [Metric::L2, Metric::InnerProduct, Metric::Cosine][m];
            let rows = 700;
            let data = random(rows, dim, seed, metric);
            let (q, lists) = build(&data, dim, nlist, metric);
            let coded_q = q.clone().with_codes(seed ^ 5);
            let coded = rabitq::CodedLists::new(lists.clone(), coded_q.codebook().unwrap());
            let mut deleted = RowSet::new(rows);
            for r in (seed as usize % 13..rows).step_by(13) {
                deleted.insert(r);
            }
            let filter = EveryNth(every);
            let params = SearchParams::new(k, nprobe);
            let mut s = Searcher::new();
            s.set_epsilon(8.0);
            for query in random(4, dim, seed ^ 9, metric).chunks_exact(dim) {
                let exact = [Source { lists: &lists, deleted: Some(&deleted), filter: Some(&filter) }];
                let want = s.search_sources(&q, &exact, query, params, None).unwrap();
                let with_codes = [Source { lists: &coded, deleted: Some(&deleted), filter: Some(&filter) }];
                let mut trace = SearchTrace::default();
                let got = s.search_sources(&coded_q, &with_codes, query, params, Some(&mut trace)).unwrap();
                prop_assert_eq!(&got, &want);
                let untraced = s.search_sources(&coded_q, &with_codes, query, params, None).unwrap();
                prop_assert_eq!(&untraced, &want);
                if every <= 3 {
                    prop_assert!(trace.code_estimates > 0, "no chunk was scanned through its codes");
                }
                let reranked: u64 = trace.probed.iter().map(|p| p.reranked).sum();
                prop_assert!(reranked <= trace.code_estimates);
            }
        }
    }

    /// At the default bound, coded lists find the exact scan's neighbours
    /// for all but a small share, computing exact distances for a small
    /// share of the rows.
    #[test]
    fn coded_search_reranks_few_rows_and_keeps_the_neighbours() {
        let (dim, nlist, k) = (64, 16, 10);
        let data = random(8000, dim, 3, Metric::L2);
        let (q, lists) = build(&data, dim, nlist, Metric::L2);
        let coded_q = q.clone().with_codes(1);
        let coded = rabitq::CodedLists::new(lists.clone(), coded_q.codebook().unwrap());
        let params = SearchParams::new(k, 4);
        let mut s = Searcher::new();
        let (mut found, mut estimated, mut reranked) = (0, 0, 0);
        let queries = random(100, dim, 4, Metric::L2);
        for query in queries.chunks_exact(dim) {
            let want = s.search(&q, &[&lists], query, params, None).unwrap();
            let mut trace = SearchTrace::default();
            let got = s
                .search(&coded_q, &[&coded], query, params, Some(&mut trace))
                .unwrap();
            found += got
                .iter()
                .filter(|n| want.iter().any(|w| w.id == n.id))
                .count();
            estimated += trace.code_estimates;
            reranked += trace.fine_distances;
        }
        let recall = found as f64 / (k * 100) as f64;
        assert!(recall >= 0.99, "recall {recall} against the exact scan");
        assert!(
            reranked * 3 < estimated,
            "{reranked} of {estimated} rows reranked"
        );
    }

    /// Extended codes: the rows the 1-bit bound lets through are
    /// estimated again (the trace counts them per list), far fewer are
    /// reranked than with 1-bit codes alone, and the results keep the
    /// exact scan's neighbours as well.
    #[test]
    fn extended_codes_rerank_fewer_rows_and_keep_the_neighbours() {
        let (dim, nlist, k) = (64, 16, 10);
        let data = random(8000, dim, 3, Metric::L2);
        let (q, lists) = build(&data, dim, nlist, Metric::L2);
        let coded_q = q.clone().with_codes(1);
        let book = coded_q.codebook().unwrap();
        let extended = rabitq::CodedLists::new(lists.clone(), book);
        let one_bit = rabitq::CodedLists::without_extended(lists.clone(), book);
        let params = SearchParams::new(k, 4);
        let mut s = Searcher::new();
        let (mut found, mut refined, mut reranked, mut reranked_1bit) = (0, 0, 0, 0);
        let queries = random(100, dim, 4, Metric::L2);
        for query in queries.chunks_exact(dim) {
            let want = s.search(&q, &[&lists], query, params, None).unwrap();
            let mut trace = SearchTrace::default();
            let got = s
                .search(&coded_q, &[&extended], query, params, Some(&mut trace))
                .unwrap();
            found += got
                .iter()
                .filter(|n| want.iter().any(|w| w.id == n.id))
                .count();
            assert!(got.windows(2).all(|w| w[0].distance <= w[1].distance));
            for (g, w) in got.iter().zip(&want) {
                if g.id == w.id {
                    assert_eq!(g.distance, w.distance, "exact distances are returned");
                }
            }
            refined += trace.probed.iter().map(|p| p.refined).sum::<u64>();
            reranked += trace.probed.iter().map(|p| p.reranked).sum::<u64>();
            let mut trace = SearchTrace::default();
            s.search(&coded_q, &[&one_bit], query, params, Some(&mut trace))
                .unwrap();
            assert!(trace.probed.iter().all(|p| p.refined == 0));
            reranked_1bit += trace.probed.iter().map(|p| p.reranked).sum::<u64>();
        }
        let recall = found as f64 / (k * 100) as f64;
        assert!(recall >= 0.99, "recall {recall} against the exact scan");
        assert!(
            reranked * 4 < reranked_1bit && reranked <= refined,
            "{reranked} reranked of {refined} refined, {reranked_1bit} with 1-bit codes alone"
        );
    }

    /// A list searched in a coded segment and in a source without codes
    /// (a memtable batch): the trace counts the first's rows as
    /// estimates and the second's as exact distances.
    #[test]
    fn traces_tell_estimates_from_exact_distances_per_source() {
        let dim = 16;
        let data = random(600, dim, 8, Metric::L2);
        let (q, lists) = build(&data, dim, 4, Metric::L2);
        let q = q.with_codes(3);
        let coded = rabitq::CodedLists::new(lists.clone(), q.codebook().unwrap());
        let mut trace = SearchTrace::default();
        let mut s = Searcher::new();
        s.search(
            &q,
            &[&coded, &lists],
            &data[..dim],
            SearchParams::new(10, 2),
            Some(&mut trace),
        )
        .unwrap();
        let rows: u64 = trace.probed.iter().map(|p| p.size).sum::<u64>() / 2;
        let reranked: u64 = trace.probed.iter().map(|p| p.reranked).sum();
        assert_eq!(trace.code_estimates, rows);
        assert_eq!(trace.fine_distances, rows + reranked);
        let traced = s.work();
        assert_eq!(
            traced,
            SearchWork {
                queries: 1,
                lists: 2,
                scanned: 2 * rows,
                exact: rows + reranked,
            }
        );
        // Untraced, the same search counts the same work.
        s.search(
            &q,
            &[&coded, &lists],
            &data[..dim],
            SearchParams::new(10, 2),
            None,
        )
        .unwrap();
        assert_eq!(s.work(), traced + traced);
    }

    #[test]
    fn deleted_rows_of_coded_lists_are_skipped_and_counted() {
        let dim = 16;
        let data = random(500, dim, 31, Metric::L2);
        let (q, lists) = build(&data, dim, 1, Metric::L2);
        let q = q.with_codes(2);
        let coded = rabitq::CodedLists::new(lists, q.codebook().unwrap());
        let query = &data[7 * dim..8 * dim];
        let mut deleted = RowSet::new(500);
        deleted.insert(7);
        deleted.insert(300);
        let mut trace = SearchTrace::default();
        let src = [Source {
            lists: &coded,
            deleted: Some(&deleted),
            filter: None,
        }];
        let res = Searcher::new()
            .search_sources(&q, &src, query, SearchParams::new(500, 1), Some(&mut trace))
            .unwrap();
        assert_eq!(res.len(), 498);
        assert!(res.iter().all(|n| n.id.0 != 7 && n.id.0 != 300));
        let untraced = Searcher::new()
            .search_sources(&q, &src, query, SearchParams::new(500, 1), None)
            .unwrap();
        assert_eq!(untraced, res);
        let few = Searcher::new()
            .search_sources(&q, &src, query, SearchParams::new(20, 1), None)
            .unwrap();
        assert_eq!(few.len(), 20);
        assert!(few.iter().all(|n| n.id.0 != 7 && n.id.0 != 300));
        assert_eq!(trace.probed[0].deleted_skipped, 2);
        assert_eq!(trace.probed[0].scanned, 498);
        // k = every row: nothing can be ruled out.
        assert_eq!(trace.probed[0].reranked, 498);
    }

    #[test]
    fn deleted_rows_are_skipped_and_counted() {
        let dim = 4;
        let data = random(500, dim, 31, Metric::L2);
        let (q, lists) = build(&data, dim, 1, Metric::L2);
        // One list, so row numbers are the order rows were pushed: 0..500.
        let query = &data[7 * dim..8 * dim];
        let mut deleted = RowSet::new(500);
        deleted.insert(7);
        deleted.insert(100);
        let mut s = Searcher::new();
        let mut trace = SearchTrace::default();
        let src = [Source {
            lists: &lists,
            deleted: Some(&deleted),
            filter: None,
        }];
        let res = s
            .search_sources(
                &q,
                &src,
                query,
                SearchParams {
                    k: 500,
                    nprobe: 1,
                    max_probes: None,
                },
                Some(&mut trace),
            )
            .unwrap();
        assert_eq!(res.len(), 498);
        assert!(res.iter().all(|n| n.id.0 != 7 && n.id.0 != 100));
        assert_eq!(trace.probed[0].deleted_skipped, 2);
        assert_eq!(trace.probed[0].scanned, 500);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// The list-major batch finds what one search at a time at
        /// nprobe = nlist finds: same ids, distances and addresses, over
        /// two sources with hidden rows (mostly hidden chunks included).
        #[test]
        fn exact_batch_equals_searches_at_nprobe_nlist(
            seed in any::<u64>(),
            dim in 1usize..20,
            nlist in 1usize..8,
            k in 1usize..15,
            m in 0usize..3,
            hidden in 0usize..4,
        ) {
            let metric = [Metric::L2, Metric::InnerProduct, Metric::Cosine][m];
            let data = random(700, dim, seed, metric);
            let (q, lists) = build(&data, dim, nlist, metric);
            // A second source with ids of its own (ids are unique among
            // visible rows, so no two candidates tie on distance and id).
            let more = random(300, dim, seed ^ 7, metric);
            let mut other = VecInvertedLists::new(dim, nlist);
            for (i, (x, (l, _))) in more.chunks_exact(dim).zip(q.assign(&more).unwrap()).enumerate() {
                other.push(l, 10_000 + i as u64, x);
            }
            let mut deleted = RowSet::new(700);
            for r in (0..700).filter(|r| r % 4 < hidden) {
                deleted.insert(r);
            }
            let sources = [
                Source { lists: &lists, deleted: Some(&deleted), filter: None },
                Source::all(&other),
            ];
            // exact_batch takes queries prepared; the searcher prepares
            // what it is given (for cosine, normalizing twice can move the
            // last bit), so the batch gets what the searcher searches.
            let queries = random(70, dim, seed ^ 1, Metric::L2);
            let mut prepared = queries.clone();
            prepared.chunks_exact_mut(dim).for_each(|x| metric.prepare(x));
            let batch = exact_batch(&q, &sources, &prepared, k).unwrap();
            prop_assert_eq!(batch.len(), 70);
            let mut s = Searcher::new();
            let p = SearchParams { k, nprobe: nlist, max_probes: None };
            for (query, got) in queries.chunks_exact(dim).zip(&batch) {
                let want = s.search_sources(&q, &sources, query, p, None).unwrap();
                prop_assert_eq!(got, &want);
            }
        }
    }

    #[test]
    fn mostly_hidden_chunks_compute_only_visible_distances() {
        let dim = 4;
        let data = random(1000, dim, 32, Metric::L2);
        let (q, lists) = build(&data, dim, 1, Metric::L2);
        // Rows 0..600 all hidden but 3 (whole chunks, then a part of one),
        // the rest visible: the answer is the flat search over the visible.
        let mut deleted = RowSet::new(1000);
        for r in (0..600).filter(|r| ![5, 300, 599].contains(r)) {
            deleted.insert(r);
        }
        let visible: Vec<u64> = (0..1000)
            .filter(|&r| !deleted.contains(r))
            .map(|r| r as u64)
            .collect();
        let vectors: Vec<f32> = visible
            .iter()
            .flat_map(|&r| data[r as usize * dim..(r as usize + 1) * dim].to_vec())
            .collect();
        let src = [Source {
            lists: &lists,
            deleted: Some(&deleted),
            filter: None,
        }];
        let mut s = Searcher::new();
        for query in data.chunks_exact(dim).skip(590).take(20) {
            let mut trace = SearchTrace::default();
            let got = s
                .search_sources(&q, &src, query, SearchParams::new(20, 1), Some(&mut trace))
                .unwrap();
            let exact = flat_search(Metric::L2, query, &vectors, &visible, 20).unwrap();
            let ids = |v: &[Neighbor]| v.iter().map(|n| n.id).collect::<Vec<_>>();
            assert_eq!(ids(&got), ids(&exact));
            let p = &trace.probed[0];
            assert_eq!(p.deleted_skipped, deleted.count() as u64);
            // Chunks of 256: two wholly or mostly hidden (3 visible), the
            // third (512..768) has 87 hidden of 256 and is scanned whole.
            assert_eq!(p.scanned, 1000 - 512 + 2);
        }
    }

    #[test]
    fn rejects_bad_requests() {
        let data = random(100, 4, 1, Metric::L2);
        let (q, lists) = build(&data, 4, 2, Metric::L2);
        let other = VecInvertedLists::new(4, 3);
        let mut s = Searcher::new();
        let p = SearchParams {
            k: 1,
            nprobe: 1,
            max_probes: None,
        };
        assert!(s.search(&q, &[&lists], &[0.0; 3], p, None).is_err());
        assert!(
            s.search(&q, &[&lists], &[0.0, 0.0, 0.0, f32::NAN], p, None)
                .is_err()
        );
        assert!(
            s.search(
                &q,
                &[&lists],
                &[0.0; 4],
                SearchParams {
                    k: 0,
                    nprobe: 1,
                    max_probes: None
                },
                None
            )
            .is_err()
        );
        assert!(
            s.search(
                &q,
                &[&lists],
                &[0.0; 4],
                SearchParams {
                    k: 1,
                    nprobe: 0,
                    max_probes: None
                },
                None
            )
            .is_err()
        );
        let err = s.search(&q, &[&other], &[0.0; 4], p, None).unwrap_err();
        assert!(err.to_string().contains("3 lists"), "{err}");
    }

    /// Rows whose number is a multiple of `every` pass (every list of a
    /// `VecInvertedLists` numbers its rows from 0); `every == 0`: none.
    struct EveryNth(usize);

    impl RowFilter for EveryNth {
        fn matches(&self, row: usize) -> bool {
            self.0 != 0 && row.is_multiple_of(self.0)
        }
        fn is_none(&self) -> bool {
            self.0 == 0
        }
    }

    #[test]
    fn a_filtered_search_probes_on_until_k_rows_pass() {
        let (dim, nlist) = (5, 16);
        let data = random(2000, dim, 9, Metric::L2);
        let (q, lists) = build(&data, dim, nlist, Metric::L2);
        let filter = EveryNth(7);
        let sources = [Source {
            lists: &lists,
            deleted: None,
            filter: Some(&filter),
        }];
        let mut passing_ids = Vec::new();
        for l in 0..nlist as u32 {
            for (i, &id) in lists.list_ids(ListId(l)).iter().enumerate() {
                if i % 7 == 0 {
                    passing_ids.push(id);
                }
            }
        }
        let passing: Vec<f32> = passing_ids
            .iter()
            .flat_map(|&id| data[id as usize * dim..(id as usize + 1) * dim].to_vec())
            .collect();
        let mut s = Searcher::new();
        for (i, query) in data.chunks_exact(dim).take(20).enumerate() {
            // Every list: the exact filtered answer.
            let exact = flat_search(Metric::L2, query, &passing, &passing_ids, 10).unwrap();
            let all = SearchParams::new(10, nlist);
            let got = s.search_sources(&q, &sources, query, all, None).unwrap();
            let ids = |v: &[Neighbor]| v.iter().map(|n| n.id).collect::<Vec<_>>();
            assert_eq!(ids(&got), ids(&exact), "query {i}");
            // One list, k larger than any list's passing rows: probing
            // goes on, in centroid order, until k rows are found.
            let mut trace = SearchTrace::default();
            let one = SearchParams::new(60, 1);
            let got = s
                .search_sources(&q, &sources, query, one, Some(&mut trace))
                .unwrap();
            assert_eq!(got.len(), 60);
            assert!(got.iter().all(|n| passing_ids.contains(&n.id.0)));
            assert!(trace.probed.len() > 1, "query {i}");
            for (rank, p) in trace.probed.iter().enumerate() {
                assert_eq!(p.rank as usize, rank);
                assert!(p.filtered_out > 0);
            }
            let found: u64 = trace.probed.iter().map(|p| p.results as u64).sum();
            assert_eq!(found, 60);
            // It scored as many passing rows as the nprobe lists hold
            // (at least k), and stopped at the list that got there.
            let first_rows = trace.probed[0].size;
            assert_eq!(trace.filter_target, first_rows.max(60));
            let passed: Vec<u64> = trace
                .probed
                .iter()
                .map(|p| p.size - p.filtered_out - p.deleted_skipped)
                .collect();
            assert_eq!(passed.iter().sum::<u64>(), trace.filter_matched);
            let all_but_last: u64 = passed[..passed.len() - 1].iter().sum();
            assert!(all_but_last < trace.filter_target, "{passed:?}");
            assert!(
                trace.filter_matched >= trace.filter_target || trace.probed.len() == nlist,
                "{passed:?}"
            );
            // Bounded by max_probes.
            let bounded = SearchParams {
                max_probes: Some(1),
                ..one
            };
            let got = s
                .search_sources(&q, &sources, query, bounded, None)
                .unwrap();
            let first = trace.probed[0].size.div_ceil(7) as usize;
            assert_eq!(got.len(), first.min(60));
        }
        // Batches agree with single searches.
        let queries: Vec<f32> = data[..40 * dim].to_vec();
        let p = SearchParams::new(30, 2);
        let batch = search_batch(&q, &sources, &queries, p, rabitq::DEFAULT_EPSILON).unwrap();
        for (query, got) in queries.chunks_exact(dim).zip(&batch) {
            assert_eq!(
                got,
                &s.search_sources(&q, &sources, query, p, None).unwrap()
            );
            assert_eq!(got.len(), 30);
        }
        // A filter no row passes.
        let none = EveryNth(0);
        let sources = [Source {
            filter: Some(&none),
            ..sources[0]
        }];
        let got = s
            .search_sources(&q, &sources, &data[..dim], SearchParams::new(5, 2), None)
            .unwrap();
        assert!(got.is_empty());
    }
}
