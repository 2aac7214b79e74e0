//! The write path: validate → append to the log under the collection
//! lock → commit outside it → apply in LSN order → publish a snapshot →
//! acknowledge; and what applying an upsert or a delete does to the
//! memtable and the id map.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use vdb_core::{Lsn, RowSet};
use vdb_wal::RecordKind;

use super::maintain::Task;
use super::{Collection, Inner, Loc, MemEntry, memtable_rows};
use crate::Row;
use crate::codec;
use crate::error::{Error, Result};
use crate::memtable::MemBatch;

impl Collection {
    /// Inserts rows, replacing any existing row with the same id (upsert).
    /// Returns the LSN of the write once it is acknowledged (durable as the
    /// collection's sync mode promises, and visible to searches).
    pub fn upsert(&self, mut rows: Vec<Row>) -> Result<Lsn> {
        if rows.is_empty() {
            return Err(Error::invalid("rows", "the batch is empty"));
        }
        let mut seen = HashSet::with_capacity(rows.len());
        for (i, r) in rows.iter_mut().enumerate() {
            vdb_core::validate_vector(&r.vector, self.config.dim).map_err(|source| {
                Error::InvalidVector {
                    field: format!("rows[{i}].vector"),
                    source,
                }
            })?;
            if !seen.insert(r.id) {
                return Err(Error::invalid(
                    format!("rows[{i}].id"),
                    format!("id {} appears twice in the batch", r.id),
                ));
            }
            self.config.metric.prepare(&mut r.vector);
        }
        let payload = codec::encode_upsert(&rows);
        self.write(RecordKind::Upsert, &payload, move |inner| {
            apply_upsert(inner, rows)
        })
    }

    /// Deletes rows by id (ids that do not exist are ignored). Returns the
    /// LSN once acknowledged.
    pub fn delete(&self, ids: &[u64]) -> Result<Lsn> {
        if ids.is_empty() {
            return Err(Error::invalid("ids", "the batch is empty"));
        }
        let payload = codec::encode_delete(ids);
        self.write(RecordKind::Delete, &payload, |inner| {
            apply_delete(inner, ids);
            Ok(())
        })
    }

    fn write(
        &self,
        kind: RecordKind,
        payload: &[u8],
        apply: impl FnOnce(&mut Inner) -> Result<()>,
    ) -> Result<Lsn> {
        if self.dropped.load(Ordering::Acquire) {
            return Err(Error::NotFound(self.name.clone()));
        }
        let lsn = {
            let inner = self.lock();
            self.check_poisoned(&inner)?;
            self.wal
                .append_deferred(&[(kind, payload)])
                .map_err(|e| match e {
                    vdb_wal::Error::TooLarge { len, max } => Error::invalid(
                        "rows",
                        format!("the batch encodes to {len} bytes, more than the {max} one write may hold; split it"),
                    ),
                    other => other.into(),
                })?
        };
        let committed = self.wal.commit_through(lsn);
        let mut inner = self.lock();
        while inner.applied.0 + 1 < lsn.0 {
            inner = self
                .applied_cv
                .wait(inner)
                .unwrap_or_else(|p| p.into_inner());
        }
        let result = committed
            .map_err(Error::from)
            .and_then(|()| self.check_poisoned(&inner))
            .and_then(|()| apply(&mut inner));
        inner.applied = lsn;
        let result = result.map_err(|e| self.poison(&mut inner, e));
        self.applied_cv.notify_all();
        result?;
        let rows = memtable_rows(&inner);
        let flush_rows = inner.manifest.config.flush_rows;
        self.publish(&inner);
        drop(inner);
        if rows >= flush_rows.saturating_mul(BACKPRESSURE) {
            // Maintenance is not keeping up: this writer flushes (or waits
            // for the running maintenance), which bounds the memtable.
            let guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
            let due = memtable_rows(&self.lock()) >= flush_rows;
            if due {
                self.maintain(&guard, Task::Flush)?;
            }
        } else if rows >= flush_rows
            && !self.request_flush()
            && let Ok(guard) = self.maintenance.try_lock()
        {
            self.maintain(&guard, Task::Flush)?;
        }
        Ok(lsn)
    }
}

fn hide(inner: &mut Inner, loc: Loc) {
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
    let (batch, error) = MemBatch::build(rows, &inner.quantizer)?;
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
        let mut rows = Vec::new();
        for e in &inner.mem[n - 2..] {
            for r in 0..e.batch.rows() {
                if !e.deleted.contains(r)
                    && let Some(row) = e.batch.row(r)
                {
                    rows.push((row.to_row(), row.list));
                }
            }
        }
        inner.mem.truncate(n - 2);
        let batch = MemBatch::from_assigned(rows, inner.quantizer.dim(), inner.quantizer.nlist());
        push_batch(inner, batch);
    }
}

/// A write that finds the memtable this many times over its flush size
/// flushes it itself instead of leaving it to the background.
const BACKPRESSURE: usize = 4;
