//! The engine's encoding of WAL payloads.
//!
//! Upsert: `u32` row count, then per row `u64` id, `u8` has-payload flag,
//! `u32` payload length and bytes (when flagged), `dim` f32 components.
//! Delete: `u32` count, then `u64` ids. Little-endian. Vectors are stored as
//! prepared for the metric (normalised for cosine), so replay is exact.
//! Specified in `docs/format.md` ("Record payloads").

use crate::Row;

/// Encodes rows of dimension `dim`.
pub fn encode_upsert(rows: &[Row]) -> Vec<u8> {
    let size: usize = rows
        .iter()
        .map(|r| 17 + r.payload.as_ref().map_or(0, Vec::len) + 4 * r.vector.len())
        .sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for r in rows {
        out.extend_from_slice(&r.id.to_le_bytes());
        match &r.payload {
            Some(p) => {
                out.push(1);
                out.extend_from_slice(&(p.len() as u32).to_le_bytes());
                out.extend_from_slice(p);
            }
            None => out.push(0),
        }
        for x in &r.vector {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

/// Decodes an upsert payload of rows with `dim` components.
pub fn decode_upsert(bytes: &[u8], dim: usize) -> Result<Vec<Row>, String> {
    let mut r = Reader { bytes, at: 0 };
    let n = r.u32()? as usize;
    let mut rows = Vec::with_capacity(n.min(bytes.len() / (9 + 4 * dim).max(1)));
    for _ in 0..n {
        let id = r.u64()?;
        let payload = match r.u8()? {
            0 => None,
            1 => {
                let len = r.u32()? as usize;
                Some(r.take(len)?.to_vec())
            }
            f => return Err(format!("bad payload flag {f}")),
        };
        let raw = r.take(4 * dim)?;
        let vector = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        rows.push(Row {
            id,
            vector,
            payload,
        });
    }
    if r.at != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - r.at));
    }
    Ok(rows)
}

/// The rows of a record with each id's last row only (vdb writes each id
/// once per record; a record that repeats one means its later row).
pub fn last_of_each_id(rows: Vec<Row>) -> Vec<Row> {
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    if rows.iter().all(|r| seen.insert(r.id)) {
        return rows;
    }
    seen.clear();
    let mut kept: Vec<Row> = rows
        .into_iter()
        .rev()
        .filter(|r| seen.insert(r.id))
        .collect();
    kept.reverse();
    kept
}

/// Encodes ids to delete.
pub fn encode_delete(ids: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 8 * ids.len());
    out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

/// Decodes a delete payload.
pub fn decode_delete(bytes: &[u8]) -> Result<Vec<u64>, String> {
    let mut r = Reader { bytes, at: 0 };
    let n = r.u32()? as usize;
    let ids = (0..n).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
    if r.at != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - r.at));
    }
    Ok(ids)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self
            .bytes
            .get(self.at..self.at.saturating_add(n))
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let rows = vec![
            Row {
                id: 1,
                vector: vec![1.0, 2.0],
                payload: Some(b"img".to_vec()),
            },
            Row {
                id: u64::MAX,
                vector: vec![-0.5, 0.0],
                payload: None,
            },
        ];
        let b = encode_upsert(&rows);
        assert_eq!(decode_upsert(&b, 2).unwrap(), rows);
        for cut in 0..b.len() {
            assert!(decode_upsert(&b[..cut], 2).is_err());
        }
        assert!(decode_upsert(&b, 3).is_err());
        let d = encode_delete(&[3, 4]);
        assert_eq!(decode_delete(&d).unwrap(), vec![3, 4]);
        assert!(decode_delete(&d[..5]).is_err());
    }

    #[test]
    fn a_repeated_id_keeps_its_last_row() {
        let row = |id, x: f32| Row {
            id,
            vector: vec![x],
            payload: None,
        };
        let rows = vec![
            row(1, 1.0),
            row(2, 2.0),
            row(1, 3.0),
            row(3, 4.0),
            row(2, 5.0),
        ];
        let kept = last_of_each_id(rows);
        assert_eq!(kept, vec![row(1, 3.0), row(3, 4.0), row(2, 5.0)]);
        let distinct = vec![row(7, 1.0), row(8, 2.0)];
        assert_eq!(last_of_each_id(distinct.clone()), distinct);
    }
}
