//! What applying a write does to the collection's state: an upsert hides
//! each id's previous row and adds a memtable batch grouped by list (batches
//! merged like a binary counter); a delete hides the id and remembers it for
//! the next delete file. Used by the write path, by log replay at open and
//! by maintenance when it regroups the memtable.

use std::sync::Arc;

use vdb_core::{InvertedLists, RowSet};

use super::{Inner, Loc, MemEntry};
use crate::Row;
use crate::error::Result;
use crate::memtable::MemBatch;

pub(super) fn hide(inner: &mut Inner, loc: Loc) {
    match loc {
        Loc::Seg(s, r) => {
            if let Some(e) = inner.segs.get_mut(s as usize) {
                Arc::make_mut(&mut e.deleted).insert(r as usize);
            }
        }
        Loc::Mem(b, r) => {
            if let Some(e) = inner.mem.get_mut(b as usize) {
                Arc::make_mut(&mut e.deleted).insert(r as usize);
            }
        }
        Loc::Frozen(b, r) => {
            if let Some(e) = inner.frozen.get_mut(b as usize) {
                Arc::make_mut(&mut e.deleted).insert(r as usize);
            }
        }
    }
}

pub(super) fn apply_upsert(inner: &mut Inner, rows: Vec<Row>) -> Result<()> {
    for r in &rows {
        if let Some(loc) = inner.ids.get(&r.id).copied() {
            hide(inner, loc);
        }
        inner.pending_deletes.remove(&r.id);
    }
    let fields = &inner.manifest.config.fields;
    let generation = match &mut inner.next {
        // A first training is installing its centroids: group by them.
        Some(next) => {
            let (batch, error) = MemBatch::build(rows, &next.quantizer, fields)?;
            next.rows += batch.rows() as u64;
            next.error += error;
            let generation = next.generation;
            push_batch(inner, batch, generation);
            generation
        }
        None => {
            let (batch, error) = MemBatch::build(rows, &inner.quantizer, fields)?;
            if inner.manifest.generation > 0 {
                inner.new_rows += batch.rows() as u64;
                inner.new_error += error;
            }
            let generation = inner.manifest.generation;
            push_batch(inner, batch, generation);
            generation
        }
    };
    merge_memtable(inner, generation);
    Ok(())
}

/// Appends a memtable batch grouped by the lists of centroid generation
/// `generation` and points its rows' ids at it.
pub(super) fn push_batch(inner: &mut Inner, batch: MemBatch, generation: u64) {
    let b = inner.mem.len() as u32;
    for r in 0..batch.rows() {
        if let Some(row) = batch.row(r) {
            inner.ids.insert(row.id, Loc::Mem(b, r as u32));
        }
    }
    inner.mem.push(MemEntry {
        deleted: Arc::new(RowSet::new(batch.rows())),
        batch: Arc::new(batch),
        generation,
    });
}

/// The most live rows a memtable merge makes one batch of. A merge copies
/// its rows under the collection lock, so writers wait for it: merging
/// on up to the whole memtable (a million rows while a first training
/// runs) stalled each write for up to half a second. A batch this large
/// already costs a search far more in its rows than in its own overhead
/// (a few lookups per probed list), so larger batches would gain nothing.
const MERGED_ROWS: usize = 1 << 16;

pub(super) fn apply_delete(inner: &mut Inner, ids: &[u64]) {
    for id in ids {
        if let Some(loc) = inner.ids.remove(id) {
            hide(inner, loc);
            inner.pending_deletes.insert(*id);
        }
    }
}

/// Keeps the number of memtable batches logarithmic in its size up to
/// batches of [`MERGED_ROWS`]: while the newest batch holds at least as
/// many live rows as the one before it, and the two hold no more than
/// that together, the two are merged (dropping hidden rows). Each row is
/// copied O(log n) times. Only batches grouped by the same lists,
/// `generation`'s, are merged.
fn merge_memtable(inner: &mut Inner, generation: u64) {
    while inner.mem.len() >= 2 {
        let n = inner.mem.len();
        let (older, newer) = (&inner.mem[n - 2], &inner.mem[n - 1]);
        if older.live() > newer.live()
            || older.live() + newer.live() > MERGED_ROWS
            || older.generation != generation
        {
            break;
        }
        let tail = inner.mem.split_off(n - 2);
        let mut rows = Vec::new();
        for e in &tail {
            for r in 0..e.batch.rows() {
                if !e.deleted.contains(r)
                    && let Some(row) = e.batch.row(r)
                {
                    rows.push((row, row.list));
                }
            }
        }
        let (dim, nlist) = (tail[1].batch.dim(), tail[1].batch.nlist());
        let batch = MemBatch::from_assigned(rows, dim, nlist, &inner.manifest.config.fields);
        drop(tail);
        push_batch(inner, batch, generation);
    }
}
