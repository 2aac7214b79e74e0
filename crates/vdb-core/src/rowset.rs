//! A fixed-size set of row numbers, as a bitmap: which rows of a segment or
//! memtable batch are no longer visible.

/// A set of row numbers below a fixed capacity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowSet {
    words: Vec<u64>,
    len: usize,
    count: usize,
}

impl RowSet {
    /// An empty set for rows `0..capacity`.
    pub fn new(capacity: usize) -> RowSet {
        RowSet {
            words: vec![0; capacity.div_ceil(64)],
            len: capacity,
            count: 0,
        }
    }

    /// Rows it can hold.
    pub fn capacity(&self) -> usize {
        self.len
    }

    /// Rows in the set.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether no row is in the set.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether `row` is in the set (rows past the capacity are not).
    #[inline]
    pub fn contains(&self, row: usize) -> bool {
        self.words
            .get(row / 64)
            .is_some_and(|w| w & (1 << (row % 64)) != 0)
    }

    /// Adds `row`; returns whether it was new. Rows past the capacity are
    /// ignored (and reported as not new).
    pub fn insert(&mut self, row: usize) -> bool {
        if row >= self.len {
            return false;
        }
        let Some(w) = self.words.get_mut(row / 64) else {
            return false;
        };
        let bit = 1 << (row % 64);
        let new = *w & bit == 0;
        *w |= bit;
        self.count += usize::from(new);
        new
    }

    /// How many of the rows `range` are in the set, a word at a time (rows
    /// past the capacity are not).
    pub fn count_in(&self, range: std::ops::Range<usize>) -> usize {
        let (start, end) = (range.start, range.end.min(self.len));
        if start >= end {
            return 0;
        }
        let (first, last) = (start / 64, (end - 1) / 64);
        let mut n = 0;
        for (i, &w) in self.words[first..=last].iter().enumerate() {
            let mut w = w;
            if i == 0 {
                w &= u64::MAX << (start % 64);
            }
            if first + i == last && end % 64 != 0 {
                w &= u64::MAX >> (64 - end % 64);
            }
            n += w.count_ones() as usize;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_contains_count() {
        let mut s = RowSet::new(130);
        assert!(s.is_empty());
        assert!(s.insert(0) && s.insert(64) && s.insert(129));
        assert!(!s.insert(64));
        assert!(!s.insert(130), "past capacity");
        assert_eq!(s.count(), 3);
        assert!(s.contains(129) && !s.contains(128) && !s.contains(1000));
    }

    proptest::proptest! {
        #[test]
        fn count_in_counts_what_contains_says(
            cap in 0usize..300,
            rows in proptest::collection::vec(0usize..320, 0..120),
            a in 0usize..330,
            b in 0usize..330,
        ) {
            let mut s = RowSet::new(cap);
            for r in rows {
                s.insert(r);
            }
            let (a, b) = (a.min(b), a.max(b));
            proptest::prop_assert_eq!(s.count_in(a..b), (a..b).filter(|&r| s.contains(r)).count());
            proptest::prop_assert_eq!(s.count_in(0..cap), s.count());
        }
    }
}
