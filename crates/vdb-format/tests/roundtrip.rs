//! Guards the segment and centroid round trip: what a writer is given is
//! exactly what a reader maps, row for row, for any shape of data —
//! rows without a payload and rows with an empty one told apart.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::collections::BTreeMap;

use proptest::prelude::*;
use vdb_core::distance::fastscan;
use vdb_core::{Generation, InvertedLists, ListId, Metric, RowCode, SegmentId};
use vdb_format::{CodeSpec, SegmentMeta, SegmentReader, SegmentWriter};

type Row = (u32, u64, Vec<f32>, Option<Vec<u8>>);

fn rows_strategy() -> impl Strategy<Value = (usize, usize, bool, Vec<Row>)> {
    (1usize..20, 1usize..9, any::<bool>()).prop_flat_map(|(dim, nlist, payloads)| {
        let row = (
            0..nlist as u32,
            any::<u64>(),
            prop::collection::vec(-1e6f32..1e6, dim),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        );
        (
            Just(dim),
            Just(nlist),
            Just(payloads),
            prop::collection::vec(row, 0..60),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn segment_round_trips((dim, nlist, payloads, mut rows) in rows_strategy()) {
        rows.sort_by_key(|r| r.0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.seg");
        let meta = SegmentMeta {
            id: SegmentId(9),
            generation: Generation(2),
            metric: Metric::InnerProduct,
            dim,
            nlist,
            with_payloads: payloads,
        };
        let mut w = SegmentWriter::create(&path, meta).unwrap();
        for (l, id, v, p) in &rows {
            w.push(ListId(*l), *id, v, if payloads { p.as_deref() } else { None }).unwrap();
        }
        let info = w.finish().unwrap();
        prop_assert_eq!(info.rows, rows.len() as u64);
        prop_assert_eq!(std::fs::metadata(&path).unwrap().len(), info.bytes);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert_eq!(leftovers.len(), 1, "temporary files left: {:?}", leftovers);

        let s = SegmentReader::open(&path).unwrap();
        s.verify().unwrap();
        prop_assert_eq!(s.meta(), meta);
        prop_assert_eq!(s.rows(), rows.len());
        let mut by_list: BTreeMap<u32, Vec<&Row>> = BTreeMap::new();
        for r in &rows {
            by_list.entry(r.0).or_default().push(r);
        }
        let mut row_index = 0;
        for l in 0..nlist as u32 {
            let want = by_list.get(&l).cloned().unwrap_or_default();
            prop_assert_eq!(s.list_len(ListId(l)), want.len());
            let ids: Vec<u64> = want.iter().map(|r| r.1).collect();
            prop_assert_eq!(s.list_ids(ListId(l)), &ids[..]);
            let vecs: Vec<f32> = want.iter().flat_map(|r| r.2.clone()).collect();
            prop_assert_eq!(s.list_vectors(ListId(l)), &vecs[..]);
            // Each list starts 64-byte aligned in memory (mapped at a page).
            prop_assert_eq!(s.list_vectors(ListId(l)).as_ptr() as usize % 64, 0);
            for r in want {
                let (list, v) = s.row(row_index).unwrap();
                prop_assert_eq!(list, ListId(l));
                prop_assert_eq!(v, &r.2[..]);
                let p = s.payload(row_index).unwrap();
                if payloads {
                    prop_assert_eq!(p, r.3.as_deref());
                } else {
                    prop_assert_eq!(p, None);
                }
                row_index += 1;
            }
        }
        prop_assert!(s.row(rows.len()).is_none());
    }
}

#[test]
fn writer_refuses_bad_rows_and_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.seg");
    let meta = SegmentMeta {
        id: SegmentId(1),
        generation: Generation(1),
        metric: Metric::L2,
        dim: 2,
        nlist: 3,
        with_payloads: false,
    };
    let mut w = SegmentWriter::create(&path, meta).unwrap();
    w.push(ListId(1), 1, &[1.0, 2.0], None).unwrap();
    let e = w.push(ListId(0), 2, &[1.0, 2.0], None).unwrap_err();
    assert!(e.to_string().contains("ascending order"), "{e}");
    assert!(w.push(ListId(3), 2, &[1.0, 2.0], None).is_err());
    assert!(w.push(ListId(1), 2, &[1.0], None).is_err());
    assert!(w.push(ListId(1), 2, &[1.0, f32::NAN], None).is_err());
    assert!(w.push(ListId(1), 2, &[1.0, 2.0], Some(b"x")).is_err());
    w.push(ListId(2), 3, &[3.0, 4.0], None).unwrap();
    w.finish().unwrap();
    let s = SegmentReader::open(&path).unwrap();
    assert_eq!(s.ids(), &[1, 3]);

    // An abandoned writer leaves nothing behind.
    let other = dir.path().join("abandoned.seg");
    let mut w = SegmentWriter::create(
        &other,
        SegmentMeta {
            with_payloads: true,
            ..meta
        },
    )
    .unwrap();
    w.push(ListId(0), 1, &[1.0, 2.0], Some(b"p")).unwrap();
    drop(w);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("w.seg")]);
}

/// A segment with codes (format 1.5) gives back every row's code and
/// factors by list, in the list's row order; a coded writer refuses a row
/// without its code or with a code of the wrong width, an uncoded one a
/// row with a code.
#[test]
fn codes_round_trip_by_list() {
    let dir = tempfile::tempdir().unwrap();
    let files = vdb_fs::LocalDirectory::new(vdb_fs::os(), dir.path());
    let meta = SegmentMeta {
        id: SegmentId(2),
        generation: Generation(1),
        metric: Metric::InnerProduct,
        dim: 130,
        nlist: 4,
        with_payloads: false,
    };
    let mut w = SegmentWriter::create_with_codes(&files, "c.seg", meta, None, Some(spec(9, false)))
        .unwrap();
    let v = vec![0.5f32; 130];
    let e = w.push_row(ListId(0), 1, &v, None, &[]).unwrap_err();
    assert!(e.to_string().contains("needs its code"), "{e}");
    let e = refusal(&mut w, &v, row_code(&[1, 2], [0.0; 4], None));
    assert!(e.contains("2 words, expected 3"), "{e}");
    // List 0 spans two blocks of codes, the second partial.
    let rows: Vec<(u32, u64)> = (10..45)
        .map(|id| (0, id))
        .chain([(2, 52), (3, 53), (3, 54)])
        .collect();
    for &(l, id) in &rows {
        let code = [id, id * 2, id * 3];
        let f = [id as f32, -1.0, 0.25, 7.0];
        w.push_coded(ListId(l), id, &v, None, &[], Some(row_code(&code, f, None)))
            .unwrap();
    }
    w.finish().unwrap();
    let s = SegmentReader::open(&dir.path().join("c.seg")).unwrap();
    s.verify().unwrap();
    assert_eq!(s.codes_seed(), Some(9));
    for l in 0..4u32 {
        let c = s.list_codes(ListId(l)).unwrap();
        assert_eq!(c.seed, 9);
        assert_eq!(c.words, 3);
        let ids = s.list_ids(ListId(l));
        let want: Vec<u64> = ids.iter().flat_map(|&id| [id, id * 2, id * 3]).collect();
        assert_eq!(row_codes(&c, ids.len()), want, "list {l}");
        let want: Vec<[f32; 4]> = ids.iter().map(|&id| [id as f32, -1.0, 0.25, 7.0]).collect();
        assert_eq!(c.factors, want.as_slice(), "list {l}");
    }
    assert_eq!(s.list_codes(ListId(1)).unwrap().blocks.len(), 0);

    let mut plain = SegmentWriter::create_in(&files, "p.seg", meta).unwrap();
    let e = refusal(&mut plain, &v, row_code(&[1, 2, 3], [0.0; 4], None));
    assert!(e.contains("without codes"), "{e}");
    plain.push(ListId(0), 1, &v, None).unwrap();
    plain.finish().unwrap();
    let s = SegmentReader::open(&dir.path().join("p.seg")).unwrap();
    assert_eq!(s.codes_seed(), None);
    assert!(s.list_codes(ListId(0)).is_none());
}

/// The first `rows` codes of a list's fast-scan blocks, which hold
/// whole blocks of 32 rows.
fn row_codes(c: &vdb_core::ListCodes<'_>, rows: usize) -> Vec<u64> {
    let block = fastscan::block_bytes(c.words);
    assert_eq!(c.blocks.len(), rows.div_ceil(32) * block, "whole blocks");
    fastscan::deinterleave(c.blocks, c.words, rows)
}

/// Why `w` refuses a row of list 0 with vector `v` and code `code`.
fn refusal(w: &mut SegmentWriter, v: &[f32], code: RowCode<'_>) -> String {
    w.push_coded(ListId(0), 1, v, None, &[], Some(code))
        .unwrap_err()
        .to_string()
}

fn spec(seed: u64, extended: bool) -> CodeSpec {
    CodeSpec { seed, extended }
}

fn row_code<'a>(
    code: &'a [u64],
    factors: [f32; 4],
    extended: Option<(&'a [u8], [f32; 2])>,
) -> RowCode<'a> {
    RowCode {
        code,
        factors,
        extended,
    }
}

/// A segment with extended codes (format 1.4) returns each list's 8-bit
/// codes and their factors beside its 1-bit codes, at a dimension whose
/// codes need padding; a row without its extended code, or with one of
/// the wrong length, is refused, and a segment without them refuses one.
#[test]
fn extended_codes_round_trip_by_list() {
    let dir = tempfile::tempdir().unwrap();
    let files = vdb_fs::LocalDirectory::new(vdb_fs::os(), dir.path());
    let dim = 13;
    let meta = SegmentMeta {
        id: SegmentId(2),
        generation: Generation(1),
        metric: Metric::L2,
        dim,
        nlist: 3,
        with_payloads: false,
    };
    let v = vec![0.5f32; dim];
    let mut w =
        SegmentWriter::create_with_codes(&files, "x.seg", meta, None, Some(spec(5, true))).unwrap();
    let e = refusal(&mut w, &v, row_code(&[1], [0.0; 4], None));
    assert!(e.contains("every row needs one"), "{e}");
    let e = refusal(
        &mut w,
        &v,
        row_code(&[1], [0.0; 4], Some((&[1; 12], [0.0; 2]))),
    );
    assert!(e.contains("12 bytes, expected 13"), "{e}");
    let rows: Vec<(u32, u64)> = vec![(0, 10), (0, 11), (2, 12), (2, 13), (2, 14)];
    let bytes_of = |id: u64| -> Vec<u8> { (0..dim).map(|j| (id as usize * 7 + j) as u8).collect() };
    for &(l, id) in &rows {
        let ext = bytes_of(id);
        let bits = [id];
        let code = row_code(&bits, [id as f32; 4], Some((&ext, [id as f32, -0.5])));
        w.push_coded(ListId(l), id, &v, None, &[], Some(code))
            .unwrap();
    }
    w.finish().unwrap();
    let s = SegmentReader::open(&dir.path().join("x.seg")).unwrap();
    s.verify().unwrap();
    for l in 0..3u32 {
        let c = s.list_codes(ListId(l)).unwrap();
        let ext = c.extended.expect("extended codes");
        let ids = s.list_ids(ListId(l));
        let want: Vec<u64> = ids.to_vec();
        assert_eq!(row_codes(&c, ids.len()), want, "list {l}");
        let want: Vec<u8> = ids.iter().flat_map(|&id| bytes_of(id)).collect();
        assert_eq!(ext.codes, want.as_slice(), "list {l}");
        let want: Vec<[f32; 2]> = ids.iter().map(|&id| [id as f32, -0.5]).collect();
        assert_eq!(ext.factors, want.as_slice(), "list {l}");
    }

    let mut plain =
        SegmentWriter::create_with_codes(&files, "y.seg", meta, None, Some(spec(5, false)))
            .unwrap();
    let e = refusal(
        &mut plain,
        &v,
        row_code(&[1], [0.0; 4], Some((&[1; 13], [0.0; 2]))),
    );
    assert!(e.contains("without extended codes"), "{e}");
    plain
        .push_coded(
            ListId(0),
            1,
            &v,
            None,
            &[],
            Some(row_code(&[1], [0.0; 4], None)),
        )
        .unwrap();
    plain.finish().unwrap();
    let s = SegmentReader::open(&dir.path().join("y.seg")).unwrap();
    assert!(s.list_codes(ListId(0)).unwrap().extended.is_none());
}

/// The kernel's flags of this process's maps of `path`
/// (`/proc/self/smaps`' `VmFlags`), one string per map.
#[cfg(target_os = "linux")]
fn map_flags(path: &std::path::Path) -> Vec<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let name = path.display().to_string();
    let mut out = Vec::new();
    let mut ours = false;
    for line in smaps.lines() {
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            if ours {
                out.push(flags.trim().to_string());
            }
        } else if line.contains('-') && line.split_whitespace().count() >= 5 {
            ours = line.ends_with(&name);
        }
    }
    out
}

/// A segment with codes is opened with its vectors advised for random
/// reads (`rr`), one without is not; the advice can be taken back.
#[cfg(target_os = "linux")]
#[test]
fn coded_segments_advise_random_reads_of_their_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let files = vdb_fs::LocalDirectory::new(vdb_fs::os(), dir.path());
    let meta = SegmentMeta {
        id: SegmentId(3),
        generation: Generation(1),
        metric: Metric::L2,
        dim: 256,
        nlist: 2,
        with_payloads: false,
    };
    let v = vec![0.25f32; 256];
    let mut w =
        SegmentWriter::create_with_codes(&files, "c.seg", meta, None, Some(spec(4, true))).unwrap();
    let mut p = SegmentWriter::create_in(&files, "p.seg", meta).unwrap();
    for id in 0..40u64 {
        let list = ListId((id / 20) as u32);
        w.push_coded(
            list,
            id,
            &v,
            None,
            &[],
            Some(row_code(&[id; 4], [0.0; 4], Some((&[7; 256], [1.0, 2.0])))),
        )
        .unwrap();
        p.push(list, id, &v, None).unwrap();
    }
    w.finish().unwrap();
    p.finish().unwrap();
    let coded_path = dir.path().join("c.seg");
    let coded = SegmentReader::open(&coded_path).unwrap();
    let plain_path = dir.path().join("p.seg");
    let plain = SegmentReader::open(&plain_path).unwrap();
    let random = |path| {
        map_flags(path)
            .iter()
            .any(|f| f.split(' ').any(|x| x == "rr"))
    };
    assert!(!map_flags(&coded_path).is_empty());
    assert!(random(&coded_path), "{:?}", map_flags(&coded_path));
    assert!(!random(&plain_path), "{:?}", map_flags(&plain_path));
    coded.advise_random_vectors(false).unwrap();
    assert!(!random(&coded_path), "{:?}", map_flags(&coded_path));
    plain.advise_random_vectors(true).unwrap();
    assert!(random(&plain_path));
}
