//! Guards the rules of replay that docs/format.md states: an id repeated
//! in one upsert record means its later row; a log whose first record
//! after the manifest's `flushed_lsn` does not follow it has lost records,
//! and the collection is refused rather than opened without them.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::path::Path;

use vdb_engine::{CollectionConfig, Engine, Error, Row};

/// An upsert record's payload as the format specifies it (no payloads).
fn upsert_payload(rows: &[(u64, [f32; 2])]) -> Vec<u8> {
    let mut out = (rows.len() as u32).to_le_bytes().to_vec();
    for (id, v) in rows {
        out.extend_from_slice(&id.to_le_bytes());
        out.push(0);
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

fn wal_dir(data: &Path) -> std::path::PathBuf {
    data.join("collections").join("c").join("wal")
}

fn create(data: &Path) {
    let engine = Engine::open(data).unwrap();
    engine
        .create_collection("c", CollectionConfig::new(2))
        .unwrap();
    engine.close().unwrap();
}

#[test]
fn an_id_repeated_in_one_record_keeps_its_later_row() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path());
    let (wal, _, _) =
        vdb_wal::Wal::open(&wal_dir(dir.path()), vdb_wal::WalOptions::default()).unwrap();
    let payload = upsert_payload(&[(7, [1.0, 1.0]), (8, [2.0, 2.0]), (7, [3.0, 3.0])]);
    wal.append(vdb_wal::RecordKind::Upsert, &payload).unwrap();
    drop(wal);
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.collection("c").unwrap();
    assert_eq!(c.stats().rows, 2, "id 7 is one row");
    assert_eq!(c.get(7).unwrap().unwrap().vector, vec![3.0, 3.0]);
    let all = c
        .search(
            &[vec![0.0, 0.0]],
            vdb_engine::SearchOptions {
                k: 10,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(all[0].len(), 2, "the earlier row of 7 is hidden");
}

#[test]
fn a_log_that_does_not_follow_the_flushed_lsn_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path());
    {
        let engine = Engine::open(dir.path()).unwrap();
        let c = engine.collection("c").unwrap();
        for id in 0..3u64 {
            c.upsert(vec![Row {
                id,
                vector: vec![id as f32, 0.0],
                payload: None,
                fields: Default::default(),
            }])
            .unwrap();
        }
        // Dropped without a flush: LSNs 1..=3 are in the log only.
    }
    // Lose the first record: rewrite the log as a file that starts at
    // LSN 2 (header fields per docs/format.md).
    let wal = wal_dir(dir.path());
    let first = wal.join(vdb_wal::file_name(vdb_core::Lsn(1)));
    let bytes = std::fs::read(&first).unwrap();
    let record_len = 8 + u32::from_le_bytes(bytes[32..36].try_into().unwrap()) as usize;
    let mut rest = bytes[..32].to_vec();
    rest[16..24].copy_from_slice(&2u64.to_le_bytes());
    let crc = crc32fast::hash(&rest[..28]);
    rest[28..32].copy_from_slice(&crc.to_le_bytes());
    rest.extend_from_slice(&bytes[32 + record_len..]);
    std::fs::remove_file(&first).unwrap();
    std::fs::write(wal.join(vdb_wal::file_name(vdb_core::Lsn(2))), &rest).unwrap();

    let e = Engine::open(dir.path()).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("missing") && msg.contains("wal"), "{msg}");
    // Nothing was changed by the refusal.
    assert!(wal.join(vdb_wal::file_name(vdb_core::Lsn(2))).exists());
}
