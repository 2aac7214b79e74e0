//! The field columns region of a segment (format 1.2): every typed
//! field's values for the segment's rows, in row order. Specified in
//! `docs/format.md` ("Field columns").
//!
//! ```text
//! u32 columns
//! per column: u8 name length, name, u8 type code, then by type
//!   int:      rows × i64, presence bits (ceil(rows / 8) bytes, bit r%8 of byte r/8)
//!   float:    rows × f64, presence bits
//!   bool:     rows × u8 (0 false, 1 true, 2 none)
//!   keyword:  dictionary, rows × u32 code (0xFFFFFFFF none)
//!   keywords: dictionary, (rows + 1) × u32 offsets, u32 n, n × u32 codes, absence bits
//! dictionary: u32 count, then per value u32 length and UTF-8 bytes, ascending
//! ```
//!
//! The region is read whole when the segment opens: checksummed, decoded
//! and checked ([`Columns::new`]), so filters evaluate on plain memory.

use vdb_core::RowSet;
use vdb_core::fields::{Column, ColumnData, Columns, FieldType};

/// Encodes `columns` (all for the same rows).
pub(crate) fn encode(columns: &Columns) -> Vec<u8> {
    let rows = columns.rows();
    let mut out = Vec::new();
    out.extend_from_slice(&(columns.columns().len() as u32).to_le_bytes());
    for c in columns.columns() {
        out.push(c.name.len() as u8);
        out.extend_from_slice(c.name.as_bytes());
        out.push(c.data.field_type().code());
        match &c.data {
            ColumnData::Int { values, present } => {
                values
                    .iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
                bits(&mut out, present, rows);
            }
            ColumnData::Float { values, present } => {
                values
                    .iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
                bits(&mut out, present, rows);
            }
            ColumnData::Bool { values } => out.extend_from_slice(values),
            ColumnData::Keyword { dict, codes } => {
                dictionary(&mut out, dict);
                u32s(&mut out, codes);
            }
            ColumnData::Keywords {
                dict,
                starts,
                codes,
                absent,
            } => {
                dictionary(&mut out, dict);
                u32s(&mut out, starts);
                out.extend_from_slice(&(codes.len() as u32).to_le_bytes());
                u32s(&mut out, codes);
                bits(&mut out, absent, rows);
            }
        }
    }
    out
}

fn bits(out: &mut Vec<u8>, set: &RowSet, rows: usize) {
    let mut bytes = vec![0u8; rows.div_ceil(8)];
    for (r, byte) in (0..rows).zip((0..).map(|i| i / 8)) {
        if set.contains(r)
            && let Some(b) = bytes.get_mut(byte)
        {
            *b |= 1 << (r % 8);
        }
    }
    out.extend_from_slice(&bytes);
}

fn u32s(out: &mut Vec<u8>, v: &[u32]) {
    v.iter()
        .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
}

fn dictionary(out: &mut Vec<u8>, dict: &[String]) {
    out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    for s in dict {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
}

/// Decodes a region of `rows` rows. Errors give the byte offset within the
/// region and what was wrong.
pub(crate) fn decode(bytes: &[u8], rows: usize) -> Result<Columns, (usize, String)> {
    let mut r = Reader { bytes, at: 0 };
    let n = r.u32()? as usize;
    let mut columns = Vec::with_capacity(n.min(vdb_core::fields::MAX_FIELDS));
    for _ in 0..n {
        let len = r.u8()? as usize;
        let at = r.at;
        let name = std::str::from_utf8(r.take(len)?)
            .map_err(|_| (at, "column name is not UTF-8".to_string()))?
            .to_string();
        let at = r.at;
        let ty = FieldType::from_code(r.u8()?)
            .ok_or_else(|| (at, format!("column {name:?} has an unknown type code")))?;
        let data = match ty {
            FieldType::Int => {
                let values = r.array(rows, 8, |b| {
                    i64::from_le_bytes(b.try_into().unwrap_or_default())
                })?;
                ColumnData::Int {
                    values,
                    present: r.bits(rows)?,
                }
            }
            FieldType::Float => {
                let values = r.array(rows, 8, |b| {
                    f64::from_le_bytes(b.try_into().unwrap_or_default())
                })?;
                ColumnData::Float {
                    values,
                    present: r.bits(rows)?,
                }
            }
            FieldType::Bool => ColumnData::Bool {
                values: r.take(rows)?.to_vec(),
            },
            FieldType::Keyword => ColumnData::Keyword {
                dict: r.dictionary()?,
                codes: r.u32s(rows)?,
            },
            FieldType::Keywords => {
                let dict = r.dictionary()?;
                let starts = r.u32s(
                    rows.checked_add(1)
                        .ok_or((r.at, "too many rows".to_string()))?,
                )?;
                let n = r.u32()? as usize;
                let codes = r.u32s(n)?;
                ColumnData::Keywords {
                    dict,
                    starts,
                    codes,
                    absent: r.bits(rows)?,
                }
            }
        };
        columns.push(Column { name, data });
    }
    if r.at != bytes.len() {
        return Err((
            r.at,
            format!("{} bytes after the last column", bytes.len() - r.at),
        ));
    }
    Columns::new(rows, columns).map_err(|e| (0, e))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], (usize, String)> {
        let s = self
            .at
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.at..end))
            .ok_or_else(|| (self.at, format!("{n} bytes needed, the region ends first")))?;
        self.at += n;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], (usize, String)> {
        let at = self.at;
        self.take(N)?
            .try_into()
            .map_err(|_| (at, format!("{N} bytes needed")))
    }

    fn u8(&mut self) -> Result<u8, (usize, String)> {
        Ok(u8::from_le_bytes(self.fixed()?))
    }

    fn u32(&mut self) -> Result<u32, (usize, String)> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    fn array<T>(
        &mut self,
        n: usize,
        width: usize,
        f: impl Fn(&[u8]) -> T,
    ) -> Result<Vec<T>, (usize, String)> {
        let len = n
            .checked_mul(width)
            .ok_or_else(|| (self.at, "too many values".to_string()))?;
        Ok(self.take(len)?.chunks_exact(width).map(f).collect())
    }

    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, (usize, String)> {
        self.array(n, 4, |b| {
            u32::from_le_bytes(b.try_into().unwrap_or_default())
        })
    }

    fn bits(&mut self, rows: usize) -> Result<RowSet, (usize, String)> {
        let bytes = self.take(rows.div_ceil(8))?;
        let mut set = RowSet::new(rows);
        for r in 0..rows {
            if bytes.get(r / 8).is_some_and(|b| b & (1 << (r % 8)) != 0) {
                set.insert(r);
            }
        }
        Ok(set)
    }

    fn dictionary(&mut self) -> Result<Vec<String>, (usize, String)> {
        let n = self.u32()? as usize;
        // Each value takes at least 4 bytes: a bound before allocating.
        if n > self.bytes.len().saturating_sub(self.at) / 4 {
            return Err((
                self.at,
                format!("a dictionary of {n} values overruns the region"),
            ));
        }
        let mut dict = Vec::with_capacity(n);
        for _ in 0..n {
            let len = self.u32()? as usize;
            let at = self.at;
            let s = std::str::from_utf8(self.take(len)?)
                .map_err(|_| (at, "a dictionary value is not UTF-8".to_string()))?;
            dict.push(s.to_string());
        }
        Ok(dict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vdb_core::fields::{ColumnsBuilder, FieldDef, Value};

    fn sample(rows: usize) -> Columns {
        let schema = [
            FieldDef::new("album", FieldType::Keyword),
            FieldDef::new("year", FieldType::Int),
            FieldDef::new("score", FieldType::Float),
            FieldDef::new("ok", FieldType::Bool),
            FieldDef::new("tags", FieldType::Keywords),
        ];
        let mut b = ColumnsBuilder::new(&schema);
        for r in 0..rows {
            let mut v = vec![("year".to_string(), Value::Int(r as i64 - 3))];
            if r % 3 != 0 {
                v.push(("album".into(), Value::Keyword(format!("a{}", r % 4))));
                v.push(("ok".into(), Value::Bool(r % 2 == 0)));
            }
            if r % 2 == 0 {
                v.push(("score".into(), Value::Float(r as f64 / 3.0)));
                v.push((
                    "tags".into(),
                    Value::Keywords(vec!["t".into(), format!("u{r}")]),
                ));
            }
            b.push(&v);
        }
        b.finish()
    }

    #[test]
    fn round_trips() {
        for rows in [0, 1, 9, 100] {
            let c = sample(rows);
            assert_eq!(decode(&encode(&c), rows).unwrap(), c);
        }
        assert_eq!(
            decode(&encode(&Columns::empty(5)), 5).unwrap(),
            Columns::empty(5)
        );
    }

    proptest! {
        /// A changed or cut region is refused or decodes to columns that
        /// pass the checks; it never panics.
        #[test]
        fn damage_is_refused_or_consistent(at in 0usize..4000, byte in any::<u8>(), cut in 0usize..4000) {
            let c = sample(23);
            let mut b = encode(&c);
            let at = at % b.len();
            b[at] = byte;
            if let Ok(d) = decode(&b, 23) {
                prop_assert_eq!(d.rows(), 23);
            }
            let cut = cut % b.len();
            let good = encode(&c);
            prop_assert!(decode(&good[..cut], 23).is_err());
        }
    }
}
