//! Decoding SQLite rows into the model. Times are INTEGER UNIX milliseconds.

use crate::model::{
    DownloadRequest, Instance, InstanceKey, Job, JobError, JobEvent, JobState, RemoteStatus,
};
use crate::store::sql::tags_from_json;
use crate::store::StoreError;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// A time as stored: UNIX milliseconds.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn opt_ms(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(ms)
}

fn time(v: i64, column: &str) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(v)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("{column}: {v} is not a time")))
}

fn get_time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    time(row.try_get::<i64, _>(column)?, column)
}

fn get_opt_time(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    row.try_get::<Option<i64>, _>(column)?
        .map(|v| time(v, column))
        .transpose()
}

fn parse<T: std::str::FromStr<Err = crate::model::ValidationError>>(
    row: &SqliteRow,
    column: &str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("jobs.{column}: {e}")))
}

pub(crate) fn job(row: &SqliteRow) -> Result<Job, StoreError> {
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

pub(crate) fn event(row: &SqliteRow) -> Result<JobEvent, StoreError> {
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

pub(crate) fn instance(row: &SqliteRow) -> Result<Instance, StoreError> {
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
