//! The frozen state maintenance works from: shared by flush, compaction,
//! training and rebalancing.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use vdb_core::{InvertedLists, ListId, Lsn, RowSet};
use vdb_format::SegmentReader;
use vdb_ivf::{CoarseQuantizer, Source};

use super::super::Loc;
use super::super::read::segment_row;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::memtable::{MemBatch, RowRef};

/// What maintenance works from: the collection as of the freeze, in
/// immutable pieces that need no lock to read.
#[derive(Debug)]
pub(super) struct Frozen {
    pub(super) segs: Vec<(Arc<SegmentReader>, Arc<RowSet>)>,
    pub(super) mem: Vec<(Arc<MemBatch>, Arc<RowSet>)>,
    pub(super) pending_deletes: Vec<u64>,
    pub(super) lsn: Lsn,
    pub(super) manifest: Manifest,
    pub(super) quantizer: Arc<CoarseQuantizer>,
    /// The highest flush sequence number the task's files used so far
    /// (from `manifest.next_seq` on; several when it writes pieces), so a
    /// failed attempt's numbers are never used again.
    pub(super) last_seq: AtomicU64,
}

/// While maintenance reads segments whole: their vectors read with the
/// kernel's read-around, which a segment with codes is opened without
/// (searches read its vectors at random); the random-read advice comes
/// back when this drops. Only hints: a failure changes no data.
pub(super) struct ReadAround(Vec<Arc<SegmentReader>>);

impl ReadAround {
    pub(super) fn new(frozen: &Frozen) -> ReadAround {
        let coded: Vec<Arc<SegmentReader>> = frozen
            .segs
            .iter()
            .filter(|(s, _)| s.codes_seed().is_some())
            .map(|(s, _)| Arc::clone(s))
            .collect();
        for s in &coded {
            let _ = s.advise_random_vectors(false);
        }
        ReadAround(coded)
    }
}

impl Drop for ReadAround {
    fn drop(&mut self) {
        for s in &self.0 {
            let _ = s.advise_random_vectors(true);
        }
    }
}

impl Frozen {
    /// The row at `loc`: `Seg` numbers `segs`, `Frozen` numbers `mem`.
    pub(super) fn row(&self, loc: Loc) -> Result<RowRef<'_>> {
        let row = match loc {
            Loc::Seg(i, r) => match self.segs.get(i as usize) {
                Some((seg, _)) => segment_row(seg, r as usize)?,
                None => None,
            },
            Loc::Frozen(b, r) => self
                .mem
                .get(b as usize)
                .and_then(|(batch, _)| batch.row(r as usize)),
            Loc::Mem(..) => None,
        };
        row.ok_or_else(|| Error::Internal(format!("no row at {loc:?} in the frozen state")))
    }

    /// The list and vector of the row at `loc`, without its payload (which
    /// a segment cached in part may not hold).
    pub(super) fn list_and_vector(&self, loc: Loc) -> Result<(ListId, &[f32])> {
        let found = match loc {
            Loc::Seg(i, r) => self
                .segs
                .get(i as usize)
                .and_then(|(seg, _)| seg.row(r as usize)),
            Loc::Frozen(b, r) => self
                .mem
                .get(b as usize)
                .and_then(|(batch, _)| batch.row(r as usize))
                .map(|row| (row.list, row.vector)),
            Loc::Mem(..) => None,
        };
        found.ok_or_else(|| Error::Internal(format!("no row at {loc:?} in the frozen state")))
    }

    /// Every segment and frozen batch as a search source, hidden rows
    /// hidden.
    pub(super) fn sources(&self) -> Vec<Source<'_>> {
        self.segs
            .iter()
            .map(|(seg, deleted)| Source {
                lists: seg.as_ref() as &dyn InvertedLists,
                deleted: Some(deleted.as_ref()),
                filter: None,
            })
            .chain(self.mem.iter().map(|(batch, deleted)| Source {
                lists: batch.as_ref() as &dyn InvertedLists,
                deleted: Some(deleted.as_ref()),
                filter: None,
            }))
            .collect()
    }

    /// The visible rows of the segments at positions `chosen` and of the
    /// frozen batches, in storage order.
    pub(super) fn live_rows_of(&self, chosen: &[usize]) -> Vec<Loc> {
        let mut live = Vec::new();
        for &i in chosen {
            if let Some((reader, deleted)) = self.segs.get(i) {
                live.extend(
                    (0..reader.rows())
                        .filter(|&r| !deleted.contains(r))
                        .map(|r| Loc::Seg(i as u32, r as u32)),
                );
            }
        }
        live.extend(self.frozen_live());
        live
    }

    /// The visible rows of the frozen batches.
    pub(super) fn frozen_live(&self) -> Vec<Loc> {
        let mut live = Vec::new();
        for (b, (batch, deleted)) in self.mem.iter().enumerate() {
            live.extend(
                (0..batch.rows())
                    .filter(|&r| !deleted.contains(r))
                    .map(|r| Loc::Frozen(b as u32, r as u32)),
            );
        }
        live
    }

    /// Every visible row, segments first, in storage order.
    pub(super) fn live_rows(&self) -> Vec<Loc> {
        self.live_rows_of(&(0..self.segs.len()).collect::<Vec<_>>())
    }
}
