//! The engine's encoding of WAL payloads.
//!
//! Upsert: `u32` row count, then per row `u64` id, `u8` flags (bit 0: a
//! payload follows, bit 1: field values follow), `u32` payload length and
//! bytes (bit 0), `u16` value count and per value `u8` name length, name,
//! `u8` type code and the value (bit 1: keyword `u32` length and bytes,
//! int `i64`, float `f64`, bool `u8`, keywords `u32` count and per keyword
//! `u32` length and bytes), then `dim` f32 components.
//! Delete: `u32` count, then `u64` ids. Little-endian. Vectors are stored as
//! prepared for the metric (normalised for cosine), so replay is exact.
//! Specified in `docs/format.md` ("Record payloads").

use vdb_core::{FieldType, Value};

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
        let flags = u8::from(r.payload.is_some()) | (u8::from(!r.fields.is_empty()) << 1);
        out.push(flags);
        if let Some(p) = &r.payload {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
        }
        if !r.fields.is_empty() {
            out.extend_from_slice(&(r.fields.len() as u16).to_le_bytes());
            for (name, value) in &r.fields {
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
                out.push(value.field_type().code());
                encode_value(&mut out, value);
            }
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
        let flags = r.u8()?;
        if flags > 3 {
            return Err(format!("bad row flags {flags}"));
        }
        let payload = if flags & 1 != 0 {
            let len = r.u32()? as usize;
            Some(r.take(len)?.to_vec())
        } else {
            None
        };
        let mut fields = Vec::new();
        if flags & 2 != 0 {
            let n = r.u16()?;
            for _ in 0..n {
                let len = r.u8()? as usize;
                let name = r.string(len)?;
                let code = r.u8()?;
                let ty = FieldType::from_code(code)
                    .ok_or_else(|| format!("bad field type code {code}"))?;
                fields.push((name, decode_value(&mut r, ty)?));
            }
        }
        let raw = r.take(4 * dim)?;
        let vector = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        rows.push(Row {
            id,
            vector,
            payload,
            fields,
        });
    }
    if r.at != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - r.at));
    }
    Ok(rows)
}

fn encode_value(out: &mut Vec<u8>, value: &Value) {
    let string = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    match value {
        Value::Keyword(s) => string(out, s),
        Value::Int(n) => out.extend_from_slice(&n.to_le_bytes()),
        Value::Float(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(b) => out.push(u8::from(*b)),
        Value::Keywords(v) => {
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            v.iter().for_each(|s| string(out, s));
        }
    }
}

fn decode_value(r: &mut Reader<'_>, ty: FieldType) -> Result<Value, String> {
    Ok(match ty {
        FieldType::Keyword => {
            let len = r.u32()? as usize;
            Value::Keyword(r.string(len)?)
        }
        FieldType::Int => Value::Int(r.u64()? as i64),
        FieldType::Float => Value::Float(f64::from_bits(r.u64()?)),
        FieldType::Bool => match r.u8()? {
            b @ (0 | 1) => Value::Bool(b == 1),
            b => return Err(format!("bad bool {b}")),
        },
        FieldType::Keywords => {
            let n = r.u32()? as usize;
            let mut v = Vec::with_capacity(n.min(vdb_core::fields::MAX_KEYWORDS));
            for _ in 0..n {
                let len = r.u32()? as usize;
                v.push(r.string(len)?);
            }
            Value::Keywords(v)
        }
    })
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
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn string(&mut self, len: usize) -> Result<String, String> {
        let at = self.at;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| format!("bad UTF-8 at byte {at}"))
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
                fields: Default::default(),
            },
            Row {
                id: u64::MAX,
                vector: vec![-0.5, 0.0],
                payload: None,
                fields: Default::default(),
            },
            Row {
                id: 7,
                vector: vec![0.0, 3.0],
                payload: None,
                fields: vec![
                    ("album".into(), Value::Keyword("cats".into())),
                    ("ok".into(), Value::Bool(true)),
                    ("score".into(), Value::Float(-0.25)),
                    ("tags".into(), Value::Keywords(vec!["a".into(), "é".into()])),
                    ("year".into(), Value::Int(-2020)),
                ],
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
            fields: Default::default(),
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
