//! The HTTP side: RPC at `/` (GET and POST), the admin endpoints under `/__sim/`, and an
//! accept loop that can drop a single connection without answering (the "dropped
//! connection" and "timeout after create" faults need a socket closed mid-request, which a
//! plain `axum::serve` cannot do).

use super::auth::{self, RawRequest};
use super::config::SimKey;
use super::errors::Rejection;
use super::faults::{FaultOutcome, Faults};
use super::state::{Params, SimState};
use super::stats::LogEntry;
use super::wire;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub(crate) const DBS_VERSION: &str = "2021-01-01";
pub(crate) const RDS_VERSION: &str = "2014-08-15";

/// State shared by every connection.
pub(crate) struct Shared {
    pub state: Mutex<SimState>,
    pub shutdown: CancellationToken,
    keys: Vec<SimKey>,
    /// AccessKey ids whose STS token the "cloud" now calls expired.
    expired_tokens: Mutex<std::collections::HashSet<String>>,
    tolerance: Duration,
    stall: Duration,
    /// The files behind finished URL tasks (files.rs).
    pub files: super::files::Files,
}

impl Shared {
    pub fn new(state: SimState) -> Self {
        Self {
            keys: state.config.keys.clone(),
            expired_tokens: Mutex::default(),
            tolerance: state.config.timestamp_tolerance,
            stall: state.config.stall,
            state: Mutex::new(state),
            shutdown: CancellationToken::new(),
            files: Default::default(),
        }
    }

    /// From now on, requests signed with this key's STS token fail with
    /// `InvalidSecurityToken.Expired` (a token revoked or past its expiry while a client
    /// still holds it).
    pub fn expire_security_token(&self, access_key_id: &str) {
        self.expired_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(access_key_id.to_string());
    }

    fn check_not_expired(&self, a: auth::Authenticated) -> Result<auth::Authenticated, Rejection> {
        let expired = self
            .expired_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if expired.contains(&a.access_key_id) {
            return Err(Rejection::of("InvalidSecurityToken.Expired"));
        }
        Ok(a)
    }

    /// The state lock; a panic elsewhere must not wedge the simulator.
    pub fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Lets a handler close its own connection without a response.
#[derive(Clone)]
struct ConnControl(CancellationToken);

/// The operations, selected by action and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    CreateDownload,
    DescribeDownloadTask,
    StorageInfo,
    RetryDownloadTask,
    DescribeDownloadSupport,
    DescribeBackups,
}

fn route(action: &str, version: &str) -> Option<Op> {
    Some(match (action, version) {
        ("CreateDownload", DBS_VERSION) => Op::CreateDownload,
        ("DescribeDownloadTask", DBS_VERSION) => Op::DescribeDownloadTask,
        ("DescribeDownloadBackupSetStorageInfo", DBS_VERSION) => Op::StorageInfo,
        ("RetryDownloadTask", DBS_VERSION) => Op::RetryDownloadTask,
        ("DescribeDownloadSupport", DBS_VERSION) => Op::DescribeDownloadSupport,
        ("DescribeBackups", RDS_VERSION) => Op::DescribeBackups,
        _ => return None,
    })
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(rpc).post(rpc))
        .route("/__sim/files/{task}/{*file}", get(super::files::serve_file))
        .route("/__sim/stats", get(admin_stats))
        .route("/__sim/tasks", get(admin_tasks))
        .route("/__sim/log", get(admin_log))
        .route(
            "/__sim/faults",
            get(admin_get_faults).post(admin_set_faults),
        )
        .route("/__sim/tasks/{id}/fail", post(admin_fail))
        .route("/__sim/instances/{id}/clear", post(admin_clear))
        .route("/__sim/advance", post(admin_advance))
        .route("/__sim/reset-stats", post(admin_reset))
        .with_state(shared)
}

/// Accept connections until `shutdown`; each connection can be killed by its handler.
pub(crate) async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    use hyper_util::rt::TokioIo;
    use tower::Service;
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let kill = shutdown.child_token();
        let router = router.clone();
        tokio::spawn(async move {
            let control = ConnControl(kill.clone());
            let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                req.extensions_mut().insert(control.clone());
                router.clone().call(req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = kill.cancelled() => {}
            }
        });
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string().to_ascii_uppercase()
}

struct CallLog<'a> {
    action: &'a str,
    version: &'a str,
    scheme: &'static str,
    instance: Option<String>,
    cluster_name: Option<String>,
    request_id: &'a str,
}

impl CallLog<'_> {
    fn record(&self, st: &mut SimState, code: &str, http_status: u16, task_id: Option<String>) {
        tracing::debug!(
            action = self.action,
            code,
            http_status,
            request_id = self.request_id,
            "simulator call"
        );
        *st.stats
            .calls
            .entry(self.action.to_string())
            .or_default()
            .entry(code.to_string())
            .or_default() += 1;
        let at_ms = st.wall_ms();
        st.log.push(LogEntry {
            seq: 0,
            at_ms,
            action: self.action.to_string(),
            version: self.version.to_string(),
            signature: self.scheme.to_string(),
            instance: self.instance.clone(),
            cluster_name: self.cluster_name.clone(),
            task_id,
            code: code.to_string(),
            http_status,
            request_id: self.request_id.to_string(),
        });
    }
}

fn json_response(
    status: u16,
    request_id: &str,
    body: Value,
    extra: &[(String, String)],
) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(body),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-acs-request-id", v);
    }
    for (k, v) in extra {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(k, v);
        }
    }
    resp
}

/// Wait `d`, or until the simulator shuts down.
async fn pause(shared: &Shared, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shared.shutdown.cancelled() => {}
    }
}

/// Close this connection without a response.
async fn hang_up(conn: &ConnControl) -> Response {
    conn.0.cancel();
    std::future::pending::<Response>().await
}

fn raw_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<RawRequest> {
    let query = crate::dbs::signing::parse_query(uri.query().unwrap_or(""))?;
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form = if is_form {
        url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    } else {
        Vec::new()
    };
    let headers = headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_ascii_lowercase(),
                v.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    Some(RawRequest {
        method: method.as_str().to_string(),
        path: uri.path().to_string(),
        query,
        form,
        headers,
        body: body.to_vec(),
    })
}

async fn rpc(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnControl>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rid = request_id();
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("dbs-api.cn-hangzhou.aliyuncs.com")
        .to_string();

    let latency = {
        let mut st = shared.lock();
        let (faults, rng) = st.faults_and_rng();
        faults.latency(rng)
    };
    if !latency.is_zero() {
        pause(&shared, latency).await;
    }

    let Some(raw) = raw_request(&method, &uri, &headers, &body) else {
        let e = Rejection::with_message(
            "InvalidParameter",
            "The query string is not valid percent-encoding.",
        );
        let log = CallLog {
            action: "Unknown",
            version: "",
            scheme: "none",
            instance: None,
            cluster_name: None,
            request_id: &rid,
        };
        log.record(&mut shared.lock(), &e.code, e.http_status, None);
        return json_response(
            e.http_status,
            &rid,
            wire::error(&rid, &host, "Dbs", &e),
            &[],
        );
    };
    let params = Params(raw.query.iter().chain(&raw.form).cloned().collect());
    let instance = params
        .get("InstanceName")
        .or_else(|| params.get("DBInstanceId"))
        .map(str::to_string);
    let cluster_name = params.get("ClusterName").map(str::to_string);
    let claimed = auth::claimed_action(&raw);

    let authed = match auth::authenticate(&raw, &shared.keys, shared.tolerance, chrono::Utc::now())
        .and_then(|a| shared.check_not_expired(a))
    {
        Ok(a) => a,
        Err(e) => {
            let log = CallLog {
                action: &claimed,
                version: "",
                scheme: "none",
                instance,
                cluster_name,
                request_id: &rid,
            };
            log.record(&mut shared.lock(), &e.code, e.http_status, None);
            return json_response(
                e.http_status,
                &rid,
                wire::error(&rid, &host, "Dbs", &e),
                &[],
            );
        }
    };
    let log = CallLog {
        action: &authed.action,
        version: &authed.version,
        scheme: authed.scheme.as_str(),
        instance,
        cluster_name,
        request_id: &rid,
    };
    let op = route(&authed.action, &authed.version);
    let product = if op == Some(Op::DescribeBackups) {
        "Rds"
    } else {
        "Dbs"
    };
    let reject = |st: &mut SimState, e: Rejection| {
        log.record(
            st,
            &e.code,
            e.http_status,
            params.get("TaskId").map(str::to_string),
        );
        json_response(
            e.http_status,
            &rid,
            wire::error(&rid, &host, product, &e),
            &e.headers,
        )
    };

    let fault = {
        let mut st = shared.lock();
        if !st.use_nonce(
            &authed.access_key_id,
            &authed.nonce,
            chrono::Utc::now().timestamp_millis(),
        ) {
            return reject(&mut st, Rejection::of("SignatureNonceUsed"));
        }
        let Some(_) = op else {
            return reject(&mut st, Rejection::of("InvalidApi.NotFound"));
        };
        let (faults, rng) = st.faults_and_rng();
        faults.decide(&authed.action, rng)
    };
    match fault {
        FaultOutcome::None => {}
        FaultOutcome::Drop => {
            log.record(&mut shared.lock(), "Dropped", 0, None);
            return hang_up(&conn).await;
        }
        FaultOutcome::Throttle { time_left_ms } => {
            let mut e = Rejection::of("Throttling.User");
            let reset = chrono::Utc::now().timestamp_millis() + time_left_ms as i64;
            e.headers.push((
                "x-ratelimit-user-api".into(),
                format!("Limit:100,Remain:0,TimeLeft:{time_left_ms},Reset:{reset}"),
            ));
            return reject(&mut shared.lock(), e);
        }
        FaultOutcome::Unavailable => {
            return reject(&mut shared.lock(), Rejection::of("ServiceUnavailable"))
        }
        FaultOutcome::Internal => {
            return reject(&mut shared.lock(), Rejection::of("InternalError"))
        }
        FaultOutcome::Error(code) => return reject(&mut shared.lock(), Rejection::of(&code)),
    }

    let op = op.expect("routed above");
    {
        let mut st = shared.lock();
        let quirks = st.config.quirks;
        let result: Result<(Value, Option<String>), Rejection> = match op {
            Op::CreateDownload => st.create_download(&params).map(|t| {
                (
                    wire::envelope(&rid, wire::created_task(&t, &quirks), &quirks),
                    Some(t.task_id),
                )
            }),
            Op::DescribeDownloadTask => st.describe_tasks(&params).map(|p| {
                (
                    wire::envelope(&rid, wire::task_page(&p, &quirks), &quirks),
                    None,
                )
            }),
            Op::StorageInfo => st.storage_info(&params).map(|s| {
                (
                    wire::envelope(&rid, wire::storage_info(&s, &quirks), &quirks),
                    params.get("TaskId").map(str::to_string),
                )
            }),
            Op::RetryDownloadTask => st
                .retry_task(&params)
                .map(|t| (wire::envelope(&rid, json!(""), &quirks), Some(t.task_id))),
            Op::DescribeDownloadSupport => st
                .download_support(&params)
                .map(|ok| (wire::envelope(&rid, json!(ok.to_string()), &quirks), None)),
            Op::DescribeBackups => st
                .describe_backups(&params)
                .map(|p| (wire::backups(&rid, &p), None)),
        };
        let (body, task_id) = match result {
            Err(e) => return reject(&mut st, e),
            Ok(ok) => ok,
        };
        let stall = op == Op::CreateDownload && {
            let (faults, rng) = st.faults_and_rng();
            faults.timeout_after_create.fire(&authed.action, rng)
        };
        if !stall {
            log.record(&mut st, "Success", 200, task_id);
            return json_response(200, &rid, body, &[]);
        }
        log.record(&mut st, "Stalled", 0, task_id);
    }
    // "Timeout after create": the task exists, the caller never hears about it.
    pause(&shared, shared.stall).await;
    hang_up(&conn).await
}

async fn admin_stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().stats.clone()).into_response()
}

async fn admin_tasks(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().task_views()).into_response()
}

async fn admin_log(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().log.snapshot()).into_response()
}

async fn admin_get_faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().faults.clone()).into_response()
}

fn admin_error(status: StatusCode, msg: String) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

async fn admin_set_faults(
    State(shared): State<Arc<Shared>>,
    Json(faults): Json<Faults>,
) -> Response {
    if let Err(e) = faults.validate() {
        return admin_error(StatusCode::BAD_REQUEST, e);
    }
    shared.lock().faults = faults.clone();
    Json(faults).into_response()
}

async fn admin_fail(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let mut st = shared.lock();
    if st.task_view(&id).is_none() {
        return admin_error(StatusCode::NOT_FOUND, format!("no task {id}"));
    }
    match st.fail_task(&id) {
        Ok(view) => Json(view).into_response(),
        Err(e) => admin_error(StatusCode::CONFLICT, e),
    }
}

async fn admin_clear(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let n = shared.lock().clear_instance(&id);
    Json(json!({ "instance": id, "cleared": n })).into_response()
}

#[derive(serde::Deserialize)]
struct Advance {
    seconds: f64,
}

async fn admin_advance(State(shared): State<Arc<Shared>>, Json(a): Json<Advance>) -> Response {
    let Ok(d) = Duration::try_from_secs_f64(a.seconds) else {
        return admin_error(
            StatusCode::BAD_REQUEST,
            "seconds: must be a number >= 0".into(),
        );
    };
    let mut st = shared.lock();
    st.advance(d);
    Json(json!({ "virtual_ms": st.virt_ms() })).into_response()
}

async fn admin_reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.lock().reset_stats();
    Json(json!({ "reset": true })).into_response()
}
