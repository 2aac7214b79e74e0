//! The `object` sync mode: appends are acknowledged once shipped as a
//! chunk, concurrent appenders share chunks, the chunks read back in order,
//! truncation keeps the chain's last chunk, and a refused shipment stops
//! the log with its cause. The chunk store here is a map in memory (the
//! log's side of the contract); the object store behind it is tested in
//! `vdb-objstore` against a real S3-compatible server.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use vdb_wal::{Lsn, RecordKind, SyncMode, Wal, WalOptions};

/// Chunks in memory, created once each; `refuse_from` makes every chunk
/// from that LSN on already taken (another writer's); a closed `gate`
/// holds each shipment until it is opened.
#[derive(Debug, Default)]
struct Chunks {
    map: Mutex<BTreeMap<u64, Vec<u8>>>,
    refuse_from: Mutex<Option<u64>>,
    gate: Gate,
}

/// Shipments waiting (`held`) while `closed`.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<(bool, usize)>,
    cond: Condvar,
}

impl Gate {
    fn close(&self) {
        self.state.lock().unwrap().0 = true;
    }
    fn open(&self) {
        self.state.lock().unwrap().0 = false;
        self.cond.notify_all();
    }
    fn pass(&self) {
        let mut st = self.state.lock().unwrap();
        st.1 += 1;
        self.cond.notify_all();
        while st.0 {
            st = self.cond.wait(st).unwrap();
        }
        st.1 -= 1;
    }
    /// Waits (boundedly) until a shipment is held at the gate.
    fn wait_held(&self) {
        let st = self.state.lock().unwrap();
        let (st, timeout) = self
            .cond
            .wait_timeout_while(st, Duration::from_secs(30), |st| st.1 == 0)
            .unwrap();
        assert!(
            !timeout.timed_out() && st.1 > 0,
            "no shipment reached the gate"
        );
    }
}

impl vdb_fs::LogStore for Chunks {
    fn put(&self, first: u64, bytes: &[u8]) -> vdb_fs::Result<()> {
        self.gate.pass();
        let taken = self.refuse_from.lock().unwrap().is_some_and(|f| first >= f);
        let mut map = self.map.lock().unwrap();
        if taken || map.contains_key(&first) {
            let fenced = vdb_fs::Fenced {
                location: "memory".into(),
                what: "log chunk",
                number: first,
            };
            return Err(fenced.into_error("ship", std::path::Path::new("memory")));
        }
        map.insert(first, bytes.to_vec());
        Ok(())
    }
    fn list(&self) -> vdb_fs::Result<Vec<u64>> {
        Ok(self.map.lock().unwrap().keys().copied().collect())
    }
    fn get(&self, first: u64) -> vdb_fs::Result<Vec<u8>> {
        Ok(self.map.lock().unwrap()[&first].clone())
    }
    fn remove(&self, firsts: &[u64]) -> vdb_fs::Result<()> {
        let mut map = self.map.lock().unwrap();
        for f in firsts {
            map.remove(f);
        }
        Ok(())
    }
    fn location(&self, first: u64) -> String {
        format!("memory/{first}")
    }
}

/// Every record of every chunk, in order, checking the chain is unbroken.
fn shipped(chunks: &Chunks) -> Vec<(Lsn, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next: Option<Lsn> = None;
    for (first, bytes) in chunks.map.lock().unwrap().iter() {
        let (f, records) = vdb_wal::read_chunk(bytes, "memory").unwrap();
        assert_eq!(f.0, *first);
        if let Some(n) = next {
            assert_eq!(f, n, "the chain breaks at {first}");
        }
        for r in &records {
            out.push((r.lsn, r.payload.clone()));
        }
        next = Some(Lsn(f.0 + records.len() as u64));
    }
    out
}

fn object() -> WalOptions {
    WalOptions {
        sync: SyncMode::Object,
        ..WalOptions::default()
    }
}

#[test]
fn appends_are_shipped_before_they_return() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = Arc::new(Chunks::default());
    let opts = WalOptions {
        first_lsn: Lsn(10),
        ..object()
    };
    let (wal, records, _) =
        Wal::open_shipping(vdb_fs::os(), dir.path(), opts, Arc::clone(&chunks) as _).unwrap();
    assert!(records.is_empty());
    assert_eq!(wal.append(RecordKind::Upsert, b"a").unwrap(), Lsn(10));
    assert_eq!(shipped(&chunks), vec![(Lsn(10), b"a".to_vec())]);
    wal.append_batch(&[(RecordKind::Upsert, b"b"), (RecordKind::Delete, b"c")])
        .unwrap();
    assert_eq!(shipped(&chunks).len(), 3);
    assert_eq!(wal.synced_lsn(), Lsn(12));
    let stats = wal.stats();
    assert_eq!(stats.syncs, 2);
    assert!(stats.shipped_bytes > 0);
    // Nothing of it is kept locally but an empty file's header.
    let local: u64 = wal
        .files()
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(local, 32);

    // Truncation drops chunks whose records are all flushed, but keeps the
    // last one, which ends the chain.
    wal.append(RecordKind::Upsert, b"d").unwrap();
    assert_eq!(chunks.list_firsts(), vec![10, 11, 13]);
    wal.truncate_through(Lsn(12)).unwrap();
    assert_eq!(chunks.list_firsts(), vec![13]);
    wal.truncate_through(Lsn(13)).unwrap();
    assert_eq!(chunks.list_firsts(), vec![13]);
    wal.close().unwrap();
}

impl Chunks {
    fn list_firsts(&self) -> Vec<u64> {
        self.map.lock().unwrap().keys().copied().collect()
    }
}

#[test]
fn concurrent_appenders_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = Arc::new(Chunks::default());
    let (wal, _, _) =
        Wal::open_shipping(vdb_fs::os(), dir.path(), object(), Arc::clone(&chunks) as _).unwrap();
    let wal = Arc::new(wal);
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                (0..100u64)
                    .map(|i| {
                        let p = format!("{t}:{i}");
                        (wal.append(RecordKind::Upsert, p.as_bytes()).unwrap(), p)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acked: Vec<(Lsn, Vec<u8>)> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .map(|(l, p)| (l, p.into_bytes()))
        .collect();
    acked.sort();
    assert_eq!(acked.len(), 800);
    assert_eq!(shipped(&chunks), acked);
}

/// Appends made while a shipment is under way go out together in the next
/// chunk. The first shipment is held at the gate until seven more appends
/// are queued, so the outcome does not depend on scheduling: two chunks.
#[test]
fn appends_queued_behind_a_shipment_share_the_next_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = Arc::new(Chunks::default());
    let (wal, _, _) =
        Wal::open_shipping(vdb_fs::os(), dir.path(), object(), Arc::clone(&chunks) as _).unwrap();
    let wal = Arc::new(wal);
    chunks.gate.close();
    let spawn = |p: String| {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || wal.append(RecordKind::Upsert, p.as_bytes()).unwrap())
    };
    let mut handles = vec![spawn("leader".into())];
    chunks.gate.wait_held();
    handles.extend((0..7).map(|i| spawn(format!("queued {i}"))));
    let deadline = Instant::now() + Duration::from_secs(30);
    while wal.stats().appends < 8 {
        assert!(Instant::now() < deadline, "the appends were not queued");
        std::thread::sleep(Duration::from_millis(1));
    }
    chunks.gate.open();
    let mut lsns: Vec<Lsn> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    lsns.sort();
    assert_eq!(lsns, (1..=8).map(Lsn).collect::<Vec<_>>());
    assert_eq!(
        chunks.list_firsts(),
        vec![1, 2],
        "one chunk for the seven queued"
    );
    assert_eq!(wal.stats().syncs, 2);
    assert_eq!(shipped(&chunks).len(), 8);
}

#[test]
fn a_refused_chunk_stops_the_log_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = Arc::new(Chunks::default());
    let (wal, _, _) =
        Wal::open_shipping(vdb_fs::os(), dir.path(), object(), Arc::clone(&chunks) as _).unwrap();
    wal.append(RecordKind::Upsert, b"mine").unwrap();
    // Another writer takes the next chunk.
    *chunks.refuse_from.lock().unwrap() = Some(2);
    let e = wal.append(RecordKind::Upsert, b"lost").unwrap_err();
    assert!(vdb_fs::Fenced::is_in(&e), "{e}");
    // Every later append gets the same cause, and is not shipped.
    *chunks.refuse_from.lock().unwrap() = None;
    let e = wal.append(RecordKind::Upsert, b"later").unwrap_err();
    assert!(vdb_fs::Fenced::is_in(&e), "{e}");
    assert!(matches!(e, vdb_wal::Error::Poisoned { .. }));
    assert_eq!(shipped(&chunks), vec![(Lsn(1), b"mine".to_vec())]);
}

#[test]
fn the_object_mode_needs_somewhere_to_ship() {
    let dir = tempfile::tempdir().unwrap();
    let e = Wal::open(dir.path(), object()).unwrap_err();
    assert!(matches!(e, vdb_wal::Error::NoLogStore { .. }), "{e}");
    assert!(e.to_string().contains("object"), "{e}");
}
