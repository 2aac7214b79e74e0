//! A segment of the object store cached in part on this node: its local
//! copy `<file>.part` is filled by range requests as readers pin ranges
//! of it, with the node's [`Cache`](crate::cache) keeping the account.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use vdb_fs::{CachedFile, Pin};

use crate::Inner;
use crate::cache::{self, Pinned};

/// The suffix of local copies cached in part.
pub(crate) const PART: &str = ".part";

/// The local copy of file `name` cached in part.
pub(crate) fn part_name(name: &str) -> String {
    format!("{name}{PART}")
}

/// A segment of the store cached in part on this node.
#[derive(Debug)]
pub(crate) struct PartFile {
    inner: Arc<Inner>,
    /// Its number in the cache.
    id: u64,
    /// The local copy.
    path: PathBuf,
    len: u64,
    object: ObjectPath,
}

/// Blocks fetched in one range request at most (1 MiB): a large read
/// goes as several requests at once.
const RUN_BLOCKS: usize = 16;

/// Range requests of one pin in flight at once.
const FETCHES_IN_FLIGHT: usize = 8;

impl PartFile {
    /// Object `object` cached in part at local `path` (see the `cache`
    /// module): the copy this process has, or a new empty one.
    pub(crate) fn open(
        inner: &Arc<Inner>,
        object: ObjectPath,
        path: PathBuf,
    ) -> vdb_fs::Result<Arc<dyn CachedFile>> {
        let Some(len) = inner.size("open", &object)? else {
            return Err(vdb_fs::Error::new(
                "open",
                &inner.url_of(&object),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such object"),
            ));
        };
        let id = inner
            .cache
            .open(inner.fs.as_ref(), &path, len)
            .map_err(|e| vdb_fs::Error::new("create", &path, e))?;
        Ok(Arc::new(PartFile {
            inner: Arc::clone(inner),
            id,
            path,
            len,
            object,
        }))
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        self.inner.cache.close(self.id);
    }
}

impl CachedFile for PartFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn pin(&self, ranges: &[std::ops::Range<u64>]) -> vdb_fs::Result<Pin> {
        let blocks = cache::blocks_of(ranges, self.len);
        if blocks.is_empty() {
            return Ok(Pin::default());
        }
        let cache = &self.inner.cache;
        let Some((missing, handle)) = cache.pin(self.id, &blocks) else {
            return Err(vdb_fs::Error::new(
                "read",
                &self.path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the file was removed from the cache (a newer manifest dropped it)",
                ),
            ));
        };
        // Released on every way out, a failed fetch included.
        let pinned = Pinned {
            cache: Arc::clone(cache),
            id: self.id,
            blocks,
        };
        if !missing.is_empty() {
            let runs = cache::runs(&missing, RUN_BLOCKS, self.len);
            let requests = runs.len() as u64;
            self.fetch(runs, handle)?;
            cache.filled(self.id, &missing, requests);
        }
        Ok(Pin::new(pinned))
    }
}

impl PartFile {
    /// Fetches byte ranges `runs` of the object into the local copy,
    /// several at once.
    fn fetch(
        &self,
        runs: Vec<std::ops::Range<u64>>,
        handle: Arc<dyn vdb_fs::FileHandle>,
    ) -> vdb_fs::Result<()> {
        let store = Arc::clone(&self.inner.store);
        let at = self.object.clone();
        let done = self.inner.block(async move {
            futures_util::stream::iter(runs)
                .map(|range| {
                    let (store, at, handle) = (Arc::clone(&store), at.clone(), Arc::clone(&handle));
                    async move {
                        let start = range.start;
                        let want = range.end - range.start;
                        let bytes = store.get_range(&at, range).await.map_err(Fetch::Store)?;
                        if bytes.len() as u64 != want {
                            return Err(Fetch::Short(bytes.len() as u64, want));
                        }
                        handle.write_all_at(&bytes, start).map_err(Fetch::Write)
                    }
                })
                .buffer_unordered(FETCHES_IN_FLIGHT)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<(), Fetch>>()
        });
        let url = self.inner.url_of(&self.object);
        match done {
            Err(e) => Err(vdb_fs::Error::new("fetch", &url, e)),
            Ok(Ok(())) => Ok(()),
            Ok(Err(Fetch::Store(e))) => Err(self.inner.error("fetch", &self.object, e)),
            Ok(Err(Fetch::Short(got, want))) => Err(vdb_fs::Error::new(
                "fetch",
                &url,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("a range of {want} bytes came back with {got}"),
                ),
            )),
            Ok(Err(Fetch::Write(e))) => Err(vdb_fs::Error::new("write", &self.path, e)),
        }
    }
}

/// Why a range could not be fetched into the cache.
enum Fetch {
    Store(object_store::Error),
    Short(u64, u64),
    Write(std::io::Error),
}
