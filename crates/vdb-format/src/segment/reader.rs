//! A mapped segment: validated at open in `O(nlist)`, searched in place.

use std::path::Path;
use std::sync::Arc;

use vdb_core::distance::fastscan;
use vdb_core::fields::{Columns, ListIndex};
use vdb_core::{
    CODE_FACTORS, EXTENDED_FACTORS, ExtendedCodes, Generation, Hold, HoldError, InvertedLists,
    ListCodes, ListId, SegmentId,
};
use vdb_fs::{CachedFile, Pin};
use zerocopy::FromBytes;

use super::{LIST_ENTRY_LEN, ListEntry, SegmentMeta, codes, expected_regions};
use crate::error::{Error, Result};
use crate::header::{self, FLAG_PAYLOAD_PRESENCE, FLAG_PAYLOADS, FileKind, Parsed, Region, region};
use crate::mmap::MappedFile;

/// The most regions a segment has (with payloads, their presence, field
/// columns and codes).
const MAX_REGIONS: usize = 8;

/// Where the codes region's arrays are (absolute offsets), validated at
/// open.
#[derive(Debug, Clone, Copy)]
struct CodesSpan {
    seed: u64,
    words: usize,
    /// The 1-bit codes: blocks (format 1.5) or, before, rows.
    codes: usize,
    /// Whether they are in blocks: the codes of formats 1.3 and 1.4 (row
    /// after row) are validated but not searched.
    blocked: bool,
    factors: usize,
    /// The extended codes and their factors (format 1.4), if kept.
    extended: Option<(usize, usize)>,
}

/// The parts of a codes region a reader of a cached file keeps: all of
/// it, but for the extended codes' bytes (as large as a quarter of the
/// vectors), which only the lists a search holds need. A region shorter
/// than its layout (or, before format 1.5, of another length) is kept
/// whole (validation refuses it).
fn resident_codes(parsed: &Parsed, r: &Region) -> Vec<std::ops::Range<u64>> {
    let whole = std::iter::once(r.offset..r.offset + r.len).collect();
    let (Ok(rows), dim) = (usize::try_from(parsed.rows), parsed.dim) else {
        return whole;
    };
    let extended = parsed.flags & header::FLAG_EXTENDED_CODES != 0;
    // The blocks come last: their count (in the region's own header)
    // moves nothing before them, so the region is at least the rest.
    let blocked = parsed.flags & header::FLAG_BLOCKED_CODES != 0;
    let codes = if blocked {
        codes::Codes::Blocks(0)
    } else {
        codes::Codes::Rows
    };
    let fits = |len: u64| if blocked { len <= r.len } else { len == r.len };
    match codes::layout(rows, vdb_core::code_words(dim), dim, extended, codes) {
        Some(l) if fits(l.len as u64) => match l.extended {
            Some((bytes, factors)) => vec![
                r.offset..r.offset + bytes as u64,
                r.offset + factors as u64..r.offset + r.len,
            ],
            None => whole,
        },
        _ => whole,
    }
}

/// A list's place in the file, validated at open.
#[derive(Debug, Clone, Copy)]
struct ListSpan {
    row_start: usize,
    row_count: usize,
    /// The list's first fast-scan block of codes (`Σ ceil(rows / 32)`
    /// over the lists before it).
    block_start: usize,
    /// Absolute byte range of the list's vectors.
    vec_start: usize,
    vec_end: usize,
}

/// A segment file mapped read-only. Cheap to clone (the map is shared).
///
/// A segment opened from a [`CachedFile`] (cached in part from an object
/// store) keeps its header, tables and ids in the cache while it is open;
/// its vectors and payloads are read only after holding them: the lists
/// a search scans ([`InvertedLists::hold`]), the rows it returns
/// ([`SegmentReader::hold_rows`]), or everything
/// ([`SegmentReader::hold_all`]).
#[derive(Debug, Clone)]
pub struct SegmentReader {
    file: MappedFile,
    /// Where missing bytes come from, and the pin of the bytes kept while
    /// it is open; `None` when the whole file is local.
    cached: Option<(Arc<dyn CachedFile>, Arc<Pin>)>,
    meta: SegmentMeta,
    parsed: Parsed,
    rows: usize,
    lists: Vec<ListSpan>,
    ids: Region,
    payload_offsets: Option<Region>,
    payload_data: Option<Region>,
    /// One bit per row (format 1.1); without it an empty payload means
    /// no payload (format 1.0).
    payload_presence: Option<Region>,
    /// The rows' typed field values (format 1.2; none before).
    columns: Arc<Columns>,
    /// Their per-list summaries.
    list_index: Arc<ListIndex>,
    /// The rows' codes (format 1.3, `IVF_RABITQ`).
    codes: Option<CodesSpan>,
}

impl SegmentReader {
    /// Maps and validates the segment at `path`: header, region table, list
    /// table (with its CRC) and the bounds of every list. Work is
    /// proportional to `nlist`; vector, id and payload bytes are not read
    /// (see [`SegmentReader::verify`]).
    pub fn open(path: &Path) -> Result<SegmentReader> {
        Self::validate(MappedFile::open(path)?, None)
    }

    /// [`SegmentReader::open`] for a file cached in part: fetches (and
    /// keeps while the reader lives) its header, region and list tables,
    /// ids, payload presence, field columns, codes (but for the extended
    /// codes' bytes, fetched with the vectors of the lists a search
    /// holds) and footer, then validates like `open`.
    pub fn open_cached(cached: Arc<dyn CachedFile>) -> Result<SegmentReader> {
        let path = cached.path().to_path_buf();
        let fetch = |e: vdb_fs::Error| Error::io(&e.path, e.op, e.source);
        let len = cached.len();
        let head = (header::HEADER_LEN + header::REGION_ENTRY_LEN * MAX_REGIONS) as u64;
        let mut kept = cached
            .pin(&[0..head.min(len), len.saturating_sub(16)..len])
            .map_err(fetch)?;
        let file = MappedFile::open(&path)?;
        let parsed = header::parse(&path, file.bytes(), FileKind::Segment, expected_regions)?;
        let mut tables: Vec<_> = parsed
            .regions
            .iter()
            .filter(|r| {
                matches!(
                    r.kind,
                    region::LIST_TABLE | region::IDS | region::PAYLOAD_PRESENCE | region::FIELDS
                )
            })
            .map(|r| r.offset..r.offset + r.len)
            .collect();
        if let Some(r) = parsed.regions.iter().find(|r| r.kind == region::CODES) {
            tables.extend(resident_codes(&parsed, r));
        }
        kept.join(cached.pin(&tables).map_err(fetch)?);
        Self::validate(file, Some((cached, Arc::new(kept))))
    }

    fn validate(
        file: MappedFile,
        cached: Option<(Arc<dyn CachedFile>, Arc<Pin>)>,
    ) -> Result<SegmentReader> {
        let path = file.path().to_path_buf();
        let path = path.as_path();
        let bytes = file.bytes();
        let parsed = header::parse(path, bytes, FileKind::Segment, expected_regions)?;
        let region_of = |i: usize| -> Result<Region> {
            parsed.regions.get(i).copied().ok_or_else(|| {
                Error::corrupt(path, "region table", 0, format!("missing region {i}"))
            })
        };
        let (vectors, table, ids) = (region_of(0)?, region_of(1)?, region_of(2)?);
        let has_payloads = parsed.flags & FLAG_PAYLOADS != 0;
        let (payload_offsets, payload_data) = if has_payloads {
            (Some(region_of(3)?), Some(region_of(4)?))
        } else {
            (None, None)
        };
        let payload_presence = if parsed.flags & FLAG_PAYLOAD_PRESENCE != 0 {
            Some(region_of(5)?)
        } else {
            None
        };
        let dim = parsed.dim;
        let nlist = parsed.nlist;
        let rows = usize::try_from(parsed.rows)
            .ok()
            .filter(|r| r.checked_mul(8).is_some())
            .ok_or_else(|| {
                Error::corrupt(path, "header", 32, "row count does not fit in memory")
            })?;
        let expect_len = |r: &Region, want: Option<u64>| -> Result<()> {
            if want != Some(r.len) {
                return Err(Error::corrupt(
                    path,
                    r.name(),
                    r.offset,
                    format!(
                        "length {} does not match the header (dim {dim}, nlist {nlist}, rows {rows})",
                        r.len
                    ),
                ));
            }
            Ok(())
        };
        if nlist == 0 {
            return Err(Error::corrupt(path, "header", 20, "nlist is 0"));
        }
        expect_len(&table, (nlist as u64).checked_mul(LIST_ENTRY_LEN as u64))?;
        expect_len(&ids, (rows as u64).checked_mul(8))?;
        if let Some(po) = &payload_offsets {
            expect_len(
                po,
                (rows as u64).checked_add(1).and_then(|n| n.checked_mul(8)),
            )?;
        }
        if let Some(pp) = &payload_presence {
            expect_len(pp, Some((rows as u64).div_ceil(8)))?;
        }
        header::verify_region(path, bytes, &table)?;
        let entries = bytes
            .get(table.range())
            .and_then(|b| <[ListEntry]>::ref_from_bytes(b).ok())
            .ok_or_else(|| Error::corrupt(path, "list table", table.offset, "unreadable"))?;

        let row_bytes = (dim as u64)
            .checked_mul(4)
            .ok_or_else(|| Error::corrupt(path, "header", 16, "dim too large"))?;
        let mut lists = Vec::with_capacity(nlist);
        let mut next_row = 0u64;
        let mut prev_end = 0u64;
        // Counted in rows of the segment (each list's at most its rows):
        // no overflow.
        let mut blocks = 0usize;
        for (i, e) in entries.iter().enumerate() {
            let at = table.offset + (i * LIST_ENTRY_LEN) as u64;
            let bad = |reason: String| {
                Error::corrupt(path, "list table", at, format!("list {i}: {reason}"))
            };
            let (start, count, off) = (e.row_start.get(), e.row_count.get(), e.vec_offset.get());
            if e.reserved.get() != 0 {
                return Err(bad("reserved field is not zero".into()));
            }
            if start != next_row {
                return Err(bad(format!("starts at row {start}, expected {next_row}")));
            }
            next_row = start
                .checked_add(count)
                .filter(|&n| n <= rows as u64)
                .ok_or_else(|| {
                    bad(format!(
                        "{count} rows from {start} exceed the segment's {rows}"
                    ))
                })?;
            if off % header::ALIGN != 0 || off < prev_end {
                return Err(bad(format!(
                    "vector offset {off} is unaligned or overlaps the previous list"
                )));
            }
            let end = count
                .checked_mul(row_bytes)
                .and_then(|n| n.checked_add(off))
                .filter(|&end| end <= vectors.len)
                .ok_or_else(|| {
                    bad(format!(
                        "{count} vectors at offset {off} overrun the vectors region of {} bytes",
                        vectors.len
                    ))
                })?;
            prev_end = end;
            lists.push(ListSpan {
                row_start: start as usize,
                block_start: blocks,
                row_count: count as usize,
                vec_start: (vectors.offset + off) as usize,
                vec_end: (vectors.offset + end) as usize,
            });
            blocks += fastscan::blocks_for(count as usize);
        }
        if next_row != rows as u64 {
            return Err(Error::corrupt(
                path,
                "list table",
                table.offset,
                format!("lists hold {next_row} rows, the header says {rows}"),
            ));
        }
        let columns = match parsed.regions.iter().find(|r| r.kind == region::FIELDS) {
            None => Columns::empty(rows),
            Some(r) => {
                header::verify_region(path, bytes, r)?;
                let data = bytes.get(r.range()).unwrap_or_default();
                super::fields::decode(data, rows).map_err(|(at, reason)| {
                    Error::corrupt(path, r.name(), r.offset + at as u64, reason)
                })?
            }
        };
        let codes = match parsed.regions.iter().find(|r| r.kind == region::CODES) {
            None => None,
            Some(r) => {
                let data = bytes.get(r.range()).unwrap_or_default();
                let corrupt = |at: usize, reason: String| {
                    Error::corrupt(path, r.name(), r.offset + at as u64, reason)
                };
                let h = codes::parse_header(data).map_err(|(at, reason)| corrupt(at, reason))?;
                let words = h.words;
                if words != vdb_core::code_words(dim) {
                    return Err(corrupt(
                        8,
                        format!(
                            "{words} words a code, expected {} for dim {dim}",
                            vdb_core::code_words(dim)
                        ),
                    ));
                }
                let blocked = parsed.flags & header::FLAG_BLOCKED_CODES != 0;
                let layout_codes = if blocked {
                    if h.blocks != blocks as u64 {
                        return Err(corrupt(
                            16,
                            format!("{} blocks of codes, the lists need {blocks}", h.blocks),
                        ));
                    }
                    codes::Codes::Blocks(blocks)
                } else if h.blocks != 0 {
                    return Err(corrupt(16, "reserved bytes are not zero".into()));
                } else {
                    codes::Codes::Rows
                };
                let extended = parsed.flags & header::FLAG_EXTENDED_CODES != 0;
                let layout = codes::layout(rows, words, dim, extended, layout_codes);
                expect_len(r, layout.map(|l| l.len as u64))?;
                let start = r.offset as usize;
                layout.map(|l| CodesSpan {
                    seed: h.seed,
                    words,
                    codes: start + l.codes,
                    blocked,
                    factors: start + l.factors,
                    extended: l.extended.map(|(b, f)| (start + b, start + f)),
                })
            }
        };
        let list_starts: Vec<usize> = lists
            .iter()
            .map(|l| l.row_start)
            .chain(std::iter::once(rows))
            .collect();
        let meta = SegmentMeta {
            id: SegmentId(parsed.segment_id),
            generation: Generation(parsed.generation),
            metric: parsed.metric,
            dim,
            nlist,
            with_payloads: has_payloads,
        };
        let reader = SegmentReader {
            file,
            cached,
            meta,
            parsed,
            rows,
            lists,
            ids,
            payload_offsets,
            payload_data,
            payload_presence,
            list_index: Arc::new(ListIndex::build(&columns, &list_starts)),
            columns: Arc::new(columns),
            codes,
        };
        if reader.codes_seed().is_some() {
            // Searches scan the codes and read only the vectors they
            // rerank, at random: a page fault then reads that page, not
            // the read-around (about 250 KiB a row measured, against
            // 4 KiB; docs/benchmarks.md, "With the vectors out of
            // memory"). Maintenance asks for read-around while it reads
            // segments whole. A hint: failing to give it changes nothing.
            let _ = reader.advise_random_vectors(true);
        }
        Ok(reader)
    }

    /// The bytes of the file its vectors take.
    fn vectors_range(&self) -> std::ops::Range<usize> {
        let start = self.lists.iter().map(|s| s.vec_start).min().unwrap_or(0);
        let end = self.lists.iter().map(|s| s.vec_end).max().unwrap_or(0);
        start..end
    }

    /// Takes the segment's vectors out of memory ([`MappedFile::evict`]):
    /// the next reads of them come from the disk, while the ids, codes and
    /// tables stay where they are. For benchmarks of searches whose
    /// vectors do not fit in memory.
    #[cfg(target_os = "linux")]
    pub fn evict_vectors(&self) -> Result<()> {
        self.file.evict(self.vectors_range())
    }

    /// Advises the kernel that the segment's vectors are read at random
    /// (what a coded scan's reranks do; a segment with codes is opened so
    /// advised), or as by default ([`MappedFile::advise_random`]).
    pub fn advise_random_vectors(&self, random: bool) -> Result<()> {
        self.file.advise_random(self.vectors_range(), random)
    }

    /// The seed of the rotation the segment's codes were made with, if it
    /// has codes a search uses: format 1.5's blocks. The row-major codes
    /// of formats 1.3 and 1.4 are validated but not searched (their lists
    /// are scanned exactly), and the segment counts as one without codes
    /// (maintenance rewrites it for an `ivf_rabitq` collection).
    pub fn codes_seed(&self) -> Option<u64> {
        self.codes.filter(|c| c.blocked).map(|c| c.seed)
    }

    /// Per-list summaries of the field columns.
    pub fn list_index(&self) -> &Arc<ListIndex> {
        &self.list_index
    }

    /// The rows' typed field values (empty columns for a segment written
    /// without fields).
    pub fn columns(&self) -> &Arc<Columns> {
        &self.columns
    }

    /// Checks every region's CRC, that padding is zero and that payload
    /// offsets are consistent: everything [`SegmentReader::open`] skips.
    pub fn verify(&self) -> Result<()> {
        let _all = self.hold_all()?;
        let path = self.file.path();
        let bytes = self.file.bytes();
        header::verify_regions(path, bytes, &self.parsed)?;
        if let (Some(po), Some(pd)) = (&self.payload_offsets, &self.payload_data) {
            let offsets = self.u64s(po);
            if offsets.first() != Some(&0) || offsets.last() != Some(&pd.len) {
                return Err(Error::corrupt(
                    path,
                    "payload offsets",
                    po.offset,
                    "do not start at 0 and end at the data length",
                ));
            }
            if let Some(i) = offsets.windows(2).position(|w| w.first() > w.get(1)) {
                return Err(Error::corrupt(
                    path,
                    "payload offsets",
                    po.offset + 8 * i as u64,
                    "offsets decrease",
                ));
            }
            if let Some(pp) = &self.payload_presence {
                let bits = bytes.get(pp.range()).unwrap_or_default();
                // Bits past the last row are zero.
                let tail = self.rows % 8;
                if tail != 0 && bits.last().is_some_and(|b| b >> tail != 0) {
                    return Err(Error::corrupt(
                        path,
                        "payload presence",
                        pp.offset + pp.len - 1,
                        "bits past the last row are set",
                    ));
                }
                for r in 0..self.rows {
                    let present = bits.get(r / 8).is_some_and(|b| b & (1 << (r % 8)) != 0);
                    let (a, b) = (offsets.get(r), offsets.get(r + 1));
                    if !present && a != b {
                        return Err(Error::corrupt(
                            path,
                            "payload presence",
                            pp.offset + (r / 8) as u64,
                            format!("row {r} has no payload but payload bytes"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Identity and shape.
    pub fn meta(&self) -> SegmentMeta {
        self.meta
    }

    /// Rows in the segment.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Length of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.parsed.file_len
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Format minor version of the file.
    pub fn minor_version(&self) -> u16 {
        self.parsed.minor
    }

    /// All ids, in list order (row `r`'s id is `ids()[r]`).
    pub fn ids(&self) -> &[u64] {
        self.u64s(&self.ids)
    }

    /// The list holding row `row` and the row's vector.
    pub fn row(&self, row: usize) -> Option<(ListId, &[f32])> {
        let l = self
            .lists
            .partition_point(|s| s.row_start + s.row_count <= row);
        let span = self.lists.get(l)?;
        let i = row.checked_sub(span.row_start)?;
        let v = self.list_vectors(ListId(l as u32));
        Some((
            ListId(l as u32),
            v.get(i * self.meta.dim..(i + 1) * self.meta.dim)?,
        ))
    }

    /// Row `row`'s payload: `Ok(None)` when the row has none (the segment
    /// has no payloads, its presence bit is clear, or — in a format 1.0
    /// file, which stored absent payloads as empty ones — it is empty) or
    /// does not exist; an error naming the offset when the payload offsets
    /// are corrupt.
    pub fn payload(&self, row: usize) -> Result<Option<&[u8]>> {
        let (Some(po), Some(pd)) = (&self.payload_offsets, &self.payload_data) else {
            return Ok(None);
        };
        if let Some(pp) = &self.payload_presence {
            let byte = self
                .file
                .bytes()
                .get(pp.offset as usize + row / 8)
                .copied()
                .unwrap_or(0);
            if byte & (1 << (row % 8)) == 0 {
                return Ok(None);
            }
        }
        let offsets = self.u64s(po);
        let (Some(&a), Some(&b)) = (offsets.get(row), offsets.get(row + 1)) else {
            return Ok(None);
        };
        if a > b || b > pd.len {
            return Err(Error::corrupt(
                self.file.path(),
                "payload offsets",
                po.offset + 8 * row as u64,
                format!("payload {a}..{b} is outside 0..{}", pd.len),
            ));
        }
        if a == b && self.payload_presence.is_none() {
            return Ok(None);
        }
        let start = pd.offset + a;
        Ok(self
            .file
            .bytes()
            .get(start as usize..(pd.offset + b) as usize))
    }

    /// Keeps the whole file readable while the hold lives (fetching what
    /// a cached file lacks): for readers of every row (compaction,
    /// training, export, verify).
    pub fn hold_all(&self) -> Result<Hold> {
        self.hold_ranges(std::slice::from_ref(&(0..self.parsed.file_len)))
    }

    /// Keeps rows `rows` readable while the hold lives: their vectors and
    /// payloads (fetching what a cached file lacks).
    pub fn hold_rows(&self, rows: &[usize]) -> Result<Hold> {
        if self.cached.is_none() {
            return Ok(Hold::default());
        }
        let dim_bytes = 4 * self.meta.dim;
        let mut ranges = Vec::with_capacity(2 * rows.len());
        for &row in rows {
            let l = self
                .lists
                .partition_point(|s| s.row_start + s.row_count <= row);
            if let Some(span) = self.lists.get(l).filter(|s| row >= s.row_start) {
                let at = span.vec_start + (row - span.row_start) * dim_bytes;
                ranges.push(at as u64..(at + dim_bytes) as u64);
            }
            if let Some(po) = &self.payload_offsets {
                let at = po.offset + 8 * row as u64;
                ranges.push(at..at + 16);
            }
        }
        let mut hold = self.hold_ranges(&ranges)?;
        // The payload bytes, now that their offsets can be read.
        if let (Some(po), Some(pd)) = (&self.payload_offsets, &self.payload_data) {
            let offsets = self.u64s(po);
            let data: Vec<_> = rows
                .iter()
                .filter_map(|&r| Some((*offsets.get(r)?, *offsets.get(r + 1)?)))
                .filter(|&(a, b)| a < b && b <= pd.len)
                .map(|(a, b)| pd.offset + a..pd.offset + b)
                .collect();
            hold.join(self.hold_ranges(&data)?);
        }
        Ok(hold)
    }

    fn hold_ranges(&self, ranges: &[std::ops::Range<u64>]) -> Result<Hold> {
        match &self.cached {
            None => Ok(Hold::default()),
            Some((file, _)) => {
                let pin = file
                    .pin(ranges)
                    .map_err(|e| Error::io(&e.path, e.op, e.source))?;
                Ok(Hold::new(pin))
            }
        }
    }

    /// Hints the kernel to read the whole file ahead.
    pub fn prefetch(&self) {
        self.file.advise_willneed();
    }

    fn u64s(&self, r: &Region) -> &[u64] {
        self.file
            .bytes()
            .get(r.range())
            .and_then(|b| <[u64]>::ref_from_bytes(b).ok())
            .unwrap_or_default()
    }
}

impl InvertedLists for SegmentReader {
    fn dim(&self) -> usize {
        self.meta.dim
    }

    fn nlist(&self) -> usize {
        self.meta.nlist
    }

    fn list_len(&self, list: ListId) -> usize {
        self.lists.get(list.index()).map_or(0, |s| s.row_count)
    }

    fn list_vectors(&self, list: ListId) -> &[f32] {
        self.lists
            .get(list.index())
            .and_then(|s| self.file.bytes().get(s.vec_start..s.vec_end))
            .and_then(|b| <[f32]>::ref_from_bytes(b).ok())
            .unwrap_or_default()
    }

    fn hold(&self, lists: &[ListId]) -> std::result::Result<Hold, HoldError> {
        if self.cached.is_none() {
            return Ok(Hold::default());
        }
        let mut ranges = Vec::with_capacity(lists.len() * 2);
        for s in lists
            .iter()
            .filter_map(|l| self.lists.get(l.index()))
            .filter(|s| s.row_count > 0)
        {
            ranges.push(s.vec_start as u64..s.vec_end as u64);
            if let Some((bytes, _)) = self.codes.and_then(|c| c.extended) {
                let at = bytes + s.row_start * self.meta.dim;
                ranges.push(at as u64..(at + s.row_count * self.meta.dim) as u64);
            }
        }
        Ok(self.hold_ranges(&ranges)?)
    }

    fn list_ids(&self, list: ListId) -> &[u64] {
        self.lists
            .get(list.index())
            .and_then(|s| self.ids().get(s.row_start..s.row_start + s.row_count))
            .unwrap_or_default()
    }

    fn list_row_start(&self, list: ListId) -> usize {
        self.lists.get(list.index()).map_or(0, |s| s.row_start)
    }

    fn list_codes(&self, list: ListId) -> Option<ListCodes<'_>> {
        let c = self.codes.filter(|c| c.blocked)?;
        let span = self.lists.get(list.index())?;
        let bytes = self.file.bytes();
        let block = fastscan::block_bytes(c.words);
        let at = c.codes + span.block_start * block;
        let blocks = bytes.get(at..at + fastscan::blocks_for(span.row_count) * block)?;
        let at = c.factors + span.row_start * codes::FACTOR_BYTES;
        let factors = bytes.get(at..at + span.row_count * codes::FACTOR_BYTES)?;
        Some(ListCodes {
            seed: c.seed,
            words: c.words,
            blocks,
            factors: <[[f32; CODE_FACTORS]]>::ref_from_bytes(factors).ok()?,
            extended: match c.extended {
                None => None,
                Some((codes_at, factors_at)) => {
                    let dim = self.meta.dim;
                    let at = codes_at + span.row_start * dim;
                    let codes = bytes.get(at..at + span.row_count * dim)?;
                    let at = factors_at + span.row_start * codes::EXTENDED_FACTOR_BYTES;
                    let factors =
                        bytes.get(at..at + span.row_count * codes::EXTENDED_FACTOR_BYTES)?;
                    Some(ExtendedCodes {
                        codes,
                        factors: <[[f32; EXTENDED_FACTORS]]>::ref_from_bytes(factors).ok()?,
                    })
                }
            },
        })
    }

    fn total_len(&self) -> usize {
        self.rows
    }
}
