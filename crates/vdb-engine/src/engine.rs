//! The engine: a data directory of collections, opened, created, dropped
//! and closed, and the background scheduler they share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use vdb_fs::FsRef;

use crate::collection::{self, Collection};
use crate::config::{CollectionConfig, validate_name};
use crate::error::{Error, Result};
use crate::follower::{self, Collections, Follower};
use crate::shared_store::{OpenAs, open_shared};
use crate::snapshot::{self, SnapshotInfo};
use crate::{manifest, scheduler};

/// Centroids trained elsewhere, for
/// [`Engine::create_collection_with_centroids`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedCentroids {
    /// `nlist × dim` values, row-major, prepared for the metric.
    pub values: Vec<f32>,
    /// Rows they were trained on: the retraining growth rule compares
    /// with it (0 = no baseline; the rule waits for the next training).
    pub trained_rows: u64,
    /// faiss's imbalance factor of the lists at training: the imbalance
    /// rule compares with it (0 = unknown; the rule waits). The drift rule
    /// has no baseline for centroids trained elsewhere and starts after the
    /// first retraining here.
    pub imbalance: f64,
}

/// How to open an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The file system every change to the data directory goes through:
    /// the operating system's, or a simulated one in crash tests.
    pub fs: FsRef,
    /// The tokio runtime that runs background maintenance (its blocking
    /// pool does the work). `None`: the engine starts a small runtime of its
    /// own, so programs without one need not care.
    pub runtime: Option<tokio::runtime::Handle>,
    /// Threads for the CPU work of flushes, training and compaction
    /// (k-means, assigning rows to lists). `None`: one fewer than the cores
    /// (at least one), so searches keep a core while maintenance runs.
    pub maintenance_threads: Option<usize>,
    /// Where the collections' files and manifests live when that is not
    /// the data directory itself (an object store; see `vdb-objstore`).
    /// The data directory is then each collection's local cache and log,
    /// and may start empty: the collections are those the store holds.
    /// `None`: everything is in the data directory.
    pub store: Option<Arc<dyn vdb_fs::Store>>,
    /// Open the store's collections as a read replica: serve reads of
    /// what another node writes, follow its manifests (and shipped log),
    /// and refuse every write ([`Error::ReadOnly`]). Needs `store`.
    pub replica: bool,
    /// How often a replica asks the store for new manifests, log chunks
    /// and collections (its lag is about this plus the time to load what
    /// changed).
    pub follow_interval: Duration,
    /// Bytes each collection's memtable may hold (batches being flushed
    /// included) before its writers flush it themselves instead of
    /// leaving it to the background: the bound on memory when
    /// maintenance cannot keep up. A flush is asked for in the
    /// background at a quarter of it (or at the collection's
    /// `flush_rows`).
    pub memtable_limit: u64,
}

/// The default [`EngineOptions::memtable_limit`]: 1 GiB.
pub const DEFAULT_MEMTABLE_LIMIT: u64 = 1 << 30;

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            fs: vdb_fs::os(),
            runtime: None,
            maintenance_threads: None,
            store: None,
            replica: false,
            follow_interval: Duration::from_secs(1),
            memtable_limit: DEFAULT_MEMTABLE_LIMIT,
        }
    }
}

/// An open data directory: `<dir>/collections/<name>/`.
///
/// Flushes requested by writes run as a background task on tokio (see
/// [`EngineOptions::runtime`]); [`Engine::close`] (or dropping the engine)
/// finishes queued work first, so call it where blocking is allowed (in
/// async code, from `spawn_blocking`).
#[derive(Debug)]
pub struct Engine {
    fs: FsRef,
    pool: Arc<rayon::ThreadPool>,
    dir: PathBuf,
    /// The store the collections live in, when not the data directory.
    store: Option<Arc<dyn vdb_fs::Store>>,
    /// This node's id, the writer named in the manifests it publishes to a
    /// shared store.
    node: u64,
    /// A read replica: it follows the store and never writes.
    replica: bool,
    collections: Collections,
    /// A replica's follower thread.
    follower: Mutex<Option<Follower>>,
    scheduler: Arc<scheduler::Scheduler>,
    /// [`EngineOptions::memtable_limit`].
    memtable_limit: u64,
    /// Set by [`Engine::shutdown`]: asking for a collection is refused.
    shut: std::sync::atomic::AtomicBool,
    /// Held while a snapshot is created or deleted, so a deletion never
    /// removes a file a creation has just found there.
    snapshots: Mutex<()>,
}

impl Engine {
    /// Opens (or creates) the data directory `dir` and every collection in
    /// it, recovering each from its manifest and write-ahead log.
    pub fn open(dir: &Path) -> Result<Engine> {
        Engine::open_with(dir, EngineOptions::default())
    }

    /// Opens `dir` with `options`.
    pub fn open_with(dir: &Path, options: EngineOptions) -> Result<Engine> {
        let fs = options.fs.clone();
        if options.replica && options.store.is_none() {
            return Err(Error::invalid(
                "replica",
                "a read replica follows collections on object storage, and none is configured (vdbd --object-store)",
            ));
        }
        let threads = options.maintenance_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1))
        });
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads.max(1))
                .thread_name(|i| format!("vdb-maint-{i}"))
                .build()
                .map_err(|e| {
                    Error::io(dir, "start maintenance threads", std::io::Error::other(e))
                })?,
        );
        let root = dir.join("collections");
        fs.create_dir_all(&root)
            .map_err(|e| Error::io(&root, "create directory", e))?;
        // `collections` (and a new data directory) must be durable entries
        // before a collection created in them is acknowledged.
        for d in [dir, root.as_path()] {
            fs.sync_dir(d)
                .map_err(|e| Error::io(d, "fsync directory", e))?;
        }
        let node = match &options.store {
            Some(_) => node_id(&fs, dir)?,
            None => 0,
        };
        let open_as = if options.replica {
            OpenAs::Replica
        } else {
            OpenAs::Writer { node }
        };
        let collections = match &options.store {
            None => open_local(&fs, &pool, &root)?,
            Some(store) => open_shared(&fs, &pool, &root, store.as_ref(), open_as)?,
        };
        let scheduler = scheduler::Scheduler::start(options.runtime)
            .map_err(|e| Error::io(dir, "start the maintenance runtime", e))?;
        for c in collections.values() {
            c.attach(background(&scheduler, options.memtable_limit));
        }
        let collections = Arc::new(RwLock::new(collections));
        let follower = match (&options.store, options.replica) {
            (Some(store), true) => {
                let ctx = follower::Context {
                    fs: Arc::clone(&fs),
                    pool: Arc::clone(&pool),
                    root: root.clone(),
                    store: Arc::clone(store),
                    collections: Arc::clone(&collections),
                };
                Some(
                    Follower::start(ctx, options.follow_interval)
                        .map_err(|e| Error::io(dir, "start the replica's follower", e))?,
                )
            }
            _ => None,
        };
        Ok(Engine {
            fs,
            pool,
            dir: dir.to_path_buf(),
            store: options.store,
            node,
            replica: options.replica,
            collections,
            follower: Mutex::new(follower),
            scheduler,
            memtable_limit: options.memtable_limit,
            shut: std::sync::atomic::AtomicBool::new(false),
            snapshots: Mutex::new(()),
        })
    }

    /// Creates a collection; fails with [`Error::AlreadyExists`] if the name
    /// is taken.
    pub fn create_collection(
        &self,
        name: &str,
        config: CollectionConfig,
    ) -> Result<Arc<Collection>> {
        self.create(name, config, None)
    }

    /// Creates a collection that starts trained with `centroids` (e.g.
    /// those of a faiss index being imported): its lists are those
    /// centroids from the first row on, `config.nlist` becomes their count,
    /// and the retraining rules start from the given baseline. The
    /// centroids are in place when the collection appears, or it does not
    /// appear.
    pub fn create_collection_with_centroids(
        &self,
        name: &str,
        config: CollectionConfig,
        centroids: TrainedCentroids,
    ) -> Result<Arc<Collection>> {
        self.create(name, config, Some(centroids))
    }

    fn create(
        &self,
        name: &str,
        mut config: CollectionConfig,
        centroids: Option<TrainedCentroids>,
    ) -> Result<Arc<Collection>> {
        self.check_open()?;
        self.check_writer()?;
        validate_name(name)?;
        // The dimension first: the centroids are checked against it.
        config.validate()?;
        if config.sync == vdb_wal::SyncMode::Object && self.store.is_none() {
            return Err(Error::invalid(
                "sync",
                "mode object ships the log to object storage; this data directory has none (vdbd --object-store)",
            ));
        }
        if let Some(c) = &centroids {
            if c.values.is_empty() || !c.values.len().is_multiple_of(config.dim) {
                return Err(Error::invalid(
                    "centroids",
                    format!(
                        "{} values are not a positive multiple of dimension {}",
                        c.values.len(),
                        config.dim
                    ),
                ));
            }
            for (i, x) in c.values.iter().enumerate() {
                if !x.is_finite() {
                    return Err(Error::invalid(
                        "centroids",
                        format!("value {i} is {x}; centroids must be finite"),
                    ));
                }
            }
            config.nlist = c.values.len() / config.dim;
        }
        config.validate()?;
        self.add(name, |files| {
            self.write_first_manifest(&config, centroids, files)
        })
    }

    /// Adds collection `name`: makes its local directory, lets `commit`
    /// write its files and publish its first manifest (the commit point),
    /// and opens it. If `commit` fails, nothing of it is left locally; if
    /// it fails because a file or manifest is there already, another node
    /// created the collection first in a shared store: `AlreadyExists`.
    pub(crate) fn add(
        &self,
        name: &str,
        commit: impl FnOnce(&dyn vdb_fs::Directory) -> Result<()>,
    ) -> Result<Arc<Collection>> {
        let mut map = self.collections.write().unwrap_or_else(|p| p.into_inner());
        if map.contains_key(name) {
            return Err(Error::AlreadyExists(name.to_string()));
        }
        let root = self.dir.join("collections");
        let dir = root.join(name);
        if self.store.is_some() && dir.exists() {
            // A cache left by a collection the store no longer holds.
            self.fs
                .remove_dir_all(&dir)
                .map_err(|e| Error::io(&dir, "remove a stale cache", e))?;
        }
        self.fs.create_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::AlreadyExists(name.to_string()),
            _ => Error::io(&dir, "create directory", e),
        })?;
        let files: Arc<dyn vdb_fs::Directory> = match &self.store {
            None => Arc::new(vdb_fs::LocalDirectory::new(Arc::clone(&self.fs), &dir)),
            Some(store) => store.directory(name, &dir)?,
        };
        if let Err(e) = commit(files.as_ref()) {
            // Nothing of it is acknowledged: leave no directory behind.
            let _ = self.fs.remove_dir_all(&dir);
            if e.is_fenced() || e.is_already_there() {
                return Err(Error::AlreadyExists(name.to_string()));
            }
            return Err(e);
        }
        self.fs
            .sync_dir(&root)
            .map_err(|e| Error::io(&root, "fsync directory", e))?;
        let c = Arc::new(Collection::open(
            Arc::clone(&self.fs),
            Arc::clone(&self.pool),
            name,
            &dir,
            files,
            self.node,
        )?);
        c.attach(background(&self.scheduler, self.memtable_limit));
        map.insert(name.to_string(), Arc::clone(&c));
        Ok(c)
    }

    /// Writes a new collection's centroid file (if it starts trained) and
    /// its first manifest: the commit point, before which no restart would
    /// open it.
    fn write_first_manifest(
        &self,
        config: &CollectionConfig,
        centroids: Option<TrainedCentroids>,
        files: &dyn vdb_fs::Directory,
    ) -> Result<()> {
        let mut m = manifest::Manifest::new(config.clone());
        m.uid = manifest::random_id();
        if files.shared() {
            // Files an interrupted drop of an earlier collection of this
            // name left behind: number this one's after them, so its names
            // never meet theirs (and its first open sweeps them).
            let left = files.list()?;
            if let Some(last) = left
                .iter()
                .filter_map(|f| vdb_format::file_sequence(f))
                .max()
            {
                m.next_seq = m.next_seq.max(last.saturating_add(1));
            }
        }
        if let Some(c) = centroids {
            let generation = vdb_core::Generation(1);
            let file = if files.shared() {
                vdb_format::centroid_file_name_at(generation, m.next_seq)
            } else {
                vdb_format::centroid_file_name(generation)
            };
            vdb_format::write_centroids_in(
                files,
                &file,
                vdb_format::CentroidMeta {
                    generation,
                    metric: config.metric,
                    dim: config.dim,
                },
                &c.values,
            )?;
            m.generation = 1;
            m.centroids = Some(file);
            m.trained_rows = c.trained_rows;
            m.trained_imbalance = c.imbalance;
            m.trained_generation = 1;
            m.trained_at = collection::unix_now();
        }
        if files.shared() {
            m.writer = self.node;
        }
        m.store(files)
    }

    /// The collection `name`.
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        self.check_open()?;
        self.collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(name.to_string()))
    }

    /// Names of all collections, sorted.
    pub fn list_collections(&self) -> Vec<String> {
        self.collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Drops a collection and deletes its files. Handles still held to it
    /// keep answering reads from their snapshot; writes fail with NotFound.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        self.check_open()?;
        self.check_writer()?;
        let c = self
            .collections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .ok_or_else(|| Error::NotFound(name.to_string()))?;
        c.mark_dropped();
        if let Some(store) = &self.store {
            store.remove(name)?;
        }
        let root = self.dir.join("collections");
        let from = root.join(name);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let to = root.join(format!(".dropped-{name}-{nanos}"));
        self.fs
            .rename(&from, &to)
            .map_err(|e| Error::io(&from, "rename for drop", e))?;
        self.fs
            .sync_dir(&root)
            .map_err(|e| Error::io(&root, "fsync directory", e))?;
        self.fs
            .remove_dir_all(&to)
            .map_err(|e| Error::io(&to, "remove", e))?;
        Ok(())
    }

    /// Where snapshots go unless told otherwise: `<data>/snapshots` (a
    /// file of a collection is linked there, not copied), or the object
    /// store's `PREFIX/snapshots`.
    pub fn default_repository(&self) -> Arc<dyn vdb_fs::Repository> {
        match &self.store {
            Some(store) => store.repository(),
            None => self.local_repository(&self.dir.join("snapshots")),
        }
    }

    /// A repository in the local directory `dir` (made when first
    /// written), changed through this engine's file system.
    pub fn local_repository(&self, dir: &Path) -> Arc<dyn vdb_fs::Repository> {
        Arc::new(vdb_fs::LocalRepository::new(Arc::clone(&self.fs), dir))
    }

    /// Takes a snapshot of collection `name` into `repo`: flushes it, then
    /// copies the files its manifest names (those the repository holds
    /// already from an earlier snapshot of it are shared) and writes the
    /// snapshot's descriptor. It holds every row acknowledged before the
    /// call. Writes and searches go on meanwhile; flushes, compactions and
    /// retrainings of the collection wait until the copy is done.
    /// `snapshot`: its name (default `<collection>-<UTC time>`).
    pub fn create_snapshot(
        &self,
        name: &str,
        repo: &dyn vdb_fs::Repository,
        snapshot: Option<&str>,
    ) -> Result<SnapshotInfo> {
        self.check_open()?;
        let c = self.collection(name)?;
        let _one = self.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        snapshot::create(&c, repo, snapshot)
    }

    /// The snapshots in `repo`, by name.
    pub fn list_snapshots(&self, repo: &dyn vdb_fs::Repository) -> Result<Vec<SnapshotInfo>> {
        snapshot::list(repo)
    }

    /// Creates collection `name` from snapshot `snapshot` of `repo`: its
    /// files are copied in (linked from a local repository), and it holds
    /// exactly what the snapshot holds, with the snapshot's settings.
    pub fn restore_snapshot(
        &self,
        repo: &dyn vdb_fs::Repository,
        snapshot: &str,
        name: &str,
    ) -> Result<Arc<Collection>> {
        self.check_open()?;
        self.check_writer()?;
        validate_name(name)?;
        let info = snapshot::read(repo, snapshot)?;
        let mut manifest = snapshot::restored_manifest(&info, self.store.is_some());
        self.add(name, |files| {
            snapshot::copy_files(repo, &info, files)?;
            if files.shared() {
                manifest.writer = self.node;
            }
            manifest.store(files)
        })
    }

    /// Deletes snapshot `snapshot` of `repo`, and the files of it that no
    /// other snapshot names.
    pub fn delete_snapshot(&self, repo: &dyn vdb_fs::Repository, snapshot: &str) -> Result<()> {
        let _one = self.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        snapshot::delete(repo, snapshot)
    }

    /// Flushes every collection and makes its log durable, reporting the
    /// first failure.
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    /// [`Engine::close`] through a shared reference, for an engine that
    /// other holders (e.g. requests a server abandoned) may still share:
    /// finishes background work, flushes every collection and makes its log
    /// durable. Afterwards the engine knows no collections and refuses to
    /// name one ([`Error::Closed`]); handles taken before keep working on
    /// their own.
    pub fn shutdown(&self) -> Result<()> {
        self.shut.store(true, std::sync::atomic::Ordering::Release);
        self.stop_following();
        self.scheduler.stop();
        let map = std::mem::take(&mut *self.collections.write().unwrap_or_else(|p| p.into_inner()));
        let mut first = None;
        for c in map.values() {
            if let Err(e) = c.close() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Engine {
    /// Whether this engine is a read replica.
    pub fn is_replica(&self) -> bool {
        self.replica
    }

    fn stop_following(&self) {
        let follower = self
            .follower
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut f) = follower {
            f.stop();
        }
    }

    fn check_writer(&self) -> Result<()> {
        if self.replica {
            return Err(Error::ReadOnly {
                name: String::new(),
                writer: 0,
            });
        }
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.shut.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::Closed(self.dir.display().to_string()));
        }
        Ok(())
    }
}

/// How a collection schedules work on the engine's maintenance task.
fn background(scheduler: &Arc<scheduler::Scheduler>, memtable_limit: u64) -> collection::Schedule {
    let scheduler = Arc::clone(scheduler);
    collection::Schedule {
        run: Box::new(move |task| scheduler.schedule(task)),
        memtable_limit,
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_following();
        self.scheduler.stop();
    }
}

/// Opens every collection of the data directory's `collections/` (the
/// local mode): one subdirectory with a manifest each.
fn open_local(
    fs: &FsRef,
    pool: &Arc<rayon::ThreadPool>,
    root: &Path,
) -> Result<BTreeMap<String, Arc<Collection>>> {
    let mut collections = BTreeMap::new();
    for entry in std::fs::read_dir(root).map_err(|e| Error::io(root, "list", e))? {
        let entry = entry.map_err(|e| Error::io(root, "list", e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !path.is_dir() {
            continue;
        }
        if name.starts_with(".dropped-") || !path.join(manifest::MANIFEST).exists() {
            // An interrupted drop, or a create that crashed before its
            // manifest was written: neither holds acknowledged data.
            fs.remove_dir_all(&path)
                .map_err(|e| Error::io(&path, "remove", e))?;
            continue;
        }
        if validate_name(&name).is_err() {
            continue;
        }
        let files = Arc::new(vdb_fs::LocalDirectory::new(Arc::clone(fs), &path));
        let c = Collection::open(Arc::clone(fs), Arc::clone(pool), &name, &path, files, 0)?;
        collections.insert(name, Arc::new(c));
    }
    Ok(collections)
}

/// This node's id: a random 64-bit number kept in `dir/NODE`, made the
/// first time (the writer a shared store's manifests name).
fn node_id(fs: &FsRef, dir: &Path) -> Result<u64> {
    let path = dir.join("NODE");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return u64::from_str_radix(text.trim(), 16).map_err(|_| Error::Corrupt {
            file: path.clone(),
            reason: format!("{:?} is not a hexadecimal node id", text.trim()),
        });
    }
    let id = manifest::random_id();
    vdb_fs::write_atomic(fs, &path, format!("{id:016x}\n").as_bytes())?;
    Ok(id)
}
