//! Where snapshots are kept: a [`Repository`] holds blobs under keys
//! (`a/b/c`), and the engine lays snapshots out in it (`docs/format.md`).
//! [`LocalRepository`] is a directory of the local disk; a repository on
//! object storage implements the same trait.
//!
//! Copying a collection's file in or out is the repository's job, so each
//! one copies the cheapest way it can: a hard link between a local
//! collection and a local repository on one file system, a server-side
//! copy within one bucket, bytes otherwise.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::durable::{AtomicFile, NewFile, sync_dir};
use crate::{Directory, Error, FsRef, Result};

/// A place that keeps blobs under keys: the files and descriptors of
/// snapshots. Keys are `/`-separated relative names made of the characters
/// of collection and file names.
pub trait Repository: Send + Sync + std::fmt::Debug {
    /// Where it is, for messages and listings (a path or an `s3://` URL).
    fn location(&self) -> String;
    /// The length of blob `key`, `None` if there is none (blobs appear
    /// whole or not at all).
    fn size(&self, key: &str) -> Result<Option<u64>>;
    /// Stores the committed file `name` of `from` as blob `key`.
    fn put_file(&self, key: &str, from: &dyn Directory, name: &str) -> Result<()>;
    /// Copies blob `key` into `into` as its committed file `name`.
    fn get_file(&self, key: &str, into: &dyn Directory, name: &str) -> Result<()>;
    /// Creates blob `key` holding `bytes`, durably; fails with an
    /// `AlreadyExists` error inside if it exists.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;
    /// The bytes of blob `key`.
    fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// The names of the blobs directly under `dir` (`""`: the top), not
    /// those further down.
    fn list(&self, dir: &str) -> Result<Vec<String>>;
    /// Removes blobs; missing ones are not an error.
    fn remove(&self, keys: &[&str]) -> Result<()>;
}

/// Copies the file at `from` into `to` (not committed).
pub fn copy_file(to: &mut dyn NewFile, from: &Path) -> Result<()> {
    let read = |e| Error::new("read", from, e);
    let mut file = std::fs::File::open(from).map_err(read)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(read)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
    }
}

/// A repository in a directory of the local disk (created when first
/// written), changed through an [`crate::Fs`] with the durable-write
/// protocol. A file of a collection on the same file system is stored as
/// a hard link: the snapshot costs no space until the collection removes
/// the file.
#[derive(Debug, Clone)]
pub struct LocalRepository {
    fs: FsRef,
    root: PathBuf,
}

impl LocalRepository {
    /// The repository in directory `root`.
    pub fn new(fs: FsRef, root: &Path) -> LocalRepository {
        LocalRepository {
            fs,
            root: root.to_path_buf(),
        }
    }

    /// The path of blob `key`, refusing keys that would leave the root.
    fn path(&self, key: &str) -> Result<PathBuf> {
        let bad = key.is_empty()
            || key
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..");
        if bad {
            return Err(Error::new(
                "name",
                &self.root.join(key),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not a key of a repository",
                ),
            ));
        }
        Ok(self.root.join(key))
    }

    /// Creates the missing directories down to `dir`, each made durable
    /// in its parent.
    fn make_dirs(&self, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.make_dirs(parent)?;
        }
        match self.fs.create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(Error::new("create directory", dir, e)),
        }
        sync_dir(self.fs.as_ref(), dir.parent().unwrap_or(Path::new(".")))
    }

    /// The directory blob `path` goes in, made.
    fn parent_made(&self, path: &Path) -> Result<PathBuf> {
        let parent = path.parent().unwrap_or(&self.root).to_path_buf();
        self.make_dirs(&parent)?;
        Ok(parent)
    }

    fn refuse_existing(&self, path: &Path) -> Result<()> {
        if path.exists() {
            return Err(Error::new(
                "create",
                path,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "it exists"),
            ));
        }
        Ok(())
    }
}

impl Repository for LocalRepository {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn size(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path(key)?;
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::new("stat", &path, e)),
        }
    }

    fn put_file(&self, key: &str, from: &dyn Directory, name: &str) -> Result<()> {
        let to = self.path(key)?;
        self.refuse_existing(&to)?;
        let source = from.fetch(name)?;
        let parent = self.parent_made(&to)?;
        if self.fs.hard_link(&source, &to).is_ok() {
            // The file's bytes are durable already; its new name is not.
            return sync_dir(self.fs.as_ref(), &parent);
        }
        let mut file = Box::new(AtomicFile::create(&self.fs, &to)?);
        copy_file(file.as_mut(), &source)?;
        file.commit()
    }

    fn get_file(&self, key: &str, into: &dyn Directory, name: &str) -> Result<()> {
        let from = self.path(key)?;
        into.adopt(name, &from)
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let to = self.path(key)?;
        self.refuse_existing(&to)?;
        self.parent_made(&to)?;
        let mut file = Box::new(AtomicFile::create(&self.fs, &to)?);
        file.write_all(bytes)?;
        file.commit()
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        std::fs::read(&path).map_err(|e| Error::new("read", &path, e))
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let path = if dir.is_empty() {
            self.root.clone()
        } else {
            self.path(dir)?
        };
        let list = |e| Error::new("list", &path, e);
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(list(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(list)?;
            let is_file = entry.file_type().map_err(list)?.is_file();
            match entry.file_name().to_str() {
                // Half-written blobs are not blobs.
                Some(name) if is_file && !name.ends_with(".tmp") => names.push(name.to_string()),
                _ => {}
            }
        }
        names.sort_unstable();
        Ok(names)
    }

    fn remove(&self, keys: &[&str]) -> Result<()> {
        let mut dirs = Vec::new();
        for key in keys {
            let path = self.path(key)?;
            match self.fs.remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::new("remove", &path, e)),
            }
            if let Some(parent) = path.parent()
                && !dirs.iter().any(|d: &PathBuf| d == parent)
            {
                dirs.push(parent.to_path_buf());
            }
        }
        for dir in dirs {
            sync_dir(self.fs.as_ref(), &dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

    use super::*;
    use crate::LocalDirectory;

    fn committed(d: &LocalDirectory, name: &str, bytes: &[u8]) {
        let mut f = d.create(name).unwrap();
        f.write_all(bytes).unwrap();
        f.commit().unwrap();
    }

    #[test]
    fn files_go_in_and_out_and_blobs_are_created_once() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("c")).unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        let c = LocalDirectory::new(crate::os(), &tmp.path().join("c"));
        let d = LocalDirectory::new(crate::os(), &tmp.path().join("d"));
        let repo = LocalRepository::new(crate::os(), &tmp.path().join("repo"));
        assert!(repo.list("").unwrap().is_empty());
        committed(&c, "seg-1.seg", b"rows");
        repo.put_file("files/1/seg-1.seg", &c, "seg-1.seg").unwrap();
        assert_eq!(repo.size("files/1/seg-1.seg").unwrap(), Some(4));
        assert_eq!(repo.size("files/1/seg-2.seg").unwrap(), None);
        let again = repo.put_file("files/1/seg-1.seg", &c, "seg-1.seg");
        assert!(again.unwrap_err().to_string().contains("exists"));
        repo.put("one", b"descriptor").unwrap();
        assert!(repo.put("one", b"other").is_err());
        assert_eq!(repo.get("one").unwrap(), b"descriptor");
        assert_eq!(repo.list("").unwrap(), vec!["one".to_string()]);
        assert_eq!(repo.list("files/1").unwrap(), vec!["seg-1.seg".to_string()]);
        // The collection's file goes; the repository's copy stays.
        c.remove(&["seg-1.seg"]).unwrap();
        repo.get_file("files/1/seg-1.seg", &d, "seg-1.seg").unwrap();
        assert_eq!(std::fs::read(d.path("seg-1.seg")).unwrap(), b"rows");
        repo.remove(&["files/1/seg-1.seg", "missing"]).unwrap();
        assert!(repo.list("files/1").unwrap().is_empty());
        for bad in ["", "../x", "a//b", "a/./b"] {
            assert!(repo.get(bad).is_err(), "{bad:?}");
        }
    }
}
