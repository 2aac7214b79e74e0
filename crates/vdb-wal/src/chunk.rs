//! Chunks of a shipped log ([`crate::SyncMode::Object`]): each chunk is a
//! complete log file — the 32-byte header naming its first LSN, then
//! records with consecutive LSNs — stored whole in a
//! [`vdb_fs::LogStore`]. A chunk is written once, in one request, so unlike
//! a local file it has no torn tail: any damage is corruption.

use vdb_core::Lsn;

use crate::error::{Error, Result};
use crate::frame::{self, FILE_HEADER_LEN, RecordKind};
use crate::replay::Record;

/// A chunk holding `records`, the first of them at LSN `first`.
pub fn encode_chunk(first: Lsn, records: &[(RecordKind, &[u8])]) -> Vec<u8> {
    let mut out = frame::file_header(first).to_vec();
    let mut lsn = first;
    for (kind, payload) in records {
        frame::encode(&mut out, lsn, *kind, payload);
        lsn = lsn.next();
    }
    out
}

/// The first LSN and the records of chunk `bytes`, read from `location`
/// (named in errors). Every byte must be part of a valid record, and the
/// LSNs must follow on from the header's.
pub fn read_chunk(bytes: &[u8], location: &str) -> Result<(Lsn, Vec<Record>)> {
    let corrupt = |offset: usize, reason: String| Error::Corrupt {
        file: location.into(),
        offset: offset as u64,
        reason,
    };
    let first =
        frame::parse_file_header(bytes).map_err(|r| corrupt(0, format!("chunk header: {r}")))?;
    let mut records = Vec::new();
    let mut next = first;
    let mut at = FILE_HEADER_LEN;
    while at < bytes.len() {
        let d = frame::decode(&bytes[at..]).map_err(|r| corrupt(at, r))?;
        if d.lsn != next {
            return Err(corrupt(
                at,
                format!("record {} where {} belongs", d.lsn.0, next.0),
            ));
        }
        records.push(Record {
            lsn: d.lsn,
            kind: d.kind,
            payload: d.payload.to_vec(),
        });
        next = next.next();
        at += d.len;
    }
    Ok((first, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_any_damage_is_corruption() {
        let chunk = encode_chunk(
            Lsn(7),
            &[(RecordKind::Upsert, b"rows"), (RecordKind::Event, b"")],
        );
        let (first, records) = read_chunk(&chunk, "s3://b/wal/7").unwrap();
        assert_eq!(first, Lsn(7));
        let got: Vec<(u64, RecordKind, &[u8])> = records
            .iter()
            .map(|r| (r.lsn.0, r.kind, r.payload.as_slice()))
            .collect();
        assert_eq!(
            got,
            vec![
                (7, RecordKind::Upsert, &b"rows"[..]),
                (8, RecordKind::Event, &b""[..])
            ]
        );
        assert_eq!(
            read_chunk(&encode_chunk(Lsn(3), &[]), "x").unwrap().1,
            vec![]
        );
        for i in 0..chunk.len() {
            let mut b = chunk.clone();
            b[i] ^= 0x04;
            let e = read_chunk(&b, "s3://b/wal/7").unwrap_err();
            assert!(e.to_string().contains("s3://b/wal/7"), "byte {i}: {e}");
        }
        // A chunk cut inside a record (the last is 17 bytes) is refused.
        for cut in 1..17 {
            assert!(
                read_chunk(&chunk[..chunk.len() - cut], "x").is_err(),
                "cut {cut}"
            );
        }
    }
}
