//! What a search did: the record explain renders.

use vdb_core::ListId;

/// The values of `values` at the quantiles 0, 0.1, …, 1 (the value of
/// rank `⌊(n − 1)·i/10⌋` for the `i`-th); reorders `values`.
pub(crate) fn deciles(values: &mut [f32]) -> Vec<f32> {
    if values.is_empty() {
        return Vec::new();
    }
    let last = values.len() - 1;
    let mut ranks: Vec<usize> = (0..=10).map(|i| last * i / 10).collect();
    ranks.dedup();
    let mut found = vec![0.0; ranks.len()];
    select_ranks(values, 0, &ranks, &mut found);
    (0..=10)
        .map(|i| found[ranks.partition_point(|&r| r < last * i / 10)])
        .collect()
}

/// The values of the distinct ascending `ranks` (counted from `base`, the
/// rank of `values[0]`) into `found`: the middle rank selected first, then
/// the ranks below it among the values below it and the others above, so
/// eleven ranks cost about four passes over the values rather than eleven
/// (or a sort).
fn select_ranks(values: &mut [f32], base: usize, ranks: &[usize], found: &mut [f32]) {
    if ranks.is_empty() {
        return;
    }
    let mid = ranks.len() / 2;
    let (below, value, above) = values.select_nth_unstable_by(ranks[mid] - base, f32::total_cmp);
    found[mid] = *value;
    let (found_below, found_rest) = found.split_at_mut(mid);
    select_ranks(below, base, &ranks[..mid], found_below);
    select_ranks(
        above,
        ranks[mid] + 1,
        &ranks[mid + 1..],
        &mut found_rest[1..],
    );
}

/// One inverted list opened by the fine search.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbedList {
    /// The list.
    pub list: ListId,
    /// Its rank in the coarse search (0 = nearest centroid).
    pub rank: u32,
    /// Distance from the query to the list's centroid.
    pub centroid_distance: f32,
    /// Rows in the list, over every source searched.
    pub size: u64,
    /// Rows whose distance the fine search computed, or estimated from
    /// their codes in a coded list.
    pub scanned: u64,
    /// Of those, in a coded list: rows whose estimate could not rule them
    /// out, so their exact distance was computed too (0 in a list
    /// without codes).
    pub reranked: u64,
    /// In a coded list with extended codes: rows the 1-bit estimate could
    /// not rule out, estimated again from their extended codes
    /// (`reranked` counts those the second estimate let through).
    pub refined: u64,
    /// Rows skipped because they were deleted or replaced.
    pub deleted_skipped: u64,
    /// Visible rows skipped because they did not pass the search's filter
    /// (their distances are not computed).
    pub filtered_out: u64,
    /// Of those, rows not even tested: the list's summaries show that none
    /// of its rows can pass.
    pub ruled_out: u64,
    /// Rows of this list among the final results.
    pub results: u32,
    /// The smallest distance among the visible rows scanned, if any.
    pub best_distance: Option<f32>,
    /// Distances of the visible rows scanned at the quantiles 0, 0.1, …,
    /// 1 (11 values; empty when no visible row was scanned). In a coded
    /// list, a row not reranked counts with its estimate.
    pub distance_quantiles: Vec<f32>,
}

/// A record of one IVF search: which lists were probed and how much work
/// each stage did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchTrace {
    /// Number of lists (centroids) of the index.
    pub nlist: usize,
    /// Lists to probe (after clamping to `nlist`); a filtered search may
    /// probe more (the probed lists of rank `nprobe` and beyond).
    pub nprobe: usize,
    /// Whether the requested nprobe was larger than nlist and was clamped.
    pub nprobe_clamped: bool,
    /// The probed lists, nearest centroid first.
    pub probed: Vec<ProbedList>,
    /// Every list with its centroid's distance to the query, in coarse
    /// rank order: the probed lists first, in probe order, then the others
    /// nearest first (ties by list number).
    pub coarse: Vec<(ListId, f32)>,
    /// The list each result was found in, in result order.
    pub result_lists: Vec<ListId>,
    /// Distances computed against centroids (equals `nlist`).
    pub coarse_distances: u64,
    /// Exact distances computed against stored vectors.
    pub fine_distances: u64,
    /// Distances estimated from codes (lists with codes).
    pub code_estimates: u64,
    /// With a filter: the rows passing it the search meant to score
    /// before stopping (the rows of the `nprobe` nearest lists, at least
    /// `k`); 0 without one.
    pub filter_target: u64,
    /// With a filter: the rows passing it that were scored.
    pub filter_matched: u64,
    /// With a filter: the visible rows expected to pass it, estimated
    /// from the per-list summaries before any row is tested.
    pub filter_estimate: Option<f64>,
}

impl SearchTrace {
    /// The coarse rank (0 = nearest centroid) of every list, indexed by
    /// list number.
    pub fn ranks(&self) -> Vec<u32> {
        let mut ranks = vec![u32::MAX; self.nlist];
        for (rank, (list, _)) in self.coarse.iter().enumerate() {
            if let Some(r) = ranks.get_mut(list.index()) {
                *r = rank as u32;
            }
        }
        ranks
    }

    /// All distance computations of the search.
    pub fn total_distances(&self) -> u64 {
        self.coarse_distances + self.fine_distances
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The selections give what indexing a sorted copy gives, ties and
        /// repeated ranks (fewer than eleven values) included.
        #[test]
        fn deciles_match_a_sorted_copy(mut values in proptest::collection::vec(-50i32..50, 0..200)) {
            let mut floats: Vec<f32> = values.iter().map(|&v| v as f32 / 4.0).collect();
            values.sort_unstable();
            let want: Vec<f32> = if values.is_empty() {
                Vec::new()
            } else {
                (0..=10).map(|i| values[(values.len() - 1) * i / 10] as f32 / 4.0).collect()
            };
            prop_assert_eq!(deciles(&mut floats), want);
        }
    }
}
