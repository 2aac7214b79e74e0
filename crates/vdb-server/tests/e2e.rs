//! Guards the server end to end: the real `vdbd` binary on an ephemeral
//! loopback port, spoken to over gRPC. Every RPC's happy path; bad input
//! answered with the right status code and a message naming the field,
//! with stored data unchanged afterwards; health checking and reflection;
//! a graceful restart with the data intact.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;
use tonic::Code;
use tonic::transport::Channel;
use vdb_proto::v1 as pb;
use vdb_proto::v1::vdb_client::VdbClient;

const DIM: usize = 8;

/// A distinct pseudo-random vector per id.
fn vector(id: u64) -> Vec<f32> {
    let mut s = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..DIM)
        .map(|_| {
            s ^= s >> 31;
            s = s.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            s ^= s >> 29;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 10.0
        })
        .collect()
}

fn row(id: u64) -> pb::Row {
    pb::Row {
        id,
        vector: vector(id),
        payload: Some(format!("item-{id}").into_bytes()),
        fields: Default::default(),
    }
}

async fn create(c: &mut VdbClient<Channel>, name: &str) -> pb::CollectionInfo {
    c.create_collection(pb::CreateCollectionRequest {
        name: name.into(),
        config: Some(pb::CollectionConfig {
            dim: DIM as u32,
            nlist: Some(4),
            nprobe: Some(2),
            min_rows_per_list: Some(10),
            ..Default::default()
        }),
        centroids: None,
    })
    .await
    .unwrap()
    .into_inner()
}

fn search(name: &str, query: Vec<f32>, k: u32) -> pb::SearchRequest {
    pb::SearchRequest {
        collection: name.into(),
        queries: vec![pb::Vector { values: query }],
        k,
        ..Default::default()
    }
}

async fn rows_of(c: &mut VdbClient<Channel>, name: &str) -> (u64, u64) {
    let s = c
        .describe_collection(pb::DescribeCollectionRequest {
            name: name.into(),
            lists: false,
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    (s.rows, s.last_lsn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_works_and_a_restart_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut c = server.client().await;

    let info = create(&mut c, "images").await;
    assert_eq!(info.name, "images");
    let cfg = info.config.unwrap();
    assert_eq!((cfg.dim, cfg.nlist, cfg.nprobe), (8, Some(4), Some(2)));
    assert_eq!(cfg.sync.as_deref(), Some("always"));
    let names = c
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .names;
    assert_eq!(names, vec!["images".to_string()]);

    // Upsert, then a streamed import.
    let w = c
        .upsert(pb::UpsertRequest {
            collection: "images".into(),
            rows: (0..100).map(row).collect(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.count, 100);
    let batches: Vec<pb::ImportRequest> = (0..4u64)
        .map(|b| pb::ImportRequest {
            collection: if b == 0 {
                "images".into()
            } else {
                String::new()
            },
            rows: (100 + b * 50..150 + b * 50).map(row).collect(),
        })
        .collect();
    let imported = c
        .import(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((imported.rows, imported.batches), (200, 4));
    assert_eq!(rows_of(&mut c, "images").await.0, 300);

    // Get, with a missing id.
    let got = c
        .get(pb::GetRequest {
            collection: "images".into(),
            ids: vec![7, 12345],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.rows.len(), 1);
    assert_eq!(got.rows[0].vector, vector(7));
    assert_eq!(got.rows[0].payload.as_deref(), Some(&b"item-7"[..]));
    assert_eq!(got.missing, vec![12345]);

    // Train, then search: every row finds itself; exact agrees.
    let r = c
        .flush(pb::MaintenanceRequest {
            collection: "images".into(),
            nlist: None,
        })
        .await
        .unwrap()
        .into_inner();
    // The 300 rows passed the first training's threshold (4 lists × 10
    // rows), so a background flush may have trained already and left this
    // one nothing to do: `changed` can be either; trained it is.
    let _ = r.changed;
    assert!(r.info.unwrap().stats.unwrap().generation >= 1);
    for id in [0u64, 42, 299] {
        let mut req = search("images", vector(id), 3);
        req.with_payload = true;
        req.with_vectors = true;
        let res = c.search(req).await.unwrap().into_inner();
        let top = &res.results[0].hits[0];
        assert_eq!(top.id, id);
        assert_eq!(
            top.payload.as_deref(),
            Some(format!("item-{id}").as_bytes())
        );
        assert_eq!(top.vector, vector(id));
        let mut exact = search("images", vector(id), 3);
        exact.exact = true;
        let ex = c.search(exact).await.unwrap().into_inner();
        assert_eq!(ex.nprobe, 4, "exact probes every list");
        assert_eq!(ex.results[0].hits[0].id, id);
    }

    // Explain describes the search it ran.
    let ex = c
        .explain(pb::ExplainRequest {
            collection: "images".into(),
            query: Some(pb::Vector { values: vector(5) }),
            k: 5,
            nprobe: Some(2),
            with_payload: true,
            exact: true,
            samples: Some(3),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((ex.nlist, ex.nprobe, ex.rows), (4, 2, 300));
    assert_eq!(ex.probed.len(), 2);
    assert_eq!(ex.coarse_distances, 4);
    assert_eq!(
        ex.probed.iter().map(|p| p.scanned).sum::<u64>(),
        ex.fine_distances
    );
    assert_eq!(ex.hits[0].id, 5);
    assert!(ex.generation > 0);
    // Every centroid ranked, the probed ones first; samples with payloads;
    // the exact comparison.
    assert_eq!(ex.coarse.len(), 4);
    for (p, c) in ex.probed.iter().zip(&ex.coarse) {
        assert_eq!(p.list, c.list);
        assert!(p.samples.len() <= 3 && !p.samples.is_empty());
        assert!(
            p.samples
                .iter()
                .all(|s| s.payload.is_some() && s.position.is_some())
        );
        assert_eq!(p.distance_deciles.len(), 11);
    }
    assert_eq!(ex.coarse.iter().map(|l| l.size).sum::<u64>(), 300);
    assert!(ex.query_position.is_some());
    assert!(ex.hits.iter().all(|h| h.list_rank < 2));
    let x = ex.exact.as_ref().unwrap();
    assert_eq!(x.hits.len(), 5);
    assert_eq!(x.hits[0].id, 5);
    assert!(x.min_nprobe >= 1 && x.min_nprobe <= 4);
    assert_eq!(x.missed.is_empty(), x.min_nprobe <= 2);
    let too_many = c
        .explain(pb::ExplainRequest {
            collection: "images".into(),
            query: Some(pb::Vector { values: vector(5) }),
            k: 5,
            samples: Some(101),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
    assert!(
        too_many.message().contains("samples"),
        "{}",
        too_many.message()
    );
    let with_lists = c
        .describe_collection(pb::DescribeCollectionRequest {
            name: "images".into(),
            lists: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(with_lists.list_sizes.len(), 4);
    assert_eq!(with_lists.list_sizes.iter().sum::<u64>(), 300);

    // Delete, alter, compact, retrain.
    c.delete(pb::DeleteRequest {
        collection: "images".into(),
        ids: vec![0, 1, 2],
    })
    .await
    .unwrap();
    assert_eq!(rows_of(&mut c, "images").await.0, 297);
    let altered = c
        .alter_collection(pb::AlterCollectionRequest {
            name: "images".into(),
            nprobe: Some(3),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(altered.config.unwrap().nprobe, Some(3));
    let compacted = c
        .compact(pb::MaintenanceRequest {
            collection: "images".into(),
            nlist: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(compacted.changed);
    assert_eq!(compacted.info.unwrap().stats.unwrap().deleted_rows, 0);
    let retrained = c
        .retrain(pb::MaintenanceRequest {
            collection: "images".into(),
            nlist: Some(6),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(retrained.changed);
    assert_eq!(retrained.info.unwrap().stats.unwrap().lists, 6);

    // A second collection to drop.
    create(&mut c, "scratch").await;
    c.drop_collection(pb::DropCollectionRequest {
        name: "scratch".into(),
    })
    .await
    .unwrap();

    // Health checking and reflection answer.
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let h = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "vdb.v1.Vdb".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        h.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    drop(health);
    // A graceful restart keeps everything (including the unflushed delete).
    c.upsert(pb::UpsertRequest {
        collection: "images".into(),
        rows: vec![row(1000)],
    })
    .await
    .unwrap();
    drop(c);
    server.stop();
    let server = Server::start(dir.path(), &[]);
    let mut c = server.client().await;
    assert_eq!(rows_of(&mut c, "images").await.0, 298);
    let names = c
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .names;
    assert_eq!(names, vec!["images".to_string()]);
    let got = c
        .get(pb::GetRequest {
            collection: "images".into(),
            ids: vec![1, 1000],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.missing, vec![1]);
    assert_eq!(got.rows[0].id, 1000);
}

/// Sends a bad request; checks the code, that the message names `field`,
/// and that the collection's rows and last LSN did not change.
macro_rules! refused {
    ($c:expr, $call:expr, $code:expr, $field:expr) => {{
        let before = rows_of(&mut $c, "good").await;
        let err = $call.await.expect_err("a bad request must fail");
        assert_eq!(err.code(), $code, "{}: {}", $field, err.message());
        assert!(
            err.message().contains($field),
            "the message names {:?}: {}",
            $field,
            err.message()
        );
        assert_eq!(rows_of(&mut $c, "good").await, before, "nothing changed");
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_status_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-batch", "50", "--max-k", "100"]);
    let mut c = server.client().await;
    create(&mut c, "good").await;
    c.upsert(pb::UpsertRequest {
        collection: "good".into(),
        rows: (0..20).map(row).collect(),
    })
    .await
    .unwrap();

    let upsert = |rows: Vec<pb::Row>| pb::UpsertRequest {
        collection: "good".into(),
        rows,
    };
    let mut short = row(100);
    short.vector.pop();
    refused!(
        c,
        c.upsert(upsert(vec![row(99), short])),
        Code::InvalidArgument,
        "rows[1].vector"
    );
    let mut nan = row(100);
    nan.vector[3] = f32::NAN;
    refused!(
        c,
        c.upsert(upsert(vec![nan])),
        Code::InvalidArgument,
        "rows[0].vector"
    );
    let mut inf = row(100);
    inf.vector[0] = f32::INFINITY;
    refused!(
        c,
        c.upsert(upsert(vec![inf])),
        Code::InvalidArgument,
        "rows[0].vector"
    );
    refused!(c, c.upsert(upsert(vec![])), Code::InvalidArgument, "rows");
    refused!(
        c,
        c.upsert(upsert((0..51).map(row).collect())),
        Code::InvalidArgument,
        "rows"
    );
    refused!(
        c,
        c.upsert(upsert(vec![row(5), row(5)])),
        Code::InvalidArgument,
        "rows[1].id"
    );
    refused!(
        c,
        c.upsert(pb::UpsertRequest {
            collection: "missing".into(),
            rows: vec![row(1)]
        }),
        Code::NotFound,
        "missing"
    );

    refused!(
        c,
        c.search(search("good", vector(1), 0)),
        Code::InvalidArgument,
        "k"
    );
    refused!(
        c,
        c.search(search("good", vector(1), 101)),
        Code::InvalidArgument,
        "k"
    );
    let mut zero = search("good", vector(1), 3);
    zero.nprobe = Some(0);
    refused!(c, c.search(zero), Code::InvalidArgument, "nprobe");
    refused!(
        c,
        c.search(search("good", vec![1.0; 3], 3)),
        Code::InvalidArgument,
        "queries[0]"
    );
    let mut none = search("good", vector(1), 3);
    none.queries.clear();
    refused!(c, c.search(none), Code::InvalidArgument, "queries");
    refused!(
        c,
        c.search(search("nope", vector(1), 3)),
        Code::NotFound,
        "nope"
    );
    // nprobe above nlist is clamped (documented), not an error.
    let mut big = search("good", vector(1), 3);
    big.nprobe = Some(1000);
    assert_eq!(
        c.search(big).await.unwrap().into_inner().results[0].hits[0].id,
        1
    );

    refused!(
        c,
        c.delete(pb::DeleteRequest {
            collection: "good".into(),
            ids: vec![]
        }),
        Code::InvalidArgument,
        "ids"
    );
    refused!(
        c,
        c.get(pb::GetRequest {
            collection: "good".into(),
            ids: (0..51).collect()
        }),
        Code::InvalidArgument,
        "ids"
    );

    // Collection names and settings.
    let bad_create = |name: &str, dim: u32| pb::CreateCollectionRequest {
        name: name.into(),
        config: Some(pb::CollectionConfig {
            dim,
            ..Default::default()
        }),
        centroids: None,
    };
    for name in ["../x", "a/b", "", "é", &"x".repeat(65)] {
        refused!(
            c,
            c.create_collection(bad_create(name, 4)),
            Code::InvalidArgument,
            "name"
        );
    }
    refused!(
        c,
        c.create_collection(bad_create("good", 4)),
        Code::AlreadyExists,
        "good"
    );
    refused!(
        c,
        c.create_collection(bad_create("nodim", 0)),
        Code::InvalidArgument,
        "config.dim"
    );
    let mut bad_sync = bad_create("sync", 4);
    bad_sync.config.as_mut().unwrap().sync = Some("sometimes".into());
    refused!(
        c,
        c.create_collection(bad_sync),
        Code::InvalidArgument,
        "config.sync"
    );
    let mut bad_metric = bad_create("metric", 4);
    bad_metric.config.as_mut().unwrap().metric = 42;
    refused!(
        c,
        c.create_collection(bad_metric),
        Code::InvalidArgument,
        "config.metric"
    );
    refused!(
        c,
        c.drop_collection(pb::DropCollectionRequest {
            name: "../good".into()
        }),
        Code::NotFound,
        "../good"
    );
    refused!(
        c,
        c.alter_collection(pb::AlterCollectionRequest {
            name: "good".into(),
            nprobe: Some(0),
            ..Default::default()
        }),
        Code::InvalidArgument,
        "nprobe"
    );

    // An import whose third batch is bad stores the first two only.
    let batches = vec![
        pb::ImportRequest {
            collection: "good".into(),
            rows: (200..210).map(row).collect(),
        },
        pb::ImportRequest {
            collection: String::new(),
            rows: (210..220).map(row).collect(),
        },
        pb::ImportRequest {
            collection: String::new(),
            rows: vec![pb::Row {
                id: 1,
                vector: vec![1.0],
                payload: None,
                fields: Default::default(),
            }],
        },
    ];
    let err = c.import(tokio_stream::iter(batches)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("batch 2"), "{}", err.message());
    assert_eq!(rows_of(&mut c, "good").await.0, 40);
    let names = c
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .names;
    assert_eq!(
        names,
        vec!["good".to_string()],
        "no bad create left a collection"
    );
}

fn with_key<T>(msg: T, key: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_separate_readers_from_writers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_env(
        dir.path(),
        &[],
        &[
            ("VDB_API_KEYS", "admin-secret"),
            ("VDB_READ_ONLY_KEYS", "reader-1,reader-2"),
        ],
    );
    let mut c = server.client().await;
    let create_req = || pb::CreateCollectionRequest {
        name: "k".into(),
        config: Some(pb::CollectionConfig {
            dim: DIM as u32,
            ..Default::default()
        }),
        centroids: None,
    };

    // No key, a wrong key: UNAUTHENTICATED, for reads and writes alike.
    let e = c.create_collection(create_req()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    let e = c
        .list_collections(with_key(pb::ListCollectionsRequest {}, "guess"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    // A read-only key writing: PERMISSION_DENIED, and nothing is created.
    let e = c
        .create_collection(with_key(create_req(), "reader-2"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    let names = c
        .list_collections(with_key(pb::ListCollectionsRequest {}, "reader-1"))
        .await
        .unwrap()
        .into_inner()
        .names;
    assert!(names.is_empty());

    // The full key does everything; the read-only key then reads.
    c.create_collection(with_key(create_req(), "admin-secret"))
        .await
        .unwrap();
    c.upsert(with_key(
        pb::UpsertRequest {
            collection: "k".into(),
            rows: (0..10).map(row).collect(),
        },
        "admin-secret",
    ))
    .await
    .unwrap();
    let hits = c
        .search(with_key(search("k", vector(3), 1), "reader-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hits.results[0].hits[0].id, 3);
    for e in [
        c.delete(with_key(
            pb::DeleteRequest {
                collection: "k".into(),
                ids: vec![3],
            },
            "reader-1",
        ))
        .await
        .unwrap_err(),
        c.flush(with_key(
            pb::MaintenanceRequest {
                collection: "k".into(),
                nlist: None,
            },
            "reader-1",
        ))
        .await
        .unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::PermissionDenied);
    }
    let got = c
        .get(with_key(
            pb::GetRequest {
                collection: "k".into(),
                ids: vec![3],
            },
            "reader-2",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.rows.len(), 1, "the refused delete changed nothing");
    // Tune measures with a read-only key; making the result the default
    // needs a full key.
    let tune = |apply: bool| pb::TuneRequest {
        collection: "k".into(),
        target_recall: 0.9,
        sample: Some(5),
        apply,
        ..Default::default()
    };
    let measured = c
        .tune(with_key(tune(false), "reader-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((measured.sample, measured.k), (5, 10));
    assert_eq!(measured.recommended, Some(1), "one list before training");
    let e = c.tune(with_key(tune(true), "reader-1")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let applied = c
        .tune(with_key(tune(true), "admin-secret"))
        .await
        .unwrap()
        .into_inner();
    assert!(applied.applied);
    assert_eq!(
        applied.info.unwrap().config.unwrap().nprobe,
        Some(1),
        "the default is the recommendation"
    );
    let mut bad = tune(false);
    bad.target_recall = 0.0;
    let e = c.tune(with_key(bad, "reader-1")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("target_recall"), "{}", e.message());

    // Health checking needs no key.
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    drop(health);
    drop(c);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_streaming_imports_keeps_every_acknowledged_row() {
    const BATCH: u64 = 50;
    const BATCHES: u64 = 8;
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<u64> = Vec::new(); // first id of each acknowledged import
    let mut next = 0u64;
    for round in 0..3u64 {
        let server = Server::start(dir.path(), &[]);
        let mut c = server.client().await;
        if round == 0 {
            create(&mut c, "bulk").await;
        }
        // Imports one after another; kill -9 lands in the middle of one.
        let kill_after = std::time::Duration::from_millis(150 + 70 * round);
        let started = std::time::Instant::now();
        let mut killed = false;
        let mut server = Some(server);
        loop {
            let first = next;
            let stream = tokio_stream::iter((0..BATCHES).map(move |b| {
                pb::ImportRequest {
                    collection: if b == 0 { "bulk".into() } else { String::new() },
                    rows: (first + b * BATCH..first + (b + 1) * BATCH)
                        .map(row)
                        .collect(),
                }
            }));
            let call = c.import(stream);
            let result = if !killed && started.elapsed() >= kill_after {
                // Kill while this import is in flight.
                let (r, ()) = tokio::join!(call, async {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    drop(server.take());
                });
                killed = true;
                r
            } else {
                call.await
            };
            next += BATCH * BATCHES;
            match result {
                Ok(_) => acked.push(first),
                Err(_) => break,
            }
            if killed {
                break;
            }
        }
        drop(c);
        drop(server);

        // Reopen: every acknowledged import is complete, and whatever
        // arrived of the one in flight is whole batches in order.
        let server = Server::start(dir.path(), &[]);
        let mut c = server.client().await;
        let ids: Vec<u64> = (0..next).collect();
        let mut present = std::collections::BTreeSet::new();
        for chunk in ids.chunks(5_000) {
            let got = c
                .get(pb::GetRequest {
                    collection: "bulk".into(),
                    ids: chunk.to_vec(),
                })
                .await
                .unwrap()
                .into_inner();
            for r in got.rows {
                assert_eq!(r.vector, vector(r.id), "row {} intact", r.id);
                present.insert(r.id);
            }
        }
        for &first in &acked {
            for id in first..first + BATCH * BATCHES {
                assert!(
                    present.contains(&id),
                    "round {round}: acknowledged row {id} is missing"
                );
            }
        }
        let unacked: Vec<u64> = present
            .iter()
            .copied()
            .filter(|id| !acked.iter().any(|&f| (f..f + BATCH * BATCHES).contains(id)))
            .collect();
        if let Some(&lo) = unacked.first() {
            let stream_start = lo - lo % (BATCH * BATCHES);
            assert_eq!(
                lo, stream_start,
                "round {round}: a partial import starts at its first batch"
            );
            assert_eq!(
                unacked.len() as u64 % BATCH,
                0,
                "round {round}: whole batches only"
            );
            let want: Vec<u64> = (stream_start..stream_start + unacked.len() as u64).collect();
            assert_eq!(
                unacked, want,
                "round {round}: a prefix of the stream's batches"
            );
            // It is stored now; count it as acknowledged from here on.
            acked.push(stream_start);
            for id in stream_start + unacked.len() as u64..stream_start + BATCH * BATCHES {
                c.upsert(pb::UpsertRequest {
                    collection: "bulk".into(),
                    rows: vec![row(id)],
                })
                .await
                .unwrap();
            }
        }
        drop(c);
        server.stop();
    }
    assert!(
        acked.len() >= 3,
        "imports were acknowledged: {}",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_stream_ends_as_if_written_message_by_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut c = server.client().await;
    create(&mut c, "stream").await;
    // 40 messages of 50 rows; message m writes ids 25m .. 25m + 50, so each
    // id after the first 25 comes twice, in consecutive messages, and the
    // later row must win. Payloads say which message wrote the row.
    let messages: Vec<pb::ImportRequest> = (0..40u64)
        .map(|m| pb::ImportRequest {
            collection: if m == 0 {
                "stream".into()
            } else {
                String::new()
            },
            rows: (25 * m..25 * m + 50)
                .map(|id| pb::Row {
                    payload: Some(format!("m{m}").into_bytes()),
                    ..row(id)
                })
                .collect(),
        })
        .collect();
    let done = c
        .import(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((done.rows, done.batches), (2000, 40));
    assert_eq!(rows_of(&mut c, "stream").await.0, 25 * 39 + 50);
    let got = c
        .get(pb::GetRequest {
            collection: "stream".into(),
            ids: vec![0, 30, 520, 999, 1024],
        })
        .await
        .unwrap()
        .into_inner();
    let payloads: Vec<String> = got
        .rows
        .iter()
        .map(|r| String::from_utf8(r.payload.clone().unwrap()).unwrap())
        .collect();
    // id 30 is in messages 0 and 1; 520 in 19 and 20; 999 in 38 and 39;
    // 1024 in 39 only.
    assert_eq!(payloads, ["m0", "m1", "m20", "m39", "m39"]);

    // A bad message in the middle: every message before it is stored, none
    // after, and the error names it.
    let messages: Vec<pb::ImportRequest> = (0..30u64)
        .map(|m| pb::ImportRequest {
            collection: if m == 0 {
                "stream".into()
            } else {
                String::new()
            },
            rows: if m == 17 {
                vec![pb::Row {
                    id: 100_000,
                    vector: vec![1.0; DIM + 1],
                    payload: None,
                    fields: Default::default(),
                }]
            } else {
                (10_000 + 10 * m..10_000 + 10 * m + 10).map(row).collect()
            },
        })
        .collect();
    let err = c.import(tokio_stream::iter(messages)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("batch 17 (after 170 rows stored)"),
        "{}",
        err.message()
    );
    assert_eq!(rows_of(&mut c, "stream").await.0, 25 * 39 + 50 + 170);
    drop(c);
    server.stop();
}

/// Searches (and a bad one) whose answers must not depend on where the
/// server runs them.
fn search_mix() -> Vec<pb::SearchRequest> {
    let mut out = Vec::new();
    for id in [0u64, 7, 150, 299] {
        let mut r = search("mix", vector(id), 5);
        r.with_payload = true;
        r.with_vectors = true;
        out.push(r);
    }
    let mut exact = search("mix", vector(3), 10);
    exact.exact = true;
    out.push(exact);
    let mut batch = search("mix", vector(1), 4);
    batch.queries = (0..50).map(|i| pb::Vector { values: vector(i) }).collect();
    batch.nprobe = Some(1);
    out.push(batch);
    out.push(search("mix", vec![1.0; DIM + 1], 5));
    out
}

async fn answers(c: &mut VdbClient<Channel>) -> Vec<Result<pb::SearchResponse, (Code, String)>> {
    let mut out = Vec::new();
    for r in search_mix() {
        out.push(
            c.search(r)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| (s.code(), s.message().to_string())),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_in_place_and_on_the_blocking_pool_answer_alike() {
    let dir = tempfile::tempdir().unwrap();
    // Budget 0: every search on the blocking pool.
    let server = Server::start(dir.path(), &["--inline-search-work", "0"]);
    let mut c = server.client().await;
    create(&mut c, "mix").await;
    c.upsert(pb::UpsertRequest {
        collection: "mix".into(),
        rows: (0..300).map(row).collect(),
    })
    .await
    .unwrap();
    c.flush(pb::MaintenanceRequest {
        collection: "mix".into(),
        nlist: None,
    })
    .await
    .unwrap();
    let pooled = answers(&mut c).await;
    drop(c);
    server.stop();
    let last = pooled.last().unwrap().as_ref().unwrap_err();
    assert_eq!(last.0, Code::InvalidArgument);
    assert!(last.1.contains("queries[0]"), "{}", last.1);
    assert_eq!(pooled[5].as_ref().unwrap().results.len(), 50);

    // The default budget keeps these small searches in place; the largest
    // budget keeps every search in place.
    for extra in [
        &[][..],
        &["--inline-search-work", "18446744073709551615"][..],
    ] {
        let server = Server::start(dir.path(), extra);
        let mut c = server.client().await;
        assert_eq!(answers(&mut c).await, pooled, "with {extra:?}");
        drop(c);
        server.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_clients_get_answers_or_resource_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-concurrent", "8"]);
    let mut c = server.client().await;
    create(&mut c, "busy").await;
    c.upsert(pb::UpsertRequest {
        collection: "busy".into(),
        rows: (0..500).map(row).collect(),
    })
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let addr = server.addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = VdbClient::connect(format!("http://{addr}")).await.unwrap();
            let (mut ok, mut busy) = (0u64, 0u64);
            let mut i = 0u64;
            while std::time::Instant::now() < deadline {
                i += 1;
                let r = if (t + i).is_multiple_of(4) {
                    c.upsert(pb::UpsertRequest {
                        collection: "busy".into(),
                        rows: vec![row(10_000 + t * 100_000 + i)],
                    })
                    .await
                    .map(|_| ())
                } else {
                    c.search(search("busy", vector(i % 500), 5))
                        .await
                        .map(|_| ())
                };
                match r {
                    Ok(()) => ok += 1,
                    Err(e) if e.code() == Code::ResourceExhausted => busy += 1,
                    Err(e) => panic!("client {t}: unexpected {:?}: {}", e.code(), e.message()),
                }
            }
            (ok, busy)
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        let (o, b) = t.await.unwrap();
        ok += o;
        busy += b;
    }
    assert!(ok > 100, "{ok} requests answered, {busy} refused");
    let rows = rows_of(&mut c, "busy").await.0;
    assert!(rows > 500, "writes landed: {rows}");
    drop(c);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_clients_that_trust_its_ca_only() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let dir = tempfile::tempdir().unwrap();
    let cert = fixtures.join("server.pem").display().to_string();
    let key = fixtures.join("server.key").display().to_string();
    let server = Server::start(dir.path(), &["--tls-cert", &cert, "--tls-key", &key]);
    let port = server.addr.rsplit(':').next().unwrap().to_string();

    // A client trusting the CA talks TLS, by name and by IP.
    let ca = std::fs::read(fixtures.join("ca.pem")).unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let channel = Channel::from_shared(format!("https://{host}:{port}"))
            .unwrap()
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&ca)),
            )
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = VdbClient::new(channel);
        c.list_collections(pb::ListCollectionsRequest {})
            .await
            .unwrap();
    }
    // Plaintext gets no answer from a TLS server.
    let plain = VdbClient::connect(format!("http://127.0.0.1:{port}")).await;
    if let Ok(mut c) = plain {
        assert!(
            c.list_collections(pb::ListCollectionsRequest {})
                .await
                .is_err()
        );
    }
    // A client that does not trust the CA refuses the server.
    let untrusting = Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tonic::transport::ClientTlsConfig::new())
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = untrusting {
        assert!(
            VdbClient::new(ch)
                .list_collections(pb::ListCollectionsRequest {})
                .await
                .is_err()
        );
    }
    server.stop();
}

#[test]
fn vdbd_refuses_a_key_without_a_certificate_and_bad_pem() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vdbd"))
        .args(["--listen", "127.0.0.1:0", "--tls-key", "/nonexistent"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-cert"));
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let junk = junk.display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_vdbd"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &junk,
            "--tls-key",
            &junk,
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TLS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn vdbd_refuses_a_bad_object_store_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vdbd"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--object-store", "http://bucket/p"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--object-store") && err.contains("s3://BUCKET"),
        "{err}"
    );
    let (code, err) = run(&[
        "--object-store",
        "s3://b",
        "--object-store-option",
        "region",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("KEY=VALUE"), "{err}");
    let config = dir.path().join("s3.toml");
    std::fs::write(
        &config,
        "object_store = \"s3://b/p\"\n[object_store_options]\nregion = \"us-east-1\"\nno_such_option = \"1\"\n",
    )
    .unwrap();
    let (code, err) = run(&["--config", &config.display().to_string()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no_such_option"), "{err}");
    // Nothing was created for a store that was refused.
    assert!(!dir.path().join("data").join("NODE").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_and_oversized_messages_are_answered_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-message-bytes", "20000"]);
    let mut c = server.client().await;
    create(&mut c, "lim").await;
    // A message over the limit is refused and stores nothing.
    let big = pb::UpsertRequest {
        collection: "lim".into(),
        rows: (0..1000).map(row).collect(),
    };
    let e = c.upsert(big).await.unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{}", e.message());
    assert!(e.message().contains("message"), "{}", e.message());
    assert_eq!(rows_of(&mut c, "lim").await.0, 0);
    // A deadline the server cannot meet ends the call with DEADLINE_EXCEEDED.
    c.upsert(pb::UpsertRequest {
        collection: "lim".into(),
        rows: (0..100).map(row).collect(),
    })
    .await
    .unwrap();
    let mut req = tonic::Request::new(pb::MaintenanceRequest {
        collection: "lim".into(),
        nlist: Some(4),
    });
    req.set_timeout(std::time::Duration::from_micros(1));
    let e = c.retrain(req).await.unwrap_err();
    assert!(
        matches!(e.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{:?}: {}",
        e.code(),
        e.message()
    );
    // The server is fine afterwards.
    assert_eq!(rows_of(&mut c, "lim").await.0, 100);
    drop(c);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_sets_what_flags_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vdbd.toml");
    std::fs::write(&config, "max_k = 5\nmax_batch = 7\nlog = \"warn\"\n").unwrap();
    let config = config.display().to_string();
    // The file's max_k holds; the flag's max_batch wins over the file's.
    let server = Server::start(dir.path(), &["--config", &config, "--max-batch", "100"]);
    let mut c = server.client().await;
    create(&mut c, "cfg").await;
    c.upsert(pb::UpsertRequest {
        collection: "cfg".into(),
        rows: (0..50).map(row).collect(),
    })
    .await
    .unwrap();
    let e = c.search(search("cfg", vector(1), 6)).await.unwrap_err();
    assert!(e.message().contains("limit of 5"), "{}", e.message());
    c.search(search("cfg", vector(1), 5)).await.unwrap();
    drop(c);
    server.stop();

    // Unknown keys are refused with the file named.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "max_kay = 5\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vdbd"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("max_kay"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_hits_carry_the_payload_and_vector_they_were_scored_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut c = server.client().await;
    c.create_collection(pb::CreateCollectionRequest {
        name: "v".into(),
        config: Some(pb::CollectionConfig {
            dim: DIM as u32,
            nlist: Some(4),
            nprobe: Some(2),
            min_rows_per_list: Some(5),
            flush_rows: Some(64),
            ..Default::default()
        }),
        centroids: None,
    })
    .await
    .unwrap();
    // Row `id` at `version`: a different point per version, the version
    // in the payload.
    let versioned = |id: u64, version: u64| pb::Row {
        id,
        vector: vector(id * 1000 + version),
        payload: Some(format!("{id}@{version}").into_bytes()),
        fields: Default::default(),
    };
    let upsert = |rows: Vec<pb::Row>| pb::UpsertRequest {
        collection: "v".into(),
        rows,
    };
    c.upsert(upsert((0..200).map(|id| versioned(id, 0)).collect()))
        .await
        .unwrap();
    let writer = {
        let mut c = server.client().await;
        tokio::spawn(async move {
            for version in 1..=200u64 {
                let rows = (0..200)
                    .filter(|id| (id + version) % 3 == 0)
                    .map(|id| versioned(id, version))
                    .collect();
                c.upsert(upsert(rows)).await.unwrap();
                if version % 50 == 25 {
                    let req = pb::MaintenanceRequest {
                        collection: "v".into(),
                        nlist: None,
                    };
                    c.compact(req).await.unwrap();
                }
            }
        })
    };
    let mut checked = 0;
    let mut q = 0u64;
    while !writer.is_finished() || checked == 0 {
        q += 1;
        let query = vector(q % 200 * 1000 + q % 60);
        let mut req = search("v", query.clone(), 20);
        req.with_payload = true;
        req.with_vectors = true;
        req.nprobe = Some(1 + (q % 4) as u32);
        let r = c.search(req).await.unwrap().into_inner();
        for h in &r.results[0].hits {
            let payload = String::from_utf8(h.payload.clone().unwrap()).unwrap();
            let (id, version) = payload.split_once('@').unwrap();
            let (id, version): (u64, u64) = (id.parse().unwrap(), version.parse().unwrap());
            assert_eq!(id, h.id, "{h:?}");
            assert_eq!(h.vector, vector(id * 1000 + version), "{h:?}");
            let want: f32 = query
                .iter()
                .zip(&h.vector)
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            assert!(
                (h.distance - want).abs() <= 1e-3 * (1.0 + want),
                "distance {} is not the returned vector's {want}: {h:?}",
                h.distance
            );
            checked += 1;
        }
    }
    writer.await.unwrap();
    eprintln!("{checked} hits checked in {q} searches");
    assert!(checked > 0);
    server.stop();
}

/// A supervisor may signal as soon as the server says it listens: the
/// signal must already be caught (flush, exit 0), not end the process.
#[test]
fn a_signal_right_after_the_address_is_printed_stops_it_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..10 {
        Server::start(dir.path(), &[]).stop();
    }
}

/// An `ivf_rabitq` collection over the API: created with its index type,
/// described with it, searched (with a chosen error bound) with results
/// whose distances are exact, explained with its code estimates, altered
/// back; bad index types and bounds are refused naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ivf_rabitq_collection_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut c = server.client().await;
    let create = |name: &str, index_type: &str| pb::CreateCollectionRequest {
        name: name.into(),
        config: Some(pb::CollectionConfig {
            dim: DIM as u32,
            nlist: Some(4),
            nprobe: Some(2),
            min_rows_per_list: Some(10),
            flush_rows: Some(100),
            index_type: Some(index_type.into()),
            ..Default::default()
        }),
        centroids: None,
    };
    let e = c
        .create_collection(create("bad", "hnsw"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("config.index_type"), "{}", e.message());
    let info = c
        .create_collection(create("rq", "ivf_rabitq"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        info.config.unwrap().index_type.as_deref(),
        Some("ivf_rabitq")
    );
    c.upsert(pb::UpsertRequest {
        collection: "rq".into(),
        rows: (0..400).map(row).collect(),
    })
    .await
    .unwrap();
    c.flush(pb::MaintenanceRequest {
        collection: "rq".into(),
        nlist: None,
    })
    .await
    .unwrap();

    for q in 0..20u64 {
        let query = vector(10_000 + q);
        let mut req = search("rq", query.clone(), 10);
        req.nprobe = Some(4);
        req.rerank_epsilon = Some(4.0);
        let got = c.search(req.clone()).await.unwrap().into_inner();
        req.exact = true;
        let want = c.search(req).await.unwrap().into_inner();
        let ids =
            |r: &pb::SearchResponse| r.results[0].hits.iter().map(|h| h.id).collect::<Vec<_>>();
        assert_eq!(ids(&got), ids(&want), "query {q}");
        for h in &got.results[0].hits {
            let d: f32 = query
                .iter()
                .zip(vector(h.id))
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            assert!(
                (h.distance - d).abs() <= 1e-3 * (1.0 + d),
                "{h:?}: not the exact {d}"
            );
        }
    }
    let mut bad = search("rq", vector(1), 10);
    bad.rerank_epsilon = Some(-1.0);
    let e = c.search(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("rerank_epsilon"), "{}", e.message());

    let explained = c
        .explain(pb::ExplainRequest {
            collection: "rq".into(),
            query: Some(pb::Vector { values: vector(7) }),
            k: 5,
            nprobe: Some(2),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(explained.code_estimates > 0, "{explained:?}");
    let reranked: u64 = explained.probed.iter().map(|p| p.reranked).sum();
    assert_eq!(reranked, explained.fine_distances);

    let e = c
        .alter_collection(pb::AlterCollectionRequest {
            name: "rq".into(),
            index_type: Some("pq".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("index_type"), "{}", e.message());
    let info = c
        .alter_collection(pb::AlterCollectionRequest {
            name: "rq".into(),
            index_type: Some("ivf_flat".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.config.unwrap().index_type.as_deref(), Some("ivf_flat"));
    server.stop();
}
