//! One collection: the write path (validate → WAL → commit → apply →
//! acknowledge), the memtable, flushes, training, recovery, and reads on
//! snapshots.
//!
//! All state changes happen under the collection's `inner` mutex, in WAL
//! order. Readers never take it for a search: they clone the current
//! [`Snapshot`] (an `Arc` of the live segments and memtable batches with
//! their deletion sets) and search that, so a search always sees one
//! complete state and every live row exactly once.
//!
//! Writers take `inner` only to give their record its place in the log; the
//! commit (write + fsync, shared by concurrent writers) happens outside the
//! lock, and the records are then applied strictly in LSN order.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, Weak};

use vdb_core::{Generation, InvertedLists, ListId, Lsn, RowSet, SegmentId};
use vdb_format::{CentroidFile, CentroidMeta, SegmentMeta, SegmentReader, SegmentWriter};
use vdb_fs::{Fs, FsRef};
use vdb_ivf::{CoarseQuantizer, KMeansParams, SearchParams, SearchTrace, Searcher, Source, kmeans};
use vdb_wal::{RecordKind, Wal, WalOptions};

use crate::codec;
use crate::config::CollectionConfig;
use crate::error::{Error, Result};
use crate::idmap::{Event, ShardedIdMap};
use crate::manifest::Manifest;
use crate::memtable::{MemBatch, RowRef};
use crate::policy::{Plan, PolicyInput, plan};
use crate::scheduler::Scheduler;
use crate::{Hit, Row};

/// Where the live version of an id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    /// Segment index in `Inner::segs`, row.
    Seg(u32, u32),
    /// Batch index in `Inner::mem`, row.
    Mem(u32, u32),
    /// Batch index in `Inner::frozen` (being flushed), row.
    Frozen(u32, u32),
}

#[derive(Debug)]
struct SegEntry {
    reader: Arc<SegmentReader>,
    deleted: Arc<RowSet>,
}

#[derive(Debug)]
struct MemEntry {
    batch: Arc<MemBatch>,
    deleted: Arc<RowSet>,
}

impl MemEntry {
    fn live(&self) -> usize {
        self.batch.rows() - self.deleted.count()
    }
}

#[derive(Debug)]
struct Inner {
    manifest: Manifest,
    quantizer: Arc<CoarseQuantizer>,
    segs: Vec<SegEntry>,
    mem: Vec<MemEntry>,
    /// Memtable batches being written by a flush or rewrite; still searched.
    frozen: Vec<MemEntry>,
    ids: ShardedIdMap<Loc>,
    /// Ids deleted since the last flush (written to its delete file).
    pending_deletes: HashSet<u64>,
    /// The last LSN applied.
    applied: Lsn,
    poisoned: Option<String>,
    /// Rows written since the last training, and the sum of their
    /// distances to their centroids (for the drift rule; not persisted).
    new_rows: u64,
    new_error: f64,
}

/// What a search sees: an immutable view of the collection.
#[derive(Debug)]
pub struct Snapshot {
    quantizer: Arc<CoarseQuantizer>,
    generation: u64,
    segs: Vec<(Arc<SegmentReader>, Arc<RowSet>)>,
    mem: Vec<(Arc<MemBatch>, Arc<RowSet>)>,
    live_rows: usize,
}

impl Snapshot {
    pub(crate) fn quantizer(&self) -> &CoarseQuantizer {
        &self.quantizer
    }

    pub(crate) fn sources(&self) -> Vec<Source<'_>> {
        self.segs
            .iter()
            .map(|(r, d)| Source {
                lists: r.as_ref() as &dyn InvertedLists,
                deleted: Some(d.as_ref()),
            })
            .chain(self.mem.iter().map(|(b, d)| Source {
                lists: b.as_ref() as &dyn InvertedLists,
                deleted: Some(d.as_ref()),
            }))
            .collect()
    }

    /// Rows visible in this snapshot.
    pub fn live_rows(&self) -> usize {
        self.live_rows
    }

    /// The snapshot's centroid generation (0 before training).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Lists of the snapshot's centroid generation (1 before training).
    pub fn nlist(&self) -> usize {
        self.quantizer.nlist()
    }
}

/// Options of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    /// Results per query.
    pub k: usize,
    /// Lists to probe; `None` uses the collection's default. Values above
    /// the number of lists are clamped (`usize::MAX` is exact search).
    pub nprobe: Option<usize>,
    /// Return each hit's payload.
    pub with_payload: bool,
}

/// Numbers that describe a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionStats {
    /// Visible rows.
    pub rows: u64,
    /// Rows still stored but hidden (deleted or replaced), awaiting compaction.
    pub deleted_rows: u64,
    /// Segment files.
    pub segments: usize,
    /// Rows in the memtable (visible or not).
    pub memtable_rows: u64,
    /// Bytes of segment files.
    pub segment_bytes: u64,
    /// Centroid generation (0 = untrained).
    pub generation: u64,
    /// Lists of the current generation (1 before training).
    pub lists: usize,
    /// faiss's imbalance factor of the current list sizes.
    pub imbalance: f64,
    /// Last LSN applied.
    pub last_lsn: u64,
    /// Every LSN up to this is in segment files.
    pub flushed_lsn: u64,
    /// When the current centroids were trained (Unix seconds; 0 = never).
    pub trained_at: u64,
    /// Rows when they were trained.
    pub trained_rows: u64,
    /// When the segments were last rewritten into one by a compaction or a
    /// training (Unix seconds; 0 = never).
    pub compacted_at: u64,
}

/// Settings to change with [`Collection::alter`]; `None` keeps the current
/// value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Alter {
    /// Default nprobe of searches.
    pub nprobe: Option<usize>,
    /// Lists to train; the collection is retrained at the next flush (or
    /// call [`Collection::retrain`]).
    pub nlist: Option<usize>,
    /// Memtable rows per flush.
    pub flush_rows: Option<usize>,
    /// Retraining thresholds.
    pub retrain: Option<crate::policy::RetrainPolicy>,
    /// Compaction thresholds.
    pub compaction: Option<crate::policy::CompactionPolicy>,
}

/// A durable collection of vectors. Shared as `Arc<Collection>`; every
/// method takes `&self` and is safe to call from many threads.
#[derive(Debug)]
pub struct Collection {
    fs: FsRef,
    /// Threads for maintenance's CPU work (k-means, assignment), fewer than
    /// the cores so searches keep one.
    pool: Arc<rayon::ThreadPool>,
    name: String,
    dir: PathBuf,
    config: CollectionConfig,
    wal: Wal,
    inner: Mutex<Inner>,
    applied_cv: Condvar,
    snapshot: RwLock<Arc<Snapshot>>,
    dropped: AtomicBool,
    default_nprobe: AtomicUsize,
    /// Serialises flush, compaction, training and alter.
    maintenance: Mutex<()>,
    /// Where to ask for background maintenance, and this collection's own
    /// handle to pass along (set by the engine after wrapping it in `Arc`).
    scheduler: OnceLock<(Arc<Scheduler>, Weak<Collection>)>,
    /// A background flush is requested and has not started yet.
    flush_requested: AtomicBool,
}

fn untrained_quantizer(cfg: &CollectionConfig) -> Result<Arc<CoarseQuantizer>> {
    Ok(Arc::new(CoarseQuantizer::new(
        cfg.dim,
        cfg.metric,
        vec![0.0; cfg.dim],
    )?))
}

impl Collection {
    /// Opens the collection stored in `dir`: reads the manifest, removes
    /// files it does not name, maps the segments and replays the WAL tail.
    pub(crate) fn open(
        fs: FsRef,
        pool: Arc<rayon::ThreadPool>,
        name: &str,
        dir: &Path,
    ) -> Result<Collection> {
        let manifest = Manifest::load(dir)?;
        let cfg = manifest.config.clone();
        remove_garbage(fs.as_ref(), dir, &manifest)?;

        let quantizer = match &manifest.centroids {
            Some(f) => {
                let c = CentroidFile::open(&dir.join(f))?;
                let m = c.meta();
                if m.dim != cfg.dim
                    || m.metric != cfg.metric
                    || m.generation.0 != manifest.generation
                {
                    return Err(Error::Corrupt {
                        file: dir.join(f),
                        reason: format!(
                            "centroids of generation {} (dim {}, {}) do not match the manifest (generation {}, dim {}, {})",
                            m.generation, m.dim, m.metric, manifest.generation, cfg.dim, cfg.metric
                        ),
                    });
                }
                Arc::new(CoarseQuantizer::new(
                    m.dim,
                    m.metric,
                    c.centroids().to_vec(),
                )?)
            }
            None => untrained_quantizer(&cfg)?,
        };

        let mut segs = Vec::with_capacity(manifest.segments.len());
        for (_, f) in &manifest.segments {
            let r = SegmentReader::open(&dir.join(f))?;
            let m = r.meta();
            if m.dim != cfg.dim
                || m.metric != cfg.metric
                || m.nlist != quantizer.nlist()
                || m.generation.0 != manifest.generation
            {
                return Err(Error::Corrupt {
                    file: dir.join(f),
                    reason:
                        "segment does not match the collection's dim, metric or centroid generation"
                            .into(),
                });
            }
            segs.push(r);
        }
        // Visibility: apply segments and delete files in flush order.
        // Segments and delete files replayed in flush order: the id map
        // keeps each id's last version, and every version an insert
        // replaces (or a delete removes) is hidden. Built on all cores.
        let total: usize = segs.iter().map(SegmentReader::rows).sum();
        let mut order: Vec<(u64, bool, usize)> = manifest
            .segments
            .iter()
            .enumerate()
            .map(|(i, (seq, _))| (*seq, false, i))
            .chain(
                manifest
                    .deletes
                    .iter()
                    .enumerate()
                    .map(|(i, (seq, _))| (*seq, true, i)),
            )
            .collect();
        order.sort_unstable();
        let mut deletes = Vec::with_capacity(manifest.deletes.len());
        for (_, f) in &manifest.deletes {
            deletes.push(vdb_format::read_deletes(&dir.join(f))?.1);
        }
        let mut events: Vec<Event<'_, Loc>> = Vec::with_capacity(order.len());
        for &(_, is_delete, i) in &order {
            if is_delete {
                if let Some(ids) = deletes.get(i) {
                    events.push(Event::Remove(ids));
                }
            } else if let Some(seg) = segs.get(i) {
                let s = i as u32;
                events.push(Event::Insert(
                    seg.ids(),
                    Box::new(move |r| Loc::Seg(s, r as u32)),
                ));
            }
        }
        let mut hidden: Vec<RowSet> = segs.iter().map(|r| RowSet::new(r.rows())).collect();
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let shards = if total < 100_000 { 1 } else { threads.min(8) };
        let ids = ShardedIdMap::build(shards, total, &events, &mut |old| {
            if let Loc::Seg(s, r) = old
                && let Some(set) = hidden.get_mut(s as usize)
            {
                set.insert(r as usize);
            }
        });
        drop(events);
        let segs: Vec<SegEntry> = segs
            .into_iter()
            .zip(hidden)
            .map(|(reader, deleted)| SegEntry {
                reader: Arc::new(reader),
                deleted: Arc::new(deleted),
            })
            .collect();

        let wal_opts = WalOptions {
            sync: cfg.sync,
            ..WalOptions::default()
        };
        let (wal, records, _report) = Wal::open_with(Arc::clone(&fs), &dir.join("wal"), wal_opts)?;
        let flushed = manifest.flushed_lsn;
        let mut inner = Inner {
            quantizer,
            segs,
            mem: Vec::new(),
            frozen: Vec::new(),
            ids,
            pending_deletes: HashSet::new(),
            applied: flushed,
            poisoned: None,
            new_rows: 0,
            new_error: 0.0,
            manifest,
        };
        let wal_dir = dir.join("wal");
        for rec in records.into_iter().filter(|r| r.lsn > flushed) {
            let corrupt = |reason: String| Error::Corrupt {
                file: wal_dir.clone(),
                reason: format!("record {}: {reason}", rec.lsn.0),
            };
            match rec.kind {
                RecordKind::Upsert => {
                    let rows = codec::decode_upsert(&rec.payload, cfg.dim).map_err(corrupt)?;
                    apply_upsert(&mut inner, rows)?;
                }
                RecordKind::Delete => {
                    let ids = codec::decode_delete(&rec.payload).map_err(corrupt)?;
                    apply_delete(&mut inner, &ids);
                }
                RecordKind::Event => {}
            }
            inner.applied = rec.lsn;
        }
        let c = Collection {
            fs,
            pool,
            name: name.to_string(),
            dir: dir.to_path_buf(),
            config: cfg.clone(),
            wal,
            snapshot: RwLock::new(Arc::new(snapshot_of(&inner))),
            inner: Mutex::new(inner),
            applied_cv: Condvar::new(),
            dropped: AtomicBool::new(false),
            default_nprobe: AtomicUsize::new(cfg.nprobe),
            maintenance: Mutex::new(()),
            scheduler: OnceLock::new(),
            flush_requested: AtomicBool::new(false),
        };
        Ok(c)
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The collection's settings.
    pub fn config(&self) -> CollectionConfig {
        self.lock().manifest.config.clone()
    }

    /// Changes settings, durably (the manifest is rewritten). Returns the
    /// new settings. Dimension and metric never change.
    pub fn alter(&self, change: Alter) -> Result<CollectionConfig> {
        let _guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        let mut inner = self.lock();
        self.check_poisoned(&inner)?;
        let mut next = inner.manifest.clone();
        let c = &mut next.config;
        c.nprobe = change.nprobe.unwrap_or(c.nprobe);
        c.nlist = change.nlist.unwrap_or(c.nlist);
        c.flush_rows = change.flush_rows.unwrap_or(c.flush_rows);
        c.retrain = change.retrain.unwrap_or(c.retrain);
        c.compaction = change.compaction.unwrap_or(c.compaction);
        c.validate()?;
        next.store(self.fs.as_ref(), &self.dir)?;
        self.default_nprobe
            .store(next.config.nprobe, Ordering::Release);
        inner.manifest = next;
        Ok(inner.manifest.config.clone())
    }

    /// Inserts rows, replacing any existing row with the same id (upsert).
    /// Returns the LSN of the write once it is acknowledged (durable as the
    /// collection's sync mode promises, and visible to searches).
    pub fn upsert(&self, mut rows: Vec<Row>) -> Result<Lsn> {
        if rows.is_empty() {
            return Err(Error::invalid("rows", "the batch is empty"));
        }
        let mut seen = HashSet::with_capacity(rows.len());
        for (i, r) in rows.iter_mut().enumerate() {
            vdb_core::validate_vector(&r.vector, self.config.dim)
                .map_err(|e| Error::invalid(format!("rows[{i}].vector"), e.to_string()))?;
            if !seen.insert(r.id) {
                return Err(Error::invalid(
                    format!("rows[{i}].id"),
                    format!("id {} appears twice in the batch", r.id),
                ));
            }
            self.config.metric.prepare(&mut r.vector);
        }
        let payload = codec::encode_upsert(&rows);
        self.write(RecordKind::Upsert, &payload, move |inner| {
            apply_upsert(inner, rows)
        })
    }

    /// Deletes rows by id (ids that do not exist are ignored). Returns the
    /// LSN once acknowledged.
    pub fn delete(&self, ids: &[u64]) -> Result<Lsn> {
        if ids.is_empty() {
            return Err(Error::invalid("ids", "the batch is empty"));
        }
        let payload = codec::encode_delete(ids);
        self.write(RecordKind::Delete, &payload, |inner| {
            apply_delete(inner, ids);
            Ok(())
        })
    }

    fn write(
        &self,
        kind: RecordKind,
        payload: &[u8],
        apply: impl FnOnce(&mut Inner) -> Result<()>,
    ) -> Result<Lsn> {
        if self.dropped.load(Ordering::Acquire) {
            return Err(Error::NotFound(self.name.clone()));
        }
        let lsn = {
            let inner = self.lock();
            self.check_poisoned(&inner)?;
            self.wal
                .append_deferred(&[(kind, payload)])
                .map_err(|e| match e {
                    vdb_wal::Error::TooLarge { len, max } => Error::invalid(
                        "rows",
                        format!("the batch encodes to {len} bytes, more than the {max} one write may hold; split it"),
                    ),
                    other => other.into(),
                })?
        };
        let committed = self.wal.commit_through(lsn);
        let mut inner = self.lock();
        while inner.applied.0 + 1 < lsn.0 {
            inner = self
                .applied_cv
                .wait(inner)
                .unwrap_or_else(|p| p.into_inner());
        }
        let result = committed
            .map_err(Error::from)
            .and_then(|()| self.check_poisoned(&inner))
            .and_then(|()| apply(&mut inner));
        inner.applied = lsn;
        if let Err(e) = &result
            && inner.poisoned.is_none()
        {
            inner.poisoned = Some(e.to_string());
        }
        self.applied_cv.notify_all();
        result?;
        let rows = memtable_rows(&inner);
        let flush_rows = inner.manifest.config.flush_rows;
        self.publish(&inner);
        drop(inner);
        if rows >= flush_rows.saturating_mul(BACKPRESSURE) {
            // Maintenance is not keeping up: this writer flushes (or waits
            // for the running maintenance), which bounds the memtable.
            let guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
            let due = memtable_rows(&self.lock()) >= flush_rows;
            if due {
                self.maintain(&guard, Task::Flush)?;
            }
        } else if rows >= flush_rows {
            match self.scheduler.get() {
                Some((s, me)) => {
                    if !self.flush_requested.swap(true, Ordering::AcqRel) {
                        s.request(me.clone());
                    }
                }
                None => {
                    if let Ok(guard) = self.maintenance.try_lock() {
                        self.maintain(&guard, Task::Flush)?;
                    }
                }
            }
        }
        Ok(lsn)
    }

    /// Hands the collection to a background scheduler for its flushes.
    pub(crate) fn attach(self: &Arc<Self>, scheduler: Arc<Scheduler>) {
        let _ = self.scheduler.set((scheduler, Arc::downgrade(self)));
    }

    /// The scheduler's entry point: flush if still needed.
    pub(crate) fn background_flush(&self) -> Result<()> {
        self.flush_requested.store(false, Ordering::Release);
        if self.dropped.load(Ordering::Acquire) {
            return Ok(());
        }
        let guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        let due = {
            let inner = self.lock();
            memtable_rows(&inner) >= inner.manifest.config.flush_rows
        };
        if !due {
            return Ok(());
        }
        self.maintain(&guard, Task::Flush).map(|_| ())
    }

    /// Writes the memtable to a segment, switches the manifest and trims the
    /// WAL; then retrains or compacts if the policies say so.
    pub fn flush(&self) -> Result<()> {
        let guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        self.maintain(&guard, Task::Flush).map(|_| ())
    }

    /// Trains new centroids with `nlist` lists (default: the configured
    /// nlist) on every live row and rewrites the collection as one segment
    /// clustered with them. Writes and searches continue meanwhile.
    pub fn retrain(&self, nlist: Option<usize>) -> Result<()> {
        let guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        let (nlist, rows) = {
            let inner = self.lock();
            self.check_poisoned(&inner)?;
            (
                nlist.unwrap_or(inner.manifest.config.nlist),
                inner.ids.len(),
            )
        };
        if nlist == 0 {
            return Err(Error::invalid("nlist", "must be at least 1"));
        }
        if nlist > rows {
            return Err(Error::invalid(
                "nlist",
                format!("{nlist} lists need at least {nlist} rows; the collection has {rows}"),
            ));
        }
        self.maintain(&guard, Task::Train(nlist)).map(|_| ())
    }

    /// Flushes the memtable, then rewrites every live row into one segment
    /// of the same generation, dropping deleted and replaced rows and the
    /// delete files. Returns whether anything was rewritten.
    pub fn compact(&self) -> Result<bool> {
        let guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        self.maintain(&guard, Task::Compact)
    }

    /// Runs one maintenance task (and, after a flush, whatever the
    /// retraining and compaction policies ask for), holding the maintenance
    /// lock but the collection lock only to freeze and to install:
    ///
    /// 1. *freeze* (locked): the memtable becomes read-only "frozen"
    ///    batches, still searched; new writes go to a fresh memtable;
    /// 2. *write* (unlocked): new segment / delete / centroid files and the
    ///    manifest that names them, from the frozen state;
    /// 3. *install* (locked): the new files replace the frozen state; rows
    ///    replaced or deleted while 2 ran are hidden in the new segment.
    fn maintain(&self, guard: &MutexGuard<'_, ()>, task: Task) -> Result<bool> {
        self.pool.install(|| self.maintain_in_pool(guard, task))
    }

    fn maintain_in_pool(&self, _guard: &MutexGuard<'_, ()>, task: Task) -> Result<bool> {
        let done = self.run_task(task)?;
        if task == Task::Flush {
            let next = {
                let inner = self.lock();
                match plan(&inner.manifest.config.retrain, &policy_input(&inner)) {
                    Plan::Train { nlist, .. } => Some(Task::Train(nlist)),
                    Plan::Keep if needs_compaction(&inner) => Some(Task::Compact),
                    Plan::Keep => None,
                }
            };
            if let Some(t) = next {
                self.run_task(t)?;
            }
        }
        Ok(done)
    }

    fn run_task(&self, task: Task) -> Result<bool> {
        let frozen = {
            let mut inner = self.lock();
            self.check_poisoned(&inner)?;
            let hidden: usize = inner.segs.iter().map(|s| s.deleted.count()).sum();
            let idle = match task {
                Task::Flush => inner.mem.is_empty() && inner.pending_deletes.is_empty(),
                Task::Compact => {
                    inner.mem.is_empty()
                        && inner.pending_deletes.is_empty()
                        && inner.segs.len() <= 1
                        && hidden == 0
                        && inner.manifest.deletes.is_empty()
                }
                Task::Train(nlist) => inner.ids.len() < nlist,
            };
            if idle {
                return Ok(false);
            }
            let f = freeze(&mut inner);
            self.publish(&inner);
            f
        };
        let written = match task {
            Task::Flush => self.write_flush(&frozen),
            Task::Compact => self.write_rewrite(&frozen, None),
            Task::Train(nlist) => self.write_rewrite(&frozen, Some(nlist)),
        };
        let mut inner = self.lock();
        let installed = written.and_then(|w| self.install(&mut inner, w));
        if let Err(e) = &installed {
            inner.poisoned = Some(e.to_string());
        }
        self.publish(&inner);
        drop(inner);
        installed?;
        self.wal.rotate()?;
        self.wal.truncate_through(frozen.lsn)?;
        Ok(true)
    }

    /// Phase 2 of a flush: the frozen batches' live rows as one segment,
    /// the frozen deletes as a delete file, and the manifest naming both.
    fn write_flush(&self, f: &Frozen) -> Result<Written> {
        let seq = f.manifest.next_seq;
        let mut next = f.manifest.clone();
        next.next_seq += 1;
        next.flushed_lsn = f.lsn;
        let mut rows: Vec<(ListId, Origin)> = Vec::new();
        for (b, (batch, deleted)) in f.mem.iter().enumerate() {
            for r in 0..batch.rows() {
                if !deleted.contains(r)
                    && let Some(row) = batch.row(r)
                {
                    rows.push((row.list, Origin::Frozen(b, r)));
                }
            }
        }
        rows.sort_by_key(|&(l, _)| l);
        let mut segment = None;
        if !rows.is_empty() {
            let file = vdb_format::segment_file_name(SegmentId(seq));
            let reader = self.write_rows(&file, f, &f.quantizer, f.manifest.generation, &rows)?;
            next.segments.push((seq, file));
            segment = Some((reader, rows.into_iter().map(|(_, o)| o).collect()));
        }
        if !f.pending_deletes.is_empty() {
            let file = vdb_format::delete_file_name(seq);
            vdb_format::write_deletes_with(
                &self.fs,
                &self.dir.join(&file),
                seq,
                &f.pending_deletes,
            )?;
            next.deletes.push((seq, file));
        }
        next.store(self.fs.as_ref(), &self.dir)?;
        Ok(Written {
            manifest: next,
            segment,
            replaces_all: false,
            quantizer: None,
        })
    }

    /// Phase 2 of a compaction (`nlist` = None) or a training: every live
    /// row of the frozen state as one segment, clustered with new centroids
    /// when training, and a manifest naming only it.
    fn write_rewrite(&self, f: &Frozen, nlist: Option<usize>) -> Result<Written> {
        let dim = self.config.dim;
        let mut live: Vec<Origin> = Vec::new();
        for (i, (reader, deleted)) in f.segs.iter().enumerate() {
            live.extend(
                (0..reader.rows())
                    .filter(|&r| !deleted.contains(r))
                    .map(|r| Origin::Seg(i, r)),
            );
        }
        for (b, (batch, deleted)) in f.mem.iter().enumerate() {
            live.extend(
                (0..batch.rows())
                    .filter(|&r| !deleted.contains(r))
                    .map(|r| Origin::Frozen(b, r)),
            );
        }
        let seq = f.manifest.next_seq;
        let mut next = f.manifest.clone();
        next.next_seq += 1;
        next.flushed_lsn = f.lsn;
        next.deletes.clear();
        next.compacted_at = unix_now();
        let (rows, quantizer, generation) = match nlist {
            None => {
                let mut rows: Vec<(ListId, Origin)> = live
                    .into_iter()
                    .filter_map(|o| f.row(o).map(|row| (row.list, o)))
                    .collect();
                rows.sort_by_key(|&(l, _)| l);
                (rows, None, f.manifest.generation)
            }
            Some(nlist) => {
                let mut vectors = Vec::with_capacity(live.len() * dim);
                live.retain(|&o| match f.row(o) {
                    Some(row) => {
                        vectors.extend_from_slice(row.vector);
                        true
                    }
                    None => false,
                });
                let (centroids, _report) = kmeans::train(
                    &vectors,
                    dim,
                    nlist,
                    self.config.metric,
                    &KMeansParams::default(),
                )?;
                let generation = f.manifest.generation + 1;
                let cen_file = vdb_format::centroid_file_name(Generation(generation));
                vdb_format::write_centroids_with(
                    &self.fs,
                    &self.dir.join(&cen_file),
                    CentroidMeta {
                        generation: Generation(generation),
                        metric: self.config.metric,
                        dim,
                    },
                    &centroids,
                )?;
                let quantizer = Arc::new(CoarseQuantizer::new(dim, self.config.metric, centroids)?);
                let assignment = quantizer.assign(&vectors)?;
                drop(vectors);
                let mut sizes = vec![0u64; nlist];
                for (l, _) in &assignment {
                    sizes[l.index()] += 1;
                }
                next.config.nlist = nlist;
                next.generation = generation;
                next.centroids = Some(cen_file);
                next.trained_rows = live.len() as u64;
                next.trained_error = assignment.iter().map(|&(_, d)| d as f64).sum::<f64>()
                    / live.len().max(1) as f64;
                next.trained_imbalance = vdb_ivf::imbalance_factor(&sizes);
                next.trained_at = next.compacted_at;
                let mut rows: Vec<(ListId, Origin)> =
                    assignment.into_iter().map(|(l, _)| l).zip(live).collect();
                rows.sort_by_key(|&(l, _)| l);
                (rows, Some(quantizer), generation)
            }
        };
        let file = vdb_format::segment_file_name(SegmentId(seq));
        let q = quantizer.as_ref().unwrap_or(&f.quantizer);
        let reader = self.write_rows(&file, f, q, generation, &rows)?;
        next.segments = vec![(seq, file)];
        next.store(self.fs.as_ref(), &self.dir)?;
        Ok(Written {
            manifest: next,
            segment: Some((reader, rows.into_iter().map(|(_, o)| o).collect())),
            replaces_all: true,
            quantizer,
        })
    }

    /// Writes rows of the frozen state, ordered by list, as segment `file`.
    fn write_rows(
        &self,
        file: &str,
        f: &Frozen,
        quantizer: &CoarseQuantizer,
        generation: u64,
        rows: &[(ListId, Origin)],
    ) -> Result<SegmentReader> {
        let path = self.dir.join(file);
        let meta = SegmentMeta {
            id: SegmentId(f.manifest.next_seq),
            generation: Generation(generation),
            metric: self.config.metric,
            dim: self.config.dim,
            nlist: quantizer.nlist(),
            with_payloads: true,
        };
        let mut w = SegmentWriter::create_with(&self.fs, &path, meta)?;
        for &(list, o) in rows {
            if let Some(row) = f.row(o) {
                w.push(
                    list,
                    row.id,
                    row.vector,
                    Some(row.payload.unwrap_or_default()),
                )?;
            }
        }
        w.finish()?;
        Ok(SegmentReader::open(&path)?)
    }

    /// Phase 3: puts what phase 2 wrote in place of the frozen state.
    fn install(&self, inner: &mut Inner, w: Written) -> Result<()> {
        let old_files: Vec<String> = inner.manifest.live_files().map(str::to_string).collect();
        if w.replaces_all {
            inner.segs.clear();
        }
        if let Some((reader, origins)) = w.segment {
            let i = inner.segs.len() as u32;
            let mut deleted = RowSet::new(reader.rows());
            for (r, (&id, origin)) in reader.ids().iter().zip(origins).enumerate() {
                if inner.ids.get(&id) == Some(&origin.loc()) {
                    inner.ids.insert(id, Loc::Seg(i, r as u32));
                } else {
                    // Replaced or deleted while the file was being written.
                    deleted.insert(r);
                }
            }
            inner.segs.push(SegEntry {
                deleted: Arc::new(deleted),
                reader: Arc::new(reader),
            });
        }
        inner.frozen.clear();
        inner.manifest = w.manifest;
        if let Some(q) = w.quantizer {
            // The memtable was grouped by the old lists: regroup it.
            inner.quantizer = q;
            inner.new_rows = 0;
            inner.new_error = 0.0;
            let old = std::mem::take(&mut inner.mem);
            for e in old {
                let rows: Vec<Row> = (0..e.batch.rows())
                    .filter(|&r| !e.deleted.contains(r))
                    .filter_map(|r| e.batch.row(r))
                    .map(|row| Row {
                        id: row.id,
                        vector: row.vector.to_vec(),
                        payload: row.payload.map(<[u8]>::to_vec),
                    })
                    .collect();
                if !rows.is_empty() {
                    let (batch, error) = MemBatch::build(rows, &inner.quantizer)?;
                    inner.new_rows += batch.rows() as u64;
                    inner.new_error += error;
                    push_batch(inner, batch);
                }
            }
        }
        // Files no longer named are garbage; snapshots that still map them
        // keep working (unlinked files stay mapped).
        for file in old_files {
            if !inner.manifest.live_files().any(|l| l == file) {
                let _ = self.fs.remove_file(&self.dir.join(file));
            }
        }
        Ok(())
    }

    /// Reads the live row with id `id`.
    pub fn get(&self, id: u64) -> Result<Option<Row>> {
        let inner = self.lock();
        Ok(inner.ids.get(&id).and_then(|&loc| {
            read_ref(&inner, MemRef::from(loc)).map(|row| Row {
                id: row.id,
                vector: row.vector.to_vec(),
                payload: row.payload.map(<[u8]>::to_vec),
            })
        }))
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The work a search of `queries` queries at `nprobe` (as in
    /// [`SearchOptions::nprobe`]) is expected to do on the current
    /// snapshot, in vector components compared: per query every centroid,
    /// plus the probed lists' share of the visible rows (as if the lists
    /// were equal in size). Exact search (`usize::MAX`) compares every row.
    /// A server uses it to decide whether a search is small enough to run
    /// on the thread that received it.
    pub fn search_work(&self, queries: usize, nprobe: Option<usize>) -> u64 {
        let snap = self.snapshot();
        let nlist = snap.nlist().max(1) as u64;
        let nprobe = nprobe
            .unwrap_or_else(|| self.default_nprobe.load(Ordering::Acquire))
            .clamp(1, nlist as usize) as u64;
        let rows = (snap.live_rows as u64).saturating_mul(nprobe) / nlist;
        (nlist + rows)
            .saturating_mul(self.config.dim as u64)
            .saturating_mul(queries as u64)
    }

    /// Searches every query (each `dim` long) on one snapshot.
    pub fn search(&self, queries: &[Vec<f32>], opts: SearchOptions) -> Result<Vec<Vec<Hit>>> {
        let snap = self.snapshot();
        let sources = snap.sources();
        let params = self.params(&opts)?;
        let mut searcher = Searcher::new();
        let mut out = Vec::with_capacity(queries.len());
        for (i, q) in queries.iter().enumerate() {
            let found = searcher
                .search_sources(&snap.quantizer, &sources, q, params, None)
                .map_err(|e| Error::invalid(format!("queries[{i}]"), e.to_string()))?;
            out.push(self.hits(found, opts.with_payload));
        }
        Ok(out)
    }

    /// Searches one query and returns what the search did with the hits.
    pub fn search_traced(
        &self,
        query: &[f32],
        opts: SearchOptions,
    ) -> Result<(Vec<Hit>, SearchTrace)> {
        let snap = self.snapshot();
        let sources = snap.sources();
        let params = self.params(&opts)?;
        let mut trace = SearchTrace::default();
        let found = Searcher::new()
            .search_sources(&snap.quantizer, &sources, query, params, Some(&mut trace))
            .map_err(|e| Error::invalid("query", e.to_string()))?;
        Ok((self.hits(found, opts.with_payload), trace))
    }

    pub(crate) fn params(&self, opts: &SearchOptions) -> Result<SearchParams> {
        if opts.k == 0 {
            return Err(Error::invalid("k", "must be at least 1"));
        }
        let nprobe = opts
            .nprobe
            .unwrap_or_else(|| self.default_nprobe.load(Ordering::Acquire));
        if nprobe == 0 {
            return Err(Error::invalid("nprobe", "must be at least 1"));
        }
        Ok(SearchParams { k: opts.k, nprobe })
    }

    pub(crate) fn hits(&self, found: Vec<vdb_core::Neighbor>, with_payload: bool) -> Vec<Hit> {
        let payloads: Vec<Option<Vec<u8>>> = if with_payload {
            let inner = self.lock();
            found
                .iter()
                .map(|n| {
                    inner
                        .ids
                        .get(&n.id.0)
                        .and_then(|&loc| read_ref(&inner, MemRef::from(loc)))
                        .and_then(|row| row.payload.map(<[u8]>::to_vec))
                })
                .collect()
        } else {
            vec![None; found.len()]
        };
        found
            .into_iter()
            .zip(payloads)
            .map(|(n, payload)| Hit {
                id: n.id.0,
                distance: n.distance,
                payload,
            })
            .collect()
    }

    /// Numbers describing the collection.
    pub fn stats(&self) -> CollectionStats {
        let inner = self.lock();
        let mut sizes = vec![0u64; inner.quantizer.nlist()];
        let stored: u64 = inner
            .segs
            .iter()
            .map(|s| s.reader.rows() as u64)
            .sum::<u64>()
            + inner
                .frozen
                .iter()
                .chain(&inner.mem)
                .map(|m| m.batch.rows() as u64)
                .sum::<u64>();
        for s in &inner.segs {
            for (l, size) in sizes.iter_mut().enumerate() {
                *size += s.reader.list_len(ListId(l as u32)) as u64;
            }
        }
        for m in inner.frozen.iter().chain(&inner.mem) {
            for (l, size) in sizes.iter_mut().enumerate() {
                *size += m.batch.list_len(ListId(l as u32)) as u64;
            }
        }
        CollectionStats {
            rows: inner.ids.len() as u64,
            deleted_rows: stored - inner.ids.len() as u64,
            segments: inner.segs.len(),
            memtable_rows: memtable_rows(&inner) as u64,
            segment_bytes: inner.segs.iter().map(|s| s.reader.file_len()).sum(),
            generation: inner.manifest.generation,
            lists: inner.quantizer.nlist(),
            imbalance: vdb_ivf::imbalance_factor(&sizes),
            last_lsn: inner.applied.0,
            flushed_lsn: inner.manifest.flushed_lsn.0,
            trained_at: inner.manifest.trained_at,
            trained_rows: inner.manifest.trained_rows,
            compacted_at: inner.manifest.compacted_at,
        }
    }

    /// Flushes the memtable and makes the log durable: what `close` does.
    pub fn close(&self) -> Result<()> {
        self.flush()?;
        self.wal.sync()?;
        Ok(())
    }

    pub(crate) fn mark_dropped(&self) {
        self.dropped.store(true, Ordering::Release);
    }

    fn publish(&self, inner: &Inner) {
        let snap = Arc::new(snapshot_of(inner));
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = snap;
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update of `Inner` completes before the next fallible step,
        // so a panicking thread cannot leave it half-changed.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_poisoned(&self, inner: &Inner) -> Result<()> {
        match &inner.poisoned {
            Some(cause) => Err(Error::Poisoned {
                name: self.name.clone(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// A maintenance task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Flush,
    Compact,
    Train(usize),
}

/// Where a row of a frozen state was when it was frozen.
#[derive(Debug, Clone, Copy)]
enum Origin {
    Seg(usize, usize),
    Frozen(usize, usize),
}

impl Origin {
    fn loc(self) -> Loc {
        match self {
            Origin::Seg(i, r) => Loc::Seg(i as u32, r as u32),
            Origin::Frozen(b, r) => Loc::Frozen(b as u32, r as u32),
        }
    }
}

/// What maintenance works from: the collection as of the freeze, in
/// immutable pieces that need no lock to read.
#[derive(Debug)]
struct Frozen {
    segs: Vec<(Arc<SegmentReader>, Arc<RowSet>)>,
    mem: Vec<(Arc<MemBatch>, Arc<RowSet>)>,
    pending_deletes: Vec<u64>,
    lsn: Lsn,
    manifest: Manifest,
    quantizer: Arc<CoarseQuantizer>,
}

impl Frozen {
    fn row(&self, o: Origin) -> Option<RowRef<'_>> {
        match o {
            Origin::Seg(i, r) => segment_row(&self.segs.get(i)?.0, r),
            Origin::Frozen(b, r) => self.mem.get(b)?.0.row(r),
        }
    }
}

/// What phase 2 of maintenance wrote.
#[derive(Debug)]
struct Written {
    manifest: Manifest,
    /// The new segment and where each of its rows came from.
    segment: Option<(SegmentReader, Vec<Origin>)>,
    /// Whether it replaces every segment (compaction, training).
    replaces_all: bool,
    /// New centroids (training).
    quantizer: Option<Arc<CoarseQuantizer>>,
}

/// Phase 1 of maintenance: the memtable becomes frozen batches (ids that
/// pointed into it now point into `frozen`), a new memtable starts, and the
/// state to work from is captured.
fn freeze(inner: &mut Inner) -> Frozen {
    debug_assert!(inner.frozen.is_empty(), "maintenance is serialised");
    let mem = std::mem::take(&mut inner.mem);
    for (b, e) in mem.iter().enumerate() {
        for r in 0..e.batch.rows() {
            if let Some(row) = e.batch.row(r)
                && inner.ids.get(&row.id) == Some(&Loc::Mem(b as u32, r as u32))
            {
                inner.ids.insert(row.id, Loc::Frozen(b as u32, r as u32));
            }
        }
    }
    inner.frozen = mem;
    let mut pending: Vec<u64> = inner.pending_deletes.drain().collect();
    pending.sort_unstable();
    Frozen {
        segs: segment_views(inner),
        mem: batch_views(inner.frozen.iter()),
        pending_deletes: pending,
        lsn: inner.applied,
        manifest: inner.manifest.clone(),
        quantizer: Arc::clone(&inner.quantizer),
    }
}

/// A row's place, for reading it.
#[derive(Debug, Clone, Copy)]
enum MemRef {
    Seg(usize, usize),
    Mem(usize, usize),
    Frozen(usize, usize),
}

impl From<Loc> for MemRef {
    fn from(l: Loc) -> MemRef {
        match l {
            Loc::Seg(s, r) => MemRef::Seg(s as usize, r as usize),
            Loc::Mem(b, r) => MemRef::Mem(b as usize, r as usize),
            Loc::Frozen(b, r) => MemRef::Frozen(b as usize, r as usize),
        }
    }
}

/// Row `r` of a segment.
fn segment_row(seg: &SegmentReader, r: usize) -> Option<RowRef<'_>> {
    let (list, vector) = seg.row(r)?;
    Some(RowRef {
        id: *seg.ids().get(r)?,
        vector,
        // Segments store "no payload" as an empty one.
        payload: seg.payload(r).ok().flatten().filter(|p| !p.is_empty()),
        list,
    })
}

fn read_ref(inner: &Inner, at: MemRef) -> Option<RowRef<'_>> {
    match at {
        MemRef::Seg(s, r) => segment_row(&inner.segs.get(s)?.reader, r),
        MemRef::Mem(b, r) => inner.mem.get(b)?.batch.row(r),
        MemRef::Frozen(b, r) => inner.frozen.get(b)?.batch.row(r),
    }
}

fn memtable_rows(inner: &Inner) -> usize {
    inner.mem.iter().map(|m| m.batch.rows()).sum()
}

fn hide(inner: &mut Inner, loc: Loc) {
    match loc {
        Loc::Seg(s, r) => {
            if let Some(e) = inner.segs.get_mut(s as usize) {
                Arc::make_mut(&mut e.deleted).insert(r as usize);
            }
        }
        Loc::Mem(b, r) => {
            if let Some(e) = inner.mem.get_mut(b as usize) {
                Arc::make_mut(&mut e.deleted).insert(r as usize);
            }
        }
        Loc::Frozen(b, r) => {
            if let Some(e) = inner.frozen.get_mut(b as usize) {
                Arc::make_mut(&mut e.deleted).insert(r as usize);
            }
        }
    }
}

fn apply_upsert(inner: &mut Inner, rows: Vec<Row>) -> Result<()> {
    for r in &rows {
        if let Some(loc) = inner.ids.get(&r.id).copied() {
            hide(inner, loc);
        }
        inner.pending_deletes.remove(&r.id);
    }
    let (batch, error) = MemBatch::build(rows, &inner.quantizer)?;
    if inner.manifest.generation > 0 {
        inner.new_rows += batch.rows() as u64;
        inner.new_error += error;
    }
    push_batch(inner, batch);
    merge_memtable(inner);
    Ok(())
}

/// Appends a memtable batch and points its rows' ids at it.
fn push_batch(inner: &mut Inner, batch: MemBatch) {
    let b = inner.mem.len() as u32;
    for r in 0..batch.rows() {
        if let Some(row) = batch.row(r) {
            inner.ids.insert(row.id, Loc::Mem(b, r as u32));
        }
    }
    inner.mem.push(MemEntry {
        deleted: Arc::new(RowSet::new(batch.rows())),
        batch: Arc::new(batch),
    });
}

fn apply_delete(inner: &mut Inner, ids: &[u64]) {
    for id in ids {
        if let Some(loc) = inner.ids.remove(id) {
            hide(inner, loc);
            inner.pending_deletes.insert(*id);
        }
    }
}

/// Keeps the number of memtable batches logarithmic in its size: while the
/// newest batch holds at least as many live rows as the one before it, the
/// two are merged (dropping hidden rows). Each row is copied O(log n) times.
fn merge_memtable(inner: &mut Inner) {
    while inner.mem.len() >= 2 {
        let n = inner.mem.len();
        if inner.mem[n - 2].live() > inner.mem[n - 1].live() {
            break;
        }
        let mut rows = Vec::new();
        for e in &inner.mem[n - 2..] {
            for r in 0..e.batch.rows() {
                if !e.deleted.contains(r)
                    && let Some(row) = e.batch.row(r)
                {
                    rows.push((
                        Row {
                            id: row.id,
                            vector: row.vector.to_vec(),
                            payload: row.payload.map(<[u8]>::to_vec),
                        },
                        row.list,
                    ));
                }
            }
        }
        inner.mem.truncate(n - 2);
        let batch = MemBatch::from_assigned(rows, inner.quantizer.dim(), inner.quantizer.nlist());
        push_batch(inner, batch);
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether the collection's compaction policy asks for a compaction.
fn needs_compaction(inner: &Inner) -> bool {
    let stored: usize = inner.segs.iter().map(|s| s.reader.rows()).sum();
    let hidden: usize = inner.segs.iter().map(|s| s.deleted.count()).sum();
    inner
        .manifest
        .config
        .compaction
        .due(inner.segs.len(), stored as u64, hidden as u64)
}

/// A write that finds the memtable this many times over its flush size
/// flushes it itself instead of leaving it to the background.
const BACKPRESSURE: usize = 4;

/// The numbers the retraining policy decides from.
fn policy_input(inner: &Inner) -> PolicyInput {
    let nlist = inner.quantizer.nlist();
    let mut sizes = vec![0u64; nlist];
    for s in &inner.segs {
        for (l, size) in sizes.iter_mut().enumerate() {
            *size += (s.reader.list_len(ListId(l as u32))
                - deleted_in_list(s.reader.as_ref(), &s.deleted, l)) as u64;
        }
    }
    for m in &inner.mem {
        for (l, size) in sizes.iter_mut().enumerate() {
            *size += (m.batch.list_len(ListId(l as u32))
                - deleted_in_list(m.batch.as_ref(), &m.deleted, l)) as u64;
        }
    }
    let m = &inner.manifest;
    PolicyInput {
        generation: m.generation,
        rows: inner.ids.len() as u64,
        train_threshold: m.config.train_threshold() as u64,
        nlist_config: m.config.nlist,
        nlist_now: if m.generation == 0 { 0 } else { nlist },
        trained_rows: m.trained_rows,
        trained_error: m.trained_error,
        trained_imbalance: m.trained_imbalance,
        new_rows: inner.new_rows,
        new_error: if inner.new_rows == 0 {
            0.0
        } else {
            inner.new_error / inner.new_rows as f64
        },
        imbalance: vdb_ivf::imbalance_factor(&sizes),
    }
}

/// Hidden rows of list `l` of a source.
fn deleted_in_list(lists: &dyn InvertedLists, deleted: &RowSet, l: usize) -> usize {
    if deleted.is_empty() {
        return 0;
    }
    let list = ListId(l as u32);
    let start = lists.list_row_start(list);
    (start..start + lists.list_len(list))
        .filter(|&r| deleted.contains(r))
        .count()
}

/// The segments with their deletion sets, shared.
fn segment_views(inner: &Inner) -> Vec<(Arc<SegmentReader>, Arc<RowSet>)> {
    inner
        .segs
        .iter()
        .map(|s| (Arc::clone(&s.reader), Arc::clone(&s.deleted)))
        .collect()
}

/// Memtable batches with their deletion sets, shared.
fn batch_views<'a>(
    entries: impl Iterator<Item = &'a MemEntry>,
) -> Vec<(Arc<MemBatch>, Arc<RowSet>)> {
    entries
        .map(|m| (Arc::clone(&m.batch), Arc::clone(&m.deleted)))
        .collect()
}

fn snapshot_of(inner: &Inner) -> Snapshot {
    Snapshot {
        quantizer: Arc::clone(&inner.quantizer),
        generation: inner.manifest.generation,
        segs: segment_views(inner),
        mem: batch_views(inner.frozen.iter().chain(&inner.mem)),
        live_rows: inner.ids.len(),
    }
}

/// Removes every file in `dir` the manifest does not name (leftovers of a
/// crash between writing a file and switching the manifest).
fn remove_garbage(fs: &dyn Fs, dir: &Path, manifest: &Manifest) -> Result<()> {
    let live: HashSet<&str> = manifest.live_files().collect();
    let mut removed = false;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, "list", e))? {
        let entry = entry.map_err(|e| Error::io(dir, "list", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == crate::manifest::MANIFEST || name == "wal" || live.contains(name) {
            continue;
        }
        let path = entry.path();
        if path.is_file() {
            fs.remove_file(&path)
                .map_err(|e| Error::io(&path, "remove unreferenced file", e))?;
            removed = true;
        }
    }
    if removed {
        fs.sync_dir(dir)
            .map_err(|e| Error::io(dir, "fsync directory", e))?;
    }
    Ok(())
}

const _: fn() = || {
    fn check<T: Send + Sync>() {}
    check::<Collection>();
    check::<Snapshot>();
};
