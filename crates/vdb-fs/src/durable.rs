//! The durable-write protocol, once: a new file is written under
//! `<name>.tmp`, fsynced, renamed to `<name>`, and its directory fsynced
//! (lsm-tree's `rewrite_atomic` + `fsync_directory`). A crash at any point
//! leaves either no `<name>` or the complete one; a leftover `.tmp` is
//! garbage the owner of the directory removes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Error, FileHandle, Fs, FsRef, Result};

/// An immutable file being written: invisible under its final name until
/// [`NewFile::commit`] returns, gone without a trace if dropped before.
pub trait NewFile: Send + std::fmt::Debug {
    /// Appends `buf`.
    fn write_all(&mut self, buf: &[u8]) -> Result<()>;
    /// Writes `buf` at `offset` (within what was appended) without moving
    /// the end.
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> Result<()>;
    /// Makes the file durable under its final name.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// The temporary name `path` is written under.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// fsyncs directory `dir`, making the entries created, renamed or removed
/// in it durable.
pub fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    fs.sync_dir(dir)
        .map_err(|e| Error::new("fsync directory", dir, e))
}

/// A local file written by the durable-write protocol.
#[derive(Debug)]
pub struct AtomicFile {
    fs: FsRef,
    path: PathBuf,
    tmp: PathBuf,
    file: Option<Arc<dyn FileHandle>>,
}

impl AtomicFile {
    /// Starts `path` as `<path>.tmp` (replacing a leftover one).
    pub fn create(fs: &FsRef, path: &Path) -> Result<AtomicFile> {
        let tmp = tmp_path(path);
        let file = fs.create(&tmp).map_err(|e| Error::new("create", &tmp, e))?;
        Ok(AtomicFile {
            fs: Arc::clone(fs),
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(&self) -> Result<&Arc<dyn FileHandle>> {
        self.file.as_ref().ok_or_else(|| {
            Error::new(
                "write",
                &self.tmp,
                std::io::Error::other("the file was already committed"),
            )
        })
    }
}

impl NewFile for AtomicFile {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.file()?
            .write_all(buf)
            .map_err(|e| Error::new("write", &self.tmp, e))
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> Result<()> {
        self.file()?
            .write_all_at(buf, offset)
            .map_err(|e| Error::new("write", &self.tmp, e))
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let file = self.file()?;
        file.sync_data()
            .map_err(|e| Error::new("fsync", &self.tmp, e))?;
        self.file = None;
        self.fs
            .rename(&self.tmp, &self.path)
            .map_err(|e| Error::new("rename into place", &self.path, e))?;
        sync_dir(
            self.fs.as_ref(),
            self.path.parent().unwrap_or(Path::new(".")),
        )
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Abandoned before commit: the temporary file is garbage.
            let _ = self.fs.remove_file(&self.tmp);
        }
    }
}

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(fs: &FsRef, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = Box::new(AtomicFile::create(fs, path)?);
    f.write_all(bytes)?;
    f.commit()
}

/// A writer's temporary local file: not durable, removed when dropped.
#[derive(Debug)]
pub struct ScratchFile {
    fs: FsRef,
    path: PathBuf,
    file: Arc<dyn FileHandle>,
    len: u64,
}

impl ScratchFile {
    /// Creates (or truncates) `path`.
    pub fn create(fs: &FsRef, path: &Path) -> Result<ScratchFile> {
        let file = fs.create(path).map_err(|e| Error::new("create", path, e))?;
        Ok(ScratchFile {
            fs: Arc::clone(fs),
            path: path.to_path_buf(),
            file,
            len: 0,
        })
    }

    /// Appends `buf`.
    pub fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.file
            .write_all(buf)
            .map_err(|e| Error::new("write", &self.path, e))?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Bytes written.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `buf` from `offset`; fails if the file ends first.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let rest = buf.get_mut(done..).unwrap_or_default();
            let n = self
                .file
                .read_at(rest, offset + done as u64)
                .map_err(|e| Error::new("read", &self.path, e))?;
            if n == 0 {
                return Err(Error::new(
                    "read",
                    &self.path,
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            done += n;
        }
        Ok(())
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = self.fs.remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

    use super::*;

    #[test]
    fn a_committed_file_appears_whole_and_an_abandoned_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fs = crate::os();
        let path = dir.path().join("a.seg");
        let mut f = Box::new(AtomicFile::create(&fs, &path).unwrap());
        f.write_all(b"0123456789").unwrap();
        f.write_all_at(b"ab", 2).unwrap();
        assert!(!path.exists(), "visible before commit");
        assert!(tmp_path(&path).exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"01ab456789");
        assert!(!tmp_path(&path).exists());

        let other = dir.path().join("b.seg");
        let mut g = AtomicFile::create(&fs, &other).unwrap();
        g.write_all(b"half").unwrap();
        drop(g);
        assert!(!other.exists() && !tmp_path(&other).exists());

        write_atomic(&fs, &path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_scratch_file_reads_back_and_disappears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tmp");
        let mut s = ScratchFile::create(&crate::os(), &path).unwrap();
        s.write_all(b"hello ").unwrap();
        s.write_all(b"world").unwrap();
        assert_eq!(s.len(), 11);
        let mut buf = [0u8; 5];
        s.read_exact_at(&mut buf, 6).unwrap();
        assert_eq!(&buf, b"world");
        assert!(s.read_exact_at(&mut buf, 8).is_err());
        drop(s);
        assert!(!path.exists());
    }
}
