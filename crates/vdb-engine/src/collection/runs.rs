//! Counts of what a collection did since it was opened — rows written,
//! and each kind of maintenance task: how often it changed something,
//! found nothing to do or failed, and the time it took — for operators
//! (the server's metrics) to see the load, what maintenance costs and
//! whether it fails.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a collection has written since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteCounts {
    /// Rows written by acknowledged upserts.
    pub rows_upserted: u64,
    /// Ids named by acknowledged deletes (whether they existed or not).
    pub ids_deleted: u64,
    /// Bytes appended to the write-ahead log (with sync `always`, each
    /// is fsynced before its write is acknowledged); 0 on a replica.
    pub log_bytes: u64,
    /// `fsync`s of the log's files (with sync `object`: chunks shipped).
    pub log_syncs: u64,
}

/// The rows and ids of acknowledged writes.
#[derive(Debug, Default)]
pub(super) struct WrittenRows {
    upserted: AtomicU64,
    deleted: AtomicU64,
}

impl WrittenRows {
    pub(super) fn upserted(&self, rows: usize) {
        self.upserted.fetch_add(rows as u64, Ordering::Relaxed);
    }

    pub(super) fn deleted(&self, ids: usize) {
        self.deleted.fetch_add(ids as u64, Ordering::Relaxed);
    }

    /// (rows upserted, ids deleted).
    pub(super) fn get(&self) -> (u64, u64) {
        (
            self.upserted.load(Ordering::Relaxed),
            self.deleted.load(Ordering::Relaxed),
        )
    }
}

/// A kind of maintenance task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaintenanceKind {
    /// The memtable written as a segment.
    Flush,
    /// Every segment with hidden rows rewritten, segments merged.
    Compact,
    /// Some segments merged (the compaction policy after a flush, or
    /// between the steps of a stepped retraining).
    Merge,
    /// New centroids trained and the collection rewritten with them.
    Train,
    /// One step of a retraining in bounded steps.
    Step,
    /// Lists split and dissolved locally.
    Rebalance,
}

impl MaintenanceKind {
    /// Every kind, in a fixed order.
    pub const ALL: [MaintenanceKind; 6] = [
        MaintenanceKind::Flush,
        MaintenanceKind::Compact,
        MaintenanceKind::Merge,
        MaintenanceKind::Train,
        MaintenanceKind::Step,
        MaintenanceKind::Rebalance,
    ];

    /// Its name in lower case (`flush`, `compact`, …).
    pub fn name(self) -> &'static str {
        match self {
            MaintenanceKind::Flush => "flush",
            MaintenanceKind::Compact => "compact",
            MaintenanceKind::Merge => "merge",
            MaintenanceKind::Train => "train",
            MaintenanceKind::Step => "step",
            MaintenanceKind::Rebalance => "rebalance",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One kind's counts since the collection was opened.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MaintenanceRuns {
    /// Runs that wrote something.
    pub changed: u64,
    /// Runs that found nothing to do.
    pub idle: u64,
    /// Runs that failed (the error went to the caller or the log).
    pub failed: u64,
    /// Time spent in runs of every outcome.
    pub seconds: f64,
}

/// The counts of every kind.
#[derive(Debug, Default)]
pub(super) struct RunCounts {
    kinds: Mutex<[MaintenanceRuns; 6]>,
}

impl RunCounts {
    /// Counts one run of `kind` that took `took` and returned `outcome`.
    pub(super) fn record<E>(
        &self,
        kind: MaintenanceKind,
        outcome: &Result<bool, E>,
        took: Duration,
    ) {
        let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        let k = &mut kinds[kind.index()];
        match outcome {
            Ok(true) => k.changed += 1,
            Ok(false) => k.idle += 1,
            Err(_) => k.failed += 1,
        }
        k.seconds += took.as_secs_f64();
    }

    /// Every kind's counts.
    pub(super) fn get(&self) -> Vec<(MaintenanceKind, MaintenanceRuns)> {
        let kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        MaintenanceKind::ALL
            .iter()
            .map(|&k| (k, kinds[k.index()]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_counts_under_its_kind() {
        let r = RunCounts::default();
        r.record::<()>(
            MaintenanceKind::Train,
            &Ok(true),
            Duration::from_millis(250),
        );
        r.record::<()>(MaintenanceKind::Train, &Err(()), Duration::from_millis(250));
        r.record::<()>(MaintenanceKind::Flush, &Ok(false), Duration::ZERO);
        let got = r.get();
        assert_eq!(got.len(), MaintenanceKind::ALL.len());
        let of = |k| got.iter().find(|(x, _)| *x == k).unwrap().1;
        assert_eq!(
            of(MaintenanceKind::Train),
            MaintenanceRuns {
                changed: 1,
                idle: 0,
                failed: 1,
                seconds: 0.5
            }
        );
        assert_eq!(of(MaintenanceKind::Flush).idle, 1);
        assert_eq!(of(MaintenanceKind::Merge), MaintenanceRuns::default());
        let names: Vec<_> = MaintenanceKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(
            names,
            ["flush", "compact", "merge", "train", "step", "rebalance"]
        );
    }
}
