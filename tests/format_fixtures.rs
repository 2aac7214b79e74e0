//! Guards backward compatibility: the files under `tests/fixtures/format-v1`
//! were written by format version 1.0, those under
//! `tests/fixtures/format-v1.1` by 1.1 and `tests/fixtures/format-v1.4` (a
//! segment with row-major RaBitQ codes and extended codes) by 1.4; they
//! are never regenerated. Every later build must open them and read the
//! same rows.
//!
//! (They were created once with `VDB_WRITE_FIXTURES=1 cargo test -p vdb-tests
//! --test format_fixtures`; that path refuses to overwrite existing files.)

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::path::PathBuf;

use vdb_core::{Generation, InvertedLists, ListId, Metric, SegmentId};
use vdb_format::{
    CentroidFile, CentroidMeta, SegmentMeta, SegmentReader, SegmentWriter, write_centroids,
};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/format-v1")
}

/// Row `i` of the fixture: list `i % 3`, id `1000 + i`, vector `[i, -i/2, 0.25]`,
/// payload `"payload i"` (empty for i = 4).
fn row(i: u64) -> (ListId, u64, [f32; 3], Vec<u8>) {
    let payload = if i == 4 {
        Vec::new()
    } else {
        format!("payload {i}").into_bytes()
    };
    (
        ListId((i % 3) as u32),
        1000 + i,
        [i as f32, -(i as f32) / 2.0, 0.25],
        payload,
    )
}

const ROWS: u64 = 10;

fn write_fixtures() {
    let d = dir();
    let seg = d.join(vdb_format::segment_file_name(SegmentId(1)));
    let cen = d.join(vdb_format::centroid_file_name(Generation(1)));
    assert!(
        !seg.exists() && !cen.exists(),
        "fixtures exist; they are never regenerated"
    );
    std::fs::create_dir_all(&d).unwrap();
    let meta = CentroidMeta {
        generation: Generation(1),
        metric: Metric::L2,
        dim: 3,
    };
    write_centroids(&cen, meta, &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, 2.0, 0.5]).unwrap();
    let meta = SegmentMeta {
        id: SegmentId(1),
        generation: Generation(1),
        metric: Metric::L2,
        dim: 3,
        nlist: 3,
        with_payloads: true,
    };
    let mut rows: Vec<_> = (0..ROWS).map(row).collect();
    rows.sort_by_key(|r| r.0);
    let mut w = SegmentWriter::create(&seg, meta).unwrap();
    for (l, id, v, p) in rows {
        w.push(l, id, &v, Some(&p)).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn version_1_files_still_open_and_read_the_same() {
    if std::env::var_os("VDB_WRITE_FIXTURES").is_some() {
        write_fixtures();
    }
    let cen = CentroidFile::open(&dir().join("centroids-00000000000000000001.cen")).unwrap();
    assert_eq!(cen.meta().generation, Generation(1));
    assert_eq!(cen.nlist(), 3);
    assert_eq!(
        cen.centroids(),
        &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, 2.0, 0.5]
    );

    let seg = SegmentReader::open(&dir().join("seg-0000000000000001.seg")).unwrap();
    seg.verify().unwrap();
    assert_eq!(seg.minor_version(), 0);
    assert_eq!(seg.rows(), ROWS as usize);
    assert_eq!(seg.meta().generation, Generation(1));
    assert_eq!(seg.meta().metric, Metric::L2);
    let mut r = 0;
    for l in 0..3u32 {
        let want: Vec<_> = (0..ROWS).map(row).filter(|x| x.0 == ListId(l)).collect();
        assert_eq!(seg.list_len(ListId(l)), want.len());
        for (i, (_, id, v, p)) in want.into_iter().enumerate() {
            assert_eq!(seg.list_ids(ListId(l))[i], id);
            assert_eq!(&seg.list_vectors(ListId(l))[i * 3..i * 3 + 3], &v);
            // Format 1.0 stored rows without a payload as empty ones, so
            // an empty payload reads as none (row 4).
            let want = (!p.is_empty()).then_some(&p[..]);
            assert_eq!(seg.payload(r).unwrap(), want);
            r += 1;
        }
    }
}

fn dir_1_1() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/format-v1.1")
}

/// Row `i` of the 1.1 fixture: list `i % 2`, id `2000 + i`, vector
/// `[i, 1]`; no payload when `i % 3 == 0`, an empty one when `i % 3 == 1`,
/// `"p{i}"` otherwise.
fn row_1_1(i: u64) -> (ListId, u64, [f32; 2], Option<Vec<u8>>) {
    let payload = match i % 3 {
        0 => None,
        1 => Some(Vec::new()),
        _ => Some(format!("p{i}").into_bytes()),
    };
    (ListId((i % 2) as u32), 2000 + i, [i as f32, 1.0], payload)
}

const ROWS_1_1: u64 = 11;

fn write_fixtures_1_1() {
    let seg = dir_1_1().join(vdb_format::segment_file_name(SegmentId(1)));
    assert!(!seg.exists(), "fixtures exist; they are never regenerated");
    std::fs::create_dir_all(dir_1_1()).unwrap();
    let meta = SegmentMeta {
        id: SegmentId(1),
        generation: Generation(1),
        metric: Metric::L2,
        dim: 2,
        nlist: 2,
        with_payloads: true,
    };
    let mut rows: Vec<_> = (0..ROWS_1_1).map(row_1_1).collect();
    rows.sort_by_key(|r| r.0);
    let mut w = SegmentWriter::create(&seg, meta).unwrap();
    for (l, id, v, p) in rows {
        w.push(l, id, &v, p.as_deref()).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn version_1_1_files_tell_absent_payloads_from_empty_ones() {
    if std::env::var_os("VDB_WRITE_FIXTURES").is_some() {
        write_fixtures_1_1();
    }
    let seg = SegmentReader::open(&dir_1_1().join("seg-0000000000000001.seg")).unwrap();
    seg.verify().unwrap();
    assert_eq!(seg.minor_version(), 1);
    assert_eq!(seg.rows(), ROWS_1_1 as usize);
    let mut r = 0;
    for l in 0..2u32 {
        let want: Vec<_> = (0..ROWS_1_1)
            .map(row_1_1)
            .filter(|x| x.0 == ListId(l))
            .collect();
        assert_eq!(seg.list_len(ListId(l)), want.len());
        for (i, (_, id, v, p)) in want.into_iter().enumerate() {
            assert_eq!(seg.list_ids(ListId(l))[i], id);
            assert_eq!(&seg.list_vectors(ListId(l))[i * 2..i * 2 + 2], &v);
            assert_eq!(seg.payload(r).unwrap(), p.as_deref(), "row {r}");
            r += 1;
        }
    }
}

fn dir_1_4() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/format-v1.4")
}

/// Row `i` of the 1.4 fixture (written by the 1.4 build, `24014ed`): list
/// `i % 3`, id `4000 + i`, 70 values `i + j/100`; it was written with
/// codes of rotation seed 42 and extended codes (arbitrary bits: the
/// format checks their shape, not their values).
fn row_1_4(i: u64) -> (ListId, u64, Vec<f32>) {
    let v: Vec<f32> = (0..70).map(|j| i as f32 + j as f32 / 100.0).collect();
    (ListId((i % 3) as u32), 4000 + i, v)
}

const ROWS_1_4: u64 = 40;

/// A segment of format 1.4 with codes row after row opens and verifies,
/// and reads the same rows; its codes are not searched (no list codes,
/// no seed: its lists are scanned exactly, and maintenance rewrites it
/// with fast-scan blocks as a segment of another index type).
#[test]
fn version_1_4_files_with_row_major_codes_still_open() {
    let seg = SegmentReader::open(&dir_1_4().join("seg-0000000000000001.seg")).unwrap();
    seg.verify().unwrap();
    assert_eq!(seg.minor_version(), 4);
    assert_eq!(seg.rows(), ROWS_1_4 as usize);
    assert_eq!(seg.codes_seed(), None);
    for l in 0..3u32 {
        assert!(seg.list_codes(ListId(l)).is_none(), "list {l}");
        let want: Vec<_> = (0..ROWS_1_4)
            .map(row_1_4)
            .filter(|x| x.0 == ListId(l))
            .collect();
        assert_eq!(seg.list_len(ListId(l)), want.len());
        for (i, (_, id, v)) in want.into_iter().enumerate() {
            assert_eq!(seg.list_ids(ListId(l))[i], id);
            assert_eq!(&seg.list_vectors(ListId(l))[i * 70..i * 70 + 70], &v[..]);
        }
    }
}
