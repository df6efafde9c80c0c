//! SQL text and small helpers shared by both backends: the column lists (so a `SELECT`
//! and a `RETURNING` always decode the same way) and error classification.

/// Every column of `jobs` that [`crate::model::Job`] is decoded from, in one place.
pub(crate) const JOB_COLUMNS: &str = "id, region, instance, bak_set_type, bak_set_id, \
    bak_set_size, download_point_in_time, format, target_type, target_bucket, \
    target_oss_region, target_path, cluster_name, is_cluster, admin_database, \
    primary_key_type_only, use_zstd, is_physical, state, source, priority, run_at, attempts, \
    max_attempts, lease_owner, lease_expires_at, needs_reconcile, remote_task_id, \
    remote_status, remote_progress, export_data_size, import_data_size, backup_set_time, \
    download_url, download_url_expires_at, next_poll_at, polls, remote_retries, \
    last_error_code, last_error_message, last_error_request_id, schedule_id, fire_time, \
    idempotency_key, created_at, started_at, finished_at, updated_at, sink";

/// Columns of `job_events`.
pub(crate) const EVENT_COLUMNS: &str = "id, job_id, from_state, to_state, at, reason, request_id";

/// The public columns of `instances` (the claim bookkeeping stays internal).
pub(crate) const INSTANCE_COLUMNS: &str = "region, instance, blocked, blocked_until, \
    blocked_reason, blocking_task_id, blocked_at, last_success_at, tags";

/// Name of the partial unique index behind invariant 1.
pub(crate) const ONE_ACTIVE_INDEX: &str = "jobs_one_active_per_instance";

/// Page size when the filter asks for 0, and the most one page returns.
pub(crate) const DEFAULT_PAGE: u32 = 100;
pub(crate) const MAX_PAGE: u32 = 1000;

pub(crate) fn page_limit(limit: u32) -> u32 {
    match limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

/// True for a unique violation: a lost race (same idempotency key, same instance
/// claimed twice), which callers turn into "someone else has it" rather than an error.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// True for a PostgreSQL deadlock or serialization failure: a lost race in a claim.
pub(crate) fn is_lost_race(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.kind() == sqlx::error::ErrorKind::UniqueViolation
                || matches!(db.code().as_deref(), Some("40P01") | Some("40001"))
        }
        _ => false,
    }
}

/// The tags column holds a JSON array of strings.
pub(crate) fn tags_to_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".to_string())
}

pub(crate) fn tags_from_json(text: &str) -> Result<Vec<String>, super::StoreError> {
    serde_json::from_str(text)
        .map_err(|e| super::StoreError::Corrupt(format!("instances.tags: {e}")))
}

/// `(text, count)` rows of a `GROUP BY` into typed pairs; `column` names the bad value.
pub(crate) fn parse_counts<T: std::str::FromStr>(
    rows: Vec<(String, i64)>,
    column: &str,
) -> Result<Vec<(T, i64)>, super::StoreError>
where
    T::Err: std::fmt::Display,
{
    rows.into_iter()
        .map(|(s, n)| {
            s.parse::<T>()
                .map(|v| (v, n))
                .map_err(|e| super::StoreError::Corrupt(format!("{column}: {e}")))
        })
        .collect()
}

/// The row decoders (`parse`, `job`, `event`, `instance`) for one backend's row type.
/// Both backends share the column names and the model mapping; only how a time column is
/// read differs, so each backend's `rows.rs` defines `get_time`/`get_opt_time` and then
/// invokes this once.
macro_rules! row_decoders {
    ($row:ty) => {
        fn parse<T: std::str::FromStr<Err = crate::model::ValidationError>>(
            row: &$row,
            column: &str,
        ) -> Result<T, StoreError> {
            let text: String = row.try_get(column)?;
            text.parse()
                .map_err(|e| StoreError::Corrupt(format!("jobs.{column}: {e}")))
        }

        pub(crate) fn job(row: &$row) -> Result<Job, StoreError> {
            let request = DownloadRequest {
                region: row.try_get("region")?,
                instance: row.try_get("instance")?,
                bak_set_type: parse(row, "bak_set_type")?,
                bak_set_id: row.try_get("bak_set_id")?,
                bak_set_size: row.try_get("bak_set_size")?,
                download_point_in_time: row.try_get("download_point_in_time")?,
                format: parse(row, "format")?,
                target_type: parse(row, "target_type")?,
                target_bucket: row.try_get("target_bucket")?,
                target_oss_region: row.try_get("target_oss_region")?,
                target_path: row.try_get("target_path")?,
                cluster_name: row.try_get("cluster_name")?,
                is_cluster: row.try_get("is_cluster")?,
                admin_database: row.try_get("admin_database")?,
                primary_key_type_only: row.try_get("primary_key_type_only")?,
                use_zstd: row.try_get("use_zstd")?,
                is_physical: row.try_get("is_physical")?,
                sink: row.try_get("sink")?,
            };
            let last_error = match row.try_get::<Option<String>, _>("last_error_code")? {
                Some(code) => Some(JobError {
                    code,
                    message: row
                        .try_get::<Option<String>, _>("last_error_message")?
                        .unwrap_or_default(),
                    request_id: row.try_get("last_error_request_id")?,
                }),
                None => None,
            };
            Ok(Job {
                id: row.try_get("id")?,
                request,
                state: parse(row, "state")?,
                source: parse(row, "source")?,
                priority: row.try_get("priority")?,
                run_at: get_time(row, "run_at")?,
                attempts: row.try_get("attempts")?,
                max_attempts: row.try_get("max_attempts")?,
                lease_owner: row.try_get("lease_owner")?,
                lease_expires_at: get_opt_time(row, "lease_expires_at")?,
                needs_reconcile: row.try_get("needs_reconcile")?,
                remote: RemoteStatus {
                    task_id: row.try_get("remote_task_id")?,
                    status: row.try_get("remote_status")?,
                    progress: row.try_get("remote_progress")?,
                    export_data_size: row.try_get("export_data_size")?,
                    import_data_size: row.try_get("import_data_size")?,
                    backup_set_time: row.try_get("backup_set_time")?,
                    download_url: row.try_get("download_url")?,
                    download_url_expires_at: get_opt_time(row, "download_url_expires_at")?,
                },
                next_poll_at: get_opt_time(row, "next_poll_at")?,
                polls: row.try_get("polls")?,
                remote_retries: row.try_get("remote_retries")?,
                last_error,
                schedule_id: row.try_get("schedule_id")?,
                fire_time: get_opt_time(row, "fire_time")?,
                idempotency_key: row.try_get("idempotency_key")?,
                created_at: get_time(row, "created_at")?,
                started_at: get_opt_time(row, "started_at")?,
                finished_at: get_opt_time(row, "finished_at")?,
                updated_at: get_time(row, "updated_at")?,
            })
        }

        pub(crate) fn event(row: &$row) -> Result<JobEvent, StoreError> {
            let from: Option<String> = row.try_get("from_state")?;
            Ok(JobEvent {
                id: row.try_get("id")?,
                job_id: row.try_get("job_id")?,
                from_state: from
                    .map(|s| s.parse::<JobState>())
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("job_events.from_state: {e}")))?,
                to_state: parse(row, "to_state")?,
                at: get_time(row, "at")?,
                reason: row.try_get("reason")?,
                request_id: row.try_get("request_id")?,
            })
        }

        pub(crate) fn instance(row: &$row) -> Result<Instance, StoreError> {
            let tags: String = row.try_get("tags")?;
            Ok(Instance {
                key: InstanceKey::new(
                    row.try_get::<String, _>("region")?,
                    row.try_get::<String, _>("instance")?,
                ),
                blocked: row.try_get("blocked")?,
                blocked_until: get_opt_time(row, "blocked_until")?,
                blocked_reason: row.try_get("blocked_reason")?,
                blocking_task_id: row.try_get("blocking_task_id")?,
                blocked_at: get_opt_time(row, "blocked_at")?,
                last_success_at: get_opt_time(row, "last_success_at")?,
                tags: tags_from_json(&tags)?,
            })
        }
    };
}
pub(crate) use row_decoders;
