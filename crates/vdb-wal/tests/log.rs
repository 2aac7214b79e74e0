//! Guards the log's contract: what was appended comes back in order after a
//! reopen, across rotations and truncations; LSNs never go backwards; group
//! commit loses nothing under concurrency; the interval mode syncs by itself.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use vdb_wal::{Lsn, RecordKind, SyncMode, Wal, WalOptions};

fn payload(i: u64) -> Vec<u8> {
    format!("record {i} ")
        .repeat((i % 7) as usize + 1)
        .into_bytes()
}

/// The bytes of the log's files as the file system has them.
fn on_disk(wal: &Wal) -> u64 {
    wal.files()
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum()
}

#[test]
fn records_come_back_in_order_across_reopen_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        file_bytes: 300,
        ..WalOptions::default()
    };
    let (wal, records, report) = Wal::open(dir.path(), opts).unwrap();
    assert!(records.is_empty());
    assert_eq!(report.truncated_bytes, 0);
    for i in 1..=40u64 {
        let kind = [RecordKind::Upsert, RecordKind::Delete, RecordKind::Event][(i % 3) as usize];
        assert_eq!(wal.append(kind, &payload(i)).unwrap(), Lsn(i));
    }
    let last = wal
        .append_batch(&[(RecordKind::Upsert, b"a"), (RecordKind::Delete, b"")])
        .unwrap();
    assert_eq!(last, Lsn(42));
    assert!(wal.stats().rotations > 3, "{:?}", wal.stats());
    assert!(wal.files().len() > 3);
    assert_eq!(wal.disk_bytes(), on_disk(&wal), "across rotations");
    wal.close().unwrap();

    let (wal, records, report) = Wal::open(dir.path(), opts).unwrap();
    assert_eq!(records.len(), 42);
    assert_eq!(report.records, 42);
    for (i, r) in records.iter().take(40).enumerate() {
        let i = i as u64 + 1;
        assert_eq!(r.lsn, Lsn(i));
        assert_eq!(r.payload, payload(i));
    }
    assert_eq!(records[41].kind, RecordKind::Delete);
    assert_eq!(wal.next_lsn(), Lsn(43));
    assert_eq!(wal.disk_bytes(), on_disk(&wal), "after reopening");

    // Truncation removes whole files below the LSN, never the active one.
    let files_before = wal.files();
    let removed = wal.truncate_through(Lsn(20)).unwrap();
    assert!(removed > 0);
    let files_after = wal.files();
    assert_eq!(files_after.len(), files_before.len() - removed);
    for f in &files_before[..removed] {
        assert!(!f.exists());
    }
    assert_eq!(wal.disk_bytes(), on_disk(&wal), "after a truncation");
    let removed_all = wal.truncate_through(Lsn(1000)).unwrap();
    assert_eq!(wal.files().len(), 1, "the active file stays");
    assert!(removed_all > 0);

    // An explicit rotation lets everything written so far be truncated.
    wal.append(RecordKind::Event, b"before rotation").unwrap();
    let before = wal.files().len();
    wal.rotate().unwrap();
    assert_eq!(wal.files().len(), before + 1);
    wal.rotate().unwrap();
    assert_eq!(
        wal.files().len(),
        before + 1,
        "an empty active file is not rotated again"
    );
    assert_eq!(wal.disk_bytes(), on_disk(&wal), "after explicit rotations");
    assert_eq!(wal.truncate_through(Lsn(43)).unwrap(), before);
    assert_eq!(wal.disk_bytes(), on_disk(&wal), "only the active file");
    drop(wal);

    // LSNs continue after everything older was truncated.
    let (wal, records, _) = Wal::open(dir.path(), opts).unwrap();
    assert!(records.is_empty());
    assert_eq!(wal.next_lsn(), Lsn(44));
    drop(wal);
    let (wal, records, _) = Wal::open(dir.path(), opts).unwrap();
    assert!(records.iter().all(|r| r.lsn.0 > 20));
    assert_eq!(wal.next_lsn(), Lsn(44));
    assert_eq!(wal.append(RecordKind::Event, b"after").unwrap(), Lsn(44));
}

#[test]
fn group_commit_loses_nothing_and_shares_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let wal = Arc::new(wal);
    let threads = 8;
    let per_thread = 100u64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|i| {
                        let p = format!("{t}:{i}");
                        let lsn = wal.append(RecordKind::Upsert, p.as_bytes()).unwrap();
                        assert!(wal.synced_lsn() >= lsn, "acknowledged before its fsync");
                        (lsn, p)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acked: Vec<(Lsn, String)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    acked.sort();
    let total = threads * per_thread;
    assert_eq!(acked.len() as u64, total);
    assert!(
        acked
            .iter()
            .enumerate()
            .all(|(i, (lsn, _))| lsn.0 == i as u64 + 1),
        "LSNs are 1..=n without gaps"
    );
    let stats = wal.stats();
    assert!(
        stats.syncs >= 1 && stats.syncs <= stats.appends,
        "{stats:?}"
    );
    eprintln!(
        "group commit: {} appends, {} fsyncs",
        stats.appends, stats.syncs
    );
    drop(wal);
    let (_, records, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let back: Vec<(Lsn, String)> = records
        .into_iter()
        .map(|r| (r.lsn, String::from_utf8(r.payload).unwrap()))
        .collect();
    assert_eq!(back, acked);
}

#[test]
fn interval_mode_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        sync: SyncMode::Interval(Duration::from_millis(20)),
        ..WalOptions::default()
    };
    let (wal, _, _) = Wal::open(dir.path(), opts).unwrap();
    let lsn = wal.append(RecordKind::Upsert, b"x").unwrap();
    let start = Instant::now();
    while wal.synced_lsn() < lsn {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the flusher never synced"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let never = WalOptions {
        sync: SyncMode::Never,
        ..WalOptions::default()
    };
    drop(wal);
    let (wal, records, _) = Wal::open(dir.path(), never).unwrap();
    assert_eq!(records.len(), 1);
    let lsn = wal.append(RecordKind::Upsert, b"y").unwrap();
    assert!(wal.synced_lsn() < lsn);
    assert_eq!(wal.sync().unwrap(), lsn);
    assert_eq!(wal.synced_lsn(), lsn);
}

#[test]
fn sync_modes_parse_and_oversized_records_are_refused() {
    assert_eq!("always".parse::<SyncMode>(), Ok(SyncMode::Always));
    assert_eq!("none".parse::<SyncMode>(), Ok(SyncMode::Never));
    assert_eq!(
        "interval:250ms".parse::<SyncMode>(),
        Ok(SyncMode::Interval(Duration::from_millis(250)))
    );
    assert_eq!("object".parse::<SyncMode>(), Ok(SyncMode::Object));
    for m in [
        SyncMode::Always,
        SyncMode::Never,
        SyncMode::Interval(Duration::from_millis(250)),
        SyncMode::Object,
    ] {
        assert_eq!(m.to_string().parse::<SyncMode>(), Ok(m));
    }
    assert!("interval:0ms".parse::<SyncMode>().is_err());
    assert!("sometimes".parse::<SyncMode>().is_err());
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let big = vec![0u8; vdb_wal::MAX_PAYLOAD + 1];
    assert!(matches!(
        wal.append(RecordKind::Upsert, &big),
        Err(vdb_wal::Error::TooLarge { .. })
    ));
    assert_eq!(
        wal.append(RecordKind::Upsert, b"ok").unwrap(),
        Lsn(1),
        "a refused record takes no LSN"
    );
}

#[test]
fn a_new_log_starts_at_the_first_lsn_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions {
        first_lsn: Lsn(41),
        ..WalOptions::default()
    };
    let (wal, records, _) = Wal::open(dir.path(), opts).unwrap();
    assert!(records.is_empty());
    assert_eq!(wal.append(RecordKind::Upsert, b"a").unwrap(), Lsn(41));
    drop(wal);
    // An existing log keeps its own numbering.
    let (wal, records, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(wal.append(RecordKind::Upsert, b"b").unwrap(), Lsn(42));
}
