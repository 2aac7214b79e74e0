//! Guards durability against power loss, not just `kill -9`: the engine runs
//! on a simulated disk (`SimFs`) that forgets every byte not fsynced and
//! every directory entry whose directory was not fsynced. Each cycle crashes
//! the disk at a random operation — during writes, flushes, compactions or
//! retrainings — drops what a power cut would drop (keeping random torn
//! prefixes of unsynced appends), reopens, and checks that the collection
//! holds exactly the acknowledged writes, in order: every acknowledged one,
//! plus at most the one write in flight, never anything half-applied.
//!
//! `VDB_POWER_CYCLES` sets the number of cycles (default 40); raise it for a
//! soak run (see docs/durability.md).

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

mod common;

use common::{Model, Workload, apply, config, holds, leaked_files, perform};
use vdb_fs::{Fault, SimFs};

fn cycles() -> u64 {
    std::env::var("VDB_POWER_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

#[test]
fn acknowledged_writes_survive_power_loss_at_any_operation() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimFs::new(dir.path()).unwrap();
    let mut model = Model::new();
    let mut crashes = 0;
    for cycle in 0..cycles() {
        sim.set_torn_tails(true, cycle);
        let engine = common::open_on(dir.path(), &sim).unwrap();
        let c = match engine.collection("power") {
            Ok(c) => c,
            Err(_) => engine.create_collection("power", config()).unwrap(),
        };
        holds(&c, &model).unwrap_or_else(|e| panic!("cycle {cycle}, after reopen: {e}"));

        let mut w = Workload::new(cycle + 1);
        // Crash somewhere in the next few hundred disk operations.
        let crash_at = w.rand() % 400;
        sim.set_fault(Some(Fault::CrashAt(crash_at)));
        let mut in_flight = None;
        for _ in 0..300 {
            let (version, op) = w.next_op();
            let maintenance = match w.rand() % 40 {
                0 => c.compact().map(|_| ()),
                1 => c.retrain(None).or_else(|e| match e {
                    vdb_engine::Error::InvalidArgument { .. } => Ok(()),
                    e => Err(e),
                }),
                _ => Ok(()),
            };
            if maintenance.is_err() {
                break;
            }
            match perform(&c, version, &op) {
                Ok(()) => apply(&mut model, version, &op),
                Err(_) => {
                    in_flight = Some((version, op));
                    break;
                }
            }
        }
        if sim.fault_hit() {
            crashes += 1;
        }
        sim.halt();
        drop(c);
        drop(engine);
        sim.power_loss().unwrap();

        // The state is the acknowledged prefix, or that plus the write that
        // was in flight.
        let engine = common::open_on(dir.path(), &sim).unwrap();
        let c = engine.collection("power").unwrap();
        if let Err(without) = holds(&c, &model) {
            let (version, op) = in_flight
                .clone()
                .unwrap_or_else(|| panic!("cycle {cycle}: {without}, and no write was in flight"));
            let mut with = model.clone();
            apply(&mut with, version, &op);
            holds(&c, &with).unwrap_or_else(|e| {
                panic!("cycle {cycle}: neither the acknowledged state ({without}) nor it plus the write in flight ({e})")
            });
            model = with;
        }
        let leaked = leaked_files(&dir.path().join("collections/power"));
        assert!(
            leaked.is_empty(),
            "cycle {cycle}: files left behind: {leaked:?}"
        );
        drop(c);
        engine.close().unwrap();
    }
    assert!(crashes * 2 >= cycles(), "only {crashes} cycles crashed");
}
