//! A tower layer around the gRPC router that counts every request of the
//! `vdb.v1.Vdb` service by method and status code, with its latency.
//!
//! gRPC puts a request's status in one of two places: the response
//! headers when the handler failed before answering (a "trailers-only"
//! response, as tonic sends every error of a unary call), or the trailers
//! after the last message. The layer reads the headers first, and else
//! wraps the body to read the trailers as they pass; a body dropped before
//! its trailers (the client went away) counts as `CANCELLED`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use super::Metrics;

/// The path prefix of the service's methods.
const SERVICE_PATH: &str = "/vdb.v1.Vdb/";

/// Counts requests into [`Metrics`].
#[derive(Debug, Clone)]
pub(crate) struct RequestMetricsLayer {
    metrics: Arc<Metrics>,
}

impl RequestMetricsLayer {
    pub(crate) fn new(metrics: Arc<Metrics>) -> RequestMetricsLayer {
        RequestMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> RequestMetrics<S> {
        RequestMetrics {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// The service [`RequestMetricsLayer`] wraps around the router.
#[derive(Debug, Clone)]
pub(crate) struct RequestMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// A request being answered: what to record when its status is known.
/// Its span ([`crate::traces`]) closes when this is dropped, after the
/// status.
struct Pending {
    metrics: Arc<Metrics>,
    rpc: String,
    start: Instant,
    span: tracing::Span,
}

impl Pending {
    fn record(self, code: tonic::Code) {
        self.metrics.observe(&self.rpc, code, self.start.elapsed());
        self.span
            .record("rpc.grpc.status_code", code as i32)
            .record("code", super::code_name(code));
        if code != tonic::Code::Ok {
            self.span.record("otel.status_code", "ERROR");
        }
    }
}

/// The span of a request of `rpc`: DEBUG, so that it costs nothing unless
/// a layer enables it (`vdbd --otlp-endpoint`); the handler fills in the
/// empty fields it knows.
fn request_span(rpc: &str) -> tracing::Span {
    tracing::debug_span!(
        target: crate::traces::TARGET,
        "request",
        otel.name = format!("vdb.v1.Vdb/{rpc}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = "vdb.v1.Vdb",
        rpc.method = rpc,
        rpc.grpc.status_code = tracing::field::Empty,
        code = tracing::field::Empty,
        collection = tracing::field::Empty,
        nprobe = tracing::field::Empty,
        queries = tracing::field::Empty,
        lists_probed = tracing::field::Empty,
        rows_scanned = tracing::field::Empty,
        exact_distances = tracing::field::Empty,
    )
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RequestMetrics<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        // Health checks and reflection are not the service's requests.
        let pending = req
            .uri()
            .path()
            .strip_prefix(SERVICE_PATH)
            .map(|rpc| Pending {
                metrics: Arc::clone(&self.metrics),
                rpc: rpc.to_string(),
                start: Instant::now(),
                span: request_span(rpc),
            });
        let span = pending
            .as_ref()
            .map_or_else(tracing::Span::none, |p| p.span.clone());
        let answer = self.inner.call(req).instrument(span);
        Box::pin(async move {
            let response = answer.await?;
            let pending = match (pending, header_status(response.headers())) {
                (Some(p), Some(code)) => {
                    p.record(code);
                    None
                }
                (p, _) => p,
            };
            Ok(response.map(|body| ObservedBody { body, pending }))
        })
    }
}

/// The `grpc-status` of `headers`, if they have one.
fn header_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?;
    Some(tonic::Code::from_bytes(value.as_bytes()))
}

/// A response body that records its request when its trailers pass (or
/// when it ends or is dropped without them).
pub(crate) struct ObservedBody<B> {
    body: B,
    pending: Option<Pending>,
}

impl<B> Drop for ObservedBody<B> {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.record(tonic::Code::Cancelled);
        }
    }
}

// tonic's body is a boxed one, so `Unpin`: no pin projection needed.
impl<B: Body + Unpin> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(header_status)
                    && let Some(p) = this.pending.take()
                {
                    p.record(code);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(p) = this.pending.take() {
                    p.record(tonic::Code::Internal);
                }
            }
            // Ended without a status: gRPC calls that OK's absence an
            // error, but tonic always sends one; count what the client saw.
            Poll::Ready(None) => {
                if let Some(p) = this.pending.take() {
                    p.record(tonic::Code::Unknown);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
