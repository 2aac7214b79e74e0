//! Helpers shared by the cross-crate tests in this directory: the bundled
//! digits data set and a texmex reader small enough to trust by reading.

use std::path::PathBuf;

/// A row-major matrix read from a texmex file.
#[derive(Debug, Clone)]
pub struct Matrix<T> {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub dim: usize,
    /// Values.
    pub data: Vec<T>,
}

impl<T> Matrix<T> {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// The repository's `data/` directory.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("data")
}

fn read_xvecs<T>(name: &str, decode: impl Fn([u8; 4]) -> T) -> Matrix<T> {
    let path = data_dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dim = i32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    let rec = 4 + 4 * dim;
    assert_eq!(bytes.len() % rec, 0, "{}: torn record", path.display());
    let mut data = Vec::with_capacity(bytes.len() / rec * dim);
    for r in bytes.chunks_exact(rec) {
        data.extend(
            r[4..]
                .chunks_exact(4)
                .map(|b| decode(b.try_into().expect("4 bytes"))),
        );
    }
    Matrix {
        rows: bytes.len() / rec,
        dim,
        data,
    }
}

/// Reads `data/<name>` as `.fvecs`.
pub fn fvecs(name: &str) -> Matrix<f32> {
    read_xvecs(name, f32::from_le_bytes)
}

/// Reads `data/<name>` as `.ivecs`.
pub fn ivecs(name: &str) -> Matrix<i32> {
    read_xvecs(name, i32::from_le_bytes)
}
