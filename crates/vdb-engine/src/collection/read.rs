//! Reads: get by id, searches on a snapshot, the hits they return, and
//! the collection's numbers.

use std::sync::atomic::Ordering;

use vdb_core::{InvertedLists, ListId};
use vdb_format::SegmentReader;
use vdb_ivf::{SearchParams, SearchTrace, Searcher};

use super::{Collection, CollectionStats, Inner, Loc, SearchOptions, memtable_rows};
use crate::error::{Error, Result};
use crate::memtable::RowRef;
use crate::{Hit, Row};

impl Collection {
    /// Reads the live row with id `id`.
    pub fn get(&self, id: u64) -> Result<Option<Row>> {
        let inner = self.lock();
        Ok(inner.ids.get(&id).and_then(|&loc| {
            read_ref(&inner, MemRef::from(loc)).map(|row| Row {
                id: row.id,
                vector: row.vector.to_vec(),
                payload: row.payload.map(<[u8]>::to_vec),
            })
        }))
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

    /// Searches every query (each `dim` long) on one snapshot.
    pub fn search(&self, queries: &[Vec<f32>], opts: SearchOptions) -> Result<Vec<Vec<Hit>>> {
        let snap = self.snapshot();
        let sources = snap.sources();
        let params = self.params(&opts)?;
        let mut searcher = Searcher::new();
        let mut out = Vec::with_capacity(queries.len());
        for (i, q) in queries.iter().enumerate() {
            let found = searcher
                .search_sources(&snap.quantizer, &sources, q, params, None)
                .map_err(|e| Error::invalid(format!("queries[{i}]"), e.to_string()))?;
            out.push(self.hits(found, opts.with_payload));
        }
        Ok(out)
    }

    /// Searches one query and returns what the search did with the hits.
    pub fn search_traced(
        &self,
        query: &[f32],
        opts: SearchOptions,
    ) -> Result<(Vec<Hit>, SearchTrace)> {
        let snap = self.snapshot();
        let sources = snap.sources();
        let params = self.params(&opts)?;
        let mut trace = SearchTrace::default();
        let found = Searcher::new()
            .search_sources(&snap.quantizer, &sources, query, params, Some(&mut trace))
            .map_err(|e| Error::invalid("query", e.to_string()))?;
        Ok((self.hits(found, opts.with_payload), trace))
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
        Ok(SearchParams { k: opts.k, nprobe })
    }

    pub(crate) fn hits(&self, found: Vec<vdb_core::Neighbor>, with_payload: bool) -> Vec<Hit> {
        let payloads: Vec<Option<Vec<u8>>> = if with_payload {
            let inner = self.lock();
            found
                .iter()
                .map(|n| {
                    inner
                        .ids
                        .get(&n.id.0)
                        .and_then(|&loc| read_ref(&inner, MemRef::from(loc)))
                        .and_then(|row| row.payload.map(<[u8]>::to_vec))
                })
                .collect()
        } else {
            vec![None; found.len()]
        };
        found
            .into_iter()
            .zip(payloads)
            .map(|(n, payload)| Hit {
                id: n.id.0,
                distance: n.distance,
                payload,
            })
            .collect()
    }

    /// Numbers describing the collection.
    pub fn stats(&self) -> CollectionStats {
        let inner = self.lock();
        let mut sizes = vec![0u64; inner.quantizer.nlist()];
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
        for s in &inner.segs {
            for (l, size) in sizes.iter_mut().enumerate() {
                *size += s.reader.list_len(ListId(l as u32)) as u64;
            }
        }
        for m in inner.frozen.iter().chain(&inner.mem) {
            for (l, size) in sizes.iter_mut().enumerate() {
                *size += m.batch.list_len(ListId(l as u32)) as u64;
            }
        }
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
            compacted_at: inner.manifest.compacted_at,
        }
    }
}

/// A row's place, for reading it.
#[derive(Debug, Clone, Copy)]
enum MemRef {
    Seg(usize, usize),
    Mem(usize, usize),
    Frozen(usize, usize),
}

impl From<Loc> for MemRef {
    fn from(l: Loc) -> MemRef {
        match l {
            Loc::Seg(s, r) => MemRef::Seg(s as usize, r as usize),
            Loc::Mem(b, r) => MemRef::Mem(b as usize, r as usize),
            Loc::Frozen(b, r) => MemRef::Frozen(b as usize, r as usize),
        }
    }
}

/// Row `r` of a segment.
pub(super) fn segment_row(seg: &SegmentReader, r: usize) -> Option<RowRef<'_>> {
    let (list, vector) = seg.row(r)?;
    Some(RowRef {
        id: *seg.ids().get(r)?,
        vector,
        // Segments store "no payload" as an empty one.
        payload: seg.payload(r).ok().flatten().filter(|p| !p.is_empty()),
        list,
    })
}

fn read_ref(inner: &Inner, at: MemRef) -> Option<RowRef<'_>> {
    match at {
        MemRef::Seg(s, r) => segment_row(&inner.segs.get(s)?.reader, r),
        MemRef::Mem(b, r) => inner.mem.get(b)?.batch.row(r),
        MemRef::Frozen(b, r) => inner.frozen.get(b)?.batch.row(r),
    }
}
