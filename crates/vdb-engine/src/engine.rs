//! The engine: a data directory of collections, opened, created, dropped
//! and closed, and the background scheduler they share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use vdb_fs::FsRef;

use crate::collection::{self, Collection};
use crate::config::{CollectionConfig, validate_name};
use crate::error::{Error, Result};
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
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            fs: vdb_fs::os(),
            runtime: None,
            maintenance_threads: None,
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
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
    scheduler: Arc<scheduler::Scheduler>,
    /// Set by [`Engine::shutdown`]: asking for a collection is refused.
    shut: std::sync::atomic::AtomicBool,
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
        let mut collections = BTreeMap::new();
        for entry in std::fs::read_dir(&root).map_err(|e| Error::io(&root, "list", e))? {
            let entry = entry.map_err(|e| Error::io(&root, "list", e))?;
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
            let c = Arc::new(Collection::open(
                Arc::clone(&fs),
                Arc::clone(&pool),
                &name,
                &path,
            )?);
            collections.insert(name, c);
        }
        let scheduler = scheduler::Scheduler::start(options.runtime)
            .map_err(|e| Error::io(dir, "start the maintenance runtime", e))?;
        for c in collections.values() {
            c.attach(background(&scheduler));
        }
        Ok(Engine {
            fs,
            pool,
            dir: dir.to_path_buf(),
            collections: RwLock::new(collections),
            scheduler,
            shut: std::sync::atomic::AtomicBool::new(false),
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
        validate_name(name)?;
        // The dimension first: the centroids are checked against it.
        config.validate()?;
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
        let mut map = self.collections.write().unwrap_or_else(|p| p.into_inner());
        if map.contains_key(name) {
            return Err(Error::AlreadyExists(name.to_string()));
        }
        let root = self.dir.join("collections");
        let dir = root.join(name);
        self.fs.create_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::AlreadyExists(name.to_string()),
            _ => Error::io(&dir, "create directory", e),
        })?;
        let files = vdb_fs::LocalDirectory::new(Arc::clone(&self.fs), &dir);
        let mut m = manifest::Manifest::new(config.clone());
        if let Some(c) = centroids {
            let generation = vdb_core::Generation(1);
            let file = vdb_format::centroid_file_name(generation);
            vdb_format::write_centroids_in(
                &files,
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
            m.trained_at = collection::unix_now();
        }
        // The manifest is the commit point: before it, the directory holds
        // no collection a restart would open.
        m.store(&files)?;
        self.fs
            .sync_dir(&root)
            .map_err(|e| Error::io(&root, "fsync directory", e))?;
        let c = Arc::new(Collection::open(
            Arc::clone(&self.fs),
            Arc::clone(&self.pool),
            name,
            &dir,
        )?);
        c.attach(background(&self.scheduler));
        map.insert(name.to_string(), Arc::clone(&c));
        Ok(c)
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
        let c = self
            .collections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .ok_or_else(|| Error::NotFound(name.to_string()))?;
        c.mark_dropped();
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
    fn check_open(&self) -> Result<()> {
        if self.shut.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::Closed(self.dir.display().to_string()));
        }
        Ok(())
    }
}

/// How a collection schedules work on the engine's maintenance task.
fn background(scheduler: &Arc<scheduler::Scheduler>) -> collection::Schedule {
    let scheduler = Arc::clone(scheduler);
    collection::Schedule(Box::new(move |task| scheduler.schedule(task)))
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.scheduler.stop();
    }
}
