//! Reads: get by id, searches on a snapshot, the hits they return, and
//! the collection's numbers.
//!
//! A search never takes the collection lock: it scores the rows of one
//! [`Snapshot`] and reads each hit's payload and vector from the very row
//! it scored (the [`RowAddr`] top-k carries), in that same snapshot. A
//! row replaced meanwhile cannot lend its newer payload to an older
//! distance.

use std::sync::atomic::Ordering;

use vdb_core::{Hold, ListId, Neighbor, RowAddr};
use vdb_format::SegmentReader;
use vdb_ivf::{SearchParams, SearchTrace, SearchWork};

use super::{
    Collection, CollectionStats, Inner, Loc, SearchOptions, Snapshot, memtable_bytes, memtable_rows,
};
use crate::error::{Error, Result};
use crate::memtable::RowRef;
use crate::{Hit, Row};

impl Collection {
    /// Reads the live row with id `id`.
    pub fn get(&self, id: u64) -> Result<Option<Row>> {
        let inner = self.lock();
        match inner.ids.get(&id) {
            Some(&loc) => {
                let _held = match loc {
                    Loc::Seg(s, r) => match inner.segs.get(s as usize) {
                        Some(e) => Some(e.reader.hold_rows(&[r as usize])?),
                        None => None,
                    },
                    Loc::Mem(..) | Loc::Frozen(..) => None,
                };
                Ok(Some(read_loc(&inner, loc)?.to_row()))
            }
            None => Ok(None),
        }
    }

    /// The work a search of `queries` queries at `nprobe` (as in
    /// [`SearchOptions::nprobe`]) is expected to do on the current
    /// snapshot, in vector components compared: per query every centroid,
    /// plus the probed lists' share of the visible rows (as if the lists
    /// were equal in size). Exact search (`usize::MAX`) compares every row.
    /// A server uses it to decide whether a search is small enough to run
    /// on the thread that received it.
    pub fn search_work(&self, queries: usize, nprobe: Option<usize>) -> u64 {
        let snap = self.snapshot();
        let nlist = snap.nlist().max(1) as u64;
        let nprobe = nprobe
            .unwrap_or_else(|| self.default_nprobe.load(Ordering::Acquire))
            .clamp(1, nlist as usize) as u64;
        let rows = (snap.live_rows as u64).saturating_mul(nprobe) / nlist;
        (nlist + rows)
            .saturating_mul(self.config.dim as u64)
            .saturating_mul(queries as u64)
    }

    /// Searches every query (each `dim` long) on one snapshot. Payloads
    /// and vectors, when asked for, are those of the rows scored.
    pub fn search(&self, queries: &[Vec<f32>], opts: SearchOptions) -> Result<Vec<Vec<Hit>>> {
        self.search_with_work(queries, opts).map(|(hits, _)| hits)
    }

    /// [`Collection::search`], and what it did: lists probed, rows scored,
    /// exact distances computed (summed over the queries).
    pub fn search_with_work(
        &self,
        queries: &[Vec<f32>],
        opts: SearchOptions,
    ) -> Result<(Vec<Vec<Hit>>, SearchWork)> {
        let params = self.params(&opts)?;
        for (i, q) in queries.iter().enumerate() {
            self.check_query(q, || format!("queries[{i}]"))?;
        }
        let snap = self.snapshot();
        let bound = opts.filter.as_ref().map(|f| snap.bind(f));
        let sources = snap.sources_filtered(bound.as_deref());
        let mut searcher = opts.searcher();
        let mut out = Vec::with_capacity(queries.len());
        for q in queries {
            let found = searcher.search_sources(&snap.quantizer, &sources, q, params, None)?;
            out.push(snap.hits(found, &opts)?);
        }
        Ok((out, searcher.work()))
    }

    /// Searches one query and returns what the search did with the hits.
    pub fn search_traced(
        &self,
        query: &[f32],
        opts: SearchOptions,
    ) -> Result<(Vec<Hit>, SearchTrace)> {
        let params = self.params(&opts)?;
        self.check_query(query, || "query".into())?;
        let snap = self.snapshot();
        let bound = opts.filter.as_ref().map(|f| snap.bind(f));
        let sources = snap.sources_filtered(bound.as_deref());
        let mut trace = SearchTrace::default();
        let found = opts.searcher().search_sources(
            &snap.quantizer,
            &sources,
            query,
            params,
            Some(&mut trace),
        )?;
        let hits = snap.hits(found, &opts)?;
        Ok((hits, trace))
    }

    pub(crate) fn params(&self, opts: &SearchOptions) -> Result<SearchParams> {
        if opts.k == 0 {
            return Err(Error::invalid("k", "must be at least 1"));
        }
        let nprobe = opts
            .nprobe
            .unwrap_or_else(|| self.default_nprobe.load(Ordering::Acquire));
        if nprobe == 0 {
            return Err(Error::invalid("nprobe", "must be at least 1"));
        }
        if opts.max_probes == Some(0) {
            return Err(Error::invalid("max_probes", "must be at least 1"));
        }
        if let Some(e) = opts.rerank_epsilon
            && !(e.is_finite() && e >= 0.0)
        {
            return Err(Error::invalid(
                "rerank_epsilon",
                format!("{e} must be a finite number of at least 0"),
            ));
        }
        if let Some(f) = &opts.filter {
            f.check(&self.fields()).map_err(Error::invalid_field)?;
        }
        Ok(SearchParams {
            k: opts.k,
            nprobe,
            max_probes: opts.max_probes,
        })
    }

    /// Checks a query vector from a request: the collection's dimension,
    /// finite components. `field` names it in the error.
    pub(crate) fn check_query(&self, q: &[f32], field: impl FnOnce() -> String) -> Result<()> {
        vdb_core::validate_vector(q, self.config.dim).map_err(|source| Error::InvalidVector {
            field: field(),
            source,
        })
    }

    /// Numbers describing the collection.
    pub fn stats(&self) -> CollectionStats {
        let inner = self.lock();
        let sizes = super::list_sizes(&inner);
        let stored: u64 = inner
            .segs
            .iter()
            .map(|s| s.reader.rows() as u64)
            .sum::<u64>()
            + inner
                .frozen
                .iter()
                .chain(&inner.mem)
                .map(|m| m.batch.rows() as u64)
                .sum::<u64>();
        CollectionStats {
            rows: inner.ids.len() as u64,
            deleted_rows: stored - inner.ids.len() as u64,
            segments: inner.segs.len(),
            memtable_rows: memtable_rows(&inner) as u64,
            segment_bytes: inner.segs.iter().map(|s| s.reader.file_len()).sum(),
            generation: inner.manifest.generation,
            lists: inner.quantizer.nlist(),
            imbalance: vdb_ivf::imbalance_factor(&sizes),
            last_lsn: inner.applied.0,
            flushed_lsn: inner.manifest.flushed_lsn.0,
            trained_at: inner.manifest.trained_at,
            trained_rows: inner.manifest.trained_rows,
            tuned_recall: inner.manifest.tuned_recall,
            memtable_bytes: memtable_bytes(&inner),
            flushed_bytes: inner.flushed_bytes,
            rewritten_bytes: inner.rewritten_bytes,
            postponed: inner.postponed.clone(),
            compacted_at: inner.manifest.compacted_at,
            rebalances: inner.manifest.rebalances,
            rebalanced_at: inner.manifest.rebalanced_at,
        }
    }
}

impl Snapshot {
    /// Keeps lists `lists` of every source readable while the holds live
    /// (see [`InvertedLists::hold`]).
    pub(crate) fn hold_lists(&self, lists: &[ListId]) -> Result<Vec<Hold>> {
        self.sources()
            .iter()
            .map(|s| {
                s.lists
                    .hold(lists)
                    .map_err(|e| Error::Ivf(vdb_ivf::Error::Storage(e)))
            })
            .collect()
    }

    /// Keeps the rows at `addrs` readable while the holds live.
    fn hold_rows(&self, addrs: impl Iterator<Item = RowAddr>) -> Result<Vec<Hold>> {
        let mut rows: Vec<Vec<usize>> = vec![Vec::new(); self.segs.len()];
        for a in addrs {
            if let Some(r) = rows.get_mut(a.source as usize) {
                r.push(a.row as usize);
            }
        }
        let mut held = Vec::new();
        for ((seg, _), rows) in self.segs.iter().zip(&rows) {
            if !rows.is_empty() {
                held.push(seg.hold_rows(rows)?);
            }
        }
        Ok(held)
    }

    /// The row stored at `addr`, with sources numbered as
    /// [`Snapshot::sources`] numbers them.
    pub(crate) fn row(&self, addr: RowAddr) -> Result<RowRef<'_>> {
        let (s, r) = (addr.source as usize, addr.row as usize);
        let row = match self.segs.get(s) {
            Some((seg, _)) => segment_row(seg, r)?,
            None => s
                .checked_sub(self.segs.len())
                .and_then(|b| self.mem.get(b))
                .and_then(|(batch, _)| batch.row(r)),
        };
        row.ok_or_else(|| Error::Internal(format!("no row at {addr:?} in the snapshot searched")))
    }

    /// The hits of a search of this snapshot: each neighbour's id and
    /// distance, and when asked the payload and vector of the row it
    /// scored.
    pub(crate) fn hits(&self, found: Vec<Neighbor>, opts: &SearchOptions) -> Result<Vec<Hit>> {
        let (with_payload, with_vectors, with_fields) =
            (opts.with_payload, opts.with_vectors, opts.with_fields);
        let _held = if with_payload || with_vectors || with_fields {
            self.hold_rows(found.iter().map(|n| n.addr))?
        } else {
            Vec::new()
        };
        found
            .into_iter()
            .map(|n| {
                let mut hit = Hit {
                    id: n.id.0,
                    distance: n.distance,
                    payload: None,
                    vector: None,
                    fields: Default::default(),
                };
                if with_payload || with_vectors || with_fields {
                    let row = self.row(n.addr)?;
                    if with_payload {
                        hit.payload = row.payload.map(<[u8]>::to_vec);
                    }
                    if with_vectors {
                        hit.vector = Some(row.vector.to_vec());
                    }
                    if with_fields {
                        hit.fields = row.fields();
                    }
                }
                Ok(hit)
            })
            .collect()
    }
}

/// Row `r` of a segment (`None` past its end); a damaged payload offset is
/// an error naming the file.
pub(super) fn segment_row(seg: &SegmentReader, r: usize) -> Result<Option<RowRef<'_>>> {
    let Some(((list, vector), &id)) = seg.row(r).zip(seg.ids().get(r)) else {
        return Ok(None);
    };
    Ok(Some(RowRef {
        id,
        vector,
        payload: seg.payload(r)?,
        list,
        columns: seg.columns(),
        row: r,
    }))
}

/// The row the id map points at with `loc`.
pub(super) fn read_loc(inner: &Inner, loc: Loc) -> Result<RowRef<'_>> {
    let row = match loc {
        Loc::Seg(s, r) => match inner.segs.get(s as usize) {
            Some(e) => segment_row(&e.reader, r as usize)?,
            None => None,
        },
        Loc::Mem(b, r) => inner
            .mem
            .get(b as usize)
            .and_then(|e| e.batch.row(r as usize)),
        Loc::Frozen(b, r) => inner
            .frozen
            .get(b as usize)
            .and_then(|e| e.batch.row(r as usize)),
    };
    row.ok_or_else(|| Error::Internal(format!("the id map points at {loc:?}, which holds no row")))
}
