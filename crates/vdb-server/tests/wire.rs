//! Guards the wire: request bytes that are not valid protobuf (a bad
//! varint, a message cut short, a string field that is not UTF-8) are
//! answered `INVALID_ARGUMENT` naming the message, for unary and streaming
//! calls, and change nothing; server reflection answers in both versions
//! clients speak (`grpc.reflection.v1` and `v1alpha`).

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

mod common;

use bytes::{Buf, BufMut};
use common::Server;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use vdb_proto::v1 as pb;

/// Sends and receives raw message bytes, so a test can send what no
/// protobuf encoder would.
#[derive(Debug, Clone, Default)]
struct Raw;

#[derive(Debug)]
struct RawEncoder;

#[derive(Debug)]
struct RawDecoder;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

/// Field 1 (`collection` in every request here), length-delimited, whose
/// bytes are broken three ways.
fn broken() -> [(&'static str, Vec<u8>); 3] {
    [
        // The length is a varint that never ends (11 continuation bytes).
        ("a bad varint", [vec![0x0a], vec![0xff; 11]].concat()),
        // Says 10 bytes follow; 3 do.
        ("a message cut short", vec![0x0a, 10, b'a', b'b', b'c']),
        // A string field holding bytes that are not UTF-8.
        ("a string that is not UTF-8", vec![0x0a, 2, 0xff, 0xfe]),
    ]
}

async fn channel(server: &Server) -> Channel {
    Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_are_invalid_argument_naming_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut c = server.client().await;
    c.create_collection(pb::CreateCollectionRequest {
        name: "c".into(),
        config: Some(pb::CollectionConfig {
            dim: 2,
            ..Default::default()
        }),
        centroids: None,
    })
    .await
    .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel(&server).await);
    for (what, bytes) in broken() {
        for (method, message) in [
            ("/vdb.v1.Vdb/Search", "vdb.v1.SearchRequest"),
            ("/vdb.v1.Vdb/Upsert", "vdb.v1.UpsertRequest"),
            (
                "/vdb.v1.Vdb/CreateCollection",
                "vdb.v1.CreateCollectionRequest",
            ),
        ] {
            grpc.ready().await.unwrap();
            let err = grpc
                .unary(
                    tonic::Request::new(bytes.clone()),
                    PathAndQuery::from_static(method),
                    Raw,
                )
                .await
                .expect_err("undecodable bytes must be refused");
            assert_eq!(
                err.code(),
                Code::InvalidArgument,
                "{what} to {method}: {err:?}"
            );
            assert!(
                err.message().contains(message),
                "{what} to {method}: the message names {message}: {}",
                err.message()
            );
        }
        // A client stream whose first message does not decode.
        grpc.ready().await.unwrap();
        let stream = tokio_stream::iter(vec![bytes.clone()]);
        let err = grpc
            .client_streaming(
                tonic::Request::new(stream),
                PathAndQuery::from_static("/vdb.v1.Vdb/Import"),
                Raw,
            )
            .await
            .expect_err("undecodable bytes must be refused");
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{what} to Import: {err:?}"
        );
        assert!(
            err.message().contains("vdb.v1.ImportRequest"),
            "{}",
            err.message()
        );
    }
    // Nothing was stored or created.
    let info = c
        .describe_collection(pb::DescribeCollectionRequest {
            name: "c".into(),
            lists: false,
        })
        .await
        .unwrap()
        .into_inner();
    let stats = info.stats.unwrap();
    assert_eq!((stats.rows, stats.last_lsn), (0, 0));
    let names = c
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .names;
    assert_eq!(names, vec!["c".to_string()]);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_answers_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);

    let mut client =
        v1::server_reflection_client::ServerReflectionClient::new(channel(&server).await);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let v1_services = match answers.message().await.unwrap().unwrap().message_response {
        Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(l)) => {
            l.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
        }
        other => panic!("v1: {other:?}"),
    };

    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(channel(&server).await);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let v1alpha_services = match answers.message().await.unwrap().unwrap().message_response {
        Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(l)) => {
            l.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
        }
        other => panic!("v1alpha: {other:?}"),
    };
    for services in [&v1_services, &v1alpha_services] {
        assert!(services.iter().any(|s| s == "vdb.v1.Vdb"), "{services:?}");
        assert!(
            services.iter().any(|s| s == "grpc.health.v1.Health"),
            "{services:?}"
        );
    }
    server.stop();
}
