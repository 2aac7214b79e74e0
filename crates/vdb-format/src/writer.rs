//! Writing a file the write-once way: stream it as a new file of a
//! [`Directory`] (under a temporary name, see `vdb_fs::durable`), put the
//! header in place last, then commit it. A crash at any point leaves either
//! no file of that name or the complete one.

use std::path::{Path, PathBuf};

use vdb_fs::{Directory, LocalDirectory, NewFile};

use crate::error::Result;
use crate::header::{ALIGN, FOOTER_LEN};

const ZEROS: [u8; ALIGN as usize] = [0; ALIGN as usize];

/// Bytes buffered before a write to the file.
const BUFFER: usize = 1 << 20;

/// A file being written: a [`NewFile`] of a [`Directory`], buffered, with
/// the CRC of the current region computed as it is written.
#[derive(Debug)]
pub(crate) struct FileWriter {
    path: PathBuf,
    out: Box<dyn NewFile>,
    buf: Vec<u8>,
    pos: u64,
    region: Option<(u64, crc32fast::Hasher)>,
}

/// The local directory holding `path` (through the operating system's
/// file system) and the file's name in it: for the path-taking writers.
pub(crate) fn local(path: &Path) -> Result<(LocalDirectory, String)> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        crate::Error::io(
            path,
            "create",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name in UTF-8"),
        )
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((LocalDirectory::new(vdb_fs::os(), parent), name.to_string()))
}

impl FileWriter {
    /// Starts file `name` of `dir`, leaving `reserve` zero bytes for the
    /// header and table.
    pub(crate) fn create(dir: &dyn Directory, name: &str, reserve: u64) -> Result<FileWriter> {
        let out = dir.create(name)?;
        let mut w = FileWriter {
            path: dir.path(name),
            out,
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
            self.out.write_all(bytes)?;
        } else {
            self.buf.extend_from_slice(bytes);
        }
        if let Some((_, h)) = &mut self.region {
            h.update(bytes);
        }
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Writes the buffered bytes to the file.
    fn drain(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf)?;
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

    /// Appends the footer, writes `head` at offset 0 and commits the file
    /// (fsync, rename into place, fsync the directory). Returns the file
    /// length.
    pub(crate) fn finish(
        mut self,
        head: impl FnOnce(u64) -> (Vec<u8>, [u8; FOOTER_LEN]),
    ) -> Result<u64> {
        self.align()?;
        let file_len = self.pos + FOOTER_LEN as u64;
        let (head, footer) = head(file_len);
        self.write(&footer)?;
        self.drain()?;
        self.out.write_all_at(&head, 0)?;
        self.out.commit()?;
        Ok(file_len)
    }
}
