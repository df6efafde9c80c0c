//! Archive persistence (docs/archives.md): a second trait so the archive work can grow
//! without touching the job queue's code. Every [`super::Store`] also implements it.
//!
//! The `archives` table keeps its times as UNIX milliseconds on both backends, so the SQL
//! below is written once; the only per-backend parts are the pool, the row type and how a
//! `jobs` time is bound (the one query that reads `jobs`), passed to [`archive_store!`].

use super::StoreError;
use crate::archive::model::{allowed, Archive, ArchiveEvent, ArchiveId, ArchiveState};
use crate::model::{Job, JobId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A new archive for a succeeded URL job (ignored when the job already has one).
#[derive(Debug, Clone)]
pub struct NewArchive {
    pub job_id: JobId,
    pub sink: String,
    pub region: String,
    pub instance: String,
    pub task_id: String,
    pub url: String,
    pub url_expires_at: Option<DateTime<Utc>>,
    pub expected_size: Option<i64>,
    pub max_attempts: i64,
    pub object_name: String,
    /// `Some` creates the archive already `failed` (e.g. its sink is not configured), so
    /// the operator sees it instead of the job being skipped silently.
    pub failed: Option<(String, String)>,
    pub now: DateTime<Utc>,
}

/// The fence of an archive update: the row must still be in `state` (and, when `owner` is
/// set, leased by it).
#[derive(Debug, Clone)]
pub struct ArchiveFence {
    pub id: ArchiveId,
    pub state: ArchiveState,
    pub owner: Option<String>,
}

/// What a fenced update writes; `None` leaves a column as it is. Leaving `fetching`
/// always drops the lease.
#[derive(Debug, Clone)]
pub struct ArchivePatch {
    pub to: ArchiveState,
    pub run_at: Option<DateTime<Utc>>,
    pub bytes_done: Option<i64>,
    pub location: Option<String>,
    pub size: Option<i64>,
    pub sha256: Option<String>,
    /// `Some(None)` clears the last error.
    pub error: Option<Option<(String, String)>>,
    /// Extend the lease to this time (progress updates while fetching).
    pub lease_until: Option<DateTime<Utc>>,
    /// Reset the attempts (an operator's retry of a failed archive).
    pub reset_attempts: bool,
    /// Why, for the events row (a state change appends one).
    pub reason: String,
    pub now: DateTime<Utc>,
}

impl ArchivePatch {
    pub fn to(to: ArchiveState, reason: impl Into<String>, now: DateTime<Utc>) -> Self {
        Self {
            to,
            run_at: None,
            bytes_done: None,
            location: None,
            size: None,
            sha256: None,
            error: None,
            lease_until: None,
            reset_attempts: false,
            reason: reason.into(),
            now,
        }
    }
}

/// Filters for listing archives, newest first.
#[derive(Debug, Clone, Default)]
pub struct ArchiveFilter {
    pub sink: Option<String>,
    pub state: Option<ArchiveState>,
    pub limit: u32,
}

/// Archives, on some database.
#[async_trait]
pub trait ArchiveStore: Send + Sync {
    /// Succeeded URL jobs whose link is still valid at `now` (or has no reported expiry
    /// and finished within three days) and which have no archive yet; jobs without a
    /// `sink` only when `with_default_sink`.
    async fn archive_candidates(
        &self,
        now: DateTime<Utc>,
        with_default_sink: bool,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError>;

    /// Insert an archive; `Ok(None)` when the job already has one.
    async fn archive_create(&self, a: &NewArchive) -> Result<Option<Archive>, StoreError>;

    /// Lease up to `limit` due `pending` archives (`fetching`, attempts + 1), oldest first.
    async fn archive_claim(
        &self,
        owner: &str,
        limit: u32,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Archive>, StoreError>;

    /// A fenced update; `Ok(false)` = the fence no longer holds ("no longer mine").
    async fn archive_update(
        &self,
        fence: &ArchiveFence,
        patch: &ArchivePatch,
    ) -> Result<bool, StoreError>;

    /// `fetching` archives whose lease expired go back to `pending` (the partial file
    /// stays, so the next fetch resumes). Returns their ids.
    async fn archive_rescue_expired(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<ArchiveId>, StoreError>;

    async fn archive_get(&self, id: ArchiveId) -> Result<Option<Archive>, StoreError>;

    async fn archive_get_by_job(&self, job_id: JobId) -> Result<Option<Archive>, StoreError>;

    async fn archive_list(&self, filter: &ArchiveFilter) -> Result<Vec<Archive>, StoreError>;

    /// Every `stored` archive of a sink, per instance newest first (retention's input).
    async fn archive_list_stored(&self, sink: &str) -> Result<Vec<Archive>, StoreError>;

    async fn archive_events(&self, id: ArchiveId) -> Result<Vec<ArchiveEvent>, StoreError>;

    /// Archives per state (metrics).
    async fn archive_count_by_state(&self) -> Result<Vec<(ArchiveState, i64)>, StoreError>;
}

/// A link whose expiry the cloud did not report is tried if its task finished this
/// recently (the cloud keeps URL files three days).
const UNKNOWN_EXPIRY_WINDOW: chrono::Duration = chrono::Duration::days(3);

/// Columns of `archives`, in one place for every `SELECT` and `RETURNING`.
pub(crate) const ARCHIVE_COLUMNS: &str = "id, job_id, sink, region, instance, task_id, url, \
    url_expires_at, expected_size, state, run_at, attempts, max_attempts, lease_owner, \
    lease_expires_at, bytes_done, object_name, location, size, sha256, last_error_code, \
    last_error, created_at, stored_at, deleted_at, updated_at";

const EVENT_SQL: &str =
    "INSERT INTO archive_events (archive_id, from_state, to_state, at, reason) \
    VALUES ($1, $2, $3, $4, $5)";

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(v: i64, column: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(v)
        .ok_or_else(|| StoreError::Corrupt(format!("archives.{column}: {v} is not a time")))
}

fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60))
}

/// Decoders shared by both backends (the columns are the same types on both).
macro_rules! archive_decoders {
    ($row:ty) => {
        fn get_time(row: &$row, c: &str) -> Result<DateTime<Utc>, StoreError> {
            time(row.try_get::<i64, _>(c)?, c)
        }

        fn get_opt_time(row: &$row, c: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
            row.try_get::<Option<i64>, _>(c)?
                .map(|v| time(v, c))
                .transpose()
        }

        fn state(row: &$row, c: &str) -> Result<ArchiveState, StoreError> {
            row.try_get::<String, _>(c)?
                .parse()
                .map_err(|e| crate::archive::model::corrupt(c, e))
        }

        pub(crate) fn archive(row: &$row) -> Result<Archive, StoreError> {
            Ok(Archive {
                id: row.try_get("id")?,
                job_id: row.try_get("job_id")?,
                sink: row.try_get("sink")?,
                region: row.try_get("region")?,
                instance: row.try_get("instance")?,
                task_id: row.try_get("task_id")?,
                url: row.try_get("url")?,
                url_expires_at: get_opt_time(row, "url_expires_at")?,
                expected_size: row.try_get("expected_size")?,
                state: state(row, "state")?,
                run_at: get_time(row, "run_at")?,
                attempts: row.try_get("attempts")?,
                max_attempts: row.try_get("max_attempts")?,
                lease_owner: row.try_get("lease_owner")?,
                lease_expires_at: get_opt_time(row, "lease_expires_at")?,
                bytes_done: row.try_get("bytes_done")?,
                object_name: row.try_get("object_name")?,
                location: row.try_get("location")?,
                size: row.try_get("size")?,
                sha256: row.try_get("sha256")?,
                last_error_code: row.try_get("last_error_code")?,
                last_error: row.try_get("last_error")?,
                created_at: get_time(row, "created_at")?,
                stored_at: get_opt_time(row, "stored_at")?,
                deleted_at: get_opt_time(row, "deleted_at")?,
                updated_at: get_time(row, "updated_at")?,
            })
        }

        fn event(row: &$row) -> Result<ArchiveEvent, StoreError> {
            let from: Option<String> = row.try_get("from_state")?;
            Ok(ArchiveEvent {
                id: row.try_get("id")?,
                archive_id: row.try_get("archive_id")?,
                from_state: from
                    .map(|s| s.parse::<ArchiveState>())
                    .transpose()
                    .map_err(|e| crate::archive::model::corrupt("from_state", e))?,
                to_state: state(row, "to_state")?,
                at: get_time(row, "at")?,
                reason: row.try_get("reason")?,
            })
        }
    };
}

/// The [`ArchiveStore`] implementation for one backend: `$store` (with a `pool` field),
/// its row type, its `rows::job` decoder and the function that binds a `jobs` time.
macro_rules! archive_store {
    ($module:ident, $store:ty, $row:ty, $job:path, $job_time:path) => {
        mod $module {
            use super::*;
            use sqlx::Row;

            archive_decoders!($row);

            #[async_trait]
            impl ArchiveStore for $store {
                async fn archive_candidates(
                    &self,
                    now: DateTime<Utc>,
                    with_default_sink: bool,
                    limit: u32,
                ) -> Result<Vec<Job>, StoreError> {
                    let sql = format!(
                        "SELECT {} FROM jobs WHERE state = 'succeeded' AND target_type = 'URL' \
                         AND download_url IS NOT NULL \
                         AND (download_url_expires_at > $1 \
                              OR (download_url_expires_at IS NULL AND finished_at > $4)) \
                         AND (sink IS NOT NULL OR $2 = 1) \
                         AND NOT EXISTS (SELECT 1 FROM archives a WHERE a.job_id = jobs.id) \
                         ORDER BY id LIMIT $3",
                        crate::store::sql::JOB_COLUMNS
                    );
                    let rows = sqlx::query(&sql)
                        .bind($job_time(now))
                        .bind(i64::from(with_default_sink))
                        .bind(i64::from(limit))
                        .bind($job_time(now - UNKNOWN_EXPIRY_WINDOW))
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter().map($job).collect()
                }

                async fn archive_create(
                    &self,
                    a: &NewArchive,
                ) -> Result<Option<Archive>, StoreError> {
                    let state = if a.failed.is_some() {
                        ArchiveState::Failed
                    } else {
                        ArchiveState::Pending
                    };
                    let (code, message) = a.failed.clone().unzip();
                    let sql = format!(
                        "INSERT INTO archives (job_id, sink, region, instance, task_id, url, \
                         url_expires_at, expected_size, state, run_at, max_attempts, \
                         object_name, last_error_code, last_error, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                         $10, $10) ON CONFLICT (job_id) DO NOTHING RETURNING {ARCHIVE_COLUMNS}"
                    );
                    let mut tx = self.pool.begin().await?;
                    let row = sqlx::query(&sql)
                        .bind(a.job_id)
                        .bind(&a.sink)
                        .bind(&a.region)
                        .bind(&a.instance)
                        .bind(&a.task_id)
                        .bind(&a.url)
                        .bind(a.url_expires_at.map(ms))
                        .bind(a.expected_size)
                        .bind(state.as_str())
                        .bind(ms(a.now))
                        .bind(a.max_attempts)
                        .bind(&a.object_name)
                        .bind(code)
                        .bind(message)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let created = archive(&row)?;
                    sqlx::query(EVENT_SQL)
                        .bind(created.id)
                        .bind(None::<String>)
                        .bind(state.as_str())
                        .bind(ms(a.now))
                        .bind(format!("job {} succeeded with a download URL", a.job_id))
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(Some(created))
                }

                async fn archive_claim(
                    &self,
                    owner: &str,
                    limit: u32,
                    lease: Duration,
                    now: DateTime<Utc>,
                ) -> Result<Vec<Archive>, StoreError> {
                    if limit == 0 {
                        return Ok(Vec::new());
                    }
                    // The outer `state = 'pending'` is re-checked on a row another process
                    // claimed meanwhile (PostgreSQL re-evaluates it), so one claim wins.
                    let sql = format!(
                        "UPDATE archives SET state = 'fetching', lease_owner = $1, \
                         lease_expires_at = $2, attempts = attempts + 1, updated_at = $3 \
                         WHERE state = 'pending' AND id IN (SELECT id FROM archives \
                         WHERE state = 'pending' AND run_at <= $3 ORDER BY run_at, id LIMIT $4) \
                         RETURNING {ARCHIVE_COLUMNS}"
                    );
                    let mut tx = self.pool.begin().await?;
                    let rows = sqlx::query(&sql)
                        .bind(owner)
                        .bind(ms(lease_until(now, lease)))
                        .bind(ms(now))
                        .bind(i64::from(limit))
                        .fetch_all(&mut *tx)
                        .await?;
                    let claimed = rows.iter().map(archive).collect::<Result<Vec<_>, _>>()?;
                    for a in &claimed {
                        sqlx::query(EVENT_SQL)
                            .bind(a.id)
                            .bind(ArchiveState::Pending.as_str())
                            .bind(ArchiveState::Fetching.as_str())
                            .bind(ms(now))
                            .bind(format!("attempt {} by {owner}", a.attempts))
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(claimed)
                }

                async fn archive_update(
                    &self,
                    fence: &ArchiveFence,
                    p: &ArchivePatch,
                ) -> Result<bool, StoreError> {
                    if !allowed(fence.state, p.to) && fence.state != p.to {
                        return Err(StoreError::Invalid(crate::model::ValidationError::new(
                            "archives.state",
                            format!("{} → {} is not an allowed transition", fence.state, p.to),
                        )));
                    }
                    let keep_lease = i64::from(p.to == ArchiveState::Fetching);
                    let (set_error, code, message) = match &p.error {
                        None => (0_i64, None, None),
                        Some(None) => (1, None, None),
                        Some(Some((c, m))) => (1, Some(c.clone()), Some(m.clone())),
                    };
                    let mut tx = self.pool.begin().await?;
                    let done = sqlx::query(
                        "UPDATE archives SET state = $1, \
                         run_at = COALESCE($2, run_at), \
                         bytes_done = COALESCE($3, bytes_done), \
                         location = COALESCE($4, location), \
                         size = COALESCE($5, size), \
                         sha256 = COALESCE($6, sha256), \
                         last_error_code = CASE WHEN $7 = 1 THEN $8 ELSE last_error_code END, \
                         last_error = CASE WHEN $7 = 1 THEN $9 ELSE last_error END, \
                         lease_owner = CASE WHEN $10 = 1 THEN lease_owner ELSE NULL END, \
                         lease_expires_at = CASE WHEN $10 = 1 \
                             THEN COALESCE($11, lease_expires_at) ELSE NULL END, \
                         attempts = CASE WHEN $12 = 1 THEN 0 ELSE attempts END, \
                         stored_at = CASE WHEN $1 = 'stored' THEN $13 ELSE stored_at END, \
                         deleted_at = CASE WHEN $1 = 'deleted' THEN $13 ELSE deleted_at END, \
                         updated_at = $13 \
                         WHERE id = $14 AND state = $15 AND ($16 IS NULL OR lease_owner = $16)",
                    )
                    .bind(p.to.as_str())
                    .bind(p.run_at.map(ms))
                    .bind(p.bytes_done)
                    .bind(&p.location)
                    .bind(p.size)
                    .bind(&p.sha256)
                    .bind(set_error)
                    .bind(code)
                    .bind(message)
                    .bind(keep_lease)
                    .bind(p.lease_until.map(ms))
                    .bind(i64::from(p.reset_attempts))
                    .bind(ms(p.now))
                    .bind(fence.id)
                    .bind(fence.state.as_str())
                    .bind(&fence.owner)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    if p.to != fence.state {
                        sqlx::query(EVENT_SQL)
                            .bind(fence.id)
                            .bind(fence.state.as_str())
                            .bind(p.to.as_str())
                            .bind(ms(p.now))
                            .bind(&p.reason)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(true)
                }

                async fn archive_rescue_expired(
                    &self,
                    now: DateTime<Utc>,
                ) -> Result<Vec<ArchiveId>, StoreError> {
                    let mut tx = self.pool.begin().await?;
                    let ids: Vec<i64> = sqlx::query_scalar(
                        "UPDATE archives SET state = 'pending', lease_owner = NULL, \
                         lease_expires_at = NULL, run_at = $1, updated_at = $1 \
                         WHERE state = 'fetching' AND lease_expires_at < $1 RETURNING id",
                    )
                    .bind(ms(now))
                    .fetch_all(&mut *tx)
                    .await?;
                    for id in &ids {
                        sqlx::query(EVENT_SQL)
                            .bind(id)
                            .bind(ArchiveState::Fetching.as_str())
                            .bind(ArchiveState::Pending.as_str())
                            .bind(ms(now))
                            .bind("lease expired (the fetcher died or stalled); resumes from the partial file")
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(ids)
                }

                async fn archive_get(&self, id: ArchiveId) -> Result<Option<Archive>, StoreError> {
                    let sql = format!("SELECT {ARCHIVE_COLUMNS} FROM archives WHERE id = $1");
                    let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
                    row.as_ref().map(archive).transpose()
                }

                async fn archive_get_by_job(
                    &self,
                    job_id: JobId,
                ) -> Result<Option<Archive>, StoreError> {
                    let sql = format!("SELECT {ARCHIVE_COLUMNS} FROM archives WHERE job_id = $1");
                    let row = sqlx::query(&sql)
                        .bind(job_id)
                        .fetch_optional(&self.pool)
                        .await?;
                    row.as_ref().map(archive).transpose()
                }

                async fn archive_list(
                    &self,
                    f: &ArchiveFilter,
                ) -> Result<Vec<Archive>, StoreError> {
                    let sql = format!(
                        "SELECT {ARCHIVE_COLUMNS} FROM archives \
                         WHERE ($1 IS NULL OR sink = $1) AND ($2 IS NULL OR state = $2) \
                         ORDER BY id DESC LIMIT $3"
                    );
                    let rows = sqlx::query(&sql)
                        .bind(&f.sink)
                        .bind(f.state.map(|s| s.as_str()))
                        .bind(i64::from(crate::store::sql::page_limit(f.limit)))
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter().map(archive).collect()
                }

                async fn archive_list_stored(
                    &self,
                    sink: &str,
                ) -> Result<Vec<Archive>, StoreError> {
                    let sql = format!(
                        "SELECT {ARCHIVE_COLUMNS} FROM archives \
                         WHERE sink = $1 AND state = 'stored' \
                         ORDER BY region, instance, stored_at DESC, id DESC"
                    );
                    let rows = sqlx::query(&sql).bind(sink).fetch_all(&self.pool).await?;
                    rows.iter().map(archive).collect()
                }

                async fn archive_events(
                    &self,
                    id: ArchiveId,
                ) -> Result<Vec<ArchiveEvent>, StoreError> {
                    let rows = sqlx::query(
                        "SELECT id, archive_id, from_state, to_state, at, reason \
                         FROM archive_events WHERE archive_id = $1 ORDER BY id",
                    )
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(event).collect()
                }

                async fn archive_count_by_state(
                    &self,
                ) -> Result<Vec<(ArchiveState, i64)>, StoreError> {
                    let rows: Vec<(String, i64)> = sqlx::query_as(
                        "SELECT state, COUNT(*) FROM archives GROUP BY state ORDER BY state",
                    )
                    .fetch_all(&self.pool)
                    .await?;
                    crate::store::sql::parse_counts(rows, "archives.state")
                }
            }
        }
    };
}

fn pg_time(t: DateTime<Utc>) -> DateTime<Utc> {
    t
}

archive_store!(
    on_sqlite,
    crate::store::sqlite::SqliteStore,
    sqlx::sqlite::SqliteRow,
    crate::store::sqlite::rows::job,
    ms
);
archive_store!(
    on_postgres,
    crate::store::postgres::PgStore,
    sqlx::postgres::PgRow,
    crate::store::postgres::rows::job,
    pg_time
);
