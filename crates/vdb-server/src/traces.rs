//! Traces: one span per request of the `vdb.v1.Vdb` service, named after
//! its method (`vdb.v1.Vdb/Search`), opened by the metrics layer when the
//! request arrives and closed when its status is sent (for a streamed
//! response, after its last message). It carries the status code and what
//! the handler adds: the collection, and for a search the nprobe used, the
//! queries, the lists probed, the rows scored and the exact distances.
//!
//! The spans are `tracing` spans at DEBUG level under the target
//! [`TARGET`]: with nothing configured the logging layer (INFO by default)
//! disables them at their call site, so they cost nothing. `vdbd
//! --otlp-endpoint URL` adds a `tracing-opentelemetry` layer that enables
//! only them and exports them over OTLP/gRPC in batches.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The target of the request spans.
pub const TARGET: &str = "vdb.rpc";

/// A tracer provider exporting to the OTLP/gRPC collector at `endpoint`
/// (e.g. `http://127.0.0.1:4317`) in batches. Build it inside the tokio
/// runtime: the exporter's connection runs on it.
pub fn otlp_provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| anyhow::anyhow!("--otlp-endpoint {endpoint}: {e}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build())
}

/// What the spans say about their service.
pub fn resource() -> Resource {
    Resource::builder()
        .with_service_name("vdbd")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build()
}

/// A layer that turns the request spans (and only them) into spans of
/// `provider`'s tracer.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("vdbd"))
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.target() == TARGET
        }))
}
