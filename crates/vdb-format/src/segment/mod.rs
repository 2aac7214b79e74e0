//! Segment files: `seg-{id:016x}.seg`, rows clustered into inverted lists.
//!
//! Regions, in order: vectors (each list contiguous and 64-byte aligned),
//! the list table, ids (u64, parallel to the vectors), and with the payload
//! flag payload offsets (`rows + 1` u64) and payload data, and with the
//! presence flag (format 1.1) one bit per row saying whether it has a
//! payload, with the fields flag (format 1.2) the field columns
//! (`fields.rs`), and with the codes flag (format 1.3) the rows' RaBitQ
//! codes and factors (`codes.rs`). The vectors come first so a writer can
//! stream rows straight to disk and only needs to keep the ids (8 bytes a
//! row) until the end.

mod codes;
mod fields;
mod reader;
mod writer;

pub use reader::SegmentReader;
pub use writer::{CodeSpec, SegmentInfo, SegmentMeta, SegmentWriter};

use zerocopy::little_endian::U64;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::header::{FLAG_CODES, FLAG_FIELDS, FLAG_PAYLOAD_PRESENCE, FLAG_PAYLOADS, region};

/// One entry of the list table.
#[derive(Debug, Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ListEntry {
    /// Index of the list's first row in the ids (and payload) arrays.
    pub row_start: U64,
    /// Rows in the list.
    pub row_count: U64,
    /// Offset of the list's first vector, relative to the vectors region; a
    /// multiple of 64.
    pub vec_offset: U64,
    /// Zero.
    pub reserved: U64,
}

/// Bytes of one list table entry.
pub const LIST_ENTRY_LEN: usize = 32;
const _: () = assert!(size_of::<ListEntry>() == LIST_ENTRY_LEN);

/// The region kinds of a segment with the given header flags.
pub(crate) fn expected_regions(flags: u16) -> Vec<u32> {
    let mut r = vec![region::VECTORS, region::LIST_TABLE, region::IDS];
    if flags & FLAG_PAYLOADS != 0 {
        r.extend([region::PAYLOAD_OFFSETS, region::PAYLOAD_DATA]);
    }
    if flags & FLAG_PAYLOAD_PRESENCE != 0 {
        r.push(region::PAYLOAD_PRESENCE);
    }
    if flags & FLAG_FIELDS != 0 {
        r.push(region::FIELDS);
    }
    if flags & FLAG_CODES != 0 {
        r.push(region::CODES);
    }
    r
}
