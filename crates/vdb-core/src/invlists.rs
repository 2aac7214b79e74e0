//! The read-only view of inverted lists that IVF search scans.
//!
//! Search (in `vdb-ivf`) is written against this trait; a mapped segment
//! file (in `vdb-format`) and the in-memory [`VecInvertedLists`] implement
//! it, so neither crate has to know the other (the split faiss makes between
//! `InvertedLists`, `ArrayInvertedLists` and `OnDiskInvertedLists`).

use crate::ids::ListId;

/// Read access to `nlist` inverted lists of `dim`-dimensional vectors.
///
/// For every list, `list_vectors(l)` holds `list_len(l) * dim()` values,
/// row-major, and `list_ids(l)` the `list_len(l)` ids of those rows in the
/// same order. A list number outside `0..nlist()` is an empty list.
/// Implementations validate their storage when they are built, so these
/// accessors cannot fail.
pub trait InvertedLists: Send + Sync {
    /// Dimension of every vector.
    fn dim(&self) -> usize;
    /// Number of lists.
    fn nlist(&self) -> usize;
    /// Rows in list `list`.
    fn list_len(&self, list: ListId) -> usize;
    /// The vectors of list `list`, row-major.
    fn list_vectors(&self, list: ListId) -> &[f32];
    /// The ids of list `list`, parallel to its vectors.
    fn list_ids(&self, list: ListId) -> &[u64];
    /// The number of the first row of list `list` when rows are numbered
    /// list after list (the numbering deletion sets use). Implementations
    /// that are never searched with a deletion set may keep the default, 0.
    fn list_row_start(&self, list: ListId) -> usize {
        let _ = list;
        0
    }
    /// Makes lists `lists` readable until the returned hold is dropped:
    /// storage that is fetched on demand (a segment cached in part from
    /// an object store) fetches what it lacks and keeps it. Searches hold
    /// the lists they probe while they scan them. Storage that is always
    /// readable keeps the default, which does nothing.
    fn hold(&self, lists: &[ListId]) -> Result<Hold, HoldError> {
        let _ = lists;
        Ok(Hold::default())
    }
    /// The compact codes of list `list`'s rows, parallel to its vectors,
    /// when the storage keeps them (an `IVF_RABITQ` collection's
    /// segments): search estimates distances from them and computes exact
    /// distances only for the rows the estimate cannot rule out.
    /// Storage without codes keeps the default, `None`.
    fn list_codes(&self, list: ListId) -> Option<ListCodes<'_>> {
        let _ = list;
        None
    }
    /// Total rows over all lists.
    fn total_len(&self) -> usize {
        (0..self.nlist() as u32)
            .map(|l| self.list_len(ListId(l)))
            .sum()
    }
}

/// Values kept per row next to its code: what the distance estimate adds,
/// its scale, its error scale and the code's number of set bits
/// (`vdb_ivf::rabitq` defines them).
pub const CODE_FACTORS: usize = 4;

/// `u64` words of one row's code: one bit a dimension.
pub fn code_words(dim: usize) -> usize {
    dim.div_ceil(64)
}

/// The codes of one list's rows (see [`InvertedLists::list_codes`]).
#[derive(Debug, Clone, Copy)]
pub struct ListCodes<'a> {
    /// The seed of the rotation the codes were made with: a search uses
    /// them only with the same rotation.
    pub seed: u64,
    /// `u64` words per code.
    pub words: usize,
    /// The codes in fast-scan blocks ([`crate::distance::fastscan`]):
    /// `ceil(rows / 32)` blocks holding the list's rows in order, the last
    /// padded with zero codes.
    pub blocks: &'a [u8],
    /// Each row's factors, in the same order.
    pub factors: &'a [[f32; CODE_FACTORS]],
    /// The rows' extended codes, when the storage keeps them (format
    /// 1.4): a search estimates again from them the rows the 1-bit codes
    /// could not rule out, before computing exact distances.
    pub extended: Option<ExtendedCodes<'a>>,
}

/// Values kept per row next to its extended code: the estimate's scale
/// and its error scale (`vdb_ivf::rabitq` defines them).
pub const EXTENDED_FACTORS: usize = 2;

/// One row's codes, as storage is given them to keep (the write side of
/// [`ListCodes`]).
#[derive(Debug, Clone, Copy)]
pub struct RowCode<'a> {
    /// The 1-bit code, [`code_words`] words.
    pub code: &'a [u64],
    /// Its factors.
    pub factors: [f32; CODE_FACTORS],
    /// The extended code (`dim` bytes) and its factors, if made.
    pub extended: Option<(&'a [u8], [f32; EXTENDED_FACTORS])>,
}

/// The extended (8-bit) codes of one list's rows (see [`ListCodes`]).
#[derive(Debug, Clone, Copy)]
pub struct ExtendedCodes<'a> {
    /// The codes, one byte a dimension, `dim` bytes a row, in the list's
    /// row order.
    pub codes: &'a [u8],
    /// Each row's factors, in the same order.
    pub factors: &'a [[f32; EXTENDED_FACTORS]],
}

/// Why lists could not be made readable (see [`InvertedLists::hold`]):
/// the storage's own error.
pub type HoldError = Box<dyn std::error::Error + Send + Sync>;

/// Storage kept readable while it lives (see [`InvertedLists::hold`]).
#[derive(Default)]
pub struct Hold(Vec<Box<dyn Send + Sync>>);

impl Hold {
    /// A hold that releases by dropping `guard`.
    pub fn new(guard: impl Send + Sync + 'static) -> Hold {
        Hold(vec![Box::new(guard)])
    }

    /// Keeps `other` too.
    pub fn join(&mut self, other: Hold) {
        self.0.extend(other.0);
    }
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hold({} guards)", self.0.len())
    }
}

/// Inverted lists held in memory, one growable vector per list.
#[derive(Debug, Clone)]
pub struct VecInvertedLists {
    dim: usize,
    vectors: Vec<Vec<f32>>,
    ids: Vec<Vec<u64>>,
}

impl VecInvertedLists {
    /// `nlist` empty lists of `dim`-dimensional vectors.
    pub fn new(dim: usize, nlist: usize) -> VecInvertedLists {
        VecInvertedLists {
            dim,
            vectors: vec![Vec::new(); nlist],
            ids: vec![Vec::new(); nlist],
        }
    }

    /// Appends a row to list `list`.
    ///
    /// # Panics
    /// If `list` is out of range or `vector` is not `dim` long: both are
    /// programming errors of the caller, which owns the assignment.
    pub fn push(&mut self, list: ListId, id: u64, vector: &[f32]) {
        assert_eq!(vector.len(), self.dim, "vector length must equal dim");
        self.vectors[list.index()].extend_from_slice(vector);
        self.ids[list.index()].push(id);
    }
}

impl InvertedLists for VecInvertedLists {
    fn dim(&self) -> usize {
        self.dim
    }

    fn nlist(&self) -> usize {
        self.ids.len()
    }

    fn list_len(&self, list: ListId) -> usize {
        self.ids.get(list.index()).map_or(0, Vec::len)
    }

    fn list_vectors(&self, list: ListId) -> &[f32] {
        self.vectors.get(list.index()).map_or(&[], Vec::as_slice)
    }

    fn list_ids(&self, list: ListId) -> &[u64] {
        self.ids.get(list.index()).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_lists_are_empty() {
        let mut lists = VecInvertedLists::new(2, 3);
        lists.push(ListId(1), 7, &[1.0, 2.0]);
        assert_eq!(lists.list_len(ListId(1)), 1);
        assert_eq!(lists.list_ids(ListId(1)), &[7]);
        assert_eq!(lists.list_vectors(ListId(1)), &[1.0, 2.0]);
        assert_eq!(lists.list_len(ListId(9)), 0);
        assert!(lists.list_vectors(ListId(9)).is_empty());
        assert_eq!(lists.total_len(), 1);
    }
}
