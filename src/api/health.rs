//! Liveness, readiness and the Prometheus scrape endpoint.

use super::error::{error_chain, ApiError, ErrorBody};
use super::views::HealthStatus;
use super::ApiState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

/// Liveness: the process answers HTTP. Touches nothing else, so a slow database never
/// gets a healthy process restarted.
#[utoipa::path(
    get, path = "/healthz", tag = "health", security((), ("bearer" = [])),
    responses((status = 200, description = "Alive", body = HealthStatus))
)]
pub async fn healthz() -> Json<HealthStatus> {
    Json(HealthStatus {
        status: "ok".into(),
    })
}

/// Readiness: the database answers and every migration is applied.
#[utoipa::path(
    get, path = "/readyz", tag = "health", security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Ready", body = HealthStatus),
        (status = 503, description = "Database unreachable or migrations missing", body = ErrorBody),
    )
)]
pub async fn readyz(State(state): State<ApiState>) -> Result<Json<HealthStatus>, ApiError> {
    match state.store.ready().await {
        Ok(true) => Ok(Json(HealthStatus {
            status: "ready".into(),
        })),
        Ok(false) => Err(ApiError::Unavailable {
            code: "not_ready",
            message: "database migrations are not all applied".into(),
        }),
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "readiness check failed");
            Err(ApiError::Unavailable {
                code: "database_unavailable",
                message: "the database is not reachable".into(),
            })
        }
    }
}

/// Prometheus text exposition of every `dbs_archiver_*` metric.
#[utoipa::path(
    get, path = "/metrics", tag = "health", security((), ("bearer" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    crate::telemetry::metrics::refresh();
    state.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
