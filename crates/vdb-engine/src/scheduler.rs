//! Background maintenance on tokio: one task per engine receives the
//! collections whose writes filled a memtable and runs their flushes (and
//! whatever the retraining and compaction policies ask for afterwards) on
//! the runtime's blocking pool, so neither writers nor the runtime's worker
//! threads wait for files to be written or k-means to run.
//!
//! The engine runs the task on a runtime it is given
//! ([`crate::EngineOptions::runtime`], e.g. the server's) or, embedded in a
//! program without one, on a small runtime of its own. One task handles
//! requests one at a time: maintenance is CPU- and disk-heavy, and running
//! several at once would only take cores from searches.

use std::sync::{Arc, Mutex, Weak};

use tokio::runtime::{Handle, Runtime};
use tokio::sync::mpsc;

use crate::collection::Collection;

/// The queue of collections that want maintenance.
#[derive(Debug)]
pub(crate) struct Scheduler {
    tx: Mutex<Option<mpsc::UnboundedSender<Weak<Collection>>>>,
    /// Receives once the task has finished the queued work and ended.
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    /// The runtime the engine created for itself, if it was given none.
    own: Mutex<Option<Runtime>>,
}

impl Scheduler {
    /// Starts the maintenance task on `runtime`, or on a runtime of its own.
    pub(crate) fn start(runtime: Option<Handle>) -> std::io::Result<Arc<Scheduler>> {
        let (own, handle) = match runtime {
            Some(h) => (None, h),
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .max_blocking_threads(2)
                    .thread_name("vdb-maintenance")
                    .build()?;
                let h = rt.handle().clone();
                (Some(rt), h)
            }
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Weak<Collection>>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        handle.spawn(async move {
            while let Some(weak) = rx.recv().await {
                let Some(c) = weak.upgrade() else { continue };
                // A failure poisons the collection, which reports it to the
                // next writer; nothing more to do here.
                let _ = tokio::task::spawn_blocking(move || c.background_flush()).await;
            }
            let _ = done_tx.send(());
        });
        Ok(Arc::new(Scheduler {
            tx: Mutex::new(Some(tx)),
            done: Mutex::new(Some(done_rx)),
            own: Mutex::new(own),
        }))
    }

    /// Asks for maintenance of `c`.
    pub(crate) fn request(&self, c: Weak<Collection>) {
        if let Some(tx) = &*self.tx.lock().unwrap_or_else(|p| p.into_inner()) {
            let _ = tx.send(c);
        }
    }

    /// Finishes the queued work and stops the task. Blocks: call it from a
    /// thread that may block (not from inside an async task).
    pub(crate) fn stop(&self) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(done) = self.done.lock().unwrap_or_else(|p| p.into_inner()).take() {
            // Err: the task is gone (its runtime shut down); nothing to wait for.
            let _ = done.recv();
        }
        if let Some(rt) = self.own.lock().unwrap_or_else(|p| p.into_inner()).take() {
            // Its work is done; do not wait for idle blocking threads.
            rt.shutdown_background();
        }
    }
}
