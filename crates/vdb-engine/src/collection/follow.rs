//! Read replicas: a collection opened without claiming it, which follows
//! the manifests its writer publishes (and, with `sync = object`, the log
//! chunks the writer ships after them) and serves reads only.
//!
//! Each [`Collection::follow`] asks the store for its newest manifest
//! version. A newer one (the writer flushed, compacted, trained or altered
//! settings) is loaded whole — files already in the cache are not fetched
//! again — and replaces the state searches see; the cached files it no
//! longer names are evicted (searches still holding the old snapshot keep
//! their mappings). With the same version, the shipped log is read from
//! the state's applied LSN on and applied as the writer applies it. A
//! failure (the writer removed a file or chunk between a listing and a
//! read, the store is unreachable) leaves the state as it was, is kept for
//! `describe`, and the next call tries again.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use vdb_core::Lsn;
use vdb_fs::Directory;
use vdb_wal::{Record, SyncMode};

use super::open::{load, replay};
use super::shared::read_log_from;
use super::{Collection, Follow, FollowState, Followed, Inner, Role, StorageInfo, StorageRole};
use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// Attempts to load a manifest's state when the writer removes files
/// between the read of its manifest and the fetch of a file (it compacted
/// meanwhile): each attempt reads the newest manifest again.
const LOAD_ATTEMPTS: usize = 5;

impl Follow {
    fn new(version: u64, since: Instant) -> Follow {
        Follow {
            state: Mutex::new(FollowState {
                version,
                caught_up: since,
                error: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FollowState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn info(&self, writer: u64) -> StorageInfo {
        let st = self.lock();
        StorageInfo {
            role: StorageRole::Replica,
            writer,
            manifest_version: st.version,
            behind: Some(st.caught_up.elapsed()),
            follow_error: st.error.clone(),
        }
    }
}

impl Collection {
    /// Opens the collection in a shared store as a read replica: its
    /// newest manifest's state and the shipped log after it, without
    /// claiming it or changing anything in the store. Cached files the
    /// manifest does not name are evicted.
    pub(crate) fn open_replica(
        pool: Arc<rayon::ThreadPool>,
        name: &str,
        files: Arc<dyn Directory>,
    ) -> Result<Collection> {
        let since = Instant::now();
        let (inner, version) = replica_state(files.as_ref())?;
        evict_unnamed(files.as_ref(), &inner.manifest)?;
        let role = Role::Replica(Follow::new(version, since));
        Ok(Collection::assemble(files, pool, name, role, inner))
    }

    /// On a replica, catches up with what the store holds now: a newer
    /// manifest's state, or the log shipped since. Does nothing on a
    /// writer.
    pub(crate) fn follow(&self) -> Result<Followed> {
        let Role::Replica(f) = &self.role else {
            return Ok(Followed::Current);
        };
        let _guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        let start = Instant::now();
        let mut result = self.follow_once(f);
        if result.is_err()
            && self.files.latest_manifest_version().ok().flatten() != Some(f.lock().version)
        {
            // The writer published while the log was read (and may have
            // trimmed the chunks read): the new manifest has it all.
            result = self.follow_once(f);
        }
        let mut st = f.lock();
        match &result {
            Ok(_) => {
                st.caught_up = start;
                st.error = None;
            }
            Err(e) => st.error = Some(e.to_string()),
        }
        result
    }

    fn follow_once(&self, f: &Follow) -> Result<Followed> {
        let Some(latest) = self.files.latest_manifest_version()? else {
            return Ok(Followed::Gone);
        };
        let current = f.lock().version;
        if latest < current {
            return Ok(Followed::Replaced);
        }
        if latest > current {
            let (inner, version) = replica_state(self.files.as_ref())?;
            let cfg = &inner.manifest.config;
            if cfg.dim != self.config.dim || cfg.metric != self.config.metric {
                return Ok(Followed::Replaced);
            }
            self.default_nprobe
                .store(cfg.nprobe, std::sync::atomic::Ordering::Release);
            self.set_fields(cfg);
            let manifest = inner.manifest.clone();
            {
                let mut cur = self.lock();
                *cur = inner;
                self.publish(&cur);
            }
            // Evicted before the version is recorded, so a replica that
            // reports version `v` caches only the files `v` names.
            let evicted = evict_unnamed(self.files.as_ref(), &manifest);
            f.lock().version = version;
            evicted?;
            return Ok(Followed::Current);
        }
        if self.config.sync == SyncMode::Object {
            let applied = self.lock().applied;
            let (records, from) = shipped_after(self.files.as_ref(), applied)?;
            if !records.is_empty() {
                let mut inner = self.lock();
                let replayed = replay(&mut inner, records, &from);
                self.publish(&inner);
                replayed?;
            }
        }
        Ok(Followed::Current)
    }
}

/// The state of the newest manifest with the shipped log after it (if the
/// collection ships one), and that manifest's version.
fn replica_state(files: &dyn Directory) -> Result<(Inner, u64)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match replica_state_once(files) {
            Err(e) if attempt < LOAD_ATTEMPTS && e.is_not_found() => continue,
            other => return other,
        }
    }
}

fn replica_state_once(files: &dyn Directory) -> Result<(Inner, u64)> {
    let manifest = Manifest::load(files)?;
    let version = files.manifest_version().unwrap_or(0);
    let sync = manifest.config.sync;
    let mut inner = load(files, manifest)?;
    if sync == SyncMode::Object {
        let (records, from) = shipped_after(files, inner.applied)?;
        replay(&mut inner, records, &from)?;
    }
    Ok((inner, version))
}

/// The records of the collection's shipped log after `applied`, and where
/// the log is (for messages).
fn shipped_after(files: &dyn Directory, applied: Lsn) -> Result<(Vec<Record>, PathBuf)> {
    let log = files.log_store().ok_or_else(|| {
        Error::Internal("a collection with sync=object in a store that keeps no log".into())
    })?;
    let mut next = applied.next();
    let records = read_log_from(log.as_ref(), &mut next)?;
    Ok((records, PathBuf::from(log.location(0))))
}

/// Evicts the cached files `manifest` does not name.
fn evict_unnamed(files: &dyn Directory, manifest: &Manifest) -> Result<()> {
    let live: HashSet<&str> = manifest.live_files().collect();
    let cached = files.cached()?;
    let stale: Vec<&str> = cached
        .iter()
        .map(String::as_str)
        .filter(|n| !live.contains(n))
        .collect();
    Ok(files.evict(&stale)?)
}
