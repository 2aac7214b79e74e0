//! One collection's files on the object store, with a local cache.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use vdb_fs::{
    AtomicFile, CachedFile, Directory, Fenced, LocalDirectory, LogStore, NewFile, ScratchFile,
};

use crate::partial::{PART, PartFile, part_name};
use crate::{Inner, head};

/// Files at most this large are uploaded in one request, created only if
/// absent; larger ones in parts of this size.
const PART_BYTES: usize = 32 << 20;

/// Manifest versions kept behind the latest (a reader that listed an older
/// one still finds it).
const MANIFESTS_KEPT: u64 = 8;

/// How many of a file's last bytes are compared to tell whether an object
/// of its name is that file.
const TAIL_BYTES: u64 = 4096;

/// A collection's immutable files and manifests under
/// `PREFIX/collections/<name>/` on the object store, with a local
/// directory as the cache the engine maps files from.
#[derive(Debug)]
pub struct ObjectDirectory {
    inner: Arc<Inner>,
    /// `PREFIX/collections/<name>`.
    base: ObjectPath,
    local: LocalDirectory,
    /// The manifest version last read or published. Held while a
    /// version is being published, so a shipped log's check for a newer
    /// writer never mistakes this writer's own publication for one.
    version: Arc<Mutex<Option<u64>>>,
}

impl ObjectDirectory {
    pub(crate) fn new(inner: Arc<Inner>, base: ObjectPath, local: &Path) -> ObjectDirectory {
        let fs = Arc::clone(&inner.fs);
        ObjectDirectory {
            inner,
            base,
            local: LocalDirectory::new(fs, local),
            version: Arc::new(Mutex::new(None)),
        }
    }

    fn file(&self, name: &str) -> ObjectPath {
        self.base.clone().join("files").join(name)
    }

    fn manifest(&self, version: u64) -> ObjectPath {
        self.base
            .clone()
            .join("manifest")
            .join(format!("{version:020}"))
    }

    /// The names of the objects under `base/<dir>`.
    fn names_in(&self, dir: &str) -> vdb_fs::Result<Vec<String>> {
        let listed = self.inner.list(&self.base.clone().join(dir))?;
        Ok(listed
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// The manifest versions present, ascending.
    fn versions(&self) -> vdb_fs::Result<Vec<u64>> {
        let mut versions: Vec<u64> = self
            .names_in("manifest")?
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    fn version(&self) -> Option<u64> {
        *self.version.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_version(&self, v: u64) {
        *self.version.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
    }
}

impl ObjectDirectory {
    /// The names of the files with a local copy, whole or in part.
    fn local_names(&self) -> vdb_fs::Result<Vec<String>> {
        let mut names: Vec<String> = self
            .local
            .list()?
            .into_iter()
            .map(|n| n.strip_suffix(PART).map_or(n.clone(), str::to_string))
            .collect();
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    /// Removes the local copies of `name`, whole and in part (`op` names
    /// the removal in errors).
    fn drop_local(&self, name: &str, op: &'static str) -> vdb_fs::Result<()> {
        let part = self.local.path(&part_name(name));
        self.inner.cache.forget(&part);
        for path in [self.local.path(name), part] {
            match self.inner.fs.remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(vdb_fs::Error::new(op, &path, e)),
            }
        }
        Ok(())
    }
}

impl Inner {
    /// Writes object `object` into `file` (not committed).
    pub(crate) fn download(
        &self,
        object: &ObjectPath,
        file: &mut dyn NewFile,
    ) -> vdb_fs::Result<()> {
        let store = Arc::clone(&self.store);
        let at = object.clone();
        let got = self.run("download", object, async move { store.get(&at).await })?;
        let mut stream = got.into_stream();
        loop {
            let (rest, chunk) = self.run("download", object, async move {
                let chunk = stream.next().await.transpose();
                chunk.map(|c| (stream, c))
            })?;
            stream = rest;
            match chunk {
                None => return Ok(()),
                Some(bytes) => file.write_all(&bytes)?,
            }
        }
    }

    /// Uploads the local file `path` as object `to`, never replacing one
    /// that exists: in one request up to [`PART_BYTES`], else in parts,
    /// `parts_in_flight` at a time, read from the file as they go.
    pub(crate) fn upload(&self, path: &Path, to: &ObjectPath) -> vdb_fs::Result<()> {
        let read = |e| vdb_fs::Error::new("read", path, e);
        let file = std::fs::File::open(path).map_err(read)?;
        let len = file.metadata().map_err(read)?.len();
        let tail_len = len.min(TAIL_BYTES);
        // The whole file when it goes in one request, else its tail (to
        // recognise it in the store if the answer is lost).
        let (whole, tail) = if len <= PART_BYTES as u64 {
            let mut bytes = vec![0u8; len as usize];
            file.read_exact_at(&mut bytes, 0).map_err(read)?;
            let bytes = Bytes::from(bytes);
            let tail = bytes.slice((len - tail_len) as usize..);
            (Some(bytes), tail)
        } else {
            let mut tail = vec![0u8; tail_len as usize];
            file.read_exact_at(&mut tail, len - tail_len)
                .map_err(read)?;
            (None, Bytes::from(tail))
        };
        let store = Arc::clone(&self.store);
        let at = to.clone();
        let file = Arc::new(file);
        let parts = self.parts_in_flight;
        self.run("upload", to, async move {
            let sent = match whole {
                Some(bytes) => create(store.as_ref(), &at, bytes).await,
                None => create_in_parts(store.as_ref(), &at, file, len, parts).await,
            };
            match sent {
                Ok(()) => Ok(()),
                // The store may hold it all the same: an answer lost on the
                // way back, or a retried request that had succeeded.
                Err(e) => match holds_file(store.as_ref(), &at, len, &tail).await {
                    Ok(true) => Ok(()),
                    _ => Err(e),
                },
            }
        })
    }
}

impl Inner {
    /// Creates object `object` holding `bytes`, only if it does not exist.
    /// A creation whose answer was lost (or a retry that found it made)
    /// counts as made if the object holds exactly `bytes` — callers' bytes
    /// name their writer, so no other writer's object holds them. An
    /// object of another writer's there fails `op` with `fenced()` inside.
    fn create_once(
        &self,
        op: &'static str,
        object: &ObjectPath,
        bytes: &[u8],
        fenced: impl FnOnce() -> Fenced,
    ) -> vdb_fs::Result<()> {
        let store = Arc::clone(&self.store);
        let at = object.clone();
        let bytes = Bytes::from(bytes.to_vec());
        let put = self
            .block(async move { create_small(store.as_ref(), &at, bytes).await })
            .map_err(|e| vdb_fs::Error::new(op, &self.url_of(object), e))?;
        match put {
            Ok(()) => Ok(()),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(fenced().into_error(op, &self.url_of(object))),
            Err(e) => Err(self.error(op, object, e)),
        }
    }
}

/// [`create`], counting a creation whose answer was lost (or a retry
/// that found it made) as made if the object holds exactly `bytes`.
pub(crate) async fn create_small(
    store: &dyn ObjectStore,
    at: &ObjectPath,
    bytes: Bytes,
) -> object_store::Result<()> {
    match create(store, at, bytes.clone()).await {
        Ok(()) => Ok(()),
        Err(e) => match holds(store, at, &bytes).await {
            Ok(true) => Ok(()),
            _ => Err(e),
        },
    }
}

/// Creates object `at` holding `bytes`, only if it does not exist.
async fn create(
    store: &dyn ObjectStore,
    at: &ObjectPath,
    bytes: Bytes,
) -> object_store::Result<()> {
    let opts = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    store.put_opts(at, bytes.into(), opts).await.map(|_| ())
}

/// [`create`] for a file over one part: a multipart upload cannot be
/// conditional, so it checks first (file names are unique to their writer;
/// this is a second guard). Parts are read from `file` as they are sent,
/// at most `in_flight` at once (so at most that many parts are in
/// memory); the first failure aborts the upload.
async fn create_in_parts(
    store: &dyn ObjectStore,
    at: &ObjectPath,
    file: Arc<std::fs::File>,
    len: u64,
    in_flight: usize,
) -> object_store::Result<()> {
    if head(store, at).await?.is_some() {
        return Err(object_store::Error::AlreadyExists {
            path: at.to_string(),
            source: "files are never replaced".into(),
        });
    }
    let mut upload = store.put_multipart(at).await?;
    let mut running = tokio::task::JoinSet::new();
    let mut sent = async {
        let mut start = 0u64;
        while start < len {
            let n = (len - start).min(PART_BYTES as u64) as usize;
            let from = Arc::clone(&file);
            let part = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n];
                from.read_exact_at(&mut buf, start).map(|()| buf)
            })
            .await
            .map_err(local_error)?
            .map_err(local_error)?;
            // Parts are numbered in the order they are started.
            running.spawn(upload.put_part(Bytes::from(part).into()));
            start += n as u64;
            while running.len() >= in_flight.max(1) {
                finished(running.join_next().await)?;
            }
        }
        while !running.is_empty() {
            finished(running.join_next().await)?;
        }
        Ok(())
    }
    .await;
    if sent.is_ok() {
        sent = upload.complete().await.map(|_| ());
    }
    if sent.is_err() {
        running.abort_all();
        let _ = upload.abort().await;
    }
    sent
}

/// The result of a part's upload as it left a `JoinSet`.
fn finished(
    joined: Option<Result<object_store::Result<()>, tokio::task::JoinError>>,
) -> object_store::Result<()> {
    match joined {
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(local_error(e)),
        None => Ok(()),
    }
}

/// A failure on this side of an upload (reading the file, a task).
fn local_error(e: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: "vdb upload",
        source: Box::new(e),
    }
}

/// Whether object `at` is the file of length `len` ending in `tail` (its
/// last bytes: every file ends with a footer holding checksums; names are
/// unique to their writer, so an object of that name and length that ends
/// the same way is this file).
async fn holds_file(
    store: &dyn ObjectStore,
    at: &ObjectPath,
    len: u64,
    tail: &[u8],
) -> object_store::Result<bool> {
    let Some(meta) = head(store, at).await? else {
        return Ok(false);
    };
    if meta.size != len {
        return Ok(false);
    }
    let got = store.get_range(at, len - tail.len() as u64..len).await?;
    Ok(got[..] == *tail)
}

/// Whether object `at` holds exactly `bytes` (a manifest: small, read
/// whole).
async fn holds(
    store: &dyn ObjectStore,
    at: &ObjectPath,
    bytes: &Bytes,
) -> object_store::Result<bool> {
    match store.get(at).await {
        Ok(got) => Ok(got.bytes().await? == *bytes),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A file being written to the cache; committing it commits it locally
/// and then uploads it.
#[derive(Debug)]
struct Upload {
    local: Box<AtomicFile>,
    inner: Arc<Inner>,
    object: ObjectPath,
}

impl NewFile for Upload {
    fn write_all(&mut self, buf: &[u8]) -> vdb_fs::Result<()> {
        self.local.write_all(buf)
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> vdb_fs::Result<()> {
        self.local.write_all_at(buf, offset)
    }

    fn commit(self: Box<Self>) -> vdb_fs::Result<()> {
        let path = self.local.path().to_path_buf();
        self.local.commit()?;
        let uploaded = self.inner.upload(&path, &self.object);
        if uploaded.is_err() {
            // Not in the store, so not committed: the cached copy would
            // only be garbage.
            let _ = self.inner.fs.remove_file(&path);
        }
        uploaded
    }
}

impl Directory for ObjectDirectory {
    fn create(&self, name: &str) -> vdb_fs::Result<Box<dyn NewFile>> {
        let local = Box::new(AtomicFile::create(&self.inner.fs, &self.local.path(name))?);
        Ok(Box::new(Upload {
            local,
            inner: Arc::clone(&self.inner),
            object: self.file(name),
        }))
    }

    fn scratch(&self, name: &str) -> vdb_fs::Result<ScratchFile> {
        self.local.scratch(name)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.local.path(name)
    }

    /// The cached copy of `name`, downloaded first if the cache lacks it
    /// (written under a temporary name and renamed, like every file).
    fn fetch(&self, name: &str) -> vdb_fs::Result<PathBuf> {
        let path = self.local.path(name);
        if path.exists() {
            return Ok(path);
        }
        let mut file = Box::new(AtomicFile::create(&self.inner.fs, &path)?);
        self.inner.download(&self.file(name), file.as_mut())?;
        file.commit()?;
        Ok(path)
    }

    /// A segment this node did not write is cached in part: its local
    /// copy `<name>.part` is filled block by block as readers pin ranges
    /// of it (see the `cache` module). One this node wrote (or fetched
    /// whole) is read from its whole local copy.
    fn open_cached(&self, name: &str) -> vdb_fs::Result<Option<Arc<dyn CachedFile>>> {
        if self.local.path(name).exists() {
            return Ok(None);
        }
        let path = self.local.path(&part_name(name));
        Ok(Some(PartFile::open(&self.inner, self.file(name), path)?))
    }

    fn object(&self, name: &str) -> Option<String> {
        Some(self.inner.url_of(&self.file(name)).display().to_string())
    }

    /// The files in the store and in the cache.
    fn list(&self) -> vdb_fs::Result<Vec<String>> {
        let mut names = self.names_in("files")?;
        names.extend(self.local_names()?);
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    /// Removes files from the store and the cache (either may lack them).
    fn remove(&self, names: &[&str]) -> vdb_fs::Result<()> {
        for name in names {
            self.inner.delete(&self.file(name))?;
            self.drop_local(name, "remove")?;
        }
        Ok(())
    }

    /// Publishes the next manifest version, created only if absent: if
    /// another writer published it first, this one is fenced.
    fn publish_manifest(&self, bytes: &[u8]) -> vdb_fs::Result<()> {
        let mut version = self.version.lock().unwrap_or_else(|p| p.into_inner());
        let next = version.map_or(1, |v| v + 1);
        self.inner
            .create_once("publish", &self.manifest(next), bytes, || Fenced {
                location: self.inner.url_of(&self.base).display().to_string(),
                what: "manifest version",
                number: next,
            })?;
        *version = Some(next);
        drop(version);
        // Old versions are kept a while for readers that listed them;
        // pruning is best effort (a leftover is harmless).
        if next > MANIFESTS_KEPT + 1 {
            let old = self.manifest(next - MANIFESTS_KEPT - 1);
            let store = Arc::clone(&self.inner.store);
            let _ = self.inner.block(async move { store.delete(&old).await });
        }
        Ok(())
    }

    /// Reads the highest manifest version.
    fn read_manifest(&self) -> vdb_fs::Result<Vec<u8>> {
        let Some(&latest) = self.versions()?.last() else {
            return Err(vdb_fs::Error::new(
                "read",
                &self.inner.url_of(&self.base.clone().join("manifest")),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no manifest"),
            ));
        };
        let object = self.manifest(latest);
        let store = Arc::clone(&self.inner.store);
        let at = object.clone();
        let bytes = self.inner.run("read", &object, async move {
            store.get(&at).await?.bytes().await
        })?;
        self.set_version(latest);
        Ok(bytes.to_vec())
    }

    fn shared(&self) -> bool {
        true
    }

    fn manifest_version(&self) -> Option<u64> {
        self.version()
    }

    fn latest_manifest_version(&self) -> vdb_fs::Result<Option<u64>> {
        Ok(self.versions()?.last().copied())
    }

    /// The complete files of the cache (not those being downloaded).
    fn cached(&self) -> vdb_fs::Result<Vec<String>> {
        let mut names = self.local_names()?;
        names.retain(|n| !n.ends_with(".tmp"));
        Ok(names)
    }

    fn evict(&self, names: &[&str]) -> vdb_fs::Result<()> {
        for name in names {
            self.drop_local(name, "evict")?;
        }
        Ok(())
    }

    fn log_store(&self) -> Option<Arc<dyn LogStore>> {
        Some(Arc::new(ObjectLog {
            inner: Arc::clone(&self.inner),
            dir: self.base.clone().join("wal"),
            manifests: self.base.clone().join("manifest"),
            version: Arc::clone(&self.version),
        }))
    }
}

/// A collection's shipped log: chunk `first` is object
/// `PREFIX/collections/<name>/wal/{first:020}`, created once.
///
/// A chunk counts as shipped only if, once it is stored, no manifest
/// newer than this writer's exists: a new writer publishes one when it
/// claims the collection, then reads every chunk there is and ships its
/// own after them. So every chunk this writer acknowledges was stored
/// before the claim, and the new writer reads it; a chunk stored after
/// the claim is refused (its outcome unknown: the new writer may have
/// read it), and at most one such chunk follows the claim, so the new
/// writer's catching up ends.
#[derive(Debug)]
struct ObjectLog {
    inner: Arc<Inner>,
    /// `PREFIX/collections/<name>/wal`.
    dir: ObjectPath,
    /// `PREFIX/collections/<name>/manifest`.
    manifests: ObjectPath,
    /// The directory's manifest version (and the lock of its publication).
    version: Arc<Mutex<Option<u64>>>,
}

impl ObjectLog {
    fn chunk(&self, first: u64) -> ObjectPath {
        self.dir.clone().join(format!("{first:020}"))
    }
}

impl ObjectLog {
    /// After chunk `object` was stored: an error if a manifest newer than
    /// this writer's exists (another writer claimed the collection).
    fn still_the_writer(&self, object: &ObjectPath) -> vdb_fs::Result<()> {
        let version = self.version.lock().unwrap_or_else(|p| p.into_inner());
        let Some(v) = *version else {
            return Ok(());
        };
        let newer = self.manifests.clone().join(format!("{:020}", v + 1));
        if self.inner.size("check", &newer)?.is_none() {
            return Ok(());
        }
        let fenced = Fenced {
            location: self.inner.url_of(&self.manifests).display().to_string(),
            what: "manifest version",
            number: v + 1,
        };
        Err(fenced.into_error(
            "ship (its outcome is unknown: the new writer may have read it)",
            &self.inner.url_of(object),
        ))
    }
}

impl LogStore for ObjectLog {
    fn put(&self, first: u64, bytes: &[u8]) -> vdb_fs::Result<()> {
        let object = self.chunk(first);
        self.inner.create_once("ship", &object, bytes, || Fenced {
            location: self.inner.url_of(&self.dir).display().to_string(),
            what: "log chunk",
            number: first,
        })?;
        self.still_the_writer(&object)
    }

    fn list(&self) -> vdb_fs::Result<Vec<u64>> {
        let listed = self.inner.list(&self.dir)?;
        let mut firsts: Vec<u64> = listed
            .iter()
            .filter_map(|p| p.filename()?.parse().ok())
            .collect();
        firsts.sort_unstable();
        Ok(firsts)
    }

    fn get(&self, first: u64) -> vdb_fs::Result<Vec<u8>> {
        let object = self.chunk(first);
        let store = Arc::clone(&self.inner.store);
        let at = object.clone();
        let bytes = self.inner.run("read", &object, async move {
            store.get(&at).await?.bytes().await
        })?;
        Ok(bytes.to_vec())
    }

    fn remove(&self, firsts: &[u64]) -> vdb_fs::Result<()> {
        for &first in firsts {
            self.inner.delete(&self.chunk(first))?;
        }
        Ok(())
    }

    fn location(&self, first: u64) -> String {
        self.inner.url_of(&self.chunk(first)).display().to_string()
    }
}
