//! Local rebalancing: phase 2 of a maintenance step that splits the
//! largest lists and dissolves the smallest instead of retraining every
//! list (SPFresh's LIRE protocol, SOSP 2023; Lance's split and join).
//!
//! One step ([`crate::policy::next_swap`]) clusters the rows of the
//! largest list `L` in two (2-means): one centroid replaces `L`'s, the
//! other takes the slot of the smallest list `j`. Every row of `L` and `j`
//! goes to its nearest list under the new centroids. Rows of other lists
//! had their own centroid as their nearest, and only `L`'s and `j`'s
//! changed, so such a row's nearest is now its own or one of the two new
//! ones; only rows near the old `L` can prefer a new one, so the rows of
//! the lists whose centroids are nearest `L`'s are checked (LIRE's
//! reassignment) and move if so.
//!
//! The rows that move, and the frozen memtable, are written as one new
//! segment of the next generation, and the centroids as that generation's
//! file; nothing else is rewritten. A moved row's old copy stays in its
//! segment, hidden because a newer segment holds its id (how an upsert
//! hides one), so the old segments' lists `L` and `j` hold only hidden
//! rows, which a search skips without computing their distances, and
//! compaction drops. The manifest's `trained_generation` says which older
//! segments are searched with the current centroids.

use std::collections::HashMap;

use vdb_core::{Hold, InvertedLists, ListId, Metric};
use vdb_ivf::{CoarseQuantizer, KMeansParams, kmeans};

use super::super::{Collection, Loc, unix_now, visible_sizes};
use super::frozen::Frozen;
use super::pieces::Written;
use super::retune::retune_moved;
use crate::error::{Error, Result};
use crate::policy::{Swap, next_swap, rebalance_target};

/// Most list splits one maintenance step makes (the step after a flush
/// runs again while the lists are still uneven).
pub(super) const MAX_SWAPS: usize = 32;

/// Lists nearest each new and old centroid of a split that it concerns
/// (Lance checks the 64 nearest a split list; SPFresh a few).
const NEIGHBOURS: usize = 32;

/// A split is made only when each half keeps at least this fraction of
/// the list's rows (identical vectors cannot be split).
const MIN_HALF: f64 = 0.1;

impl Collection {
    /// Phase 2 of a rebalancing: up to [`MAX_SWAPS`] list splits, moving
    /// up to a quarter of the segment cap's rows, while
    /// the lists are more uneven than the policy's target, the rows they
    /// move and the frozen memtable as one segment, the new centroids, and
    /// the manifest naming them. `None` when no split was worth making
    /// (the caller flushes instead).
    pub(super) fn write_rebalance(&self, f: &Frozen) -> Result<Option<Written>> {
        let until = rebalance_target(&f.manifest.config.retrain, f.manifest.trained_imbalance);
        let mut work = Work::new(f, self.config.metric)?;
        let (mut swaps, mut unsplittable) = (0, Vec::new());
        // The segment rows a step moves are written before their old
        // copies can be merged away: at most a quarter of the segment
        // cap's rows a step, as a retraining in steps (beyond the first
        // split, which moves what it must).
        let memtable = work.placed.len();
        let most_moved = (f.segment_cap().rows() / 4) as usize;
        while swaps < MAX_SWAPS && work.placed.len() - memtable < most_moved {
            let Some(swap) = next_swap(&work.sizes, until, &unsplittable) else {
                break;
            };
            if work.swap(swap)? {
                swaps += 1;
            } else {
                unsplittable.push(swap.split);
            }
        }
        if swaps == 0 {
            return Ok(None);
        }
        // No split left to make: the last step of this rebalancing.
        let last = next_swap(&work.sizes, until, &unsplittable).is_none();
        let Work {
            centroids,
            placed,
            holds,
            changed,
            ..
        } = work;
        drop(holds);

        let generation = f.manifest.generation + 1;
        let file = self.write_centroid_file(f, generation, &centroids)?;
        let quantizer = std::sync::Arc::new(f.manifest.config.quantizer(centroids)?);
        let mut rows: Vec<(ListId, Loc)> = placed.into_iter().map(|(loc, l)| (l, loc)).collect();
        rows.sort_unstable_by_key(|&(l, loc)| (l, loc));
        // Payloads of the segment rows copied (cached files fetch them).
        let _held = hold_rows(f, &rows)?;

        let seq = f.manifest.next_seq;
        let mut next = f.manifest.clone();
        next.next_seq += 1;
        next.flushed_lsn = f.lsn;
        next.generation = generation;
        next.centroids = Some(file);
        next.rebalances += swaps as u64;
        next.rebalanced_at = unix_now();
        let pieces = self.write_pieces(f, &quantizer, generation, &rows, f.segment_cap())?;
        next.next_seq = seq + pieces.len().max(1) as u64;
        if last {
            // The lists changed since nprobe was chosen for the recall
            // target: choose again on the state this step publishes (the
            // frozen segments without the rows that moved, and the new
            // segment). Once per rebalancing, not per step: 200 exact
            // searches.
            let written: Vec<_> = pieces.iter().map(|p| &p.reader).collect();
            retune_moved(&mut next, &quantizer, f, &rows, &written)?;
        }
        next.segments
            .extend(pieces.iter().map(|p| (p.seq, p.file.clone())));
        // Every segment is kept, so deletes since the last flush may hide
        // rows in any of them.
        if !f.pending_deletes.is_empty() {
            let file = vdb_format::delete_file_name(seq);
            vdb_format::write_deletes_in(self.files.as_ref(), &file, seq, &f.pending_deletes)?;
            next.deletes.push((seq, file));
        }
        Ok(Some(Written {
            manifest: next,
            segments: pieces,
            replaces: Vec::new(),
            quantizer: Some(quantizer),
            changed,
        }))
    }
}

/// The rows of `rows` in frozen segments, held readable by segment.
pub(super) fn hold_rows(f: &Frozen, rows: &[(ListId, Loc)]) -> Result<Vec<Hold>> {
    let mut by_seg: Vec<Vec<usize>> = vec![Vec::new(); f.segs.len()];
    for &(_, loc) in rows {
        if let Loc::Seg(s, r) = loc
            && let Some(v) = by_seg.get_mut(s as usize)
        {
            v.push(r as usize);
        }
    }
    let mut holds = Vec::new();
    for ((seg, _), rows) in f.segs.iter().zip(by_seg) {
        if !rows.is_empty() {
            holds.push(seg.hold_rows(&rows)?);
        }
    }
    Ok(holds)
}

/// A rebalancing in progress: the centroids so far, and where every row
/// that is to be written goes.
pub(super) struct Work<'a> {
    f: &'a Frozen,
    metric: Metric,
    dim: usize,
    centroids: Vec<f32>,
    /// Live rows per list, as placed so far.
    sizes: Vec<u64>,
    /// Rows to write and their list: every frozen memtable row, and each
    /// segment row whose list changed.
    placed: HashMap<Loc, ListId>,
    /// Rows of `placed` by list (an entry is stale once its row moved on).
    added: Vec<Vec<Loc>>,
    /// Segment lists read so far, kept readable.
    holds: Vec<Hold>,
    held: Vec<bool>,
    /// The lists whose centroids changed, ascending.
    changed: Vec<ListId>,
}

impl<'a> Work<'a> {
    pub(super) fn new(f: &'a Frozen, metric: Metric) -> Result<Work<'a>> {
        let nlist = f.quantizer.nlist();
        let sizes = visible_sizes(&f.sources(), nlist);
        let mut placed = HashMap::new();
        let mut added = vec![Vec::new(); nlist];
        for loc in f.frozen_live() {
            let (list, _) = f.list_and_vector(loc)?;
            if let Some(a) = added.get_mut(list.index()) {
                a.push(loc);
                placed.insert(loc, list);
            }
        }
        Ok(Work {
            f,
            metric,
            dim: f.quantizer.dim(),
            centroids: f.quantizer.centroids().to_vec(),
            sizes,
            placed,
            added,
            holds: Vec::new(),
            held: vec![false; nlist],
            changed: Vec::new(),
        })
    }

    /// Live rows in list `l`, as placed so far.
    pub(super) fn size(&self, l: ListId) -> u64 {
        self.sizes.get(l.index()).copied().unwrap_or(0)
    }

    /// The centroids, the rows to write with their lists, and the lists
    /// whose centroids changed.
    pub(super) fn finish(self) -> (Vec<f32>, HashMap<Loc, ListId>, Vec<ListId>) {
        (self.centroids, self.placed, self.changed)
    }

    /// Gives each list of `slots` the centroid at the same position of
    /// `centroids`, and moves rows exactly: every row of those lists to
    /// its nearest list under the new centroids, every row of the other
    /// lists to the nearest switched centroid if that is nearer than its
    /// own (its own was its nearest before, and only the switched ones
    /// changed).
    pub(super) fn switch(&mut self, slots: &[ListId], centroids: &[Vec<f32>]) -> Result<()> {
        let dim = self.dim;
        for (&l, c) in slots.iter().zip(centroids) {
            self.centroids[l.index() * dim..(l.index() + 1) * dim].copy_from_slice(c);
            if let Err(at) = self.changed.binary_search(&l) {
                self.changed.insert(at, l);
            }
        }
        let all = CoarseQuantizer::new(dim, self.metric, self.centroids.clone())?;
        let switched = CoarseQuantizer::new(dim, self.metric, centroids.concat())?;
        for &l in slots {
            let rows = self.members(l)?;
            let vectors = self.vectors(&rows)?;
            for (loc, (to, _)) in rows.into_iter().zip(all.assign(&vectors)?) {
                self.place(loc, to)?;
            }
        }
        for n in 0..all.nlist() {
            let n = ListId(n as u32);
            if slots.binary_search(&n).is_ok() {
                continue;
            }
            let rows = self.members(n)?;
            if rows.is_empty() {
                continue;
            }
            let vectors = self.vectors(&rows)?;
            let own = self.centroid(n).to_vec();
            let nearest = switched.assign(&vectors)?;
            for ((loc, x), (j, d)) in rows.into_iter().zip(vectors.chunks_exact(dim)).zip(nearest) {
                if d < self.metric.distance(x, &own) {
                    self.place(loc, slots[j.index()])?;
                }
            }
        }
        Ok(())
    }

    fn vectors(&self, rows: &[Loc]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(rows.len() * self.dim);
        for &loc in rows {
            out.extend_from_slice(self.vector(loc)?);
        }
        Ok(out)
    }

    fn centroid(&self, l: ListId) -> &[f32] {
        &self.centroids[l.index() * self.dim..(l.index() + 1) * self.dim]
    }

    /// The live rows now in list `l`: the segments' rows of it that have
    /// not moved, and the rows placed in it.
    fn members(&mut self, l: ListId) -> Result<Vec<Loc>> {
        if !self.held[l.index()] {
            for (seg, _) in &self.f.segs {
                self.holds.push(
                    seg.hold(&[l])
                        .map_err(|e| Error::Ivf(vdb_ivf::Error::Storage(e)))?,
                );
            }
            self.held[l.index()] = true;
        }
        let mut out = Vec::new();
        for (s, (seg, deleted)) in self.f.segs.iter().enumerate() {
            let start = seg.list_row_start(l);
            for r in start..start + seg.list_len(l) {
                let loc = Loc::Seg(s as u32, r as u32);
                if !deleted.contains(r) && !self.placed.contains_key(&loc) {
                    out.push(loc);
                }
            }
        }
        let mut added: Vec<Loc> = std::mem::take(&mut self.added[l.index()])
            .into_iter()
            .filter(|loc| self.placed.get(loc) == Some(&l))
            .collect();
        added.sort_unstable();
        added.dedup();
        out.extend_from_slice(&added);
        self.added[l.index()] = added;
        Ok(out)
    }

    fn vector(&self, loc: Loc) -> Result<&'a [f32]> {
        Ok(self.f.list_and_vector(loc)?.1)
    }

    /// Where `loc` is now: its placed list, or its segment's.
    fn list_of(&self, loc: Loc) -> Result<ListId> {
        match self.placed.get(&loc) {
            Some(&l) => Ok(l),
            None => Ok(self.f.list_and_vector(loc)?.0),
        }
    }

    fn place(&mut self, loc: Loc, to: ListId) -> Result<()> {
        let from = self.list_of(loc)?;
        if from == to && !self.placed.contains_key(&loc) {
            return Ok(());
        }
        self.sizes[from.index()] -= 1;
        self.sizes[to.index()] += 1;
        self.placed.insert(loc, to);
        self.added[to.index()].push(loc);
        Ok(())
    }

    /// Makes one split; `false` if list `split`'s rows cannot be split in
    /// two useful halves (then nothing changed).
    fn swap(&mut self, Swap { split, dissolve }: Swap) -> Result<bool> {
        let (split, dissolve) = (ListId(split as u32), ListId(dissolve as u32));
        let dim = self.dim;
        let rows = self.members(split)?;
        let mut vectors = Vec::with_capacity(rows.len() * dim);
        for &loc in &rows {
            vectors.extend_from_slice(self.vector(loc)?);
        }
        let params = KMeansParams {
            seed: 1234 + u64::from(split.0),
            ..KMeansParams::default()
        };
        let (halves, _) = kmeans::train(&vectors, dim, 2, self.metric, &params)?;
        let (c1, c2) = halves.split_at(dim);
        let first = vectors
            .chunks_exact(dim)
            .filter(|x| self.metric.distance(x, c1) <= self.metric.distance(x, c2))
            .count();
        let smaller = first.min(rows.len() - first);
        if (smaller as f64) < MIN_HALF * rows.len() as f64 {
            return Ok(false);
        }
        let old = self.centroid(split).to_vec();
        let old_gone = self.centroid(dissolve).to_vec();
        let gone = self.members(dissolve)?;
        self.centroids[split.index() * dim..(split.index() + 1) * dim].copy_from_slice(c1);
        self.centroids[dissolve.index() * dim..(dissolve.index() + 1) * dim].copy_from_slice(c2);
        let q = CoarseQuantizer::new(dim, self.metric, self.centroids.clone())?;
        for l in [split, dissolve] {
            if let Err(at) = self.changed.binary_search(&l) {
                self.changed.insert(at, l);
            }
        }

        // The lists the change can concern: those whose centroids are
        // nearest the new centroids and the two old ones. A row that a
        // new centroid is nearer to than its own lies in a list bordering
        // the new centroid's cell; a row of the two changed lists has its
        // nearest list among the old centroid's neighbours or the new.
        let mut lists: Vec<ListId> = vec![split, dissolve];
        let (mut scratch, mut near) = (Vec::new(), Vec::new());
        for c in [c1, c2, &old[..], &old_gone[..]] {
            q.probe(c, NEIGHBOURS, &mut scratch, &mut near);
            lists.extend(near.iter().map(|&(n, _)| n));
        }
        lists.sort_unstable();
        lists.dedup();
        let candidates: Vec<(ListId, Vec<f32>)> = lists
            .iter()
            .map(|&l| (l, self.centroid(l).to_vec()))
            .collect();

        // The rows of both lists: their nearest list now.
        for loc in rows.into_iter().chain(gone) {
            let x = self.vector(loc)?;
            let nearest = candidates
                .iter()
                .map(|(l, c)| (*l, self.metric.distance(x, c)))
                .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
                .map_or(split, |(l, _)| l);
            self.place(loc, nearest)?;
        }

        // Rows of the other lists that a new centroid is nearer to.
        let (c1, c2) = (c1.to_vec(), c2.to_vec());
        for (n, own) in candidates
            .iter()
            .filter(|(n, _)| *n != split && *n != dissolve)
        {
            for loc in self.members(*n)? {
                let x = self.vector(loc)?;
                let d = self.metric.distance(x, own);
                let (d1, d2) = (self.metric.distance(x, &c1), self.metric.distance(x, &c2));
                if d1.min(d2) < d {
                    self.place(loc, if d1 <= d2 { split } else { dissolve })?;
                }
            }
        }
        Ok(true)
    }
}
