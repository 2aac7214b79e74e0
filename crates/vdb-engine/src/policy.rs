//! When to (re)train: a pure function of a collection's numbers, so the
//! decision is unit-tested without any I/O.
//!
//! A collection is first trained once it holds `nlist × min_rows_per_list`
//! rows. After that its centroids go stale in three ways, each with a
//! threshold in [`RetrainPolicy`]:
//!
//! - **growth**: the collection has grown by `growth` × since the last
//!   training (the centroids describe a small, possibly unrepresentative
//!   prefix of the data);
//! - **drift**: rows written since the last training sit, on average,
//!   `error_drift` × farther from their nearest centroid than the training
//!   rows did (new data lives where the centroids are not);
//! - **imbalance**: the lists have become `imbalance` × more uneven than
//!   right after training (faiss's imbalance factor), so queries that land
//!   in big lists scan far more than `nprobe / nlist` of the data.
//!
//! A change of the configured `nlist` also retrains.

/// Thresholds of automatic retraining. A threshold of 0 disables its rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrainPolicy {
    /// Retrain when rows ≥ this × rows at the last training.
    pub growth: f64,
    /// Retrain when the mean quantization error of new rows ≥ this × the
    /// error at training.
    pub error_drift: f64,
    /// Retrain when the list imbalance ≥ this × the imbalance at training.
    pub imbalance: f64,
    /// New rows needed before drift is judged (noise guard).
    pub min_new_rows: u64,
}

impl Default for RetrainPolicy {
    fn default() -> Self {
        RetrainPolicy {
            growth: 1.5,
            error_drift: 1.5,
            // Work per query grows about in proportion to imbalance: 1.2
            // keeps it within ~20 % of what fresh centroids give.
            imbalance: 1.2,
            min_new_rows: 1000,
        }
    }
}

/// When a flush is followed by a compaction (all segments and memtable
/// rewritten into one segment without hidden rows). A threshold of 0
/// disables its rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactionPolicy {
    /// Compact when there are more segments than this (each search scans
    /// every segment's probed lists, so many small segments cost time).
    pub max_segments: usize,
    /// Compact when more than this fraction of the stored segment rows are
    /// hidden (deleted or replaced): they cost disk and scan time.
    pub max_hidden: f64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            max_segments: 8,
            max_hidden: 0.2,
        }
    }
}

impl CompactionPolicy {
    /// Whether `segments` segments storing `stored` rows of which `hidden`
    /// are hidden should be compacted.
    pub fn due(&self, segments: usize, stored: u64, hidden: u64) -> bool {
        (self.max_segments > 0 && segments > self.max_segments)
            || (self.max_hidden > 0.0
                && stored > 0
                && hidden as f64 > self.max_hidden * stored as f64)
    }
}

/// The numbers a decision is made from.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PolicyInput {
    /// Current centroid generation (0 = untrained).
    pub generation: u64,
    /// Visible rows.
    pub rows: u64,
    /// Rows needed for the first training.
    pub train_threshold: u64,
    /// Lists configured.
    pub nlist_config: usize,
    /// Lists of the current generation.
    pub nlist_now: usize,
    /// Rows when the current generation was trained.
    pub trained_rows: u64,
    /// Mean distance of rows to their centroid at training.
    pub trained_error: f64,
    /// List imbalance right after training.
    pub trained_imbalance: f64,
    /// Rows written since training, and their mean distance to their centroid.
    pub new_rows: u64,
    /// Their mean quantization error.
    pub new_error: f64,
    /// Current list imbalance.
    pub imbalance: f64,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing.
    Keep,
    /// Train (or retrain) with this many lists, for this reason.
    Train {
        /// Lists.
        nlist: usize,
        /// Why, for logs and stats.
        reason: String,
    },
}

/// Decides whether the collection should be (re)trained now.
pub fn plan(p: &RetrainPolicy, s: &PolicyInput) -> Plan {
    let train = |reason: String| Plan::Train {
        nlist: s.nlist_config,
        reason,
    };
    if s.rows < s.nlist_config as u64 {
        return Plan::Keep;
    }
    if s.generation == 0 {
        return if s.rows >= s.train_threshold {
            train(format!(
                "first training: {} rows reached the threshold {}",
                s.rows, s.train_threshold
            ))
        } else {
            Plan::Keep
        };
    }
    if s.nlist_now != s.nlist_config {
        return train(format!(
            "nlist changed from {} to {}",
            s.nlist_now, s.nlist_config
        ));
    }
    if p.growth > 0.0 && s.trained_rows > 0 && s.rows as f64 >= p.growth * s.trained_rows as f64 {
        return train(format!(
            "grew from {} to {} rows since training",
            s.trained_rows, s.rows
        ));
    }
    if p.error_drift > 0.0
        && s.new_rows >= p.min_new_rows
        && s.trained_error > 0.0
        && s.new_error >= p.error_drift * s.trained_error
    {
        return train(format!(
            "new rows are {:.2}× farther from their centroids than at training",
            s.new_error / s.trained_error
        ));
    }
    if p.imbalance > 0.0
        && s.trained_imbalance > 0.0
        && s.imbalance >= p.imbalance * s.trained_imbalance
    {
        return train(format!(
            "list imbalance rose from {:.2} to {:.2}",
            s.trained_imbalance, s.imbalance
        ));
    }
    Plan::Keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trained() -> PolicyInput {
        PolicyInput {
            generation: 1,
            rows: 10_000,
            train_threshold: 390,
            nlist_config: 10,
            nlist_now: 10,
            trained_rows: 10_000,
            trained_error: 1.0,
            trained_imbalance: 1.2,
            new_rows: 0,
            new_error: 0.0,
            imbalance: 1.2,
        }
    }

    #[test]
    fn each_rule_fires_alone() {
        let p = RetrainPolicy::default();
        assert_eq!(plan(&p, &trained()), Plan::Keep);
        let untrained = PolicyInput {
            generation: 0,
            rows: 389,
            ..trained()
        };
        assert_eq!(plan(&p, &untrained), Plan::Keep);
        assert!(matches!(
            plan(
                &p,
                &PolicyInput {
                    rows: 390,
                    ..untrained
                }
            ),
            Plan::Train { .. }
        ));
        assert!(matches!(
            plan(
                &p,
                &PolicyInput {
                    nlist_config: 20,
                    ..trained()
                }
            ),
            Plan::Train { nlist: 20, .. }
        ));
        assert!(matches!(
            plan(
                &p,
                &PolicyInput {
                    rows: 15_000,
                    ..trained()
                }
            ),
            Plan::Train { .. }
        ));
        assert_eq!(
            plan(
                &p,
                &PolicyInput {
                    rows: 14_999,
                    ..trained()
                }
            ),
            Plan::Keep
        );
        let drift = PolicyInput {
            new_rows: 1000,
            new_error: 1.5,
            ..trained()
        };
        assert!(
            matches!(plan(&p, &drift), Plan::Train { reason, .. } if reason.contains("farther"))
        );
        assert_eq!(
            plan(
                &p,
                &PolicyInput {
                    new_rows: 999,
                    ..drift
                }
            ),
            Plan::Keep,
            "too few rows to judge"
        );
        assert!(
            matches!(plan(&p, &PolicyInput { imbalance: 1.44, ..trained() }), Plan::Train { reason, .. } if reason.contains("imbalance"))
        );
        assert_eq!(
            plan(
                &p,
                &PolicyInput {
                    imbalance: 1.43,
                    ..trained()
                }
            ),
            Plan::Keep
        );
    }

    #[test]
    fn zero_disables_a_rule_and_tiny_collections_wait() {
        let off = RetrainPolicy {
            growth: 0.0,
            error_drift: 0.0,
            imbalance: 0.0,
            min_new_rows: 0,
        };
        let s = PolicyInput {
            rows: 1_000_000,
            new_rows: 10_000,
            new_error: 9.0,
            imbalance: 9.0,
            ..trained()
        };
        assert_eq!(plan(&off, &s), Plan::Keep);
        assert_eq!(
            plan(
                &RetrainPolicy::default(),
                &PolicyInput {
                    rows: 5,
                    ..trained()
                }
            ),
            Plan::Keep
        );
    }
}

#[cfg(test)]
mod compaction_tests {
    use super::CompactionPolicy;

    #[test]
    fn compaction_is_due_past_either_threshold_unless_disabled() {
        let p = CompactionPolicy::default();
        assert!(!p.due(8, 1000, 200));
        assert!(p.due(9, 1000, 0));
        assert!(p.due(1, 1000, 201));
        assert!(!p.due(0, 0, 0));
        let off = CompactionPolicy {
            max_segments: 0,
            max_hidden: 0.0,
        };
        assert!(!off.due(100, 1000, 999));
    }
}
