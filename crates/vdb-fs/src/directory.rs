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
use std::sync::Arc;

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
    /// [`Directory::path`], after making sure the file is there: a
    /// backend that keeps files elsewhere fetches it into its local cache.
    fn fetch(&self, name: &str) -> Result<PathBuf> {
        Ok(self.path(name))
    }
    /// The committed file `name` cached in part, for a backend that
    /// fetches byte ranges on demand ([`CachedFile`]); `None` when the
    /// whole file is at [`Directory::fetch`]'s path (the default).
    fn open_cached(&self, name: &str) -> Result<Option<Arc<dyn CachedFile>>> {
        let _ = name;
        Ok(None)
    }
    /// Takes the file at local path `from` (which stays) as the
    /// committed file `name`: copied, or linked where the backend can.
    fn adopt(&self, name: &str, from: &Path) -> Result<()> {
        let mut file = self.create(name)?;
        crate::repository::copy_file(file.as_mut(), from)?;
        file.commit()
    }
    /// Where the committed file `name` is kept off the node, for a
    /// backend that keeps it elsewhere (`s3://BUCKET/KEY`): a repository
    /// in the same place copies it there without moving its bytes.
    fn object(&self, name: &str) -> Option<String> {
        let _ = name;
        None
    }
    /// The names of the files it holds (the manifest and leftovers too).
    fn list(&self) -> Result<Vec<String>>;
    /// Bytes that may still be written to it, when that is bounded and
    /// known (a local disk); `None` for an object store.
    fn available_space(&self) -> Result<Option<u64>> {
        Ok(None)
    }
    /// Removes files, durably.
    fn remove(&self, names: &[&str]) -> Result<()>;
    /// Replaces the manifest atomically and durably: a reader sees the old
    /// one or the new one, never a mix.
    fn publish_manifest(&self, bytes: &[u8]) -> Result<()>;
    /// The current manifest.
    fn read_manifest(&self) -> Result<Vec<u8>>;
    /// Whether other nodes can reach these files (an object store): a
    /// writer then claims the directory when it opens it and names itself
    /// in the manifest, and a manifest published by another writer meanwhile
    /// fences it (its next publication fails with a [`Fenced`] error).
    fn shared(&self) -> bool {
        false
    }
    /// The version of the manifest last read or published, for a store
    /// that versions them (the next publication is this plus one).
    fn manifest_version(&self) -> Option<u64> {
        None
    }
    /// The newest manifest version the store holds now (asking the store,
    /// not the version last read), for a store that versions them: how a
    /// reader that does not write learns that the writer published.
    fn latest_manifest_version(&self) -> Result<Option<u64>> {
        Ok(None)
    }
    /// The files copied into the local cache, for a store that keeps
    /// them elsewhere (none otherwise: the directory is the files).
    fn cached(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// Removes local copies of files the store keeps (never the store's
    /// own); names that are not cached are ignored.
    fn evict(&self, names: &[&str]) -> Result<()> {
        let _ = names;
        Ok(())
    }
    /// Where the collection's log is shipped, for a store that keeps it
    /// (the `object` sync mode); `None` keeps the log on the local disk
    /// only.
    fn log_store(&self) -> Option<Arc<dyn LogStore>> {
        None
    }
}

/// A committed file of which the local cache holds only some byte
/// ranges: its local copy at [`CachedFile::path`] has the file's full
/// length, but bytes not fetched read as zeros and bytes no longer pinned
/// may be given back to the disk at any time. A reader maps the local
/// copy and reads only bytes it has pinned.
pub trait CachedFile: Send + Sync + std::fmt::Debug {
    /// The local copy to map.
    fn path(&self) -> &Path;
    /// The file's length.
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Makes bytes `ranges` (clipped to the file) readable in the local
    /// copy, fetching what the cache lacks, and keeps them there until the
    /// returned pin is dropped.
    fn pin(&self, ranges: &[std::ops::Range<u64>]) -> Result<Pin>;
}

/// Byte ranges of [`CachedFile`]s kept readable while it lives (see
/// [`CachedFile::pin`]); several pins can be held as one.
#[derive(Default)]
pub struct Pin(Vec<Box<dyn Send + Sync>>);

impl Pin {
    /// A pin that releases by running `guard`'s `Drop`.
    pub fn new(guard: impl Send + Sync + 'static) -> Pin {
        Pin(vec![Box::new(guard)])
    }

    /// Holds `other`'s ranges too.
    pub fn join(&mut self, other: Pin) {
        self.0.extend(other.0);
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pin({} guards)", self.0.len())
    }
}

/// A collection's log kept off the node, as numbered chunks: chunk `first`
/// is a log file (header and records) whose records start at LSN `first`.
/// Chunks are created once each and never replaced, so of two writers
/// shipping the same LSN only one succeeds; the other is fenced.
pub trait LogStore: Send + Sync + std::fmt::Debug {
    /// Creates chunk `first` holding `bytes`. If a chunk `first` exists
    /// with other bytes, fails with a [`Fenced`] error inside.
    fn put(&self, first: u64, bytes: &[u8]) -> Result<()>;
    /// The chunks there are, by first LSN, ascending.
    fn list(&self) -> Result<Vec<u64>>;
    /// The bytes of chunk `first`.
    fn get(&self, first: u64) -> Result<Vec<u8>>;
    /// Removes chunks (missing ones are not an error).
    fn remove(&self, firsts: &[u64]) -> Result<()>;
    /// Where chunk `first` is, for messages.
    fn location(&self, first: u64) -> String;
}

/// Where the collections of a data directory keep their files when that is
/// not only the local disk (an object store, with the local directory as
/// cache and log): which collections exist, each one's [`Directory`], and
/// removing one.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The names of the collections it holds (those with a manifest).
    fn collections(&self) -> Result<Vec<String>>;
    /// The directory of collection `name`, with `local` (which exists) as
    /// its local cache.
    fn directory(&self, name: &str, local: &Path) -> Result<Arc<dyn Directory>>;
    /// Removes every file of collection `name`.
    fn remove(&self, name: &str) -> Result<()>;
    /// Where it is, for messages (e.g. `s3://bucket/prefix`).
    fn location(&self) -> String;
    /// The repository snapshots go to unless told otherwise
    /// (`PREFIX/snapshots`).
    fn repository(&self) -> Arc<dyn crate::Repository>;
}

/// Another writer published a manifest (or shipped a log chunk) after
/// this one read or wrote its own: this writer must stop (its next
/// publication would undo theirs). Carried as the source of the [`Error`]
/// of the refused publication.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} {number} of {location} was written by another writer; this one is fenced and stops writing"
)]
pub struct Fenced {
    /// Where the collection is.
    pub location: String,
    /// What was refused: `"manifest version"` or `"log chunk"`.
    pub what: &'static str,
    /// Its number: the manifest version, or the chunk's first LSN.
    pub number: u64,
}

impl Fenced {
    /// The error of `op` on `path` that this refusal caused (an
    /// `AlreadyExists` I/O error with it inside).
    pub fn into_error(self, op: &'static str, path: &Path) -> Error {
        Error::new(
            op,
            path,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, self),
        )
    }

    /// Whether `e`, or an error underneath it, is a [`Fenced`].
    pub fn is_in(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if err.downcast_ref::<Fenced>().is_some() {
                return true;
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && io
                    .get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<Fenced>().is_some())
            {
                return true;
            }
            cur = err.source();
        }
        false
    }
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

    /// A hard link where `from` is on the same file system (the bytes
    /// are durable already; the new name is made so), a copy otherwise.
    fn adopt(&self, name: &str, from: &Path) -> Result<()> {
        let to = self.dir.join(name);
        if self.fs.hard_link(from, &to).is_ok() {
            return sync_dir(self.fs.as_ref(), &self.dir);
        }
        let mut file = Box::new(AtomicFile::create(&self.fs, &to)?);
        crate::repository::copy_file(file.as_mut(), from)?;
        file.commit()
    }

    fn available_space(&self) -> Result<Option<u64>> {
        self.fs
            .available_space(&self.dir)
            .map_err(|e| Error::new("statvfs", &self.dir, e))
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
