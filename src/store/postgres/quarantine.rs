//! Quarantine of a row the decoder could not read (see [`crate::store::sql::QUARANTINED`]).

use crate::model::JobId;
use crate::store::sql::QUARANTINED;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Marks the job `failed` and replaces each value the service cannot read (infinite or
/// out-of-range times by now or NULL, numbers clamped); the reason keeps the decoder's
/// words. The same repair as migration 0005 makes for rows stored before it.
const REPAIR_SQL: &str = "WITH old AS (SELECT id, state FROM jobs WHERE id = $1 FOR UPDATE), \
    repaired AS (UPDATE jobs j SET state = 'failed', lease_owner = NULL, \
    lease_expires_at = NULL, needs_reconcile = false, \
    run_at = CASE WHEN run_at >= 'epoch' AND run_at < '10000-01-01 00:00:00+00' THEN run_at ELSE $2 END, \
    created_at = CASE WHEN created_at >= 'epoch' AND created_at < '10000-01-01 00:00:00+00' THEN created_at ELSE $2 END, \
    updated_at = $2, finished_at = $2, \
    progress_anchor_at = NULL, progress_anchor_ppm = NULL, \
    download_url_expires_at = CASE WHEN download_url_expires_at >= 'epoch' AND download_url_expires_at < '10000-01-01 00:00:00+00' THEN download_url_expires_at END, \
    next_poll_at = CASE WHEN next_poll_at >= 'epoch' AND next_poll_at < '10000-01-01 00:00:00+00' THEN next_poll_at END, \
    fire_time = CASE WHEN fire_time >= 'epoch' AND fire_time < '10000-01-01 00:00:00+00' THEN fire_time END, \
    started_at = CASE WHEN started_at >= 'epoch' AND started_at < '10000-01-01 00:00:00+00' THEN started_at END, \
    priority = greatest(-1000, least(1000, priority)), \
    max_attempts = greatest(1, least(100, max_attempts)), \
    attempts = greatest(0, attempts), polls = greatest(0, polls), \
    remote_retries = greatest(0, remote_retries), \
    bak_set_size = CASE WHEN bak_set_size >= 0 THEN bak_set_size END, \
    export_data_size = CASE WHEN export_data_size >= 0 THEN export_data_size END, \
    import_data_size = CASE WHEN import_data_size >= 0 THEN import_data_size END, \
    last_error_code = $3, last_error_message = $4, last_error_request_id = NULL \
    FROM old WHERE j.id = old.id RETURNING old.state) \
    INSERT INTO job_events (job_id, from_state, to_state, at, reason) \
    SELECT $1, state, 'failed', $2, $4 FROM repaired";

/// Quarantine job `id`: repair, mark failed, log an event (one statement).
pub(super) async fn quarantine(
    conn: &mut PgConnection,
    id: JobId,
    why: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let reason = format!("quarantined: a value the service cannot read ({why})");
    sqlx::query(REPAIR_SQL)
        .bind(id)
        .bind(now)
        .bind(QUARANTINED)
        .bind(&reason)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
