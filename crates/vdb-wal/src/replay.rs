//! Reading the log back at open: every complete record, in order, and a
//! decision about a damaged tail.
//!
//! Damage in a file that is not the last one, a gap in the sequence numbers,
//! or damage followed by an intact later record is an error naming the file
//! and offset: such a log was not torn by a crash. A damaged tail of the last
//! file with nothing intact after it is what a crash during an append leaves;
//! it is cut off and reported. [`Recovery::DropCorruptTail`] also cuts off a
//! damaged region followed by intact records (an operator's choice after an
//! error).

use std::path::{Path, PathBuf};

use vdb_core::Lsn;

use crate::error::{Error, Result};
use crate::frame::{self, FILE_HEADER_LEN, RecordKind};

/// What replay does with a damaged region that intact records follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Refuse to open (the default): the damage is not a torn tail.
    Strict,
    /// Cut the last file at the first damaged record, dropping what follows.
    DropCorruptTail,
}

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number.
    pub lsn: Lsn,
    /// Its kind.
    pub kind: RecordKind,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// What replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Log files read.
    pub files: usize,
    /// Complete records returned.
    pub records: u64,
    /// Bytes cut off the end of the last file (a torn or damaged tail).
    pub truncated_bytes: u64,
    /// Why they were cut, with the file and offset.
    pub truncated: Option<String>,
    /// Files removed because their header never made it to disk.
    pub removed_files: Vec<PathBuf>,
}

/// The state replay leaves for the writer.
#[derive(Debug)]
pub(crate) struct Scan {
    pub records: Vec<Record>,
    pub report: ReplayReport,
    /// Live files, ascending by first LSN.
    pub files: Vec<(Lsn, PathBuf)>,
    /// Length of the valid prefix of the last file.
    pub last_valid_len: u64,
    /// The LSN the next record gets.
    pub next_lsn: Lsn,
}

/// Lists `{lsn:020}.log` files in `dir`, ascending.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<(Lsn, PathBuf)>> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "list", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, "list", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        if stem.len() == 20
            && let Ok(n) = stem.parse::<u64>()
        {
            files.push((Lsn(n), entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

pub(crate) fn scan(fs: &dyn vdb_fs::Fs, dir: &Path, recovery: Recovery) -> Result<Scan> {
    let mut files = list_files(dir)?;
    let mut out = Scan {
        records: Vec::new(),
        report: ReplayReport::default(),
        files: Vec::new(),
        last_valid_len: 0,
        next_lsn: Lsn(1),
    };
    let mut expected: Option<Lsn> = None;
    let count = files.len();
    for (i, (named, path)) in files.drain(..).enumerate() {
        let is_last = i + 1 == count;
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, "read", e))?;
        out.report.files += 1;
        let corrupt = |offset: u64, reason: String| Error::Corrupt {
            file: path.clone(),
            offset,
            reason,
        };
        let first = match frame::parse_file_header(&bytes) {
            Ok(first) => first,
            Err(_) if is_last && bytes.len() <= FILE_HEADER_LEN => {
                // A crash while the file was being created: it holds no
                // record, so nothing acknowledged is lost by removing it.
                fs.remove_file(&path)
                    .map_err(|e| Error::io(&path, "remove torn log file", e))?;
                out.report.removed_files.push(path);
                continue;
            }
            Err(reason) => return Err(corrupt(0, format!("file header: {reason}"))),
        };
        if first != named {
            return Err(corrupt(
                0,
                format!(
                    "header says the first record is {}, the name says {}",
                    first.0, named.0
                ),
            ));
        }
        if let Some(want) = expected
            && first != want
        {
            return Err(corrupt(
                0,
                format!(
                    "records jump from {} to {}: a log file is missing",
                    want.0 - 1,
                    first.0
                ),
            ));
        }
        let mut next = first;
        let mut at = FILE_HEADER_LEN;
        while at < bytes.len() {
            let problem = match frame::decode(&bytes[at..]) {
                Ok(d) if d.lsn == next => {
                    out.records.push(Record {
                        lsn: d.lsn,
                        kind: d.kind,
                        payload: d.payload.to_vec(),
                    });
                    next = next.next();
                    at += d.len;
                    continue;
                }
                Ok(d) => format!("record {} where {} belongs", d.lsn.0, next.0),
                Err(reason) => reason,
            };
            if !is_last {
                return Err(corrupt(at as u64, problem));
            }
            if recovery == Recovery::Strict
                && let Some(later) = intact_record_after(&bytes, at + 1, next)
            {
                return Err(corrupt(
                    at as u64,
                    format!(
                        "{problem}; an intact record ({}) follows at offset {later}, so this is not a torn tail",
                        next.0.max(1)
                    ),
                ));
            }
            out.report.truncated_bytes = (bytes.len() - at) as u64;
            out.report.truncated = Some(format!("{} at offset {at}: {problem}", path.display()));
            break;
        }
        expected = Some(next);
        out.next_lsn = next;
        out.last_valid_len = at.min(bytes.len()) as u64;
        out.files.push((first, path));
    }
    out.report.records = out.records.len() as u64;
    Ok(out)
}

/// The offset of an intact record at or after `from` whose LSN is at least
/// `min`, if any. Cheap checks (LSN range, kind byte) run before the CRC.
fn intact_record_after(bytes: &[u8], from: usize, min: Lsn) -> Option<usize> {
    (from..bytes.len()).find(|&o| {
        let Some(head) = bytes.get(o + 8..o + 17) else {
            return false;
        };
        let mut lsn = [0u8; 8];
        lsn.copy_from_slice(&head[..8]);
        let lsn = u64::from_le_bytes(lsn);
        lsn >= min.0
            && lsn < min.0.saturating_add(1 << 32)
            && RecordKind::from_code(head[8]).is_some()
            && frame::decode(&bytes[o..]).is_ok()
    })
}
