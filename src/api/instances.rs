//! `/v1/instances`: the per-instance view (active job, block) and clearing a block.

use super::error::{ApiError, ErrorBody};
use super::extract::{printable, JsonBody};
use super::views::{InstanceList, InstanceRegistration, InstanceView, UnblockResult};
use super::ApiState;
use crate::model::{normalize_tags, InstanceKey, JobState};
use crate::store::{DynStore, JobFilter};
use axum::extract::{Path, State};
use axum::Json;
use std::collections::HashMap;

/// The job holding each instance (state `submitting` or `running`). The database allows at
/// most one per instance, so this is bounded by the number of instances.
pub async fn active_jobs(store: &DynStore) -> Result<HashMap<InstanceKey, i64>, ApiError> {
    let mut out = HashMap::new();
    for state in [JobState::Submitting, JobState::Running] {
        let mut cursor = None;
        loop {
            let page = store
                .job_list(&JobFilter {
                    state: Some(state),
                    cursor,
                    limit: 500,
                    ..JobFilter::default()
                })
                .await?;
            for job in page.jobs {
                out.insert(job.instance_key(), job.id);
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    Ok(out)
}

/// Every known instance with its block and its active job.
#[utoipa::path(
    get, path = "/v1/instances", tag = "instances",
    responses((status = 200, description = "All known instances", body = InstanceList))
)]
pub async fn list(State(state): State<ApiState>) -> Result<Json<InstanceList>, ApiError> {
    let active = active_jobs(&state.store).await?;
    let instances = state.store.instance_list().await?;
    Ok(Json(InstanceList::new(instances, &active)))
}

/// An instance in a route: `/v1/instances/{region}/{instance}…`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct InstancePath {
    /// Region, e.g. cn-hangzhou
    region: String,
    /// Instance id, e.g. rm-bp1abc
    instance: String,
}

impl InstancePath {
    fn key(self) -> Result<InstanceKey, ApiError> {
        printable("region", &self.region)?;
        printable("instance", &self.instance)?;
        Ok(InstanceKey::new(self.region, self.instance))
    }
}

/// One instance with its block and its active job.
#[utoipa::path(
    get, path = "/v1/instances/{region}/{instance}", tag = "instances",
    params(InstancePath),
    responses(
        (status = 200, description = "The instance", body = InstanceView),
        (status = 404, description = "Unknown instance", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    Path(path): Path<InstancePath>,
) -> Result<Json<InstanceView>, ApiError> {
    view(&state, &path.key()?).await
}

/// Register an instance, or replace its tags. Schedules that target a prefix or a tag
/// resolve against the known instances, so a fleet can be registered before its first job
/// (instances also appear by themselves when a job is enqueued for them).
#[utoipa::path(
    put, path = "/v1/instances/{region}/{instance}", tag = "instances",
    params(InstancePath),
    request_body = InstanceRegistration,
    responses(
        (status = 200, description = "The instance as stored", body = InstanceView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 422, description = "Unknown field, or invalid region, instance or tag; `field` names it", body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<ApiState>,
    Path(path): Path<InstancePath>,
    JsonBody(body): JsonBody<InstanceRegistration>,
) -> Result<Json<InstanceView>, ApiError> {
    let key = path.key()?;
    key.validate()?;
    let tags = normalize_tags(&body.tags)?;
    state.store.instance_upsert(&key, Some(&tags)).await?;
    tracing::info!(instance = %key, ?tags, "instance registered through the API");
    view(&state, &key).await
}

async fn view(state: &ApiState, key: &InstanceKey) -> Result<Json<InstanceView>, ApiError> {
    let instance = state
        .store
        .instance_get(key)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("instance {key} is not known")))?;
    let active = active_jobs(&state.store).await?.get(key).copied();
    Ok(Json(InstanceView::new(instance, active)))
}

/// Clear the block a failed remote task put on the instance, so jobs flow again.
/// Unblocking an instance that is not blocked is a no-op (`unblocked: false`).
#[utoipa::path(
    post, path = "/v1/instances/{region}/{instance}/unblock", tag = "instances",
    params(InstancePath),
    responses(
        (status = 200, description = "The instance after the call", body = UnblockResult),
        (status = 404, description = "Unknown instance", body = ErrorBody),
    )
)]
pub async fn unblock(
    State(state): State<ApiState>,
    Path(path): Path<InstancePath>,
) -> Result<Json<UnblockResult>, ApiError> {
    let key = path.key()?;
    if state.store.instance_get(&key).await?.is_none() {
        return Err(ApiError::NotFound(format!("instance {key} is not known")));
    }
    let unblocked = state.store.instance_unblock(&key).await?;
    if unblocked {
        tracing::info!(instance = %key, "instance unblocked through the API");
    }
    let Json(instance) = view(&state, &key).await?;
    Ok(Json(UnblockResult {
        unblocked,
        instance,
    }))
}
