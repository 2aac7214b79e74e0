//! Opening a collection: the manifest, claiming a shared store, garbage
//! removal, the segments and their visibility, and the replay of the
//! write-ahead log's tail (local, or shipped as chunks).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};

use vdb_core::{Lsn, RowSet};
use vdb_format::{CentroidFile, SegmentReader};
use vdb_fs::{Directory, FsRef};
use vdb_ivf::CoarseQuantizer;
use vdb_wal::{RecordKind, SyncMode, Wal, WalOptions};

use super::apply::{apply_delete, apply_upsert};
use super::{Collection, Inner, Loc, SegEntry, snapshot_of};
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
        // Files named from this sequence on are not this writer's to sweep:
        // in a shared store, they are a later writer's, not yet published.
        let mut fence = u64::MAX;
        if files.shared() {
            claim(&fs, dir, files.as_ref(), &mut manifest, node)?;
            fence = manifest.next_seq;
        }
        let cfg = manifest.config.clone();
        remove_garbage(files.as_ref(), &manifest, fence)?;

        let quantizer = match &manifest.centroids {
            Some(f) => {
                let c = CentroidFile::open(&files.fetch(f)?)?;
                let m = c.meta();
                if m.dim != cfg.dim
                    || m.metric != cfg.metric
                    || m.generation.0 != manifest.generation
                {
                    return Err(Error::Corrupt {
                        file: files.path(f),
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
            let r = SegmentReader::open(&files.fetch(f)?)?;
            let m = r.meta();
            if m.dim != cfg.dim
                || m.metric != cfg.metric
                || m.nlist != quantizer.nlist()
                || m.generation.0 != manifest.generation
            {
                return Err(Error::Corrupt {
                    file: files.path(f),
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

        let wal_opts = WalOptions {
            sync: cfg.sync,
            // A log begun here (a node taking over from a store) continues
            // after the last record the files hold.
            first_lsn: manifest.flushed_lsn.next(),
            ..WalOptions::default()
        };
        let (wal, records, log_at) = if cfg.sync == SyncMode::Object {
            open_shipped(&fs, dir, files.as_ref(), &manifest, node, wal_opts)?
        } else {
            let wal_dir = dir.join("wal");
            let (wal, records, _report) = Wal::open_with(Arc::clone(&fs), &wal_dir, wal_opts)?;
            (wal, records, wal_dir)
        };
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
        let wal_dir = log_at;
        // The log holds every record after `flushed_lsn`, in order: the
        // first one replayed must be the next LSN, or records are lost.
        let mut next = flushed.next();
        for rec in records.into_iter().filter(|r| r.lsn > flushed) {
            if rec.lsn != next {
                return Err(Error::Corrupt {
                    file: wal_dir,
                    reason: format!(
                        "the manifest's flushed_lsn is {}, but the log's first record after it is {}: records {}..={} are missing",
                        flushed.0,
                        rec.lsn.0,
                        next.0,
                        rec.lsn.0 - 1
                    ),
                });
            }
            next = rec.lsn.next();
            let corrupt = |reason: String| Error::Corrupt {
                file: wal_dir.clone(),
                reason: format!("record {}: {reason}", rec.lsn.0),
            };
            match rec.kind {
                RecordKind::Upsert => {
                    let rows = codec::decode_upsert(&rec.payload, cfg.dim).map_err(corrupt)?;
                    apply_upsert(&mut inner, codec::last_of_each_id(rows))?;
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
            files,
            pool,
            name: name.to_string(),
            config: cfg.clone(),
            wal,
            snapshot: RwLock::new(Arc::new(snapshot_of(&inner))),
            inner: Mutex::new(inner),
            applied_cv: Condvar::new(),
            dropped: AtomicBool::new(false),
            default_nprobe: AtomicUsize::new(cfg.nprobe),
            maintenance: Mutex::new(()),
            background: OnceLock::new(),
            flush_requested: AtomicBool::new(false),
        };
        Ok(c)
    }
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

/// Chunks of a shipped log read before giving up on fencing the writer
/// that keeps shipping after them (each round reads the chunks it shipped).
const FENCE_ROUNDS: usize = 1000;

/// Opens the log of a collection whose sync mode is `object`, returning
/// it, the records after the manifest's `flushed_lsn` and where they came
/// from (for messages). Those records are the chunks shipped to the
/// directory's log store (the local directory keeps none: a local `wal/`
/// is removed). After them this writer ships a chunk of one claim record;
/// a writer still shipping finds that chunk taken and is fenced, and if it
/// shipped first, its chunk is read too and the claim goes after it.
fn open_shipped(
    fs: &FsRef,
    dir: &Path,
    files: &dyn Directory,
    manifest: &Manifest,
    node: u64,
    opts: WalOptions,
) -> Result<(Wal, Vec<vdb_wal::Record>, PathBuf)> {
    let log = files.log_store().ok_or_else(|| {
        Error::invalid(
            "sync",
            "mode object needs the collection on object storage (vdbd --object-store)",
        )
    })?;
    let local = dir.join("wal");
    if local.exists() {
        fs.remove_dir_all(&local)
            .map_err(|e| Error::io(&local, "remove the local log of a shipped one", e))?;
    }
    let mut next = manifest.flushed_lsn.next();
    let mut records = Vec::new();
    let chunks = log.list()?;
    // Chunks before the last one that starts at or before `next` hold
    // only flushed records.
    let from = chunks.iter().rposition(|&c| c <= next.0).unwrap_or(0);
    for &chunk in &chunks[from..] {
        read_shipped(log.as_ref(), chunk, &mut next, &mut records)?;
    }
    let claim = [b"claim ".as_slice(), format!("{node:016x}").as_bytes()].concat();
    let mut claimed = false;
    for _ in 0..FENCE_ROUNDS {
        let chunk = vdb_wal::encode_chunk(next, &[(RecordKind::Event, &claim)]);
        match log.put(next.0, &chunk) {
            Ok(()) => {
                records.push(vdb_wal::Record {
                    lsn: next,
                    kind: RecordKind::Event,
                    payload: claim.clone(),
                });
                next = next.next();
                claimed = true;
                break;
            }
            // An earlier writer shipped this chunk since the listing.
            Err(e) if vdb_fs::Fenced::is_in(&e) => {
                read_shipped(log.as_ref(), next.0, &mut next, &mut records)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !claimed {
        return Err(Error::Internal(format!(
            "{}: another writer kept shipping the log through {FENCE_ROUNDS} chunks; stop it first",
            log.location(next.0)
        )));
    }
    let opts = WalOptions {
        first_lsn: next,
        ..opts
    };
    let (wal, _, _) = Wal::open_shipping(Arc::clone(fs), &local, opts, log.clone())?;
    Ok((wal, records, PathBuf::from(log.location(0))))
}

/// Reads shipped chunk `chunk` and appends its records from `next` on to
/// `records` (earlier ones are flushed already); a gap before `next` is
/// corruption, records lost.
fn read_shipped(
    log: &dyn vdb_fs::LogStore,
    chunk: u64,
    next: &mut Lsn,
    records: &mut Vec<vdb_wal::Record>,
) -> Result<()> {
    let at = log.location(chunk);
    let bytes = log.get(chunk)?;
    let (first, got) = vdb_wal::read_chunk(&bytes, &at)?;
    if first.0 != chunk {
        return Err(Error::Corrupt {
            file: at.into(),
            reason: format!("the chunk's header says it starts at {}", first.0),
        });
    }
    for rec in got {
        if rec.lsn < *next {
            continue;
        }
        if rec.lsn != *next {
            return Err(Error::Corrupt {
                file: at.into(),
                reason: format!(
                    "the log jumps to {} where {} belongs: records {}..={} are missing",
                    rec.lsn.0,
                    next.0,
                    next.0,
                    rec.lsn.0 - 1
                ),
            });
        }
        *next = rec.lsn.next();
        records.push(rec);
    }
    Ok(())
}

/// Claims a collection in a shared store for writer `node`: publishes its
/// manifest once more, naming `node` as the writer, which fences any
/// writer that read an earlier version (its next publication fails).
///
/// The local log is this node's own record of writes since the last
/// manifest it published; if another writer published since, the log
/// belongs to a history the store has left, and is set aside (renamed
/// `wal.stale-…`, kept for an operator) instead of being replayed. The
/// manifest's next flush sequence moves to a range of its own
/// (`version << 40`), so files this writer names can never be those a
/// fenced writer is still writing.
fn claim(
    fs: &FsRef,
    dir: &Path,
    files: &dyn Directory,
    manifest: &mut Manifest,
    node: u64,
) -> Result<()> {
    let wal = dir.join("wal");
    if manifest.writer != node && wal.exists() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let aside = dir.join(format!("wal.stale-{nanos}"));
        fs.rename(&wal, &aside)
            .map_err(|e| Error::io(&wal, "set aside the log of an older writer", e))?;
        fs.sync_dir(dir)
            .map_err(|e| Error::io(dir, "fsync directory", e))?;
    }
    let version = files.manifest_version().map_or(1, |v| v + 1);
    manifest.writer = node;
    manifest.next_seq = manifest.next_seq.max(version << 40);
    manifest.store(files)
}
