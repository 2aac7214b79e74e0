//! Where a collection's immutable files and its manifest live.
//!
//! A collection writes segment, centroid and delete files once and never
//! changes them, and publishes a manifest naming the live ones. Everything
//! the engine does with them goes through [`Directory`]: create a file
//! (visible only once committed), read it (map it from a local path), list
//! and remove files, and replace the manifest atomically. [`LocalDirectory`]
//! keeps them in a directory of the local disk with the durable-write
//! protocol; a backend that keeps them on object storage (with the local
//! directory as a cache) implements the same trait.

use std::path::{Path, PathBuf};

use crate::durable::{AtomicFile, NewFile, ScratchFile, sync_dir, write_atomic};
use crate::{Error, FsRef, Result};

/// The manifest's name in a directory.
pub const MANIFEST: &str = "MANIFEST";

/// Where a collection's immutable files and its manifest live.
pub trait Directory: Send + Sync + std::fmt::Debug {
    /// Starts writing the immutable file `name`. It appears under `name`,
    /// complete and durable, only when committed; dropped before, it leaves
    /// nothing behind.
    fn create(&self, name: &str) -> Result<Box<dyn NewFile>>;
    /// A local scratch file for a writer's temporary data, `name` chosen by
    /// the writer (not durable, removed when dropped).
    fn scratch(&self, name: &str) -> Result<ScratchFile>;
    /// The local path to read (map) the committed file `name` from.
    fn path(&self, name: &str) -> PathBuf;
    /// The names of the files it holds (the manifest and leftovers too).
    fn list(&self) -> Result<Vec<String>>;
    /// Removes files, durably.
    fn remove(&self, names: &[&str]) -> Result<()>;
    /// Replaces the manifest atomically and durably: a reader sees the old
    /// one or the new one, never a mix.
    fn publish_manifest(&self, bytes: &[u8]) -> Result<()>;
    /// The current manifest.
    fn read_manifest(&self) -> Result<Vec<u8>>;
}

/// A directory on the local disk, changed through an [`crate::Fs`].
#[derive(Debug, Clone)]
pub struct LocalDirectory {
    fs: FsRef,
    dir: PathBuf,
}

impl LocalDirectory {
    /// The directory `dir` (which exists) through `fs`.
    pub fn new(fs: FsRef, dir: &Path) -> LocalDirectory {
        LocalDirectory {
            fs,
            dir: dir.to_path_buf(),
        }
    }

    /// Its path.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Directory for LocalDirectory {
    fn create(&self, name: &str) -> Result<Box<dyn NewFile>> {
        Ok(Box::new(AtomicFile::create(
            &self.fs,
            &self.dir.join(name),
        )?))
    }

    fn scratch(&self, name: &str) -> Result<ScratchFile> {
        ScratchFile::create(&self.fs, &self.dir.join(name))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn list(&self) -> Result<Vec<String>> {
        let list = |e| Error::new("list", &self.dir, e);
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(list)? {
            let entry = entry.map_err(list)?;
            let is_file = entry.file_type().map_err(list)?.is_file();
            if let (true, Some(name)) = (is_file, entry.file_name().to_str()) {
                names.push(name.to_string());
            }
        }
        names.sort_unstable();
        Ok(names)
    }

    fn remove(&self, names: &[&str]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        for name in names {
            let path = self.dir.join(name);
            self.fs
                .remove_file(&path)
                .map_err(|e| Error::new("remove", &path, e))?;
        }
        sync_dir(self.fs.as_ref(), &self.dir)
    }

    fn publish_manifest(&self, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.fs, &self.dir.join(MANIFEST), bytes)
    }

    fn read_manifest(&self) -> Result<Vec<u8>> {
        let path = self.dir.join(MANIFEST);
        std::fs::read(&path).map_err(|e| Error::new("read", &path, e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

    use super::*;

    #[test]
    fn files_appear_on_commit_and_the_manifest_is_replaced_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let d = LocalDirectory::new(crate::os(), tmp.path());
        let mut f = d.create("seg-1.seg").unwrap();
        f.write_all(b"rows").unwrap();
        assert_eq!(d.list().unwrap(), vec!["seg-1.seg.tmp".to_string()]);
        f.commit().unwrap();
        d.publish_manifest(b"one").unwrap();
        d.publish_manifest(b"two").unwrap();
        assert_eq!(d.read_manifest().unwrap(), b"two");
        assert_eq!(
            d.list().unwrap(),
            vec![MANIFEST.to_string(), "seg-1.seg".to_string()]
        );
        assert_eq!(std::fs::read(d.path("seg-1.seg")).unwrap(), b"rows");
        d.remove(&["seg-1.seg"]).unwrap();
        assert_eq!(d.list().unwrap(), vec![MANIFEST.to_string()]);
        assert!(d.remove(&["missing"]).is_err());
    }
}
