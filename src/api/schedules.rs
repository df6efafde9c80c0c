//! `/v1/schedules`: create, list, get, update, pause, resume, delete, preview, run-now.
//!
//! Thin: every operation is `scheduler::ops`, shared with the CLI. `{name}` in a path is a
//! schedule's name, or its numeric id when no schedule has that name.
//!
//! Bodies deserialize straight into [`ScheduleSpec`] and responses serialize the scheduler's
//! own types; the `*Doc` structs below only describe them in the OpenAPI document, and
//! tests check that the two list the same fields.

use super::error::{ApiError, ErrorBody};
use super::extract::{parse_time, printable, query_params, JsonBody};
use super::views::RequestView;
use super::ApiState;
use crate::scheduler::fire::FireOutcome;
use crate::scheduler::model::{Schedule, ScheduleOrigin, ScheduleRun, ScheduleSpec};
use crate::scheduler::{ops, SchedulerError};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// How many upcoming fire times `GET /v1/schedules/{name}` shows.
pub const NEXT_FIRES: usize = 5;
/// How many history rows `GET /v1/schedules/{name}` shows.
pub const RECENT_RUNS: u32 = 20;

impl From<SchedulerError> for ApiError {
    fn from(e: SchedulerError) -> Self {
        match e {
            SchedulerError::Invalid(v) => v.into(),
            SchedulerError::NotFound(what) => ApiError::NotFound(format!("no schedule {what:?}")),
            SchedulerError::Store(s) => s.into(),
            SchedulerError::Dbs(d) => {
                tracing::warn!(error = %super::error::error_chain(&d), "DBS call for a schedule failed");
                ApiError::Unavailable {
                    code: "dbs_unavailable",
                    message: "resolving the backup set through DBS failed; try again".into(),
                }
            }
        }
    }
}

fn name_param(name: &str) -> Result<&str, ApiError> {
    printable("name", name)?;
    Ok(name)
}

fn cron_fires(schedule: &Schedule, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    if !schedule.enabled {
        return Vec::new();
    }
    ops::next_fires(&schedule.spec, schedule.cursor().max(now), NEXT_FIRES)
        .map(|v| v.into_iter().map(|t| t.with_timezone(&Utc)).collect())
        .unwrap_or_default()
}

/// A schedule with its upcoming fires and recent history.
#[derive(Debug, Serialize)]
pub struct ScheduleDetail {
    #[serde(flatten)]
    pub schedule: Schedule,
    /// The next fire times (UTC); empty while paused.
    pub next_fires: Vec<DateTime<Utc>>,
    /// What recent fires did, newest first.
    pub recent_runs: Vec<ScheduleRun>,
}

impl ScheduleDetail {
    /// The detail of `schedule` as of `now`: what `GET /v1/schedules/{name}` and
    /// `schedules show --json` print.
    pub async fn load(
        store: &dyn crate::store::Store,
        schedule: Schedule,
        now: DateTime<Utc>,
    ) -> Result<Self, SchedulerError> {
        let recent_runs = ops::history(store, &schedule, RECENT_RUNS).await?;
        Ok(Self {
            next_fires: cron_fires(&schedule, now),
            schedule,
            recent_runs,
        })
    }
}

/// `GET /v1/schedules`.
#[derive(Debug, Serialize)]
pub struct ScheduleList {
    pub schedules: Vec<Schedule>,
}

/// Create a schedule; its first fire is the first cron time after now.
#[utoipa::path(
    post, path = "/v1/schedules", tag = "schedules",
    request_body = ScheduleSpecDoc,
    responses(
        (status = 201, description = "Created", body = ScheduleDoc),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 422, description = "Invalid field (also: name already taken)", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    JsonBody(spec): JsonBody<ScheduleSpec>,
) -> Result<Response, ApiError> {
    let s = ops::create(
        state.store.as_ref(),
        spec,
        ScheduleOrigin::Api,
        state.clock.now(),
    )
    .await?;
    let location = format!("/v1/schedules/{}", s.id);
    let mut r = (StatusCode::CREATED, Json(s)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// Every schedule, by name.
#[utoipa::path(
    get, path = "/v1/schedules", tag = "schedules",
    responses((status = 200, description = "All schedules", body = ScheduleListDoc))
)]
pub async fn list(State(state): State<ApiState>) -> Result<Json<ScheduleList>, ApiError> {
    Ok(Json(ScheduleList {
        schedules: ops::list(state.store.as_ref()).await?,
    }))
}

/// One schedule with its next fires and recent history.
#[utoipa::path(
    get, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name, or numeric id", pattern = "^[A-Za-z0-9._-]{1,128}$")),
    responses(
        (status = 200, description = "The schedule", body = ScheduleDetailDoc),
        (status = 404, description = "No such schedule", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleDetail>, ApiError> {
    let s = ops::get(state.store.as_ref(), name_param(&name)?).await?;
    let detail = ScheduleDetail::load(state.store.as_ref(), s, state.clock.now()).await?;
    Ok(Json(detail))
}

/// Replace the spec (a rename included). Fires already handled are not repeated; the next
/// fire follows the new expression.
#[utoipa::path(
    put, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name, or numeric id", pattern = "^[A-Za-z0-9._-]{1,128}$")),
    request_body = ScheduleSpecDoc,
    responses(
        (status = 200, description = "Updated", body = ScheduleDoc),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    JsonBody(spec): JsonBody<ScheduleSpec>,
) -> Result<Json<Schedule>, ApiError> {
    let s = ops::update(
        state.store.as_ref(),
        name_param(&name)?,
        spec,
        state.clock.now(),
    )
    .await?;
    Ok(Json(s))
}

/// Stop firing. Resuming does not make up the fires that fell in the pause.
#[utoipa::path(
    post, path = "/v1/schedules/{name}/pause", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name, or numeric id", pattern = "^[A-Za-z0-9._-]{1,128}$")),
    responses(
        (status = 200, description = "Paused", body = ScheduleDoc),
        (status = 404, description = "No such schedule", body = ErrorBody),
    )
)]
pub async fn pause(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    let s = ops::pause(state.store.as_ref(), name_param(&name)?, state.clock.now()).await?;
    Ok(Json(s))
}

/// Fire again from now on.
#[utoipa::path(
    post, path = "/v1/schedules/{name}/resume", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name, or numeric id", pattern = "^[A-Za-z0-9._-]{1,128}$")),
    responses(
        (status = 200, description = "Resumed", body = ScheduleDoc),
        (status = 404, description = "No such schedule", body = ErrorBody),
    )
)]
pub async fn resume(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    let s = ops::resume(state.store.as_ref(), name_param(&name)?, state.clock.now()).await?;
    Ok(Json(s))
}

/// Delete the schedule and its fire history; the jobs it enqueued stay.
#[utoipa::path(
    delete, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name, or numeric id", pattern = "^[A-Za-z0-9._-]{1,128}$")),
    responses(
        (status = 200, description = "The deleted schedule", body = ScheduleDoc),
        (status = 404, description = "No such schedule", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    let s = ops::delete(state.store.as_ref(), name_param(&name)?).await?;
    tracing::info!(schedule = %s.spec.name, "schedule deleted through the API");
    Ok(Json(s))
}

/// Dry run of the next fire (or of the fire at `at`): which instances, which requests.
/// Enqueues and records nothing.
#[utoipa::path(
    get, path = "/v1/schedules/{name}/preview", tag = "schedules",
    params(
        ("name" = String, Path, description = "Schedule name, or numeric id", pattern = "^[A-Za-z0-9._-]{1,128}$"),
        ("at" = Option<DateTime<Utc>>, Query, description = "Preview the fire at this time (RFC 3339) instead of the next one"),
    ),
    responses(
        (status = 200, description = "What the fire would do", body = FireOutcomeDoc),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
        (status = 404, description = "No such schedule, or no future fire", body = ErrorBody),
    )
)]
pub async fn preview(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<FireOutcome>, ApiError> {
    let mut q = query_params(raw.as_deref(), &["at"])?;
    let at = q.remove("at").map(|s| parse_time("at", &s)).transpose()?;
    let s = ops::get(state.store.as_ref(), name_param(&name)?).await?;
    let out = ops::preview(
        state.store.as_ref(),
        state.backups.as_deref(),
        state.clock.as_ref(),
        &s,
        at,
        state.backup_window,
    )
    .await?;
    Ok(Json(out))
}

/// Fire now, outside the cron (fire time = now in whole seconds; twice in one second
/// enqueues once). The cursor does not move.
#[utoipa::path(
    post, path = "/v1/schedules/{name}/run-now", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name, or numeric id", pattern = "^[A-Za-z0-9._-]{1,128}$")),
    responses(
        (status = 200, description = "What the fire did", body = FireOutcomeDoc),
        (status = 404, description = "No such schedule", body = ErrorBody),
    )
)]
pub async fn run_now(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<FireOutcome>, ApiError> {
    let s = ops::get(state.store.as_ref(), name_param(&name)?).await?;
    let out = ops::run_now(
        state.store.as_ref(),
        state.backups.as_deref(),
        state.clock.as_ref(),
        &s,
        state.backup_window,
    )
    .await?;
    tracing::info!(schedule = %s.spec.name, jobs = out.items.iter().filter(|i| i.created).count(), "schedule run now through the API");
    Ok(Json(out))
}

// ---- OpenAPI descriptions of the scheduler's types ------------------------------------

fn string_enum(values: &[&str]) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::views::string_enum_schema(values, "")
}

fn target_kind_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    string_enum(crate::scheduler::model::TargetKind::ALL)
}
fn backup_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    string_enum(crate::scheduler::model::BackupSelection::ALL)
}
fn misfire_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    string_enum(crate::scheduler::model::MisfirePolicy::ALL)
}
fn overlap_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    string_enum(crate::scheduler::model::OverlapPolicy::ALL)
}
fn origin_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    string_enum(crate::scheduler::model::ScheduleOrigin::ALL)
}
fn outcome_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    string_enum(crate::scheduler::model::RunOutcome::ALL)
}
fn reason_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::views::nullable_string_enum_schema(crate::scheduler::model::SkipReason::ALL)
}

/// Which instances a fire targets (see docs/schedules.md).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TargetsDoc {
    #[schema(schema_with = target_kind_schema)]
    kind: String,
    /// `instance`: required; `prefix`/`tag`: optional region filter.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    region: Option<String>,
    /// `instance` only.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    instance: Option<String>,
    /// `list` only: `"region/instance"` entries.
    instances: Option<Vec<String>>,
    /// `prefix` only.
    prefix: Option<String>,
    /// `tag` only.
    tag: Option<String>,
}

/// The CreateDownload parameters every fire shares.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TemplateDoc {
    #[schema(schema_with = super::views::format_schema)]
    format: String,
    #[schema(schema_with = super::views::target_type_schema)]
    target_type: String,
    /// OSS only.
    bucket: Option<String>,
    /// OSS only: `TargetOssRegion`.
    bucket_region: Option<String>,
    /// OSS only: `TargetPath` with placeholders such as `{instance}` and `{date}`.
    path: Option<String>,
    /// URL only: the `[[sinks]]` entry each fire's archive is fetched into.
    sink: Option<String>,
}

/// What an operator declares: the body of create and update.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ScheduleSpecDoc {
    /// Unique; letters, digits, `-`, `_`, `.`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    name: String,
    /// 5-field crontab, or 6/7 fields with seconds.
    cron: String,
    /// IANA zone; default UTC.
    timezone: Option<String>,
    targets: TargetsDoc,
    template: TemplateDoc,
    /// Default `latest_full`.
    #[schema(schema_with = backup_schema, required = false)]
    backup: Option<String>,
    /// Default `fire_once`.
    #[schema(schema_with = misfire_schema, required = false)]
    misfire: Option<String>,
    /// `fire_all` bound, 1..=10000.
    misfire_max: Option<u32>,
    /// Default `skip`.
    #[schema(schema_with = overlap_schema, required = false)]
    overlap: Option<String>,
    /// 0..=86400.
    jitter_seconds: Option<u32>,
    /// -1000..=1000, default 0.
    priority: Option<i32>,
    /// 1..=100, default 5.
    max_attempts: Option<i32>,
}

/// A stored schedule.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ScheduleDoc {
    id: i64,
    #[serde(flatten)]
    spec: ScheduleSpecDoc,
    enabled: bool,
    #[schema(schema_with = origin_schema)]
    origin: String,
    /// Every fire at or before this has been handled.
    last_fire_time: Option<DateTime<Utc>>,
    next_fire_time: Option<DateTime<Utc>>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// `GET /v1/schedules`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ScheduleListDoc {
    schedules: Vec<ScheduleDoc>,
}

/// Region + instance.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct InstanceKeyDoc {
    region: String,
    instance: String,
}

/// One row of a schedule's fire history.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ScheduleRunDoc {
    id: i64,
    schedule_id: i64,
    fire_time: DateTime<Utc>,
    instance: Option<InstanceKeyDoc>,
    #[schema(schema_with = outcome_schema)]
    outcome: String,
    #[schema(schema_with = reason_schema, required = false)]
    reason: Option<String>,
    detail: Option<String>,
    job_id: Option<i64>,
    recorded_at: DateTime<Utc>,
}

/// A schedule with its next fires and recent history.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ScheduleDetailDoc {
    #[serde(flatten)]
    schedule: ScheduleDoc,
    next_fires: Vec<DateTime<Utc>>,
    recent_runs: Vec<ScheduleRunDoc>,
}

/// What one fire did (or would do) for one instance.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FireItemDoc {
    instance: InstanceKeyDoc,
    request: Option<RequestView>,
    job_id: Option<i64>,
    /// False when the job already existed.
    created: bool,
    #[schema(schema_with = reason_schema, required = false)]
    skipped: Option<String>,
    detail: Option<String>,
}

/// Everything one fire did (or would do).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FireOutcomeDoc {
    schedule: String,
    fire_time: DateTime<Utc>,
    items: Vec<FireItemDoc>,
}
