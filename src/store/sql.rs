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
    idempotency_key, created_at, started_at, finished_at, updated_at";

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
