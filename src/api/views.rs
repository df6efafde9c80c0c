//! The JSON shapes of the API: request bodies and resource views.
//!
//! They mirror the domain model field by field but are separate types, so the public API
//! (and its OpenAPI schema) is written down in one place and does not change by accident
//! when the model grows. Conversions are explicit struct literals: a new model field is a
//! compile error here until someone decides how the API shows it.

use crate::model::{
    BakSetType, DownloadRequest, FormatType, Instance, Job, JobError, JobEvent, JobState,
    RemoteStatus, TargetType,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

pub(crate) fn string_enum_schema(values: &[&str], description: &str) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values.iter().copied()))
            .description(Some(description))
            .build(),
    ))
}

pub(crate) fn bak_set_type_schema() -> RefOr<Schema> {
    string_enum_schema(
        BakSetType::ALL,
        "`full`: a whole backup set (needs bak_set_id); `pitr`: data as of a point in time",
    )
}

pub(crate) fn format_schema() -> RefOr<Schema> {
    string_enum_schema(FormatType::ALL, "Export file format")
}

pub(crate) fn target_type_schema() -> RefOr<Schema> {
    string_enum_schema(
        TargetType::ALL,
        "`OSS`: your bucket (needs target_bucket, target_path, target_oss_region); `URL`: a download URL",
    )
}

pub(crate) fn job_state_schema() -> RefOr<Schema> {
    let all: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
    string_enum_schema(&all, "Job state (docs/state-machine.md)")
}

fn optional_job_state_schema() -> RefOr<Schema> {
    let all: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
    nullable_string_enum_schema(&all)
}

/// A string from `values`, or null.
pub(crate) fn nullable_string_enum_schema(values: &[&str]) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                Type::String,
                Type::Null,
            ]))
            .enum_values(Some(values.iter().copied().map(Some).chain([None])))
            .build(),
    ))
}

/// Body of `POST /v1/downloads`: the CreateDownload parameters plus queue options.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueBody {
    /// `RegionCode`: the instance's region, e.g. `cn-hangzhou`.
    #[schema(example = "cn-hangzhou", pattern = "^[A-Za-z0-9._-]{1,128}$")]
    pub region: String,
    /// `InstanceName`: the instance or cluster id, e.g. `rm-bp1abc`.
    #[schema(example = "rm-bp1abc", pattern = "^[A-Za-z0-9._-]{1,128}$")]
    pub instance: String,
    #[schema(schema_with = bak_set_type_schema)]
    pub bak_set_type: BakSetType,
    /// Required when `bak_set_type` is `full`.
    #[serde(default)]
    pub bak_set_id: Option<String>,
    /// Bytes of the full backup set; optional.
    #[serde(default)]
    pub bak_set_size: Option<i64>,
    /// UNIX milliseconds; required when `bak_set_type` is `pitr`.
    #[serde(default)]
    pub download_point_in_time: Option<i64>,
    #[schema(schema_with = format_schema)]
    pub format: FormatType,
    #[schema(schema_with = target_type_schema)]
    pub target_type: TargetType,
    /// OSS only, required there.
    #[serde(default)]
    pub target_bucket: Option<String>,
    /// OSS only, required there.
    #[serde(default)]
    pub target_oss_region: Option<String>,
    /// OSS only, required there; no `..` segments.
    #[serde(default)]
    pub target_path: Option<String>,
    /// MongoDB sharded clusters only.
    #[serde(default)]
    pub cluster_name: Option<String>,
    #[serde(default)]
    pub is_cluster: Option<String>,
    #[serde(default)]
    pub admin_database: Option<String>,
    #[serde(default)]
    pub primary_key_type_only: Option<String>,
    #[serde(default)]
    pub use_zstd: Option<String>,
    #[serde(default)]
    pub is_physical: Option<bool>,
    /// URL targets only: the configured sink to fetch the archive into (docs/archives.md).
    #[serde(default)]
    pub sink: Option<String>,
    /// Higher runs first; default 0; -1000..=1000.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Not before this time (RFC 3339); default now.
    #[serde(default)]
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts before the job fails; default `worker.default_max_attempts`; 1..=100.
    #[serde(default)]
    pub max_attempts: Option<i32>,
}

/// Queue options of an enqueue, apart from the request itself.
#[derive(Debug, Clone, Copy)]
pub struct EnqueueOptions {
    pub priority: Option<i32>,
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: Option<i32>,
}

impl EnqueueBody {
    pub fn into_parts(self) -> (DownloadRequest, EnqueueOptions) {
        let request = DownloadRequest {
            region: self.region,
            instance: self.instance,
            bak_set_type: self.bak_set_type,
            bak_set_id: self.bak_set_id,
            bak_set_size: self.bak_set_size,
            download_point_in_time: self.download_point_in_time,
            format: self.format,
            target_type: self.target_type,
            target_bucket: self.target_bucket,
            target_oss_region: self.target_oss_region,
            target_path: self.target_path,
            cluster_name: self.cluster_name,
            is_cluster: self.is_cluster,
            admin_database: self.admin_database,
            primary_key_type_only: self.primary_key_type_only,
            use_zstd: self.use_zstd,
            is_physical: self.is_physical,
            sink: self.sink,
        };
        let options = EnqueueOptions {
            priority: self.priority,
            run_at: self.run_at,
            max_attempts: self.max_attempts,
        };
        (request, options)
    }
}

/// The CreateDownload parameters of a job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestView {
    pub region: String,
    pub instance: String,
    #[schema(schema_with = bak_set_type_schema)]
    pub bak_set_type: BakSetType,
    pub bak_set_id: Option<String>,
    pub bak_set_size: Option<i64>,
    pub download_point_in_time: Option<i64>,
    #[schema(schema_with = format_schema)]
    pub format: FormatType,
    #[schema(schema_with = target_type_schema)]
    pub target_type: TargetType,
    pub target_bucket: Option<String>,
    pub target_oss_region: Option<String>,
    pub target_path: Option<String>,
    pub cluster_name: Option<String>,
    pub is_cluster: Option<String>,
    pub admin_database: Option<String>,
    pub primary_key_type_only: Option<String>,
    pub use_zstd: Option<String>,
    pub is_physical: Option<bool>,
    pub sink: Option<String>,
}

impl From<DownloadRequest> for RequestView {
    fn from(r: DownloadRequest) -> Self {
        Self {
            region: r.region,
            instance: r.instance,
            bak_set_type: r.bak_set_type,
            bak_set_id: r.bak_set_id,
            bak_set_size: r.bak_set_size,
            download_point_in_time: r.download_point_in_time,
            format: r.format,
            target_type: r.target_type,
            target_bucket: r.target_bucket,
            target_oss_region: r.target_oss_region,
            target_path: r.target_path,
            cluster_name: r.cluster_name,
            is_cluster: r.is_cluster,
            admin_database: r.admin_database,
            primary_key_type_only: r.primary_key_type_only,
            use_zstd: r.use_zstd,
            is_physical: r.is_physical,
            sink: r.sink,
        }
    }
}

/// What the cloud last said about the job's remote task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RemoteView {
    /// DBS download task id, `dt-…`.
    pub task_id: Option<String>,
    /// `DownloadStatus`, lowercase.
    pub status: Option<String>,
    /// `Progress`: "tables done/total".
    pub progress: Option<String>,
    pub export_data_size: Option<i64>,
    pub import_data_size: Option<i64>,
    /// `BackupSetTime`, UNIX ms.
    pub backup_set_time: Option<i64>,
    pub download_url: Option<String>,
    pub download_url_expires_at: Option<DateTime<Utc>>,
}

impl From<RemoteStatus> for RemoteView {
    fn from(r: RemoteStatus) -> Self {
        Self {
            task_id: r.task_id,
            status: r.status,
            progress: r.progress,
            export_data_size: r.export_data_size,
            import_data_size: r.import_data_size,
            backup_set_time: r.backup_set_time,
            download_url: r.download_url,
            download_url_expires_at: r.download_url_expires_at,
        }
    }
}

/// The last error a job ran into.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobErrorView {
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
}

impl From<JobError> for JobErrorView {
    fn from(e: JobError) -> Self {
        Self {
            code: e.code,
            message: e.message,
            request_id: e.request_id,
        }
    }
}

/// A download job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: i64,
    #[schema(schema_with = job_state_schema)]
    pub state: JobState,
    /// Where the job came from: api, cli, sql or schedule.
    pub source: String,
    pub priority: i32,
    pub run_at: DateTime<Utc>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub request: RequestView,
    pub remote: RemoteView,
    pub last_error: Option<JobErrorView>,
    pub needs_reconcile: bool,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub next_poll_at: Option<DateTime<Utc>>,
    pub polls: i32,
    pub remote_retries: i32,
    pub schedule_id: Option<i64>,
    pub fire_time: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        Self {
            id: j.id,
            state: j.state,
            source: j.source.as_str().to_string(),
            priority: j.priority,
            run_at: j.run_at,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            request: j.request.into(),
            remote: j.remote.into(),
            last_error: j.last_error.map(Into::into),
            needs_reconcile: j.needs_reconcile,
            lease_owner: j.lease_owner,
            lease_expires_at: j.lease_expires_at,
            next_poll_at: j.next_poll_at,
            polls: j.polls,
            remote_retries: j.remote_retries,
            schedule_id: j.schedule_id,
            fire_time: j.fire_time,
            idempotency_key: j.idempotency_key,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            updated_at: j.updated_at,
        }
    }
}

/// One transition in a job's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    #[schema(schema_with = optional_job_state_schema)]
    pub from_state: Option<JobState>,
    #[schema(schema_with = job_state_schema)]
    pub to_state: JobState,
    pub at: DateTime<Utc>,
    pub reason: String,
    /// Cloud RequestId behind the change, if any.
    pub request_id: Option<String>,
}

impl From<JobEvent> for EventView {
    fn from(e: JobEvent) -> Self {
        Self {
            id: e.id,
            from_state: e.from_state,
            to_state: e.to_state,
            at: e.at,
            reason: e.reason,
            request_id: e.request_id,
        }
    }
}

/// A job with its history, oldest event first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: JobView,
    pub events: Vec<EventView>,
    /// URL downloads with a sink: the archive's fetch progress, or where it is stored.
    #[serde(default)]
    pub archive: Option<ArchiveView>,
}

/// The archive of a URL download (docs/archives.md).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArchiveView {
    pub sink: String,
    /// `pending`, `fetching`, `stored`, `failed` or `deleted`.
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    /// Bytes fetched so far.
    pub bytes_done: i64,
    /// The size the task reported; the stored file must have exactly this size.
    pub expected_size: Option<i64>,
    /// `file:///…` or `s3://bucket/key` once stored.
    pub location: Option<String>,
    pub size: Option<i64>,
    /// Lowercase hex SHA-256 of the stored bytes.
    pub sha256: Option<String>,
    pub url_expires_at: Option<DateTime<Utc>>,
    pub next_attempt_at: DateTime<Utc>,
    pub stored_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub last_error_code: Option<String>,
    pub last_error: Option<String>,
}

impl From<crate::archive::Archive> for ArchiveView {
    fn from(a: crate::archive::Archive) -> Self {
        Self {
            sink: a.sink,
            state: a.state.to_string(),
            attempts: a.attempts,
            max_attempts: a.max_attempts,
            bytes_done: a.bytes_done,
            expected_size: a.expected_size,
            location: a.location,
            size: a.size,
            sha256: a.sha256,
            url_expires_at: a.url_expires_at,
            next_attempt_at: a.run_at,
            stored_at: a.stored_at,
            deleted_at: a.deleted_at,
            last_error_code: a.last_error_code,
            last_error: a.last_error,
        }
    }
}

/// A page of jobs, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobPageView {
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` to get the next page; absent on the last page. Opaque.
    pub next_cursor: Option<String>,
}

/// A database instance as the queue sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceView {
    pub region: String,
    pub instance: String,
    /// A failed remote task holds the instance; nothing is submitted until it is cleared.
    pub blocked: bool,
    pub blocked_until: Option<DateTime<Utc>>,
    pub blocked_reason: Option<String>,
    pub blocking_task_id: Option<String>,
    pub blocked_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    /// The job currently submitting or running on this instance, if any.
    pub active_job_id: Option<i64>,
}

impl InstanceView {
    pub fn new(i: Instance, active_job_id: Option<i64>) -> Self {
        Self {
            region: i.key.region,
            instance: i.key.instance,
            blocked: i.blocked,
            blocked_until: i.blocked_until,
            blocked_reason: i.blocked_reason,
            blocking_task_id: i.blocking_task_id,
            blocked_at: i.blocked_at,
            last_success_at: i.last_success_at,
            tags: i.tags,
            active_job_id,
        }
    }
}

/// `GET /v1/instances`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceList {
    pub instances: Vec<InstanceView>,
}

impl InstanceList {
    /// The view of `instances`, each with its active job from `active` (shared by the API
    /// and `instances list --json`, so both print the same).
    pub fn new(
        instances: Vec<Instance>,
        active: &std::collections::HashMap<crate::model::InstanceKey, i64>,
    ) -> Self {
        Self {
            instances: instances
                .into_iter()
                .map(|i| {
                    let job = active.get(&i.key).copied();
                    InstanceView::new(i, job)
                })
                .collect(),
        }
    }
}

/// Body of `PUT /v1/instances/{region}/{instance}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceRegistration {
    /// Replaces the instance's tags (schedules with `targets.kind = "tag"` select by them):
    /// at most 32, each 1-64 characters of letters, digits, '-', '_', '.', ':' or '='.
    #[schema(max_items = 32)]
    pub tags: Vec<String>,
}

/// Result of an unblock: `unblocked` is false when the instance was not blocked.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UnblockResult {
    pub unblocked: bool,
    pub instance: InstanceView,
}

/// Body of the health endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthStatus {
    /// `ok` (liveness) or `ready` (readiness).
    pub status: String,
}
