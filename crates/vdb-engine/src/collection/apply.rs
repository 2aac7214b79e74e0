//! What applying a write does to the collection's state: an upsert hides
//! each id's previous row and adds a memtable batch grouped by list (batches
//! merged like a binary counter); a delete hides the id and remembers it for
//! the next delete file. Used by the write path, by log replay at open and
//! by maintenance when it regroups the memtable.

use std::sync::Arc;

use vdb_core::RowSet;

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
    let (batch, error) = MemBatch::build(rows, &inner.quantizer, &inner.manifest.config.fields)?;
    if inner.manifest.generation > 0 {
        inner.new_rows += batch.rows() as u64;
        inner.new_error += error;
    }
    push_batch(inner, batch);
    merge_memtable(inner);
    Ok(())
}

/// Appends a memtable batch and points its rows' ids at it.
pub(super) fn push_batch(inner: &mut Inner, batch: MemBatch) {
    let b = inner.mem.len() as u32;
    for r in 0..batch.rows() {
        if let Some(row) = batch.row(r) {
            inner.ids.insert(row.id, Loc::Mem(b, r as u32));
        }
    }
    inner.mem.push(MemEntry {
        deleted: Arc::new(RowSet::new(batch.rows())),
        batch: Arc::new(batch),
    });
}

pub(super) fn apply_delete(inner: &mut Inner, ids: &[u64]) {
    for id in ids {
        if let Some(loc) = inner.ids.remove(id) {
            hide(inner, loc);
            inner.pending_deletes.insert(*id);
        }
    }
}

/// Keeps the number of memtable batches logarithmic in its size: while the
/// newest batch holds at least as many live rows as the one before it, the
/// two are merged (dropping hidden rows). Each row is copied O(log n) times.
fn merge_memtable(inner: &mut Inner) {
    while inner.mem.len() >= 2 {
        let n = inner.mem.len();
        if inner.mem[n - 2].live() > inner.mem[n - 1].live() {
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
        let (dim, nlist) = (inner.quantizer.dim(), inner.quantizer.nlist());
        let batch = MemBatch::from_assigned(rows, dim, nlist, &inner.manifest.config.fields);
        drop(tail);
        push_batch(inner, batch);
    }
}
