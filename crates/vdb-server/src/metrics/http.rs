//! The `/metrics` endpoint: plain HTTP/1.1 on a listener of its own, GET
//! only, one scrape per request.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use vdb_engine::Engine;

use super::Metrics;

/// Prometheus's text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `GET /metrics` on `listener` with `metrics` (reading `engine`
/// at each scrape) until `shutdown` completes; connections still open
/// then are dropped (a scrape is short and Prometheus retries).
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little
                    // rather than spin, and keep serving.
                    tracing::warn!(error = %e, "metrics listener cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (metrics, engine) = (Arc::clone(&metrics), Arc::clone(&engine));
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let (metrics, engine) = (Arc::clone(&metrics), Arc::clone(&engine));
                async move { Ok::<_, Infallible>(answer(req, metrics, engine).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "metrics connection ended with an error");
            }
        });
    }
    connections.shutdown().await;
}

/// The answer to one HTTP request.
async fn answer(
    req: Request<Incoming>,
    metrics: Arc<Metrics>,
    engine: Arc<Engine>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: Vec<u8>| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = content_type.parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    let text = "text/plain; charset=utf-8";
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            text,
            b"not found: vdbd serves its metrics at /metrics\n".to_vec(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            text,
            b"method not allowed: GET /metrics\n".to_vec(),
        );
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return r;
    }
    // Reading every collection's statistics takes their locks: off the
    // runtime's worker threads.
    match tokio::task::spawn_blocking(move || metrics.scrape(&engine)).await {
        Ok(body) => reply(StatusCode::OK, TEXT_FORMAT, body),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            text,
            format!("the scrape failed: {e}\n").into_bytes(),
        ),
    }
}
