//! The frame every vdb file shares: a 128-byte header, a region table, the
//! regions (64-byte aligned), and a 16-byte footer. `docs/format.md` is the
//! normative description; this module is its implementation.
//!
//! Parsing checks, in order: the file is long enough for a header; magic;
//! header CRC; major version; kind; the declared file length against the
//! real one; the region table's bounds and CRC; every region's kind, bounds
//! and alignment; the footer. All of it is `O(region count)`.

use std::ops::Range;
use std::path::Path;

use vdb_core::Metric;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::{Error, Result};

/// Major format version: readers refuse any other.
pub const MAJOR: u16 = 1;
/// Minor format version this build writes. Readers of major 1 read every
/// minor up to theirs; what a later minor adds is announced by a header
/// flag, and a reader refuses flags it does not know (`docs/format.md`).
pub const MINOR: u16 = 5;
/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 128;
/// Bytes of one region table entry.
pub const REGION_ENTRY_LEN: usize = 32;
/// Bytes of the footer.
pub const FOOTER_LEN: usize = 16;
/// Alignment of every region's start.
pub const ALIGN: u64 = 64;

/// Header flag: the segment has payload regions.
pub const FLAG_PAYLOADS: u16 = 1;
/// Header flag (minor 1): the segment has a payload-presence region, so a
/// row without a payload is told apart from one with an empty payload.
pub const FLAG_PAYLOAD_PRESENCE: u16 = 2;
/// Header flag (minor 2): the segment has a field columns region.
pub const FLAG_FIELDS: u16 = 4;
/// Header flag (minor 3): the segment has a codes region (RaBitQ codes of
/// its rows, `IVF_RABITQ` collections).
pub const FLAG_CODES: u16 = 8;
/// Header flag (minor 4): the codes region also holds every row's
/// extended (8-bit) code; only with [`FLAG_CODES`].
pub const FLAG_EXTENDED_CODES: u16 = 16;
/// Header flag (minor 5): the codes region holds the 1-bit codes in
/// fast-scan blocks of 32 rows, list after list
/// ([`vdb_core::distance::fastscan`]), after the factors; only with
/// [`FLAG_CODES`]. Without it (minor 3 and 4) they are row after row,
/// before the factors.
pub const FLAG_BLOCKED_CODES: u16 = 32;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `centroids-*.cen`: the centroids of one generation.
    Centroids,
    /// `seg-*.seg`: rows grouped by inverted list.
    Segment,
    /// `del-*.del`: ids deleted by one flush.
    Deletes,
}

impl FileKind {
    /// The 8 magic bytes that open (and close) a file of this kind.
    pub fn magic(self) -> [u8; 8] {
        match self {
            FileKind::Centroids => *b"VDBCENT\0",
            FileKind::Segment => *b"VDBSEGM\0",
            FileKind::Deletes => *b"VDBDELS\0",
        }
    }

    /// The header flags a file of this kind may carry.
    pub fn flags(self) -> u16 {
        match self {
            FileKind::Segment => {
                FLAG_PAYLOADS
                    | FLAG_PAYLOAD_PRESENCE
                    | FLAG_FIELDS
                    | FLAG_CODES
                    | FLAG_EXTENDED_CODES
                    | FLAG_BLOCKED_CODES
            }
            FileKind::Centroids | FileKind::Deletes => 0,
        }
    }

    /// The kind byte of the header.
    pub fn code(self) -> u8 {
        match self {
            FileKind::Centroids => 1,
            FileKind::Segment => 2,
            FileKind::Deletes => 3,
        }
    }
}

/// Region kinds, as stored in the region table.
pub mod region {
    /// Centroid vectors, `nlist × dim` f32.
    pub const CENTROIDS: u32 = 1;
    /// Per-list table of 32-byte entries.
    pub const LIST_TABLE: u32 = 2;
    /// Vectors grouped by list.
    pub const VECTORS: u32 = 3;
    /// Row ids, u64, parallel to the vectors.
    pub const IDS: u32 = 4;
    /// `rows + 1` u64 offsets into the payload data.
    pub const PAYLOAD_OFFSETS: u32 = 5;
    /// Payload bytes.
    pub const PAYLOAD_DATA: u32 = 6;
    /// One bit per row: whether it has a payload (minor 1).
    pub const PAYLOAD_PRESENCE: u32 = 7;
    /// The typed fields' columns (minor 2).
    pub const FIELDS: u32 = 8;
    /// The rows' RaBitQ codes and factors (minor 3).
    pub const CODES: u32 = 9;

    /// Human name of a region kind, used in errors.
    pub fn name(kind: u32) -> &'static str {
        match kind {
            CENTROIDS => "centroids",
            LIST_TABLE => "list table",
            VECTORS => "vectors",
            IDS => "ids",
            PAYLOAD_OFFSETS => "payload offsets",
            PAYLOAD_DATA => "payload data",
            PAYLOAD_PRESENCE => "payload presence",
            FIELDS => "field columns",
            CODES => "codes",
            _ => "unknown region",
        }
    }
}

/// The fixed header at offset 0 (little-endian, no padding holes).
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct FileHeader {
    /// [`FileKind::magic`].
    pub magic: [u8; 8],
    /// [`MAJOR`].
    pub major: U16,
    /// [`MINOR`].
    pub minor: U16,
    /// [`FileKind::code`].
    pub kind: u8,
    /// [`Metric::code`].
    pub metric: u8,
    /// [`FLAG_PAYLOADS`] and future flags.
    pub flags: U16,
    /// Vector dimension.
    pub dim: U32,
    /// Number of lists.
    pub nlist: U32,
    /// Centroid generation (the one a segment was clustered with).
    pub generation: U64,
    /// Rows (segment) or centroids (centroid file).
    pub rows: U64,
    /// Segment id; 0 in centroid files.
    pub segment_id: U64,
    /// Length of the whole file in bytes.
    pub file_len: U64,
    /// Entries in the region table.
    pub region_count: U32,
    /// CRC32 of the region table.
    pub table_crc: U32,
    /// Zero.
    pub reserved: [u8; 60],
    /// CRC32 of bytes `0..124`.
    pub header_crc: U32,
}

/// One region table entry.
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RegionEntry {
    /// A [`region`] kind.
    pub kind: U32,
    /// Zero.
    pub reserved0: U32,
    /// Absolute offset, a multiple of [`ALIGN`].
    pub offset: U64,
    /// Length in bytes.
    pub length: U64,
    /// CRC32 of the region's bytes.
    pub crc: U32,
    /// Zero.
    pub reserved1: U32,
}

/// The footer: the magic again and the file length.
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Footer {
    /// [`FileKind::magic`].
    pub magic: [u8; 8],
    /// Length of the whole file.
    pub file_len: U64,
}

const _: () = assert!(size_of::<FileHeader>() == HEADER_LEN);
const _: () = assert!(size_of::<RegionEntry>() == REGION_ENTRY_LEN);
const _: () = assert!(size_of::<Footer>() == FOOTER_LEN);

/// A region located and bounds-checked in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Its [`region`] kind.
    pub kind: u32,
    /// Absolute offset.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Stored CRC32.
    pub crc: u32,
}

impl Region {
    /// The region's byte range in the file.
    pub fn range(&self) -> Range<usize> {
        self.offset as usize..(self.offset + self.len) as usize
    }

    /// Its name for errors.
    pub fn name(&self) -> &'static str {
        region::name(self.kind)
    }
}

/// The decoded header fields of a file that passed [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Format minor version.
    pub minor: u16,
    /// Metric.
    pub metric: Metric,
    /// Flags.
    pub flags: u16,
    /// Dimension (≥ 1).
    pub dim: usize,
    /// Lists.
    pub nlist: usize,
    /// Generation.
    pub generation: u64,
    /// Rows.
    pub rows: u64,
    /// Segment id.
    pub segment_id: u64,
    /// File length.
    pub file_len: u64,
    /// Regions, in table order.
    pub regions: Vec<Region>,
}

/// Offset of the first region: the end of the region table, aligned.
pub fn first_region_offset(region_count: usize) -> u64 {
    align_up((HEADER_LEN + region_count * REGION_ENTRY_LEN) as u64)
}

/// `n` rounded up to a multiple of [`ALIGN`].
pub fn align_up(n: u64) -> u64 {
    n.div_ceil(ALIGN) * ALIGN
}

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Parses and validates the frame of a file of `kind`. `expected_regions`
/// gives, from the decoded header, the region kinds the file must have in
/// table order. Region contents are not checksummed here (see
/// [`verify_regions`]).
pub fn parse(
    path: &Path,
    bytes: &[u8],
    kind: FileKind,
    expected_regions: impl Fn(u16) -> Vec<u32>,
) -> Result<Parsed> {
    let len = bytes.len() as u64;
    let Ok((h, _)) = FileHeader::ref_from_prefix(bytes) else {
        return Err(Error::Truncated {
            file: path.into(),
            region: "header".into(),
            needed: HEADER_LEN as u64,
            len,
        });
    };
    if h.magic != kind.magic() {
        return Err(Error::corrupt(
            path,
            "header",
            0,
            format!(
                "magic is {:?}, expected {:?}",
                String::from_utf8_lossy(&h.magic),
                String::from_utf8_lossy(&kind.magic())
            ),
        ));
    }
    let stored = h.header_crc.get();
    let actual = crc(bytes.get(..HEADER_LEN - 4).unwrap_or_default());
    if stored != actual {
        return Err(Error::ChecksumMismatch {
            file: path.into(),
            region: "header".into(),
            expected: stored,
            actual,
        });
    }
    if h.major.get() != MAJOR {
        return Err(Error::UnsupportedVersion {
            file: path.into(),
            major: h.major.get(),
            minor: h.minor.get(),
            reason: format!("this build reads major version {MAJOR}"),
        });
    }
    let bad = |offset: u64, reason: String| Error::corrupt(path, "header", offset, reason);
    if h.kind != kind.code() {
        return Err(bad(
            12,
            format!("kind is {}, expected {}", h.kind, kind.code()),
        ));
    }
    let metric = Metric::from_code(h.metric)
        .ok_or_else(|| bad(13, format!("unknown metric code {}", h.metric)))?;
    let flags = h.flags.get();
    let known = kind.flags();
    if flags & !known != 0 {
        // A flag of a later minor: refuse rather than misread.
        return Err(Error::UnsupportedVersion {
            file: path.into(),
            major: h.major.get(),
            minor: h.minor.get(),
            reason: format!(
                "header flags {:#06x} include ones this build does not know (it reads up to 1.{MINOR})",
                flags & !known
            ),
        });
    }
    if flags & FLAG_PAYLOAD_PRESENCE != 0 && flags & FLAG_PAYLOADS == 0 {
        return Err(bad(14, "payload presence without payloads".into()));
    }
    if flags & FLAG_EXTENDED_CODES != 0 && flags & FLAG_CODES == 0 {
        return Err(bad(14, "extended codes without codes".into()));
    }
    if flags & FLAG_BLOCKED_CODES != 0 && flags & FLAG_CODES == 0 {
        return Err(bad(14, "blocked codes without codes".into()));
    }
    if h.dim.get() == 0 {
        return Err(bad(16, "dim is 0".into()));
    }
    if h.reserved.iter().any(|&b| b != 0) {
        return Err(bad(64, "reserved bytes are not zero".into()));
    }
    let file_len = h.file_len.get();
    let region_count = h.region_count.get() as usize;
    let expected = expected_regions(h.flags.get());
    if region_count != expected.len() {
        return Err(bad(
            56,
            format!("{region_count} regions, expected {}", expected.len()),
        ));
    }
    let table_end = (HEADER_LEN + region_count * REGION_ENTRY_LEN) as u64;
    let table_bytes = bytes.get(HEADER_LEN..table_end as usize);

    if len != file_len {
        if len > file_len {
            return Err(Error::corrupt(
                path,
                "footer",
                file_len,
                format!("{} bytes follow the declared end of file", len - file_len),
            ));
        }
        // Name the region the file ends in, if the table is still readable.
        let region = table_bytes
            .and_then(|t| <[RegionEntry]>::ref_from_bytes(t).ok())
            .and_then(|entries| {
                entries
                    .iter()
                    .find(|e| e.offset.get().saturating_add(e.length.get()) > len)
                    .map(|e| region::name(e.kind.get()).to_string())
            })
            .unwrap_or_else(|| {
                if len < table_end {
                    "region table".into()
                } else {
                    "footer".into()
                }
            });
        return Err(Error::Truncated {
            file: path.into(),
            region,
            needed: file_len,
            len,
        });
    }

    let table_bytes = table_bytes.ok_or_else(|| Error::Truncated {
        file: path.into(),
        region: "region table".into(),
        needed: table_end,
        len,
    })?;
    let actual = crc(table_bytes);
    if actual != h.table_crc.get() {
        return Err(Error::ChecksumMismatch {
            file: path.into(),
            region: "region table".into(),
            expected: h.table_crc.get(),
            actual,
        });
    }
    let entries = <[RegionEntry]>::ref_from_bytes(table_bytes)
        .map_err(|_| Error::corrupt(path, "region table", HEADER_LEN as u64, "misshapen table"))?;
    let footer_start = file_len
        .checked_sub(FOOTER_LEN as u64)
        .filter(|&s| s >= table_end)
        .ok_or_else(|| Error::Truncated {
            file: path.into(),
            region: "footer".into(),
            needed: table_end + FOOTER_LEN as u64,
            len,
        })?;
    let mut regions = Vec::with_capacity(region_count);
    let mut prev_end = table_end;
    for (i, (e, &want)) in entries.iter().zip(&expected).enumerate() {
        let at = (HEADER_LEN + i * REGION_ENTRY_LEN) as u64;
        let name = region::name(want);
        let bad = |reason: String| {
            Error::corrupt(path, format!("region table entry {i} ({name})"), at, reason)
        };
        if e.kind.get() != want {
            return Err(bad(format!("kind {} where {want} belongs", e.kind.get())));
        }
        if e.reserved0.get() != 0 || e.reserved1.get() != 0 {
            return Err(bad("reserved fields are not zero".into()));
        }
        let (off, rlen) = (e.offset.get(), e.length.get());
        if off % ALIGN != 0 {
            return Err(bad(format!("offset {off} is not a multiple of {ALIGN}")));
        }
        let end = off
            .checked_add(rlen)
            .ok_or_else(|| bad(format!("offset {off} + length {rlen} overflows")))?;
        if off < prev_end || end > footer_start {
            return Err(bad(format!(
                "bytes {off}..{end} overlap the previous region or the footer (allowed {prev_end}..{footer_start})"
            )));
        }
        prev_end = end;
        regions.push(Region {
            kind: want,
            offset: off,
            len: rlen,
            crc: e.crc.get(),
        });
    }
    let footer = bytes
        .get(footer_start as usize..)
        .and_then(|b| Footer::ref_from_bytes(b).ok())
        .ok_or_else(|| Error::corrupt(path, "footer", footer_start, "unreadable"))?;
    if footer.magic != kind.magic() || footer.file_len.get() != file_len {
        return Err(Error::corrupt(
            path,
            "footer",
            footer_start,
            "footer does not repeat the magic and file length",
        ));
    }
    Ok(Parsed {
        minor: h.minor.get(),
        metric,
        flags: h.flags.get(),
        dim: h.dim.get() as usize,
        nlist: h.nlist.get() as usize,
        generation: h.generation.get(),
        rows: h.rows.get(),
        segment_id: h.segment_id.get(),
        file_len,
        regions,
    })
}

/// Checks the CRC of one region.
pub fn verify_region(path: &Path, bytes: &[u8], r: &Region) -> Result<()> {
    let data = bytes.get(r.range()).ok_or_else(|| Error::Truncated {
        file: path.into(),
        region: r.name().into(),
        needed: r.offset + r.len,
        len: bytes.len() as u64,
    })?;
    let actual = crc(data);
    if actual != r.crc {
        return Err(Error::ChecksumMismatch {
            file: path.into(),
            region: r.name().into(),
            expected: r.crc,
            actual,
        });
    }
    Ok(())
}

/// Checks every region's CRC and that every byte outside the header, the
/// table, the regions and the footer (alignment padding) is zero.
pub fn verify_regions(path: &Path, bytes: &[u8], parsed: &Parsed) -> Result<()> {
    let mut gap_start = (HEADER_LEN + parsed.regions.len() * REGION_ENTRY_LEN) as u64;
    let mut after = "region table";
    let footer_start = parsed.file_len - FOOTER_LEN as u64;
    for r in &parsed.regions {
        check_zero(path, bytes, gap_start..r.offset, after)?;
        verify_region(path, bytes, r)?;
        gap_start = r.offset + r.len;
        after = r.name();
    }
    check_zero(path, bytes, gap_start..footer_start, after)
}

fn check_zero(path: &Path, bytes: &[u8], range: Range<u64>, after: &str) -> Result<()> {
    let gap = bytes
        .get(range.start as usize..range.end as usize)
        .unwrap_or_default();
    if let Some(i) = gap.iter().position(|&b| b != 0) {
        return Err(Error::corrupt(
            path,
            format!("padding after {after}"),
            range.start + i as u64,
            "padding byte is not zero",
        ));
    }
    Ok(())
}

/// Builds the header, region table and footer bytes of a file.
#[derive(Debug, Clone)]
pub struct FrameBuilder {
    /// The header, without its CRCs (filled by [`FrameBuilder::encode`]).
    pub header: FileHeader,
    /// Regions in table order.
    pub regions: Vec<Region>,
}

impl FrameBuilder {
    /// A header for `kind` with every field zero but the identity ones.
    pub fn new(kind: FileKind, metric: Metric, dim: usize, nlist: usize) -> FrameBuilder {
        let mut header = FileHeader::new_zeroed();
        header.magic = kind.magic();
        header.major = MAJOR.into();
        header.minor = MINOR.into();
        header.kind = kind.code();
        header.metric = metric.code();
        header.dim = (dim as u32).into();
        header.nlist = (nlist as u32).into();
        FrameBuilder {
            header,
            regions: Vec::new(),
        }
    }

    /// The header and region table, with both CRCs set, and the footer.
    pub fn encode(&self, file_len: u64) -> (Vec<u8>, [u8; FOOTER_LEN]) {
        let mut table = Vec::with_capacity(self.regions.len() * REGION_ENTRY_LEN);
        for r in &self.regions {
            let e = RegionEntry {
                kind: r.kind.into(),
                reserved0: 0.into(),
                offset: r.offset.into(),
                length: r.len.into(),
                crc: r.crc.into(),
                reserved1: 0.into(),
            };
            table.extend_from_slice(e.as_bytes());
        }
        let mut h = self.header.clone();
        h.file_len = file_len.into();
        h.region_count = (self.regions.len() as u32).into();
        h.table_crc = crc(&table).into();
        let crc_h = crc(h.as_bytes().get(..HEADER_LEN - 4).unwrap_or_default());
        h.header_crc = crc_h.into();
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(&table);
        let footer = Footer {
            magic: self.header.magic,
            file_len: file_len.into(),
        };
        let mut f = [0u8; FOOTER_LEN];
        f.copy_from_slice(footer.as_bytes());
        (out, f)
    }
}
