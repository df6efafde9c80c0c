//! Logs (pretty or JSON), traces (OTLP/HTTP when `telemetry.otlp_endpoint` is set) and
//! Prometheus metrics: everything an operator watches. docs/metrics.md lists the metrics;
//! docs/operations.md explains the dashboards and alerts built on them.
//!
//! - [`metrics`]: the catalogue (names, kinds, labels) and the helpers the services call,
//!   so a name is spelled in one place;
//! - [`collector`]: a small service that turns database state into gauges (and counts jobs
//!   enqueued by plain SQL, which bypass our code);
//! - [`otlp`]: the OpenTelemetry tracer provider and its flush at shutdown.

pub mod collector;
pub mod metrics;
pub mod otlp;

use crate::config::{LogFormat, TelemetrySettings};
use tracing_subscriber::{fmt, prelude::*, EnvFilter, Layer, Registry};

/// Install the metrics recorder and the global subscriber once; later calls are no-ops
/// (tests call it freely). With an OTLP endpoint, spans are also exported; call
/// [`shutdown`] before the process exits so the last batch is not lost.
pub fn init(settings: &TelemetrySettings) {
    // The recorder must exist before the first metric is recorded, or early samples go
    // to the no-op recorder.
    let _ = metrics_handle();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.log_level.clone()));
    let log_layer: Box<dyn Layer<Registry> + Send + Sync> = match settings.log_format {
        LogFormat::Json => fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
        // Colours only on a terminal: a log file or a collector gets plain text.
        LogFormat::Pretty => fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let (otel_layer, provider) = match otlp::layer(&settings.otlp_endpoint) {
        Ok(Some((layer, provider))) => (Some(layer), Some(provider)),
        Ok(None) => (None, None),
        Err(e) => {
            // Traces are an aid, not a duty: start without them rather than not at all.
            eprintln!("telemetry.otlp_endpoint: {e}; continuing without trace export");
            (None, None)
        }
    };
    let mut layers = vec![log_layer];
    layers.extend(otel_layer);
    let installed = tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init()
        .is_ok();
    if let (true, Some(provider)) = (installed, provider) {
        otlp::remember(provider);
        tracing::info!(endpoint = %settings.otlp_endpoint, "exporting traces over OTLP/HTTP (JSON)");
    }
}

/// Flush and stop trace export (no-op without OTLP). Blocks until the exporter has sent
/// what it holds or timed out, so call it once, at the very end.
pub fn shutdown() {
    otlp::shutdown();
}

/// The process-wide Prometheus recorder's handle, installed on first use.
///
/// Installing a global recorder can only happen once per process, and tests start many
/// servers in one process, so the handle is kept in a `OnceLock`. When some other recorder
/// was installed first, metrics recorded through the `metrics` macros go there and this
/// handle renders an empty (but valid) exposition rather than failing `/metrics`.
pub fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = self::metrics::builder()
                .install_recorder()
                .unwrap_or_else(|_| self::metrics::builder().build_recorder().handle());
            self::metrics::describe_all();
            handle
        })
        .clone()
}
