//! Writing a file the write-once way: stream to `<name>.tmp`, put the header
//! in place last, fsync, rename to `<name>`, fsync the directory. A crash at
//! any point leaves either no `<name>` or a complete one; a leftover `.tmp`
//! is garbage that the owner of the directory removes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vdb_fs::{FileHandle, FsRef};

use crate::error::{Error, Result};
use crate::header::{ALIGN, FOOTER_LEN};

const ZEROS: [u8; ALIGN as usize] = [0; ALIGN as usize];

/// Bytes buffered before a write to the file.
const BUFFER: usize = 1 << 20;

/// A file being written under a temporary name.
#[derive(Debug)]
pub(crate) struct FileWriter {
    fs: FsRef,
    path: PathBuf,
    tmp: PathBuf,
    out: Option<Arc<dyn FileHandle>>,
    buf: Vec<u8>,
    pos: u64,
    region: Option<(u64, crc32fast::Hasher)>,
}

/// The temporary name `path` is written under.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

impl FileWriter {
    /// Starts `path`, leaving `reserve` zero bytes for the header and table.
    pub(crate) fn create(fs: &FsRef, path: &Path, reserve: u64) -> Result<FileWriter> {
        let tmp = tmp_path(path);
        let file = fs.create(&tmp).map_err(|e| Error::io(&tmp, "create", e))?;
        let mut w = FileWriter {
            fs: Arc::clone(fs),
            path: path.to_path_buf(),
            tmp,
            out: Some(file),
            buf: Vec::with_capacity(BUFFER),
            pos: 0,
            region: None,
        };
        w.zeros(reserve)?;
        Ok(w)
    }

    /// The final path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.buf.len() + bytes.len() > BUFFER {
            self.drain()?;
        }
        if bytes.len() >= BUFFER {
            self.out()?
                .write_all(bytes)
                .map_err(|e| Error::io(&self.tmp, "write", e))?;
        } else {
            self.buf.extend_from_slice(bytes);
        }
        if let Some((_, h)) = &mut self.region {
            h.update(bytes);
        }
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn out(&self) -> Result<&Arc<dyn FileHandle>> {
        self.out.as_ref().ok_or_else(|| {
            Error::io(
                &self.tmp,
                "write",
                std::io::Error::other("writer already finished"),
            )
        })
    }

    /// Writes the buffered bytes to the file.
    fn drain(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.out()?
                .write_all(&self.buf)
                .map_err(|e| Error::io(&self.tmp, "write", e))?;
            self.buf.clear();
        }
        Ok(())
    }

    pub(crate) fn zeros(&mut self, mut n: u64) -> Result<()> {
        while n > 0 {
            let chunk = n.min(ZEROS.len() as u64);
            self.write(ZEROS.get(..chunk as usize).unwrap_or_default())?;
            n -= chunk;
        }
        Ok(())
    }

    /// Writes zeros up to the next multiple of [`ALIGN`] (checksummed when
    /// inside a region).
    pub(crate) fn align(&mut self) -> Result<()> {
        let pad = self.pos.next_multiple_of(ALIGN) - self.pos;
        self.zeros(pad)
    }

    /// Aligns and starts a checksummed region; returns its offset.
    pub(crate) fn begin_region(&mut self) -> Result<u64> {
        self.align()?;
        self.region = Some((self.pos, crc32fast::Hasher::new()));
        Ok(self.pos)
    }

    /// Ends the current region; returns `(offset, length, crc)`.
    pub(crate) fn end_region(&mut self) -> (u64, u64, u32) {
        match self.region.take() {
            Some((start, h)) => (start, self.pos - start, h.finalize()),
            None => (self.pos, 0, crc32fast::hash(&[])),
        }
    }

    /// Appends the footer, writes `head` at offset 0, fsyncs, renames into
    /// place and fsyncs the directory. Returns the file length.
    pub(crate) fn finish(
        mut self,
        head: impl FnOnce(u64) -> (Vec<u8>, [u8; FOOTER_LEN]),
    ) -> Result<u64> {
        self.align()?;
        let file_len = self.pos + FOOTER_LEN as u64;
        let (head, footer) = head(file_len);
        self.write(&footer)?;
        self.drain()?;
        let file = self.out()?;
        file.write_all_at(&head, 0)
            .map_err(|e| Error::io(&self.tmp, "write header", e))?;
        file.sync_data()
            .map_err(|e| Error::io(&self.tmp, "fsync", e))?;
        self.out = None;
        self.fs
            .rename(&self.tmp, &self.path)
            .map_err(|e| Error::io(&self.path, "rename into place", e))?;
        if let Some(dir) = self.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            self.fs
                .sync_dir(dir)
                .map_err(|e| Error::io(dir, "fsync directory", e))?;
        }
        Ok(file_len)
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if self.out.is_some() {
            // Abandoned before `finish`: the temporary file is garbage.
            self.out = None;
            let _ = self.fs.remove_file(&self.tmp);
        }
    }
}
