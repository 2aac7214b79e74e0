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
}
