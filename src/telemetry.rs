//! Logging (pretty or JSON), tracing and metrics set-up.

use crate::config::{LogFormat, TelemetrySettings};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Install the global subscriber once; later calls are no-ops (tests call it freely).
pub fn init(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.log_level.clone()));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match settings.log_format {
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
}

/// The process-wide Prometheus recorder's handle, installed on first use.
///
/// Installing a global recorder can only happen once per process, and tests start many
/// servers in one process, so the handle is kept in a `OnceLock`. When some other recorder
/// was installed first, metrics recorded through the `metrics` macros go there and this
/// handle renders an empty (but valid) exposition rather than failing `/metrics`.
pub fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    use metrics_exporter_prometheus::PrometheusBuilder;
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
        })
        .clone()
}
