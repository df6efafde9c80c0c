//! The admin HTTP API (axum): enqueue and inspect downloads, schedules, instances, health,
//! `/metrics` and the OpenAPI document. The operator console (`crate::console`) is merged
//! into the same router under `/ui/`.
//!
//! `app::run` builds an [`ApiState`], binds `api.listen` and calls [`serve`]; tests call
//! [`router`] or [`serve`] on a port-0 listener. Every route is registered through
//! [`Routes`], which records `(method, path)`, so a test can check that the OpenAPI document
//! and the served routes never drift apart.

pub mod auth;
pub mod downloads;
pub mod error;
pub mod extract;
pub mod health;
pub mod instances;
pub mod openapi;
pub mod schedules;
pub mod views;

use crate::clock::{DynClock, SystemClock};
use crate::config::{ApiSettings, Settings};
use crate::scheduler::BackupFinder;
use crate::store::DynStore;
use auth::Auth;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, MethodRouter};
use axum::{Extension, Router};
use error::ApiError;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub store: DynStore,
    pub settings: Arc<ApiSettings>,
    pub auth: Arc<Auth>,
    /// `worker.default_max_attempts`, for enqueues that do not say.
    pub default_max_attempts: i32,
    pub metrics: PrometheusHandle,
    /// "Now" for schedule operations (a `ManualClock` in tests).
    pub clock: DynClock,
    /// Resolves `latest_full` for schedule preview / run-now; `None` skips those instances
    /// with reason `backup_lookup_failed` (as the scheduler does without a DBS client).
    pub backups: Option<Arc<dyn BackupFinder>>,
    /// `scheduler.latest_full_window_hours`.
    pub backup_window: chrono::Duration,
    /// `[[sinks]]`: a request's `sink` must name one of them.
    pub sinks: Arc<Vec<crate::archive::SinkSettings>>,
    /// The operator console's sessions and settings.
    pub console: Arc<crate::console::Console>,
}

impl ApiState {
    pub fn new(store: DynStore, settings: &Settings) -> Self {
        Self {
            store,
            auth: Arc::new(Auth::new(&settings.api.tokens)),
            settings: Arc::new(settings.api.clone()),
            default_max_attempts: settings.worker.default_max_attempts,
            metrics: crate::telemetry::metrics_handle(),
            clock: Arc::new(SystemClock),
            backups: None,
            backup_window: chrono::Duration::hours(i64::from(
                settings.scheduler.latest_full_window_hours,
            )),
            sinks: Arc::new(settings.sinks.clone()),
            console: Arc::new(crate::console::Console::new(&settings.console)),
        }
    }

    /// Resolve `latest_full` with this (production: the `DbsClient`).
    pub fn with_backups(mut self, backups: Arc<dyn BackupFinder>) -> Self {
        self.backups = Some(backups);
        self
    }

    pub fn with_clock(mut self, clock: DynClock) -> Self {
        self.clock = clock;
        self
    }
}

/// A router that remembers what it serves.
pub struct Routes {
    router: Router<ApiState>,
    table: Vec<(Method, &'static str)>,
}

impl Routes {
    fn new() -> Self {
        Self {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    fn add(mut self, method: Method, path: &'static str, route: MethodRouter<ApiState>) -> Self {
        self.table.push((method, path));
        self.router = self.router.route(path, route);
        self
    }

    fn get<H: Handler<T, ApiState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Method::GET, path, routing::get(h))
    }

    fn post<H: Handler<T, ApiState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Method::POST, path, routing::post(h))
    }

    fn put<H: Handler<T, ApiState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Method::PUT, path, routing::put(h))
    }

    fn delete<H: Handler<T, ApiState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Method::DELETE, path, routing::delete(h))
    }
}

/// Every route, in one place.
fn routes() -> Routes {
    Routes::new()
        .get("/healthz", health::healthz)
        .get("/readyz", health::readyz)
        .get("/metrics", health::metrics)
        .get("/v1/openapi.json", openapi::openapi_json)
        .post("/v1/downloads", downloads::enqueue)
        .get("/v1/downloads", downloads::list)
        .get("/v1/downloads/{id}", downloads::get)
        .delete("/v1/downloads/{id}", downloads::delete)
        .post("/v1/downloads/{id}/cancel", downloads::cancel)
        .post("/v1/downloads/{id}/retry", downloads::retry)
        .get("/v1/instances", instances::list)
        .get("/v1/instances/{region}/{instance}", instances::get)
        .put("/v1/instances/{region}/{instance}", instances::register)
        .post(
            "/v1/instances/{region}/{instance}/unblock",
            instances::unblock,
        )
        .post("/v1/schedules", schedules::create)
        .get("/v1/schedules", schedules::list)
        .get("/v1/schedules/{name}", schedules::get)
        .put("/v1/schedules/{name}", schedules::update)
        .delete("/v1/schedules/{name}", schedules::delete)
        .post("/v1/schedules/{name}/pause", schedules::pause)
        .post("/v1/schedules/{name}/resume", schedules::resume)
        .get("/v1/schedules/{name}/preview", schedules::preview)
        .post("/v1/schedules/{name}/run-now", schedules::run_now)
}

/// `(method, path)` of every served route, paths in OpenAPI template syntax.
pub fn route_table() -> Vec<(Method, &'static str)> {
    routes().table
}

/// The complete application: routes, auth, limits, timeouts, error shapes, metrics.
pub fn router(state: ApiState) -> Router {
    let limit = state.settings.body_limit_bytes;
    let timeout = Duration::from_millis(state.settings.request_timeout_ms);
    routes()
        .router
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .layer(Extension(extract::BodyLimit(limit)))
        .layer(middleware::from_fn(move |req, next| {
            with_timeout(timeout, req, next)
        }))
        .layer(middleware::from_fn(record_metrics))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(http_span)
                .on_response(|res: &Response, latency: Duration, span: &tracing::Span| {
                    span.record("status", res.status().as_u16());
                    tracing::debug!(
                        status = res.status().as_u16(),
                        latency_ms = latency.as_millis() as u64,
                        "response"
                    );
                }),
        )
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .with_state(state)
}

/// Serve until `shutdown` fires, then finish in-flight requests.
pub async fn serve(
    state: ApiState,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin API listening");
        tracing::info!(url = %format!("http://{addr}/ui/"), "operator console");
    }
    if state.auth.is_empty() {
        tracing::warn!(
            "no API token is configured (api.tokens): the API refuses every call and nobody \
             can sign in to the console"
        );
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Bind `api.listen` and serve as one of `serve`'s services until `stop` fires. A failure
/// to bind ends the service with an error naming the key, which stops `serve`.
pub fn spawn(
    state: ApiState,
    services: &mut tokio::task::JoinSet<anyhow::Result<()>>,
    stop: &CancellationToken,
) {
    let stop = stop.clone();
    services.spawn(async move {
        let listen = state.settings.listen.clone();
        let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                " (another program has that port: pick another with \
                     DBS_ARCHIVER__API__LISTEN=127.0.0.1:PORT or [api] listen)"
            } else {
                ""
            };
            anyhow::anyhow!("api.listen: cannot listen on {listen}: {e}{hint}")
        })?;
        serve(state, listener, stop)
            .await
            .map_err(|e| anyhow::anyhow!("admin API server failed: {e}"))
    });
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn with_timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::Timeout(limit.as_millis() as u64).into_response(),
    }
}

fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
}

/// One `http.request` span per request: method, route template, path, status. Never
/// headers (the bearer token lives there).
fn http_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    tracing::info_span!(
        "http.request",
        method = %req.method(),
        route = %route,
        path = %req.uri().path(),
        status = tracing::field::Empty,
    )
}

/// `dbs_archiver_api_requests_total{method,route,status}` and the latency histogram.
/// `route` is the matched template (a small fixed set), never the raw path.
async fn record_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("dbs_archiver_api_requests_total",
        "method" => method.clone(), "route" => route.clone(), "status" => status)
    .increment(1);
    metrics::histogram!("dbs_archiver_api_request_duration_seconds",
        "method" => method, "route" => route)
    .record(start.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn slow_requests_time_out_in_the_error_shape() {
        let app: Router = Router::new()
            .route(
                "/slow",
                routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            )
            .route("/fast", routing::get(|| async { "ok" }))
            .layer(middleware::from_fn(|req, next| {
                with_timeout(Duration::from_secs(1), req, next)
            }));
        let get = |path: &str| Request::builder().uri(path).body(Body::empty()).unwrap();
        let r = app.clone().oneshot(get("/slow")).await.unwrap();
        assert_eq!(r.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "timeout");
        let r = app.oneshot(get("/fast")).await.unwrap();
        assert_eq!(r.status(), axum::http::StatusCode::OK);
    }
}
