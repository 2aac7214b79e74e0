//! Engine errors as gRPC statuses — the one mapping, as a table:
//!
//! | engine error | status |
//! |---|---|
//! | `InvalidArgument` (names the field), `Core`, `Ivf` (bad vectors, parameters) | `INVALID_ARGUMENT` |
//! | `NotFound` | `NOT_FOUND` |
//! | `AlreadyExists` | `ALREADY_EXISTS` |
//! | `Poisoned` (a write or fsync failed; reopen to recover) | `FAILED_PRECONDITION` |
//! | `Corrupt` (a file cannot be understood) | `DATA_LOSS` |
//! | `Format`, `Wal`, `Io`, anything else | `INTERNAL` |

use tonic::Status;
use vdb_engine::Error;

/// The status a client gets for `e`; the message is the error's text.
pub fn status(e: Error) -> Status {
    let msg = e.to_string();
    match e {
        Error::InvalidArgument { .. } | Error::InvalidVector { .. } | Error::Core(_) => {
            Status::invalid_argument(msg)
        }
        Error::NotFound(_) => Status::not_found(msg),
        Error::AlreadyExists(_) => Status::already_exists(msg),
        Error::Poisoned { .. } => Status::failed_precondition(msg),
        Error::Corrupt { .. } => Status::data_loss(msg),
        _ => Status::internal(msg),
    }
}

/// `INVALID_ARGUMENT` naming `field`.
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("invalid {field}: {reason}"))
}
