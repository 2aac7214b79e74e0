//! The file operations that change what is on disk, behind one trait.
//!
//! vdb's durable crates (`vdb-format`, `vdb-wal`, `vdb-engine`) create,
//! write, fsync, rename and remove files only through [`Fs`], so that tests
//! can swap the operating system for [`SimFs`]: a disk that writes through to
//! real files but remembers what has been made durable, drops everything
//! else at a simulated power loss, and fails chosen operations (a crash
//! point, or a full disk). Reads — `mmap`, `std::fs::read` — go to the real
//! files directly: they do not change durability.
//!
//! The durability model `SimFs` enforces is the POSIX one vdb assumes
//! (`docs/durability.md`): bytes written to a file survive a power loss only
//! once that file is fsynced; a created, renamed or removed directory entry
//! survives only once its parent directory is fsynced. `SimFs` is built
//! with the `sim` feature, for tests.
//!
//! Above [`Fs`], the durable-write protocol exists once ([`durable`]: temp
//! file, fsync, rename, fsync the directory), and [`Directory`] is where a
//! collection's immutable files and manifest live.

pub mod directory;
pub mod durable;
pub mod repository;
#[cfg(feature = "sim")]
mod sim;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use directory::{
    CachedFile, Directory, Fenced, LocalDirectory, LogStore, MANIFEST, Pin, Store,
};
pub use durable::{AtomicFile, NewFile, ScratchFile, sync_dir, tmp_path, write_atomic};
pub use repository::{LocalRepository, Repository};
#[cfg(feature = "sim")]
pub use sim::{Fault, SimFs};

/// A failed file operation: what was being done, to which path, and the
/// OS error.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct Error {
    /// What was being done.
    pub op: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl Error {
    /// `op` on `path` failed with `source`.
    pub fn new(op: &'static str, path: &Path, source: io::Error) -> Error {
        Error {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An open file that vdb writes. Methods take `&self` so one handle can be
/// shared by a writer and a background fsync.
pub trait FileHandle: Send + Sync + fmt::Debug {
    /// Writes all of `buf` at the file's current position (the end, for a
    /// file opened with [`Fs::open_append`]).
    fn write_all(&self, buf: &[u8]) -> io::Result<()>;
    /// Writes all of `buf` at `offset` without moving the position.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Reads into `buf` from `offset`; returns the bytes read (0 at the
    /// end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Cuts or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// Gives back the disk space of bytes `offset .. offset + len`,
    /// which then read as zeros; the file keeps its length.
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// The operations that change what is on disk.
pub trait Fs: Send + Sync + fmt::Debug {
    /// Creates `path` for writing, truncating an existing file.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>>;
    /// Creates `path` for appending; fails if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>>;
    /// Opens the existing file `path` for appending.
    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates the directory `path`; fails if it exists.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Creates the directory `path` and its missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Removes the directory `path` and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of directory `path` durable (fsync of the directory).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Bytes this process may still write on the file system holding
    /// `path`, when it can tell.
    fn available_space(&self, path: &Path) -> io::Result<Option<u64>> {
        let _ = path;
        Ok(None)
    }
    /// Makes `to` a second name of the existing file `from` (a hard link);
    /// fails if `to` exists, or where links are not possible (another
    /// file system), and callers then copy.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _ = (from, to);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "hard links are not supported here",
        ))
    }
}

/// A shared file system handle.
pub type FsRef = Arc<dyn Fs>;

/// The operating system's file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsFs;

/// The shared [`OsFs`] handle.
pub fn os() -> FsRef {
    static OS: OnceLock<FsRef> = OnceLock::new();
    Arc::clone(OS.get_or_init(|| Arc::new(OsFs)))
}

#[derive(Debug)]
struct OsFile(File);

impl FileHandle for OsFile {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        (&self.0).write_all(buf)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        punch_hole(&self.0, offset, len)
    }
}

/// `fallocate(PUNCH_HOLE | KEEP_SIZE)` on `file`.
pub(crate) fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use rustix::fs::{FallocateFlags, fallocate};
    fallocate(
        file,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        offset,
        len,
    )
    .map_err(io::Error::from)
}

impl Fs for OsFs {
    fn available_space(&self, path: &Path) -> io::Result<Option<u64>> {
        let st = rustix::fs::statvfs(path).map_err(io::Error::from)?;
        Ok(Some(st.f_bavail.saturating_mul(st.f_frsize)))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Arc::new(OsFile(f)))
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let f = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(path)?;
        Ok(Arc::new(OsFile(f)))
    }

    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let f = OpenOptions::new().read(true).append(true).open(path)?;
        Ok(Arc::new(OsFile(f)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }
}
