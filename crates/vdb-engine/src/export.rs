//! Export: one snapshot's centroids and visible rows, list by list — what
//! an `IVF{nlist},Flat` file of another engine (faiss) holds.

use std::sync::Arc;

use vdb_core::{ListId, Metric};

use crate::collection::{Collection, Snapshot};

/// A consistent view of a collection to export: taken from one snapshot,
/// so writes that land while it is read are not in it.
#[derive(Debug)]
pub struct ListExport {
    snap: Arc<Snapshot>,
    /// Vector dimension.
    pub dim: usize,
    /// The collection's metric (vectors are stored prepared for it:
    /// normalised for cosine).
    pub metric: Metric,
    /// The centroid generation (0 = untrained: one list).
    pub generation: u64,
    /// `nlist × dim` centroids.
    pub centroids: Vec<f32>,
    /// Visible rows per list.
    pub sizes: Vec<u64>,
}

impl ListExport {
    /// Calls `f(list, ids, vectors)` with the visible rows of every list in
    /// list order, at most `max_rows` rows per call; a list's rows in
    /// consecutive calls. The first error `f` returns stops it and is
    /// returned, as is a list that cannot be read (a segment cached in
    /// part whose bytes cannot be fetched).
    pub fn for_each_chunk<E: From<crate::Error>>(
        &self,
        max_rows: usize,
        mut f: impl FnMut(u32, &[u64], &[f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        let max_rows = max_rows.max(1);
        let sources = self.snap.sources();
        let dim = self.dim;
        let mut ids = Vec::with_capacity(max_rows);
        let mut vectors = Vec::with_capacity(max_rows * dim);
        for l in 0..self.sizes.len() {
            let list = ListId(l as u32);
            let _held = self.snap.hold_lists(&[list])?;
            for s in &sources {
                let start = s.lists.list_row_start(list);
                let list_ids = s.lists.list_ids(list);
                let list_vectors = s.lists.list_vectors(list);
                for (i, (&id, v)) in list_ids
                    .iter()
                    .zip(list_vectors.chunks_exact(dim))
                    .enumerate()
                {
                    if s.deleted.is_some_and(|d| d.contains(start + i)) {
                        continue;
                    }
                    ids.push(id);
                    vectors.extend_from_slice(v);
                    if ids.len() == max_rows {
                        f(list.0, &ids, &vectors)?;
                        ids.clear();
                        vectors.clear();
                    }
                }
            }
            if !ids.is_empty() {
                f(list.0, &ids, &vectors)?;
                ids.clear();
                vectors.clear();
            }
        }
        Ok(())
    }
}

impl Collection {
    /// The current snapshot's centroids and visible rows, for export.
    pub fn export(&self) -> ListExport {
        let snap = self.snapshot();
        let q = snap.quantizer();
        let (dim, metric, centroids) = (q.dim(), q.metric(), q.centroids().to_vec());
        let sizes = crate::collection::visible_sizes(&snap.sources(), q.nlist());
        ListExport {
            generation: snap.generation(),
            dim,
            metric,
            centroids,
            sizes,
            snap,
        }
    }
}
