//! Trace export: `tracing` spans → OpenTelemetry → OTLP/HTTP with JSON bodies.
//!
//! JSON rather than protobuf so that anything — a Jaeger or collector on :4318, or the
//! small receiver in the tests — can read what we send. The batch processor runs on its
//! own thread with the blocking reqwest client, so exporting never competes with the
//! service's runtime and [`shutdown`] can flush from anywhere, even after the runtime is
//! gone.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::sync::Mutex;
use std::time::Duration;
use tracing_subscriber::{Layer, Registry};

/// The service name traces carry (`service.name`).
pub const SERVICE_NAME: &str = "dbs-archiver";

/// A boxed layer for the global subscriber.
pub type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

static PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);

/// Why trace export could not start (the endpoint is wrong, usually).
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("must be an http:// or https:// URL such as http://127.0.0.1:4318, got {0:?}")]
    BadEndpoint(String),
    #[error("cannot build the OTLP exporter: {0}")]
    Build(String),
}

/// `http://host:4318` → `http://host:4318/v1/traces` (a full `/v1/traces` URL is kept).
/// An endpoint set in code is used as-is by the exporter, unlike the environment variable.
pub fn traces_url(endpoint: &str) -> Result<String, OtlpError> {
    let trimmed = endpoint.trim().trim_end_matches('/');
    let parsed =
        url::Url::parse(trimmed).map_err(|_| OtlpError::BadEndpoint(endpoint.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(OtlpError::BadEndpoint(endpoint.to_string()));
    }
    Ok(if trimmed.ends_with("/v1/traces") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/v1/traces")
    })
}

/// The OpenTelemetry layer and its provider, or `None` when `endpoint` is empty.
pub fn layer(endpoint: &str) -> Result<Option<(BoxedLayer, SdkTracerProvider)>, OtlpError> {
    if endpoint.trim().is_empty() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(traces_url(endpoint)?)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| OtlpError::Build(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name(SERVICE_NAME)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer(SERVICE_NAME);
    let layer = tracing_opentelemetry::layer().with_tracer(tracer).boxed();
    Ok(Some((layer, provider)))
}

/// Keep the installed provider so [`shutdown`] can flush it.
pub(crate) fn remember(provider: SdkTracerProvider) {
    *PROVIDER.lock().expect("otlp provider lock") = Some(provider);
}

/// Flush the last batch and stop the exporter; later calls do nothing.
pub fn shutdown() {
    let provider = PROVIDER.lock().expect("otlp provider lock").take();
    if let Some(provider) = provider {
        if let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5)) {
            eprintln!("trace export: flush at shutdown failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_gets_the_traces_path_once() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://jaeger:4318/").unwrap(),
            "http://jaeger:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example/v1/traces").unwrap(),
            "https://otel.example/v1/traces"
        );
        assert!(traces_url("jaeger:4318").is_err());
        assert!(traces_url("ftp://x/").is_err());
    }
}
