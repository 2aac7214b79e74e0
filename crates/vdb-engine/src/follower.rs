//! A read replica's follower: one thread that, every interval, picks up
//! the collections the store gained or lost and lets each collection catch
//! up with its writer ([`Collection::follow`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use vdb_fs::FsRef;

use crate::collection::{Collection, Followed};
use crate::config::validate_name;
use crate::shared_store::{OpenAs, open_one};

/// The collections an engine serves, by name.
pub(crate) type Collections = Arc<RwLock<BTreeMap<String, Arc<Collection>>>>;

/// What the follower works on: the engine's collections and where they are.
pub(crate) struct Context {
    pub(crate) fs: FsRef,
    pub(crate) pool: Arc<rayon::ThreadPool>,
    /// `<data dir>/collections`: each collection's local cache.
    pub(crate) root: PathBuf,
    pub(crate) store: Arc<dyn vdb_fs::Store>,
    pub(crate) collections: Collections,
}

/// The running follower; stopped (and joined) by [`Follower::stop`] or
/// when dropped.
#[derive(Debug)]
pub(crate) struct Follower {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    /// Starts following, a round every `every`.
    pub(crate) fn start(ctx: Context, every: Duration) -> std::io::Result<Follower> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("vdb-follow".into())
            .spawn(move || {
                loop {
                    let (lock, cv) = &*flag;
                    let stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
                    let (stopped, _) = cv
                        .wait_timeout_while(stopped, every, |s| !*s)
                        .unwrap_or_else(|p| p.into_inner());
                    if *stopped {
                        return;
                    }
                    drop(stopped);
                    round(&ctx);
                }
            })?;
        Ok(Follower {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread after its current round.
    pub(crate) fn stop(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One round: collections the store no longer holds are dropped here
/// (handles held keep their snapshot), new ones opened, and every one
/// catches up. A failure is kept by the collection it concerns (shown by
/// `describe`); a store that cannot list leaves the set as it is.
fn round(ctx: &Context) {
    if let Ok(names) = ctx.store.collections() {
        let known: Vec<String> = read(ctx).keys().cloned().collect();
        for gone in known.iter().filter(|n| !names.contains(n)) {
            forget(ctx, gone);
        }
        for name in names.iter().filter(|n| !known.contains(n)) {
            if validate_name(name).is_ok() {
                reopen(ctx, name);
            }
        }
    }
    let all: Vec<Arc<Collection>> = read(ctx).values().cloned().collect();
    for c in all {
        match c.follow() {
            Ok(Followed::Current) | Err(_) => {}
            Ok(Followed::Gone) => forget(ctx, c.name()),
            Ok(Followed::Replaced) => {
                forget(ctx, c.name());
                reopen(ctx, c.name());
            }
        }
    }
}

fn read(ctx: &Context) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Collection>>> {
    ctx.collections.read().unwrap_or_else(|p| p.into_inner())
}

/// Stops serving `name` and removes its cache, whose files may share
/// names with those of a collection created again under that name.
fn forget(ctx: &Context, name: &str) {
    let removed = ctx
        .collections
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .remove(name);
    if let Some(c) = removed {
        c.mark_dropped();
    }
    // Mapped files stay readable for searches still holding them.
    let _ = ctx.fs.remove_dir_all(&ctx.root.join(name));
}

/// Opens `name` as a replica and serves it; a failure leaves it for the
/// next round.
fn reopen(ctx: &Context, name: &str) {
    if let Ok(c) = open_one(
        &ctx.fs,
        &ctx.pool,
        &ctx.root,
        ctx.store.as_ref(),
        name,
        OpenAs::Replica,
    ) {
        ctx.collections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), Arc::new(c));
    }
}
