//! A global retraining in bounded steps, for when the disk cannot hold a
//! second copy of the collection.
//!
//! New centroids are trained as for any retraining, then matched to the
//! current lists' slots (each new centroid to a near old one, nearest
//! pairs first). Each step switches a group of slots holding about a
//! quarter of a segment cap of rows to their new centroids, exactly as a local
//! rebalancing switches a split list's: the rows of the switched lists go
//! to their nearest list under the centroids after the switch, every
//! other row moves if a switched centroid is nearer than its own, and the
//! rows that move are written as the next generation's segment(s), their
//! old copies hidden and merged away before the next step. Every published
//! state has one set of centroids with every row in its nearest list, so
//! searches, explain, tune, export and replicas see nothing new; once
//! every slot holds its new centroid the lists are those a full
//! retraining writes.

use std::sync::Arc;

use vdb_core::ListId;
use vdb_ivf::{CoarseQuantizer, KMeansParams, kmeans};

use super::super::{Collection, Loc, Snapshot, unix_now};
use super::frozen::Frozen;
use super::pieces::Written;
use super::rebalance::Work;
use super::retune::{assignment_numbers, retune_moved};
use crate::error::{Error, Result};

/// The centroids a stepped retraining moves the lists to, slot by slot,
/// and the numbers of the training that made them.
#[derive(Debug, PartialEq)]
pub(in crate::collection) struct Target {
    /// `nlist × dim`, in the current lists' slot order.
    pub(super) centroids: Vec<f32>,
    pub(super) rows: u64,
    pub(super) error: f64,
    pub(super) imbalance: f64,
}

impl Target {
    fn centroid(&self, l: usize, dim: usize) -> &[f32] {
        &self.centroids[l * dim..(l + 1) * dim]
    }

    /// The slots whose centroid `q` does not hold yet.
    pub(super) fn pending(&self, q: &CoarseQuantizer) -> Vec<ListId> {
        let dim = q.dim();
        (0..q.nlist())
            .filter(|&l| q.centroids()[l * dim..(l + 1) * dim] != *self.centroid(l, dim))
            .map(|l| ListId(l as u32))
            .collect()
    }
}

/// Candidate old slots per new centroid when matching.
const MATCH_CANDIDATES: usize = 16;

impl Collection {
    /// Trains `nlist` new centroids on every live row of `snap` (whose
    /// lists number `nlist` too) and matches them to its slots.
    pub(super) fn train_target(&self, snap: &Snapshot, nlist: usize) -> Result<Target> {
        let q = snap.quantizer();
        let dim = q.dim();
        let all: Vec<ListId> = (0..q.nlist()).map(|l| ListId(l as u32)).collect();
        let _held = snap.hold_lists(&all)?;
        let mut vectors = Vec::new();
        for src in snap.sources() {
            for &l in &all {
                let start = src.lists.list_row_start(l);
                for (i, x) in src.lists.list_vectors(l).chunks_exact(dim).enumerate() {
                    if !src.deleted.is_some_and(|d| d.contains(start + i)) {
                        vectors.extend_from_slice(x);
                    }
                }
            }
        }
        let rows = (vectors.len() / dim) as u64;
        let (fresh, _) = kmeans::train(
            &vectors,
            dim,
            nlist,
            self.config.metric,
            &KMeansParams::default(),
        )?;
        let centroids = match_slots(q, &fresh)?;
        let target = CoarseQuantizer::new(dim, self.config.metric, centroids.clone())?;
        let (error, imbalance) = assignment_numbers(&target.assign(&vectors)?, nlist);
        Ok(Target {
            centroids,
            rows,
            error,
            imbalance,
        })
    }

    /// Phase 2 of one step: the next slots (in slot order, as many as hold
    /// about `max_rows` rows, at least one) switched to `target`, the rows
    /// that change lists and the frozen memtable written as the next
    /// generation, and on the last step the training's numbers and the
    /// recall target's nprobe.
    pub(super) fn write_step(&self, f: &Frozen, target: &Target, max_rows: u64) -> Result<Written> {
        let dim = self.config.dim;
        let mut work = Work::new(f, self.config.metric)?;
        let pending = target.pending(&f.quantizer);
        let mut slots = Vec::new();
        let mut rows = 0u64;
        for &l in &pending {
            let size = work.size(l);
            if !slots.is_empty() && rows + size > max_rows {
                break;
            }
            rows += size;
            slots.push(l);
        }
        let last = slots.len() == pending.len();
        let centroids: Vec<Vec<f32>> = slots
            .iter()
            .map(|l| target.centroid(l.index(), dim).to_vec())
            .collect();
        work.switch(&slots, &centroids)?;
        let (centroids, placed, changed) = work.finish();

        // Nothing is written before the rows that move are known to fit.
        if let Some(available) = self.files.available_space()? {
            let cap = f.segment_cap();
            let needed = placed.len() as u64 * cap.bytes / cap.rows() + 4 * centroids.len() as u64;
            if needed > available {
                return Err(Error::NoSpace {
                    name: self.name.clone(),
                    task: "retraining step",
                    needed,
                    available,
                });
            }
        }
        let generation = f.manifest.generation + 1;
        let file = self.write_centroid_file(f, generation, &centroids)?;
        let quantizer = Arc::new(f.manifest.config.quantizer(centroids)?);
        let mut rows: Vec<(ListId, Loc)> = placed.into_iter().map(|(loc, l)| (l, loc)).collect();
        rows.sort_unstable_by_key(|&(l, loc)| (l, loc));
        let _held = super::rebalance::hold_rows(f, &rows)?;

        let seq = f.manifest.next_seq;
        let mut next = f.manifest.clone();
        next.flushed_lsn = f.lsn;
        next.generation = generation;
        next.centroids = Some(file);
        let pieces = self.write_pieces(f, &quantizer, generation, &rows, f.segment_cap())?;
        next.next_seq = seq + pieces.len().max(1) as u64;
        if last {
            next.trained_rows = target.rows;
            next.trained_error = target.error;
            next.trained_imbalance = target.imbalance;
            next.trained_at = unix_now();
            next.rebalances = 0;
            next.rebalanced_at = 0;
            let written: Vec<_> = pieces.iter().map(|p| &p.reader).collect();
            retune_moved(&mut next, &quantizer, f, &rows, &written)?;
        }
        next.segments
            .extend(pieces.iter().map(|p| (p.seq, p.file.clone())));
        if !f.pending_deletes.is_empty() {
            let file = vdb_format::delete_file_name(seq);
            vdb_format::write_deletes_in(self.files.as_ref(), &file, seq, &f.pending_deletes)?;
            next.deletes.push((seq, file));
        }
        Ok(Written {
            manifest: next,
            segments: pieces,
            replaces: Vec::new(),
            quantizer: Some(quantizer),
            changed,
        })
    }
}

/// `fresh` centroids reordered into `q`'s slots: each to a slot whose
/// current centroid is near it, the nearest pairs first, so that a slot
/// keeps most of its rows when it switches; centroids without a free
/// near slot take the slots left, in order.
fn match_slots(q: &CoarseQuantizer, fresh: &[f32]) -> Result<Vec<f32>> {
    let (dim, nlist) = (q.dim(), q.nlist());
    if fresh.len() != nlist * dim {
        return Err(Error::Internal(format!(
            "{} trained centroids for {nlist} lists",
            fresh.len() / dim.max(1)
        )));
    }
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    let (mut scratch, mut near) = (Vec::new(), Vec::new());
    for (n, c) in fresh.chunks_exact(dim).enumerate() {
        q.probe(c, MATCH_CANDIDATES.min(nlist), &mut scratch, &mut near);
        pairs.extend(near.iter().map(|&(slot, d)| (d, n, slot.index())));
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut slot_of = vec![usize::MAX; nlist];
    let mut taken = vec![false; nlist];
    for (_, n, slot) in pairs {
        if slot_of[n] == usize::MAX && !taken[slot] {
            slot_of[n] = slot;
            taken[slot] = true;
        }
    }
    let mut free = (0..nlist).filter(|&s| !taken[s]);
    let mut out = vec![0f32; nlist * dim];
    for (n, c) in fresh.chunks_exact(dim).enumerate() {
        let slot = match slot_of[n] {
            usize::MAX => free
                .next()
                .ok_or_else(|| Error::Internal("more centroids than slots".into()))?,
            s => s,
        };
        out[slot * dim..(slot + 1) * dim].copy_from_slice(c);
    }
    Ok(out)
}
