//! Guards the promise that no file content makes a reader panic or read out
//! of bounds: every flipped byte and every truncation of a segment and a
//! centroid file is reported as an error naming the file and the region.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::path::{Path, PathBuf};

use vdb_core::fields::{FieldDef, FieldType, Value};
use vdb_core::{Generation, InvertedLists, ListId, Metric, RowCode, SegmentId};
use vdb_format::header::HEADER_LEN;
use vdb_format::{
    CentroidFile, CentroidMeta, CodeSpec, SegmentMeta, SegmentReader, SegmentWriter,
    write_centroids,
};

fn small_segment(dir: &Path) -> PathBuf {
    let path = dir.join("seg-0000000000000001.seg");
    let meta = SegmentMeta {
        id: SegmentId(1),
        generation: Generation(3),
        metric: Metric::L2,
        dim: 3,
        nlist: 4,
        with_payloads: true,
    };
    let fields = [
        FieldDef::new("album", FieldType::Keyword),
        FieldDef::new("year", FieldType::Int),
        FieldDef::new("tags", FieldType::Keywords),
    ];
    let files = vdb_fs::LocalDirectory::new(vdb_fs::os(), dir);
    let name = path.file_name().unwrap().to_str().unwrap();
    let mut w = SegmentWriter::create_with_codes(
        &files,
        name,
        meta,
        Some(&fields),
        Some(CodeSpec {
            seed: 77,
            extended: true,
        }),
    )
    .unwrap();
    for (i, list) in [0u32, 0, 1, 3, 3, 3].into_iter().enumerate() {
        let v = [i as f32, 1.0, -2.5];
        let payload = format!("row {i}");
        let mut values = vec![("year".to_string(), Value::Int(2000 + i as i64))];
        if i % 2 == 0 {
            values.push(("album".into(), Value::Keyword(format!("a{}", i % 4))));
            values.push(("tags".into(), Value::Keywords(vec!["x".into(), "y".into()])));
        }
        values.sort_by(|a, b| a.0.cmp(&b.0));
        let code = [0x0101u64 * i as u64];
        let factors = [i as f32, 1.0, 0.5, code[0].count_ones() as f32];
        let extended = [i as u8, 255 - i as u8, 128];
        w.push_coded(
            ListId(list),
            100 + i as u64,
            &v,
            Some(payload.as_bytes()),
            &values,
            Some(RowCode {
                code: &code,
                factors,
                extended: Some((&extended, [0.5, 0.25])),
            }),
        )
        .unwrap();
    }
    w.finish().unwrap();
    let s = SegmentReader::open(&path).unwrap();
    assert_eq!(s.codes_seed(), Some(77));
    let c = s.list_codes(ListId(3)).unwrap();
    assert_eq!(
        vdb_core::distance::fastscan::deinterleave(c.blocks, 1, 3),
        [0x0303, 0x0404, 0x0505]
    );
    assert_eq!(s.columns().columns().len(), 3);
    assert_eq!(
        s.columns().row_values(5),
        vec![("year".to_string(), Value::Int(2005))]
    );
    path
}

fn small_centroids(dir: &Path) -> PathBuf {
    let path = dir.join("centroids-00000000000000000003.cen");
    let meta = CentroidMeta {
        generation: Generation(3),
        metric: Metric::L2,
        dim: 3,
    };
    write_centroids(&path, meta, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    path
}

/// Reads everything a search or a get would read from an opened segment.
fn touch_everything(s: &SegmentReader) {
    for l in 0..s.nlist() as u32 + 2 {
        let v = s.list_vectors(ListId(l));
        let ids = s.list_ids(ListId(l));
        assert_eq!(v.len(), ids.len() * s.dim());
        std::hint::black_box(v.iter().sum::<f32>());
        if let Some(c) = s.list_codes(ListId(l)) {
            let blocks = vdb_core::distance::fastscan::blocks_for(ids.len());
            assert_eq!(c.blocks.len(), blocks * 256 * c.words);
            std::hint::black_box(c.blocks.iter().map(|&b| u32::from(b)).sum::<u32>());
            assert_eq!(c.factors.len(), ids.len());
            std::hint::black_box(c.factors.iter().flatten().sum::<f32>());
            let ext = c.extended.expect("the segment has extended codes");
            assert_eq!(ext.codes.len(), ids.len() * s.dim());
            assert_eq!(ext.factors.len(), ids.len());
            std::hint::black_box(ext.codes.iter().map(|&b| u32::from(b)).sum::<u32>());
            std::hint::black_box(ext.factors.iter().flatten().sum::<f32>());
        }
    }
    for r in 0..s.rows() + 2 {
        let _ = std::hint::black_box(s.row(r));
        let _ = std::hint::black_box(s.payload(r));
        let _ = std::hint::black_box(s.columns().row_values(r));
    }
}

fn assert_names_file_and_region(err: &vdb_format::Error, file: &Path, what: &str) {
    let msg = err.to_string();
    assert!(
        msg.contains(&file.display().to_string()),
        "{what}: error does not name the file: {msg}"
    );
    assert!(
        err.region().is_some(),
        "{what}: error does not name a region: {msg}"
    );
}

#[test]
fn every_flipped_byte_of_a_segment_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_segment(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let s = SegmentReader::open(&good).unwrap();
    s.verify().unwrap();
    let bad = dir.path().join("flipped.seg");
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut b = bytes.clone();
            b[i] ^= mask;
            std::fs::write(&bad, &b).unwrap();
            let what = format!("byte {i} ^ {mask:#04x}");
            match SegmentReader::open(&bad) {
                Err(e) => assert_names_file_and_region(&e, &bad, &what),
                Ok(s) => {
                    touch_everything(&s);
                    let e = s.verify().expect_err(&what);
                    assert_names_file_and_region(&e, &bad, &what);
                }
            }
        }
    }
}

#[test]
fn every_truncation_of_a_segment_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_segment(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let bad = dir.path().join("short.seg");
    for len in 0..bytes.len() {
        std::fs::write(&bad, &bytes[..len]).unwrap();
        let e = SegmentReader::open(&bad).expect_err(&format!("length {len}"));
        assert_names_file_and_region(&e, &bad, &format!("length {len}"));
    }
    // And a file with bytes appended.
    let mut long = bytes.clone();
    long.extend_from_slice(&[0; 7]);
    std::fs::write(&bad, &long).unwrap();
    assert!(SegmentReader::open(&bad).is_err());
}

#[test]
fn every_flipped_byte_and_truncation_of_a_centroid_file_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_centroids(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    CentroidFile::open(&good).unwrap();
    let bad = dir.path().join("bad.cen");
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut b = bytes.clone();
            b[i] ^= mask;
            std::fs::write(&bad, &b).unwrap();
            let e = CentroidFile::open(&bad).expect_err(&format!("byte {i}"));
            assert_names_file_and_region(&e, &bad, &format!("byte {i}"));
        }
    }
    for len in 0..bytes.len() {
        std::fs::write(&bad, &bytes[..len]).unwrap();
        let e = CentroidFile::open(&bad).expect_err(&format!("length {len}"));
        assert_names_file_and_region(&e, &bad, &format!("length {len}"));
    }
}

/// Rewrites a header field and fixes the header CRC, as a buggy or hostile
/// writer would: the lie must be caught by the structural checks.
fn forge(bytes: &[u8], offset: usize, value: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[offset..offset + value.len()].copy_from_slice(value);
    let crc = crc32fast_hash(&b[..HEADER_LEN - 4]);
    b[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    b
}

fn crc32fast_hash(b: &[u8]) -> u32 {
    // The format's CRC is the standard CRC-32 (IEEE); a bitwise version here
    // keeps the test independent of the implementation under test.
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in b {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn headers_that_claim_more_than_the_file_holds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_segment(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let bad = dir.path().join("forged.seg");
    let cases: Vec<(&str, usize, Vec<u8>)> = vec![
        ("rows", 32, u64::MAX.to_le_bytes().to_vec()),
        ("rows + 1", 32, 7u64.to_le_bytes().to_vec()),
        ("dim", 16, 1_000_000u32.to_le_bytes().to_vec()),
        ("dim 0", 16, 0u32.to_le_bytes().to_vec()),
        ("nlist", 20, 5u32.to_le_bytes().to_vec()),
        ("nlist 0", 20, 0u32.to_le_bytes().to_vec()),
        (
            "file_len",
            48,
            (bytes.len() as u64 * 2).to_le_bytes().to_vec(),
        ),
        ("region_count", 56, 9u32.to_le_bytes().to_vec()),
        ("metric", 13, vec![9]),
        ("major", 8, 2u16.to_le_bytes().to_vec()),
        ("flags", 14, 0u16.to_le_bytes().to_vec()),
        // Codes without their extended part: the region is too long.
        (
            "flags without extended codes",
            14,
            47u16.to_le_bytes().to_vec(),
        ),
        // Codes row after row (format 1.4): another layout, and the
        // block count where 1.4 has reserved bytes.
        (
            "flags without blocked codes",
            14,
            31u16.to_le_bytes().to_vec(),
        ),
        (
            "flags of format 1.3 codes",
            14,
            15u16.to_le_bytes().to_vec(),
        ),
        // Extended or blocked codes without codes.
        (
            "flags with extended codes alone",
            14,
            23u16.to_le_bytes().to_vec(),
        ),
        (
            "flags with blocked codes alone",
            14,
            39u16.to_le_bytes().to_vec(),
        ),
    ];
    for (what, off, value) in cases {
        std::fs::write(&bad, forge(&bytes, off, &value)).unwrap();
        let e = SegmentReader::open(&bad).expect_err(what);
        assert_names_file_and_region(&e, &bad, what);
    }
}
