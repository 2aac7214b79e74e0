//! Memtable batches: rows acknowledged since the last flush, grouped by the
//! current generation's lists so they are searched with the same nprobe
//! semantics as segments.
//!
//! A batch is immutable once built; snapshots share it by `Arc`. Rows that
//! a later write replaces or deletes are hidden by the batch's deletion set
//! (copy-on-write in the collection), never by changing the batch.

use std::borrow::Cow;
use std::sync::Arc;

use vdb_core::fields::{Columns, ColumnsBuilder, FieldDef, ListIndex};
use vdb_core::{FieldValues, InvertedLists, ListId};
use vdb_ivf::CoarseQuantizer;

use crate::Row;
use crate::error::Result;

/// A row read in place.
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    /// Its id.
    pub id: u64,
    /// Its vector.
    pub vector: &'a [f32],
    /// Its payload, if any.
    pub payload: Option<&'a [u8]>,
    /// Its list.
    pub list: ListId,
    /// The typed field values of its source.
    pub columns: &'a Columns,
    /// Its row number in its source (in `columns`).
    pub row: usize,
}

impl RowRef<'_> {
    /// Its typed field values, sorted by name.
    pub fn fields(&self) -> FieldValues {
        self.columns.row_values(self.row)
    }

    /// An owned copy of the row.
    pub fn to_row(self) -> Row {
        Row {
            id: self.id,
            vector: self.vector.to_vec(),
            payload: self.payload.map(<[u8]>::to_vec),
            fields: self.fields(),
        }
    }
}

/// A row as [`MemBatch::from_assigned`] takes it: written rows are moved
/// in, rows of other batches (merged or regrouped) copied from in place.
pub struct RowParts<'a> {
    id: u64,
    vector: Cow<'a, [f32]>,
    payload: Option<Cow<'a, [u8]>>,
    fields: FieldValues,
}

impl From<Row> for RowParts<'static> {
    fn from(r: Row) -> Self {
        RowParts {
            id: r.id,
            vector: Cow::Owned(r.vector),
            payload: r.payload.map(Cow::Owned),
            fields: r.fields,
        }
    }
}

impl<'a> From<RowRef<'a>> for RowParts<'a> {
    fn from(r: RowRef<'a>) -> Self {
        RowParts {
            id: r.id,
            vector: Cow::Borrowed(r.vector),
            payload: r.payload.map(Cow::Borrowed),
            fields: r.fields(),
        }
    }
}

/// Rows grouped by list, in memory.
#[derive(Debug)]
pub struct MemBatch {
    dim: usize,
    vectors: Vec<f32>,
    ids: Vec<u64>,
    payloads: Vec<Option<Vec<u8>>>,
    /// The rows' typed field values.
    columns: Arc<Columns>,
    /// Their per-list summaries.
    list_index: ListIndex,
    lists: Vec<ListId>,
    /// `list_starts[l]..list_starts[l + 1]` are list `l`'s rows.
    list_starts: Vec<usize>,
    /// The memory it holds (vectors, ids, lists, payloads; field values
    /// roughly), for the memtable's bound.
    bytes: u64,
}

impl MemBatch {
    /// Groups `rows` (validated and prepared) by their nearest list,
    /// keeping their values of `fields`. Also returns the sum of the rows'
    /// distances to their centroids (0 before training), which retraining
    /// watches.
    pub fn build(
        rows: Vec<Row>,
        quantizer: &CoarseQuantizer,
        fields: &[FieldDef],
    ) -> Result<(MemBatch, f64)> {
        let dim = quantizer.dim();
        let nlist = quantizer.nlist();
        let mut error = 0.0f64;
        let assignment: Vec<ListId> = if nlist == 1 {
            vec![ListId(0); rows.len()]
        } else {
            let flat: Vec<f32> = rows.iter().flat_map(|r| r.vector.iter().copied()).collect();
            quantizer
                .assign(&flat)?
                .into_iter()
                .map(|(l, d)| {
                    error += d as f64;
                    l
                })
                .collect()
        };
        let rows = rows.into_iter().zip(assignment).collect();
        let batch = MemBatch::from_assigned(rows, dim, nlist, fields);
        Ok((batch, error))
    }

    /// The list of every row of the batch (hidden ones too) under
    /// `quantizer`, with the row's distance to that list's centroid.
    /// `changed: None` after a training: every row is assigned again.
    /// `Some(lists)` after a local rebalancing, when `quantizer` differs
    /// from the centroids the batch was grouped by only in `lists`: a row
    /// whose list did not change stays unless a changed list is nearer; a
    /// row whose list changed goes to its nearest list.
    ///
    /// Reads the batch only, so maintenance computes it before it takes
    /// the collection lock; [`MemBatch::regrouped`] then moves the rows.
    pub fn reassign(
        &self,
        quantizer: &CoarseQuantizer,
        changed: Option<&[ListId]>,
    ) -> Result<Vec<(ListId, f32)>> {
        let metric = quantizer.metric();
        let mut out = vec![(ListId(0), 0.0f32); self.rows()];
        if quantizer.nlist() == 1 {
            return Ok(out);
        }
        // Rows assigned among all lists, by position.
        let mut todo = Vec::new();
        for (r, slot) in out.iter_mut().enumerate() {
            let Some(row) = self.row(r) else { continue };
            match changed {
                Some(changed) if !changed.contains(&row.list) => {
                    let mut best = (
                        row.list,
                        metric.distance(row.vector, quantizer.centroid(row.list)),
                    );
                    for &c in changed {
                        let d = metric.distance(row.vector, quantizer.centroid(c));
                        if d < best.1 {
                            best = (c, d);
                        }
                    }
                    *slot = best;
                }
                _ => todo.push(r),
            }
        }
        if !todo.is_empty() {
            let flat: Vec<f32> = todo
                .iter()
                .filter_map(|&r| self.row(r))
                .flat_map(|row| row.vector.iter().copied())
                .collect();
            for (&r, a) in todo.iter().zip(quantizer.assign(&flat)?) {
                out[r] = a;
            }
        }
        Ok(out)
    }

    /// The list of each of rows `rows` (hidden ones too) under
    /// `quantizer`, with the row's distance to that list's centroid; empty
    /// if the batch has no such rows.
    pub fn assign_rows(
        &self,
        quantizer: &CoarseQuantizer,
        rows: std::ops::Range<usize>,
    ) -> Result<Vec<(ListId, f32)>> {
        Ok(quantizer.assign(self.vectors_of(rows))?)
    }

    /// The vectors of rows `rows`, row-major (empty if the batch has no
    /// such rows).
    pub fn vectors_of(&self, rows: std::ops::Range<usize>) -> &[f32] {
        self.vectors
            .get(rows.start * self.dim..rows.end * self.dim)
            .unwrap_or_default()
    }

    /// This batch's visible rows (those not in `deleted`) grouped by
    /// `lists` (one per row, from [`MemBatch::reassign`]), the sum of
    /// their distances to their lists' centroids, and for each row of the
    /// new batch its row in this one. `None` when no row is visible.
    pub fn regrouped(
        &self,
        deleted: &vdb_core::RowSet,
        lists: &[(ListId, f32)],
        nlist: usize,
        fields: &[FieldDef],
    ) -> Option<(MemBatch, f64, Vec<u32>)> {
        let mut error = 0.0f64;
        let mut rows: Vec<(usize, RowRef<'_>, ListId)> = (0..self.rows())
            .filter(|&r| !deleted.contains(r))
            .filter_map(|r| Some((r, self.row(r)?, *lists.get(r)?)))
            .map(|(r, row, (l, d))| {
                error += d as f64;
                (r, row, l)
            })
            .collect();
        if rows.is_empty() {
            return None;
        }
        // In list order here (stable, as `from_assigned` sorts), so the
        // new batch's rows come in the order recorded.
        rows.sort_by_key(|&(_, _, l)| l);
        let from = rows.iter().map(|&(r, _, _)| r as u32).collect();
        let rows = rows.into_iter().map(|(_, row, l)| (row, l)).collect();
        Some((
            MemBatch::from_assigned(rows, self.dim, nlist, fields),
            error,
            from,
        ))
    }

    /// Groups rows whose lists are already known (e.g. when batches are
    /// merged) without assigning them again.
    pub fn from_assigned<'a, R: Into<RowParts<'a>>>(
        rows: Vec<(R, ListId)>,
        dim: usize,
        nlist: usize,
        fields: &[FieldDef],
    ) -> MemBatch {
        let mut list_starts = vec![0usize; nlist + 1];
        for (_, l) in &rows {
            if let Some(c) = list_starts.get_mut(l.index() + 1) {
                *c += 1;
            }
        }
        for i in 0..nlist {
            list_starts[i + 1] += list_starts[i];
        }
        let mut rows = rows;
        rows.sort_by_key(|(_, l)| *l);
        let mut vectors = Vec::with_capacity(rows.len() * dim);
        let mut ids = Vec::with_capacity(rows.len());
        let mut lists = Vec::with_capacity(rows.len());
        let mut payloads = Vec::with_capacity(rows.len());
        let mut columns = ColumnsBuilder::new(fields);
        for (r, l) in rows {
            let r: RowParts<'_> = r.into();
            vectors.extend_from_slice(&r.vector);
            ids.push(r.id);
            payloads.push(r.payload.map(Cow::into_owned));
            columns.push(&r.fields);
            lists.push(l);
        }
        let columns = columns.finish();
        let payload_bytes: usize = payloads
            .iter()
            .map(|p: &Option<Vec<u8>>| p.as_ref().map_or(0, Vec::len))
            .sum();
        let bytes = vectors.len() * 4
            + ids.len() * (8 + 4 + 24)
            + list_starts.len() * 8
            + payload_bytes
            + columns.approx_bytes();
        MemBatch {
            bytes: bytes as u64,
            dim,
            vectors,
            ids,
            payloads,
            list_index: ListIndex::build(&columns, &list_starts),
            columns: Arc::new(columns),
            lists,
            list_starts,
        }
    }

    /// The memory it holds, roughly.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Rows in the batch (including hidden ones).
    pub fn rows(&self) -> usize {
        self.ids.len()
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> Option<RowRef<'_>> {
        Some(RowRef {
            id: *self.ids.get(r)?,
            vector: self.vectors.get(r * self.dim..(r + 1) * self.dim)?,
            payload: self.payloads.get(r)?.as_deref(),
            list: *self.lists.get(r)?,
            columns: &self.columns,
            row: r,
        })
    }

    /// The rows' typed field values.
    pub fn columns(&self) -> &Arc<Columns> {
        &self.columns
    }

    /// Per-list summaries of the field columns.
    pub fn list_index(&self) -> &ListIndex {
        &self.list_index
    }

    /// The rows' ids, in row order.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }
}

impl InvertedLists for MemBatch {
    fn dim(&self) -> usize {
        self.dim
    }

    fn nlist(&self) -> usize {
        self.list_starts.len() - 1
    }

    fn list_len(&self, list: ListId) -> usize {
        let l = list.index();
        match (self.list_starts.get(l), self.list_starts.get(l + 1)) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        }
    }

    fn list_vectors(&self, list: ListId) -> &[f32] {
        let start = self.list_row_start(list);
        let len = self.list_len(list);
        self.vectors
            .get(start * self.dim..(start + len) * self.dim)
            .unwrap_or_default()
    }

    fn list_ids(&self, list: ListId) -> &[u64] {
        let start = self.list_row_start(list);
        self.ids
            .get(start..start + self.list_len(list))
            .unwrap_or_default()
    }

    fn list_row_start(&self, list: ListId) -> usize {
        self.list_starts.get(list.index()).copied().unwrap_or(0)
    }

    fn total_len(&self) -> usize {
        self.ids.len()
    }
}

/// A batch seen as one list of all its rows, in its row order (which its
/// deletion set numbers): how searches in a collection not trained yet
/// (one centroid, every row scanned) see a batch that the centroids its
/// first training is installing group already.
#[derive(Debug, Clone)]
pub struct WholeBatch(pub Arc<MemBatch>);

impl InvertedLists for WholeBatch {
    fn dim(&self) -> usize {
        self.0.dim
    }

    fn nlist(&self) -> usize {
        1
    }

    fn list_len(&self, list: ListId) -> usize {
        if list.index() == 0 { self.0.rows() } else { 0 }
    }

    fn list_vectors(&self, list: ListId) -> &[f32] {
        if list.index() == 0 {
            &self.0.vectors
        } else {
            &[]
        }
    }

    fn list_ids(&self, list: ListId) -> &[u64] {
        if list.index() == 0 { &self.0.ids } else { &[] }
    }

    fn total_len(&self) -> usize {
        self.0.rows()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use vdb_core::{Metric, RowSet};

    use super::*;

    fn quantizer(centroids: &[[f32; 2]]) -> CoarseQuantizer {
        CoarseQuantizer::new(2, Metric::L2, centroids.concat()).unwrap()
    }

    /// The nearest of `candidates` to `v` (ties: the first).
    fn nearest(q: &CoarseQuantizer, v: &[f32], candidates: &[ListId]) -> ListId {
        let d = |l: ListId| Metric::L2.distance(v, q.centroid(l));
        *candidates
            .iter()
            .min_by(|&&a, &&b| d(a).total_cmp(&d(b)))
            .unwrap()
    }

    proptest! {
        /// Reassigning and regrouping keeps exactly the visible rows, each
        /// in the list the rule names: after a training its nearest list;
        /// after a local step its own list or a nearer changed one, or, if
        /// its own list changed, its nearest list.
        #[test]
        fn regrouped_rows_are_the_visible_ones_in_their_new_lists(
            points in prop::collection::vec((-10i8..10, -10i8..10), 1..60),
            hidden in prop::collection::vec(any::<bool>(), 60),
            moved in prop::collection::vec((-10i8..10, -10i8..10), 2),
            local in any::<bool>(),
        ) {
            let old = [[-5.0, -5.0], [5.0, -5.0], [-5.0, 5.0], [5.0, 5.0]];
            let q = quantizer(&old);
            let rows: Vec<Row> = points
                .iter()
                .enumerate()
                .map(|(i, &(x, y))| Row {
                    id: i as u64,
                    vector: vec![x as f32, y as f32],
                    payload: None,
                    fields: Default::default(),
                })
                .collect();
            let (batch, _) = MemBatch::build(rows, &q, &[]).unwrap();
            let mut new = old;
            new[1] = [moved[0].0 as f32, moved[0].1 as f32];
            new[2] = [moved[1].0 as f32, moved[1].1 as f32];
            let nq = quantizer(&new);
            let changed = [ListId(1), ListId(2)];
            let lists = batch.reassign(&nq, local.then_some(&changed[..])).unwrap();
            prop_assert_eq!(lists.len(), batch.rows());
            let mut deleted = RowSet::new(batch.rows());
            for r in (0..batch.rows()).filter(|&r| hidden[r]) {
                deleted.insert(r);
            }
            let visible: Vec<u64> = (0..batch.rows())
                .filter(|&r| !hidden[r])
                .map(|r| batch.ids()[r])
                .collect();
            let Some((regrouped, error, from)) = batch.regrouped(&deleted, &lists, 4, &[]) else {
                prop_assert!(visible.is_empty());
                return Ok(());
            };
            let mut ids = regrouped.ids().to_vec();
            ids.sort_unstable();
            let mut want = visible.clone();
            want.sort_unstable();
            prop_assert_eq!(ids, want);
            let all: Vec<ListId> = (0..4).map(ListId).collect();
            let mut sum = 0.0f64;
            prop_assert_eq!(from.len(), regrouped.rows());
            for (r, &o) in from.iter().enumerate() {
                let row = regrouped.row(r).unwrap();
                let before = batch.row(o as usize).unwrap();
                prop_assert_eq!(before.id, row.id);
                let expected = if local && !changed.contains(&before.list) {
                    nearest(&nq, row.vector, &[before.list, changed[0], changed[1]])
                } else {
                    nearest(&nq, row.vector, &all)
                };
                let d = |l: ListId| Metric::L2.distance(row.vector, nq.centroid(l));
                // Equal distances may pick either list.
                prop_assert_eq!(d(row.list), d(expected), "row {}", row.id);
                // Rows are grouped: the row is inside its list's range.
                let start = regrouped.list_row_start(row.list);
                prop_assert!((start..start + regrouped.list_len(row.list)).contains(&r));
                sum += d(row.list) as f64;
            }
            prop_assert!((error - sum).abs() <= 1e-3 * sum.max(1.0));
        }
    }

    /// Seen whole, a grouped batch is one list holding every row with the
    /// row numbers its lists give them (the numbers deletion sets use).
    #[test]
    fn a_batch_seen_whole_is_one_list_in_row_order() {
        let q = quantizer(&[[-5.0, -5.0], [5.0, 5.0], [5.0, -5.0]]);
        let rows: Vec<Row> = [[4.0, 4.0], [-4.0, -4.0], [4.0, -4.0], [6.0, 6.0]]
            .iter()
            .enumerate()
            .map(|(i, v)| Row {
                id: i as u64,
                vector: v.to_vec(),
                payload: None,
                fields: Default::default(),
            })
            .collect();
        let (batch, _) = MemBatch::build(rows, &q, &[]).unwrap();
        let batch = Arc::new(batch);
        assert_eq!(batch.nlist(), 3);
        let whole = WholeBatch(Arc::clone(&batch));
        assert_eq!(whole.nlist(), 1);
        assert_eq!(whole.total_len(), 4);
        assert_eq!(whole.list_len(ListId(0)), 4);
        assert_eq!(whole.list_len(ListId(1)), 0);
        assert!(whole.list_vectors(ListId(1)).is_empty());
        assert_eq!(whole.list_row_start(ListId(0)), 0);
        for r in 0..4 {
            let row = batch.row(r).unwrap();
            assert_eq!(whole.list_ids(ListId(0))[r], row.id);
            assert_eq!(&whole.list_vectors(ListId(0))[2 * r..2 * r + 2], row.vector);
        }
        // Grouped by list: id 1 (list 0) comes first, then 0 and 3, then 2.
        assert_eq!(whole.list_ids(ListId(0)), &[1, 0, 3, 2]);
    }
}
