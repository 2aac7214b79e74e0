//! Read-only memory maps: the only `unsafe` code of this crate.
//!
//! A [`MappedFile`] owns a read-only map of a whole file behind an `Arc`, so
//! readers can share it and the map outlives every slice handed out from it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::{Error, Result};

/// A whole file mapped read-only, shared by reference counting.
#[derive(Debug, Clone)]
pub struct MappedFile {
    path: Arc<PathBuf>,
    map: Option<Arc<Mmap>>,
}

impl MappedFile {
    /// Maps `path` read-only. An empty file gives an empty byte slice
    /// (empty maps are not portable, so none is made).
    #[expect(
        unsafe_code,
        reason = "Mmap::map: vdb never modifies or truncates a file while it is mapped (the mmap contract)"
    )]
    pub fn open(path: &Path) -> Result<MappedFile> {
        let file = File::open(path).map_err(|e| Error::io(path, "open", e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(path, "stat", e))?
            .len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: `Mmap::map` is unsafe because the mapped bytes change if
            // the file is modified, and reads fault if it is truncated, while
            // mapped. vdb's files are write-once: written under a temporary
            // name, fsynced and renamed, then never opened for writing or
            // truncated again (the mmap contract in the crate docs and
            // docs/format.md). Unlinking a mapped file leaves the map valid.
            // The one exception is the local copy of a file cached in part
            // (`vdb_fs::CachedFile`): it keeps its full length (so no read
            // is past its end), and only byte ranges no reader has pinned
            // change — filled with the file's bytes, or given back as
            // zeros; `SegmentReader` reads a cached file's bytes only
            // under a pin.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, "mmap", e))?;
            Some(Arc::new(map))
        };
        Ok(MappedFile {
            path: Arc::new(path.to_path_buf()),
            map,
        })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().map_or(&[], |m| &m[..])
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Advises the kernel that the whole file will be needed soon.
    pub fn advise_willneed(&self) {
        #[cfg(unix)]
        if let Some(m) = &self.map {
            let _ = m.advise(memmap2::Advice::WillNeed);
        }
    }

    /// Advises the kernel how the bytes `range` of the file are read: at
    /// random (`MADV_RANDOM`: a page missing from memory is read alone,
    /// without the read-around a fault otherwise brings in), or back to
    /// the default (`MADV_NORMAL`).
    pub fn advise_random(&self, range: std::ops::Range<usize>, random: bool) -> Result<()> {
        #[cfg(unix)]
        if let Some((m, start, len)) = self.mapped(range) {
            let advice = if random {
                memmap2::Advice::Random
            } else {
                memmap2::Advice::Normal
            };
            m.advise_range(advice, start, len)
                .map_err(|e| Error::io(&self.path, "madvise", e))?;
        }
        Ok(())
    }

    /// The map with the part of `range` inside it as (start, length);
    /// `None` when that part is empty.
    #[cfg(unix)]
    fn mapped(&self, range: std::ops::Range<usize>) -> Option<(&Mmap, usize, usize)> {
        let m = self.map.as_deref()?;
        let end = range.end.min(m.len());
        (range.start < end).then(|| (m, range.start, end - range.start))
    }

    /// Takes the bytes `range` of the file out of memory: this map's pages
    /// there are unmapped and the kernel is asked to drop the file's
    /// cached pages there (pages another process maps stay), so the next
    /// read of them comes from the disk. The bytes read stay the same.
    /// For benchmarks of searches whose data is not in memory; the file
    /// must still be at its path.
    #[cfg(target_os = "linux")]
    #[expect(
        unsafe_code,
        reason = "madvise(MADV_DONTNEED) on the read-only map, posix_fadvise on its file"
    )]
    pub fn evict(&self, range: std::ops::Range<usize>) -> Result<()> {
        use std::os::fd::AsRawFd;

        let Some((m, start, len)) = self.mapped(range) else {
            return Ok(());
        };
        // SAFETY: the map is a read-only shared map of a file vdb never
        // changes while it is mapped (see `open`). MADV_DONTNEED on such a
        // map only drops its page table entries: the next access faults
        // the same bytes in again from the page cache or the file, so no
        // slice handed out from the map changes or dangles. memmap2
        // aligns the start down to a page and checks the range is inside
        // the map.
        unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len) }
            .map_err(|e| Error::io(&self.path, "madvise", e))?;
        let file = File::open(self.path.as_path()).map_err(|e| Error::io(&self.path, "open", e))?;
        // SAFETY: posix_fadvise only reads its integer arguments; the
        // descriptor is open for the call's duration. DONTNEED drops clean
        // cached pages, which the kernel reads again on the next access.
        let rc = unsafe {
            libc::posix_fadvise(
                file.as_raw_fd(),
                start as libc::off_t,
                len as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        if rc != 0 {
            return Err(Error::io(
                &self.path,
                "posix_fadvise",
                std::io::Error::from_raw_os_error(rc),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_files_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, b"hello").unwrap();
        let m = MappedFile::open(&p).unwrap();
        assert_eq!(m.bytes(), b"hello");
        // The map outlives the file's name.
        std::fs::remove_file(&p).unwrap();
        assert_eq!(m.clone().bytes(), b"hello");
        let e = dir.path().join("empty");
        std::fs::write(&e, b"").unwrap();
        assert!(MappedFile::open(&e).unwrap().bytes().is_empty());
        let err = MappedFile::open(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    /// Evicting any range (past the end, empty, unaligned) keeps the
    /// bytes a reader sees; the pages come back from the file.
    #[cfg(target_os = "linux")]
    #[test]
    fn evicted_ranges_read_back_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        let bytes: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        let m = MappedFile::open(&p).unwrap();
        let before = m.bytes();
        assert_eq!(before, &bytes[..]);
        for range in [
            0..40_000,
            5..9_000,
            4_097..4_098,
            30_000..90_000,
            7..7,
            50_000..60_000,
        ] {
            m.evict(range.clone()).unwrap();
            assert_eq!(m.bytes(), &bytes[..], "{range:?}");
            for random in [true, false] {
                m.advise_random(range.clone(), random).unwrap();
                m.evict(range.clone()).unwrap();
                assert_eq!(m.bytes(), &bytes[..], "{range:?}");
            }
        }
        // A slice taken before an eviction still reads the file's bytes.
        assert_eq!(before, &bytes[..]);
        let e = dir.path().join("empty");
        std::fs::write(&e, b"").unwrap();
        MappedFile::open(&e).unwrap().evict(0..10).unwrap();
    }
}
