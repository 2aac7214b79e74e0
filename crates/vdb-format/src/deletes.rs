//! Delete files: `del-{seq:016x}.del`, the ids whose latest operation in one
//! flushed memtable was a delete. Small; fully checked at open.

use std::path::Path;

use vdb_core::Metric;
use zerocopy::{FromBytes, IntoBytes};

use crate::error::{Error, Result};
use crate::header::{self, FileKind, FrameBuilder, Region, region};
use crate::mmap::MappedFile;
use crate::writer::FileWriter;

/// File name of the delete file of flush `seq`.
pub fn delete_file_name(seq: u64) -> String {
    format!("del-{seq:016x}.del")
}

/// Writes `ids` (any order) to `path` atomically and durably; `seq` is
/// stored in the header's generation field. Returns the file length.
pub fn write_deletes(path: &Path, seq: u64, ids: &[u64]) -> Result<u64> {
    let (dir, name) = crate::writer::local(path)?;
    write_deletes_in(&dir, &name, seq, ids)
}

/// [`write_deletes`] as file `name` of `dir`.
pub fn write_deletes_in(
    dir: &dyn vdb_fs::Directory,
    name: &str,
    seq: u64,
    ids: &[u64],
) -> Result<u64> {
    let mut w = FileWriter::create(dir, name, header::first_region_offset(1))?;
    let offset = w.begin_region()?;
    w.write(ids.as_bytes())?;
    let (_, len, crc) = w.end_region();
    let mut frame = FrameBuilder::new(FileKind::Deletes, Metric::L2, 1, 0);
    frame.header.generation = seq.into();
    frame.header.rows = (ids.len() as u64).into();
    frame.regions.push(Region {
        kind: region::IDS,
        offset,
        len,
        crc,
    });
    w.finish(|file_len| frame.encode(file_len))
}

/// Reads and fully verifies a delete file: `(seq, ids)`.
pub fn read_deletes(path: &Path) -> Result<(u64, Vec<u64>)> {
    let file = MappedFile::open(path)?;
    let bytes = file.bytes();
    let parsed = header::parse(path, bytes, FileKind::Deletes, |_| vec![region::IDS])?;
    header::verify_regions(path, bytes, &parsed)?;
    let r = parsed
        .regions
        .first()
        .copied()
        .ok_or_else(|| Error::corrupt(path, "region table", 0, "no ids region"))?;
    let ids = bytes
        .get(r.range())
        .and_then(|b| <[u64]>::ref_from_bytes(b).ok())
        .filter(|ids| ids.len() as u64 == parsed.rows)
        .ok_or_else(|| {
            Error::corrupt(
                path,
                "ids",
                r.offset,
                format!("{} bytes do not hold {} ids", r.len, parsed.rows),
            )
        })?;
    Ok((parsed.generation, ids.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(delete_file_name(3));
        write_deletes(&p, 3, &[5, 1, 99]).unwrap();
        assert_eq!(read_deletes(&p).unwrap(), (3, vec![5, 1, 99]));
        let bytes = std::fs::read(&p).unwrap();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            std::fs::write(&p, &b).unwrap();
            let e = read_deletes(&p).unwrap_err();
            assert!(e.region().is_some(), "byte {i}: {e}");
        }
        let empty = dir.path().join(delete_file_name(4));
        write_deletes(&empty, 4, &[]).unwrap();
        assert_eq!(read_deletes(&empty).unwrap(), (4, vec![]));
    }
}
