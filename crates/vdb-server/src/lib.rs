//! vdb's gRPC server: the `vdb.v1.Vdb` service (`proto/vdb/v1/vdb.proto`)
//! over the engine, with validation at the edge, one reviewed mapping of
//! engine errors to status codes ([`status`]), request limits, standard
//! health checking (`grpc.health.v1`) and server reflection, and the
//! `vdbd` binary.
//!
//! This crate knows the engine's public API only, never its files.

mod auth;
mod convert;
pub mod fields;
mod import;
pub mod metrics;
pub mod service;
mod snapshots;
pub mod status;
pub mod traces;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use vdb_engine::Engine;
use vdb_proto::v1::vdb_server::VdbServer;

pub use auth::{Access, ApiKeys, Rpc, read_only_rpcs};
pub use metrics::Metrics;
pub use service::{Limits, VdbService};

/// A certificate chain and its private key, PEM-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert_pem: Vec<u8>,
    /// The private key.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("TlsFiles")
            .field("cert_pem", &self.cert_pem.len())
            .finish_non_exhaustive()
    }
}

/// Transport settings of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Request limits.
    pub limits: Limits,
    /// API keys (none: no authentication).
    pub keys: ApiKeys,
    /// TLS: the server's certificate chain and private key, PEM-encoded
    /// (none: plaintext).
    pub tls: Option<TlsFiles>,
    /// Largest message accepted or sent, in bytes.
    pub max_message_bytes: usize,
    /// How `s3://` snapshot repositories are reached: the object store
    /// options (`vdbd --object-store-option`).
    pub object_store_options: Vec<(String, String)>,
    /// With a metrics listener: at most one search per collection per this
    /// interval is searched again exactly for the online recall estimate
    /// (`None`: no estimate).
    pub recall_sample_interval: Option<std::time::Duration>,
    /// After shutdown begins, how long requests in flight and open
    /// connections get before the server closes them anyway (an idle client
    /// must not hold a shutdown forever).
    pub shutdown_grace: std::time::Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            limits: Limits::default(),
            keys: ApiKeys::default(),
            tls: None,
            max_message_bytes: 64 << 20,
            object_store_options: Vec::new(),
            recall_sample_interval: Some(std::time::Duration::from_secs(1)),
            shutdown_grace: std::time::Duration::from_secs(10),
        }
    }
}

/// Serves `engine` on `listener` until `shutdown` completes, then stops
/// accepting connections and finishes the requests in flight (for at most
/// [`ServerOptions::shutdown_grace`]). The caller closes the engine
/// afterwards.
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    serve_with_metrics(engine, listener, None, options, shutdown).await
}

/// [`serve`], and Prometheus metrics at `/metrics` on `metrics_listener`
/// (plain HTTP) when given, until the same shutdown.
pub async fn serve_with_metrics(
    engine: Arc<Engine>,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let repositories = snapshots::Repositories {
        object_store_options: options.object_store_options.clone(),
    };
    let metrics = Metrics::new();
    let mut service = VdbService::new(Arc::clone(&engine), options.limits, options.keys)
        .with_metrics(Arc::clone(&metrics));
    if metrics_listener.is_some()
        && let Some(interval) = options.recall_sample_interval
    {
        let sampler = metrics::RecallSampler::start(
            Arc::downgrade(&engine),
            Arc::clone(&metrics.recall),
            interval,
        )?;
        service = service.with_recall_sampler(sampler);
    }
    let service = VdbServer::new(service.with_repositories(repositories))
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<VdbServer<VdbService>>().await;
    // Reflection in both versions clients speak: grpc.reflection.v1, and
    // v1alpha for grpcio-reflection, older grpcurl and GUI clients.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(vdb_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    // Small replies must not wait for Nagle's algorithm (tonic sets
    // TCP_NODELAY only on listeners it binds itself).
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        if let Ok(c) = &conn {
            let _ = c.set_nodelay(true);
        }
        conn
    });
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut stopping = rx.clone();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &options.tls {
        let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| anyhow::anyhow!("TLS certificate or key rejected: {e}"))?;
    }
    let metrics_server = metrics_listener.map(|l| {
        let mut stopping = rx.clone();
        tokio::spawn(metrics::serve_metrics(
            l,
            Arc::clone(&metrics),
            engine,
            async move {
                let _ = stopping.wait_for(|&s| s).await;
            },
        ))
    });
    let server = builder
        .layer(metrics::RequestMetricsLayer::new(metrics))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stopping.wait_for(|&s| s).await;
        });
    let grace = options.shutdown_grace;
    let deadline = async move {
        shutdown.await;
        let _ = tx.send(true);
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = server => r?,
        () = deadline => {
            tracing::warn!(?grace, "connections still open after the shutdown grace period; closing them");
        }
    }
    if let Some(m) = metrics_server {
        m.abort();
    }
    Ok(())
}
