//! The write path: validate → append to the log under the collection
//! lock → commit outside it → apply in LSN order (`apply.rs`) → publish a
//! snapshot → acknowledge; and the flush a full memtable asks for.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use vdb_core::Lsn;
use vdb_wal::RecordKind;

use super::apply::{apply_delete, apply_upsert};
use super::maintain::Task;
use super::{Collection, Inner, memtable_bytes, memtable_rows};
use crate::Row;
use crate::backlog::NextLists;
use crate::codec;
use crate::error::{Error, Result};

impl Collection {
    /// Inserts rows, replacing any existing row with the same id (upsert).
    /// Returns the LSN of the write once it is acknowledged (durable as the
    /// collection's sync mode promises, and visible to searches).
    pub fn upsert(&self, mut rows: Vec<Row>) -> Result<Lsn> {
        if rows.is_empty() {
            return Err(Error::invalid("rows", "the batch is empty"));
        }
        let mut seen = HashSet::with_capacity(rows.len());
        let fields = self.fields();
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
            vdb_core::fields::validate_values(&fields, &mut r.fields, || {
                format!("rows[{i}].fields")
            })
            .map_err(Error::invalid_field)?;
            self.config.metric.prepare(&mut r.vector);
        }
        let payload = codec::encode_upsert(&rows);
        let count = rows.len();
        let lsn = self.write(RecordKind::Upsert, &payload, move |inner| {
            apply_upsert(inner, rows)
        })?;
        self.written.upserted(count);
        Ok(lsn)
    }

    /// Deletes rows by id (ids that do not exist are ignored). Returns the
    /// LSN once acknowledged.
    pub fn delete(&self, ids: &[u64]) -> Result<Lsn> {
        if ids.is_empty() {
            return Err(Error::invalid("ids", "the batch is empty"));
        }
        let payload = codec::encode_delete(ids);
        let lsn = self.write(RecordKind::Delete, &payload, |inner| {
            apply_delete(inner, ids);
            Ok(())
        })?;
        self.written.deleted(ids.len());
        Ok(lsn)
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
        let wal = self.log()?;
        let lsn = {
            let inner = self.lock();
            self.check_poisoned(&inner)?;
            wal.append_deferred(&[(kind, payload)])
                .map_err(|e| match e {
                    vdb_wal::Error::TooLarge { len, max } => Error::invalid(
                        "rows",
                        format!("the batch encodes to {len} bytes, more than the {max} one write may hold; split it"),
                    ),
                    other => other.into(),
                })?
        };
        let committed = wal.commit_through(lsn);
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
        let bytes = memtable_bytes(&inner);
        let due = self.flush_due(&inner, bytes);
        let help = inner.next.as_ref().is_some_and(NextLists::has_work);
        self.publish(&inner);
        drop(inner);
        if help {
            // A first training's backlog is assigned by maintenance and
            // the writers together (`next.rs`). The write is done: a
            // failure here leaves the chunk to the install.
            let _ = self.catch_up_once();
        }
        let limit = self.memtable_limit();
        if bytes >= limit {
            // Maintenance is not keeping up: this writer flushes (or waits
            // for the running maintenance), which bounds the memtable's
            // memory to about the limit plus the writes in flight.
            let guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
            let still = memtable_rows(&self.lock()) > 0;
            if still {
                self.maintain(&guard, Task::Flush)?;
            }
        } else if due
            && !self.request_flush()
            && let Ok(guard) = self.maintenance.try_lock()
        {
            self.maintain(&guard, Task::Flush)?;
        }
        Ok(lsn)
    }
}
