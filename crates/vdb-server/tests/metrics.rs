//! The Prometheus endpoint of a real `vdbd` (`--metrics-listen`): scraped
//! over HTTP while requests run, parsed with a Prometheus text-format
//! parser, and checked against what the test itself did — requests by
//! method and status code (unary errors, a streamed response, refusals
//! by the concurrency limit), latency histograms, and each collection's
//! gauges before and after a flush and a drop.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

mod common;

use common::Server;
use prometheus_parse::{Sample, Scrape, Value};
use tonic::Code;
use vdb_proto::v1 as pb;

const DIM: usize = 16;

fn vector(id: u64) -> Vec<f32> {
    let mut s = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..DIM)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// One HTTP/1.1 request to `addr`: (status, content type, body).
fn http(addr: &str, method: &str, path: &str) -> (u16, String, String) {
    common::http(addr, method, path).unwrap_or_else(|| panic!("no HTTP answer from {addr}"))
}

/// A scrape of `addr`, parsed.
fn scrape(addr: &str) -> Scrape {
    let (status, content_type, body) = http(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The samples of `metric` whose labels include every pair of `labels`.
fn samples<'a>(s: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    s.samples
        .iter()
        .filter(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .collect()
}

/// The value of the one sample of a counter or gauge (0 when absent: a
/// counter of labels never seen is not exported).
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match samples(s, metric, labels).as_slice() {
        [] => 0.0,
        [one] => match one.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{metric}: not a single value: {other:?}"),
        },
        many => panic!("{metric} {labels:?}: {} samples", many.len()),
    }
}

/// The observation count of a histogram.
fn histogram_count(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> u64 {
    match samples(s, metric, labels).as_slice() {
        [one] => match &one.value {
            Value::Histogram(buckets) => {
                let inf = buckets
                    .iter()
                    .find(|b| b.less_than == f64::INFINITY)
                    .unwrap();
                inf.count as u64
            }
            other => panic!("{metric}: not a histogram: {other:?}"),
        },
        other => panic!("{metric} {labels:?}: {} samples", other.len()),
    }
}

/// Creates `name` with `nlist` lists, trained once it holds 10 rows a
/// list.
async fn create(
    c: &mut vdb_proto::v1::vdb_client::VdbClient<tonic::transport::Channel>,
    name: &str,
    nlist: u32,
) {
    c.create_collection(pb::CreateCollectionRequest {
        name: name.into(),
        config: Some(pb::CollectionConfig {
            dim: DIM as u32,
            nlist: Some(nlist),
            min_rows_per_list: Some(10),
            ..Default::default()
        }),
        centroids: None,
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_what_the_server_did() {
    let dir = tempfile::tempdir().unwrap();
    // One request at a time, so that a burst is partly refused.
    let server = Server::start(
        dir.path(),
        &["--metrics-listen", "127.0.0.1:0", "--max-concurrent", "1"],
    );
    let maddr = server.metrics.clone().unwrap();
    let mut c = server.client().await;

    let before = scrape(&maddr);
    assert_eq!(value(&before, "vdb_requests_max_concurrent", &[]), 1.0);
    assert_eq!(value(&before, "vdb_build_info", &[]), 1.0);
    assert!(samples(&before, "vdb_collection_rows", &[]).is_empty());

    // 300 rows pass the first training's threshold (4 lists × 10).
    create(&mut c, "docs", 4).await;
    let upsert = |ids: std::ops::Range<u64>| pb::UpsertRequest {
        collection: "docs".into(),
        rows: ids
            .map(|id| pb::Row {
                id,
                vector: vector(id),
                ..Default::default()
            })
            .collect(),
    };
    // Fewer rows than the first training needs (4 lists × 10): they stay
    // in the memtable.
    c.upsert(upsert(0..30)).await.unwrap();
    let docs = [("collection", "docs")];
    let s = scrape(&maddr);
    assert_eq!(value(&s, "vdb_collection_rows", &docs), 30.0);
    assert_eq!(value(&s, "vdb_collection_memtable_rows", &docs), 30.0);
    assert!(value(&s, "vdb_collection_memtable_bytes", &docs) >= 30.0 * DIM as f64 * 4.0);
    assert_eq!(value(&s, "vdb_collection_segments", &docs), 0.0);
    assert_eq!(value(&s, "vdb_collection_unflushed_lsns", &docs), 1.0);
    let log = value(&s, "vdb_collection_log_bytes", &docs);
    assert!(log >= 30.0 * DIM as f64 * 4.0, "{log} bytes of log");
    assert_eq!(value(&s, "vdb_collection_centroid_generation", &docs), 0.0);
    assert_eq!(value(&s, "vdb_collection_lists", &docs), 1.0);
    // These pass it: the collection may train in the background now.
    c.upsert(upsert(30..300)).await.unwrap();
    c.delete(pb::DeleteRequest {
        collection: "docs".into(),
        ids: vec![1, 2, 3],
    })
    .await
    .unwrap();
    let search = |collection: &str, k: u32| pb::SearchRequest {
        collection: collection.into(),
        queries: vec![pb::Vector { values: vector(7) }],
        k,
        ..Default::default()
    };
    for _ in 0..5 {
        c.search(search("docs", 10)).await.unwrap();
    }
    let missing = c.search(search("nope", 10)).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let bad_k = c.search(search("docs", 0)).await.unwrap_err();
    assert_eq!(bad_k.code(), Code::InvalidArgument);

    // A streamed response: its status travels in the trailers.
    let mut export = c
        .export(pb::ExportRequest {
            collection: "docs".into(),
        })
        .await
        .unwrap()
        .into_inner();
    while export.message().await.unwrap().is_some() {}

    let s = scrape(&maddr);
    let rpc = |name: &'static str, code: &'static str| [("rpc", name), ("code", code)];
    assert_eq!(value(&s, "vdb_requests_total", &rpc("Search", "OK")), 5.0);
    assert_eq!(
        value(&s, "vdb_requests_total", &rpc("Search", "NOT_FOUND")),
        1.0
    );
    assert_eq!(
        value(&s, "vdb_requests_total", &rpc("Search", "INVALID_ARGUMENT")),
        1.0
    );
    assert_eq!(value(&s, "vdb_requests_total", &rpc("Upsert", "OK")), 2.0);
    assert_eq!(value(&s, "vdb_requests_total", &rpc("Export", "OK")), 1.0);
    assert_eq!(
        value(&s, "vdb_requests_total", &rpc("CreateCollection", "OK")),
        1.0
    );
    assert_eq!(
        histogram_count(&s, "vdb_request_duration_seconds", &[("rpc", "Search")]),
        7
    );
    assert_eq!(value(&s, "vdb_collection_rows", &docs), 297.0);
    // The five searches' work (the refused and the missing one did none):
    // each scored at most every row, and an ivf_flat list's every row
    // scored is an exact distance.
    assert_eq!(value(&s, "vdb_search_queries_total", &docs), 5.0);
    let lists = value(&s, "vdb_search_lists_probed_total", &docs);
    let scanned = value(&s, "vdb_search_rows_scanned_total", &docs);
    assert!((5.0..=20.0).contains(&lists), "{lists} lists");
    assert!((50.0..=5.0 * 300.0).contains(&scanned), "{scanned} rows");
    assert_eq!(
        value(&s, "vdb_search_exact_distances_total", &docs),
        scanned
    );
    assert_eq!(
        histogram_count(&s, "vdb_search_rows_scanned_per_query", &docs),
        5
    );
    let op = |op: &'static str| [("collection", "docs"), ("op", op)];
    assert_eq!(value(&s, "vdb_rows_written_total", &op("upsert")), 300.0);
    assert_eq!(value(&s, "vdb_rows_written_total", &op("delete")), 3.0);
    // Three writes, each fsynced before it was acknowledged (sync=always,
    // one writer at a time); a background flush may add its own.
    assert!(value(&s, "vdb_log_bytes_total", &docs) >= 300.0 * DIM as f64 * 4.0);
    let syncs = value(&s, "vdb_log_syncs_total", &docs);
    assert!((3.0..=6.0).contains(&syncs), "{syncs} fsyncs");
    // The scrape's own request is not a gRPC one; nothing is in flight
    // between the test's awaited calls.
    assert_eq!(value(&s, "vdb_requests_in_flight", &[]), 0.0);

    c.flush(pb::MaintenanceRequest {
        collection: "docs".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let s = scrape(&maddr);
    assert_eq!(value(&s, "vdb_collection_memtable_rows", &docs), 0.0);
    assert!(value(&s, "vdb_collection_segments", &docs) >= 1.0);
    assert!(value(&s, "vdb_collection_segment_bytes", &docs) > 0.0);
    assert_eq!(value(&s, "vdb_collection_unflushed_lsns", &docs), 0.0);
    // The flushed records' log files are gone; the active one is small.
    let after = value(&s, "vdb_collection_log_bytes", &docs);
    assert!(
        after < 300.0 * DIM as f64 * 4.0,
        "{after} bytes of log after the flush"
    );
    assert_eq!(value(&s, "vdb_collection_rows", &docs), 297.0);
    assert!(value(&s, "vdb_collection_centroid_generation", &docs) >= 1.0);
    assert_eq!(value(&s, "vdb_collection_lists", &docs), 4.0);
    // The rows past the first training's threshold were trained on (in
    // the background or by the flush); nothing was compacted.
    let run = |kind: &'static str, outcome: &'static str| {
        value(
            &s,
            "vdb_maintenance_runs_total",
            &[("collection", "docs"), ("kind", kind), ("outcome", outcome)],
        )
    };
    assert!(run("train", "changed") >= 1.0);
    assert_eq!(run("train", "failed"), 0.0);
    assert_eq!(run("compact", "changed"), 0.0);
    assert!(
        value(
            &s,
            "vdb_maintenance_seconds_total",
            &[("collection", "docs"), ("kind", "train")]
        ) > 0.0
    );
    assert!(
        value(
            &s,
            "vdb_collection_written_bytes",
            &[("collection", "docs"), ("kind", "flushed")]
        ) > 0.0
    );

    // Beyond the limit of one: a tuning (tens of milliseconds on the
    // blocking pool) holds the permit while sixteen searches arrive. Every
    // refusal the clients saw is counted, under its method and as a
    // refusal. Bounded rounds until one is refused.
    let (mut refused_searches, mut refused_tunes) = (0, 0);
    for _ in 0..20 {
        let mut tc = c.clone();
        let tune = tokio::spawn(async move {
            tc.tune(pb::TuneRequest {
                collection: "docs".into(),
                target_recall: 0.99,
                sample: Some(200),
                nprobes: vec![1, 2, 3, 4],
                ..Default::default()
            })
            .await
        });
        // Scraped while the burst runs: the page parses under load.
        let during = {
            let maddr = maddr.clone();
            tokio::task::spawn_blocking(move || scrape(&maddr))
        };
        let burst = (0..16).map(|_| {
            let mut c = c.clone();
            tokio::spawn(async move { c.search(search("docs", 10)).await })
        });
        let results = futures_join(burst).await;
        let during = during.await.unwrap();
        assert!(!samples(&during, "vdb_requests_total", &[]).is_empty());
        assert!(value(&during, "vdb_requests_in_flight", &[]) <= 1.0);
        for r in results {
            if let Err(e) = r {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
                refused_searches += 1;
            }
        }
        if let Err(e) = tune.await.unwrap() {
            assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
            refused_tunes += 1;
        }
        if refused_searches + refused_tunes > 0 {
            break;
        }
    }
    let refused = refused_searches + refused_tunes;
    assert!(refused > 0, "no request of 20 rounds was refused");
    let s = scrape(&maddr);
    assert_eq!(value(&s, "vdb_requests_refused_total", &[]), refused as f64);
    let exhausted = |name| value(&s, "vdb_requests_total", &rpc(name, "RESOURCE_EXHAUSTED"));
    assert_eq!(exhausted("Search"), refused_searches as f64);
    assert_eq!(exhausted("Tune"), refused_tunes as f64);

    // A dropped collection leaves the gauges.
    c.drop_collection(pb::DropCollectionRequest {
        name: "docs".into(),
    })
    .await
    .unwrap();
    let s = scrape(&maddr);
    assert!(samples(&s, "vdb_collection_rows", &[]).is_empty());
    assert!(samples(&s, "vdb_search_queries_total", &docs).is_empty());
    assert!(samples(&s, "vdb_search_rows_scanned_per_query", &docs).is_empty());
    assert!(samples(&s, "vdb_maintenance_runs_total", &docs).is_empty());

    // Only GET /metrics.
    assert_eq!(http(&maddr, "GET", "/").0, 404);
    assert_eq!(http(&maddr, "POST", "/metrics").0, 405);
    server.stop();
}

/// Awaits every task, in order.
async fn futures_join<T>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let tasks: Vec<_> = tasks.collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// A point near one of 64 overlapping cluster centres (`id` picks the
/// centre and the noise): more clusters than the test's 16 lists, so that
/// lists cut through clusters and one list probed misses neighbours
/// whatever the training drew.
fn clustered(id: u64) -> Vec<f32> {
    let centre = vector(id % 64);
    let noise = vector(id + 1_000_000);
    centre.iter().zip(noise).map(|(c, n)| c * 2.0 + n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recall_estimate_is_the_recall_of_the_searches_sampled() {
    let dir = tempfile::tempdir().unwrap();
    // Every search sampled: the test's searches are further apart than 1 ms.
    let server = Server::start(
        dir.path(),
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--recall-sample-interval-ms",
            "1",
        ],
    );
    let maddr = server.metrics.clone().unwrap();
    let mut c = server.client().await;
    create(&mut c, "near", 16).await;
    for batch in 0..3u64 {
        c.upsert(pb::UpsertRequest {
            collection: "near".into(),
            rows: (batch * 1000..(batch + 1) * 1000)
                .map(|id| pb::Row {
                    id,
                    vector: clustered(id),
                    ..Default::default()
                })
                .collect(),
        })
        .await
        .unwrap();
    }
    c.flush(pb::MaintenanceRequest {
        collection: "near".into(),
        ..Default::default()
    })
    .await
    .unwrap();

    // One list probed: recall well below 1, and each query's own.
    let search = |id: u64, exact: bool| pb::SearchRequest {
        collection: "near".into(),
        queries: vec![pb::Vector {
            values: clustered(id),
        }],
        k: 10,
        nprobe: Some(1),
        exact,
        ..Default::default()
    };
    let mut recalls = Vec::new();
    for id in 10_000..10_120u64 {
        let ids = |r: pb::SearchResponse| -> Vec<u64> {
            r.results[0].hits.iter().map(|h| h.id).collect()
        };
        let found = ids(c.search(search(id, false)).await.unwrap().into_inner());
        let exact = ids(c.search(search(id, true)).await.unwrap().into_inner());
        let hit = exact.iter().filter(|id| found.contains(id)).count();
        recalls.push(hit as f64 / exact.len() as f64);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let last: f64 = recalls[20..].iter().sum::<f64>() / 100.0;
    assert!(
        last < 0.99,
        "nprobe 1 should miss neighbours: recall {last}"
    );

    // Only the approximate searches count as the index's work: one list
    // each.
    let s = scrape(&maddr);
    let near = [("collection", "near")];
    assert_eq!(value(&s, "vdb_search_queries_total", &near), 120.0);
    assert_eq!(value(&s, "vdb_search_lists_probed_total", &near), 120.0);

    // The window fills as the sampling thread catches up (bounded wait).
    let mut s = s;
    for _ in 0..100 {
        if value(&s, "vdb_collection_recall_samples", &near) >= 100.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        s = scrape(&maddr);
    }
    assert_eq!(value(&s, "vdb_collection_recall_samples", &near), 100.0);
    let estimate = value(&s, "vdb_collection_recall_estimate", &near);
    // The same searches: equal unless the queue dropped one.
    assert!(
        (estimate - last).abs() <= 0.02,
        "estimate {estimate}, the test's own measure {last}"
    );

    // Against tune's recall at the same nprobe, measured on stored rows
    // as queries (docs/server.md: within 0.1 on 100 samples).
    let tuned = c
        .tune(pb::TuneRequest {
            collection: "near".into(),
            target_recall: 0.99,
            nprobes: vec![1],
            sample: Some(200),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let tune_recall = tuned.points[0].recall;
    eprintln!("recall at nprobe 1: searches {last}, estimate {estimate}, tune {tune_recall}");
    assert!(
        (estimate - tune_recall).abs() <= 0.1,
        "estimate {estimate}, tune {tune_recall}"
    );
    server.stop();
}
