//! Maintenance: flush, compaction, training and settings changes, each
//! run as freeze (locked) → write files (unlocked) → install (locked)
//! under the per-collection maintenance lock.

mod frozen;
mod pieces;
mod rebalance;
mod retune;
mod steps;

use self::frozen::{Frozen, ReadAround};
use self::pieces::{Piece, SegmentCap, Written, segment_stat};
use self::retune::{assignment_numbers, retune, retune_untuned, whole};
use self::steps::Target;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard, Weak};

use vdb_core::{Generation, ListId, RowSet};
use vdb_format::{CentroidMeta, SegmentReader};
use vdb_ivf::{CoarseQuantizer, KMeansParams, kmeans};

use super::apply::{hide, push_batch};
use super::runs::{MaintenanceKind, MaintenanceRuns};
use super::{
    Alter, Collection, Inner, Loc, MemEntry, Schedule, SegEntry, batch_views, list_sizes,
    memtable_bytes, memtable_rows, segment_views, unix_now,
};
use crate::backlog::NextLists;
use crate::config::{CollectionConfig, check_target_recall};
use crate::engine::DEFAULT_MEMTABLE_LIMIT;
use crate::error::{Error, Result};
use crate::idmap::ShardedIdMap;
use crate::index::IndexType;
use crate::manifest::Manifest;
use crate::memtable::MemBatch;
use crate::policy::{
    Merge, Plan, PolicyInput, SegmentStat, next_swap, plan, plan_compaction, plan_full_compaction,
    rebalance_target,
};
use crate::tune::nprobe_for_recall;

impl Collection {
    /// Changes settings, durably (the manifest is rewritten). Returns the
    /// new settings. Dimension and metric never change.
    pub fn alter(&self, change: Alter) -> Result<CollectionConfig> {
        self.log()?;
        let _guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        if change.nprobe.is_some() && change.target_recall.is_some() {
            return Err(Error::invalid(
                "target_recall",
                "set nprobe or a recall target to choose it by, not both",
            ));
        }
        // A new target is measured now, on the rows searched now (outside
        // the collection lock; the maintenance lock keeps the lists).
        let tuned = match change.target_recall {
            Some(t) => {
                check_target_recall(t)?;
                let snap = self.snapshot();
                if snap.generation() == 0 {
                    // Untrained: the first training measures it.
                    None
                } else {
                    // The exact searches read every row.
                    let all: Vec<ListId> = (0..snap.nlist() as u32).map(ListId).collect();
                    let _held = snap.hold_lists(&all)?;
                    nprobe_for_recall(snap.quantizer(), &snap.sources_filtered(None), t)?
                }
            }
            None => None,
        };
        let mut inner = self.lock();
        self.check_poisoned(&inner)?;
        let mut next = inner.manifest.clone();
        let c = &mut next.config;
        if let Some(n) = change.nprobe {
            c.nprobe = n;
            c.target_recall = None;
            next.tuned_recall = 0.0;
        }
        if let Some(t) = change.target_recall {
            c.target_recall = Some(t);
            if let Some(tuned) = tuned {
                c.nprobe = tuned.nprobe;
                next.tuned_recall = tuned.recall;
            }
        }
        let c = &mut next.config;
        c.nlist = change.nlist.unwrap_or(c.nlist);
        c.flush_rows = change.flush_rows.unwrap_or(c.flush_rows);
        c.retrain = change.retrain.unwrap_or(c.retrain);
        c.compaction = change.compaction.unwrap_or(c.compaction);
        c.index_type = change.index_type.unwrap_or(c.index_type);
        for (i, f) in change.add_fields.into_iter().enumerate() {
            if let Some(old) = c.fields.iter().find(|o| o.name == f.name) {
                return Err(Error::invalid(
                    format!("add_fields[{i}]"),
                    format!("field {:?} is already declared (as {})", f.name, old.ty),
                ));
            }
            c.fields.push(f);
        }
        c.validate()?;
        next.store(self.files.as_ref())?;
        self.default_nprobe
            .store(next.config.nprobe, Ordering::Release);
        // Only now, with the manifest declaring them stored, may rows
        // carry the new fields: a log replayed at open never holds a value
        // of a field its manifest lacks.
        self.set_fields(&next.config);
        inner.manifest = next;
        Ok(inner.manifest.config.clone())
    }

    /// Gives the collection a way to run its flushes in the background.
    pub(crate) fn attach(self: &Arc<Self>, schedule: Schedule) {
        let _ = self.background.set((schedule, Arc::downgrade(self)));
    }

    /// Asks for a flush in the background, once until it starts. `false`
    /// when there is no background to ask.
    pub(super) fn request_flush(&self) -> bool {
        let Some((schedule, me)) = self.background.get() else {
            return false;
        };
        if !self.flush_requested.swap(true, Ordering::AcqRel) {
            let me = Weak::clone(me);
            (schedule.run)(Box::new(move || {
                if let Some(c) = me.upgrade() {
                    // A failure either poisons the collection, which reports
                    // it to the next writer, or (an object store's, before
                    // anything was published) leaves it as it was, and a
                    // later write asks again; nothing more to do here.
                    let _ = c.background_flush();
                }
            }));
        }
        true
    }

    /// The bytes the memtable may hold before a writer flushes it itself.
    pub(super) fn memtable_limit(&self) -> u64 {
        self.background
            .get()
            .map_or(DEFAULT_MEMTABLE_LIMIT, |(s, _)| s.memtable_limit)
    }

    /// Whether the memtable, holding `bytes`, should be flushed: it holds
    /// `flush_rows` rows, or a quarter of the memory it may hold, or — in
    /// a collection not trained yet — the rows its first training needs,
    /// so that it trains as soon as it can: until then every row written
    /// is searched whole and assigned to a list afterwards.
    pub(super) fn flush_due(&self, inner: &Inner, bytes: u64) -> bool {
        let config = &inner.manifest.config;
        let rows = memtable_rows(inner);
        rows >= config.flush_rows
            || bytes >= self.memtable_limit() / 4
            || (inner.manifest.generation == 0 && rows >= config.train_threshold())
    }

    /// A background flush: flush if still needed.
    fn background_flush(&self) -> Result<()> {
        self.flush_requested.store(false, Ordering::Release);
        if self.dropped.load(Ordering::Acquire) {
            return Ok(());
        }
        let guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        let due = {
            let inner = self.lock();
            self.flush_due(&inner, memtable_bytes(&inner))
        };
        if !due {
            return Ok(());
        }
        self.maintain(&guard, Task::Flush).map(|_| ())
    }

    /// Writes the memtable to a segment, switches the manifest and trims the
    /// WAL; then retrains or compacts if the policies say so.
    pub fn flush(&self) -> Result<()> {
        let guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        self.maintain(&guard, Task::Flush).map(|_| ())
    }

    /// Flushes, then runs `f` on the manifest naming every row written
    /// before the call, with no maintenance until it returns, so the files
    /// it names stay (writes and searches continue; new writes wait in
    /// the memtable). How a snapshot copies a consistent state.
    pub(crate) fn with_flushed<T>(
        &self,
        f: impl FnOnce(&Manifest, &dyn vdb_fs::Directory) -> Result<T>,
    ) -> Result<T> {
        self.log()?;
        let _guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        self.pool.install(|| self.run_task(Task::Flush))?;
        let manifest = self.lock().manifest.clone();
        f(&manifest, self.files.as_ref())
    }

    /// Trains new centroids with `nlist` lists (default: the configured
    /// nlist) on every live row and rewrites the collection as one segment
    /// clustered with them. Writes and searches continue meanwhile.
    pub fn retrain(&self, nlist: Option<usize>) -> Result<()> {
        self.log()?;
        let guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        let (nlist, rows) = {
            let inner = self.lock();
            self.check_poisoned(&inner)?;
            (
                nlist.unwrap_or(inner.manifest.config.nlist),
                inner.ids.len(),
            )
        };
        if nlist == 0 {
            return Err(Error::invalid("nlist", "must be at least 1"));
        }
        if nlist > rows {
            return Err(Error::invalid(
                "nlist",
                format!("{nlist} lists need at least {nlist} rows; the collection has {rows}"),
            ));
        }
        self.maintain(&guard, Task::Train(nlist)).map(|_| ())
    }

    /// A training; if its full rewrite does not fit in the free space and
    /// the lists keep their number, a retraining in bounded steps
    /// (`maintain/steps.rs`) instead.
    fn train_or_step(&self, nlist: usize) -> Result<bool> {
        match self.run_task(Task::Train(nlist)) {
            Err(Error::NoSpace { .. }) if self.steppable(nlist) => self.retrain_in_steps(nlist),
            other => other,
        }
    }

    fn steppable(&self, nlist: usize) -> bool {
        let inner = self.lock();
        inner.manifest.generation > 0 && inner.quantizer.nlist() == nlist
    }

    /// New centroids for every list, applied a group of slots at a time,
    /// each step's moved rows' old copies merged away before the next.
    fn retrain_in_steps(&self, nlist: usize) -> Result<bool> {
        let target = {
            let snap = self.snapshot();
            Arc::new(self.train_target(&snap, nlist)?)
        };
        // Each step switches at least one slot. Before each, segments that
        // a quarter of the merge policy's share of rows moved out of are
        // merged, so old copies stay a few percent of the collection.
        for _ in 0..=nlist {
            for _ in 0..MAX_FOLLOW_UPS {
                let Some(m) = step_merge_plan(&self.lock()) else {
                    break;
                };
                if !self.run_task(Task::Merge(m.segments))? {
                    break;
                }
            }
            if !self.run_task(Task::Step(Arc::clone(&target)))? {
                break;
            }
        }
        // Trained: the drift counters start again, as after a training.
        let mut inner = self.lock();
        if target.pending(&inner.quantizer).is_empty() {
            inner.new_rows = 0;
            inner.new_error = 0.0;
        }
        Ok(true)
    }

    /// Flushes the memtable and rewrites every segment holding deleted or
    /// replaced rows, dropping them and the delete files, and merges
    /// segments while two fit in one: each step writes at most the
    /// compaction policy's segment cap (`max_segment_fraction` of the
    /// collection), so a large collection stays in several segments of
    /// about that size. Returns whether anything was rewritten.
    pub fn compact(&self) -> Result<bool> {
        let guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        self.maintain(&guard, Task::Compact)
    }

    /// Splits the largest lists and dissolves the smallest, locally, until
    /// the lists are about as even as right after training (what the
    /// retraining policy's imbalance rule does after a flush), and flushes
    /// the memtable. Returns whether any list was split.
    pub fn rebalance(&self) -> Result<bool> {
        let guard = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        self.maintain(&guard, Task::Rebalance)
    }

    /// Runs one maintenance task (and, after a flush, whatever the
    /// retraining and compaction policies ask for), holding the maintenance
    /// lock but the collection lock only to freeze and to install:
    ///
    /// 1. *freeze* (locked): the memtable becomes read-only "frozen"
    ///    batches, still searched; new writes go to a fresh memtable;
    /// 2. *write* (unlocked): new segment / delete / centroid files and the
    ///    manifest that names them, from the frozen state;
    /// 3. *install* (locked): the new files replace the frozen state; rows
    ///    replaced or deleted while 2 ran are hidden in the new segment.
    ///
    /// Returns whether the task changed anything; for a rebalancing,
    /// whether it split lists (a training that follows it, which starts
    /// the count of splits again, does not hide that).
    pub(super) fn maintain(&self, guard: &MutexGuard<'_, ()>, task: Task) -> Result<bool> {
        self.log()?;
        self.pool.install(|| self.maintain_in_pool(guard, task))
    }

    fn maintain_in_pool(&self, _guard: &MutexGuard<'_, ()>, task: Task) -> Result<bool> {
        let follow = matches!(task, Task::Flush | Task::Rebalance);
        let splits = || self.lock().manifest.rebalances;
        let before = splits();
        let done = match task {
            Task::Train(nlist) => self.train_or_step(nlist)?,
            _ => self.run_task(task.clone())?,
        };
        if task == Task::Compact && done {
            // Step by step, each within the cap: every step purges hidden
            // rows or leaves fewer segments, so it ends; the bound guards
            // against writers that keep replacing rows meanwhile.
            let steps = 2 * self.lock().segs.len() + 4;
            for _ in 0..steps {
                if !self.run_task(Task::Compact)? {
                    break;
                }
            }
        }
        // Whether the last rebalancing split lists (then the next goes on
        // down to the target), or split none (then none is asked again).
        let mut rebalancing = (task == Task::Rebalance).then(|| splits() != before);
        let split = rebalancing == Some(true);
        // After a flush, what the policies ask for: a training, a local
        // rebalancing, or merges until none is due (a merge can fill the
        // next tier). Each merge leaves fewer segments or none hidden, and
        // each rebalancing fewer uneven lists, so this ends; the bound
        // only guards against a policy bug.
        for _ in 0..if follow { MAX_FOLLOW_UPS } else { 0 } {
            let next = {
                let inner = self.lock();
                let input = policy_input(&inner);
                let merge = compaction_plan(&inner).map(|m| Task::Merge(m.segments));
                let step_merge = (rebalancing == Some(true))
                    .then(|| step_merge_plan(&inner))
                    .flatten()
                    .map(|m| Task::Merge(m.segments));
                match plan(&inner.manifest.config.retrain, &input) {
                    Plan::Train { nlist, .. } => Some(Task::Train(nlist)),
                    // The old copies of the rows a step moved are purged
                    // before the next step moves more, as between the
                    // steps of a retraining, so they stay a few percent.
                    _ if step_merge.is_some() => step_merge,
                    _ if rebalancing == Some(true)
                        && input.imbalance
                            > rebalance_target(
                                &inner.manifest.config.retrain,
                                inner.manifest.trained_imbalance,
                            ) =>
                    {
                        Some(Task::Rebalance)
                    }
                    Plan::Rebalance { .. } if rebalancing.is_none() => Some(Task::Rebalance),
                    _ => merge,
                }
            };
            let Some(t) = next else { break };
            let before = splits();
            let ran = match t {
                Task::Train(nlist) => self.train_or_step(nlist),
                _ => self.run_task(t.clone()),
            };
            match ran {
                Ok(true) => {}
                Ok(false) => break,
                // The flush is done; the rewrite waits for space, and
                // `describe` says why.
                Err(e @ Error::NoSpace { .. }) => {
                    self.lock().postponed = Some(e.to_string());
                    break;
                }
                Err(e) => return Err(e),
            }
            if t == Task::Rebalance {
                rebalancing = Some(splits() != before);
            }
        }
        Ok(if task == Task::Rebalance { split } else { done })
    }

    /// Runs `task` once ([`Collection::run_task_once`]), counted in
    /// [`Collection::maintenance_runs`].
    fn run_task(&self, task: Task) -> Result<bool> {
        let kind = task.kind();
        let start = std::time::Instant::now();
        let outcome = self.run_task_once(task);
        self.runs.record(kind, &outcome, start.elapsed());
        outcome
    }

    /// Each kind of maintenance task's runs since the collection was
    /// opened: how many changed something, found nothing to do or failed,
    /// and the time they took.
    pub fn maintenance_runs(&self) -> Vec<(MaintenanceKind, MaintenanceRuns)> {
        self.runs.get()
    }

    fn run_task_once(&self, task: Task) -> Result<bool> {
        let frozen = {
            let mut inner = self.lock();
            self.check_poisoned(&inner)?;
            let hidden: usize = inner.segs.iter().map(|s| s.deleted.count()).sum();
            let idle = match task {
                Task::Flush => inner.mem.is_empty() && inner.pending_deletes.is_empty(),
                Task::Compact => {
                    inner.mem.is_empty()
                        && inner.pending_deletes.is_empty()
                        && hidden == 0
                        && inner.manifest.deletes.is_empty()
                        && full_compaction_plan(&inner).is_none()
                }
                Task::Merge(ref segments) => segments.is_empty(),
                Task::Step(ref target) => target.pending(&inner.quantizer).is_empty(),
                Task::Train(nlist) => inner.ids.len() < nlist,
                Task::Rebalance => {
                    inner.manifest.generation == 0
                        || inner.segs.is_empty()
                        || (inner.mem.is_empty()
                            && inner.pending_deletes.is_empty()
                            && next_swap(
                                &list_sizes(&inner),
                                rebalance_target(
                                    &inner.manifest.config.retrain,
                                    inner.manifest.trained_imbalance,
                                ),
                                &[],
                            )
                            .is_none())
                }
            };
            if idle {
                return Ok(false);
            }
            self.check_space(&inner, &task)?;
            let f = freeze(&mut inner);
            self.publish(&inner);
            f
        };
        // A flush reads only the memtable; the others read segments in
        // list order, which read-around serves best.
        let _read_around = (task != Task::Flush).then(|| ReadAround::new(&frozen));
        let written = match &task {
            Task::Flush => self.write_merge(&frozen, &[]),
            Task::Compact => {
                let cap = frozen.segment_cap();
                let chosen = plan_full_compaction(&frozen.segment_stats(), cap.bytes);
                self.write_merge(&frozen, &chosen.map(|m| m.segments).unwrap_or_default())
                    .map(|mut w| {
                        w.manifest.compacted_at = unix_now();
                        w
                    })
            }
            Task::Merge(segments) => self.write_merge(&frozen, segments),
            Task::Train(nlist) => self.write_train(&frozen, *nlist),
            Task::Step(target) => {
                let rows = frozen.segment_cap().rows() / 4;
                self.write_step(&frozen, target, rows)
            }
            // No split worth making: the memtable is flushed all the same.
            Task::Rebalance => match self.write_rebalance(&frozen) {
                Ok(Some(w)) => Ok(w),
                Ok(None) => self.write_merge(&frozen, &[]),
                Err(e) => Err(e),
            },
        };
        let written = match written {
            // Nothing is published, so nothing changed: an object store's
            // failure (after its retries) leaves the collection as it was,
            // and so does a step that found, before writing anything, that
            // its rows would not fit; the task can be tried again.
            Err(e) if self.files.shared() || matches!(e, Error::NoSpace { .. }) => {
                self.thaw(frozen);
                return Err(e);
            }
            other => other,
        };
        // The manifest's publication is the commit point; if it fails the
        // outcome is unknown (it may be stored), so the collection stops
        // until reopened.
        let published = written.and_then(|w| {
            w.manifest.store(self.files.as_ref())?;
            Ok(w)
        });
        // The memtable's rows under new centroids, found before the lock
        // (on failure the install finds them again and reports it).
        let ahead = match &published {
            Ok(w) => self.reassign_ahead(w).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let mut inner = self.lock();
        if task != Task::Flush {
            inner.postponed = None;
        }
        let installed = published
            .and_then(|w| {
                for p in &w.segments {
                    // Rows from the memtable are written for the first
                    // time, whichever task writes them; rows from segments
                    // are rewritten. The bytes are shared in proportion.
                    let first = p
                        .origins
                        .iter()
                        .filter(|o| matches!(o, Loc::Frozen(..)))
                        .count() as u64;
                    let all = (p.origins.len() as u64).max(1);
                    let fresh = p.reader.file_len() * first / all;
                    inner.flushed_bytes += fresh;
                    inner.rewritten_bytes += p.reader.file_len() - fresh;
                }
                self.install(&mut inner, w, ahead)
            })
            .map_err(|e| self.poison(&mut inner, e));
        self.publish(&inner);
        drop(inner);
        let garbage = installed?;
        let garbage: Vec<&str> = garbage.iter().map(String::as_str).collect();
        // A file left behind by a failed removal is garbage the next open
        // removes.
        let _ = self.files.remove(&garbage);
        let wal = self.log()?;
        wal.rotate()?;
        wal.truncate_through(frozen.lsn)?;
        Ok(true)
    }

    /// Refuses a compaction or training that would not fit in the free
    /// space: it writes the rows it rewrites (and a training its centroids)
    /// before removing the files they replace. A flush is never refused:
    /// the log would only grow.
    fn check_space(&self, inner: &Inner, task: &Task) -> Result<()> {
        let (name, segments): (&'static str, Vec<usize>) = match task {
            Task::Flush => return Ok(()),
            Task::Compact => (
                "compaction",
                full_compaction_plan(inner)
                    .map(|m| m.segments)
                    .unwrap_or_default(),
            ),
            Task::Merge(s) => ("compaction", s.clone()),
            Task::Train(_) => ("training", (0..inner.segs.len()).collect()),
            Task::Rebalance => ("rebalancing", Vec::new()),
            Task::Step(_) => ("retraining step", Vec::new()),
        };
        let Some(available) = self.files.available_space()? else {
            return Ok(());
        };
        let dim = self.config.dim as u64;
        let (stored, rows) = inner.segs.iter().fold((0u64, 0u64), |(b, r), s| {
            (b + s.reader.file_len(), r + s.reader.rows() as u64)
        });
        let per_row = match rows {
            0 => 4 * dim + 16,
            _ => stored / rows,
        };
        let mut needed: u64 = segments
            .iter()
            .filter_map(|&i| inner.segs.get(i))
            .map(|s| s.reader.file_len())
            .sum();
        needed += memtable_rows(inner) as u64 * per_row;
        let centroids = 4 * dim * inner.quantizer.nlist() as u64;
        match task {
            Task::Train(nlist) => needed += 4 * dim * *nlist as u64,
            Task::Rebalance => {
                // Each split moves about its list, the dissolved one and
                // some neighbours' rows: at most three of the largest
                // lists' worth; splits stop once a quarter of the segment
                // cap's rows moved; never more than every row.
                let largest = list_sizes(inner).into_iter().max().unwrap_or(0);
                let (_, cap) = segment_stats(inner);
                let step = (cap / per_row.max(1) / 4 + 3 * largest)
                    .min(3 * largest * rebalance::MAX_SWAPS as u64);
                let moved = step.min(rows);
                needed += moved * per_row + centroids;
            }
            // The rows it moves are known only once it has placed them:
            // the step checks them itself before it writes.
            Task::Step(_) => needed += centroids,
            _ => {}
        }
        if needed > available {
            return Err(Error::NoSpace {
                name: self.name.clone(),
                task: name,
                needed,
                available,
            });
        }
        Ok(())
    }

    /// Training: new centroids with `nlist` lists from the frozen state's
    /// `live` rows, written as the next generation's centroid file, and
    /// every live row's list under them.
    fn train(&self, f: &Frozen, live: &[Loc], nlist: usize) -> Result<Trained> {
        let dim = self.config.dim;
        let mut vectors = Vec::with_capacity(live.len() * dim);
        for &loc in live {
            vectors.extend_from_slice(f.row(loc)?.vector);
        }
        let (centroids, _report) = kmeans::train(
            &vectors,
            dim,
            nlist,
            self.config.metric,
            &KMeansParams::default(),
        )?;
        let generation = f.manifest.generation + 1;
        let file = self.write_centroid_file(f, generation, &centroids)?;
        let quantizer = Arc::new(f.manifest.config.quantizer(centroids)?);
        let assignment = quantizer.assign(&vectors)?;
        let (error, imbalance) = assignment_numbers(&assignment, nlist);
        Ok(Trained {
            quantizer,
            file,
            generation,
            error,
            imbalance,
            lists: assignment.into_iter().map(|(l, _)| l).collect(),
        })
    }

    /// Writes `centroids` as generation `generation`'s centroid file;
    /// returns its name.
    fn write_centroid_file(
        &self,
        f: &Frozen,
        generation: u64,
        centroids: &[f32],
    ) -> Result<String> {
        let file = if self.files.shared() {
            // In a shared store two writers (one of them fenced) may write
            // the same generation: the name also carries this writer's
            // flush sequence, unique to it.
            vdb_format::centroid_file_name_at(Generation(generation), f.manifest.next_seq)
        } else {
            vdb_format::centroid_file_name(Generation(generation))
        };
        vdb_format::write_centroids_in(
            self.files.as_ref(),
            &file,
            CentroidMeta {
                generation: Generation(generation),
                metric: self.config.metric,
                dim: self.config.dim,
            },
            centroids,
        )?;
        Ok(file)
    }

    /// Phase 2 of a training: every live row of the frozen state as one
    /// segment clustered with new centroids, and the manifest to name only
    /// it.
    fn write_train(&self, f: &Frozen, nlist: usize) -> Result<Written> {
        // Every row is read: segments cached in part are fetched whole.
        let _held = f
            .segs
            .iter()
            .map(|(seg, _)| seg.hold_all())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let live = f.live_rows();
        let seq = f.manifest.next_seq;
        let mut next = f.manifest.clone();
        next.next_seq += 1;
        next.flushed_lsn = f.lsn;
        next.deletes.clear();
        next.compacted_at = unix_now();
        let t = self.train(f, &live, nlist)?;
        if f.manifest.generation == 0 {
            // Not trained yet, so every memtable row is searched whole
            // anyway: rows written from now on are grouped by the new
            // lists as they are written, not assigned again afterwards.
            let mut inner = self.lock();
            let backlog: Vec<Arc<MemBatch>> = inner.mem.iter().map(|e| e.batch.clone()).collect();
            inner.next = Some(NextLists::new(
                t.generation,
                Arc::clone(&t.quantizer),
                backlog,
            ));
        }
        next.config.nlist = nlist;
        next.generation = t.generation;
        next.trained_generation = t.generation;
        next.rebalances = 0;
        next.rebalanced_at = 0;
        next.centroids = Some(t.file);
        next.trained_rows = live.len() as u64;
        next.trained_error = t.error;
        next.trained_imbalance = t.imbalance;
        next.trained_at = next.compacted_at;
        let mut rows: Vec<(ListId, Loc)> = t.lists.into_iter().zip(live).collect();
        rows.sort_by_key(|&(l, _)| l);
        let pieces = self.write_pieces(f, &t.quantizer, next.generation, &rows, f.segment_cap())?;
        // New lists, so a new nprobe for the target, published with them:
        // every live row is in the pieces.
        let sources: Vec<_> = pieces.iter().map(|p| whole(&p.reader)).collect();
        retune(&mut next, &t.quantizer, &sources)?;
        next.segments = pieces.iter().map(|p| (p.seq, p.file.clone())).collect();
        next.next_seq = seq + pieces.len().max(1) as u64;
        Ok(Written {
            manifest: next,
            segments: pieces,
            replaces: (0..f.segs.len()).collect(),
            quantizer: Some(t.quantizer),
            changed: Vec::new(),
        })
    }

    /// Phase 2 of a compaction, and of a flush (which merges no segment):
    /// the live rows of the segments at positions `chosen` (ascending) and
    /// of the frozen memtable as new segments (one, unless they pass the
    /// segment cap), the frozen deletes as a delete file if a segment kept
    /// may hold their ids, and the manifest naming the kept segments and
    /// the new ones.
    ///
    /// Merging any subset is sound because only live rows are written and
    /// the new segments are the newest: at open they shadow nothing that
    /// is still live elsewhere. A delete file hides ids in the segments
    /// flushed before it, so one is kept while a kept segment older than
    /// it has hidden rows: one without holds none of its ids.
    fn write_merge(&self, f: &Frozen, chosen: &[usize]) -> Result<Written> {
        let _held = chosen
            .iter()
            .filter_map(|&i| f.segs.get(i))
            .map(|(seg, _)| seg.hold_all())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let seq = f.manifest.next_seq;
        let mut next = f.manifest.clone();
        next.next_seq += 1;
        next.flushed_lsn = f.lsn;
        let live = f.live_rows_of(chosen);
        let mut rows = live
            .into_iter()
            .map(|loc| Ok((f.row(loc)?.list, loc)))
            .collect::<Result<Vec<_>>>()?;
        rows.sort_by_key(|&(l, _)| l);
        let kept: Vec<usize> = (0..f.segs.len())
            .filter(|i| chosen.binary_search(i).is_err())
            .collect();
        next.segments = kept
            .iter()
            .filter_map(|&i| f.manifest.segments.get(i).cloned())
            .collect();
        let hiding: Vec<u64> = kept
            .iter()
            .filter(|&&i| f.segs.get(i).is_some_and(|(_, d)| d.count() > 0))
            .filter_map(|&i| f.manifest.segments.get(i).map(|&(s, _)| s))
            .collect();
        next.deletes.retain(|&(d, _)| hiding.iter().any(|&s| s < d));
        let pieces = self.write_pieces(
            f,
            &f.quantizer,
            f.manifest.generation,
            &rows,
            f.segment_cap(),
        )?;
        next.segments
            .extend(pieces.iter().map(|p| (p.seq, p.file.clone())));
        next.next_seq = seq + pieces.len().max(1) as u64;
        // Deletes since the last flush hid rows where they were visible:
        // a kept segment without hidden rows holds none of them either.
        if !f.pending_deletes.is_empty() && !hiding.is_empty() {
            let file = vdb_format::delete_file_name(seq);
            vdb_format::write_deletes_in(self.files.as_ref(), &file, seq, &f.pending_deletes)?;
            next.deletes.push((seq, file));
        }
        if kept.is_empty() && !chosen.is_empty() {
            next.compacted_at = unix_now();
        }
        let written: Vec<&SegmentReader> = pieces.iter().map(|p| &p.reader).collect();
        retune_untuned(&mut next, f, &kept, &written)?;
        Ok(Written {
            manifest: next,
            segments: pieces,
            replaces: chosen.to_vec(),
            quantizer: None,
            changed: Vec::new(),
        })
    }

    /// Undoes a freeze whose files could not be written: the frozen
    /// batches become the memtable's oldest again and the frozen deletes
    /// pending again. The sequence number the attempt used is not used
    /// again (an object store may hold a file of it), and the files it
    /// left are removed if they can be (a later open removes them if not).
    fn thaw(&self, f: Frozen) {
        let mut inner = self.lock();
        let frozen = std::mem::take(&mut inner.frozen);
        let newer = std::mem::take(&mut inner.mem);
        let n = frozen.len() as u32;
        repoint(&mut inner.ids, &frozen, Loc::Frozen, Loc::Mem);
        repoint(&mut inner.ids, &newer, Loc::Mem, |b, r| Loc::Mem(b + n, r));
        inner.mem = frozen;
        inner.mem.extend(newer);
        inner.pending_deletes.extend(f.pending_deletes);
        abandon_next(&mut inner);
        // The attempt numbered its files from `failed_seq` to `last_seq`
        // (several when it wrote pieces); none of them is used again.
        let (failed_seq, last_seq) = (f.manifest.next_seq, f.last_seq.load(Ordering::Acquire));
        inner.manifest.next_seq = inner.manifest.next_seq.max(last_seq + 1);
        self.publish(&inner);
        drop(inner);
        if let Ok(files) = self.files.list() {
            let left: Vec<&str> = files
                .iter()
                .map(String::as_str)
                .filter(|name| {
                    vdb_format::file_sequence(name)
                        .is_some_and(|s| (failed_seq..=last_seq).contains(&s))
                })
                .filter(|name| !f.manifest.live_files().any(|l| l == *name))
                .collect();
            let _ = self.files.remove(&left);
        }
    }

    /// With new centroids in `w`: the new list of every row of the
    /// memtable's batches, computed with the collection unlocked (for a
    /// training after a large load, seconds of work that writes and
    /// searches would otherwise wait for). Batches written meanwhile get a
    /// second round; whatever arrives after it the install reassigns.
    fn reassign_ahead(&self, w: &Written) -> Result<Ahead> {
        let Some(q) = &w.quantizer else {
            return Ok(Vec::new());
        };
        if self.lock().next.is_some() {
            // A first training's backlog (`next.rs`), regrouped in place
            // before the install. Two threads, past maintenance's usual
            // one: the writers help while they write, and their core is
            // idle once they are done, while every search of this
            // collection, not trained yet, scans every row until it ends.
            std::thread::scope(|s| {
                s.spawn(|| while let Ok(true) = self.catch_up_once() {});
                while self.catch_up_once()? {}
                Ok::<(), Error>(())
            })?;
            return Ok(Vec::new());
        }
        let changed = (!w.changed.is_empty()).then_some(&w.changed[..]);
        let mut ahead: Ahead = Vec::new();
        for _ in 0..2 {
            let batches: Vec<Arc<MemBatch>> = {
                let inner = self.lock();
                inner
                    .mem
                    .iter()
                    .filter(|e| e.generation != w.manifest.generation)
                    .filter(|e| ahead_of(&ahead, &e.batch).is_none())
                    .map(|e| e.batch.clone())
                    .collect()
            };
            if batches.is_empty() {
                break;
            }
            for b in batches {
                let lists = b.reassign(q, changed)?;
                ahead.push((Arc::downgrade(&b), lists));
            }
        }
        Ok(ahead)
    }

    /// Phase 3: puts what phase 2 wrote in place of the frozen state,
    /// regrouping the memtable with the lists found `ahead` where it can.
    /// Returns the files no longer named by the manifest.
    fn install(&self, inner: &mut Inner, w: Written, ahead: Ahead) -> Result<Vec<String>> {
        let old_files: Vec<String> = inner.manifest.live_files().map(str::to_string).collect();
        if !w.replaces.is_empty() {
            // The segments replaced leave; the others keep their order,
            // and the ids pointing into them follow their new positions.
            let old = std::mem::take(&mut inner.segs);
            for (o, e) in old.into_iter().enumerate() {
                if w.replaces.binary_search(&o).is_ok() {
                    continue;
                }
                let n = inner.segs.len();
                if n != o {
                    for (r, &id) in e.reader.ids().iter().enumerate() {
                        if !e.deleted.contains(r)
                            && inner.ids.get(&id) == Some(&Loc::Seg(o as u32, r as u32))
                        {
                            inner.ids.insert(id, Loc::Seg(n as u32, r as u32));
                        }
                    }
                }
                inner.segs.push(e);
            }
        }
        for Piece {
            reader, origins, ..
        } in w.segments
        {
            let i = inner.segs.len() as u32;
            let mut deleted = RowSet::new(reader.rows());
            for (r, (&id, origin)) in reader.ids().iter().zip(origins).enumerate() {
                if inner.ids.get(&id) == Some(&origin) {
                    inner.ids.insert(id, Loc::Seg(i, r as u32));
                    // A row moved out of a segment that stays (local
                    // rebalancing): its old copy is hidden there, as an
                    // upsert hides it (and at open the newer segment
                    // shadows it). Segments replaced are gone already.
                    if let Loc::Seg(s, row) = origin
                        && w.replaces.binary_search(&(s as usize)).is_err()
                    {
                        let before = w.replaces.partition_point(|&x| x < s as usize) as u32;
                        hide(inner, Loc::Seg(s - before, row));
                    }
                } else {
                    // Replaced or deleted while the file was being written.
                    deleted.insert(r);
                }
            }
            inner.segs.push(SegEntry {
                deleted: Arc::new(deleted),
                reader: Arc::new(reader),
            });
        }
        inner.frozen.clear();
        inner.manifest = w.manifest;
        self.default_nprobe
            .store(inner.manifest.config.nprobe, Ordering::Release);
        if let Some(q) = w.quantizer {
            // The memtable was grouped by the old lists: regroup it. After
            // a local rebalancing only rows near the changed lists move and
            // the drift counters go on; after a training they start again
            // (from the rows grouped by the new lists as they were written).
            let changed = (!w.changed.is_empty()).then_some(&w.changed[..]);
            inner.quantizer = q;
            if changed.is_none() {
                inner.new_rows = 0;
                inner.new_error = 0.0;
            }
            if let Some(next) = inner.next.take() {
                inner.new_rows = next.rows;
                inner.new_error = next.error;
            }
            regroup_memtable(inner, &ahead, changed, changed.is_none())?;
        }
        // Files no longer named are garbage, removed once the lock is
        // released; snapshots that still map them keep working (unlinked
        // files stay mapped).
        Ok(old_files
            .into_iter()
            .filter(|file| !inner.manifest.live_files().any(|l| l == file))
            .collect())
    }
}

/// Memtable batches' new lists computed ahead of an install, each with the
/// batch it is for (a weak reference keeps the batch's address from being
/// reused while the batch itself may go).
type Ahead = Vec<(Weak<MemBatch>, Vec<(ListId, f32)>)>;

/// The lists computed ahead for `batch`, if any.
fn ahead_of<'a>(ahead: &'a Ahead, batch: &Arc<MemBatch>) -> Option<&'a [(ListId, f32)]> {
    ahead
        .iter()
        .find(|(b, _)| std::ptr::eq(b.as_ptr(), Arc::as_ptr(batch)))
        .map(|(_, lists)| &lists[..])
}

/// Forgets the centroids a first training that failed was installing:
/// the batches grouped by them go back to the collection's one list (no
/// assignment needed).
pub(super) fn abandon_next(inner: &mut Inner) {
    if inner.next.take().is_some() {
        // Reassigning to one list cannot fail.
        let _ = regroup_memtable(inner, &Vec::new(), None, false);
    }
}

/// Regroups the memtable's batches that are not grouped by the
/// collection's current lists by them, with the lists found `ahead` where
/// there are some (`changed` as in [`MemBatch::reassign`]); batches
/// grouped by them already stay as they are. With `count`, the rows
/// regrouped join the drift rule's counters.
fn regroup_memtable(
    inner: &mut Inner,
    ahead: &Ahead,
    changed: Option<&[ListId]>,
    count: bool,
) -> Result<()> {
    let fields = inner.manifest.config.fields.clone();
    let generation = inner.manifest.generation;
    let nlist = inner.quantizer.nlist();
    for (b, e) in std::mem::take(&mut inner.mem).into_iter().enumerate() {
        if e.generation == generation {
            // Its rows keep their numbers; ids follow its new position
            // (the same unless a batch before it had no row left).
            let to = inner.mem.len() as u32;
            if to != b as u32 {
                repoint(
                    &mut inner.ids,
                    std::slice::from_ref(&e),
                    |_, r| Loc::Mem(b as u32, r),
                    |_, r| Loc::Mem(to, r),
                );
            }
            inner.mem.push(e);
            continue;
        }
        let lists = match ahead_of(ahead, &e.batch) {
            Some(lists) => Cow::Borrowed(lists),
            None => Cow::Owned(e.batch.reassign(&inner.quantizer, changed)?),
        };
        if let Some((batch, error, _)) = e.batch.regrouped(&e.deleted, &lists, nlist, &fields) {
            if count {
                inner.new_rows += batch.rows() as u64;
                inner.new_error += error;
            }
            push_batch(inner, batch, generation);
        }
    }
    Ok(())
}

/// Most trainings and merges one flush is followed by.
const MAX_FOLLOW_UPS: usize = 64;

/// A maintenance task.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Task {
    Flush,
    /// Every segment and the memtable into one segment.
    Compact,
    /// The segments at these positions (ascending) and the memtable into
    /// one segment.
    Merge(Vec<usize>),
    Train(usize),
    /// Lists split and dissolved locally, and the memtable flushed.
    Rebalance,
    /// One step of a retraining in bounded steps: the next slots switched
    /// to the target's centroids, and the memtable flushed.
    Step(Arc<Target>),
}

impl Task {
    fn kind(&self) -> MaintenanceKind {
        match self {
            Task::Flush => MaintenanceKind::Flush,
            Task::Compact => MaintenanceKind::Compact,
            Task::Merge(_) => MaintenanceKind::Merge,
            Task::Train(_) => MaintenanceKind::Train,
            Task::Rebalance => MaintenanceKind::Rebalance,
            Task::Step(_) => MaintenanceKind::Step,
        }
    }
}

/// New centroids and where they put the rows trained on.
#[derive(Debug)]
struct Trained {
    quantizer: Arc<CoarseQuantizer>,
    /// Their centroid file.
    file: String,
    generation: u64,
    /// The rows' mean distance to their centroid.
    error: f64,
    /// faiss's imbalance factor of the new lists.
    imbalance: f64,
    /// Each row's list, in the order given.
    lists: Vec<ListId>,
}

/// Phase 1 of maintenance: the memtable becomes frozen batches (ids that
/// pointed into it now point into `frozen`), a new memtable starts, and the
/// state to work from is captured.
fn freeze(inner: &mut Inner) -> Frozen {
    debug_assert!(inner.frozen.is_empty(), "maintenance is serialised");
    let mem = std::mem::take(&mut inner.mem);
    repoint(&mut inner.ids, &mem, Loc::Mem, Loc::Frozen);
    inner.frozen = mem;
    let mut pending: Vec<u64> = inner.pending_deletes.drain().collect();
    pending.sort_unstable();
    Frozen {
        segs: segment_views(inner),
        mem: batch_views(inner.frozen.iter()),
        pending_deletes: pending,
        lsn: inner.applied,
        last_seq: AtomicU64::new(inner.manifest.next_seq),
        manifest: inner.manifest.clone(),
        quantizer: Arc::clone(&inner.quantizer),
    }
}

/// Moves the rows of `batches` in the id map: each id that points at its
/// row as `from(batch, row)` (not replaced or deleted since) then points
/// at `to(batch, row)`.
fn repoint(
    ids: &mut ShardedIdMap<Loc>,
    batches: &[MemEntry],
    from: impl Fn(u32, u32) -> Loc,
    to: impl Fn(u32, u32) -> Loc,
) {
    for (b, e) in batches.iter().enumerate() {
        for r in 0..e.batch.rows() {
            if let Some(row) = e.batch.row(r)
                && ids.get(&row.id) == Some(&from(b as u32, r as u32))
            {
                ids.insert(row.id, to(b as u32, r as u32));
            }
        }
    }
}

/// The segments the collection's compaction policy would merge now.
fn compaction_plan(inner: &Inner) -> Option<Merge> {
    let (stats, cap) = segment_stats(inner);
    plan_compaction(&inner.manifest.config.compaction, &stats, cap)
}

/// The merge to run between the steps of a local rebalancing or of a
/// retraining in steps: the compaction policy's with a quarter of its
/// share of hidden rows, so the old copies of the rows the steps move
/// stay a few percent of the collection rather than up to `max_hidden`
/// of every segment (more rows rewritten, less disk held).
fn step_merge_plan(inner: &Inner) -> Option<Merge> {
    let (stats, cap) = segment_stats(inner);
    let mut policy = inner.manifest.config.compaction;
    policy.max_hidden /= 4.0;
    plan_compaction(&policy, &stats, cap)
}

/// The segments `compact()` would merge next.
fn full_compaction_plan(inner: &Inner) -> Option<Merge> {
    let (stats, cap) = segment_stats(inner);
    plan_full_compaction(&stats, cap)
}

/// The segments as the compaction policy sees them, and the segment cap.
fn segment_stats(inner: &Inner) -> (Vec<SegmentStat>, u64) {
    let stats: Vec<SegmentStat> = inner
        .segs
        .iter()
        .map(|s| segment_stat(&s.reader, &s.deleted))
        .collect();
    let cap = SegmentCap::new(&inner.manifest.config, &stats, memtable_rows(inner) as u64);
    (stats, cap.bytes)
}

/// The numbers the retraining policy decides from.
fn policy_input(inner: &Inner) -> PolicyInput {
    let sizes = list_sizes(inner);
    let m = &inner.manifest;
    let coded = m.config.index_type == IndexType::IvfRabitq;
    PolicyInput {
        generation: m.generation,
        rows: inner.ids.len() as u64,
        train_threshold: m.config.train_threshold() as u64,
        nlist_config: m.config.nlist,
        nlist_now: if m.generation == 0 { 0 } else { sizes.len() },
        trained_rows: m.trained_rows,
        trained_error: m.trained_error,
        trained_imbalance: m.trained_imbalance,
        new_rows: inner.new_rows,
        new_error: if inner.new_rows == 0 {
            0.0
        } else {
            inner.new_error / inner.new_rows as f64
        },
        imbalance: vdb_ivf::imbalance_factor(&sizes),
        full_sample: (KMeansParams::default().max_points_per_centroid as u64)
            .saturating_mul(m.config.nlist as u64),
        index_type: m.config.index_type,
        // Read from the segments, not the quantizer (built for the
        // configuration at open): a change survives a restart before the
        // rewrite.
        other_index_segments: inner
            .segs
            .iter()
            .filter(|s| s.reader.codes_seed().is_some() != coded)
            .count(),
    }
}
