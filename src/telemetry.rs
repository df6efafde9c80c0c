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
