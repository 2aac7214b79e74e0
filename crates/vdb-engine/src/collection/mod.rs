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

mod apply;
mod follow;
mod maintain;
mod next;
mod open;
mod read;
mod runs;
mod shared;

pub use runs::{MaintenanceKind, MaintenanceRuns, WriteCounts};
mod write;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, Weak};

use vdb_core::filter::Bound;
use vdb_core::{Filter, InvertedLists, Lsn, RowFilter, RowSet};
use vdb_format::SegmentReader;
use vdb_fs::Directory;
use vdb_ivf::{CoarseQuantizer, Source};
use vdb_wal::Wal;

use crate::backlog::NextLists;
use crate::config::CollectionConfig;
use crate::error::{Error, Result};
use crate::idmap::ShardedIdMap;
use crate::manifest::Manifest;
use crate::memtable::{MemBatch, WholeBatch};

/// Where a row is: the id map's value for an id's live version, and the
/// place a row of a frozen state (maintenance's input) was frozen at —
/// there `Frozen` batches are numbered as the frozen state numbers them,
/// which is `Inner::frozen`'s numbering while the maintenance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// The centroid generation whose lists group the batch: the
    /// collection's, or the next one while a first training installs it
    /// (see [`Inner::next`]).
    generation: u64,
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
    /// The failure that stopped writes, until the collection is reopened.
    poisoned: Option<Arc<Error>>,
    /// Rows written since the last training, and the sum of their
    /// distances to their centroids (for the drift rule; not persisted).
    new_rows: u64,
    new_error: f64,
    /// Bytes of segments written since open for rows written to a segment
    /// for the first time (from the memtable), and for rows rewritten
    /// (from segments, by merges and trainings).
    flushed_bytes: u64,
    rewritten_bytes: u64,
    /// Why the last compaction or training the policies asked for did not
    /// run (too little free space); cleared when one runs.
    postponed: Option<String>,
    /// The centroids a first training is installing, from when they are
    /// known until the install: new batches are grouped by them already,
    /// so rows written meanwhile need not be assigned again afterwards.
    /// Searches still see those batches whole, as they see every row of a
    /// collection not trained yet.
    next: Option<NextLists>,
}

/// What a search sees: an immutable view of the collection.
pub struct Snapshot {
    quantizer: Arc<CoarseQuantizer>,
    generation: u64,
    segs: Vec<(Arc<SegmentReader>, Arc<RowSet>)>,
    mem: Vec<(Arc<MemBatch>, Arc<RowSet>)>,
    /// Each batch's lists as searches see them ([`searched_as`]).
    mem_lists: Vec<Arc<dyn InvertedLists>>,
    live_rows: usize,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.generation)
            .field("segments", &self.segs.len())
            .field("batches", &self.mem.len())
            .field("live_rows", &self.live_rows)
            .finish()
    }
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
                filter: None,
            })
            .chain(
                self.mem
                    .iter()
                    .zip(&self.mem_lists)
                    .map(|((_, d), lists)| Source {
                        lists: lists.as_ref(),
                        deleted: Some(d.as_ref()),
                        filter: None,
                    }),
            )
            .collect()
    }

    /// `filter` bound to each source's field columns, in
    /// [`Snapshot::sources`] order.
    pub(crate) fn bind<'a>(&'a self, filter: &Filter) -> Vec<Bound<'a>> {
        self.segs
            .iter()
            .map(|(r, _)| filter.bind(r.columns(), r.ids(), Some(r.list_index())))
            .chain(self.mem.iter().zip(&self.mem_lists).map(|((b, _), lists)| {
                // A batch seen whole has no per-list summaries.
                let index = (lists.nlist() == b.nlist()).then(|| b.list_index());
                filter.bind(b.columns(), b.ids(), index)
            }))
            .collect()
    }

    /// [`Snapshot::sources`], each with its filter from `bound` (as
    /// [`Snapshot::bind`] made them) when given.
    pub(crate) fn sources_filtered<'a>(
        &'a self,
        bound: Option<&'a [Bound<'a>]>,
    ) -> Vec<Source<'a>> {
        let mut sources = self.sources();
        if let Some(bound) = bound {
            for (s, b) in sources.iter_mut().zip(bound) {
                s.filter = Some(b as &dyn RowFilter);
            }
        }
        sources
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

/// Work a collection hands to the background.
pub(crate) type BackgroundTask = Box<dyn FnOnce() + Send>;

/// How a collection hands work to the background (the engine's
/// maintenance scheduler), and the bound on its memtable.
pub(crate) struct Schedule {
    /// Runs a task in the background.
    pub(crate) run: Box<dyn Fn(BackgroundTask) + Send + Sync>,
    /// Bytes the memtable may hold (frozen batches included) before a
    /// writer flushes it itself (see `write.rs`).
    pub(crate) memtable_limit: u64,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Schedule")
    }
}

/// Options of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOptions {
    /// Results per query.
    pub k: usize,
    /// Lists to probe; `None` uses the collection's default. Values above
    /// the number of lists are clamped (`usize::MAX` is exact search:
    /// every list, every row's exact distance even with codes).
    pub nprobe: Option<usize>,
    /// Return each hit's payload.
    pub with_payload: bool,
    /// Return each hit's vector (as stored: normalised for cosine).
    pub with_vectors: bool,
    /// Return each hit's typed field values.
    pub with_fields: bool,
    /// Return only rows this filter holds for (see `vdb_core::filter`).
    pub filter: Option<Filter>,
    /// With a filter: most lists searched when the `nprobe` nearest hold
    /// fewer than `k` matching rows (`None`: every list).
    pub max_probes: Option<usize>,
    /// In lists with codes (`ivf_rabitq`): the multiplier of the error
    /// bound that decides which rows get their exact distance, at least 0
    /// (`None`: 1.9, RaBitQ's ε₀). Larger misses fewer neighbours and
    /// computes more exact distances; no effect on `ivf_flat`.
    pub rerank_epsilon: Option<f32>,
}

impl SearchOptions {
    /// A searcher with these options' error-bound multiplier (validated
    /// by `Collection::params`); for exact search (`nprobe` `usize::MAX`)
    /// one that ignores codes, so every row gets its exact distance.
    pub(crate) fn searcher(&self) -> vdb_ivf::Searcher {
        if self.nprobe == Some(usize::MAX) {
            return vdb_ivf::Searcher::exact();
        }
        let mut s = vdb_ivf::Searcher::new();
        if let Some(e) = self.rerank_epsilon {
            s.set_epsilon(e);
        }
        s
    }
}

impl Default for SearchOptions {
    /// 10 results at the collection's nprobe, ids and distances only.
    fn default() -> Self {
        SearchOptions {
            k: 10,
            nprobe: None,
            with_payload: false,
            with_vectors: false,
            with_fields: false,
            filter: None,
            max_probes: None,
            rerank_epsilon: None,
        }
    }
}

/// Numbers that describe a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionStats {
    /// Visible rows.
    pub rows: u64,
    /// The memory the memtable holds (the batches being flushed too),
    /// roughly: what the engine's memtable limit bounds.
    pub memtable_bytes: u64,
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
    /// The recall@10 measured when the recall target last chose the
    /// default nprobe (0: never).
    pub tuned_recall: f64,
    /// Bytes of segments written since the collection was opened for rows
    /// leaving the memtable (by a flush, or by a merge or training that
    /// took the memtable in).
    pub flushed_bytes: u64,
    /// Bytes of segments written since it was opened for rows already in
    /// segments (merges, trainings): divided by `flushed_bytes`,
    /// maintenance's write amplification.
    pub rewritten_bytes: u64,
    /// Why the last compaction or training the policies asked for was
    /// postponed (it would not fit in the free space); `None` once one
    /// runs.
    pub postponed: Option<String>,
    /// When the segments were last rewritten into one by a compaction or a
    /// training (Unix seconds; 0 = never).
    pub compacted_at: u64,
    /// Lists split locally (each taking the slot of a dissolved list)
    /// since the last training.
    pub rebalances: u64,
    /// When lists were last split locally (Unix seconds; 0 = not since
    /// the last training).
    pub rebalanced_at: u64,
}

/// Settings to change with [`Collection::alter`]; `None` keeps the current
/// value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Alter {
    /// Default nprobe of searches, fixed (clears the recall target).
    pub nprobe: Option<usize>,
    /// A recall@10 target, in (0, 1], to choose the default nprobe by: now
    /// (measured on the rows stored) and after each training.
    pub target_recall: Option<f64>,
    /// Lists to train; the collection is retrained at the next flush (or
    /// call [`Collection::retrain`]).
    pub nlist: Option<usize>,
    /// Memtable rows per flush.
    pub flush_rows: Option<usize>,
    /// Retraining thresholds.
    pub retrain: Option<crate::policy::RetrainPolicy>,
    /// Compaction thresholds.
    pub compaction: Option<crate::policy::CompactionPolicy>,
    /// Typed fields to declare (a field, once declared, keeps its name and
    /// type; rows written before have no value for a new one).
    pub add_fields: Vec<vdb_core::FieldDef>,
    /// How lists are stored and scanned; like an nlist change, the
    /// collection is retrained (its segments rewritten, with or without
    /// codes) at the next flush.
    pub index_type: Option<crate::index::IndexType>,
}

/// How this node holds a collection.
#[derive(Debug)]
enum Role {
    /// It writes the collection: every write goes through this log.
    Writer(Wal),
    /// It follows the files (and shipped log) another node writes, and
    /// serves reads only (`follow.rs`).
    Replica(Follow),
}

/// A replica's progress.
#[derive(Debug)]
struct Follow {
    state: Mutex<FollowState>,
}

#[derive(Debug)]
struct FollowState {
    /// The manifest version served.
    version: u64,
    /// When the last call that found nothing left to read began.
    caught_up: std::time::Instant,
    /// Why the last call failed, if it did.
    error: Option<String>,
}

/// What [`Collection::follow`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Followed {
    /// The collection serves what the store holds (as of the call's start).
    Current,
    /// The store holds another collection of this name now (dropped and
    /// created again): open it anew.
    Replaced,
    /// The store holds no manifest of it: it was dropped.
    Gone,
}

/// Where a collection is kept and who writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageRole {
    /// In this node's data directory, written by this node.
    Local,
    /// On object storage, written by this node.
    Writer,
    /// On object storage, written by another node and followed by this one
    /// (a read replica).
    Replica,
}

/// A collection's storage and, on a replica, how far behind the writer it
/// may be.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageInfo {
    /// Local, writer or replica.
    pub role: StorageRole,
    /// The node that writes it, as its manifest names it (0 in local mode).
    pub writer: u64,
    /// The manifest version this node serves (0 in local mode).
    pub manifest_version: u64,
    /// Replicas: time since the replica last found itself caught up with
    /// everything the store held (manifest and shipped log); what it
    /// serves is at most this much (plus one poll) older than the writer's
    /// published state.
    pub behind: Option<std::time::Duration>,
    /// Replicas: why the last attempt to catch up failed (it keeps serving
    /// what it has and tries again).
    pub follow_error: Option<String>,
}

/// A durable collection of vectors. Shared as `Arc<Collection>`; every
/// method takes `&self` and is safe to call from many threads.
#[derive(Debug)]
pub struct Collection {
    /// Where its segment, centroid and delete files and its manifest live.
    files: Arc<dyn Directory>,
    /// Threads for maintenance's CPU work (k-means, assignment), fewer than
    /// the cores so searches keep one.
    pool: Arc<rayon::ThreadPool>,
    name: String,
    /// Settings as opened; only dim, metric and sync are read from here
    /// (they never change): the others live in the manifest.
    config: CollectionConfig,
    /// The declared fields, which `alter` may extend: written rows and
    /// filters are checked against them without taking the collection
    /// lock.
    fields: RwLock<Arc<[vdb_core::FieldDef]>>,
    /// Whether this node writes the collection (with its log) or follows
    /// another node's writes.
    role: Role,
    inner: Mutex<Inner>,
    applied_cv: Condvar,
    snapshot: RwLock<Arc<Snapshot>>,
    dropped: AtomicBool,
    default_nprobe: AtomicUsize,
    /// Serialises flush, compaction, training and alter.
    maintenance: Mutex<()>,
    /// How to run work in the background, and this collection's own handle
    /// for that work to hold (set by the engine after wrapping it in
    /// `Arc`).
    background: OnceLock<(Schedule, Weak<Collection>)>,
    /// A background flush is requested and has not started yet.
    flush_requested: AtomicBool,
    /// Maintenance runs since the collection was opened.
    runs: runs::RunCounts,
    /// Rows of acknowledged writes since it was opened.
    written: runs::WrittenRows,
}

impl Collection {
    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The collection's settings.
    pub fn config(&self) -> CollectionConfig {
        self.lock().manifest.config.clone()
    }

    /// The declared fields, as rows and filters are checked against now.
    pub(crate) fn fields(&self) -> Arc<[vdb_core::FieldDef]> {
        Arc::clone(&self.fields.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Makes the fields of `config` those writes and filters are checked
    /// against (after the manifest declaring them is stored).
    pub(super) fn set_fields(&self, config: &CollectionConfig) {
        let mut f = self.fields.write().unwrap_or_else(|p| p.into_inner());
        if f.as_ref() != config.fields.as_slice() {
            *f = config.fields.clone().into();
        }
    }

    /// The nprobe of searches that do not set one. Reading it never waits
    /// for writers.
    pub fn default_nprobe(&self) -> usize {
        self.default_nprobe.load(Ordering::Acquire)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Flushes the memtable and makes the log durable: what `close` does.
    /// A replica has nothing to flush.
    pub fn close(&self) -> Result<()> {
        if let Role::Writer(wal) = &self.role {
            self.flush()?;
            wal.sync()?;
        }
        Ok(())
    }

    /// Where the collection is kept, who writes it, and on a replica how
    /// far behind it may be.
    pub fn storage(&self) -> StorageInfo {
        let writer = self.lock().manifest.writer;
        match &self.role {
            Role::Replica(f) => f.info(writer),
            Role::Writer(_) => StorageInfo {
                role: if self.files.shared() {
                    StorageRole::Writer
                } else {
                    StorageRole::Local
                },
                writer,
                manifest_version: self.files.manifest_version().unwrap_or(0),
                behind: None,
                follow_error: None,
            },
        }
    }

    /// What the collection has written since it was opened.
    pub fn write_counts(&self) -> WriteCounts {
        let (rows_upserted, ids_deleted) = self.written.get();
        let log = match &self.role {
            Role::Writer(wal) => wal.stats(),
            Role::Replica(_) => vdb_wal::WalStats::default(),
        };
        WriteCounts {
            rows_upserted,
            ids_deleted,
            log_bytes: log.bytes,
            log_syncs: log.syncs,
        }
    }

    /// Bytes of the collection's write-ahead log files on disk: what a
    /// restart replays and the next flush lets go of (0 on a replica).
    pub fn log_disk_bytes(&self) -> u64 {
        match &self.role {
            Role::Writer(wal) => wal.disk_bytes(),
            Role::Replica(_) => 0,
        }
    }

    /// The log writes go through; a replica has none and refuses.
    fn log(&self) -> Result<&Wal> {
        match &self.role {
            Role::Writer(wal) => Ok(wal),
            Role::Replica(_) => Err(self.read_only()),
        }
    }

    fn read_only(&self) -> Error {
        Error::ReadOnly {
            name: self.name.clone(),
            writer: self.lock().manifest.writer,
        }
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
                cause: Arc::clone(cause),
            }),
            None => Ok(()),
        }
    }

    /// Stops writes after the failure `e` (the first failure is kept as
    /// the cause) and returns what the caller reports: the collection
    /// stopped accepting writes, and why.
    fn poison(&self, inner: &mut Inner, e: Error) -> Error {
        if matches!(e, Error::Poisoned { .. }) {
            return e;
        }
        let cause = Arc::clone(inner.poisoned.get_or_insert_with(|| Arc::new(e)));
        Error::Poisoned {
            name: self.name.clone(),
            cause,
        }
    }
}

fn memtable_rows(inner: &Inner) -> usize {
    inner.mem.iter().map(|m| m.batch.rows()).sum()
}

/// The memory the memtable holds, frozen batches (being flushed)
/// included.
fn memtable_bytes(inner: &Inner) -> u64 {
    inner
        .mem
        .iter()
        .chain(&inner.frozen)
        .map(|m| m.batch.bytes())
        .sum()
}

/// Visible rows per list over `sources` (hidden rows — deleted, replaced
/// or moved by a rebalancing — are not scanned, so not counted).
pub(crate) fn visible_sizes(sources: &[Source<'_>], nlist: usize) -> Vec<u64> {
    let mut sizes = vec![0u64; nlist];
    for s in sources {
        for (l, size) in sizes.iter_mut().enumerate() {
            let list = vdb_core::ListId(l as u32);
            let (start, len) = (s.lists.list_row_start(list), s.lists.list_len(list));
            let hidden = s.deleted.map_or(0, |d| d.count_in(start..start + len));
            *size += (len - hidden) as u64;
        }
    }
    sizes
}

/// Visible rows per list of the collection's current state (frozen
/// batches included).
fn list_sizes(inner: &Inner) -> Vec<u64> {
    let nlist = inner.quantizer.nlist();
    let batches: Vec<(Arc<dyn InvertedLists>, &RowSet)> = inner
        .frozen
        .iter()
        .chain(&inner.mem)
        .map(|m| (searched_as(&m.batch, nlist), m.deleted.as_ref()))
        .collect();
    let sources: Vec<Source<'_>> = inner
        .segs
        .iter()
        .map(|s| Source {
            lists: s.reader.as_ref(),
            deleted: Some(s.deleted.as_ref()),
            filter: None,
        })
        .chain(batches.iter().map(|(lists, deleted)| Source {
            lists: lists.as_ref(),
            deleted: Some(deleted),
            filter: None,
        }))
        .collect();
    visible_sizes(&sources, nlist)
}

/// How searches under centroids with `nlist` lists see `batch`: as its
/// lists, or, when they differ — only in a collection not trained yet
/// (one list) while its first training installs the centroids that group
/// the batch already ([`Inner::next`]) — as one list of all its rows.
fn searched_as(batch: &Arc<MemBatch>, nlist: usize) -> Arc<dyn InvertedLists> {
    if batch.nlist() == nlist {
        Arc::clone(batch) as Arc<dyn InvertedLists>
    } else {
        debug_assert_eq!(nlist, 1, "only an untrained collection sees a batch whole");
        Arc::new(WholeBatch(Arc::clone(batch)))
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
    let mem = batch_views(inner.frozen.iter().chain(&inner.mem));
    let nlist = inner.quantizer.nlist();
    Snapshot {
        quantizer: Arc::clone(&inner.quantizer),
        generation: inner.manifest.generation,
        segs: segment_views(inner),
        mem_lists: mem.iter().map(|(b, _)| searched_as(b, nlist)).collect(),
        mem,
        live_rows: inner.ids.len(),
    }
}

const _: fn() = || {
    fn check<T: Send + Sync>() {}
    check::<Collection>();
    check::<Snapshot>();
};
