//! Appending: group commit, rotation, truncation and the poisoned state.
//!
//! With [`SyncMode::Always`], appenders put their encoded records into a
//! shared buffer under a mutex. If no write is in flight, the appender
//! becomes the *leader*: it takes the whole buffer, writes and `fdatasync`s
//! it outside the lock, publishes the new synced LSN and wakes everyone.
//! Appenders that arrive meanwhile wait and are covered by the next leader's
//! single `fsync`: under load, one `fsync` acknowledges many writers.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use vdb_core::Lsn;
use vdb_fs::{FileHandle, Fs, FsRef, LogStore};

use crate::error::{Error, Result};
use crate::frame::{self, MAX_PAYLOAD, RecordKind};
use crate::replay::{self, Record, Recovery, ReplayReport};

/// When appended records are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// An append returns only after an `fsync` covering it (group commit).
    Always,
    /// Appends return once written to the OS; a background thread `fsync`s
    /// every interval. A crash of the machine (not of the process) can lose
    /// the last interval of acknowledged writes.
    Interval(Duration),
    /// Never `fsync` (except on rotation and [`Wal::sync`]): the OS decides.
    /// A machine crash can lose any amount of acknowledged writes.
    Never,
    /// An append returns only after the records are shipped off the node
    /// as a chunk of a [`vdb_fs::LogStore`] (group commit: one chunk for
    /// every appender waiting meanwhile). Nothing is written locally; the
    /// loss of the machine, disk included, loses nothing acknowledged.
    Object,
}

impl std::fmt::Display for SyncMode {
    /// The form [`SyncMode::from_str`] reads: `always`, `none`,
    /// `interval:<n>ms` or `object`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncMode::Always => f.write_str("always"),
            SyncMode::Never => f.write_str("none"),
            SyncMode::Interval(d) => write!(f, "interval:{}ms", d.as_millis()),
            SyncMode::Object => f.write_str("object"),
        }
    }
}

impl FromStr for SyncMode {
    type Err = String;

    /// `always`, `none`, `interval` (100 ms), `interval:<n>ms` or
    /// `object`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "always" => Ok(SyncMode::Always),
            "object" => Ok(SyncMode::Object),
            "none" | "never" => Ok(SyncMode::Never),
            "interval" => Ok(SyncMode::Interval(Duration::from_millis(100))),
            other => other
                .strip_prefix("interval:")
                .and_then(|ms| ms.strip_suffix("ms"))
                .and_then(|ms| ms.parse::<u64>().ok())
                .filter(|&ms| ms > 0)
                .map(|ms| SyncMode::Interval(Duration::from_millis(ms)))
                .ok_or_else(|| format!("unknown sync mode {other:?}; expected always, none, interval, interval:<n>ms or object")),
        }
    }
}

/// Options of [`Wal::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// When appends are made durable.
    pub sync: SyncMode,
    /// A new log file is started once the active one reaches this size.
    pub file_bytes: u64,
    /// Treatment of damage followed by intact records.
    pub recovery: Recovery,
    /// The LSN a log that holds no file yet starts at (1 by default): a
    /// log begun where another one left off (a collection recovered from
    /// object storage, whose files hold every record up to some LSN)
    /// continues its numbering.
    pub first_lsn: Lsn,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            sync: SyncMode::Always,
            file_bytes: 64 << 20,
            recovery: Recovery::Strict,
            first_lsn: Lsn(1),
        }
    }
}

/// Counters of a log since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Calls to append.
    pub appends: u64,
    /// Records appended.
    pub records: u64,
    /// `fsync`s of log files (with [`SyncMode::Object`]: chunks shipped).
    pub syncs: u64,
    /// Bytes appended.
    pub bytes: u64,
    /// Files started by rotation.
    pub rotations: u64,
    /// Bytes of the chunks shipped ([`SyncMode::Object`]).
    pub shipped_bytes: u64,
}

#[derive(Debug)]
struct State {
    file: Arc<dyn FileHandle>,
    file_len: u64,
    files: Vec<(Lsn, PathBuf)>,
    /// The bytes of every file of `files` but the last (the active one,
    /// `file_len` long).
    closed: Vec<u64>,
    next_lsn: Lsn,
    pending: Vec<u8>,
    /// Last LSN handed to the OS.
    written: Lsn,
    /// Last LSN covered by an fsync.
    synced: Lsn,
    leader_active: bool,
    poisoned: Option<Arc<Error>>,
    stopping: bool,
    stats: WalStats,
}

#[derive(Debug)]
struct Shared {
    fs: FsRef,
    dir: PathBuf,
    opts: WalOptions,
    /// Where records are shipped with [`SyncMode::Object`].
    ship: Option<Arc<dyn LogStore>>,
    state: Mutex<State>,
    cond: Condvar,
}

/// An open write-ahead log. Cheap to share across threads by reference;
/// all methods take `&self`.
#[derive(Debug)]
pub struct Wal {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

impl Wal {
    /// Opens (or creates) the log in `dir`, replays it and returns the
    /// complete records in order with a report of what was found. A damaged
    /// tail is cut off the last file before the log accepts appends.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<(Wal, Vec<Record>, ReplayReport)> {
        Wal::open_with(vdb_fs::os(), dir, opts)
    }

    /// [`Wal::open`] doing its file operations through `fs`.
    pub fn open_with(
        fs: FsRef,
        dir: &Path,
        opts: WalOptions,
    ) -> Result<(Wal, Vec<Record>, ReplayReport)> {
        Wal::open_inner(fs, dir, opts, None)
    }

    /// [`Wal::open_with`] for [`SyncMode::Object`]: appends are
    /// acknowledged once shipped to `ship` as a chunk (named by its first
    /// LSN); nothing is written to `dir` but the header of an empty file.
    /// Recovering the records shipped before is the caller's (they are in
    /// `ship`, not here): open it with [`WalOptions::first_lsn`] after them.
    pub fn open_shipping(
        fs: FsRef,
        dir: &Path,
        opts: WalOptions,
        ship: Arc<dyn LogStore>,
    ) -> Result<(Wal, Vec<Record>, ReplayReport)> {
        Wal::open_inner(fs, dir, opts, Some(ship))
    }

    fn open_inner(
        fs: FsRef,
        dir: &Path,
        opts: WalOptions,
        ship: Option<Arc<dyn LogStore>>,
    ) -> Result<(Wal, Vec<Record>, ReplayReport)> {
        if opts.sync == SyncMode::Object && ship.is_none() {
            return Err(Error::NoLogStore {
                dir: dir.to_path_buf(),
            });
        }
        fs.create_dir_all(dir)
            .map_err(|e| Error::io(dir, "create directory", e))?;
        // The directory's own entry must be durable before any record in it
        // is acknowledged.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsync_dir(fs.as_ref(), parent)?;
        }
        let mut scan = replay::scan(fs.as_ref(), dir, opts.recovery)?;
        let mut files = scan.files;
        let (file, file_len) = match files.last() {
            Some((_, path)) => {
                let f = fs
                    .open_append(path)
                    .map_err(|e| Error::io(path, "open", e))?;
                let len = f.len().map_err(|e| Error::io(path, "stat", e))?;
                if len != scan.last_valid_len {
                    f.set_len(scan.last_valid_len)
                        .map_err(|e| Error::io(path, "truncate torn tail", e))?;
                    f.sync_data().map_err(|e| Error::io(path, "fsync", e))?;
                }
                (f, scan.last_valid_len)
            }
            None => {
                scan.next_lsn = scan.next_lsn.max(opts.first_lsn);
                let (f, path) = create_file(fs.as_ref(), dir, scan.next_lsn)?;
                files.push((scan.next_lsn, path));
                (f, frame::FILE_HEADER_LEN as u64)
            }
        };
        if !scan.report.removed_files.is_empty() {
            fsync_dir(fs.as_ref(), dir)?;
        }
        // Sizes of the files before the active one, for `disk_bytes` (a
        // file that cannot be measured counts as empty).
        let closed = files[..files.len().saturating_sub(1)]
            .iter()
            .map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
            .collect();
        let last = Lsn(scan.next_lsn.0 - 1);
        let shared = Arc::new(Shared {
            fs,
            dir: dir.to_path_buf(),
            opts,
            ship: ship.filter(|_| opts.sync == SyncMode::Object),
            state: Mutex::new(State {
                file,
                file_len,
                files,
                closed,
                next_lsn: scan.next_lsn,
                pending: Vec::new(),
                written: last,
                synced: last,
                leader_active: false,
                poisoned: None,
                stopping: false,
                stats: WalStats::default(),
            }),
            cond: Condvar::new(),
        });
        let flusher = match opts.sync {
            SyncMode::Interval(every) => {
                let s = Arc::clone(&shared);
                Some(
                    std::thread::Builder::new()
                        .name("vdb-wal-flusher".into())
                        .spawn(move || flusher(&s, every))
                        .map_err(|e| Error::io(dir, "start flusher thread", e))?,
                )
            }
            _ => None,
        };
        Ok((Wal { shared, flusher }, scan.records, scan.report))
    }

    /// Appends one record; returns its LSN once it is as durable as the sync
    /// mode promises.
    pub fn append(&self, kind: RecordKind, payload: &[u8]) -> Result<Lsn> {
        self.append_batch(&[(kind, payload)])
    }

    /// Appends records as one unit (consecutive LSNs, one write); returns the
    /// LSN of the last one. An empty batch returns the last LSN assigned.
    pub fn append_batch(&self, records: &[(RecordKind, &[u8])]) -> Result<Lsn> {
        let last = self.append_deferred(records)?;
        self.commit_through(last)?;
        Ok(last)
    }

    /// Assigns LSNs to `records` and queues them for the next write, without
    /// waiting; returns the LSN of the last one. Callers that need their own
    /// ordering (assign under their lock, wait outside it) pair this with
    /// [`Wal::commit_through`]; the records are acknowledged only then.
    pub fn append_deferred(&self, records: &[(RecordKind, &[u8])]) -> Result<Lsn> {
        if let Some((_, p)) = records.iter().find(|(_, p)| p.len() > MAX_PAYLOAD) {
            return Err(Error::TooLarge {
                len: p.len(),
                max: MAX_PAYLOAD,
            });
        }
        let mut st = self.lock();
        self.check_poisoned(&st)?;
        for (kind, payload) in records {
            let lsn = st.next_lsn;
            frame::encode(&mut st.pending, lsn, *kind, payload);
            st.next_lsn = lsn.next();
            st.stats.bytes += (frame::FRAME_HEAD_LEN + frame::BODY_HEAD_LEN + payload.len()) as u64;
        }
        st.stats.appends += 1;
        st.stats.records += records.len() as u64;
        Ok(Lsn(st.next_lsn.0 - 1))
    }

    /// Waits until every record up to `lsn` is as durable as the sync mode
    /// promises (written, and with [`SyncMode::Always`] fsynced), doing the
    /// write itself if no other thread is.
    pub fn commit_through(&self, lsn: Lsn) -> Result<()> {
        let st = self.lock();
        let durable = matches!(self.shared.opts.sync, SyncMode::Always | SyncMode::Object);
        self.commit(st, lsn, durable).map(|_| ())
    }

    /// Makes everything appended so far durable, whatever the sync mode.
    pub fn sync(&self) -> Result<Lsn> {
        let st = self.lock();
        self.check_poisoned(&st)?;
        let mine = Lsn(st.next_lsn.0 - 1);
        self.commit(st, mine, true)
    }

    /// Writes (and with `durable`, fsyncs) everything pending up to `mine`,
    /// as leader or by waiting for the current leader.
    fn commit<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        mine: Lsn,
        durable: bool,
    ) -> Result<Lsn> {
        loop {
            self.check_poisoned(&st)?;
            let done = if durable { st.synced } else { st.written };
            if done >= mine {
                return Ok(mine);
            }
            if st.leader_active {
                st = self.shared.cond.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.leader_active = true;
            let (guard, result) = self.lead(st, durable);
            st = guard;
            st.leader_active = false;
            let result = result.map_err(|e| self.stop(&mut st, e));
            self.shared.cond.notify_all();
            result?;
        }
    }

    /// Records `e` as the failure that stopped the log; returns the error
    /// every caller gets from now on.
    fn stop(&self, st: &mut State, e: Error) -> Error {
        let cause = match e {
            Error::Poisoned { cause, .. } => cause,
            e => Arc::new(e),
        };
        let cause = Arc::clone(st.poisoned.get_or_insert(cause));
        Error::Poisoned {
            dir: self.shared.dir.clone(),
            cause,
        }
    }

    /// One leader round: rotate if due, write the pending buffer, fsync if
    /// asked. Drops the lock around the I/O.
    fn lead<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        durable: bool,
    ) -> (MutexGuard<'a, State>, Result<()>) {
        let upto = Lsn(st.next_lsn.0 - 1);
        if let Some(ship) = &self.shared.ship {
            return self.ship(st, upto, Arc::clone(ship));
        }
        if st.written < upto
            && st.file_len >= self.shared.opts.file_bytes
            && let Err(e) = self.rotate_locked(&mut st)
        {
            return (st, Err(e));
        }
        let buf = std::mem::take(&mut st.pending);
        let file = Arc::clone(&st.file);
        let path = st.files.last().map(|(_, p)| p.clone()).unwrap_or_default();
        drop(st);
        let io = file
            .write_all(&buf)
            .map_err(|e| Error::io(&path, "append", e))
            .and_then(|()| {
                if durable {
                    file.sync_data().map_err(|e| Error::io(&path, "fsync", e))
                } else {
                    Ok(())
                }
            });
        let mut st = self.lock();
        if io.is_ok() {
            st.file_len += buf.len() as u64;
            st.written = upto;
            if durable {
                st.synced = st.synced.max(upto);
                st.stats.syncs += 1;
            }
        }
        (st, io)
    }

    /// The leader round of [`SyncMode::Object`]: the pending records, as
    /// one chunk named by the first of them, shipped to `ship`.
    fn ship<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        upto: Lsn,
        ship: Arc<dyn LogStore>,
    ) -> (MutexGuard<'a, State>, Result<()>) {
        if st.written >= upto {
            return (st, Ok(()));
        }
        let first = st.written.next();
        let buf = std::mem::take(&mut st.pending);
        drop(st);
        let mut chunk = Vec::with_capacity(frame::FILE_HEADER_LEN + buf.len());
        chunk.extend_from_slice(&frame::file_header(first));
        chunk.extend_from_slice(&buf);
        let shipped = ship.put(first.0, &chunk).map_err(Error::from);
        let mut st = self.lock();
        if shipped.is_ok() {
            st.written = upto;
            st.synced = st.synced.max(upto);
            st.stats.syncs += 1;
            st.stats.shipped_bytes += chunk.len() as u64;
        }
        (st, shipped)
    }

    /// Starts a new log file for the records after `written`. The current
    /// file is fsynced first, so no acknowledged record depends on it later.
    fn rotate_locked(&self, st: &mut State) -> Result<()> {
        let path = st.files.last().map(|(_, p)| p.clone()).unwrap_or_default();
        st.file
            .sync_data()
            .map_err(|e| Error::io(&path, "fsync", e))?;
        st.synced = st.written;
        let first = st.written.next();
        let (f, new_path) = create_file(self.shared.fs.as_ref(), &self.shared.dir, first)?;
        st.file = f;
        let closed_len = std::mem::replace(&mut st.file_len, frame::FILE_HEADER_LEN as u64);
        st.closed.push(closed_len);
        st.files.push((first, new_path));
        st.stats.rotations += 1;
        Ok(())
    }

    /// Starts a new log file now (if the active one holds any record), so
    /// that the records written so far can be deleted by
    /// [`Wal::truncate_through`] once they are in segments. Queued records
    /// go to the new file.
    pub fn rotate(&self) -> Result<()> {
        let mut st = self.lock();
        while st.leader_active {
            st = self.shared.cond.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        self.check_poisoned(&st)?;
        if st.file_len <= frame::FILE_HEADER_LEN as u64 {
            return Ok(());
        }
        if self.shared.ship.is_some() {
            // Shipped logs keep no records locally.
            return Ok(());
        }
        self.rotate_locked(&mut st)
            .map_err(|e| self.stop(&mut st, e))
    }

    /// Deletes every log file whose records all have LSN ≤ `lsn` (they are
    /// in segments now). The active file is never deleted. Returns how many
    /// files were removed.
    pub fn truncate_through(&self, lsn: Lsn) -> Result<usize> {
        let doomed: Vec<PathBuf> = {
            let mut st = self.lock();
            let keep_from = st
                .files
                .windows(2)
                .position(|w| w[1].0.0 > lsn.0 + 1)
                .unwrap_or(st.files.len().saturating_sub(1));
            let closed = keep_from.min(st.closed.len());
            st.closed.drain(..closed);
            st.files.drain(..keep_from).map(|(_, p)| p).collect()
        };
        for p in &doomed {
            self.shared
                .fs
                .remove_file(p)
                .map_err(|e| Error::io(p, "remove", e))?;
        }
        if !doomed.is_empty() {
            fsync_dir(self.shared.fs.as_ref(), &self.shared.dir)?;
        }
        let mut removed = doomed.len();
        if let Some(ship) = &self.shared.ship {
            // Chunk `a` holds the records before the next chunk's first;
            // the last chunk stays (it ends the chain a recovering writer
            // continues).
            let chunks = ship.list()?;
            let done: Vec<u64> = chunks
                .windows(2)
                .filter(|w| w[1] <= lsn.0.saturating_add(1))
                .map(|w| w[0])
                .collect();
            ship.remove(&done)?;
            removed += done.len();
        }
        Ok(removed)
    }

    /// The LSN the next record will get.
    pub fn next_lsn(&self) -> Lsn {
        self.lock().next_lsn
    }

    /// The last LSN covered by an fsync.
    pub fn synced_lsn(&self) -> Lsn {
        self.lock().synced
    }

    /// Counters since open.
    pub fn stats(&self) -> WalStats {
        self.lock().stats
    }

    /// Bytes of the live log files on disk: what a restart replays and
    /// the next flush lets go of.
    pub fn disk_bytes(&self) -> u64 {
        let st = self.lock();
        st.closed.iter().sum::<u64>() + st.file_len
    }

    /// The live log files, oldest first.
    pub fn files(&self) -> Vec<PathBuf> {
        self.lock().files.iter().map(|(_, p)| p.clone()).collect()
    }

    /// Whether an earlier failure stopped the log.
    pub fn is_poisoned(&self) -> bool {
        self.lock().poisoned.is_some()
    }

    /// Makes everything appended durable and closes the log, reporting a
    /// failure instead of hiding it in `Drop`.
    pub fn close(mut self) -> Result<()> {
        let r = if self.shared.opts.sync == SyncMode::Never {
            Ok(())
        } else {
            self.sync().map(|_| ())
        };
        self.stop_flusher();
        r
    }

    fn stop_flusher(&mut self) {
        if let Some(h) = self.flusher.take() {
            self.lock().stopping = true;
            self.shared.cond.notify_all();
            let _ = h.join();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state torn: every
        // update is a plain field assignment after the I/O it describes.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_poisoned(&self, st: &State) -> Result<()> {
        match &st.poisoned {
            Some(cause) => Err(Error::Poisoned {
                dir: self.shared.dir.clone(),
                cause: Arc::clone(cause),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if matches!(self.shared.opts.sync, SyncMode::Interval(_)) {
            let _ = self.sync();
        }
        self.stop_flusher();
    }
}

/// The interval mode's background fsync.
fn flusher(shared: &Shared, every: Duration) {
    let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let (guard, _) = shared
            .cond
            .wait_timeout(st, every)
            .unwrap_or_else(|p| p.into_inner());
        st = guard;
        if st.stopping {
            return;
        }
        if st.poisoned.is_some() || st.leader_active || st.written <= st.synced {
            continue;
        }
        let file = Arc::clone(&st.file);
        let upto = st.written;
        let path = st.files.last().map(|(_, p)| p.clone()).unwrap_or_default();
        st.leader_active = true;
        drop(st);
        let r = file.sync_data();
        st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        st.leader_active = false;
        match r {
            Ok(()) => {
                st.synced = st.synced.max(upto);
                st.stats.syncs += 1;
            }
            Err(e) => {
                let e = Error::io(&path, "fsync", e);
                st.poisoned.get_or_insert(Arc::new(e));
            }
        }
        shared.cond.notify_all();
    }
}

fn create_file(fs: &dyn Fs, dir: &Path, first: Lsn) -> Result<(Arc<dyn FileHandle>, PathBuf)> {
    let path = dir.join(frame::file_name(first));
    let f = fs
        .create_new(&path)
        .map_err(|e| Error::io(&path, "create", e))?;
    f.write_all(&frame::file_header(first))
        .and_then(|_| f.sync_data())
        .map_err(|e| Error::io(&path, "write header", e))?;
    fsync_dir(fs, dir)?;
    Ok((f, path))
}

fn fsync_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    Ok(vdb_fs::sync_dir(fs, dir)?)
}
