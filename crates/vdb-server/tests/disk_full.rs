//! Guards a full disk as an expected condition, on a real one: `vdbd` over
//! a small tmpfs mount. The write that finds the disk full and every write
//! after it get `FAILED_PRECONDITION` naming the file; reads keep working;
//! SIGTERM then exits 3 with one line and no backtrace; every acknowledged
//! row is there when the data directory is opened again with room.
//!
//! Mounting needs root: without it the test says so and passes, unless
//! `VDB_REQUIRE_TMPFS=1` (set by CI) makes that a failure.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Server;
use tonic::Code;
use vdb_proto::v1 as pb;

/// A tmpfs mounted on a temporary directory; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

const DIM: usize = 256;

fn row(id: u64) -> pb::Row {
    pb::Row {
        id,
        vector: (0..DIM).map(|i| (id as f32) + i as f32 / 1000.0).collect(),
        payload: Some(format!("row {id}").into_bytes()),
        fields: Default::default(),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_writes_cleanly_and_loses_nothing_acknowledged() {
    let Some(fs) = Tmpfs::mount(6 << 20) else {
        assert!(
            std::env::var_os("VDB_REQUIRE_TMPFS").is_none(),
            "VDB_REQUIRE_TMPFS is set but a tmpfs could not be mounted (run as root)"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let data: PathBuf = fs.path().join("data");
    let server = Server::start_capturing(&data, &[], &[("RUST_BACKTRACE", "1")]);
    let mut c = server.client().await;
    c.create_collection(pb::CreateCollectionRequest {
        name: "full".into(),
        config: Some(pb::CollectionConfig {
            dim: DIM as u32,
            flush_rows: Some(1_000_000),
            ..Default::default()
        }),
        centroids: None,
    })
    .await
    .unwrap();

    // Write 100-row batches (about 100 KiB each) until the disk is full.
    let mut acknowledged = 0u64;
    let first_error = loop {
        let rows = (acknowledged..acknowledged + 100).map(row).collect();
        match c
            .upsert(pb::UpsertRequest {
                collection: "full".into(),
                rows,
            })
            .await
        {
            Ok(_) => acknowledged += 100,
            Err(e) => break e,
        }
        assert!(acknowledged < 100_000, "a 6 MiB disk never filled");
    };
    assert!(acknowledged > 0);
    let e = &first_error;
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains(".log"),
        "names the file: {}",
        e.message()
    );
    assert!(
        e.message().to_lowercase().contains("space"),
        "says the disk is full: {}",
        e.message()
    );
    // Every later write gets the same answer.
    let again = c
        .upsert(pb::UpsertRequest {
            collection: "full".into(),
            rows: vec![row(999_999)],
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    // Reads keep working.
    let got = c
        .get(pb::GetRequest {
            collection: "full".into(),
            ids: vec![0, acknowledged - 1],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.rows.len(), 2);
    drop(c);

    // SIGTERM: the collection cannot be flushed; one line, exit 3.
    let child = server.take_child();
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr: {stderr}");
    assert!(
        !stderr.contains("backtrace") && !stderr.contains("panicked"),
        "{stderr}"
    );
    let last: Vec<&str> = stderr.lines().filter(|l| l.starts_with("vdbd: ")).collect();
    assert_eq!(last.len(), 1, "{stderr}");
    assert!(
        last[0].contains("full"),
        "names the collection: {}",
        last[0]
    );

    // With room again, every acknowledged row is there.
    let roomy = tempfile::tempdir().unwrap();
    copy_dir(&data, roomy.path());
    drop(fs);
    let server = Server::start(roomy.path(), &[]);
    let mut c = server.client().await;
    let ids: Vec<u64> = (0..acknowledged).collect();
    for chunk in ids.chunks(1_000) {
        let got = c
            .get(pb::GetRequest {
                collection: "full".into(),
                ids: chunk.to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            got.missing.is_empty(),
            "lost {:?}",
            &got.missing[..got.missing.len().min(5)]
        );
        for r in got.rows {
            assert_eq!(r.vector, row(r.id).vector);
        }
    }
    server.stop();
}
