//! Guards recovery from crashes in the middle of an append: a log cut at
//! every byte offset of its last records, or followed by zeros or garbage,
//! opens with exactly the complete records; damage followed by intact
//! records is refused with the file and offset.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::path::{Path, PathBuf};

use vdb_wal::{Lsn, RecordKind, Recovery, Wal, WalOptions};

/// A log of `n` records in one file; returns the file and the end offset of
/// every record.
fn write_log(dir: &Path, n: u64) -> (PathBuf, Vec<u64>) {
    let (wal, _, _) = Wal::open(dir, WalOptions::default()).unwrap();
    let mut ends = Vec::new();
    for i in 1..=n {
        wal.append(RecordKind::Upsert, format!("payload number {i}").as_bytes())
            .unwrap();
        ends.push(std::fs::metadata(&wal.files()[0]).unwrap().len());
    }
    let file = wal.files()[0].clone();
    wal.close().unwrap();
    (file, ends)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_cut_at_every_offset_of_the_last_records_keeps_exactly_the_complete_ones() {
    let src = tempfile::tempdir().unwrap();
    let (file, ends) = write_log(src.path(), 6);
    let full = std::fs::read(&file).unwrap();
    let from = ends[2] as usize; // cut anywhere in the last three records
    for cut in from..full.len() {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let f = dir.path().join(file.file_name().unwrap());
        std::fs::write(&f, &full[..cut]).unwrap();
        let complete = ends.iter().filter(|&&e| e as usize <= cut).count();
        let (wal, records, report) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert_eq!(records.len(), complete, "cut at {cut}");
        assert_eq!(
            report.truncated_bytes as usize,
            cut - ends[complete - 1] as usize,
            "cut at {cut}"
        );
        // The torn bytes are gone from disk and the log continues after them.
        assert_eq!(std::fs::metadata(&f).unwrap().len(), ends[complete - 1]);
        assert_eq!(
            wal.append(RecordKind::Event, b"next").unwrap(),
            Lsn(complete as u64 + 1)
        );
        drop(wal);
        let (_, again, report) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert_eq!(again.len(), complete + 1);
        assert_eq!(report.truncated_bytes, 0);
    }
}

#[test]
fn zero_and_garbage_tails_are_cut_off() {
    for tail in [
        vec![0u8; 4096],
        (0..3000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = write_log(dir.path(), 5);
        let mut bytes = std::fs::read(&file).unwrap();
        let len = bytes.len();
        bytes.extend_from_slice(&tail);
        std::fs::write(&file, &bytes).unwrap();
        let (_, records, report) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert_eq!(records.len(), 5);
        assert_eq!(report.truncated_bytes as usize, tail.len());
        let why = report.truncated.unwrap();
        assert!(
            why.contains(&file.display().to_string()) && why.contains(&format!("offset {len}")),
            "{why}"
        );
    }
}

#[test]
fn damage_followed_by_intact_records_is_refused_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (file, ends) = write_log(dir.path(), 8);
    let mut bytes = std::fs::read(&file).unwrap();
    let at = ends[2] as usize; // start of record 4
    bytes[at + 12] ^= 0xFF;
    std::fs::write(&file, &bytes).unwrap();
    let err = Wal::open(dir.path(), WalOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("offset {at}")), "{msg}");
    assert!(msg.contains("not a torn tail"), "{msg}");
    // Nothing was changed by the refusal.
    assert_eq!(std::fs::read(&file).unwrap(), bytes);

    // The operator may choose to drop everything from the damage on.
    let opts = WalOptions {
        recovery: Recovery::DropCorruptTail,
        ..WalOptions::default()
    };
    let (_, records, report) = Wal::open(dir.path(), opts).unwrap();
    assert_eq!(records.len(), 3);
    assert!(report.truncated_bytes > 0);
}

#[test]
fn damage_in_an_older_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        file_bytes: 200,
        ..WalOptions::default()
    };
    let (wal, _, _) = Wal::open(dir.path(), opts).unwrap();
    for i in 0..30u32 {
        wal.append(RecordKind::Upsert, &i.to_le_bytes()).unwrap();
    }
    let first = wal.files()[0].clone();
    drop(wal);
    let mut bytes = std::fs::read(&first).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&first, &bytes).unwrap();
    let err = Wal::open(dir.path(), opts).unwrap_err();
    assert!(
        err.to_string().contains(&first.display().to_string()),
        "{err}"
    );

    // A missing middle file is a gap, also refused.
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = Wal::open(dir.path(), opts).unwrap();
    for i in 0..30u32 {
        wal.append(RecordKind::Upsert, &i.to_le_bytes()).unwrap();
    }
    let files = wal.files();
    drop(wal);
    std::fs::remove_file(&files[1]).unwrap();
    let err = Wal::open(dir.path(), opts).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn a_file_torn_during_creation_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3);
    let torn = dir.path().join(vdb_wal::file_name(Lsn(4)));
    std::fs::write(&torn, b"VDBWAL").unwrap();
    let (wal, records, report) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(report.removed_files, vec![torn.clone()]);
    assert!(!torn.exists());
    assert_eq!(wal.append(RecordKind::Event, b"x").unwrap(), Lsn(4));
}
