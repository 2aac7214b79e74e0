//! A row and a search hit: what goes in and what comes out.

/// A row: a client-chosen id, a vector, and optional opaque payload bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The id; writing an existing id replaces that row.
    pub id: u64,
    /// The vector (`dim` finite components).
    pub vector: Vec<f32>,
    /// Payload bytes, e.g. a URI or JSON.
    pub payload: Option<Vec<u8>>,
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
}
