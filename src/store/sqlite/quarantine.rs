//! Quarantine of a row the decoder could not read (see [`crate::store::sql::QUARANTINED`]).

use super::rows::ms;
use crate::model::{bounds, JobId};
use crate::store::sql::QUARANTINED;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

/// Marks the job `failed` and replaces each value the service cannot read (times by now,
/// numbers clamped or cleared, non-text in text columns cast to text); the reason keeps
/// the decoder's words. The same repair as migration 0005 makes for rows stored before it.
const REPAIR_SQL: &str = "UPDATE jobs SET state = 'failed', lease_owner = NULL, \
    lease_expires_at = NULL, needs_reconcile = 0, \
    run_at = CASE WHEN typeof(run_at) = 'integer' AND run_at BETWEEN 0 AND $3 THEN run_at ELSE $2 END, \
    created_at = CASE WHEN typeof(created_at) = 'integer' AND created_at BETWEEN 0 AND $3 THEN created_at ELSE $2 END, \
    updated_at = $2, finished_at = $2, \
    progress_anchor_at = NULL, progress_anchor_ppm = NULL, \
    download_url_expires_at = CASE WHEN typeof(download_url_expires_at) = 'integer' AND download_url_expires_at BETWEEN 0 AND $3 THEN download_url_expires_at END, \
    next_poll_at = CASE WHEN typeof(next_poll_at) = 'integer' AND next_poll_at BETWEEN 0 AND $3 THEN next_poll_at END, \
    fire_time = CASE WHEN schedule_id IS NOT NULL AND typeof(fire_time) = 'integer' AND fire_time BETWEEN 0 AND $3 THEN fire_time END, \
    started_at = CASE WHEN typeof(started_at) = 'integer' AND started_at BETWEEN 0 AND $3 THEN started_at END, \
    priority = CASE WHEN typeof(priority) = 'integer' THEN max(-1000, min(1000, priority)) ELSE 0 END, \
    max_attempts = CASE WHEN typeof(max_attempts) = 'integer' THEN max(1, min(100, max_attempts)) ELSE 5 END, \
    attempts = CASE WHEN typeof(attempts) = 'integer' THEN max(0, min(2147483647, attempts)) ELSE 0 END, \
    polls = CASE WHEN typeof(polls) = 'integer' THEN max(0, min(2147483647, polls)) ELSE 0 END, \
    remote_retries = CASE WHEN typeof(remote_retries) = 'integer' THEN max(0, min(2147483647, remote_retries)) ELSE 0 END, \
    bak_set_size = CASE WHEN typeof(bak_set_size) = 'integer' AND bak_set_size >= 0 THEN bak_set_size END, \
    download_point_in_time = CASE WHEN typeof(download_point_in_time) = 'integer' THEN download_point_in_time END, \
    export_data_size = CASE WHEN typeof(export_data_size) = 'integer' AND export_data_size >= 0 THEN export_data_size END, \
    import_data_size = CASE WHEN typeof(import_data_size) = 'integer' AND import_data_size >= 0 THEN import_data_size END, \
    backup_set_time = CASE WHEN typeof(backup_set_time) = 'integer' THEN backup_set_time END, \
    schedule_id = CASE WHEN typeof(schedule_id) = 'integer' THEN schedule_id END, \
    region = CAST(region AS TEXT), instance = CAST(instance AS TEXT), \
    bak_set_id = CAST(bak_set_id AS TEXT), target_bucket = CAST(target_bucket AS TEXT), \
    target_oss_region = CAST(target_oss_region AS TEXT), target_path = CAST(target_path AS TEXT), \
    cluster_name = CAST(cluster_name AS TEXT), is_cluster = CAST(is_cluster AS TEXT), \
    admin_database = CAST(admin_database AS TEXT), \
    primary_key_type_only = CAST(primary_key_type_only AS TEXT), use_zstd = CAST(use_zstd AS TEXT), \
    remote_task_id = CAST(remote_task_id AS TEXT), remote_status = CAST(remote_status AS TEXT), \
    remote_progress = CAST(remote_progress AS TEXT), download_url = CAST(download_url AS TEXT), \
    idempotency_key = CAST(idempotency_key AS TEXT), \
    last_error_code = $4, last_error_message = $5, last_error_request_id = NULL \
    WHERE id = $1";

/// Quarantine job `id` (one transaction of the caller's): repair, mark failed, log an event.
pub(super) async fn quarantine(
    conn: &mut SqliteConnection,
    id: JobId,
    why: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let from: Option<String> =
        sqlx::query_scalar("SELECT CAST(state AS TEXT) FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(from) = from else { return Ok(()) };
    let reason = format!("quarantined: a value the service cannot read ({why})");
    sqlx::query(REPAIR_SQL)
        .bind(id)
        .bind(ms(now))
        .bind(*bounds::TIME_MS.end())
        .bind(QUARANTINED)
        .bind(&reason)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO job_events (job_id, from_state, to_state, at, reason) \
         VALUES ($1, CASE WHEN $2 IN ('queued', 'submitting', 'running', 'succeeded', 'failed', \
         'cancelled') THEN $2 END, 'failed', $3, $4)",
    )
    .bind(id)
    .bind(from)
    .bind(ms(now))
    .bind(&reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
