//! Errors of the write-ahead log.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong with the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused an operation.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A record or file header is damaged where damage cannot be a torn
    /// tail: in a file that was complete, or followed by intact records.
    #[error("{}: corrupt write-ahead log at offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The log file.
        file: PathBuf,
        /// Byte offset of the bad record or header.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A write, fsync or shipment failed; the log accepts nothing until it
    /// is reopened.
    #[error("write-ahead log in {} stopped after a failure ({cause}); reopen it to recover", dir.display())]
    Poisoned {
        /// The log directory.
        dir: PathBuf,
        /// The failure that stopped it, shared by every error since.
        #[source]
        cause: Arc<Error>,
    },
    /// The sync mode `object` was asked for a log with nowhere to ship it.
    #[error("write-ahead log in {}: sync mode object needs a log store (a collection on object storage)", dir.display())]
    NoLogStore {
        /// The log directory.
        dir: PathBuf,
    },
    /// A record payload is larger than [`crate::MAX_PAYLOAD`].
    #[error("record payload of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl From<vdb_fs::Error> for Error {
    fn from(e: vdb_fs::Error) -> Error {
        Error::Io {
            path: e.path,
            op: e.op,
            source: e.source,
        }
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            op,
            source,
        }
    }
}
