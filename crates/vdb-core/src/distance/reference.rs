//! Scalar reference kernels accumulating in `f64`: the definition every fast
//! kernel is tested against, never used on a hot path.

/// Squared L2 distance over the shorter of the two lengths.
pub fn l2_sq(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = *x as f64 - *y as f64;
            d * d
        })
        .sum()
}

/// Inner product over the shorter of the two lengths.
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}
