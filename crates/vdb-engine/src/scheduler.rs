//! Background maintenance: one worker thread per engine runs the flushes
//! (and whatever the retraining and compaction policies ask for afterwards)
//! that writes request when they fill a memtable, so writes do not wait for
//! files to be written or k-means to run.
//!
//! A plain thread rather than an async runtime: the work is blocking I/O
//! and CPU, and an embedding application should not have to host a runtime
//! for it. The server drives the engine from its own runtime.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;

use crate::collection::Collection;

#[derive(Debug, Default)]
struct Queue {
    pending: VecDeque<Weak<Collection>>,
    stopping: bool,
}

/// The queue of collections that want maintenance, and its worker.
#[derive(Debug, Default)]
pub(crate) struct Scheduler {
    queue: Mutex<Queue>,
    cv: Condvar,
}

impl Scheduler {
    /// Starts the worker thread.
    pub(crate) fn start() -> std::io::Result<(Arc<Scheduler>, JoinHandle<()>)> {
        let s = Arc::new(Scheduler::default());
        let worker = Arc::clone(&s);
        let handle = std::thread::Builder::new()
            .name("vdb-maintenance".into())
            .spawn(move || worker.run())?;
        Ok((s, handle))
    }

    /// Asks for maintenance of `c`.
    pub(crate) fn request(&self, c: Weak<Collection>) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if !q.stopping {
            q.pending.push_back(c);
            self.cv.notify_one();
        }
    }

    /// Finishes the queued work and stops the worker.
    pub(crate) fn stop(&self) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stopping = true;
        self.cv.notify_all();
    }

    fn run(&self) {
        loop {
            let next = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if let Some(c) = q.pending.pop_front() {
                        break Some(c);
                    }
                    if q.stopping {
                        break None;
                    }
                    q = self.cv.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            let Some(weak) = next else { return };
            if let Some(c) = weak.upgrade() {
                // A failure poisons the collection, which reports it to the
                // next writer; nothing more to do here.
                let _ = c.background_flush();
            }
        }
    }
}
