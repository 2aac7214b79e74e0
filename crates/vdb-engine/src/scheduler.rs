//! Background maintenance on tokio: one task per engine receives closures
//! (a collection's flush, and whatever the retraining and compaction
//! policies ask for afterwards) and runs them one at a time on the
//! runtime's blocking pool, so neither writers nor the runtime's worker
//! threads wait for files to be written or k-means to run. It knows
//! nothing of collections: it runs what it is given, as tantivy's segment
//! updater runs scheduled tasks.
//!
//! The engine runs the task on a runtime it is given
//! ([`crate::EngineOptions::runtime`], e.g. the server's) or, embedded in a
//! program without one, on a small runtime of its own. Work runs one piece
//! at a time: maintenance is CPU- and disk-heavy, and running several at
//! once would only take cores from searches.

use std::sync::{Arc, Mutex};

use tokio::runtime::{Handle, Runtime};
use tokio::sync::mpsc;

/// A piece of background work.
pub(crate) type Task = Box<dyn FnOnce() + Send>;

/// The queue of background work.
#[derive(Debug)]
pub(crate) struct Scheduler {
    tx: Mutex<Option<mpsc::UnboundedSender<Task>>>,
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
        let (tx, mut rx) = mpsc::unbounded_channel::<Task>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        handle.spawn(async move {
            while let Some(task) = rx.recv().await {
                // A task that panics ends itself only.
                let _ = tokio::task::spawn_blocking(task).await;
            }
            let _ = done_tx.send(());
        });
        Ok(Arc::new(Scheduler {
            tx: Mutex::new(Some(tx)),
            done: Mutex::new(Some(done_rx)),
            own: Mutex::new(own),
        }))
    }

    /// Queues `task`; after [`Scheduler::stop`] it is dropped unrun.
    pub(crate) fn schedule(&self, task: Task) {
        if let Some(tx) = &*self.tx.lock().unwrap_or_else(|p| p.into_inner()) {
            let _ = tx.send(task);
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
