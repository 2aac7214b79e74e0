//! API keys: who may call what. With no key configured every request is
//! allowed; otherwise a request carries `authorization: Bearer <key>`.

use tonic::{Request, Status};

/// API keys. With none configured, every request is allowed. Otherwise a
/// request must carry `authorization: Bearer <key>`: a key from `full`
/// may do everything, one from `read_only` may call what [`Rpc::access`]
/// marks as reading ([`read_only_rpcs`] lists them).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKeys {
    /// Keys allowed everything.
    pub full: Vec<String>,
    /// Keys allowed reads only.
    pub read_only: Vec<String>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys themselves.
        f.debug_struct("ApiKeys")
            .field("full", &self.full.len())
            .field("read_only", &self.read_only.len())
            .finish()
    }
}

/// What a request needs to be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads: any key.
    Read,
    /// Writes and administration: a full key.
    Write,
}

/// The calls of `vdb.v1.Vdb`, each with the access it needs: the one table
/// the server enforces, `vdbd --help` prints and `docs/server.md` is
/// checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    /// `CreateCollection`.
    CreateCollection,
    /// `DropCollection`.
    DropCollection,
    /// `ListCollections`.
    ListCollections,
    /// `DescribeCollection`.
    DescribeCollection,
    /// `AlterCollection`.
    AlterCollection,
    /// `Upsert`.
    Upsert,
    /// `Import`.
    Import,
    /// `Delete`.
    Delete,
    /// `Get`.
    Get,
    /// `Search`.
    Search,
    /// `Explain`.
    Explain,
    /// `Flush`.
    Flush,
    /// `Compact`.
    Compact,
    /// `Retrain`.
    Retrain,
    /// `Rebalance`.
    Rebalance,
    /// `Export`.
    Export,
    /// `Tune` measuring only.
    Tune,
    /// `Tune` with `apply` (changes the default nprobe).
    TuneApply,
    /// `CreateSnapshot`.
    CreateSnapshot,
    /// `ListSnapshots`.
    ListSnapshots,
    /// `RestoreSnapshot`.
    RestoreSnapshot,
    /// `DeleteSnapshot`.
    DeleteSnapshot,
}

impl Rpc {
    /// Every call, in the order of the proto.
    pub const ALL: [Rpc; 22] = [
        Rpc::CreateCollection,
        Rpc::DropCollection,
        Rpc::ListCollections,
        Rpc::DescribeCollection,
        Rpc::AlterCollection,
        Rpc::Upsert,
        Rpc::Import,
        Rpc::Delete,
        Rpc::Get,
        Rpc::Search,
        Rpc::Explain,
        Rpc::Flush,
        Rpc::Compact,
        Rpc::Retrain,
        Rpc::Rebalance,
        Rpc::Export,
        Rpc::Tune,
        Rpc::TuneApply,
        Rpc::CreateSnapshot,
        Rpc::ListSnapshots,
        Rpc::RestoreSnapshot,
        Rpc::DeleteSnapshot,
    ];

    /// What the call needs.
    pub fn access(self) -> Access {
        match self {
            Rpc::ListCollections
            | Rpc::DescribeCollection
            | Rpc::Get
            | Rpc::Search
            | Rpc::Explain
            | Rpc::Export
            | Rpc::Tune
            | Rpc::ListSnapshots => Access::Read,
            Rpc::CreateCollection
            | Rpc::DropCollection
            | Rpc::AlterCollection
            | Rpc::Upsert
            | Rpc::Import
            | Rpc::Delete
            | Rpc::Flush
            | Rpc::Compact
            | Rpc::Retrain
            | Rpc::Rebalance
            | Rpc::TuneApply
            | Rpc::CreateSnapshot
            | Rpc::RestoreSnapshot
            | Rpc::DeleteSnapshot => Access::Write,
        }
    }

    /// The call as people name it.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::CreateCollection => "CreateCollection",
            Rpc::DropCollection => "DropCollection",
            Rpc::ListCollections => "ListCollections",
            Rpc::DescribeCollection => "DescribeCollection",
            Rpc::AlterCollection => "AlterCollection",
            Rpc::Upsert => "Upsert",
            Rpc::Import => "Import",
            Rpc::Delete => "Delete",
            Rpc::Get => "Get",
            Rpc::Search => "Search",
            Rpc::Explain => "Explain",
            Rpc::Flush => "Flush",
            Rpc::Compact => "Compact",
            Rpc::Retrain => "Retrain",
            Rpc::Rebalance => "Rebalance",
            Rpc::Export => "Export",
            Rpc::Tune => "Tune",
            Rpc::TuneApply => "Tune with apply",
            Rpc::CreateSnapshot => "CreateSnapshot",
            Rpc::ListSnapshots => "ListSnapshots",
            Rpc::RestoreSnapshot => "RestoreSnapshot",
            Rpc::DeleteSnapshot => "DeleteSnapshot",
        }
    }
}

/// The calls a read-only key may make, as one sentence part:
/// "ListCollections, DescribeCollection, …, and Tune (without apply)".
pub fn read_only_rpcs() -> String {
    let names: Vec<&str> = Rpc::ALL
        .iter()
        .filter(|r| r.access() == Access::Read)
        .map(|r| match r {
            Rpc::Tune => "Tune (without apply)",
            other => other.name(),
        })
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

impl ApiKeys {
    /// Whether any key is configured (auth on).
    pub fn enabled(&self) -> bool {
        !self.full.is_empty() || !self.read_only.is_empty()
    }

    pub(crate) fn check<T>(&self, req: &Request<T>, rpc: Rpc) -> Result<(), Status> {
        if !self.enabled() {
            return Ok(());
        }
        let key = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("missing API key: send `authorization: Bearer <key>`")
            })?;
        let matches = |keys: &[String]| {
            keys.iter()
                .any(|k| constant_time_eq(k.as_bytes(), key.as_bytes()))
        };
        if matches(&self.full) {
            return Ok(());
        }
        if matches(&self.read_only) {
            return match rpc.access() {
                Access::Read => Ok(()),
                Access::Write => Err(Status::permission_denied(format!(
                    "this API key is read-only; {} needs a full key (read-only keys may call {})",
                    rpc.name(),
                    read_only_rpcs()
                ))),
            };
        }
        Err(Status::unauthenticated("invalid API key"))
    }
}

/// Compares without returning early on the first differing byte, so the
/// time taken does not reveal how much of a guessed key was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_only_calls_are_listed_once_and_match_the_docs() {
        assert_eq!(
            read_only_rpcs(),
            "ListCollections, DescribeCollection, Get, Search, Explain, Export, Tune (without apply) and ListSnapshots"
        );
        // docs/server.md states the same sentence (one source of truth).
        let docs = include_str!("../../../docs/server.md");
        assert!(
            docs.contains(&read_only_rpcs()),
            "docs/server.md does not list the read-only calls as the server enforces them: {}",
            read_only_rpcs()
        );
    }
}
