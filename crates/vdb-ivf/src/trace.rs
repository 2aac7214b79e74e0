//! What a search did: the record explain renders.

use vdb_core::ListId;

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
    /// Rows whose distance the fine search computed.
    pub scanned: u64,
    /// Of those, rows skipped because they were deleted or replaced.
    pub deleted_skipped: u64,
    /// Rows of this list among the final results.
    pub results: u32,
}

/// A record of one IVF search: which lists were probed and how much work
/// each stage did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchTrace {
    /// Number of lists (centroids) of the index.
    pub nlist: usize,
    /// Lists probed (after clamping to `nlist`).
    pub nprobe: usize,
    /// Whether the requested nprobe was larger than nlist and was clamped.
    pub nprobe_clamped: bool,
    /// The probed lists, nearest centroid first.
    pub probed: Vec<ProbedList>,
    /// Distances computed against centroids (equals `nlist`).
    pub coarse_distances: u64,
    /// Distances computed against stored vectors.
    pub fine_distances: u64,
}

impl SearchTrace {
    /// All distance computations of the search.
    pub fn total_distances(&self) -> u64 {
        self.coarse_distances + self.fine_distances
    }
}
