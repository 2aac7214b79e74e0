//! Errors of reading and writing vdb files. Every variant that concerns file
//! content names the file and the region.

use std::io;
use std::path::{Path, PathBuf};

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong with a vdb file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused an operation.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done ("open", "write", "fsync", ...).
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file ends before a region it needs.
    #[error("{}: truncated in {region}: needs {needed} bytes, file has {len}", file.display())]
    Truncated {
        /// The file.
        file: PathBuf,
        /// The region that does not fit.
        region: String,
        /// Bytes the region needs the file to have.
        needed: u64,
        /// Bytes the file has.
        len: u64,
    },
    /// A region's bytes do not match its stored CRC32.
    #[error("{}: checksum mismatch in {region}: stored {expected:#010x}, computed {actual:#010x}", file.display())]
    ChecksumMismatch {
        /// The file.
        file: PathBuf,
        /// The region.
        region: String,
        /// The CRC the file stores.
        expected: u32,
        /// The CRC of the bytes found.
        actual: u32,
    },
    /// A structural field is invalid.
    #[error("{}: corrupt {region} at offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// The region.
        region: String,
        /// Byte offset in the file of the bad field.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The file was written by a format version this build cannot read.
    #[error("{}: format version {major}.{minor} is not supported: {reason}", file.display())]
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// Its major version.
        major: u16,
        /// Its minor version.
        minor: u16,
        /// Why this build cannot read it.
        reason: String,
    },
    /// The writer was given rows that do not fit the segment.
    #[error("{}: {source}", file.display())]
    InvalidRow {
        /// The file being written.
        file: PathBuf,
        /// What is wrong with the row.
        #[source]
        source: vdb_core::Error,
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
    pub(crate) fn io(path: &Path, op: &'static str, source: io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }

    pub(crate) fn corrupt(
        file: &Path,
        region: impl Into<String>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corrupt {
            file: file.to_path_buf(),
            region: region.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// The region of the file the error is about, if it is about content.
    pub fn region(&self) -> Option<&str> {
        match self {
            Error::Truncated { region, .. }
            | Error::ChecksumMismatch { region, .. }
            | Error::Corrupt { region, .. } => Some(region),
            Error::UnsupportedVersion { .. } => Some("header"),
            Error::Io { .. } | Error::InvalidRow { .. } => None,
        }
    }
}
