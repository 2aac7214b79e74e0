//! Selection of the `k` nearest candidates from a stream.
//!
//! [`TopK`] is a bounded binary max-heap over `(distance, id)`: the root is
//! the worst candidate kept so far, so a new candidate costs one comparison
//! when it does not qualify (the common case in a scan) and `O(log k)` when
//! it does. Its storage is allocated once for `k` entries and reused across
//! queries with [`TopK::reset`]; pushing never allocates.
//!
//! Ties are broken by id, so the selection is deterministic whatever the
//! order candidates arrive in.
//!
//! Every candidate carries its [`RowAddr`] — where the row it scored is
//! stored — so whoever reads the results (payloads, vectors) reads the very
//! row that was scored, not whatever the id names by then.

use std::cmp::Ordering;

use crate::ids::VectorId;

/// Where a scored row is stored: the source it came from (a segment, a
/// memtable batch — numbered as the search numbered its sources) and its
/// row within that source (as [`crate::InvertedLists::list_row_start`]
/// numbers rows). The address of tantivy's `DocAddress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct RowAddr {
    /// The source's index among the sources searched.
    pub source: u32,
    /// The row within the source.
    pub row: u32,
}

impl RowAddr {
    /// Row `row` of source `source`.
    pub fn new(source: usize, row: usize) -> RowAddr {
        RowAddr {
            source: source as u32,
            row: row as u32,
        }
    }
}

/// A search result: a row id, its distance to the query (smaller is
/// closer, see [`crate::Metric`]) and where the row is stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    /// The row's id.
    pub id: VectorId,
    /// Its distance to the query.
    pub distance: f32,
    /// Where the scored row is stored.
    pub addr: RowAddr,
}

impl Neighbor {
    /// Total order: by distance, then by id.
    fn cmp_key(&self, other: &Neighbor) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.id.cmp(&other.id))
    }
}

/// Keeps the `k` smallest `(distance, id)` pairs pushed into it.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: Vec<Neighbor>,
}

impl TopK {
    /// An empty selector for `k` results.
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: Vec::with_capacity(k),
        }
    }

    /// Empties the selector and sets a new `k`, keeping its allocation when
    /// it is large enough.
    pub fn reset(&mut self, k: usize) {
        self.k = k;
        self.heap.clear();
        self.heap.reserve(k);
    }

    /// How many results it keeps at most.
    pub fn k(&self) -> usize {
        self.k
    }

    /// How many results it holds now.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The distance a candidate must beat (be smaller than, or equal with a
    /// smaller id) to enter; infinity while fewer than `k` are held.
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::INFINITY
        } else {
            self.heap.first().map_or(f32::INFINITY, |n| n.distance)
        }
    }

    /// Offers a candidate stored at `addr`. Returns whether it was kept.
    #[inline]
    pub fn push(&mut self, id: VectorId, distance: f32, addr: RowAddr) -> bool {
        let cand = Neighbor { id, distance, addr };
        if self.heap.len() < self.k {
            self.heap.push(cand);
            self.sift_up(self.heap.len() - 1);
            return true;
        }
        match self.heap.first() {
            Some(worst) if cand.cmp_key(worst) == Ordering::Less => {
                self.heap[0] = cand;
                self.sift_down(0);
                true
            }
            _ => false,
        }
    }

    /// Offers a block of consecutive rows of one source: `ids[i]` at
    /// `distances[i]`, stored at `first` plus `i` rows.
    #[inline]
    pub fn push_block(&mut self, ids: &[u64], distances: &[f32], first: RowAddr) {
        for (i, (&id, &d)) in ids.iter().zip(distances).enumerate() {
            // A cheap filter first: most candidates of a scan lose here.
            if d <= self.threshold() {
                let addr = RowAddr {
                    source: first.source,
                    row: first.row.wrapping_add(i as u32),
                };
                self.push(VectorId(id), d, addr);
            }
        }
    }

    /// The kept results, nearest first. Leaves the selector empty.
    pub fn drain_sorted(&mut self) -> Vec<Neighbor> {
        let mut out = std::mem::take(&mut self.heap);
        out.sort_by(Neighbor::cmp_key);
        self.heap = Vec::with_capacity(self.k);
        out
    }

    /// The kept results, nearest first.
    pub fn into_sorted(mut self) -> Vec<Neighbor> {
        self.drain_sorted()
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[i].cmp_key(&self.heap[parent]) == Ordering::Greater {
                self.heap.swap(i, parent);
                i = parent;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut largest = i;
            if l < n && self.heap[l].cmp_key(&self.heap[largest]) == Ordering::Greater {
                largest = l;
            }
            if r < n && self.heap[r].cmp_key(&self.heap[largest]) == Ordering::Greater {
                largest = r;
            }
            if largest == i {
                break;
            }
            self.heap.swap(i, largest);
            i = largest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn keeps_the_k_smallest(dists in prop::collection::vec(-1e3f32..1e3, 0..300), k in 0usize..40) {
            let mut top = TopK::new(k);
            let ids: Vec<u64> = (0..dists.len() as u64).collect();
            top.push_block(&ids, &dists, RowAddr::new(3, 100));
            let got = top.into_sorted();
            let mut want: Vec<Neighbor> = dists.iter().enumerate()
                .map(|(i, &d)| Neighbor { id: VectorId(i as u64), distance: d, addr: RowAddr::new(3, 100 + i) }).collect();
            want.sort_by(Neighbor::cmp_key);
            want.truncate(k);
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn ties_break_by_id_in_any_order() {
        let mut a = TopK::new(2);
        let mut b = TopK::new(2);
        for id in [5, 3, 9, 1] {
            a.push(VectorId(id), 1.0, RowAddr::default());
        }
        for id in [1, 9, 3, 5] {
            b.push(VectorId(id), 1.0, RowAddr::default());
        }
        let ids = |v: Vec<Neighbor>| v.iter().map(|n| n.id.0).collect::<Vec<_>>();
        assert_eq!(ids(a.into_sorted()), vec![1, 3]);
        assert_eq!(ids(b.into_sorted()), vec![1, 3]);
    }

    #[test]
    fn reset_reuses_storage_and_threshold_tracks_worst() {
        let mut top = TopK::new(2);
        assert_eq!(top.threshold(), f32::INFINITY);
        top.push(VectorId(1), 3.0, RowAddr::default());
        top.push(VectorId(2), 1.0, RowAddr::default());
        assert_eq!(top.threshold(), 3.0);
        assert!(top.push(VectorId(3), 2.0, RowAddr::default()));
        assert!(!top.push(VectorId(4), 5.0, RowAddr::default()));
        assert_eq!(top.threshold(), 2.0);
        let cap = top.heap.capacity();
        let _ = top.drain_sorted();
        top.reset(2);
        assert!(top.is_empty());
        assert!(top.heap.capacity() >= cap.min(2));
    }
}
