//! The online recall estimate: at most one real search per collection per
//! interval is searched again exactly, on a thread of its own, and its
//! recall@k (the share of the exact top k the answer held) joins a window
//! of the collection's last [`WINDOW`] samples, whose mean is exported as
//! `vdb_collection_recall_estimate`. A dashboard then sees recall decay
//! (data drifting away from the centroids, a default nprobe set too low)
//! before users do, measured on the queries they actually send.
//!
//! The request path pays a map lookup under a lock to decide, and for a
//! sampled request a copy of its first query and ids; the exact search
//! runs off it. A full queue drops the sample rather than wait.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use vdb_engine::{Engine, Filter, SearchOptions};

/// Samples a collection's window holds.
pub const WINDOW: usize = 100;

/// Samples waiting for their exact search, at most.
const QUEUE: usize = 64;

/// A search to repeat exactly.
#[derive(Debug)]
pub(crate) struct Sample {
    pub(crate) collection: String,
    pub(crate) query: Vec<f32>,
    pub(crate) k: usize,
    pub(crate) filter: Option<Filter>,
    /// The ids the search answered.
    pub(crate) found: Vec<u64>,
}

/// Decides which searches are sampled and hands them to the thread that
/// repeats them.
#[derive(Debug)]
pub(crate) struct RecallSampler {
    queue: SyncSender<Sample>,
    interval: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

impl RecallSampler {
    /// Starts the sampling thread over `engine` (not kept alive by it),
    /// recording into `windows`; one sample per collection per `interval`.
    pub(crate) fn start(
        engine: Weak<Engine>,
        windows: Arc<RecallWindows>,
        interval: Duration,
    ) -> std::io::Result<Arc<RecallSampler>> {
        let (queue, samples) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("vdb-recall".into())
            .spawn(move || repeat_exactly(&engine, &windows, &samples))?;
        Ok(Arc::new(RecallSampler {
            queue,
            interval,
            last: Mutex::new(HashMap::new()),
        }))
    }

    /// Whether a search of `collection` now is to be sampled (and, if so,
    /// the interval starts again).
    pub(crate) fn due(&self, collection: &str) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get_mut(collection) {
            Some(t) if now.duration_since(*t) < self.interval => false,
            Some(t) => {
                *t = now;
                true
            }
            None => {
                last.insert(collection.to_string(), now);
                true
            }
        }
    }

    /// Queues `sample` for its exact search, or drops it if the queue is
    /// full.
    pub(crate) fn offer(&self, sample: Sample) {
        match self.queue.try_send(sample) {
            Ok(()) => {}
            Err(TrySendError::Full(s)) => {
                tracing::debug!(
                    collection = s.collection,
                    "recall sample dropped: queue full"
                );
            }
            // The thread is gone (it cannot start again); nothing to do.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The sampling thread: until every sender is gone, each sample's exact
/// search and its recall.
fn repeat_exactly(engine: &Weak<Engine>, windows: &RecallWindows, samples: &Receiver<Sample>) {
    while let Ok(s) = samples.recv() {
        let Some(engine) = engine.upgrade() else {
            return;
        };
        // A collection dropped or a search refused since: no sample.
        let Ok(c) = engine.collection(&s.collection) else {
            continue;
        };
        let opts = SearchOptions {
            k: s.k,
            nprobe: Some(usize::MAX),
            filter: s.filter,
            ..SearchOptions::default()
        };
        let exact = match c.search(std::slice::from_ref(&s.query), opts) {
            Ok(mut r) => r.pop().unwrap_or_default(),
            Err(e) => {
                tracing::debug!(collection = s.collection, error = %e, "recall sample's exact search failed");
                continue;
            }
        };
        if let Some(recall) = recall(&s.found, exact.iter().map(|h| h.id)) {
            windows.record(&s.collection, recall);
        }
    }
}

/// The share of `exact` (the true top k) that `found` holds; `None` when
/// there is nothing to find.
fn recall(found: &[u64], exact: impl Iterator<Item = u64>) -> Option<f64> {
    let (mut hit, mut total) = (0usize, 0usize);
    for id in exact {
        total += 1;
        hit += usize::from(found.contains(&id));
    }
    (total > 0).then(|| hit as f64 / total as f64)
}

/// Each collection's recent recalls.
#[derive(Debug, Default)]
pub(crate) struct RecallWindows {
    windows: Mutex<HashMap<String, Window>>,
}

#[derive(Debug, Default)]
struct Window {
    recent: VecDeque<f64>,
    total: u64,
}

/// What a scrape exports for one collection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Estimate {
    /// Mean recall of the window.
    pub(crate) recall: f64,
    /// Samples in the window.
    pub(crate) window: usize,
    /// Samples taken since the server started.
    pub(crate) total: u64,
}

impl RecallWindows {
    fn record(&self, collection: &str, recall: f64) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = windows.entry(collection.to_string()).or_default();
        if w.recent.len() == WINDOW {
            w.recent.pop_front();
        }
        w.recent.push_back(recall);
        w.total += 1;
    }

    /// The estimate of each of `live` that has samples; collections not
    /// in `live` (dropped) are forgotten.
    pub(crate) fn estimates(&self, live: &[String]) -> Vec<(String, Estimate)> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows.retain(|name, _| live.contains(name));
        windows
            .iter()
            .filter(|(_, w)| !w.recent.is_empty())
            .map(|(name, w)| {
                let mean = w.recent.iter().sum::<f64>() / w.recent.len() as f64;
                let e = Estimate {
                    recall: mean,
                    window: w.recent.len(),
                    total: w.total,
                };
                (name.clone(), e)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_is_the_share_of_the_exact_top_k_found() {
        assert_eq!(recall(&[1, 2, 3], [1, 2, 3].into_iter()), Some(1.0));
        assert_eq!(recall(&[1, 9, 3, 8], [1, 2, 3, 4].into_iter()), Some(0.5));
        // Fewer rows than k: recall over those there are.
        assert_eq!(recall(&[5], [5].into_iter()), Some(1.0));
        assert_eq!(recall(&[], std::iter::empty()), None);
    }

    #[test]
    fn a_window_keeps_the_last_samples_and_forgets_dropped_collections() {
        let w = RecallWindows::default();
        for i in 0..WINDOW + 10 {
            w.record("a", if i < 10 { 0.0 } else { 1.0 });
        }
        w.record("b", 0.25);
        let live = ["a".to_string(), "b".to_string()];
        let mut e = w.estimates(&live);
        e.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            e[0].1,
            Estimate {
                recall: 1.0,
                window: WINDOW,
                total: (WINDOW + 10) as u64
            }
        );
        assert_eq!(e[1].1.recall, 0.25);
        assert_eq!(w.estimates(&live[..1]).len(), 1);
        assert_eq!(w.estimates(&live).len(), 1, "b was forgotten");
    }

    #[test]
    fn one_sample_per_collection_per_interval() {
        let windows = Arc::new(RecallWindows::default());
        let s = RecallSampler::start(Weak::new(), windows, Duration::from_secs(3600)).unwrap();
        assert!(s.due("a"));
        assert!(!s.due("a"));
        assert!(s.due("b"));
        let every = RecallSampler::start(Weak::new(), Arc::default(), Duration::ZERO).unwrap();
        assert!(every.due("a") && every.due("a"));
    }
}
