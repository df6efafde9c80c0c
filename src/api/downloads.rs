//! `/v1/downloads`: enqueue, list, inspect, cancel and retry download jobs.

use super::error::{ApiError, ErrorBody};
use super::extract::{parse_id, parse_time, printable, query_params, JsonBody};
use super::views::{EnqueueBody, EventView, JobDetail, JobPageView, JobView};
use super::ApiState;
use crate::model::{InstanceKey, JobSource, JobState};
use crate::store::{JobFilter, NewJob, StoreError};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Header that makes an enqueue idempotent.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Default and largest page size of `GET /v1/downloads`.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let bad =
        |rule: String| ApiError::bad_request("invalid_header", Some(IDEMPOTENCY_HEADER), rule);
    let key = raw
        .to_str()
        .map_err(|_| bad("must be visible ASCII characters".into()))?;
    crate::model::bounds::idempotency_key(IDEMPOTENCY_HEADER, key).map_err(|e| bad(e.rule))?;
    Ok(Some(key.to_string()))
}

/// Enqueue one download.
///
/// With an `Idempotency-Key` header, sending the same request again returns the job the
/// first call created (200 instead of 201) and creates nothing; reusing a key for a
/// different request is a 409.
#[utoipa::path(
    post, path = "/v1/downloads", tag = "downloads",
    request_body = EnqueueBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key ⇒ same job, no duplicate")),
    responses(
        (status = 201, description = "Job created", body = JobView),
        (status = 200, description = "Replay of an idempotent enqueue: the existing job", body = JobView),
        (status = 400, description = "Malformed JSON or header", body = ErrorBody),
        (status = 409, description = "Idempotency key reused for a different request", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
pub async fn enqueue(
    State(state): State<ApiState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<EnqueueBody>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let (request, options) = body.into_parts();
    let request = request.checked()?;
    crate::archive::settings::check_sink_name(&state.sinks, request.sink.as_deref())?;
    let priority = options.priority.unwrap_or(0);
    let max_attempts = options.max_attempts.unwrap_or(state.default_max_attempts);
    let run_at = options.run_at;
    crate::model::bounds::job_options(priority, max_attempts, None, run_at)?;
    let job = NewJob {
        request: request.clone(),
        source: JobSource::Api,
        priority,
        run_at,
        max_attempts,
        idempotency_key: key,
        schedule_id: None,
        fire_time: None,
    };
    let enqueued = match state.store.job_enqueue(job.clone()).await {
        // Two replays racing: the loser's insert hits the unique idempotency key; asking
        // again finds the winner's job.
        Err(StoreError::Database(sqlx::Error::Database(db)))
            if db.is_unique_violation() && job.idempotency_key.is_some() =>
        {
            state.store.job_enqueue(job).await?
        }
        other => other?,
    };
    if !enqueued.created && enqueued.job.request != request {
        return Err(ApiError::conflict(
            "idempotency_key_reused",
            format!(
                "Idempotency-Key was already used for job {} with a different request",
                enqueued.job.id
            ),
        ));
    }
    let status = if enqueued.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/v1/downloads/{}", enqueued.job.id);
    let mut response = (status, Json(JobView::from(enqueued.job))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// Query parameters of `GET /v1/downloads` (documented; parsed by hand so every mistake
/// names its parameter).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// queued, submitting, running, succeeded, failed or cancelled.
    #[param(schema_with = super::views::job_state_schema)]
    state: Option<String>,
    /// Instance region; give together with `instance`.
    region: Option<String>,
    /// Instance id; give together with `region`.
    instance: Option<String>,
    /// Only jobs enqueued by this schedule.
    #[param(minimum = 1)]
    schedule_id: Option<i64>,
    /// Created at or after (RFC 3339).
    created_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Created before (RFC 3339).
    created_before: Option<chrono::DateTime<chrono::Utc>>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1..=500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

const LIST_PARAMS: &[&str] = &[
    "state",
    "region",
    "instance",
    "schedule_id",
    "created_after",
    "created_before",
    "cursor",
    "limit",
];

fn list_filter(raw: Option<&str>) -> Result<JobFilter, ApiError> {
    let mut q = query_params(raw, LIST_PARAMS)?;
    let mut filter = JobFilter {
        limit: DEFAULT_LIMIT,
        ..JobFilter::default()
    };
    if let Some(s) = q.remove("state") {
        filter.state = Some(
            s.parse::<JobState>()
                .map_err(|e| ApiError::bad_request("invalid_parameter", Some("state"), e.rule))?,
        );
    }
    match (q.remove("region"), q.remove("instance")) {
        (Some(region), Some(instance)) => {
            printable("region", &region)?;
            printable("instance", &instance)?;
            filter.instance = Some(InstanceKey::new(region, instance));
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                Some("instance"),
                "region and instance must be given together",
            ))
        }
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                Some("region"),
                "region and instance must be given together",
            ))
        }
    }
    if let Some(s) = q.remove("schedule_id") {
        filter.schedule_id = Some(parse_id("schedule_id", &s)?);
    }
    if let Some(s) = q.remove("created_after") {
        filter.created_after = Some(parse_time("created_after", &s)?);
    }
    if let Some(s) = q.remove("created_before") {
        filter.created_before = Some(parse_time("created_before", &s)?);
    }
    if let Some(s) = q.remove("cursor") {
        filter.cursor = Some(parse_id("cursor", &s)?);
    }
    if let Some(s) = q.remove("limit") {
        filter.limit = match s.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    Some("limit"),
                    format!("must be an integer between 1 and {MAX_LIMIT}"),
                ))
            }
        };
    }
    Ok(filter)
}

/// List jobs, newest first, with filters and cursor pagination.
#[utoipa::path(
    get, path = "/v1/downloads", tag = "downloads",
    params(ListParams),
    responses(
        (status = 200, description = "A page of jobs", body = JobPageView),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<JobPageView>, ApiError> {
    let filter = list_filter(raw.as_deref())?;
    let page = state.store.job_list(&filter).await?;
    Ok(Json(JobPageView {
        jobs: page.jobs.into_iter().map(JobView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// One job with its history.
#[utoipa::path(
    get, path = "/v1/downloads/{id}", tag = "downloads",
    params(("id" = i64, Path, description = "Job id", minimum = 1)),
    responses(
        (status = 200, description = "The job and its events", body = JobDetail),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<JobDetail>, ApiError> {
    let id = parse_id("id", &id)?;
    let job = state
        .store
        .job_get(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let events = state.store.event_list(id).await?;
    let archive = state.store.archive_get_by_job(id).await?;
    Ok(Json(JobDetail {
        job: job.into(),
        events: events.into_iter().map(EventView::from).collect(),
        archive: archive.map(Into::into),
    }))
}

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("job {id} does not exist"))
}

/// Cancel a queued job. Cancelling a cancelled job is a no-op; any other state is a 409.
#[utoipa::path(
    post, path = "/v1/downloads/{id}/cancel", tag = "downloads",
    params(("id" = i64, Path, description = "Job id", minimum = 1)),
    responses(
        (status = 200, description = "The cancelled job", body = JobView),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Job is past `queued` (code `invalid_state`)", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_id("id", &id)?;
    let job = state
        .store
        .job_cancel(id, "cancelled through the API")
        .await?
        .ok_or_else(|| not_found(id))?;
    if job.state != JobState::Cancelled {
        return Err(ApiError::conflict(
            "invalid_state",
            format!(
                "job {id} is {}; only queued jobs can be cancelled",
                job.state
            ),
        ));
    }
    Ok(Json(job.into()))
}

/// Delete a finished job (succeeded, failed or cancelled) and its history: how an operator
/// removes a quarantined row (error `Store.Quarantined`). A job still in the queue is a
/// 409: cancel it first.
#[utoipa::path(
    delete, path = "/v1/downloads/{id}", tag = "downloads",
    params(("id" = i64, Path, description = "Job id", minimum = 1)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Job is not finished (code `invalid_state`)", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id("id", &id)?;
    match state.store.job_delete(id).await? {
        None => Err(not_found(id)),
        Some(s) if s.is_terminal() => Ok(StatusCode::NO_CONTENT),
        Some(s) => Err(ApiError::conflict(
            "invalid_state",
            format!("job {id} is {s}; only succeeded, failed or cancelled jobs can be deleted"),
        )),
    }
}

/// Queue a failed or cancelled job again (attempts reset). Any other state is a 409.
#[utoipa::path(
    post, path = "/v1/downloads/{id}/retry", tag = "downloads",
    params(("id" = i64, Path, description = "Job id", minimum = 1)),
    responses(
        (status = 200, description = "The re-queued job", body = JobView),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Job is not failed or cancelled (code `invalid_state`)", body = ErrorBody),
    )
)]
pub async fn retry(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_id("id", &id)?;
    let before = state
        .store
        .job_get(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let conflict = |s: JobState| {
        ApiError::conflict(
            "invalid_state",
            format!("job {id} is {s}; only failed or cancelled jobs can be retried"),
        )
    };
    if !matches!(before.state, JobState::Failed | JobState::Cancelled) {
        return Err(conflict(before.state));
    }
    let job = state
        .store
        .job_retry(id, "retried through the API")
        .await?
        .ok_or_else(|| not_found(id))?;
    if job.state != JobState::Queued {
        return Err(conflict(job.state));
    }
    Ok(Json(job.into()))
}
