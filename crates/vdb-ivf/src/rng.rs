//! A small, fixed pseudo-random generator.
//!
//! Training must give the same centroids for the same seed on every machine
//! and every version of vdb's dependencies, so the generator is defined here
//! rather than borrowed from a crate whose streams may change between
//! releases. SplitMix64 (Steele, Lea and Flood, 2014) is tiny and passes
//! BigCrush; it is not for cryptography.

/// SplitMix64 pseudo-random generator.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..n` (`n > 0`), by Lemire's multiply-shift;
    /// the bias is below 2⁻³² for any `n` vdb uses.
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// `count` distinct indices from `0..n`, in random order (a partial
    /// Fisher–Yates shuffle). `count` is capped at `n`.
    pub fn sample_indices(&mut self, n: usize, count: usize) -> Vec<usize> {
        let count = count.min(n);
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..count {
            let j = i + self.below(n - i);
            idx.swap(i, j);
        }
        idx.truncate(count);
        idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_stream_and_distinct_samples() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        assert_eq!(a.next_u64(), b.next_u64());
        // The stream is part of vdb's reproducibility contract.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        let s = a.sample_indices(100, 30);
        let mut sorted = s.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 30);
        assert!(s.iter().all(|&i| i < 100));
        assert_eq!(a.sample_indices(5, 10).len(), 5);
        for _ in 0..1000 {
            assert!(a.below(7) < 7);
            let f = a.next_f32();
            assert!((0.0..1.0).contains(&f));
        }
    }
}
