//! Guards durability against a real `kill -9`: a child process writes
//! batches (upserts and deletes, with flushes and retrains in between) and
//! reports each acknowledged batch; the parent kills it at a random moment,
//! reopens the data directory, and checks that every acknowledged write is
//! there with its latest value and that nothing appears half-written.
//!
//! `VDB_CRASH_CYCLES` sets the number of kill/reopen cycles (default 30);
//! raise it for a soak run (see docs/durability.md).

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use vdb_engine::{CollectionConfig, Engine, Row};

const DIM: usize = 8;
const IDS: u64 = 300;

/// The vector written for `id` at `version`: every component says both, so
/// a half-written row cannot pass for a whole one.
fn vector(id: u64, version: u64) -> Vec<f32> {
    (0..DIM)
        .map(|j| (id * 1000 + version) as f32 + j as f32 * 0.25)
        .collect()
}

/// The child: writes forever, printing `TRY <op> <version> <ids…>` before
/// each write and `ACK <version>` once it is acknowledged. At most one write
/// is in flight when it dies; it may or may not have become durable.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os("VDB_CRASH_CHILD") else {
        return;
    };
    let start: u64 = std::env::var("VDB_CRASH_VERSION").unwrap().parse().unwrap();
    let engine = Engine::open(Path::new(&dir)).unwrap();
    let c = match engine.collection("crash") {
        Ok(c) => c,
        Err(_) => {
            let config = CollectionConfig {
                nlist: 4,
                min_rows_per_list: 10,
                flush_rows: 97,
                ..CollectionConfig::new(DIM)
            };
            engine.create_collection("crash", config).unwrap()
        }
    };
    let mut state = start.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for version in start.. {
        let n = 1 + rand() % 20;
        let ids: Vec<u64> = {
            let mut v: Vec<u64> = (0..n).map(|_| rand() % IDS).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
        if rand() % 5 == 0 {
            println!("TRY D {version} {list}");
            c.delete(&ids).unwrap();
        } else {
            println!("TRY U {version} {list}");
            let rows = ids
                .iter()
                .map(|&id| Row {
                    id,
                    vector: vector(id, version),
                    payload: Some(version.to_le_bytes().to_vec()),
                    fields: Default::default(),
                })
                .collect();
            c.upsert(rows).unwrap();
        }
        println!("ACK {version}");
        match rand() % 50 {
            0 => c.flush().unwrap(),
            1 => c.retrain(None).unwrap_or(()),
            2 => {
                c.compact().unwrap();
            }
            _ => {}
        }
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let cycles: u64 = std::env::var("VDB_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    // The model: id → (version, deleted) of the last acknowledged write.
    let mut model: BTreeMap<u64, (u64, bool)> = BTreeMap::new();
    let mut version = 1u64;
    let mut seed = 0x5EED_u64;
    for cycle in 0..cycles {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("VDB_CRASH_CHILD", dir.path())
            .env("VDB_CRASH_VERSION", version.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let run_for = Duration::from_millis(20 + seed % 200);
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.push(line);
            }
            lines
        });
        std::thread::sleep(run_for);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();

        // Acknowledged writes go into the model; the one write in flight
        // (tried, not acknowledged) may or may not have happened.
        let mut in_flight: Option<(bool, u64, Vec<u64>)> = None;
        for line in &lines {
            // The test harness may print its own words before ours.
            let Some(at) = line.find("TRY ").or_else(|| line.find("ACK ")) else {
                continue;
            };
            let mut parts = line[at..].split(' ');
            match parts.next() {
                Some("TRY") => {
                    let (Some(op), Some(v)) =
                        (parts.next(), parts.next().and_then(|v| v.parse().ok()))
                    else {
                        continue;
                    };
                    let ids: Vec<u64> = parts.filter_map(|p| p.parse().ok()).collect();
                    in_flight = Some((op == "D", v, ids));
                }
                Some("ACK") => {
                    // A line cut short by the kill does not acknowledge.
                    let v: Option<u64> = parts.next().and_then(|v| v.parse().ok());
                    if in_flight.as_ref().map(|f| f.1) == v
                        && let Some((deleted, tv, ids)) = in_flight.take()
                    {
                        for id in ids {
                            model.insert(id, (tv, deleted));
                        }
                        version = version.max(tv + 1);
                    }
                }
                _ => {}
            }
        }
        if let Some((_, tv, _)) = &in_flight {
            version = version.max(tv + 1);
        }

        let engine = Engine::open(dir.path()).unwrap();
        let Ok(c) = engine.collection("crash") else {
            assert!(
                model.is_empty(),
                "cycle {cycle}: acknowledged writes but no collection"
            );
            continue;
        };
        assert_eq!(
            c.stats().rows as usize,
            (0..IDS).filter(|id| c.get(*id).unwrap().is_some()).count()
        );
        for id in 0..IDS {
            let got = c.get(id).unwrap().map(|row| {
                let v = u64::from_le_bytes(row.payload.clone().unwrap().try_into().unwrap());
                assert_eq!(
                    row.vector,
                    vector(id, v),
                    "cycle {cycle}: id {id} is half-written"
                );
                v
            });
            let want = match model.get(&id) {
                Some(&(v, false)) => Some(v),
                _ => None,
            };
            let maybe = in_flight
                .as_ref()
                .filter(|(_, _, ids)| ids.contains(&id))
                .map(|(deleted, v, _)| (!deleted).then_some(*v));
            let ok = got == want || maybe == Some(got);
            assert!(
                ok,
                "cycle {cycle}: id {id} is {got:?}; acknowledged state {want:?}, in-flight write {maybe:?}"
            );
            // What is on disk now is the truth for the next cycle.
            model.insert(id, (got.unwrap_or(0), got.is_none()));
        }
        drop(c);
        drop(engine);
    }
}
