//! vdb's engine: durable collections of vectors, and the library API for
//! embedding vdb in a larger system.
//!
//! An [`Engine`] owns a data directory with one subdirectory per collection.
//! A [`Collection`] takes writes through its write-ahead log (acknowledged
//! once durable as its sync mode promises), keeps recent rows in a memtable
//! grouped by IVF list, flushes them to immutable segment files, trains its
//! centroids once it holds enough rows, and serves searches from snapshots
//! so readers never wait for writers.
//!
//! ```
//! use vdb_engine::{CollectionConfig, Engine, FieldDef, FieldType, Filter, Row, SearchOptions, Value};
//!
//! # fn main() -> Result<(), vdb_engine::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let engine = Engine::open(dir.path())?;
//! let mut config = CollectionConfig::new(3);
//! config.nlist = 4;
//! config.fields = vec![FieldDef::new("album", FieldType::Keyword)];
//! let images = engine.create_collection("images", config)?;
//! let album = |a: &str| vec![("album".to_string(), Value::Keyword(a.into()))];
//! images.upsert(vec![
//!     Row { id: 1, vector: vec![0.0, 0.0, 1.0], payload: Some(b"cat.png".to_vec()), fields: album("pets") },
//!     Row { id: 2, vector: vec![1.0, 0.0, 0.0], payload: Some(b"dog.png".to_vec()), fields: album("pets") },
//!     Row { id: 3, vector: vec![0.0, 0.1, 1.0], payload: Some(b"sea.png".to_vec()), fields: album("trips") },
//! ])?;
//! let hits = images.search(&[vec![0.1, 0.0, 0.9]], SearchOptions { k: 1, with_payload: true, ..SearchOptions::default() })?;
//! assert_eq!(hits[0][0].id, 1);
//! assert_eq!(hits[0][0].payload.as_deref(), Some(&b"cat.png"[..]));
//! // Only the rows a filter holds for (docs/filters.md).
//! let trips = Filter::parse("album = 'trips'").unwrap();
//! let hits = images.search(&[vec![0.1, 0.0, 0.9]], SearchOptions { k: 1, filter: Some(trips), ..SearchOptions::default() })?;
//! assert_eq!(hits[0][0].id, 3);
//! engine.close()?;
//!
//! // Everything acknowledged is there after a restart.
//! let engine = Engine::open(dir.path())?;
//! assert_eq!(engine.collection("images")?.get(2)?.unwrap().payload.as_deref(), Some(&b"dog.png"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! This crate knows nothing about gRPC or the command line.

mod backlog;
mod codec;
mod collection;
mod config;
mod engine;
mod error;
mod explain;
mod export;
mod follower;
mod idmap;
mod index;
mod manifest;
mod memtable;
mod policy;
mod row;
mod scheduler;
mod shared_store;
mod snapshot;
mod tune;

pub use collection::{
    Alter, Collection, CollectionStats, MaintenanceKind, MaintenanceRuns, SearchOptions, Snapshot,
    StorageInfo, StorageRole, WriteCounts,
};
pub use config::{CollectionConfig, DEFAULT_TARGET_RECALL, validate_name};
pub use engine::{DEFAULT_MEMTABLE_LIMIT, Engine, EngineOptions, TrainedCentroids};
pub use error::{Error, Result};
pub use explain::{
    DEFAULT_SAMPLES, ExactComparison, ExplainOptions, Explanation, ListView, MAX_SAMPLES, Sample,
    TracedHit,
};
pub use export::ListExport;
pub use index::{IndexType, RABITQ_SEED};
pub use policy::{
    CompactionPolicy, Merge, Plan, PolicyInput, RetrainPolicy, SegmentStat, plan, plan_compaction,
};
pub use row::{Hit, Row};
pub use snapshot::{SnapshotFile, SnapshotInfo};
pub use tune::{MAX_TUNE_SAMPLE, TuneOptions, TunePoint, TuneReport, default_sweep};
pub use vdb_core::filter;
pub use vdb_core::{FieldDef, FieldType, FieldValues, Filter, Lsn, Metric, Value};
pub use vdb_fs::{Fenced, Fs, FsRef, LocalRepository, OsFs, Repository, Store};
pub use vdb_ivf::{SearchTrace, SearchWork};
pub use vdb_wal::SyncMode;
