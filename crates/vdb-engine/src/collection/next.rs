//! The centroids a first training is installing, from when k-means has
//! found them until the install publishes them.
//!
//! Before its first training a collection groups nothing: every memtable
//! row is searched whole. A load from empty writes fast meanwhile, and
//! every row written while k-means runs must be assigned to a list
//! afterwards — on one maintenance thread, after the writers are done,
//! it was most of the gap to loading a trained collection. So once the
//! centroids are known:
//!
//! - new writes are grouped by them as they are written (searches still
//!   see those batches whole until the install, see `searched_as`);
//! - the batches written before them (the *backlog*) are assigned a
//!   chunk at a time, by maintenance and by every writer (one chunk after
//!   each write), so both cores work it off; a batch whose rows all have
//!   their list is regrouped (outside the lock) and takes its old
//!   version's place, which searches cannot tell apart (they see both
//!   whole);
//! - the install finds the memtable grouped already, but for a chunk
//!   still with a writer, whose batch it regroups itself.

use std::sync::Arc;

use vdb_core::RowSet;

use super::{Collection, Inner, Loc, MemEntry};
use crate::backlog::NextLists;
use crate::error::Result;
use crate::memtable::MemBatch;

/// Puts `regrouped` (the visible rows of `old`, as `deleted` left them,
/// grouped by `next`'s lists; `from`: each new row's row in `old`) in
/// the place of `old` in the memtable, if it is still there: rows hidden
/// since are hidden in the new batch, the others' ids point at it.
fn replace(inner: &mut Inner, old: &Arc<MemBatch>, regrouped: MemBatch, error: f64, from: &[u32]) {
    let Some(generation) = inner.next.as_ref().map(|n| n.generation) else {
        return;
    };
    let Some(b) = inner.mem.iter().position(|e| Arc::ptr_eq(&e.batch, old)) else {
        return;
    };
    let hidden = Arc::clone(&inner.mem[b].deleted);
    let mut deleted = RowSet::new(regrouped.rows());
    for (r, &o) in from.iter().enumerate() {
        let Some(row) = regrouped.row(r) else {
            continue;
        };
        let at = Loc::Mem(b as u32, o);
        if !hidden.contains(o as usize) && inner.ids.get(&row.id) == Some(&at) {
            inner.ids.insert(row.id, Loc::Mem(b as u32, r as u32));
        } else {
            deleted.insert(r);
        }
    }
    if let Some(next) = inner.next.as_mut() {
        next.rows += regrouped.rows() as u64;
        next.error += error;
    }
    inner.mem[b] = MemEntry {
        batch: Arc::new(regrouped),
        deleted: Arc::new(deleted),
        generation,
    };
}

impl Collection {
    /// Assigns one chunk of a first training's backlog, if one is left,
    /// and regroups its batch if that was the batch's last; `false` when
    /// none is left.
    pub(super) fn catch_up_once(&self) -> Result<bool> {
        let claim = match self.lock().next.as_mut().and_then(NextLists::claim) {
            Some(claim) => claim,
            None => return Ok(false),
        };
        let lists = claim.batch().assign_rows(claim.quantizer(), claim.rows())?;
        let (lists, deleted, fields) = {
            let mut inner = self.lock();
            let Some(lists) = inner.next.as_mut().and_then(|n| n.store(&claim, lists)) else {
                return Ok(true);
            };
            let Some(e) = inner
                .mem
                .iter()
                .find(|e| Arc::ptr_eq(&e.batch, claim.batch()))
            else {
                return Ok(true);
            };
            (
                lists,
                Arc::clone(&e.deleted),
                inner.manifest.config.fields.clone(),
            )
        };
        let nlist = claim.quantizer().nlist();
        if let Some((regrouped, error, from)) =
            claim.batch().regrouped(&deleted, &lists, nlist, &fields)
        {
            replace(&mut self.lock(), claim.batch(), regrouped, error, &from);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ops::Range;

    use vdb_core::{InvertedLists, Metric};
    use vdb_ivf::CoarseQuantizer;

    use super::*;
    use crate::{CollectionConfig, Engine, Row, SearchOptions};

    fn row(id: u64, x: f32) -> Row {
        Row {
            id,
            vector: vec![x, (id % 5) as f32],
            payload: None,
            fields: Default::default(),
        }
    }

    /// An untrained collection of 2-d rows, 3 lists, with a first
    /// training far away: the tests announce the centroids themselves.
    /// (The collection first: it goes before its engine and directory.)
    fn untrained() -> (Arc<Collection>, Engine, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let config = CollectionConfig {
            nlist: 3,
            min_rows_per_list: 100_000,
            flush_rows: 1_000_000,
            ..CollectionConfig::new(2)
        };
        let c = engine.create_collection("c", config).unwrap();
        (c, engine, dir)
    }

    /// Writes rows `ids` to `c` and to `model`.
    fn write(c: &Collection, model: &mut HashMap<u64, Vec<f32>>, ids: Range<u64>) {
        let rows: Vec<Row> = ids.map(|id| row(id, (id % 30) as f32)).collect();
        for r in &rows {
            model.insert(r.id, r.vector.clone());
        }
        c.upsert(rows).unwrap();
    }

    /// Announces centroids at x = 0, 15 and 29 as a first training's
    /// (generation 1), with every memtable batch as their backlog.
    fn announce(c: &Collection) -> Arc<CoarseQuantizer> {
        let q = CoarseQuantizer::new(2, Metric::L2, vec![0.0, 2.0, 15.0, 2.0, 29.0, 2.0]);
        let q = Arc::new(q.unwrap());
        let mut inner = c.lock();
        let backlog: Vec<_> = inner.mem.iter().map(|e| Arc::clone(&e.batch)).collect();
        inner.next = Some(NextLists::new(1, Arc::clone(&q), backlog));
        q
    }

    /// Exact search, and a search at nprobe 1 (what an untrained
    /// collection does), return every live row, each once, with its
    /// latest vector's distance.
    fn check_searches(c: &Collection, model: &HashMap<u64, Vec<f32>>) {
        let query = vec![3.0, 1.0];
        let mut want: Vec<(u64, f32)> = model
            .iter()
            .map(|(&id, v)| (id, Metric::L2.distance(&query, v)))
            .collect();
        want.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        for nprobe in [usize::MAX, 1] {
            let opts = SearchOptions {
                k: model.len() + 10,
                nprobe: Some(nprobe),
                ..Default::default()
            };
            let mut got: Vec<(u64, f32)> = c
                .search(std::slice::from_ref(&query), opts)
                .unwrap()
                .remove(0)
                .into_iter()
                .map(|h| (h.id, h.distance))
                .collect();
            got.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            assert_eq!(got, want, "nprobe {nprobe}");
        }
    }

    /// While a first training's centroids are being installed, new rows
    /// are grouped by them, the backlog is regrouped in place (rows
    /// replaced or deleted meanwhile stay hidden), and searches see every
    /// live row once throughout; afterwards every memtable row is in its
    /// nearest list of the new centroids.
    #[test]
    fn the_backlog_is_regrouped_in_place_and_searches_see_every_row() {
        let (c, _engine, _dir) = untrained();
        let mut model = HashMap::new();
        for start in (0..3000u64).step_by(250) {
            write(&c, &mut model, start..start + 250);
        }
        assert!(c.lock().mem.len() > 1);
        let q = announce(&c);
        // A batch regrouped from a state its rows then left: one deleted,
        // one replaced between the regrouping and the replacement.
        // (The last backlog batch: the writes' help claims the first's.)
        let (at, old, deleted) = {
            let inner = c.lock();
            let at = inner.mem.iter().rposition(|e| e.generation == 0).unwrap();
            let e = &inner.mem[at];
            (at, Arc::clone(&e.batch), Arc::clone(&e.deleted))
        };
        let lists = old.assign_rows(&q, 0..old.rows()).unwrap();
        let (regrouped, error, from) = old.regrouped(&deleted, &lists, 3, &[]).unwrap();
        let (gone, replaced) = (old.ids()[5], old.ids()[9]);
        c.delete(&[gone]).unwrap();
        model.remove(&gone);
        c.upsert(vec![row(replaced, 50.0)]).unwrap();
        model.insert(replaced, row(replaced, 50.0).vector);
        replace(&mut c.lock(), &old, regrouped, error, &from);
        assert_eq!(c.lock().mem[at].generation, 1, "the batch was replaced");
        check_searches(&c, &model);
        // Each write helps with one chunk; writes replace and delete
        // backlog rows, before and after their chunks are assigned.
        for round in 0..4u64 {
            let rows: Vec<Row> = (0..40)
                .map(|i| row(round * 700 + i * 3, 100.0 + i as f32))
                .chain((0..20).map(|i| row(10_000 + round * 20 + i, i as f32)))
                .collect();
            for r in &rows {
                model.insert(r.id, r.vector.clone());
            }
            c.upsert(rows).unwrap();
            let gone: Vec<u64> = (0..30).map(|i| round * 700 + 1 + i * 7).collect();
            for id in &gone {
                model.remove(id);
            }
            c.delete(&gone).unwrap();
            check_searches(&c, &model);
        }
        while c.catch_up_once().unwrap() {
            check_searches(&c, &model);
        }
        let inner = c.lock();
        assert!(inner.next.as_ref().is_some_and(|n| !n.has_work()));
        let mut seen = 0;
        for (b, e) in inner.mem.iter().enumerate() {
            assert_eq!(e.generation, 1, "every batch is grouped by the new lists");
            for r in (0..e.batch.rows()).filter(|&r| !e.deleted.contains(r)) {
                let row = e.batch.row(r).unwrap();
                assert_eq!(
                    row.list,
                    q.assign(row.vector).unwrap()[0].0,
                    "row {}",
                    row.id
                );
                assert_eq!(Some(&row.vector.to_vec()), model.get(&row.id));
                let at = Loc::Mem(b as u32, r as u32);
                assert_eq!(inner.ids.get(&row.id), Some(&at));
                seen += 1;
            }
        }
        assert_eq!(seen, model.len());
        drop(inner);
        for (&id, v) in &model {
            assert_eq!(&c.get(id).unwrap().unwrap().vector, v, "id {id}");
        }
        check_searches(&c, &model);
    }

    /// A first training that fails after its centroids were announced
    /// leaves the memtable as an untrained collection's: every batch in
    /// one list, every live row found once.
    #[test]
    fn an_abandoned_training_leaves_every_batch_in_one_list() {
        let (c, _engine, _dir) = untrained();
        let mut model = HashMap::new();
        write(&c, &mut model, 0..2000);
        write(&c, &mut model, 2000..2500);
        announce(&c);
        // Grouped by the new lists: a written batch, and the first backlog
        // batch regrouped by the writes' help.
        write(&c, &mut model, 5000..5300);
        c.delete(&[3, 2001, 5001]).unwrap();
        for id in [3, 2001, 5001] {
            model.remove(&id);
        }
        assert!(c.lock().mem.iter().filter(|e| e.generation == 1).count() >= 2);
        super::super::maintain::abandon_next(&mut c.lock());
        {
            let inner = c.lock();
            assert!(inner.next.is_none());
            for e in &inner.mem {
                assert_eq!((e.generation, e.batch.nlist()), (0, 1));
            }
        }
        check_searches(&c, &model);
        for (&id, v) in &model {
            assert_eq!(&c.get(id).unwrap().unwrap().vector, v, "id {id}");
        }
        // And writes go on as before any training.
        write(&c, &mut model, 6000..6100);
        check_searches(&c, &model);
    }
}
