//! Readers for the vector files people already have: texmex `.fvecs`,
//! `.bvecs`, `.ivecs` and NumPy `.npy` (float32, C order). Every problem is
//! reported with the file and the record it was found in.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

/// A dense row-major matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix<T> {
    /// Rows.
    pub rows: usize,
    /// Columns (the vector dimension).
    pub dim: usize,
    /// `rows × dim` values.
    pub data: Vec<T>,
}

impl<T> Matrix<T> {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Reads a float vector file, choosing the format by extension.
pub fn read_vectors(path: &Path) -> Result<Matrix<f32>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let m = match ext.as_str() {
        "fvecs" => parse_xvecs(&bytes, 4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        "bvecs" => parse_xvecs(&bytes, 1, |b| b[0] as f32),
        "npy" => parse_npy(&bytes),
        other => bail!(
            "{}: unknown vector file extension {other:?}; expected .fvecs, .bvecs or .npy",
            path.display()
        ),
    }
    .with_context(|| format!("{} is not a valid .{ext} file", path.display()))?;
    if let Some(i) = m.data.iter().position(|x| !x.is_finite()) {
        bail!(
            "{}: vector {} component {} is {}; vectors must be finite",
            path.display(),
            i / m.dim,
            i % m.dim,
            m.data[i]
        );
    }
    Ok(m)
}

/// Reads a texmex `.ivecs` file (e.g. ground-truth neighbour ids).
pub fn read_ivecs(path: &Path) -> Result<Matrix<i32>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_xvecs(&bytes, 4, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .with_context(|| format!("{} is not a valid .ivecs file", path.display()))
}

/// texmex layout: per record, a little-endian i32 dimension then `dim`
/// components of `width` bytes. Every record must have the first's dimension.
fn parse_xvecs<T>(bytes: &[u8], width: usize, decode: impl Fn(&[u8]) -> T) -> Result<Matrix<T>> {
    ensure!(!bytes.is_empty(), "the file is empty");
    ensure!(
        bytes.len() >= 4,
        "the file is {} bytes, too short for a record header",
        bytes.len()
    );
    let dim = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    ensure!(dim > 0, "record 0 declares dimension {dim}");
    let dim = dim as usize;
    let record = 4 + dim * width;
    let mut data = Vec::with_capacity(bytes.len() / record * dim);
    let mut rows = 0;
    let mut at = 0;
    while at < bytes.len() {
        let head = bytes.get(at..at + 4).with_context(|| {
            format!(
                "record {rows} is truncated: {} of {record} bytes",
                bytes.len() - at
            )
        })?;
        let d = i32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        ensure!(
            d as i64 == dim as i64,
            "record {rows} has dimension {d}, but record 0 has {dim}"
        );
        let rec = bytes.get(at..at + record).with_context(|| {
            format!(
                "record {rows} is truncated: {} of {record} bytes",
                bytes.len() - at
            )
        })?;
        data.extend(rec[4..].chunks_exact(width).map(&decode));
        rows += 1;
        at += record;
    }
    Ok(Matrix { rows, dim, data })
}

/// NumPy `.npy` version 1–3, dtype little-endian float32, C order, 1-D or
/// 2-D.
fn parse_npy(bytes: &[u8]) -> Result<Matrix<f32>> {
    ensure!(
        bytes.len() >= 10 && &bytes[..6] == b"\x93NUMPY",
        "missing the .npy magic"
    );
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            ensure!(bytes.len() >= 12, "truncated header");
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => bail!("unsupported .npy version {v}"),
    };
    let header = bytes
        .get(start..start + header_len)
        .context("truncated header")?;
    let header = std::str::from_utf8(header).context("header is not text")?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))?;
        let rest = header[at + key.len() + 2..]
            .trim_start()
            .strip_prefix(':')?;
        Some(rest.trim_start())
    };
    let descr = field("descr").context("header has no 'descr'")?;
    ensure!(
        descr.starts_with("'<f4'") || descr.starts_with("'float32'"),
        "dtype {} is not little-endian float32 ('<f4')",
        descr.split(',').next().unwrap_or(descr)
    );
    let fortran = field("fortran_order").context("header has no 'fortran_order'")?;
    ensure!(
        fortran.starts_with("False"),
        "Fortran-ordered arrays are not supported"
    );
    let shape = field("shape").context("header has no 'shape'")?;
    let shape = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .context("unreadable shape")?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .with_context(|| format!("bad shape entry {s:?}"))
        })
        .collect::<Result<_>>()?;
    let (rows, dim) = match dims[..] {
        [n] => (1, n),
        [r, d] => (r, d),
        _ => bail!("shape has {} dimensions; expected 1 or 2", dims.len()),
    };
    ensure!(
        dim > 0 && rows > 0,
        "the array is empty (shape {rows}×{dim})"
    );
    let body = &bytes[start + header_len..];
    let need = rows * dim * 4;
    ensure!(
        body.len() >= need,
        "data is truncated: {} of {need} bytes",
        body.len()
    );
    let data = body[..need]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Matrix { rows, dim, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fvecs(rows: &[&[f32]]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in rows {
            out.extend((r.len() as i32).to_le_bytes());
            for x in *r {
                out.extend(x.to_le_bytes());
            }
        }
        out
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn reads_fvecs_bvecs_ivecs_npy() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "a.fvecs", &fvecs(&[&[1.0, 2.0], &[3.0, 4.0]]));
        let m = read_vectors(&p).unwrap();
        assert_eq!(
            (m.rows, m.dim, m.data.clone()),
            (2, 2, vec![1.0, 2.0, 3.0, 4.0])
        );
        let p = write(dir.path(), "a.bvecs", &[2, 0, 0, 0, 7, 255]);
        assert_eq!(read_vectors(&p).unwrap().data, vec![7.0, 255.0]);
        let p = write(dir.path(), "a.ivecs", &[1, 0, 0, 0, 9, 0, 0, 0]);
        assert_eq!(read_ivecs(&p).unwrap().data, vec![9]);
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        npy.extend((h.len() as u16).to_le_bytes());
        npy.extend(h.as_bytes());
        for i in 0..6 {
            npy.extend((i as f32).to_le_bytes());
        }
        let p = write(dir.path(), "a.npy", &npy);
        let m = read_vectors(&p).unwrap();
        assert_eq!((m.rows, m.dim), (2, 3));
        assert_eq!(m.row(1), &[3.0, 4.0, 5.0]);
    }

    #[test]
    fn bad_files_get_one_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty.fvecs", vec![], "empty"),
            (
                "mixed.fvecs",
                fvecs(&[&[1.0, 2.0], &[3.0]]),
                "record 1 has dimension 1",
            ),
            (
                "trunc.fvecs",
                fvecs(&[&[1.0, 2.0]])[..9].to_vec(),
                "record 0 is truncated",
            ),
            (
                "nan.fvecs",
                fvecs(&[&[1.0], &[f32::NAN]]),
                "vector 1 component 0 is NaN",
            ),
            ("inf.fvecs", fvecs(&[&[f32::INFINITY]]), "must be finite"),
            ("zero.fvecs", vec![0, 0, 0, 0], "dimension 0"),
            ("x.csv", vec![1], "unknown vector file extension"),
            (
                "bad.npy",
                b"\x93NUMPY\x01\x00\x05\x00{'a'}".to_vec(),
                "descr",
            ),
        ];
        for (name, bytes, want) in cases {
            let p = write(dir.path(), name, &bytes);
            let err = format!("{:#}", read_vectors(&p).unwrap_err());
            assert!(err.contains(want), "{name}: {err}");
            assert!(
                err.contains(name),
                "{name}: error does not name the file: {err}"
            );
        }
    }
}
