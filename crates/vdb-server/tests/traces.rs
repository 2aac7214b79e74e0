//! Request spans exported through OpenTelemetry: a server in this process,
//! the tracing layer `vdbd --otlp-endpoint` installs, and OpenTelemetry's
//! in-memory exporter in place of the OTLP one. Each request of the
//! service is one server span named after its method, with its status
//! and what it did.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::sync::Arc;

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use vdb_proto::v1 as pb;
use vdb_proto::v1::vdb_client::VdbClient;

/// The value of a span's attribute `key`.
fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::from(key.to_string()))
        .map(|kv| kv.value.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_a_span_with_its_status_and_work() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_resource(vdb_server::traces::resource())
        .build();
    tracing_subscriber::registry()
        .with(vdb_server::traces::layer(&provider))
        .init();

    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(vdb_engine::Engine::open(dir.path()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(vdb_server::serve(
        Arc::clone(&engine),
        listener,
        vdb_server::ServerOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let mut c = VdbClient::connect(format!("http://{addr}")).await.unwrap();

    c.create_collection(pb::CreateCollectionRequest {
        name: "traced".into(),
        config: Some(pb::CollectionConfig {
            dim: 4,
            nlist: Some(4),
            min_rows_per_list: Some(10),
            ..Default::default()
        }),
        centroids: None,
    })
    .await
    .unwrap();
    c.upsert(pb::UpsertRequest {
        collection: "traced".into(),
        rows: (0..200u64)
            .map(|id| pb::Row {
                id,
                vector: vec![
                    (id % 7) as f32,
                    (id % 5) as f32,
                    (id % 3) as f32,
                    id as f32 / 50.0,
                ],
                ..Default::default()
            })
            .collect(),
    })
    .await
    .unwrap();
    c.flush(pb::MaintenanceRequest {
        collection: "traced".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let search = |collection: &str| pb::SearchRequest {
        collection: collection.into(),
        queries: vec![pb::Vector {
            values: vec![1.0, 2.0, 0.0, 1.0],
        }],
        k: 5,
        nprobe: Some(2),
        ..Default::default()
    };
    c.search(search("traced")).await.unwrap();
    c.search(search("missing")).await.unwrap_err();

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let named =
        |name: &str| -> Vec<&SpanData> { spans.iter().filter(|s| s.name == name).collect() };

    for rpc in ["CreateCollection", "Upsert", "Flush"] {
        let s = named(&format!("vdb.v1.Vdb/{rpc}"));
        assert_eq!(s.len(), 1, "{rpc}: {spans:#?}");
        assert_eq!(attr(s[0], "code"), Some(Value::from("OK")), "{rpc}");
    }
    assert_eq!(
        attr(named("vdb.v1.Vdb/Upsert")[0], "collection"),
        Some(Value::from("traced"))
    );

    let searches = named("vdb.v1.Vdb/Search");
    assert_eq!(searches.len(), 2);
    let ok = searches
        .iter()
        .find(|s| attr(s, "code") == Some(Value::from("OK")))
        .unwrap();
    assert_eq!(ok.span_kind, SpanKind::Server);
    assert_eq!(attr(ok, "collection"), Some(Value::from("traced")));
    assert_eq!(attr(ok, "rpc.system"), Some(Value::from("grpc")));
    assert_eq!(attr(ok, "rpc.grpc.status_code"), Some(Value::I64(0)));
    assert_eq!(attr(ok, "nprobe"), Some(Value::I64(2)));
    assert_eq!(attr(ok, "queries"), Some(Value::I64(1)));
    assert_eq!(attr(ok, "lists_probed"), Some(Value::I64(2)));
    let Some(Value::I64(scanned)) = attr(ok, "rows_scanned") else {
        panic!("no rows_scanned: {ok:#?}");
    };
    assert!((1..=200).contains(&scanned), "{scanned}");
    // ivf_flat: every row scored is an exact distance.
    assert_eq!(attr(ok, "exact_distances"), Some(Value::I64(scanned)));
    assert_ne!(ok.status, Status::error(""));

    let missing = searches
        .iter()
        .find(|s| attr(s, "code") == Some(Value::from("NOT_FOUND")))
        .unwrap();
    assert!(
        matches!(missing.status, Status::Error { .. }),
        "{missing:#?}"
    );
    assert_eq!(attr(missing, "rpc.grpc.status_code"), Some(Value::I64(5)));
    engine.shutdown().unwrap();
}
