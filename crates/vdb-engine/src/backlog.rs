//! The backlog of a first training: the memtable batches written before
//! its centroids were known, assigned to their lists a chunk at a time
//! by whichever thread claims the next chunk (`collection/next.rs` runs
//! it).

use std::ops::Range;
use std::sync::Arc;

use vdb_core::ListId;
use vdb_ivf::CoarseQuantizer;

use crate::memtable::MemBatch;

/// Rows of one claim: about what a writer's own batch costs to assign,
/// so a writer that helps waits about twice as long as it would alone.
const CHUNK: usize = 1024;

/// The centroids new memtable batches are grouped by before they are the
/// collection's, and the backlog of batches written before them.
#[derive(Debug)]
pub(crate) struct NextLists {
    /// Their centroid generation.
    pub(crate) generation: u64,
    pub(crate) quantizer: Arc<CoarseQuantizer>,
    /// Rows grouped by them as written and the sum of their distances to
    /// their centroids (the drift rule's counters once installed).
    pub(crate) rows: u64,
    pub(crate) error: f64,
    backlog: Vec<Backlog>,
}

/// A batch written before the centroids were known, being assigned.
#[derive(Debug)]
struct Backlog {
    batch: Arc<MemBatch>,
    /// Each row's list and distance, for the rows `done` counts.
    lists: Vec<(ListId, f32)>,
    /// Rows `0..claimed` are handed out.
    claimed: usize,
    /// Rows whose list is found.
    done: usize,
}

/// Rows of a backlog batch to assign, handed to one thread.
#[derive(Debug)]
pub(crate) struct Claim {
    batch: Arc<MemBatch>,
    quantizer: Arc<CoarseQuantizer>,
    generation: u64,
    rows: Range<usize>,
}

impl NextLists {
    /// Centroids of generation `generation`, with the memtable batches
    /// written before them to assign.
    pub(crate) fn new(
        generation: u64,
        quantizer: Arc<CoarseQuantizer>,
        backlog: impl IntoIterator<Item = Arc<MemBatch>>,
    ) -> NextLists {
        NextLists {
            generation,
            quantizer,
            rows: 0,
            error: 0.0,
            backlog: backlog
                .into_iter()
                .map(|batch| Backlog {
                    lists: vec![(ListId(0), 0.0); batch.rows()],
                    batch,
                    claimed: 0,
                    done: 0,
                })
                .collect(),
        }
    }

    /// Whether rows are left to hand out.
    pub(crate) fn has_work(&self) -> bool {
        self.backlog.iter().any(|b| b.claimed < b.batch.rows())
    }

    /// The next rows to assign, if any are left.
    pub(crate) fn claim(&mut self) -> Option<Claim> {
        let b = self
            .backlog
            .iter_mut()
            .find(|b| b.claimed < b.batch.rows())?;
        let rows = b.claimed..(b.claimed + CHUNK).min(b.batch.rows());
        b.claimed = rows.end;
        Some(Claim {
            batch: Arc::clone(&b.batch),
            quantizer: Arc::clone(&self.quantizer),
            generation: self.generation,
            rows,
        })
    }

    /// Records the lists found for `claim`'s rows; when they were its
    /// batch's last, the batch leaves the backlog and its lists are
    /// returned.
    pub(crate) fn store(
        &mut self,
        claim: &Claim,
        lists: Vec<(ListId, f32)>,
    ) -> Option<Vec<(ListId, f32)>> {
        if claim.generation != self.generation || lists.len() != claim.rows.len() {
            return None;
        }
        let i = self
            .backlog
            .iter()
            .position(|b| Arc::ptr_eq(&b.batch, &claim.batch))?;
        let b = &mut self.backlog[i];
        b.lists.get_mut(claim.rows.clone())?.copy_from_slice(&lists);
        b.done += lists.len();
        (b.done == b.batch.rows()).then(|| self.backlog.swap_remove(i).lists)
    }
}

impl Claim {
    /// The batch the rows are of.
    pub(crate) fn batch(&self) -> &Arc<MemBatch> {
        &self.batch
    }

    /// The centroids to assign them to.
    pub(crate) fn quantizer(&self) -> &CoarseQuantizer {
        &self.quantizer
    }

    /// The rows.
    pub(crate) fn rows(&self) -> Range<usize> {
        self.rows.clone()
    }
}

#[cfg(test)]
mod tests {
    use vdb_core::Metric;

    use super::*;
    use crate::Row;

    fn batch(rows: usize) -> Arc<MemBatch> {
        let untrained = CoarseQuantizer::new(2, Metric::L2, vec![0.0, 0.0]).unwrap();
        let rows = (0..rows)
            .map(|i| Row {
                id: i as u64,
                vector: vec![i as f32, -(i as f32)],
                payload: None,
                fields: Default::default(),
            })
            .collect();
        Arc::new(MemBatch::build(rows, &untrained, &[]).unwrap().0)
    }

    /// Claims cover every row once; a batch is finished only when every
    /// claim on it is stored, and then holds each row's nearest list.
    #[test]
    fn claims_cover_the_backlog_once_and_finish_it() {
        let q =
            Arc::new(CoarseQuantizer::new(2, Metric::L2, vec![0.0, 0.0, 2000.0, -2000.0]).unwrap());
        let (a, b) = (batch(2500), batch(10));
        let mut next = NextLists::new(1, Arc::clone(&q), [Arc::clone(&a), Arc::clone(&b)]);
        let mut claims = Vec::new();
        while let Some(c) = next.claim() {
            claims.push(c);
        }
        assert!(!next.has_work());
        let covered: Vec<(usize, Range<usize>)> = claims
            .iter()
            .map(|c| (c.batch.rows(), c.rows.clone()))
            .collect();
        assert_eq!(
            covered,
            vec![
                (2500, 0..1024),
                (2500, 1024..2048),
                (2500, 2048..2500),
                (10, 0..10)
            ]
        );
        // `a` is finished by its last chunk only, `b` by its one chunk.
        let last = claims.remove(2);
        for c in &claims {
            let lists = c.batch.assign_rows(&q, c.rows.clone()).unwrap();
            let finished = next.store(c, lists);
            if Arc::ptr_eq(&c.batch, &b) {
                assert_eq!(finished, Some(q.assign(b.vectors_of(0..10)).unwrap()));
            } else {
                assert_eq!(finished, None);
            }
        }
        // A claim of another generation is not stored.
        let stale = Claim {
            generation: 7,
            ..last
        };
        let lists = stale.batch.assign_rows(&q, stale.rows.clone()).unwrap();
        assert_eq!(next.store(&stale, lists.clone()), None);
        let last = Claim {
            generation: 1,
            ..stale
        };
        let all = next.store(&last, lists).unwrap();
        assert_eq!(all, q.assign(a.vectors_of(0..2500)).unwrap());
        assert!(next.backlog.is_empty());
    }
}
