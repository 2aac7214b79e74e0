//! Writing a file the write-once way: stream to `<name>.tmp`, put the header
//! in place last, fsync, rename to `<name>`, fsync the directory. A crash at
//! any point leaves either no `<name>` or a complete one; a leftover `.tmp`
//! is garbage that the owner of the directory removes.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::header::{ALIGN, FOOTER_LEN};

const ZEROS: [u8; ALIGN as usize] = [0; ALIGN as usize];

/// A file being written under a temporary name.
#[derive(Debug)]
pub(crate) struct FileWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
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
    pub(crate) fn create(path: &Path, reserve: u64) -> Result<FileWriter> {
        let tmp = tmp_path(path);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, "create", e))?;
        let mut w = FileWriter {
            path: path.to_path_buf(),
            tmp,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
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
        let out = self.out.as_mut().ok_or_else(|| {
            Error::io(
                &self.tmp,
                "write",
                std::io::Error::other("writer already finished"),
            )
        })?;
        out.write_all(bytes)
            .map_err(|e| Error::io(&self.tmp, "write", e))?;
        if let Some((_, h)) = &mut self.region {
            h.update(bytes);
        }
        self.pos += bytes.len() as u64;
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
        let out = self.out.take().ok_or_else(|| {
            Error::io(
                &self.tmp,
                "finish",
                std::io::Error::other("writer already finished"),
            )
        })?;
        let mut file = out
            .into_inner()
            .map_err(|e| Error::io(&self.tmp, "write", e.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&head))
            .map_err(|e| Error::io(&self.tmp, "write header", e))?;
        file.sync_all()
            .map_err(|e| Error::io(&self.tmp, "fsync", e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|e| Error::io(&self.path, "rename into place", e))?;
        if let Some(dir) = self.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            crate::fsync_dir(dir)?;
        }
        Ok(file_len)
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if self.out.is_some() {
            // Abandoned before `finish`: the temporary file is garbage.
            self.out = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
