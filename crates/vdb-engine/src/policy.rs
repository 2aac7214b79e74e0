//! When to (re)train: a pure function of a collection's numbers, so the
//! decision is unit-tested without any I/O.
//!
//! A collection is first trained once it holds `nlist × min_rows_per_list`
//! rows. After that its centroids go stale in three ways, each with a
//! threshold in [`RetrainPolicy`]:
//!
//! - **growth**: the collection has grown by `growth` × since the last
//!   training, and that training saw fewer rows than a full k-means
//!   sample (256 a list, as faiss samples): the centroids describe a
//!   small, possibly unrepresentative prefix of the data. Once they were
//!   trained on a full sample, growth alone no longer retrains;
//! - **drift**: rows written since the last training sit, on average,
//!   `error_drift` × farther from their nearest centroid than the training
//!   rows did (new data lives where the centroids are not);
//! - **imbalance**: the lists have become `imbalance` × more uneven than
//!   right after training (faiss's imbalance factor), so queries that land
//!   in big lists scan far more than `nprobe / nlist` of the data.
//!
//! Growth and drift retrain globally: new centroids for every list, every
//! row rewritten. Imbalance is repaired locally ([`next_swap`]): the
//! largest list is split in two and the smallest dissolved into its
//! neighbours, rewriting only the rows that change lists (SPFresh's LIRE,
//! Lance's split and join), until the lists are about as even as right
//! after training. A change of the configured `nlist` or index type also
//! retrains.

use crate::index::IndexType;

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
            // Off: on data that does not drift, centroids trained on the
            // first flush search as well as a fresh build's (synth1m:
            // recall 0.9887 against 0.9865), and retraining 1M rows for
            // growth tripled the load time; data that drifts is caught by
            // the drift and imbalance rules.
            growth: 0.0,
            error_drift: 1.5,
            // Work per query grows about in proportion to imbalance: 1.2
            // keeps it within ~20 % of what fresh centroids give.
            imbalance: 1.2,
            min_new_rows: 1000,
        }
    }
}

/// When a flush is followed by a compaction, and of which segments.
///
/// Size-tiered: a segment's tier is the power of `fanout` its live bytes
/// reach (⌊log_fanout(bytes)⌋), and once a tier holds `fanout` segments
/// they are merged into one, which is at least `fanout` times the tier's
/// floor, so of a higher tier. Each byte is therefore rewritten at most
/// once per tier — log_fanout(largest / smallest segment) times — instead
/// of with the whole collection every few flushes, whatever size the
/// flushes have (by rows, by memory, or asked for). Every threshold of 0
/// disables its rule.
///
/// No merge writes more than a cap: `max_segment_fraction` of the
/// collection's live bytes (but at least a flush's worth, see
/// [`CompactionPolicy::segment_cap`]). Maintenance writes its new
/// segments before it removes the old ones, so the cap bounds the free
/// space a compaction needs; a tier whose segments together pass it
/// merges only as many as fit, and once two segments no longer fit
/// together they stay as they are — a collection is then held in about
/// `1 / max_segment_fraction` segments of similar size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactionPolicy {
    /// Never more than this many segments: past it the smallest are merged
    /// (each search scans every segment's probed lists).
    pub max_segments: usize,
    /// Rewrite a segment once more than this fraction of its rows is
    /// hidden (deleted or replaced): they cost disk and scan time.
    pub max_hidden: f64,
    /// Segments of one size tier merged together (at least 2).
    pub fanout: usize,
    /// No segment written larger than this fraction of the collection's
    /// live bytes (rewrites larger than it are split in pieces), in
    /// (0, 1]; 0: no limit.
    pub max_segment_fraction: f64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            max_segments: 16,
            max_hidden: 0.2,
            fanout: 4,
            // Merges need at most ~15 % of the collection free; with
            // max_segments 16 the two smallest segments always fit
            // together (2 / 17 < 0.15).
            max_segment_fraction: 0.15,
        }
    }
}

/// A segment as the compaction policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentStat {
    /// Rows stored in it.
    pub rows: u64,
    /// Of those, rows hidden (deleted or replaced since).
    pub hidden: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

impl SegmentStat {
    /// The bytes of its rows still visible (in proportion).
    pub fn live_bytes(&self) -> u64 {
        match self.rows {
            0 => 0,
            rows => {
                (self.bytes as u128 * (rows - self.hidden.min(rows)) as u128 / rows as u128) as u64
            }
        }
    }
}

/// Segments to merge into one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    /// Positions in the list given to [`plan_compaction`], ascending.
    pub segments: Vec<usize>,
    /// Why, for logs and stats.
    pub reason: String,
}

impl CompactionPolicy {
    /// The most live bytes one merge writes into one segment, for a
    /// collection of `collection` live bytes: `max_segment_fraction` of
    /// it, but never below `floor` (a flush's worth: smaller segments
    /// would only be merged again); unbounded with a fraction of 0.
    pub fn segment_cap(&self, collection: u64, floor: u64) -> u64 {
        if self.max_segment_fraction <= 0.0 {
            return u64::MAX;
        }
        ((collection as f64 * self.max_segment_fraction) as u64).max(floor)
    }

    /// The tier of a segment of `bytes` live bytes: ⌊log_fanout(bytes)⌋.
    pub fn tier(&self, bytes: u64) -> u32 {
        let fanout = self.fanout.max(2) as u64;
        let mut tier = 0;
        let mut bound = fanout;
        while bytes >= bound {
            tier += 1;
            match bound.checked_mul(fanout) {
                Some(b) => bound = b,
                None => break,
            }
        }
        tier
    }
}

/// Which segments (if any) a compaction should merge now: segments whose
/// hidden rows passed `max_hidden`, else the lowest tier holding `fanout`
/// segments, else — past `max_segments` — the smallest segments; in each
/// case no more of them than fit in `cap` live bytes (see
/// [`CompactionPolicy::segment_cap`]), smallest first.
pub fn plan_compaction(p: &CompactionPolicy, segs: &[SegmentStat], cap: u64) -> Option<Merge> {
    let hidden: Vec<usize> = (0..segs.len())
        .filter(|&i| {
            let s = segs[i];
            p.max_hidden > 0.0 && s.rows > 0 && s.hidden as f64 > p.max_hidden * s.rows as f64
        })
        .collect();
    if !hidden.is_empty() {
        let segments = fill(segs, hidden, cap, usize::MAX, 1);
        return Some(Merge {
            reason: format!(
                "{} segment(s) with more than {} of their rows hidden",
                segments.len(),
                p.max_hidden
            ),
            segments,
        });
    }
    if p.fanout >= 2 {
        let tiers: Vec<u32> = segs.iter().map(|s| p.tier(s.live_bytes())).collect();
        let mut full: Vec<u32> = tiers
            .iter()
            .copied()
            .filter(|&t| tiers.iter().filter(|&&u| u == t).count() >= p.fanout)
            .collect();
        full.sort_unstable();
        full.dedup();
        // The lowest full tier whose smallest segments fit together.
        for t in full {
            let members = (0..segs.len()).filter(|&i| tiers[i] == t).collect();
            let segments = fill(segs, members, cap, p.fanout, 0);
            if segments.len() >= 2 {
                return Some(Merge {
                    reason: format!("{} segments in size tier {t}", segments.len()),
                    segments,
                });
            }
        }
    }
    if p.max_segments > 0 && segs.len() > p.max_segments {
        // Merge the smallest, as many as bring the count to the limit
        // (and fit), at least two.
        let all = (0..segs.len()).collect();
        let segments = fill(segs, all, cap, segs.len() - p.max_segments + 1, 2);
        return Some(Merge {
            reason: format!("{} segments, more than {}", segs.len(), p.max_segments),
            segments,
        });
    }
    None
}

/// What `compact()` merges next: every segment with a hidden row,
/// smallest first, as many as fit in `cap` (at least one), else the
/// smallest segments that fit in `cap` together, if two do. Repeated until
/// it says `None`, no hidden row is left and no two segments fit in one.
pub fn plan_full_compaction(segs: &[SegmentStat], cap: u64) -> Option<Merge> {
    let hidden: Vec<usize> = (0..segs.len()).filter(|&i| segs[i].hidden > 0).collect();
    if !hidden.is_empty() {
        let segments = fill(segs, hidden, cap, usize::MAX, 1);
        return Some(Merge {
            reason: format!("{} segment(s) with hidden rows", segments.len()),
            segments,
        });
    }
    let segments = fill(segs, (0..segs.len()).collect(), cap, usize::MAX, 0);
    (segments.len() >= 2).then(|| Merge {
        reason: format!("{} segments that fit in one", segments.len()),
        segments,
    })
}

/// Of the segments at `candidates`, the smallest by live bytes (ties by
/// position), at most `most` of them, while their sum stays within `cap`
/// — but at least `least`, even past it. Returned ascending by position.
fn fill(
    segs: &[SegmentStat],
    mut candidates: Vec<usize>,
    cap: u64,
    most: usize,
    least: usize,
) -> Vec<usize> {
    candidates.sort_by_key(|&i| (segs[i].live_bytes(), i));
    let mut sum = 0u64;
    let mut taken = Vec::new();
    for i in candidates {
        let bytes = segs[i].live_bytes();
        if taken.len() >= most || (taken.len() >= least && sum.saturating_add(bytes) > cap) {
            break;
        }
        sum = sum.saturating_add(bytes);
        taken.push(i);
    }
    taken.sort_unstable();
    taken
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
    /// Rows a training samples at most (k-means' full sample): trained on
    /// this many, the centroids are not retrained for growth.
    pub full_sample: u64,
    /// The index type configured.
    pub index_type: IndexType,
    /// Segments written for the other index type (with codes when it is
    /// `ivf_flat`, without when it is `ivf_rabitq`).
    pub other_index_segments: usize,
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
    /// Split and dissolve lists locally until their imbalance factor is at
    /// most `until` (see [`next_swap`]).
    Rebalance {
        /// The imbalance to bring the lists down to.
        until: f64,
        /// Why, for logs and stats.
        reason: String,
    },
}

/// The imbalance a local rebalancing stops at: a quarter of the way from
/// the imbalance at training to the one that starts it (so it does not
/// start again after the next few rows), or [`EVEN`] if that is lower: a
/// training on few rows (the first, at 39 rows a list) leaves lists more
/// uneven than the same k-means on all of them would. An imbalance at
/// training of 0 (unknown) counts as 1.
pub fn rebalance_target(p: &RetrainPolicy, trained_imbalance: f64) -> f64 {
    (trained_imbalance.max(1.0) * (1.0 + (p.imbalance - 1.0).max(0.0) / 4.0)).min(EVEN)
}

/// Lists this even (faiss's imbalance factor) are even enough for a
/// rebalancing to stop, whatever the imbalance at training was: k-means
/// on all of a real data set's rows gives about this (1.26 on pypi-minilm
/// at 256 lists).
pub const EVEN: f64 = 1.25;

/// One step of local rebalancing: the rows of list `split` are clustered
/// in two, one half keeping the slot and the other taking the slot of
/// list `dissolve`, whose rows move to their nearest remaining lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swap {
    /// The largest list.
    pub split: usize,
    /// The smallest list.
    pub dissolve: usize,
}

/// The next step of a rebalancing over the live list sizes `sizes`, while
/// their imbalance factor is above `until`: split the largest list, whose
/// queries scan the most, with the slot of the smallest. Lists in
/// `unsplittable` (their rows could not be cut in two) are not split.
/// `None` once the lists are even enough, or when the step would not make
/// them more even (the largest is not more than twice the smallest).
pub fn next_swap(sizes: &[u64], until: f64, unsplittable: &[usize]) -> Option<Swap> {
    if sizes.len() < 2 || vdb_ivf::imbalance_factor(sizes) <= until {
        return None;
    }
    let split = (0..sizes.len())
        .filter(|l| !unsplittable.contains(l))
        .max_by_key(|&l| (sizes[l], std::cmp::Reverse(l)))?;
    let dissolve = (0..sizes.len())
        .filter(|&l| l != split)
        .min_by_key(|&l| (sizes[l], l))?;
    // Halving the largest list (s²/2 less in the sum of squares the
    // imbalance factor measures) gains more than the smallest list's rows
    // cost its neighbours, and a list of a few rows is not split.
    (sizes[split] >= 4 && sizes[split] > 2 * sizes[dissolve]).then_some(Swap { split, dissolve })
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
    if s.other_index_segments > 0 {
        return train(format!(
            "index type is {}, {} segments were written for another",
            s.index_type, s.other_index_segments
        ));
    }
    if p.growth > 0.0
        && s.trained_rows > 0
        && s.trained_rows < s.full_sample
        && s.rows as f64 >= p.growth * s.trained_rows as f64
    {
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
    // From the imbalance at training: k-means leaves some data's lists
    // uneven (2.1 on synth1m), and splitting them all costs more than it
    // saves while the data does not change.
    if p.imbalance > 0.0
        && s.trained_imbalance > 0.0
        && s.imbalance >= p.imbalance * s.trained_imbalance
    {
        return Plan::Rebalance {
            until: rebalance_target(p, s.trained_imbalance),
            reason: format!(
                "list imbalance rose from {:.2} to {:.2}",
                s.trained_imbalance, s.imbalance
            ),
        };
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
            full_sample: 100_000,
            index_type: IndexType::IvfFlat,
            other_index_segments: 0,
        }
    }

    #[test]
    fn each_rule_fires_alone() {
        let p = RetrainPolicy {
            growth: 1.5,
            ..RetrainPolicy::default()
        };
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
                    other_index_segments: 1,
                    ..trained()
                }
            ),
            Plan::Train { nlist: 10, .. }
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
        // Trained on a full k-means sample: growth alone keeps them.
        assert_eq!(
            plan(
                &p,
                &PolicyInput {
                    rows: 1_000_000,
                    full_sample: 10_000,
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
            matches!(plan(&p, &PolicyInput { imbalance: 1.44, ..trained() }), Plan::Rebalance { reason, until } if reason.contains("imbalance") && (until - EVEN).abs() < 1e-9)
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
mod rebalance_tests {
    use super::{Swap, next_swap};

    #[test]
    fn the_largest_list_takes_the_smallest_ones_slot_until_even() {
        assert_eq!(next_swap(&[], 1.0, &[]), None);
        assert_eq!(next_swap(&[100], 1.0, &[]), None);
        assert_eq!(
            next_swap(&[10, 50, 5, 200, 5], 1.0, &[]),
            Some(Swap {
                split: 3,
                dissolve: 2
            })
        );
        // The largest cannot be split: the next largest is.
        assert_eq!(
            next_swap(&[10, 50, 5, 200, 5], 1.0, &[3]),
            Some(Swap {
                split: 1,
                dissolve: 2
            })
        );
        // Even enough already (imbalance 1.0 for equal sizes).
        assert_eq!(next_swap(&[10, 10, 10], 1.0, &[]), None);
        assert_eq!(next_swap(&[10, 30, 10], 2.0, &[]), None);
        // Not worth it: the largest is not twice the smallest.
        assert_eq!(next_swap(&[10, 19, 10], 1.0, &[]), None);
        assert_eq!(
            next_swap(&[3, 0, 0], 1.0, &[]),
            None,
            "too few rows to split"
        );
        // Repeating the step with the sizes it leaves ends.
        let mut sizes: Vec<u64> = (0..64).map(|i| 10 + i * i).collect();
        let before = vdb_ivf::imbalance_factor(&sizes);
        let mut steps = 0;
        while let Some(s) = next_swap(&sizes, 1.1, &[]) {
            let half = sizes[s.split] / 2;
            let moved = sizes[s.dissolve];
            sizes[s.split] -= half;
            sizes[s.dissolve] = half;
            let neighbour = (s.split + 1) % sizes.len();
            sizes[neighbour] += moved;
            steps += 1;
            assert!(steps < 1000);
        }
        let after = vdb_ivf::imbalance_factor(&sizes);
        assert!(
            steps > 0 && after < before,
            "{before} -> {after} in {steps} steps"
        );
    }
}

#[cfg(test)]
mod compaction_tests {
    use super::{CompactionPolicy, Merge, SegmentStat, plan_compaction, plan_full_compaction};

    const NO_CAP: u64 = u64::MAX;

    fn segs(sizes: &[u64]) -> Vec<SegmentStat> {
        sizes
            .iter()
            .map(|&bytes| SegmentStat {
                rows: 100,
                hidden: 0,
                bytes,
            })
            .collect()
    }

    fn merged(m: Option<Merge>) -> Option<Vec<usize>> {
        m.map(|m| m.segments)
    }

    #[test]
    fn tiers_are_powers_of_the_fanout() {
        let p = CompactionPolicy::default();
        assert_eq!(p.tier(0), 0);
        assert_eq!(p.tier(3), 0);
        assert_eq!(p.tier(4), 1);
        assert_eq!(p.tier(15), 1);
        assert_eq!(p.tier(16), 2);
        assert_eq!(p.tier(1 << 20), 10);
        assert_eq!(p.tier(u64::MAX), 31);
        let s = SegmentStat {
            rows: 4,
            hidden: 1,
            bytes: 400,
        };
        assert_eq!(s.live_bytes(), 300);
    }

    #[test]
    fn a_tier_with_fanout_segments_is_merged_lowest_first() {
        let p = CompactionPolicy::default();
        let plan = |sizes: &[u64]| merged(plan_compaction(&p, &segs(sizes), NO_CAP));
        assert_eq!(plan(&[]), None);
        // 100..=255 bytes are tier 3, 256..=1023 tier 4.
        assert_eq!(plan(&[100, 100, 100, 10]), None);
        assert_eq!(plan(&[100, 200, 255, 100, 10]), Some(vec![0, 1, 2, 3]));
        // Tier 4 full as well: the lower tier first.
        assert_eq!(
            plan(&[400, 500, 600, 700, 100, 100, 100, 100]),
            Some(vec![4, 5, 6, 7])
        );
        assert_eq!(plan(&[400, 500, 600, 700, 100]), Some(vec![0, 1, 2, 3]));
    }

    /// A long ingest of flushes of any sizes: few segments, each byte
    /// rewritten at most once per tier.
    #[test]
    fn a_long_ingest_rewrites_each_byte_once_per_tier() {
        let p = CompactionPolicy::default();
        for flush in [|_: u64| 1_000u64, |i: u64| 1_000 + (i * 7919) % 30_000] {
            let mut sizes: Vec<u64> = Vec::new();
            let (mut flushed, mut rewritten) = (0u64, 0u64);
            for i in 0..2_000 {
                sizes.push(flush(i));
                flushed += flush(i);
                while let Some(ix) = merged(plan_compaction(&p, &segs(&sizes), NO_CAP)) {
                    let merged: u64 = ix.iter().map(|&i| sizes[i]).sum();
                    rewritten += merged;
                    for &i in ix.iter().rev() {
                        sizes.remove(i);
                    }
                    sizes.push(merged);
                }
                // At most fanout - 1 segments per tier.
                assert!(sizes.len() <= 3 * 16, "{sizes:?}");
            }
            let tiers = f64::from(p.tier(flushed) - p.tier(1_000) + 1);
            let amplification = rewritten as f64 / flushed as f64;
            assert!(amplification <= tiers, "{amplification} > {tiers}");
        }
    }

    #[test]
    fn hidden_rows_and_too_many_segments_force_a_merge() {
        let p = CompactionPolicy::default();
        let mut s = segs(&[10_000, 50, 100_000]);
        s[2].hidden = 21;
        let m = plan_compaction(&p, &s, NO_CAP).unwrap();
        assert_eq!(m.segments, vec![2]);
        assert!(m.reason.contains("hidden"), "{}", m.reason);
        s[2].hidden = 20;
        assert_eq!(plan_compaction(&p, &s, NO_CAP), None);
        // No tier full, but more segments than allowed: the smallest go.
        let tight = CompactionPolicy {
            max_segments: 3,
            ..p
        };
        let sizes = [100_000, 90, 5_000, 10, 20];
        let m = plan_compaction(&tight, &segs(&sizes), NO_CAP).unwrap();
        assert_eq!(m.segments, vec![1, 3, 4]);
        let off = CompactionPolicy {
            max_segments: 0,
            max_hidden: 0.0,
            fanout: 0,
            max_segment_fraction: 0.0,
        };
        let mut s = segs(&[100; 40]);
        s[0].hidden = 99;
        assert_eq!(plan_compaction(&off, &s, NO_CAP), None);
    }

    #[test]
    fn the_cap_bounds_every_merge() {
        let p = CompactionPolicy::default();
        assert_eq!(p.segment_cap(1_000, 0), 150);
        assert_eq!(p.segment_cap(1_000, 400), 400);
        let off = CompactionPolicy {
            max_segment_fraction: 0.0,
            ..p
        };
        assert_eq!(off.segment_cap(1_000, 400), NO_CAP);
        // A full tier merges the smallest that fit, at least two, or none.
        let plan = |sizes: &[u64], cap| merged(plan_compaction(&p, &segs(sizes), cap));
        assert_eq!(plan(&[100, 200, 255, 100, 10], 400), Some(vec![0, 1, 3]));
        assert_eq!(plan(&[100, 200, 255, 100, 10], 399), Some(vec![0, 3]));
        assert_eq!(plan(&[100, 200, 255, 100, 10], 199), None);
        // Hidden rows: the smallest such segments that fit, at least one.
        let mut s = segs(&[500, 300, 400, 10]);
        for x in &mut s[..3] {
            x.hidden = 50;
        }
        // Live bytes 250, 150, 200.
        assert_eq!(merged(plan_compaction(&p, &s, 360)), Some(vec![1, 2]));
        assert_eq!(merged(plan_compaction(&p, &s, 100)), Some(vec![1]));
        // Past max_segments: at least the two smallest, even over the cap.
        let tight = CompactionPolicy {
            max_segments: 3,
            ..p
        };
        let m = plan_compaction(&tight, &segs(&[100_000, 90, 5_000, 10, 20]), 25);
        assert_eq!(merged(m), Some(vec![3, 4]));
    }

    #[test]
    fn a_full_compaction_purges_then_packs_within_the_cap() {
        let plan = |s: &[SegmentStat], cap| merged(plan_full_compaction(s, cap));
        let mut s = segs(&[100, 100, 100, 100]);
        assert_eq!(plan(&s, 250), Some(vec![0, 1]));
        assert_eq!(plan(&s, NO_CAP), Some(vec![0, 1, 2, 3]));
        assert_eq!(plan(&s, 199), None);
        s[2].hidden = 1;
        s[3].hidden = 100;
        assert_eq!(plan(&s, 50), Some(vec![3]), "all hidden: 0 bytes live");
        assert_eq!(plan(&s, 199), Some(vec![2, 3]));
        // Packing until no two fit: every byte at most once per halving.
        let mut sizes = vec![10u64; 64];
        let mut steps = 0;
        while let Some(ix) = plan(&segs(&sizes), 100) {
            let merged: u64 = ix.iter().map(|&i| sizes[i]).sum();
            assert!(merged <= 100, "{ix:?} of {sizes:?}");
            for &i in ix.iter().rev() {
                sizes.remove(i);
            }
            sizes.push(merged);
            steps += 1;
            assert!(steps < 100);
        }
        sizes.sort_unstable();
        assert!(sizes[0] + sizes[1] > 100, "{sizes:?}");
        assert_eq!(sizes.iter().sum::<u64>(), 640);
    }
}
