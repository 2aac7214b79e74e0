//! Distance metrics and the convention that every score is "smaller is
//! closer".

use std::fmt;
use std::str::FromStr;

use crate::distance;
use crate::error::Error;

/// How closeness between two vectors is measured.
///
/// Every metric is reported as a *distance* where smaller means closer, so
/// top-k selection is the same for all of them:
///
/// | metric | distance |
/// |---|---|
/// | `L2` | squared Euclidean distance `Σ (aᵢ − bᵢ)²` |
/// | `InnerProduct` | `−(a · b)` |
/// | `Cosine` | `1 − (a · b)` on vectors normalised to unit length when written (and queries when searched) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Squared Euclidean distance.
    L2,
    /// Negated inner product.
    InnerProduct,
    /// One minus cosine similarity; vectors are normalised on write.
    Cosine,
}

impl Metric {
    /// The metric's code in file headers.
    pub fn code(self) -> u8 {
        match self {
            Metric::L2 => 0,
            Metric::InnerProduct => 1,
            Metric::Cosine => 2,
        }
    }

    /// The metric with header code `code`, if any.
    pub fn from_code(code: u8) -> Option<Metric> {
        match code {
            0 => Some(Metric::L2),
            1 => Some(Metric::InnerProduct),
            2 => Some(Metric::Cosine),
            _ => None,
        }
    }

    /// Short lowercase name, as accepted by [`Metric::from_str`].
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::InnerProduct => "ip",
            Metric::Cosine => "cosine",
        }
    }

    /// Whether vectors are normalised to unit length before storing and
    /// searching.
    pub fn normalizes(self) -> bool {
        matches!(self, Metric::Cosine)
    }

    /// Distance between `a` and `b` (both already prepared with
    /// [`Metric::prepare`]).
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::L2 => distance::l2_sq(a, b),
            Metric::InnerProduct => -distance::dot(a, b),
            // Rounding can push a·b of unit vectors just above 1.
            Metric::Cosine => (1.0 - distance::dot(a, b)).max(0.0),
        }
    }

    /// Distances from `query` to each of the row-major `vectors` (each
    /// `query.len()` long), written to `out`.
    #[inline]
    pub fn distances(self, query: &[f32], vectors: &[f32], out: &mut [f32]) {
        match self {
            Metric::L2 => distance::l2_sq_batch(query, vectors, out),
            Metric::InnerProduct => {
                distance::dot_batch(query, vectors, out);
                out.iter_mut().for_each(|d| *d = -*d);
            }
            Metric::Cosine => {
                distance::dot_batch(query, vectors, out);
                out.iter_mut().for_each(|d| *d = (1.0 - *d).max(0.0));
            }
        }
    }

    /// Brings a vector into the form it is stored and searched in: unit
    /// length for cosine, unchanged otherwise. A zero vector stays zero.
    pub fn prepare(self, vector: &mut [f32]) {
        if self.normalizes() {
            distance::normalize(vector);
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" => Ok(Metric::L2),
            "ip" | "inner_product" | "dot" => Ok(Metric::InnerProduct),
            "cosine" | "cos" => Ok(Metric::Cosine),
            _ => Err(Error::invalid(
                "metric",
                format!("unknown metric {s:?}; expected l2, ip or cosine"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for m in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            assert_eq!(Metric::from_code(m.code()), Some(m));
            assert_eq!(m.name().parse::<Metric>().unwrap(), m);
        }
        assert_eq!(Metric::from_code(3), None);
        assert!("hamming".parse::<Metric>().is_err());
    }

    #[test]
    fn smaller_is_closer_for_every_metric() {
        let q = [1.0, 0.0];
        let near = [0.9, 0.1];
        let far = [-1.0, 0.0];
        for m in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let (mut q, mut near, mut far) = (q, near, far);
            m.prepare(&mut q);
            m.prepare(&mut near);
            m.prepare(&mut far);
            assert!(m.distance(&q, &near) < m.distance(&q, &far), "{m}");
            let mut out = [0.0; 2];
            let both = [near[0], near[1], far[0], far[1]];
            m.distances(&q, &both, &mut out);
            assert_eq!(out, [m.distance(&q, &near), m.distance(&q, &far)]);
        }
    }
}
