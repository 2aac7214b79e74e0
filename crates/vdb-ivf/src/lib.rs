//! IVF_Flat, the algorithm: k-means training, coarse assignment, list
//! scanning, exact (flat) search and the search trace.
//!
//! Everything here works on slices and on the [`vdb_core::InvertedLists`]
//! trait: this crate knows nothing about files, the WAL, async runtimes or
//! the network. A segment file mapped by `vdb-format` and an in-memory
//! memtable are searched by the same code.
//!
//! The flow, as in faiss's `IndexIVFFlat`:
//! 1. [`kmeans::train`] picks `nlist` centroids from a sample of the data;
//! 2. [`CoarseQuantizer::assign`] puts every vector into the list of its
//!    nearest centroid;
//! 3. a query is compared with all centroids ([`CoarseQuantizer::probe`]) and
//!    the `nprobe` nearest lists are scanned exhaustively ([`Searcher`]);
//! 4. a [`SearchTrace`] records what the search did, for explain.
//!
//! ```
//! use vdb_core::{Metric, VecInvertedLists};
//! use vdb_ivf::{CoarseQuantizer, KMeansParams, SearchParams, SearchTrace, Searcher, kmeans};
//!
//! # fn main() -> Result<(), vdb_ivf::Error> {
//! // 2,000 vectors of dim 8 (any f32 data; here a fixed pseudo-random set).
//! let dim = 8;
//! let mut rng = vdb_ivf::SplitMix64::new(7);
//! let vectors: Vec<f32> = (0..2000 * dim).map(|_| rng.next_f32()).collect();
//!
//! // Train 16 lists and file every vector into its nearest one.
//! let (centroids, _report) = kmeans::train(&vectors, dim, 16, Metric::L2, &KMeansParams::default())?;
//! let quantizer = CoarseQuantizer::new(dim, Metric::L2, centroids)?;
//! let mut lists = VecInvertedLists::new(dim, 16);
//! for (i, (list, _)) in quantizer.assign(&vectors)?.into_iter().enumerate() {
//!     lists.push(list, i as u64, &vectors[i * dim..(i + 1) * dim]);
//! }
//!
//! // Search, and look at what the search did.
//! let query = &vectors[..dim];
//! let mut trace = SearchTrace::default();
//! let hits = Searcher::new().search(&quantizer, &[&lists], query, SearchParams { k: 5, nprobe: 4, max_probes: None }, Some(&mut trace))?;
//! assert_eq!(hits[0].id.0, 0); // the vector itself
//! assert_eq!(trace.probed.len(), 4);
//! assert!(trace.fine_distances < 2000); // fewer than an exhaustive scan
//! # Ok(())
//! # }
//! ```

mod error;
mod flat;
pub mod kmeans;
mod layout;
mod quantizer;
pub mod rabitq;
mod rng;
mod search;
mod trace;

pub use error::{Error, Result};
pub use flat::flat_search;
pub use kmeans::{KMeansParams, KMeansReport, imbalance_factor};
pub use layout::Layout;
pub use quantizer::CoarseQuantizer;
pub use rng::SplitMix64;
pub use search::{
    Member, SearchParams, SearchWork, Searcher, Source, exact_batch, list_members_near_centroid,
    search_batch,
};
pub use trace::{ProbedList, SearchTrace};
