//! A real Prometheus scrapes a real `vdbd`: the server's `/metrics` is
//! what Prometheus itself accepts (not only what a parser does), and the
//! values it stores are the requests the test made.
//!
//! Prometheus is `VDB_PROMETHEUS` or `prometheus` on the PATH (Debian's
//! `prometheus` package; CI installs it). Without one the test is skipped,
//! unless `VDB_REQUIRE_PROMETHEUS=1` (CI sets it), which makes it fail.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use vdb_proto::v1 as pb;

/// The Prometheus binary, if there is one.
fn prometheus() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("VDB_PROMETHEUS") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("prometheus"))
            .find(|p| p.is_file())
    })
}

/// A running Prometheus; killed when dropped.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The body of `GET path` from `addr` if it answers 200.
fn get(addr: &str, path: &str) -> Option<String> {
    let (status, _, body) = common::http(addr, "GET", path)?;
    (status == 200).then_some(body)
}

/// The value of the one series an instant query returns, if it returns
/// one.
fn query(addr: &str, promql: &str) -> Option<f64> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = get(addr, &format!("/api/v1/query?query={encoded}"))?;
    // Prometheus answers chunked; the JSON object is the line starting
    // with '{'.
    let json = body.lines().find(|l| l.starts_with('{'))?;
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    match v["data"]["result"].as_array()?.as_slice() {
        [one] => one["value"][1].as_str()?.parse().ok(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_what_the_server_did() {
    let Some(binary) = prometheus() else {
        assert!(
            std::env::var("VDB_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
            "VDB_REQUIRE_PROMETHEUS=1 but no prometheus: set VDB_PROMETHEUS or put it on the PATH"
        );
        eprintln!("skipped: no prometheus (set VDB_PROMETHEUS or VDB_REQUIRE_PROMETHEUS=1)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("vdb"),
        &["--metrics-listen", "127.0.0.1:0"],
    );
    let target = server.metrics.clone().unwrap();

    let mut c = server.client().await;
    c.create_collection(pb::CreateCollectionRequest {
        name: "scraped".into(),
        config: Some(pb::CollectionConfig {
            dim: 4,
            ..Default::default()
        }),
        centroids: None,
    })
    .await
    .unwrap();
    c.upsert(pb::UpsertRequest {
        collection: "scraped".into(),
        rows: (0..50u64)
            .map(|id| pb::Row {
                id,
                vector: vec![id as f32, 1.0, 2.0, 3.0],
                ..Default::default()
            })
            .collect(),
    })
    .await
    .unwrap();
    for _ in 0..3 {
        c.search(pb::SearchRequest {
            collection: "scraped".into(),
            queries: vec![pb::Vector {
                values: vec![7.0, 1.0, 2.0, 3.0],
            }],
            k: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    }

    // A free port for Prometheus's own listener.
    let web = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: vdb\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = Prometheus(
        Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    // Until Prometheus has scraped the target successfully and stored the
    // searches (bounded: 60 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut up, mut searches) = (None, None);
    while Instant::now() < deadline {
        up = query(&web, "up{job=\"vdb\"}");
        searches = query(&web, "vdb_requests_total{rpc=\"Search\",code=\"OK\"}");
        if up == Some(1.0) && searches.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    assert_eq!(
        up,
        Some(1.0),
        "Prometheus did not scrape vdbd; its log:\n{log}"
    );
    assert_eq!(searches, Some(3.0), "its log:\n{log}");
    assert_eq!(
        query(&web, "vdb_collection_rows{collection=\"scraped\"}"),
        Some(50.0)
    );
    assert_eq!(
        query(
            &web,
            "vdb_rows_written_total{collection=\"scraped\",op=\"upsert\"}"
        ),
        Some(50.0)
    );
    // The histogram is one Prometheus can compute quantiles from.
    let p99 = query(
        &web,
        "histogram_quantile(0.99, sum by (le) (vdb_request_duration_seconds_bucket{rpc=\"Search\"}))",
    );
    assert!(p99.is_some_and(|s| s > 0.0 && s <= 30.0), "{p99:?}");
    server.stop();
}
