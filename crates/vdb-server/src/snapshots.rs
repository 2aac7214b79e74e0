//! The repositories snapshot requests name, and snapshots as messages.

use std::path::Path;
use std::sync::Arc;

use tonic::Status;
use vdb_engine::{Engine, Repository, SnapshotInfo};
use vdb_proto::v1 as pb;

use crate::convert::config_to_pb;
use crate::status::invalid;

/// How the server reaches the repositories requests name.
#[derive(Debug, Clone, Default)]
pub struct Repositories {
    /// The object store options (`vdbd --object-store-option`), used for
    /// `s3://` repositories too.
    pub object_store_options: Vec<(String, String)>,
}

impl Repositories {
    /// The repository `name` names: empty for the engine's own; an
    /// absolute directory on this machine; or `s3://BUCKET[/PREFIX]`.
    pub fn resolve(&self, engine: &Engine, name: &str) -> Result<Arc<dyn Repository>, Status> {
        if name.is_empty() {
            return Ok(engine.default_repository());
        }
        if name.starts_with("s3://") {
            let repo = vdb_objstore::ObjectRoot::repository_at(name, &self.object_store_options)
                .map_err(|e| invalid("repository", e.to_string()))?;
            return Ok(Arc::new(repo));
        }
        if name.contains("://") {
            return Err(invalid(
                "repository",
                format!("{name:?}: only s3:// URLs and directories are repositories"),
            ));
        }
        let dir = Path::new(name);
        if !dir.is_absolute() {
            return Err(invalid(
                "repository",
                format!(
                    "{name:?} is a relative path; give an absolute directory on the server's machine"
                ),
            ));
        }
        Ok(engine.local_repository(dir))
    }
}

/// A snapshot as its message.
pub fn snapshot_to_pb(s: &SnapshotInfo) -> pb::SnapshotInfo {
    pb::SnapshotInfo {
        name: s.name.clone(),
        collection: s.collection.clone(),
        created_at: s.created_at,
        repository: s.location.clone(),
        config: Some(config_to_pb(s.config())),
        generation: s.generation(),
        flushed_lsn: s.flushed_lsn(),
        files: s.files.len() as u64,
        bytes: s.bytes(),
        added_bytes: s.added_bytes,
    }
}
