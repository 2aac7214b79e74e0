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

mod error;
mod flat;
pub mod kmeans;
mod quantizer;
mod rng;
mod search;
mod trace;

pub use error::{Error, Result};
pub use flat::flat_search;
pub use kmeans::{KMeansParams, KMeansReport, imbalance_factor};
pub use quantizer::CoarseQuantizer;
pub use rng::SplitMix64;
pub use search::{SearchParams, Searcher};
pub use trace::{ProbedList, SearchTrace};
