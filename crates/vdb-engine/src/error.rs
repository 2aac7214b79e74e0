//! Errors of the engine: what a client did wrong, what is missing, and what
//! went wrong underneath (with the lower crate's error kept, not flattened).

use std::path::PathBuf;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request is malformed; `field` names what is wrong.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The offending field or parameter.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A vector in a request is unusable (wrong dimension, a component
    /// that is not finite); `field` names which.
    #[error("invalid {field}: {source}")]
    InvalidVector {
        /// The offending field, e.g. `queries[3]` or `rows[0].vector`.
        field: String,
        /// What is wrong with it.
        #[source]
        source: vdb_core::Error,
    },
    /// No collection of that name.
    #[error("collection {0:?} does not exist")]
    NotFound(String),
    /// No snapshot of that name in the repository.
    #[error("snapshot {name:?} does not exist in {location}")]
    SnapshotNotFound {
        /// The snapshot.
        name: String,
        /// The repository.
        location: String,
    },
    /// A snapshot of that name exists already in the repository.
    #[error("snapshot {name:?} already exists in {location}")]
    SnapshotExists {
        /// The snapshot.
        name: String,
        /// The repository.
        location: String,
    },
    /// The engine was shut down (the server is stopping): nothing is
    /// wrong with the request, retry it against a running server.
    #[error("the data directory {0} is closed: the engine was shut down")]
    Closed(String),
    /// A collection of that name exists already.
    #[error("collection {0:?} already exists")]
    AlreadyExists(String),
    /// An earlier write or fsync failed; the collection accepts no writes
    /// until it is reopened.
    #[error(
        "collection {name:?} stopped accepting writes after a failure ({cause}); {}",
        recovery(cause)
    )]
    Poisoned {
        /// The collection.
        name: String,
        /// The failure, shared by every error reported since.
        #[source]
        cause: std::sync::Arc<Error>,
    },
    /// This node is a read replica: it serves reads of collections another
    /// node writes, and refuses writes, maintenance and settings changes.
    #[error("{}", read_only(name, *writer))]
    ReadOnly {
        /// The collection (empty for creating or dropping one).
        name: String,
        /// The node that writes it, as its manifest names it (0: unknown).
        writer: u64,
    },
    /// A compaction or training would not fit in the space left: refused
    /// before anything was written (the collection works on as it was).
    #[error(
        "{task} of collection {name:?} needs about {needed} bytes free and the disk has {available}: refused before writing anything (free space, or lower flush_rows and the compaction fanout so rewrites stay small)"
    )]
    NoSpace {
        /// The collection.
        name: String,
        /// `compaction` or `training`.
        task: &'static str,
        /// Bytes it would write before removing what it replaces.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// A manifest or log record that cannot be understood.
    #[error("{}: {reason}", file.display())]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A bad vector or parameter.
    #[error(transparent)]
    Core(#[from] vdb_core::Error),
    /// Training or search failed.
    #[error(transparent)]
    Ivf(#[from] vdb_ivf::Error),
    /// A segment, centroid or delete file failed.
    #[error(transparent)]
    Format(#[from] vdb_format::Error),
    /// The write-ahead log failed.
    #[error(transparent)]
    Wal(#[from] vdb_wal::Error),
    /// An invariant of the engine does not hold: a bug, not bad input.
    #[error("internal error: {0}")]
    Internal(String),
    /// A file system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn read_only(name: &str, writer: u64) -> String {
    let what = if name.is_empty() {
        "collections are created and dropped".to_string()
    } else {
        format!("collection {name:?} is written")
    };
    let by = if writer == 0 {
        String::new()
    } else {
        format!(" (node {writer:016x})")
    };
    format!("this server is a read replica: {what} only by the writer{by}; send writes there")
}

/// What an operator does about a poisoned collection.
fn recovery(cause: &Error) -> &'static str {
    if cause.is_fenced() {
        "another node writes it now: stop this one (restarting it would take the collection back)"
    } else {
        "reopen it to recover"
    }
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
    /// Whether the disk (or a quota) was full somewhere underneath: an
    /// expected condition the operator must act on, not a bug.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, Error::NoSpace { .. })
            || self.has_io_error(|k| {
                matches!(
                    k,
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                )
            })
    }

    /// Whether a file or object was missing somewhere underneath.
    pub fn is_not_found(&self) -> bool {
        self.has_io_error(|k| k == std::io::ErrorKind::NotFound)
    }

    /// Whether an I/O error of a kind `wanted` accepts is this error or
    /// one underneath it.
    fn has_io_error(&self, wanted: impl Fn(std::io::ErrorKind) -> bool) -> bool {
        let mut e: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(err) = e {
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && wanted(io.kind())
            {
                return true;
            }
            e = err.source();
        }
        false
    }

    /// Whether another writer published a manifest of this collection's
    /// shared store after this one: this writer is fenced and must stop.
    pub fn is_fenced(&self) -> bool {
        vdb_fs::Fenced::is_in(self)
    }

    /// Whether something underneath found a file or object already there
    /// that it must not replace.
    pub fn is_already_there(&self) -> bool {
        self.has_io_error(|k| k == std::io::ErrorKind::AlreadyExists)
    }

    /// Whether a file on disk cannot be understood (a manifest, a segment,
    /// centroid or delete file, or the log): data was damaged.
    pub fn is_corruption(&self) -> bool {
        match self {
            Error::Corrupt { .. } => true,
            Error::Format(e) => e.region().is_some(),
            Error::Wal(vdb_wal::Error::Corrupt { .. }) => true,
            _ => false,
        }
    }

    /// The request field an invalid-input error names.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidArgument { field, .. } | Error::InvalidVector { field, .. } => {
                Some(field)
            }
            _ => None,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_field(e: vdb_core::FieldError) -> Error {
        Error::invalid(e.path, e.reason)
    }

    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            op,
            source,
        }
    }
}
