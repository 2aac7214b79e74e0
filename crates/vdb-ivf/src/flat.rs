//! Exact (flat) search: every row compared with the query. The ground truth
//! IVF search is measured against.

use vdb_core::{Metric, Neighbor, RowAddr, TopK, validate_vector};

use crate::error::Result;

/// The `k` rows of `vectors` (row-major, `query.len()` wide, prepared for
/// `metric`) nearest to `query`, with `ids[i]` naming row `i` (whose
/// address is source 0, row `i`). The query is validated and prepared here.
pub fn flat_search(
    metric: Metric,
    query: &[f32],
    vectors: &[f32],
    ids: &[u64],
    k: usize,
) -> Result<Vec<Neighbor>> {
    if k == 0 {
        return Err(vdb_core::Error::invalid("k", "must be at least 1").into());
    }
    let dim = query.len();
    if dim == 0 {
        return Err(vdb_core::Error::invalid("query", "is empty").into());
    }
    if vectors.len() != ids.len() * dim {
        return Err(vdb_core::Error::invalid(
            "vectors",
            format!(
                "{} values do not make {} rows of dim {dim}",
                vectors.len(),
                ids.len()
            ),
        )
        .into());
    }
    validate_vector(query, dim)?;
    let mut q = query.to_vec();
    metric.prepare(&mut q);
    let mut top = TopK::new(k);
    let mut buf = vec![0.0f32; 256];
    for (c, (v, i)) in vectors.chunks(256 * dim).zip(ids.chunks(256)).enumerate() {
        let out = &mut buf[..i.len()];
        metric.distances(&q, v, out);
        top.push_block(i, out, RowAddr::new(0, c * 256));
    }
    Ok(top.into_sorted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nearest_and_validates() {
        let vectors = [0.0, 0.0, 5.0, 5.0, 1.0, 1.0];
        let ids = [10, 11, 12];
        let r = flat_search(Metric::L2, &[0.9, 0.9], &vectors, &ids, 2).unwrap();
        assert_eq!(r.iter().map(|n| n.id.0).collect::<Vec<_>>(), vec![12, 10]);
        // k larger than the collection returns everything.
        assert_eq!(
            flat_search(Metric::L2, &[0.0, 0.0], &vectors, &ids, 10)
                .unwrap()
                .len(),
            3
        );
        assert!(flat_search(Metric::L2, &[0.0, 0.0], &vectors, &ids, 0).is_err());
        assert!(flat_search(Metric::L2, &[0.0], &vectors, &ids, 1).is_err());
        assert!(flat_search(Metric::L2, &[f32::NAN, 0.0], &vectors, &ids, 1).is_err());
    }
}
