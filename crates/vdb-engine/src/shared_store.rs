//! The collections of a shared store (object storage): which there are,
//! each opened as its writer (claiming it) or as a read replica, with
//! `<data dir>/collections/<name>/` as its local cache and log.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use vdb_fs::FsRef;

use crate::collection::Collection;
use crate::config::validate_name;
use crate::error::{Error, Result};

/// How a node opens a collection in a shared store.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OpenAs {
    /// As its writer, node `node`, claiming it.
    Writer { node: u64 },
    /// As a read replica.
    Replica,
}

/// Opens every collection `store` holds, with `root/<name>` as its local
/// cache and log (created when missing); local directories of collections
/// the store does not hold are stale caches, removed.
pub(crate) fn open_shared(
    fs: &FsRef,
    pool: &Arc<rayon::ThreadPool>,
    root: &Path,
    store: &dyn vdb_fs::Store,
    open_as: OpenAs,
) -> Result<BTreeMap<String, Arc<Collection>>> {
    let names = store.collections()?;
    for entry in std::fs::read_dir(root).map_err(|e| Error::io(root, "list", e))? {
        let entry = entry.map_err(|e| Error::io(root, "list", e))?;
        let path = entry.path();
        let known = entry
            .file_name()
            .to_str()
            .is_some_and(|n| names.iter().any(|m| m == n));
        if path.is_dir() && !known {
            fs.remove_dir_all(&path)
                .map_err(|e| Error::io(&path, "remove a stale cache", e))?;
        }
    }
    let mut collections = BTreeMap::new();
    for name in names {
        if validate_name(&name).is_err() {
            continue;
        }
        let c = open_one(fs, pool, root, store, &name, open_as)?;
        collections.insert(name, Arc::new(c));
    }
    Ok(collections)
}

/// Opens collection `name` of `store`, with `root/<name>` as its local
/// cache and log (created when missing).
pub(crate) fn open_one(
    fs: &FsRef,
    pool: &Arc<rayon::ThreadPool>,
    root: &Path,
    store: &dyn vdb_fs::Store,
    name: &str,
    open_as: OpenAs,
) -> Result<Collection> {
    let path = root.join(name);
    fs.create_dir_all(&path)
        .map_err(|e| Error::io(&path, "create directory", e))?;
    fs.sync_dir(root)
        .map_err(|e| Error::io(root, "fsync directory", e))?;
    let files = store.directory(name, &path)?;
    match open_as {
        OpenAs::Writer { node } => {
            Collection::open(Arc::clone(fs), Arc::clone(pool), name, &path, files, node)
        }
        OpenAs::Replica => Collection::open_replica(Arc::clone(pool), name, files),
    }
}
