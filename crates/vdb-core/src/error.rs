//! Errors shared by every crate: the ones that describe bad vectors and bad
//! search parameters, independent of where they came from.

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors about vectors and parameters, shared across vdb crates.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A vector's length differs from the collection's dimension.
    #[error("vector has {actual} components, expected {expected}")]
    DimensionMismatch {
        /// The dimension the collection or index was built with.
        expected: usize,
        /// The number of components the vector has.
        actual: usize,
    },
    /// A vector holds NaN or an infinity.
    #[error("vector component {index} is {value}, but every component must be finite")]
    NonFinite {
        /// Index of the first offending component.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// A parameter is out of its valid range.
    #[error("invalid {name}: {reason}")]
    InvalidArgument {
        /// Which parameter.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }
}
