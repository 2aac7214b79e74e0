//! The vocabulary every other vdb crate speaks: ids, metrics, distance
//! kernels with runtime SIMD dispatch, top-k selection, the read-only
//! [`InvertedLists`] trait, typed fields and filter expressions.
//!
//! This crate knows nothing about files, threads, async runtimes or the
//! network. It is the only place besides `vdb-format`'s mmap module that may
//! contain `unsafe` code, and only in [`distance::simd`].

pub mod distance;
mod error;
pub mod fields;
pub mod filter;
mod ids;
mod invlists;
mod metric;
mod rowset;
mod topk;

pub use error::{Error, Result};
pub use fields::{FieldDef, FieldError, FieldType, FieldValues, Value};
pub use filter::{Filter, RowFilter};
pub use ids::{Generation, ListId, Lsn, SegmentId, VectorId};
pub use invlists::{
    CODE_FACTORS, EXTENDED_FACTORS, ExtendedCodes, Hold, HoldError, InvertedLists, ListCodes,
    RowCode, VecInvertedLists, code_words,
};
pub use metric::Metric;
pub use rowset::RowSet;
pub use topk::{Neighbor, RowAddr, TopK};

/// Checks that `vector` has `dim` components and that all of them are finite.
///
/// Every vector that enters vdb from outside passes through here, so the
/// kernels never see NaN or infinities coming from user input.
pub fn validate_vector(vector: &[f32], dim: usize) -> Result<()> {
    if vector.len() != dim {
        return Err(Error::DimensionMismatch {
            expected: dim,
            actual: vector.len(),
        });
    }
    if let Some(index) = vector.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFinite {
            index,
            value: vector.get(index).copied().unwrap_or(f32::NAN),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_problem() {
        assert!(validate_vector(&[1.0, 2.0], 2).is_ok());
        let err = validate_vector(&[1.0], 2).unwrap_err();
        assert_eq!(err.to_string(), "vector has 1 components, expected 2");
        let err = validate_vector(&[1.0, f32::NAN], 2).unwrap_err();
        assert!(err.to_string().contains("component 1"), "{err}");
        let err = validate_vector(&[f32::INFINITY, 0.0], 2).unwrap_err();
        assert!(err.to_string().contains("component 0"), "{err}");
    }
}
