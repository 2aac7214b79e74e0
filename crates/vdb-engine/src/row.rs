//! A row and a search hit: what goes in and what comes out.

use vdb_core::FieldValues;

/// A row: a client-chosen id, a vector, optional opaque payload bytes, and
/// values of the collection's typed fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The id; writing an existing id replaces that row.
    pub id: u64,
    /// The vector (`dim` finite components).
    pub vector: Vec<f32>,
    /// Payload bytes, e.g. a URI or JSON.
    pub payload: Option<Vec<u8>>,
    /// Typed field values, `(name, value)` sorted by name (an upsert sorts
    /// and checks them).
    pub fields: FieldValues,
}

/// A search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The row's id.
    pub id: u64,
    /// Its distance to the query (smaller is closer; see [`Metric`]).
    pub distance: f32,
    /// Its payload, when asked for (and the row has one).
    pub payload: Option<Vec<u8>>,
    /// Its vector as stored (normalised for cosine), when asked for.
    pub vector: Option<Vec<f32>>,
    /// Its typed field values, when asked for.
    pub fields: FieldValues,
}
