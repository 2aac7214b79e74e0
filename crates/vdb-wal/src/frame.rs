//! Bytes of the log: the file header and the record frame.
//!
//! File header (32 bytes): magic `"VDBWAL\0\0"`, `u16` major version (1),
//! `u16` minor (0), `u32` zero, `u64` first LSN, `u32` zero, `u32` CRC32 of
//! bytes `0..28`.
//!
//! Record frame: `u32` body length, `u32` CRC32 of the length bytes and the
//! body, then the body: `u64` LSN, `u8` kind, payload. Little-endian.

use vdb_core::Lsn;

/// Magic bytes opening every log file.
pub const MAGIC: [u8; 8] = *b"VDBWAL\0\0";
/// Major format version.
pub const MAJOR: u16 = 1;
/// Bytes of the file header.
pub const FILE_HEADER_LEN: usize = 32;
/// Bytes before the body of a record (length + CRC).
pub const FRAME_HEAD_LEN: usize = 8;
/// Bytes of the body before the payload (LSN + kind).
pub const BODY_HEAD_LEN: usize = 9;
/// Largest payload a record may carry (64 MiB): bigger lengths in a frame
/// are treated as damage, never allocated.
pub const MAX_PAYLOAD: usize = 64 << 20;

/// What a record describes. The payload's encoding belongs to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// Rows inserted or replacing rows with the same ids.
    Upsert,
    /// Rows deleted by id.
    Delete,
    /// A collection-level event (created, altered, trained, flushed, ...).
    Event,
}

impl RecordKind {
    /// The kind's byte in a frame.
    pub fn code(self) -> u8 {
        match self {
            RecordKind::Upsert => 1,
            RecordKind::Delete => 2,
            RecordKind::Event => 3,
        }
    }

    /// The kind with byte `code`.
    pub fn from_code(code: u8) -> Option<RecordKind> {
        match code {
            1 => Some(RecordKind::Upsert),
            2 => Some(RecordKind::Delete),
            3 => Some(RecordKind::Event),
            _ => None,
        }
    }
}

/// The header of a log file starting at `first`.
pub fn file_header(first: Lsn) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&MAJOR.to_le_bytes());
    h[16..24].copy_from_slice(&first.0.to_le_bytes());
    let crc = crc32fast::hash(&h[..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes a file header: the first LSN, or what is wrong with it.
pub fn parse_file_header(bytes: &[u8]) -> Result<Lsn, String> {
    let Some(h) = bytes.get(..FILE_HEADER_LEN) else {
        return Err(format!(
            "file of {} bytes is shorter than its {FILE_HEADER_LEN}-byte header",
            bytes.len()
        ));
    };
    let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    if h[..8] != MAGIC {
        return Err("bad magic".into());
    }
    let crc = crc32fast::hash(&h[..28]);
    if crc != u32_at(28) {
        return Err(format!(
            "header checksum mismatch: stored {:#010x}, computed {crc:#010x}",
            u32_at(28)
        ));
    }
    let major = u16::from_le_bytes([h[8], h[9]]);
    if major != MAJOR {
        return Err(format!(
            "format version {major} is not supported (this build reads {MAJOR})"
        ));
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[16..24]);
    Ok(Lsn(u64::from_le_bytes(first)))
}

/// Appends the frame of one record to `out`.
pub fn encode(out: &mut Vec<u8>, lsn: Lsn, kind: RecordKind, payload: &[u8]) {
    let body_len = (BODY_HEAD_LEN + payload.len()) as u32;
    let start = out.len();
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&lsn.0.to_le_bytes());
    out.push(kind.code());
    out.extend_from_slice(payload);
    let mut h = crc32fast::Hasher::new();
    h.update(&out[start..start + 4]);
    h.update(&out[start + FRAME_HEAD_LEN..]);
    let crc = h.finalize();
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A frame decoded from bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Its LSN.
    pub lsn: Lsn,
    /// Its kind.
    pub kind: RecordKind,
    /// Its payload.
    pub payload: &'a [u8],
    /// Bytes the frame occupies.
    pub len: usize,
}

/// Decodes the frame at the start of `bytes`, or says why there is none.
pub fn decode(bytes: &[u8]) -> Result<Decoded<'_>, String> {
    let Some(head) = bytes.get(..FRAME_HEAD_LEN) else {
        return Err(format!(
            "{} bytes left, too few for a record header",
            bytes.len()
        ));
    };
    let body_len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if !(BODY_HEAD_LEN..=BODY_HEAD_LEN + MAX_PAYLOAD).contains(&body_len) {
        return Err(format!("record length {body_len} is impossible"));
    }
    let Some(body) = bytes.get(FRAME_HEAD_LEN..FRAME_HEAD_LEN + body_len) else {
        return Err(format!(
            "record of {} bytes but only {} remain",
            FRAME_HEAD_LEN + body_len,
            bytes.len()
        ));
    };
    let stored = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let mut h = crc32fast::Hasher::new();
    h.update(&head[..4]);
    h.update(body);
    let actual = h.finalize();
    if stored != actual {
        return Err(format!(
            "record checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"
        ));
    }
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&body[..8]);
    let kind =
        RecordKind::from_code(body[8]).ok_or_else(|| format!("unknown record kind {}", body[8]))?;
    Ok(Decoded {
        lsn: Lsn(u64::from_le_bytes(lsn)),
        kind,
        payload: &body[BODY_HEAD_LEN..],
        len: FRAME_HEAD_LEN + body_len,
    })
}

/// File name of the log file whose first record is `first`.
pub fn file_name(first: Lsn) -> String {
    format!("{:020}.log", first.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn frames_round_trip_and_reject_any_flip(lsn in any::<u64>(), k in 1u8..4, payload in prop::collection::vec(any::<u8>(), 0..64), flip in any::<prop::sample::Index>()) {
            let kind = RecordKind::from_code(k).unwrap();
            let mut buf = Vec::new();
            encode(&mut buf, Lsn(lsn), kind, &payload);
            let d = decode(&buf).unwrap();
            prop_assert_eq!((d.lsn, d.kind, d.payload, d.len), (Lsn(lsn), kind, &payload[..], buf.len()));
            let i = flip.index(buf.len());
            buf[i] ^= 0x01;
            // A flip anywhere is caught by the CRC, which covers length and body.
            prop_assert!(decode(&buf).is_err());
        }
    }

    #[test]
    fn headers_round_trip_and_reject_damage() {
        let h = file_header(Lsn(42));
        assert_eq!(parse_file_header(&h), Ok(Lsn(42)));
        for i in 0..FILE_HEADER_LEN {
            let mut b = h;
            b[i] ^= 0x10;
            assert!(parse_file_header(&b).is_err(), "byte {i}");
        }
        assert!(parse_file_header(&h[..10]).is_err());
    }

    #[test]
    fn impossible_lengths_are_not_allocated() {
        let mut b = vec![0xFF; 16];
        assert!(decode(&b).unwrap_err().contains("impossible"));
        b[..4].copy_from_slice(&0u32.to_le_bytes());
        assert!(decode(&b).is_err());
    }
}
