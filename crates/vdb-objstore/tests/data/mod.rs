//! Rows for the tests: `dim` values near one of four directions (chosen
//! by the id) plus a little noise that depends on the id only, and a
//! payload naming the id — the same row for the same id, every time.

#![allow(dead_code, reason = "each test file uses a part")]

use std::ops::Range;

use vdb_engine::Row;

/// Row `id` with `dim` values.
pub fn row(id: u64, dim: usize) -> Row {
    let mut s = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let vector = (0..dim)
        .map(|j| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let noise = (s >> 40) as f32 / (1u64 << 24) as f32;
            if j % 4 == (id % 4) as usize {
                5.0 + noise
            } else {
                noise
            }
        })
        .collect();
    Row {
        id,
        vector,
        payload: Some(format!("row {id}").into_bytes()),
        fields: Default::default(),
    }
}

/// Rows `ids` with `dim` values.
pub fn rows(ids: Range<u64>, dim: usize) -> Vec<Row> {
    ids.map(|id| row(id, dim)).collect()
}
