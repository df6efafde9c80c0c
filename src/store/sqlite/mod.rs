//! The embedded backend: SQLite, one process per database file.
//!
//! Writes run in `BEGIN IMMEDIATE` transactions: SQLite has one writer at a time, and
//! taking the write lock up front means a read-then-write never fails half way with
//! `SQLITE_BUSY`; `busy_timeout` makes the others wait their turn instead. The claim walks
//! the `instances` bookkeeping that the jobs triggers keep (docs/store.md), so its cost
//! does not depend on the backlog.

mod console;
mod lock;
mod quarantine;
pub(crate) mod rows;
mod schedules;
mod watch;

pub(crate) use lock::database_path;
pub use lock::{acquire_process_lock, ProcessLock};

use super::sql::{
    is_unique_violation, page_limit, report_quarantine, tags_to_json, EVENT_COLUMNS,
    INSTANCE_COLUMNS, JOB_COLUMNS, JOB_DELETE_SQL, JOB_STATE_SQL, ONE_ACTIVE_INDEX,
};
use super::{
    BlockInstance, ClaimParams, Enqueued, Fence, JobFilter, JobPage, JobPatch, NewJob,
    PollClaimParams, Store, StoreError,
};
use crate::model::{Instance, InstanceKey, Job, JobEvent, JobId, JobState};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rows::{ms, opt_ms};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for another one before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The embedded backend: one process per database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: sqlx::SqlitePool,
    notify: Arc<tokio::sync::Notify>,
    /// The newest job id this store enqueued (its own inserts wake the workers directly).
    own_newest: Arc<std::sync::atomic::AtomicI64>,
    /// Stops the change watcher (`watch`) when the last handle drops.
    _watch: Arc<tokio_util::sync::DropGuard>,
}

fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

impl SqliteStore {
    /// Open (creating if missing) the database file: WAL, foreign keys, a busy timeout.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("database.url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options.clone())
            .await?;
        let notify = Arc::new(tokio::sync::Notify::new());
        let own_newest = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let stop = tokio_util::sync::CancellationToken::new();
        let file = lock::database_path(url).ok().flatten();
        tokio::spawn(watch::run(
            options,
            file,
            notify.clone(),
            own_newest.clone(),
            stop.clone(),
        ));
        Ok(Self {
            pool,
            notify,
            own_newest,
            _watch: Arc::new(stop.drop_guard()),
        })
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    fn wake(&self) {
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
}

/// Free, unblocked instances whose head job is due, in claim order ($1 now, $2 limit).
const HEADS_SQL: &str = "SELECT head_job_id FROM instances \
    WHERE head_job_id IS NOT NULL AND active_job_id IS NULL AND blocked = 0 \
      AND head_run_at <= $1 \
    ORDER BY head_priority DESC, head_run_at, head_job_id LIMIT $2";

/// Takes one instance's head job; the unique index refuses it if the instance is active.
const TAKE_SQL: &str = "UPDATE jobs SET state = 'submitting', lease_owner = $1, \
    lease_expires_at = $2, started_at = coalesce(started_at, $3), updated_at = $3 \
    WHERE id = $4 AND state = 'queued' RETURNING ";

impl SqliteStore {
    /// `EXPLAIN QUERY PLAN` of the claim's two statements, for docs/store.md and the
    /// benchmark.
    pub async fn explain_claim(&self, p: &ClaimParams) -> Result<String, StoreError> {
        let mut out = Vec::new();
        let take = format!("{TAKE_SQL}{JOB_COLUMNS}");
        let head = "SELECT id, priority, run_at FROM jobs WHERE region = $1 AND instance = $2 \
            AND state = 'queued' ORDER BY priority DESC, run_at, id LIMIT 1";
        let active = "SELECT id FROM jobs WHERE region = $1 AND instance = $2 \
            AND state IN ('submitting', 'running')";
        for (label, sql) in [
            ("heads", HEADS_SQL),
            ("take", take.as_str()),
            ("trigger: head of one instance", head),
            ("trigger: active job of one instance", active),
        ] {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let query = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
            let query = match label {
                "heads" => query.bind(ms(p.now)).bind(i64::from(p.limit)),
                "take" => query.bind(&p.owner).bind(0_i64).bind(ms(p.now)).bind(0_i64),
                _ => query.bind("cn-hangzhou").bind("rm-1"),
            };
            let plan = query.fetch_all(&self.pool).await?;
            out.push(format!("-- {label}"));
            out.extend(
                plan.into_iter()
                    .map(|(id, parent, _, detail)| format!("{id:>3} {parent:>3}  {detail}")),
            );
        }
        Ok(out.join("\n"))
    }
}

super::sql::quarantine_readers!(SqliteConnection, sqlx::sqlite::SqliteRow);

async fn insert_event(
    conn: &mut SqliteConnection,
    job_id: JobId,
    from: Option<JobState>,
    to: JobState,
    at: DateTime<Utc>,
    reason: &str,
    request_id: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO job_events (job_id, from_state, to_state, at, reason, request_id) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(job_id)
    .bind(from.map(|s| s.as_str()))
    .bind(to.as_str())
    .bind(ms(at))
    .bind(reason)
    .bind(request_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Existing job with the same idempotency key or the same schedule fire on the instance.
async fn find_duplicate(
    conn: &mut SqliteConnection,
    job: &NewJob,
) -> Result<Option<Job>, StoreError> {
    if let Some(key) = &job.idempotency_key {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE idempotency_key = $1");
        if let Some(row) = sqlx::query(&sql)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?
        {
            return rows::job(&row).map(Some);
        }
    }
    if let Some(schedule_id) = job.schedule_id {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE schedule_id = $1 AND fire_time IS $2 \
             AND region = $3 AND instance = $4"
        );
        if let Some(row) = sqlx::query(&sql)
            .bind(schedule_id)
            .bind(opt_ms(job.fire_time))
            .bind(&job.request.region)
            .bind(&job.request.instance)
            .fetch_optional(&mut *conn)
            .await?
        {
            return rows::job(&row).map(Some);
        }
    }
    Ok(None)
}

/// `job_list`'s query: newest first, one more than a page to know whether another follows.
fn list_query(filter: &JobFilter, limit: u32) -> QueryBuilder<'static, Sqlite> {
    let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1"));
    if let Some(state) = filter.state {
        q.push(" AND state = ").push_bind(state.as_str());
    }
    if let Some(key) = &filter.instance {
        q.push(" AND region = ")
            .push_bind(key.region.clone())
            .push(" AND instance = ")
            .push_bind(key.instance.clone());
    }
    if let Some(schedule_id) = filter.schedule_id {
        q.push(" AND schedule_id = ").push_bind(schedule_id);
    }
    if let Some(after) = filter.created_after {
        q.push(" AND created_at > ").push_bind(ms(after));
    }
    if let Some(before) = filter.created_before {
        q.push(" AND created_at < ").push_bind(ms(before));
    }
    if let Some(cursor) = filter.cursor {
        q.push(" AND id < ").push_bind(cursor);
    }
    q.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    q
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn job_notifier(&self) -> Arc<tokio::sync::Notify> {
        self.notify.clone()
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ready(&self) -> Result<bool, StoreError> {
        let table: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.pool)
        .await?;
        if table.is_none() {
            return Ok(false);
        }
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await?;
        Ok(MIGRATOR.iter().all(|m| applied.contains(&m.version)))
    }

    async fn job_enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        job.request.validate()?;
        crate::model::bounds::job_options(
            job.priority,
            job.max_attempts,
            job.idempotency_key.as_deref(),
            job.run_at,
        )?;
        let r = &job.request;
        let now = Utc::now();
        let mut tx = self.begin().await?;
        if let Some(existing) = find_duplicate(&mut tx, &job).await? {
            return Ok(Enqueued {
                job: existing,
                created: false,
            });
        }
        let sql = format!(
            "INSERT INTO jobs (region, instance, bak_set_type, bak_set_id, bak_set_size, \
             download_point_in_time, format, target_type, target_bucket, target_oss_region, \
             target_path, cluster_name, is_cluster, admin_database, primary_key_type_only, \
             use_zstd, is_physical, source, priority, run_at, max_attempts, idempotency_key, \
             schedule_id, fire_time, created_at, updated_at, sink) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19, $20, $21, $22, $23, $24, $25, $25, $26) RETURNING {JOB_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&r.region)
            .bind(&r.instance)
            .bind(r.bak_set_type.as_str())
            .bind(&r.bak_set_id)
            .bind(r.bak_set_size)
            .bind(r.download_point_in_time)
            .bind(r.format.as_str())
            .bind(r.target_type.as_str())
            .bind(&r.target_bucket)
            .bind(&r.target_oss_region)
            .bind(&r.target_path)
            .bind(&r.cluster_name)
            .bind(&r.is_cluster)
            .bind(&r.admin_database)
            .bind(&r.primary_key_type_only)
            .bind(&r.use_zstd)
            .bind(r.is_physical)
            .bind(job.source.as_str())
            .bind(job.priority)
            .bind(ms(job.run_at.unwrap_or(now)))
            .bind(job.max_attempts)
            .bind(&job.idempotency_key)
            .bind(job.schedule_id)
            .bind(opt_ms(job.fire_time))
            .bind(ms(now))
            .bind(&r.sink)
            .fetch_one(&mut *tx)
            .await?;
        let created = rows::job(&row)?;
        tx.commit().await?;
        self.own_newest
            .fetch_max(created.id, std::sync::atomic::Ordering::Relaxed);
        self.wake();
        crate::telemetry::metrics::job_enqueued(job.source);
        Ok(Enqueued {
            job: created,
            created: true,
        })
    }

    async fn job_claim(&self, p: &ClaimParams) -> Result<Vec<Job>, StoreError> {
        if p.limit == 0 {
            return Ok(Vec::new());
        }
        let now = ms(p.now);
        let until = ms(lease_until(p.now, p.lease));
        let mut tx = self.begin().await?;
        // Free, unblocked instances whose head job is due, in claim order; one job each.
        let heads: Vec<i64> = sqlx::query_scalar(HEADS_SQL)
            .bind(now)
            .bind(i64::from(p.limit))
            .fetch_all(&mut *tx)
            .await?;
        let sql = format!("{TAKE_SQL}{JOB_COLUMNS}");
        let mut claimed = Vec::with_capacity(heads.len());
        for id in heads {
            let row = match sqlx::query(&sql)
                .bind(&p.owner)
                .bind(until)
                .bind(now)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
            {
                Ok(row) => row,
                // Someone else made the instance active: not ours, move on quietly.
                Err(e) if is_unique_violation(&e) => {
                    tracing::debug!(job.id = id, index = ONE_ACTIVE_INDEX, "instance busy");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let Some(row) = row else { continue };
            let job = match rows::job(&row) {
                Ok(job) => job,
                Err(e) => {
                    let why = e.to_string();
                    let done = quarantine::quarantine(&mut tx, id, &why, p.now).await;
                    report_quarantine(done, id, &why);
                    continue;
                }
            };
            insert_event(
                &mut tx,
                job.id,
                Some(JobState::Queued),
                JobState::Submitting,
                p.now,
                &format!("claimed by {}", p.owner),
                None,
            )
            .await?;
            claimed.push(job);
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn job_claim_polls(&self, p: &PollClaimParams) -> Result<Vec<Job>, StoreError> {
        if p.limit == 0 {
            return Ok(Vec::new());
        }
        let now = ms(p.now);
        let sql = format!(
            "UPDATE jobs SET lease_owner = $1, lease_expires_at = $2, updated_at = $3 \
             WHERE id IN (SELECT id FROM jobs WHERE state = 'running' \
                 AND (next_poll_at IS NULL OR next_poll_at <= $3) \
                 AND (lease_owner IS NULL OR lease_expires_at < $3) \
                 ORDER BY next_poll_at, id LIMIT $4) \
             RETURNING {JOB_COLUMNS}"
        );
        let mut tx = self.begin().await?;
        let found = sqlx::query(&sql)
            .bind(&p.owner)
            .bind(ms(lease_until(p.now, p.lease)))
            .bind(now)
            .bind(i64::from(p.limit))
            .fetch_all(&mut *tx)
            .await?;
        let (mut jobs, _) = readable(&mut tx, &found, p.now).await?;
        tx.commit().await?;
        jobs.sort_by_key(|j| (j.next_poll_at, j.id));
        Ok(jobs)
    }

    async fn job_heartbeat(
        &self,
        owner: &str,
        ids: &[JobId],
        lease: Duration,
    ) -> Result<Vec<JobId>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let now = Utc::now();
        let mut q = QueryBuilder::<Sqlite>::new("UPDATE jobs SET lease_expires_at = ");
        q.push_bind(ms(lease_until(now, lease)))
            .push(", updated_at = ")
            .push_bind(ms(now))
            .push(" WHERE state IN ('submitting', 'running') AND lease_owner = ")
            .push_bind(owner)
            .push(" AND id IN (");
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        q.push(") RETURNING id");
        let mut kept: Vec<JobId> = q.build_query_scalar().fetch_all(&self.pool).await?;
        kept.sort_unstable();
        Ok(kept)
    }

    async fn job_update(&self, fence: &Fence, patch: &JobPatch) -> Result<bool, StoreError> {
        if let Some(to) = patch.to {
            crate::model::transitions::check(fence.state, to)?;
        }
        let now = Utc::now();
        let mut q = QueryBuilder::<Sqlite>::new("UPDATE jobs SET updated_at = ");
        q.push_bind(ms(now));
        let changes_state = patch.to.is_some_and(|to| to != fence.state);
        if let Some(to) = patch.to {
            q.push(", state = ").push_bind(to.as_str());
            if to.is_terminal() && changes_state {
                q.push(", finished_at = ").push_bind(ms(now));
            }
        }
        let drop_lease =
            patch.release_lease || patch.to.is_some_and(|to| changes_state && !to.is_active());
        if drop_lease {
            q.push(", lease_owner = NULL, lease_expires_at = NULL");
        }
        if let Some(run_at) = patch.run_at {
            q.push(", run_at = ").push_bind(ms(run_at));
        }
        if patch.spend_attempt {
            q.push(", attempts = attempts + 1");
        }
        if let Some(r) = &patch.remote {
            q.push(", remote_task_id = ").push_bind(r.task_id.clone());
            q.push(", remote_status = ").push_bind(r.status.clone());
            q.push(", remote_progress = ").push_bind(r.progress.clone());
            q.push(", export_data_size = ")
                .push_bind(r.export_data_size);
            q.push(", import_data_size = ")
                .push_bind(r.import_data_size);
            q.push(", backup_set_time = ").push_bind(r.backup_set_time);
            q.push(", download_url = ")
                .push_bind(r.download_url.clone());
            q.push(", download_url_expires_at = ")
                .push_bind(opt_ms(r.download_url_expires_at));
            q.push(", progress_anchor_at = ")
                .push_bind(opt_ms(r.progress_anchor_at));
            q.push(", progress_anchor_ppm = ")
                .push_bind(r.progress_anchor_ppm);
        }
        if let Some(at) = patch.next_poll_at {
            q.push(", next_poll_at = ").push_bind(ms(at));
        }
        if patch.count_poll {
            q.push(", polls = polls + 1");
        }
        if patch.count_remote_retry {
            q.push(", remote_retries = remote_retries + 1");
        }
        if let Some(flag) = patch.needs_reconcile {
            q.push(", needs_reconcile = ").push_bind(flag);
        }
        if let Some(err) = &patch.last_error {
            let (code, message, request_id) = match err {
                Some(e) => (
                    Some(e.code.clone()),
                    Some(e.message.clone()),
                    e.request_id.clone(),
                ),
                None => (None, None, None),
            };
            q.push(", last_error_code = ").push_bind(code);
            q.push(", last_error_message = ").push_bind(message);
            q.push(", last_error_request_id = ").push_bind(request_id);
        }
        q.push(" WHERE id = ")
            .push_bind(fence.id)
            .push(" AND state = ")
            .push_bind(fence.state.as_str());
        if let Some(owner) = &fence.owner {
            q.push(" AND lease_owner = ").push_bind(owner.clone());
        }
        let mut tx = self.begin().await?;
        let done = q.build().execute(&mut *tx).await?.rows_affected() > 0;
        if done && changes_state {
            if let Some(to) = patch.to {
                insert_event(
                    &mut tx,
                    fence.id,
                    Some(fence.state),
                    to,
                    now,
                    &patch.reason,
                    patch.request_id.as_deref(),
                )
                .await?;
            }
        }
        tx.commit().await?;
        if done && patch.wakes_dispatcher(fence.state) {
            self.wake();
        }
        Ok(done)
    }

    async fn job_rescue_expired(&self, now: DateTime<Utc>) -> Result<Vec<JobId>, StoreError> {
        let at = ms(now);
        let mut tx = self.begin().await?;
        let stuck: Vec<JobId> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'queued', needs_reconcile = 1, lease_owner = NULL, \
             lease_expires_at = NULL, updated_at = $1 \
             WHERE state = 'submitting' AND lease_owner IS NOT NULL AND lease_expires_at < $1 \
             RETURNING id",
        )
        .bind(at)
        .fetch_all(&mut *tx)
        .await?;
        for id in &stuck {
            insert_event(
                &mut tx,
                *id,
                Some(JobState::Submitting),
                JobState::Queued,
                now,
                "lease expired while submitting; reconcile before resubmitting",
                None,
            )
            .await?;
        }
        let polling: Vec<JobId> = sqlx::query_scalar(
            "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL, \
             next_poll_at = CASE WHEN next_poll_at IS NULL OR next_poll_at > $1 THEN $1 \
                            ELSE next_poll_at END, updated_at = $1 \
             WHERE state = 'running' AND lease_owner IS NOT NULL AND lease_expires_at < $1 \
             RETURNING id",
        )
        .bind(at)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut ids: Vec<JobId> = stuck.into_iter().chain(polling).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    async fn job_get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        fetch_job(&mut conn, id).await
    }

    async fn job_list(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        let limit = page_limit(filter.limit);
        let mut conn = self.pool.acquire().await?;
        let found = list_query(filter, limit)
            .build()
            .fetch_all(&mut *conn)
            .await?;
        let (mut jobs, bad) = readable(&mut conn, &found, Utc::now()).await?;
        if bad > 0 {
            // The quarantined rows are readable now: list them in their place.
            let found = list_query(filter, limit)
                .build()
                .fetch_all(&mut *conn)
                .await?;
            jobs = readable(&mut conn, &found, Utc::now()).await?.0;
        }
        let next_cursor = if jobs.len() > limit as usize {
            jobs.truncate(limit as usize);
            jobs.last().map(|j| j.id)
        } else {
            None
        };
        Ok(JobPage { jobs, next_cursor })
    }

    async fn job_count_by_state(&self) -> Result<Vec<(JobState, i64)>, StoreError> {
        let found: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?;
        found
            .into_iter()
            .map(|(s, n)| {
                s.parse::<JobState>()
                    .map(|st| (st, n))
                    .map_err(|e| StoreError::Corrupt(format!("jobs.state: {e}")))
            })
            .collect()
    }

    async fn queue_snapshot(
        &self,
        now: DateTime<Utc>,
        after_id: JobId,
    ) -> Result<super::QueueSnapshot, StoreError> {
        let by_state: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?;
        let (oldest_due,): (Option<i64>,) =
            sqlx::query_as("SELECT min(run_at) FROM jobs WHERE state = 'queued' AND run_at <= $1")
                .bind(ms(now))
                .fetch_one(&self.pool)
                .await?;
        let (blocked, oldest_block): (i64, Option<i64>) =
            sqlx::query_as("SELECT count(*), min(blocked_at) FROM instances WHERE blocked")
                .fetch_one(&self.pool)
                .await?;
        let (max_id,): (i64,) = sqlx::query_as("SELECT coalesce(max(id), 0) FROM jobs")
            .fetch_one(&self.pool)
            .await?;
        let new_by_source: Vec<(String, i64)> = sqlx::query_as(
            "SELECT source, count(*) FROM jobs WHERE id > $1 AND id <= $2 \
             GROUP BY source ORDER BY source",
        )
        .bind(after_id)
        .bind(max_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(super::QueueSnapshot {
            by_state: super::sql::parse_counts(by_state, "jobs.state")?,
            oldest_due_queued: oldest_due.and_then(DateTime::from_timestamp_millis),
            blocked_instances: blocked,
            oldest_block: oldest_block.and_then(DateTime::from_timestamp_millis),
            max_job_id: max_id,
            new_by_source: super::sql::parse_counts(new_by_source, "jobs.source")?,
        })
    }

    async fn job_cancel(&self, id: JobId, reason: &str) -> Result<Option<Job>, StoreError> {
        let now = Utc::now();
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = $1, updated_at = $1, \
             lease_owner = NULL, lease_expires_at = NULL WHERE id = $2 AND state = 'queued'",
        )
        .bind(ms(now))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if done {
            insert_event(
                &mut tx,
                id,
                Some(JobState::Queued),
                JobState::Cancelled,
                now,
                reason,
                None,
            )
            .await?;
        }
        let job = fetch_job(&mut tx, id).await?;
        tx.commit().await?;
        if let (true, Some(j)) = (done, &job) {
            crate::telemetry::metrics::job_finished(j, JobState::Cancelled, now);
        }
        Ok(job)
    }

    async fn job_retry(&self, id: JobId, reason: &str) -> Result<Option<Job>, StoreError> {
        let now = Utc::now();
        let mut tx = self.begin().await?;
        let Some(before) = fetch_job(&mut tx, id).await? else {
            return Ok(None);
        };
        if !matches!(before.state, JobState::Failed | JobState::Cancelled) {
            return Ok(Some(before));
        }
        sqlx::query(
            "UPDATE jobs SET state = 'queued', run_at = $1, updated_at = $1, attempts = 0, \
             polls = 0, remote_retries = 0, finished_at = NULL, next_poll_at = NULL, \
             lease_owner = NULL, lease_expires_at = NULL, remote_task_id = NULL, \
             remote_status = NULL, remote_progress = NULL, export_data_size = NULL, \
             import_data_size = NULL, backup_set_time = NULL, download_url = NULL, \
             download_url_expires_at = NULL, \
             progress_anchor_at = NULL, progress_anchor_ppm = NULL WHERE id = $2 AND state = $3",
        )
        .bind(ms(now))
        .bind(id)
        .bind(before.state.as_str())
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            id,
            Some(before.state),
            JobState::Queued,
            now,
            reason,
            None,
        )
        .await?;
        let job = fetch_job(&mut tx, id).await?;
        tx.commit().await?;
        self.wake();
        Ok(job)
    }

    async fn job_delete(&self, id: JobId) -> Result<Option<JobState>, StoreError> {
        let mut tx = self.begin().await?;
        let state: Option<String> = sqlx::query_scalar(JOB_STATE_SQL)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(state) = state.map(|s| s.parse::<JobState>()).transpose()? else {
            return Ok(None);
        };
        if state.is_terminal() {
            sqlx::query(JOB_DELETE_SQL)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(Some(state))
    }

    async fn job_prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "DELETE FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') \
             AND finished_at < $1",
        )
        .bind(ms(before))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn event_list(&self, job_id: JobId) -> Result<Vec<JobEvent>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM job_events WHERE job_id = $1 ORDER BY id");
        let found = sqlx::query(&sql).bind(job_id).fetch_all(&self.pool).await?;
        found.iter().map(rows::event).collect()
    }

    async fn instance_upsert(
        &self,
        key: &InstanceKey,
        tags: Option<&[String]>,
    ) -> Result<(), StoreError> {
        let sql = match tags {
            Some(_) => {
                "INSERT INTO instances (region, instance, tags) VALUES ($1, $2, $3) \
                 ON CONFLICT (region, instance) DO UPDATE SET tags = excluded.tags"
            }
            None => {
                "INSERT INTO instances (region, instance, tags) VALUES ($1, $2, $3) \
                 ON CONFLICT (region, instance) DO NOTHING"
            }
        };
        sqlx::query(sql)
            .bind(&key.region)
            .bind(&key.instance)
            .bind(tags_to_json(tags.unwrap_or(&[])))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn instance_block(&self, b: &BlockInstance) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO instances (region, instance, blocked, blocked_until, blocked_reason, \
             blocking_task_id, blocked_at) VALUES ($1, $2, 1, $3, $4, $5, $6) \
             ON CONFLICT (region, instance) DO UPDATE SET blocked = 1, \
             blocked_until = excluded.blocked_until, blocked_reason = excluded.blocked_reason, \
             blocking_task_id = excluded.blocking_task_id, blocked_at = excluded.blocked_at",
        )
        .bind(&b.key.region)
        .bind(&b.key.instance)
        .bind(opt_ms(b.until))
        .bind(&b.reason)
        .bind(&b.task_id)
        .bind(ms(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn instance_unblock(&self, key: &InstanceKey) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE instances SET blocked = 0, blocked_until = NULL, blocked_reason = NULL, \
             blocking_task_id = NULL, blocked_at = NULL \
             WHERE region = $1 AND instance = $2 AND blocked = 1",
        )
        .bind(&key.region)
        .bind(&key.instance)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0;
        if done {
            self.wake();
        }
        Ok(done)
    }

    async fn instance_get(&self, key: &InstanceKey) -> Result<Option<Instance>, StoreError> {
        let sql =
            format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE region = $1 AND instance = $2");
        let row = sqlx::query(&sql)
            .bind(&key.region)
            .bind(&key.instance)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::instance).transpose()
    }

    async fn instance_list(&self) -> Result<Vec<Instance>, StoreError> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances ORDER BY region, instance");
        let found = sqlx::query(&sql).fetch_all(&self.pool).await?;
        found.iter().map(rows::instance).collect()
    }

    async fn instance_list_reprobe(&self, now: DateTime<Utc>) -> Result<Vec<Instance>, StoreError> {
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances WHERE blocked = 1 \
             AND blocked_until IS NOT NULL AND blocked_until <= $1 ORDER BY blocked_until"
        );
        let found = sqlx::query(&sql)
            .bind(ms(now))
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(rows::instance).collect()
    }

    async fn instance_mark_success(
        &self,
        key: &InstanceKey,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO instances (region, instance, last_success_at) VALUES ($1, $2, $3) \
             ON CONFLICT (region, instance) DO UPDATE SET last_success_at = excluded.last_success_at",
        )
        .bind(&key.region)
        .bind(&key.instance)
        .bind(ms(at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
