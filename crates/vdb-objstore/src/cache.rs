//! The node's bounded cache of byte ranges of segment files.
//!
//! A segment the node did not write itself is not downloaded whole: its
//! local copy `<file>.part` is a sparse file of the segment's full length,
//! filled in blocks of [`BLOCK`] bytes as readers pin ranges of it (the
//! header and tables when it is opened, the lists a search probes, the
//! rows it returns). The bytes of every such file count against one limit
//! for the node (`cache_bytes`); past it, the blocks no reader has pinned
//! are given back to the disk (`fallocate(PUNCH_HOLE)`), chosen by a
//! clock sweep (a block used since the hand last passed is spared once:
//! least recently used, nearly, at the cost of a bit per block rather
//! than an ordered index updated on every read). A reader maps the local
//! copy and reads only what it has pinned, so a block that goes is never
//! one being read.
//!
//! The block map lives in memory: a `.part` file left by an earlier
//! process is emptied when it is opened again.

use std::collections::HashMap;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use vdb_fs::{FileHandle, Fs};

/// Bytes of a block, the unit fetched, kept and given back.
pub(crate) const BLOCK: u64 = 64 << 10;

/// How full the cache is, and what it has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    /// Bytes of blocks held now.
    pub bytes: u64,
    /// The limit (`None`: unbounded).
    pub limit: Option<u64>,
    /// Bytes fetched from the store so far.
    pub fetched_bytes: u64,
    /// Range requests made so far.
    pub fetches: u64,
    /// Bytes given back to the disk so far.
    pub evicted_bytes: u64,
}

/// The byte-range cache of one node (shared by all its collections).
#[derive(Debug)]
pub(crate) struct Cache {
    /// `u64::MAX`: unbounded.
    limit: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Bytes of the blocks present (of files not removed).
    used: u64,
    /// Of those, the bytes of blocks no one has pinned: what eviction can
    /// take.
    idle: u64,
    fetched_bytes: u64,
    fetches: u64,
    evicted_bytes: u64,
    next_id: u64,
    by_path: HashMap<PathBuf, u64>,
    files: HashMap<u64, Entry>,
    /// The files eviction sweeps over, in the order it does.
    order: Vec<u64>,
    /// Where the sweep is: a place in `order` and a block of that file.
    hand: (usize, usize),
}

#[derive(Debug)]
struct Entry {
    handle: Arc<dyn FileHandle>,
    path: PathBuf,
    /// The inode of the local copy: a file of that name made since (the
    /// collection dropped and created again) is another file.
    inode: u64,
    /// Readers that have it open ([`Cache::open`] not yet matched by
    /// [`Cache::close`]).
    handles: usize,
    /// Removed from the directory: no longer counted or evicted, kept
    /// (unlinked, still mapped) for the readers that have it open.
    removed: bool,
    len: u64,
    blocks: Vec<Block>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Block {
    present: bool,
    /// Used since the sweep last passed (the second chance of the clock).
    referenced: bool,
    pins: u32,
}

impl Entry {
    fn block_len(&self, b: usize) -> u64 {
        let start = b as u64 * BLOCK;
        (start + BLOCK).min(self.len).saturating_sub(start)
    }

    /// Whether block `b` counts towards `used` and `idle`.
    fn counted(&self, b: usize) -> bool {
        !self.removed && self.blocks.get(b).is_some_and(|k| k.present)
    }
}

/// The blocks of a file of length `len` that `ranges` touch, ascending.
pub(crate) fn blocks_of(ranges: &[Range<u64>], len: u64) -> Vec<usize> {
    let mut blocks: Vec<usize> = ranges
        .iter()
        .filter_map(|r| {
            let end = r.end.min(len);
            (r.start < end).then(|| (r.start / BLOCK) as usize..=((end - 1) / BLOCK) as usize)
        })
        .flatten()
        .collect();
    blocks.sort_unstable();
    blocks.dedup();
    blocks
}

/// Runs of consecutive blocks of `blocks` (ascending), at most `max`
/// blocks each, as byte ranges of a file of length `len`.
pub(crate) fn runs(blocks: &[usize], max: usize, len: u64) -> Vec<Range<u64>> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &b in blocks {
        match out.last_mut() {
            Some((first, last)) if *last + 1 == b && b - *first < max => *last = b,
            _ => out.push((b, b)),
        }
    }
    out.into_iter()
        .map(|(first, last)| first as u64 * BLOCK..((last as u64 + 1) * BLOCK).min(len))
        .collect()
}

impl Cache {
    pub(crate) fn new() -> Cache {
        Cache {
            limit: AtomicU64::new(u64::MAX),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bounds the bytes held (`None`: unbounded), evicting at once.
    pub(crate) fn set_limit(&self, limit: Option<u64>) {
        self.limit
            .store(limit.unwrap_or(u64::MAX), Ordering::Release);
        self.evict(&mut self.lock());
    }

    pub(crate) fn usage(&self) -> CacheUsage {
        let st = self.lock();
        let limit = self.limit.load(Ordering::Acquire);
        CacheUsage {
            bytes: st.used,
            limit: (limit != u64::MAX).then_some(limit),
            fetched_bytes: st.fetched_bytes,
            fetches: st.fetches,
            evicted_bytes: st.evicted_bytes,
        }
    }

    /// The cached copy at `path` of a file of `len` bytes: the one this
    /// process has, or a new empty one (replacing a leftover, or a file
    /// of the same name removed from under the cache).
    pub(crate) fn open(&self, fs: &dyn Fs, path: &Path, len: u64) -> std::io::Result<u64> {
        let mut st = self.lock();
        if let Some(&id) = st.by_path.get(path) {
            let inode = std::fs::metadata(path).map(|m| m.ino()).ok();
            if let Some(e) = st
                .files
                .get_mut(&id)
                .filter(|e| e.len == len && Some(e.inode) == inode)
            {
                e.handles += 1;
                return Ok(id);
            }
            forget(&mut st, path);
        }
        let handle = fs.create(path)?;
        handle.set_len(len)?;
        let inode = std::fs::metadata(path)?.ino();
        st.next_id += 1;
        let id = st.next_id;
        st.by_path.insert(path.to_path_buf(), id);
        st.files.insert(
            id,
            Entry {
                handle,
                path: path.to_path_buf(),
                inode,
                handles: 1,
                removed: false,
                len,
                blocks: vec![Block::default(); len.div_ceil(BLOCK) as usize],
            },
        );
        st.order.push(id);
        Ok(id)
    }

    /// Drops what the cache knows of `path` (the file is being removed):
    /// its bytes no longer count, and readers that have it open go on
    /// reading what they fetched.
    pub(crate) fn forget(&self, path: &Path) {
        forget(&mut self.lock(), path);
    }

    /// A reader of file `id` is done with it.
    pub(crate) fn close(&self, id: u64) {
        let mut st = self.lock();
        let Some(e) = st.files.get_mut(&id) else {
            return;
        };
        e.handles = e.handles.saturating_sub(1);
        if e.handles == 0 && e.removed {
            drop_file(&mut st, id);
        }
    }

    /// Pins `blocks` of file `id`; returns the ones to fetch and the file
    /// to write them to, `None` if the file is no longer cached.
    pub(crate) fn pin(
        &self,
        id: u64,
        blocks: &[usize],
    ) -> Option<(Vec<usize>, Arc<dyn FileHandle>)> {
        let mut st = self.lock();
        let st = &mut *st;
        let entry = st.files.get_mut(&id)?;
        let mut missing = Vec::new();
        for &b in blocks {
            let counted = entry.counted(b);
            let len = entry.block_len(b);
            let Some(block) = entry.blocks.get_mut(b) else {
                continue;
            };
            if block.pins == 0 && counted {
                st.idle -= len;
            }
            block.pins += 1;
            block.referenced = true;
            if !block.present {
                missing.push(b);
            }
        }
        Some((missing, Arc::clone(&entry.handle)))
    }

    /// Records `blocks` of file `id` (pinned by the caller) as written.
    pub(crate) fn filled(&self, id: u64, blocks: &[usize], requests: u64) {
        let mut st = self.lock();
        st.fetches += requests;
        let Some(entry) = st.files.get_mut(&id) else {
            return;
        };
        let mut added = 0;
        for &b in blocks {
            let len = entry.block_len(b);
            if let Some(block) = entry.blocks.get_mut(b).filter(|k| !k.present) {
                block.present = true;
                added += len;
            }
        }
        let counted = !entry.removed;
        st.fetched_bytes += added;
        if counted {
            st.used += added;
        }
        self.evict(&mut st);
    }

    /// Releases pins of `blocks` of file `id`.
    pub(crate) fn unpin(&self, id: u64, blocks: &[usize]) {
        let mut st = self.lock();
        let st = &mut *st;
        if let Some(entry) = st.files.get_mut(&id) {
            for &b in blocks {
                let counted = entry.counted(b);
                let len = entry.block_len(b);
                let Some(block) = entry.blocks.get_mut(b) else {
                    continue;
                };
                block.pins = block.pins.saturating_sub(1);
                if block.pins == 0 && counted {
                    st.idle += len;
                }
            }
        }
        self.evict(st);
    }

    /// Gives back blocks no one has pinned until the limit holds (or every
    /// block left is pinned): a clock sweep over every file's blocks,
    /// where a block used since the hand last passed gets a second chance.
    fn evict(&self, st: &mut State) {
        let limit = self.limit.load(Ordering::Acquire);
        if st.used <= limit || st.idle == 0 {
            return;
        }
        // Two passes over every block find every idle one (the first may
        // only clear its bit); the bound keeps a miscount from spinning.
        let blocks: usize = st.files.values().map(|e| e.blocks.len() + 1).sum();
        let mut steps = 2 * blocks + 2;
        while st.used > limit && st.idle > 0 && steps > 0 {
            steps -= 1;
            let (i, b) = st.hand;
            let Some(&id) = st.order.get(i) else {
                st.hand = (0, 0);
                continue;
            };
            let Some(entry) = st.files.get_mut(&id) else {
                st.hand = (i + 1, 0);
                continue;
            };
            if b >= entry.blocks.len() {
                st.hand = (i + 1, 0);
                continue;
            }
            st.hand = (i, b + 1);
            let counted = entry.counted(b);
            let len = entry.block_len(b);
            let Some(block) = entry.blocks.get_mut(b) else {
                continue;
            };
            if !counted || block.pins > 0 {
                continue;
            }
            if block.referenced {
                block.referenced = false;
                continue;
            }
            block.present = false;
            // A hole that cannot be punched leaves the right bytes in
            // place: the block counts as gone all the same (it is fetched
            // again if needed), so the limit is kept in what is tracked.
            let _ = entry.handle.punch_hole(b as u64 * BLOCK, len);
            st.used -= len;
            st.idle -= len;
            st.evicted_bytes += len;
        }
    }
}

/// Marks `path`'s file removed: its present blocks leave the counts, and
/// it goes once no reader has it open.
fn forget(st: &mut State, path: &Path) {
    let Some(id) = st.by_path.remove(path) else {
        return;
    };
    let Some(entry) = st.files.get_mut(&id) else {
        return;
    };
    debug_assert_eq!(entry.path, path);
    let (mut used, mut idle) = (0, 0);
    for (b, block) in entry.blocks.iter().enumerate() {
        if block.present && !entry.removed {
            used += entry.block_len(b);
            if block.pins == 0 {
                idle += entry.block_len(b);
            }
        }
    }
    entry.removed = true;
    let gone = entry.handles == 0;
    st.used -= used;
    st.idle -= idle;
    if gone {
        drop_file(st, id);
    }
}

/// Forgets file `id` entirely.
fn drop_file(st: &mut State, id: u64) {
    st.files.remove(&id);
    if let Some(i) = st.order.iter().position(|&x| x == id) {
        st.order.remove(i);
        if st.hand.0 > i {
            st.hand.0 -= 1;
        } else if st.hand.0 == i {
            st.hand.1 = 0;
        }
    }
}

/// Pins of blocks of one cached file, released when dropped.
#[derive(Debug)]
pub(crate) struct Pinned {
    pub(crate) cache: Arc<Cache>,
    pub(crate) id: u64,
    pub(crate) blocks: Vec<usize>,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.cache.unpin(self.id, &self.blocks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_runs() {
        let len = 3 * BLOCK + 10;
        assert_eq!(blocks_of(&[0..1, BLOCK - 1..BLOCK + 1], len), vec![0, 1]);
        assert_eq!(blocks_of(&[5..5, len..len + 9], len), Vec::<usize>::new());
        assert_eq!(blocks_of(&[len - 1..len + 100, len..len], len), vec![3]);
        assert_eq!(
            runs(&[0, 1, 2, 3], 2, len),
            vec![0..2 * BLOCK, 2 * BLOCK..len]
        );
        assert_eq!(runs(&[0, 2], 8, len), vec![0..BLOCK, 2 * BLOCK..3 * BLOCK]);
    }

    #[test]
    fn evicts_idle_blocks_oldest_first_and_never_pinned_ones() {
        let dir = tempfile::tempdir().unwrap();
        let fs = vdb_fs::os();
        let cache = Cache::new();
        cache.set_limit(Some(2 * BLOCK));
        let path = dir.path().join("a.part");
        let id = cache.open(fs.as_ref(), &path, 4 * BLOCK).unwrap();
        let fill = |b: usize| {
            let (missing, handle) = cache.pin(id, &[b]).unwrap();
            for &m in &missing {
                handle
                    .write_all_at(&vec![b as u8 + 1; BLOCK as usize], m as u64 * BLOCK)
                    .unwrap();
            }
            cache.filled(id, &missing, 1);
            missing
        };
        assert_eq!(fill(0), vec![0]);
        assert_eq!(fill(1), vec![1]);
        // Three blocks pinned: over the limit, nothing can go.
        assert_eq!(fill(2), vec![2]);
        assert_eq!(cache.usage().bytes, 3 * BLOCK);
        cache.unpin(id, &[1]);
        cache.unpin(id, &[0]);
        // Block 1 went idle first.
        assert_eq!(cache.usage().bytes, 2 * BLOCK);
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            bytes[BLOCK as usize..2 * BLOCK as usize]
                .iter()
                .all(|&x| x == 0)
        );
        assert!(bytes[..BLOCK as usize].iter().all(|&x| x == 1));
        assert!(
            bytes[2 * BLOCK as usize..3 * BLOCK as usize]
                .iter()
                .all(|&x| x == 3)
        );
        // Pinned again, 0 is present, 1 must be fetched again.
        assert_eq!(cache.pin(id, &[0, 1]).unwrap().0, vec![1]);
        let u = cache.usage();
        assert_eq!((u.evicted_bytes, u.fetched_bytes), (BLOCK, 3 * BLOCK));
        // Reopening the same path keeps what is there; forgetting drops it.
        assert_eq!(cache.open(fs.as_ref(), &path, 4 * BLOCK).unwrap(), id);
        // A file of that name made since is another file: it starts
        // empty, while readers of the old one still read what they had.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"other").unwrap();
        let other = cache.open(fs.as_ref(), &path, 4 * BLOCK).unwrap();
        assert_ne!(other, id);
        assert_eq!(cache.usage().bytes, 0);
        assert_eq!(cache.pin(other, &[0]).unwrap().0, vec![0]);
        assert_eq!(cache.pin(id, &[0, 2]).unwrap().0, Vec::<usize>::new());
        cache.unpin(id, &[0, 2]);
        cache.unpin(other, &[0]);
        // Closed by both its readers, the old file is gone.
        cache.close(id);
        assert!(cache.pin(id, &[0]).is_some());
        cache.close(id);
        assert!(cache.pin(id, &[0]).is_none());
        cache.forget(&path);
        assert_eq!(cache.usage().bytes, 0);
    }
}
