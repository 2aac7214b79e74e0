//! Opening a collection: the manifest, claiming a shared store
//! (`shared.rs`), garbage removal, the segments and their visibility, and
//! the replay of the write-ahead log's tail (local, or shipped as chunks).

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};

use vdb_core::RowSet;
use vdb_format::{CentroidFile, SegmentReader};
use vdb_fs::{Directory, FsRef};
use vdb_ivf::CoarseQuantizer;
use vdb_wal::{RecordKind, SyncMode, Wal, WalOptions};

use super::apply::{apply_delete, apply_upsert};
use super::shared::{claim, open_shipped};
use super::{Collection, Inner, Loc, Role, SegEntry, snapshot_of};
use crate::codec;
use crate::config::CollectionConfig;
use crate::error::{Error, Result};
use crate::idmap::{Event, ShardedIdMap};
use crate::manifest::Manifest;

fn untrained_quantizer(cfg: &CollectionConfig) -> Result<Arc<CoarseQuantizer>> {
    Ok(Arc::new(CoarseQuantizer::new(
        cfg.dim,
        cfg.metric,
        vec![0.0; cfg.dim],
    )?))
}

impl Collection {
    /// Opens the collection whose files are `files` and whose local
    /// directory (log, cache) is `dir`: reads the manifest, claims a shared
    /// store for writer `node`, removes files the manifest does not name,
    /// maps the segments and replays the WAL tail.
    pub(crate) fn open(
        fs: FsRef,
        pool: Arc<rayon::ThreadPool>,
        name: &str,
        dir: &Path,
        files: Arc<dyn Directory>,
        node: u64,
    ) -> Result<Collection> {
        let mut manifest = Manifest::load(files.as_ref())?;
        // A collection from before identities gets one, made durable
        // here (claiming a shared store publishes it too).
        let identified = manifest.uid != 0;
        if !identified {
            manifest.uid = crate::manifest::random_id();
        }
        // Files named from this sequence on are not this writer's to sweep:
        // in a shared store, they are a later writer's, not yet published.
        let mut fence = u64::MAX;
        if files.shared() {
            claim(&fs, dir, files.as_ref(), &mut manifest, node)?;
            fence = manifest.next_seq;
        } else if !identified {
            manifest.store(files.as_ref())?;
        }
        remove_garbage(files.as_ref(), &manifest, fence)?;
        let cfg = manifest.config.clone();
        let wal_opts = WalOptions {
            sync: cfg.sync,
            // A log begun here (a node taking over from a store) continues
            // after the last record the files hold.
            first_lsn: manifest.flushed_lsn.next(),
            ..WalOptions::default()
        };
        let mut inner = load(files.as_ref(), manifest)?;
        let (wal, records, log_at) = if cfg.sync == SyncMode::Object {
            open_shipped(&fs, dir, files.as_ref(), &inner.manifest, node, wal_opts)?
        } else {
            let wal_dir = dir.join("wal");
            let (wal, records, _report) = Wal::open_with(Arc::clone(&fs), &wal_dir, wal_opts)?;
            (wal, records, wal_dir)
        };
        replay(&mut inner, records, &log_at)?;
        Ok(Collection::assemble(
            files,
            pool,
            name,
            Role::Writer(wal),
            inner,
        ))
    }

    /// A collection over `inner`, as this node holds it (`role`).
    pub(super) fn assemble(
        files: Arc<dyn Directory>,
        pool: Arc<rayon::ThreadPool>,
        name: &str,
        role: Role,
        inner: Inner,
    ) -> Collection {
        let cfg = inner.manifest.config.clone();
        Collection {
            files,
            pool,
            name: name.to_string(),
            default_nprobe: AtomicUsize::new(cfg.nprobe),
            fields: RwLock::new(cfg.fields.clone().into()),
            config: cfg,
            role,
            snapshot: RwLock::new(Arc::new(snapshot_of(&inner))),
            inner: Mutex::new(inner),
            applied_cv: Condvar::new(),
            dropped: AtomicBool::new(false),
            maintenance: Mutex::new(()),
            background: OnceLock::new(),
            flush_requested: AtomicBool::new(false),
            runs: Default::default(),
            written: Default::default(),
        }
    }
}

/// The state `manifest` names: its centroids, its segments mapped, and
/// the id map with every replaced or deleted row hidden; nothing of the
/// log applied yet.
pub(super) fn load(files: &dyn Directory, manifest: Manifest) -> Result<Inner> {
    let cfg = manifest.config.clone();
    let quantizer = match &manifest.centroids {
        Some(f) => {
            let c = CentroidFile::open(&files.fetch(f)?)?;
            let m = c.meta();
            if m.dim != cfg.dim || m.metric != cfg.metric || m.generation.0 != manifest.generation {
                return Err(Error::Corrupt {
                    file: files.path(f),
                    reason: format!(
                        "centroids of generation {} (dim {}, {}) do not match the manifest (generation {}, dim {}, {})",
                        m.generation, m.dim, m.metric, manifest.generation, cfg.dim, cfg.metric
                    ),
                });
            }
            Arc::new(cfg.quantizer(c.centroids().to_vec())?)
        }
        None => untrained_quantizer(&cfg)?,
    };

    let mut segs = Vec::with_capacity(manifest.segments.len());
    for (_, f) in &manifest.segments {
        let r = match files.open_cached(f)? {
            Some(cached) => SegmentReader::open_cached(cached)?,
            None => SegmentReader::open(&files.fetch(f)?)?,
        };
        let m = r.meta();
        // Generations after the last training rebalanced a few lists
        // and moved all their rows to newer segments: an older segment's
        // other lists are the current lists.
        let generations = manifest.trained_generation..=manifest.generation;
        if m.dim != cfg.dim
            || m.metric != cfg.metric
            || m.nlist != quantizer.nlist()
            || !generations.contains(&m.generation.0)
        {
            return Err(Error::Corrupt {
                file: files.path(f),
                reason: format!(
                    "segment (dim {}, {}, {} lists, generation {}) does not match the collection (dim {}, {}, {} lists, generations {}..={})",
                    m.dim,
                    m.metric,
                    m.nlist,
                    m.generation,
                    cfg.dim,
                    cfg.metric,
                    quantizer.nlist(),
                    manifest.trained_generation,
                    manifest.generation
                ),
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
        deletes.push(vdb_format::read_deletes(&files.fetch(f)?)?.1);
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

    let flushed = manifest.flushed_lsn;
    Ok(Inner {
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
        flushed_bytes: 0,
        rewritten_bytes: 0,
        postponed: None,
        next: None,
        manifest,
    })
}

/// Applies the log's `records` (read from `from`) after the last one the
/// state has applied, checking that none is missing.
pub(super) fn replay(inner: &mut Inner, records: Vec<vdb_wal::Record>, from: &Path) -> Result<()> {
    let dim = inner.manifest.config.dim;
    let applied = inner.applied;
    // The log holds every record after the state's, in order: the first
    // one replayed must be the next LSN, or records are lost.
    let mut next = applied.next();
    for rec in records.into_iter().filter(|r| r.lsn > applied) {
        if rec.lsn != next {
            return Err(Error::Corrupt {
                file: from.to_path_buf(),
                reason: format!(
                    "the state holds the log through {} (the manifest's flushed_lsn, then the log), but the log's next record is {}: records {}..={} are missing",
                    applied.0,
                    rec.lsn.0,
                    next.0,
                    rec.lsn.0 - 1
                ),
            });
        }
        next = rec.lsn.next();
        let corrupt = |reason: String| Error::Corrupt {
            file: from.to_path_buf(),
            reason: format!("record {}: {reason}", rec.lsn.0),
        };
        match rec.kind {
            RecordKind::Upsert => {
                let rows = codec::decode_upsert(&rec.payload, dim).map_err(corrupt)?;
                apply_upsert(inner, codec::last_of_each_id(rows))?;
            }
            RecordKind::Delete => {
                let ids = codec::decode_delete(&rec.payload).map_err(corrupt)?;
                apply_delete(inner, &ids);
            }
            RecordKind::Event => {}
        }
        inner.applied = rec.lsn;
    }
    Ok(())
}

/// Removes every file the manifest does not name (leftovers of a crash
/// between writing a file and switching the manifest).
fn remove_garbage(files: &dyn Directory, manifest: &Manifest, fence: u64) -> Result<()> {
    let live: HashSet<&str> = manifest.live_files().collect();
    let names = files.list()?;
    let garbage: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|name| *name != vdb_fs::MANIFEST && !live.contains(name))
        .filter(|name| vdb_format::file_sequence(name).unwrap_or(0) < fence)
        .collect();
    Ok(files.remove(&garbage)?)
}
