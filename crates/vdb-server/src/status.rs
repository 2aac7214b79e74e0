//! Engine errors as gRPC statuses — the one mapping, as a table (first
//! match wins):
//!
//! | engine error | status |
//! |---|---|
//! | `InvalidArgument`, `InvalidVector` (name the field), `Core` (a bad vector or parameter) | `INVALID_ARGUMENT` |
//! | `NotFound`, `SnapshotNotFound` | `NOT_FOUND` |
//! | `AlreadyExists`, `SnapshotExists` | `ALREADY_EXISTS` |
//! | `Closed` (the server is stopping) | `UNAVAILABLE` |
//! | `Poisoned` (a write, fsync or maintenance failed; restart to recover), `ReadOnly` (a write to a read replica; the message names the writer), a full disk or quota anywhere underneath, or a writer fenced by a newer one (`Error::is_fenced`: the collection's object store has another writer) | `FAILED_PRECONDITION` |
//! | corruption (`Error::is_corruption`: a manifest, segment, centroid, delete or log file that cannot be understood) | `DATA_LOSS` |
//! | anything else (`Io`, `Internal`, …) | `INTERNAL` |
//!
//! Requests whose bytes are not valid protobuf never reach the engine:
//! `vdb_proto::codec::RequestCodec` answers them `INVALID_ARGUMENT`.

use tonic::Status;
use vdb_engine::Error;

/// The status a client gets for `e`; the message is the error's text
/// (which names the file for disk errors).
pub fn status(e: Error) -> Status {
    let msg = e.to_string();
    match e {
        Error::InvalidArgument { .. } | Error::InvalidVector { .. } | Error::Core(_) => {
            Status::invalid_argument(msg)
        }
        Error::NotFound(_) | Error::SnapshotNotFound { .. } => Status::not_found(msg),
        Error::AlreadyExists(_) | Error::SnapshotExists { .. } => Status::already_exists(msg),
        Error::Closed(_) => Status::unavailable(msg),
        Error::Poisoned { .. } | Error::ReadOnly { .. } => Status::failed_precondition(msg),
        e if e.is_storage_full() || e.is_fenced() => Status::failed_precondition(msg),
        e if e.is_corruption() => Status::data_loss(msg),
        _ => Status::internal(msg),
    }
}

/// `INVALID_ARGUMENT` naming `field`.
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("invalid {field}: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use tonic::Code;

    fn io_error(kind: io::ErrorKind) -> Error {
        Error::Io {
            path: "/data/collections/c/wal/00000000000000000001.log".into(),
            op: "append",
            source: io::Error::from(kind),
        }
    }

    #[test]
    fn a_full_disk_is_failed_precondition_naming_the_file() {
        for kind in [io::ErrorKind::StorageFull, io::ErrorKind::QuotaExceeded] {
            let s = status(io_error(kind));
            assert_eq!(s.code(), Code::FailedPrecondition, "{kind:?}");
            assert!(
                s.message().contains("00000000000000000001.log"),
                "{}",
                s.message()
            );
        }
        let poisoned = Error::Poisoned {
            name: "c".into(),
            cause: std::sync::Arc::new(io_error(io::ErrorKind::StorageFull)),
        };
        let s = status(poisoned);
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert!(
            s.message().contains("00000000000000000001.log"),
            "{}",
            s.message()
        );
        assert_eq!(
            status(io_error(io::ErrorKind::PermissionDenied)).code(),
            Code::Internal
        );
    }

    #[test]
    fn a_fenced_writer_is_failed_precondition() {
        let fenced = vdb_engine::Fenced {
            location: "s3://b/collections/c".into(),
            what: "manifest version",
            number: 7,
        };
        let e = Error::Io {
            path: "s3://b/collections/c/manifest/00000000000000000007".into(),
            op: "publish",
            source: io::Error::new(io::ErrorKind::AlreadyExists, fenced),
        };
        assert!(e.is_fenced());
        let s = status(e);
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert!(s.message().contains("fenced"), "{}", s.message());
    }

    #[test]
    fn a_write_to_a_replica_is_failed_precondition_naming_the_writer() {
        let s = status(Error::ReadOnly {
            name: "docs".into(),
            writer: 0xabc,
        });
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert!(s.message().contains("read replica"), "{}", s.message());
        assert!(s.message().contains("0000000000000abc"), "{}", s.message());
    }

    #[test]
    fn corruption_is_data_loss() {
        let e = Error::Corrupt {
            file: "/data/collections/c/MANIFEST".into(),
            reason: "checksum mismatch".into(),
        };
        assert_eq!(status(e).code(), Code::DataLoss);
    }
}
