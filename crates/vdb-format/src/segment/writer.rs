//! Streams rows, grouped by list, into a new segment file.

use std::path::{Path, PathBuf};

use vdb_core::distance::fastscan;
use vdb_core::fields::{ColumnsBuilder, FieldDef, Value};
use vdb_core::{CODE_FACTORS, EXTENDED_FACTORS, Generation, ListId, Metric, RowCode, SegmentId};
use zerocopy::IntoBytes;

use super::{ListEntry, codes, expected_regions};
use crate::error::{Error, Result};
use crate::header::{
    self, FLAG_BLOCKED_CODES, FLAG_CODES, FLAG_EXTENDED_CODES, FLAG_FIELDS, FLAG_PAYLOAD_PRESENCE,
    FLAG_PAYLOADS, FileKind, FrameBuilder, Region,
};
use crate::writer::FileWriter;

/// Identity and shape of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentMeta {
    /// Segment number.
    pub id: SegmentId,
    /// Centroid generation its rows were clustered with.
    pub generation: Generation,
    /// Metric.
    pub metric: Metric,
    /// Dimension.
    pub dim: usize,
    /// Number of lists.
    pub nlist: usize,
    /// Whether rows carry payloads.
    pub with_payloads: bool,
}

/// How a segment created with codes keeps them (see
/// [`SegmentWriter::create_with_codes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeSpec {
    /// The seed of the rotation the codes are made with.
    pub seed: u64,
    /// Whether every row also has an extended (8-bit) code (format 1.4).
    pub extended: bool,
}

/// What [`SegmentWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The file.
    pub path: PathBuf,
    /// Rows written.
    pub rows: u64,
    /// File length.
    pub bytes: u64,
}

/// Writes a segment: rows must arrive grouped by list, lists in ascending
/// order. Vectors stream to disk; ids and payload offsets (16 bytes a row)
/// stay in memory and payload bytes go to a spill file until
/// [`SegmentWriter::finish`]. Dropping the writer unfinished removes its
/// temporary files.
#[derive(Debug)]
pub struct SegmentWriter {
    w: FileWriter,
    meta: SegmentMeta,
    vectors_offset: u64,
    lists: Vec<ListEntry>,
    ids: Vec<u64>,
    payload_offsets: Vec<u64>,
    /// Bit `r` set: row `r` has a payload (with payloads only).
    presence: Vec<u8>,
    spill: Option<Spill>,
    /// The rows' field values, with fields (see [`SegmentWriter::with_fields`]).
    fields: Option<ColumnsBuilder>,
    /// With codes: every row's code and factors so far (laid into
    /// blocks per list by `finish`).
    codes: Option<CodesBuf>,
}

/// The codes region's contents until [`SegmentWriter::finish`]: 16 bytes
/// of factors and `8 · words` of code a row.
#[derive(Debug)]
struct CodesBuf {
    seed: u64,
    words: usize,
    codes: Vec<u64>,
    factors: Vec<[f32; CODE_FACTORS]>,
    /// With extended codes: `dim` bytes a row, and their factors.
    extended: Option<(Vec<u8>, Vec<[f32; EXTENDED_FACTORS]>)>,
}

/// The header flags of a segment keeping codes as `spec` says.
fn codes_flags(spec: CodeSpec) -> u16 {
    if spec.extended {
        FLAG_CODES | FLAG_BLOCKED_CODES | FLAG_EXTENDED_CODES
    } else {
        FLAG_CODES | FLAG_BLOCKED_CODES
    }
}

/// Payload bytes on their way to the payload region: a scratch file of
/// the directory (removed when dropped), written through a buffer.
#[derive(Debug)]
struct Spill {
    file: vdb_fs::ScratchFile,
    buf: Vec<u8>,
}

/// Bytes a spill buffers before writing them out.
const SPILL_BUFFER: usize = 1 << 20;

impl Spill {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.buf.len() + bytes.len() > SPILL_BUFFER {
            self.flush()?;
        }
        if bytes.len() >= SPILL_BUFFER {
            self.file.write_all(bytes)?;
        } else {
            self.buf.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl SegmentWriter {
    /// Starts writing the segment `path` (under a temporary name).
    pub fn create(path: &Path, meta: SegmentMeta) -> Result<SegmentWriter> {
        let (dir, name) = crate::writer::local(path)?;
        SegmentWriter::create_in(&dir, &name, meta)
    }

    /// [`SegmentWriter::create`] as file `name` of `dir`.
    pub fn create_in(
        dir: &dyn vdb_fs::Directory,
        name: &str,
        meta: SegmentMeta,
    ) -> Result<SegmentWriter> {
        SegmentWriter::create_with_fields(dir, name, meta, None)
    }

    /// [`SegmentWriter::create_in`] for a segment that keeps the typed
    /// fields `fields` (format 1.2), given with each row by
    /// [`SegmentWriter::push_row`].
    pub fn create_with_fields(
        dir: &dyn vdb_fs::Directory,
        name: &str,
        meta: SegmentMeta,
        fields: Option<&[FieldDef]>,
    ) -> Result<SegmentWriter> {
        SegmentWriter::create_with_codes(dir, name, meta, fields, None)
    }

    /// [`SegmentWriter::create_with_fields`] for a segment that also keeps
    /// every row's RaBitQ code (in fast-scan blocks, format 1.5; with
    /// extended codes too),
    /// made with the rotation of `codes`' seed and given with each row by
    /// [`SegmentWriter::push_coded`].
    pub fn create_with_codes(
        dir: &dyn vdb_fs::Directory,
        name: &str,
        meta: SegmentMeta,
        fields: Option<&[FieldDef]>,
        codes: Option<CodeSpec>,
    ) -> Result<SegmentWriter> {
        if meta.dim == 0
            || meta.nlist == 0
            || meta.nlist > u32::MAX as usize
            || meta.dim > u32::MAX as usize
        {
            return Err(Error::InvalidRow {
                file: dir.path(name),
                source: vdb_core::Error::invalid(
                    "segment shape",
                    format!(
                        "dim {} and nlist {} must be in 1..2^32",
                        meta.dim, meta.nlist
                    ),
                ),
            });
        }
        let fields_flag = if fields.is_some() { FLAG_FIELDS } else { 0 };
        let codes_flag = codes.map_or(0, codes_flags);
        let regions = expected_regions(flags_of(&meta) | fields_flag | codes_flag);
        let mut w = FileWriter::create(dir, name, header::first_region_offset(regions.len()))?;
        let spill = if meta.with_payloads {
            Some(Spill {
                file: dir.scratch(&format!("{name}.payloads.tmp"))?,
                buf: Vec::with_capacity(SPILL_BUFFER),
            })
        } else {
            None
        };
        let vectors_offset = w.begin_region()?;
        Ok(SegmentWriter {
            w,
            meta,
            vectors_offset,
            lists: Vec::with_capacity(meta.nlist),
            ids: Vec::new(),
            payload_offsets: if meta.with_payloads {
                vec![0]
            } else {
                Vec::new()
            },
            presence: Vec::new(),
            spill,
            fields: fields.map(ColumnsBuilder::new),
            codes: codes.map(|spec| CodesBuf {
                seed: spec.seed,
                words: vdb_core::code_words(meta.dim),
                codes: Vec::new(),
                factors: Vec::new(),
                extended: spec.extended.then(|| (Vec::new(), Vec::new())),
            }),
        })
    }

    fn invalid(&self, source: vdb_core::Error) -> Error {
        Error::InvalidRow {
            file: self.w.path().into(),
            source,
        }
    }

    /// Opens lists up to and including `list` (empty ones included).
    fn open_lists_through(&mut self, list: usize) -> Result<()> {
        while self.lists.len() <= list {
            self.w.align()?;
            self.lists.push(ListEntry {
                row_start: (self.ids.len() as u64).into(),
                row_count: 0.into(),
                vec_offset: (self.w.pos() - self.vectors_offset).into(),
                reserved: 0.into(),
            });
        }
        Ok(())
    }

    /// Appends a row to list `list`. A payload is refused when the segment
    /// has no payload regions; with them, `None` is a row without a payload
    /// and `Some(b"")` one with an empty payload.
    pub fn push(
        &mut self,
        list: ListId,
        id: u64,
        vector: &[f32],
        payload: Option<&[u8]>,
    ) -> Result<()> {
        self.push_row(list, id, vector, payload, &[])
    }

    /// [`SegmentWriter::push`] with the row's field values (validated by
    /// the caller; values of fields the writer was not given are dropped).
    pub fn push_row(
        &mut self,
        list: ListId,
        id: u64,
        vector: &[f32],
        payload: Option<&[u8]>,
        fields: &[(String, Value)],
    ) -> Result<()> {
        self.push_coded(list, id, vector, payload, fields, None)
    }

    /// [`SegmentWriter::push_row`] with the row's code and factors, which a
    /// segment created with codes needs for every row and one without
    /// refuses.
    pub fn push_coded(
        &mut self,
        list: ListId,
        id: u64,
        vector: &[f32],
        payload: Option<&[u8]>,
        fields: &[(String, Value)],
        code: Option<RowCode<'_>>,
    ) -> Result<()> {
        match (&self.codes, code) {
            (Some(_), None) => {
                return Err(self.invalid(vdb_core::Error::invalid(
                    "code",
                    "this segment keeps codes: every row needs its code",
                )));
            }
            (None, Some(_)) => {
                return Err(self.invalid(vdb_core::Error::invalid(
                    "code",
                    "this segment was created without codes",
                )));
            }
            (Some(buf), Some(c)) if c.code.len() != buf.words => {
                return Err(self.invalid(vdb_core::Error::invalid(
                    "code",
                    format!("{} words, expected {}", c.code.len(), buf.words),
                )));
            }
            (Some(buf), Some(c)) => match (&buf.extended, c.extended) {
                (Some(_), None) => {
                    return Err(self.invalid(vdb_core::Error::invalid(
                        "extended code",
                        "this segment keeps extended codes: every row needs one",
                    )));
                }
                (None, Some(_)) => {
                    return Err(self.invalid(vdb_core::Error::invalid(
                        "extended code",
                        "this segment was created without extended codes",
                    )));
                }
                (Some(_), Some((bytes, _))) if bytes.len() != self.meta.dim => {
                    return Err(self.invalid(vdb_core::Error::invalid(
                        "extended code",
                        format!("{} bytes, expected {}", bytes.len(), self.meta.dim),
                    )));
                }
                _ => {}
            },
            _ => {}
        }
        let l = list.index();
        if l >= self.meta.nlist {
            return Err(self.invalid(vdb_core::Error::invalid(
                "list",
                format!("list {l} is outside 0..{}", self.meta.nlist),
            )));
        }
        if l + 1 < self.lists.len() {
            return Err(self.invalid(vdb_core::Error::invalid(
                "list",
                format!(
                    "rows must arrive grouped by list in ascending order: list {l} after list {}",
                    self.lists.len() - 1
                ),
            )));
        }
        vdb_core::validate_vector(vector, self.meta.dim).map_err(|e| self.invalid(e))?;
        if payload.is_some() && !self.meta.with_payloads {
            return Err(self.invalid(vdb_core::Error::invalid(
                "payload",
                "this segment was created without payloads",
            )));
        }
        self.open_lists_through(l)?;
        self.w.write(vector.as_bytes())?;
        if let Some(spill) = &mut self.spill {
            let row = self.ids.len();
            if row.is_multiple_of(8) {
                self.presence.push(0);
            }
            if payload.is_some()
                && let Some(byte) = self.presence.last_mut()
            {
                *byte |= 1 << (row % 8);
            }
            let bytes = payload.unwrap_or_default();
            spill.write(bytes)?;
            let last = self.payload_offsets.last().copied().unwrap_or(0);
            self.payload_offsets.push(last + bytes.len() as u64);
        }
        self.ids.push(id);
        if let Some(columns) = &mut self.fields {
            columns.push(fields);
        }
        if let (Some(buf), Some(c)) = (&mut self.codes, code) {
            buf.codes.extend_from_slice(c.code);
            buf.factors.push(c.factors);
            if let (Some((bytes, factors)), Some((b, f))) = (&mut buf.extended, c.extended) {
                bytes.extend_from_slice(b);
                factors.push(f);
            }
        }
        if let Some(e) = self.lists.last_mut() {
            e.row_count = (e.row_count.get() + 1).into();
        }
        Ok(())
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.ids.len() as u64
    }

    /// Writes the remaining regions and the header, fsyncs, and renames the
    /// file into place.
    pub fn finish(mut self) -> Result<SegmentInfo> {
        self.open_lists_through(self.meta.nlist - 1)?;
        let fields_flag = if self.fields.is_some() {
            FLAG_FIELDS
        } else {
            0
        };
        let mut regions = Vec::new();
        let (offset, len, crc) = self.w.end_region();
        regions.push(Region {
            kind: header::region::VECTORS,
            offset,
            len,
            crc,
        });

        let table: Vec<u8> = self
            .lists
            .iter()
            .flat_map(|e| e.as_bytes().to_vec())
            .collect();
        regions.push(self.region(header::region::LIST_TABLE, &table)?);
        let ids = std::mem::take(&mut self.ids);
        regions.push(self.region(header::region::IDS, ids.as_bytes())?);
        if let Some(mut spill) = self.spill.take() {
            let offsets = std::mem::take(&mut self.payload_offsets);
            regions.push(self.region(header::region::PAYLOAD_OFFSETS, offsets.as_bytes())?);
            spill.flush()?;
            let offset = self.w.begin_region()?;
            let mut buf = vec![0u8; SPILL_BUFFER];
            let mut at = 0u64;
            while at < spill.file.len() {
                let n = (spill.file.len() - at).min(SPILL_BUFFER as u64) as usize;
                let chunk = buf.get_mut(..n).unwrap_or_default();
                spill.file.read_exact_at(chunk, at)?;
                self.w.write(chunk)?;
                at += n as u64;
            }
            let (_, len, crc) = self.w.end_region();
            regions.push(Region {
                kind: header::region::PAYLOAD_DATA,
                offset,
                len,
                crc,
            });
            let presence = std::mem::take(&mut self.presence);
            regions.push(self.region(header::region::PAYLOAD_PRESENCE, &presence)?);
        }
        if let Some(columns) = self.fields.take() {
            let bytes = super::fields::encode(&columns.finish());
            regions.push(self.region(header::region::FIELDS, &bytes)?);
        }
        let codes_flag = if let Some(buf) = self.codes.take() {
            // Each list's codes in fast-scan blocks, list after list.
            let mut blocks = Vec::new();
            for e in &self.lists {
                let (start, count) = (e.row_start.get() as usize, e.row_count.get() as usize);
                let rows = buf
                    .codes
                    .get(start * buf.words..(start + count) * buf.words)
                    .unwrap_or_default();
                fastscan::interleave(rows, buf.words, &mut blocks);
            }
            let count = blocks.len() / fastscan::block_bytes(buf.words).max(1);
            let offset = self.w.begin_region()?;
            self.w.write(&codes::header(buf.seed, buf.words, count))?;
            self.w.write(buf.factors.as_bytes())?;
            let flags = codes_flags(CodeSpec {
                seed: buf.seed,
                extended: buf.extended.is_some(),
            });
            if let Some((bytes, factors)) = buf.extended {
                self.w.write(&bytes)?;
                let padding = bytes.len().next_multiple_of(8) - bytes.len();
                self.w.write([0u8; 8].get(..padding).unwrap_or_default())?;
                self.w.write(factors.as_bytes())?;
            }
            self.w.write(&blocks)?;
            let (_, len, crc) = self.w.end_region();
            regions.push(Region {
                kind: header::region::CODES,
                offset,
                len,
                crc,
            });
            flags
        } else {
            0
        };

        let mut frame = FrameBuilder::new(
            FileKind::Segment,
            self.meta.metric,
            self.meta.dim,
            self.meta.nlist,
        );
        frame.header.generation = self.meta.generation.0.into();
        frame.header.rows = (ids.len() as u64).into();
        frame.header.segment_id = self.meta.id.0.into();
        frame.header.flags = (flags_of(&self.meta) | fields_flag | codes_flag).into();
        frame.regions = regions;
        let path = self.w.path().to_path_buf();
        let bytes = self.w.finish(|file_len| frame.encode(file_len))?;
        Ok(SegmentInfo {
            path,
            rows: ids.len() as u64,
            bytes,
        })
    }

    fn region(&mut self, kind: u32, bytes: &[u8]) -> Result<Region> {
        let offset = self.w.begin_region()?;
        self.w.write(bytes)?;
        let (_, len, crc) = self.w.end_region();
        Ok(Region {
            kind,
            offset,
            len,
            crc,
        })
    }
}

/// The header flags of a segment written now: with payloads, presence bits
/// too (format 1.1).
fn flags_of(meta: &SegmentMeta) -> u16 {
    if meta.with_payloads {
        FLAG_PAYLOADS | FLAG_PAYLOAD_PRESENCE
    } else {
        0
    }
}
