//! A collection in a shared store (object storage): claiming it for this
//! writer, and its log when shipped as chunks (`sync = object`) — opened
//! by a writer, which fences any earlier one, or read by a replica.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vdb_core::Lsn;
use vdb_fs::{Directory, FsRef, LogStore};
use vdb_wal::{RecordKind, Wal, WalOptions};

use crate::error::{Error, Result};
use crate::manifest::Manifest;

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
pub(super) fn open_shipped(
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
    let mut records = read_log_from(log.as_ref(), &mut next)?;
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

/// The records of a shipped log from `next` on, in order; `next` becomes
/// the LSN after the last. Chunks before the last one that starts at or
/// before `next` hold only earlier records and are not read.
pub(super) fn read_log_from(log: &dyn LogStore, next: &mut Lsn) -> Result<Vec<vdb_wal::Record>> {
    let mut records = Vec::new();
    let chunks = log.list()?;
    let from = chunks.iter().rposition(|&c| c <= next.0).unwrap_or(0);
    for &chunk in &chunks[from..] {
        read_shipped(log, chunk, next, &mut records)?;
    }
    Ok(records)
}

/// Reads shipped chunk `chunk` and appends its records from `next` on to
/// `records` (earlier ones are flushed already); a gap before `next` is
/// corruption, records lost.
fn read_shipped(
    log: &dyn LogStore,
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
pub(super) fn claim(
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
