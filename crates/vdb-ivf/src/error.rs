//! Errors of training and searching.

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong when training or searching an IVF index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad vector or parameter.
    #[error(transparent)]
    Core(#[from] vdb_core::Error),
    /// Fewer training vectors than clusters.
    #[error(
        "cannot train {nlist} clusters from {rows} vectors: need at least one vector per cluster"
    )]
    TooFewTrainingVectors {
        /// Clusters asked for.
        nlist: usize,
        /// Vectors given.
        rows: usize,
    },
    /// Lists stored elsewhere could not be read (a segment whose bytes
    /// are fetched on demand from an object store).
    #[error("read the probed lists: {0}")]
    Storage(#[source] vdb_core::HoldError),
    /// Inverted lists that do not match the quantizer they are searched with.
    #[error(
        "inverted lists have dim {lists_dim} and {lists_nlist} lists, but the centroids have dim {dim} and {nlist} lists"
    )]
    ListsMismatch {
        /// Centroid dimension.
        dim: usize,
        /// Number of centroids.
        nlist: usize,
        /// Dimension of the lists.
        lists_dim: usize,
        /// Number of lists.
        lists_nlist: usize,
    },
}
