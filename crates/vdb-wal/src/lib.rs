//! vdb's write-ahead log.
//!
//! An append-only sequence of framed records, each with a length, a CRC32
//! and a sequence number ([`Lsn`]), split over files named
//! `{first_lsn:020}.log` in one directory. A write is acknowledged according
//! to the [`SyncMode`]: with [`SyncMode::Always`] only after an `fsync` that
//! covers it — concurrent writers share one `fsync` (group commit). Replay at
//! open returns every complete record; a torn or corrupt *tail* of the last
//! file is cut off and reported, while damage followed by good records is an
//! error naming the file and offset (unless [`Recovery::DropCorruptTail`]
//! says otherwise). After a failed write or `fsync` the log is poisoned:
//! every later append fails until it is reopened, because the kernel may
//! have dropped the unsynced pages and a retry would acknowledge data that
//! is not on disk.
//!
//! With [`SyncMode::Object`] nothing is kept locally: each group of
//! records is shipped as a *chunk* (a complete log file, [`encode_chunk`],
//! [`read_chunk`]) to a [`vdb_fs::LogStore`], and acknowledged once stored.
//!
//! The format is specified in `docs/format.md`. The API is synchronous; the
//! engine drives it from its own threads. This crate knows nothing about
//! segments, collections or the network.

mod chunk;
mod error;
mod frame;
mod replay;
mod writer;

pub use chunk::{encode_chunk, read_chunk};
pub use error::{Error, Result};
pub use frame::{MAX_PAYLOAD, RecordKind, file_name};
pub use replay::{Record, Recovery, ReplayReport};
pub use vdb_core::Lsn;
pub use writer::{SyncMode, Wal, WalOptions, WalStats};
