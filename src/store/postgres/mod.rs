//! The scale-out backend: PostgreSQL, any number of processes on one database.
//!
//! Claims lock the instances they pick with `FOR NO KEY UPDATE SKIP LOCKED`, so racing
//! claimers split the free instances between them instead of waiting on each other. The
//! claim walks the `instances` bookkeeping that the jobs trigger keeps (docs/store.md), so
//! its cost does not depend on the backlog. A background task LISTENs for the jobs
//! trigger's NOTIFY so SQL-inserted jobs wake idle workers too.

mod console;
mod listener;
mod quarantine;
pub(crate) mod rows;
mod schedules;

pub use listener::CHANNEL as NOTIFY_CHANNEL;

use super::sql::{
    is_lost_race, page_limit, tags_to_json, EVENT_COLUMNS, INSTANCE_COLUMNS, JOB_COLUMNS,
    JOB_DELETE_SQL, JOB_STATE_SQL,
};
use super::{
    BlockInstance, ClaimParams, Enqueued, Fence, JobFilter, JobPage, JobPatch, NewJob,
    PollClaimParams, Store, StoreError,
};
use crate::model::{Instance, InstanceKey, Job, JobEvent, JobId, JobState};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// How long `connect` waits for the notification listener before going on without it
/// (it keeps trying in the background).
const LISTENER_READY_TIMEOUT: Duration = Duration::from_secs(5);

/// The scale-out backend: any number of processes on one database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: sqlx::PgPool,
    notify: Arc<tokio::sync::Notify>,
    /// Stops the listener task when the last handle drops.
    _listener: Arc<DropGuard>,
}

fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

impl PgStore {
    /// Connect a pool and start the notification listener.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        let notify = Arc::new(tokio::sync::Notify::new());
        let stop = CancellationToken::new();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(listener::run(
            url.to_string(),
            notify.clone(),
            stop.clone(),
            ready_tx,
        ));
        if tokio::time::timeout(LISTENER_READY_TIMEOUT, ready_rx)
            .await
            .is_err()
        {
            tracing::warn!("job notification listener not ready yet; workers fall back to polling");
        }
        Ok(Self {
            pool,
            notify,
            _listener: Arc::new(stop.drop_guard()),
        })
    }

    fn wake(&self) {
        listener::wake(&self.notify);
    }
}

/// The claim: walk free, unblocked instances whose head job is due, in claim order,
/// skipping instances another claimer (or an enqueue) holds; take each head job, lease it
/// and append its event — one statement. $1 now, $2 limit, $3 owner, $4 lease expiry,
/// $5 event reason.
fn claim_sql() -> String {
    format!(
        "WITH heads AS ( \
            SELECT head_job_id FROM instances \
            WHERE head_job_id IS NOT NULL AND active_job_id IS NULL AND NOT blocked \
              AND head_run_at <= $1 \
            ORDER BY head_priority DESC, head_run_at, head_job_id \
            LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED \
         ), picked AS ( \
            SELECT j.id FROM jobs j JOIN heads h ON j.id = h.head_job_id \
            WHERE j.state = 'queued' FOR NO KEY UPDATE OF j SKIP LOCKED \
         ), claimed AS ( \
            UPDATE jobs SET state = 'submitting', lease_owner = $3, lease_expires_at = $4, \
                started_at = coalesce(started_at, $1), updated_at = $1 \
            WHERE id IN (SELECT id FROM picked) AND state = 'queued' \
            RETURNING {JOB_COLUMNS} \
         ), events AS ( \
            INSERT INTO job_events (job_id, from_state, to_state, at, reason) \
            SELECT id, 'queued', 'submitting', $1, $5 FROM claimed \
         ) \
         SELECT * FROM claimed ORDER BY priority DESC, run_at, id"
    )
}

impl PgStore {
    /// `EXPLAIN (ANALYZE, BUFFERS)` of the claim, run in a transaction that is rolled back
    /// (nothing is claimed). For docs/store.md and the benchmark.
    pub async fn explain_claim(&self, p: &ClaimParams) -> Result<String, StoreError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {}", claim_sql());
        let lines: Vec<String> = sqlx::query_scalar(&sql)
            .bind(p.now)
            .bind(i64::from(p.limit))
            .bind(&p.owner)
            .bind(lease_until(p.now, p.lease))
            .bind("explain")
            .fetch_all(&mut *tx)
            .await?;
        tx.rollback().await?;
        let mut out = vec!["-- claim".to_string()];
        out.extend(lines);
        // What the jobs trigger runs per changed job (dbs_archiver_sync_instance).
        for (label, sql) in [
            (
                "trigger: head of one instance",
                "SELECT id, priority, run_at FROM jobs \
              WHERE region = 'cn-hangzhou' AND instance = 'rm-1' AND state = 'queued' \
              ORDER BY priority DESC, run_at, id LIMIT 1",
            ),
            (
                "trigger: active job of one instance",
                "SELECT id FROM jobs \
              WHERE region = 'cn-hangzhou' AND instance = 'rm-1' \
              AND state IN ('submitting', 'running') LIMIT 1",
            ),
        ] {
            let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN (COSTS OFF) {sql}"))
                .fetch_all(&self.pool)
                .await?;
            out.push(format!("-- {label}"));
            out.extend(plan);
        }
        Ok(out.join("\n"))
    }
}

super::sql::quarantine_readers!(PgConnection, sqlx::postgres::PgRow);

async fn insert_event(
    conn: &mut PgConnection,
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
    .bind(at)
    .bind(reason)
    .bind(request_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Existing job with the same idempotency key or the same schedule fire on the instance.
async fn find_duplicate(conn: &mut PgConnection, job: &NewJob) -> Result<Option<Job>, StoreError> {
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
            "SELECT {JOB_COLUMNS} FROM jobs WHERE schedule_id = $1 \
             AND fire_time IS NOT DISTINCT FROM $2 AND region = $3 AND instance = $4"
        );
        if let Some(row) = sqlx::query(&sql)
            .bind(schedule_id)
            .bind(job.fire_time)
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
fn list_query(filter: &JobFilter, limit: u32) -> QueryBuilder<'static, Postgres> {
    let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE true"));
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
        q.push(" AND created_at > ").push_bind(after);
    }
    if let Some(before) = filter.created_before {
        q.push(" AND created_at < ").push_bind(before);
    }
    if let Some(cursor) = filter.cursor {
        q.push(" AND id < ").push_bind(cursor);
    }
    q.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    q
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn job_notifier(&self) -> Arc<tokio::sync::Notify> {
        self.notify.clone()
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ready(&self) -> Result<bool, StoreError> {
        let table: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
                .fetch_one(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        if let Some(existing) = find_duplicate(&mut tx, &job).await? {
            return Ok(Enqueued {
                job: existing,
                created: false,
            });
        }
        // A racing enqueue with the same key commits first: DO NOTHING, then read it.
        let sql = format!(
            "INSERT INTO jobs (region, instance, bak_set_type, bak_set_id, bak_set_size, \
             download_point_in_time, format, target_type, target_bucket, target_oss_region, \
             target_path, cluster_name, is_cluster, admin_database, primary_key_type_only, \
             use_zstd, is_physical, source, priority, run_at, max_attempts, idempotency_key, \
             schedule_id, fire_time, created_at, updated_at, sink) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19, $20, $21, $22, $23, $24, $25, $25, $26) \
             ON CONFLICT DO NOTHING RETURNING {JOB_COLUMNS}"
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
            .bind(job.run_at.unwrap_or(now))
            .bind(job.max_attempts)
            .bind(&job.idempotency_key)
            .bind(job.schedule_id)
            .bind(job.fire_time)
            .bind(now)
            .bind(&r.sink)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            let existing = find_duplicate(&mut tx, &job).await?.ok_or_else(|| {
                StoreError::Corrupt("enqueue conflicted but no duplicate job found".into())
            })?;
            tx.commit().await?;
            return Ok(Enqueued {
                job: existing,
                created: false,
            });
        };
        let created = rows::job(&row)?;
        tx.commit().await?;
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
        let sql = claim_sql();
        let mut conn = self.pool.acquire().await?;
        let result = sqlx::query(&sql)
            .bind(p.now)
            .bind(i64::from(p.limit))
            .bind(&p.owner)
            .bind(lease_until(p.now, p.lease))
            .bind(format!("claimed by {}", p.owner))
            .fetch_all(&mut *conn)
            .await;
        match result {
            Ok(found) => Ok(readable(&mut conn, &found, p.now).await?.0),
            // Another process made an instance active under us: it won; we move on.
            Err(e) if is_lost_race(&e) => {
                tracing::debug!(error = %e, "claim lost a race; nothing claimed this round");
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn job_claim_polls(&self, p: &PollClaimParams) -> Result<Vec<Job>, StoreError> {
        if p.limit == 0 {
            return Ok(Vec::new());
        }
        let sql = format!(
            "WITH due AS ( \
                SELECT id FROM jobs WHERE state = 'running' \
                  AND (next_poll_at IS NULL OR next_poll_at <= $1) \
                  AND (lease_owner IS NULL OR lease_expires_at < $1) \
                ORDER BY next_poll_at NULLS FIRST, id LIMIT $2 \
                FOR NO KEY UPDATE SKIP LOCKED \
             ), leased AS ( \
                UPDATE jobs SET lease_owner = $3, lease_expires_at = $4, updated_at = $1 \
                WHERE id IN (SELECT id FROM due) AND state = 'running' \
                RETURNING {JOB_COLUMNS} \
             ) SELECT * FROM leased ORDER BY next_poll_at NULLS FIRST, id"
        );
        let mut conn = self.pool.acquire().await?;
        let found = sqlx::query(&sql)
            .bind(p.now)
            .bind(i64::from(p.limit))
            .bind(&p.owner)
            .bind(lease_until(p.now, p.lease))
            .fetch_all(&mut *conn)
            .await?;
        Ok(readable(&mut conn, &found, p.now).await?.0)
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
        let mut kept: Vec<JobId> = sqlx::query_scalar(
            "UPDATE jobs SET lease_expires_at = $1, updated_at = $2 \
             WHERE state IN ('submitting', 'running') AND lease_owner = $3 AND id = ANY($4) \
             RETURNING id",
        )
        .bind(lease_until(now, lease))
        .bind(now)
        .bind(owner)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        kept.sort_unstable();
        Ok(kept)
    }

    /// One statement, one round trip: the fenced `UPDATE`, and for a state change the
    /// event row in a data-modifying CTE (atomic like the claim). It used to be BEGIN,
    /// UPDATE, INSERT, COMMIT — four round trips for every transition (docs/performance.md).
    async fn job_update(&self, fence: &Fence, patch: &JobPatch) -> Result<bool, StoreError> {
        if let Some(to) = patch.to {
            crate::model::transitions::check(fence.state, to)?;
        }
        let now = Utc::now();
        let changes_state = patch.to.is_some_and(|to| to != fence.state);
        let event_to = patch.to.filter(|_| changes_state);
        let mut q = QueryBuilder::<Postgres>::new(if event_to.is_some() {
            "WITH updated AS (UPDATE jobs SET updated_at = "
        } else {
            "UPDATE jobs SET updated_at = "
        });
        q.push_bind(now);
        if let Some(to) = patch.to {
            q.push(", state = ").push_bind(to.as_str());
            if to.is_terminal() && changes_state {
                q.push(", finished_at = ").push_bind(now);
            }
        }
        let drop_lease =
            patch.release_lease || patch.to.is_some_and(|to| changes_state && !to.is_active());
        if drop_lease {
            q.push(", lease_owner = NULL, lease_expires_at = NULL");
        }
        if let Some(run_at) = patch.run_at {
            q.push(", run_at = ").push_bind(run_at);
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
                .push_bind(r.download_url_expires_at);
            q.push(", progress_anchor_at = ")
                .push_bind(r.progress_anchor_at);
            q.push(", progress_anchor_ppm = ")
                .push_bind(r.progress_anchor_ppm);
        }
        if let Some(at) = patch.next_poll_at {
            q.push(", next_poll_at = ").push_bind(at);
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
        let done = match event_to {
            Some(to) => {
                q.push(
                    " RETURNING id), event AS (INSERT INTO job_events \
                        (job_id, from_state, to_state, at, reason, request_id) SELECT id, ",
                )
                .push_bind(fence.state.as_str())
                .push(", ")
                .push_bind(to.as_str())
                .push(", ")
                .push_bind(now)
                .push(", ")
                .push_bind(patch.reason.as_str())
                .push(", ")
                .push_bind(patch.request_id.as_deref())
                .push(" FROM updated) SELECT count(*) FROM updated");
                let n: i64 = q.build_query_scalar().fetch_one(&self.pool).await?;
                n > 0
            }
            None => q.build().execute(&self.pool).await?.rows_affected() > 0,
        };
        if done && patch.wakes_dispatcher(fence.state) {
            self.wake();
        }
        Ok(done)
    }

    async fn job_rescue_expired(&self, now: DateTime<Utc>) -> Result<Vec<JobId>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let stuck: Vec<JobId> = sqlx::query_scalar(
            "WITH rescued AS ( \
                UPDATE jobs SET state = 'queued', needs_reconcile = true, lease_owner = NULL, \
                    lease_expires_at = NULL, updated_at = $1 \
                WHERE state = 'submitting' AND lease_owner IS NOT NULL AND lease_expires_at < $1 \
                RETURNING id \
             ), events AS ( \
                INSERT INTO job_events (job_id, from_state, to_state, at, reason) \
                SELECT id, 'submitting', 'queued', $1, \
                    'lease expired while submitting; reconcile before resubmitting' FROM rescued \
             ) SELECT id FROM rescued",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let polling: Vec<JobId> = sqlx::query_scalar(
            "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL, \
             next_poll_at = LEAST(coalesce(next_poll_at, $1), $1), updated_at = $1 \
             WHERE state = 'running' AND lease_owner IS NOT NULL AND lease_expires_at < $1 \
             RETURNING id",
        )
        .bind(now)
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
        let (oldest_due,): (Option<DateTime<Utc>>,) =
            sqlx::query_as("SELECT min(run_at) FROM jobs WHERE state = 'queued' AND run_at <= $1")
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
        let (blocked, oldest_block): (i64, Option<DateTime<Utc>>) =
            sqlx::query_as("SELECT count(*), min(blocked_at) FROM instances WHERE blocked")
                .fetch_one(&self.pool)
                .await?;
        let (max_id,): (i64,) = sqlx::query_as("SELECT coalesce(max(id), 0)::BIGINT FROM jobs")
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
            oldest_due_queued: oldest_due,
            blocked_instances: blocked,
            oldest_block,
            max_job_id: max_id,
            new_by_source: super::sql::parse_counts(new_by_source, "jobs.source")?,
        })
    }

    async fn job_cancel(&self, id: JobId, reason: &str) -> Result<Option<Job>, StoreError> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = $1, updated_at = $1, \
             lease_owner = NULL, lease_expires_at = NULL WHERE id = $2 AND state = 'queued'",
        )
        .bind(now)
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
        let mut tx = self.pool.begin().await?;
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1 FOR NO KEY UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(state) = state else {
            return Ok(None);
        };
        let state: JobState = state
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("jobs.state: {e}")))?;
        if matches!(state, JobState::Failed | JobState::Cancelled) {
            sqlx::query(
                "UPDATE jobs SET state = 'queued', run_at = $1, updated_at = $1, attempts = 0, \
                 polls = 0, remote_retries = 0, finished_at = NULL, next_poll_at = NULL, \
                 lease_owner = NULL, lease_expires_at = NULL, remote_task_id = NULL, \
                 remote_status = NULL, remote_progress = NULL, export_data_size = NULL, \
                 import_data_size = NULL, backup_set_time = NULL, download_url = NULL, \
                 download_url_expires_at = NULL, \
             progress_anchor_at = NULL, progress_anchor_ppm = NULL WHERE id = $2",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            insert_event(
                &mut tx,
                id,
                Some(state),
                JobState::Queued,
                now,
                reason,
                None,
            )
            .await?;
        }
        let job = fetch_job(&mut tx, id).await?;
        tx.commit().await?;
        self.wake();
        Ok(job)
    }

    async fn job_delete(&self, id: JobId) -> Result<Option<JobState>, StoreError> {
        let mut tx = self.pool.begin().await?;
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
        let n = sqlx::query(
            "DELETE FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') \
             AND finished_at < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await?
        .rows_affected();
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
             blocking_task_id, blocked_at) VALUES ($1, $2, true, $3, $4, $5, $6) \
             ON CONFLICT (region, instance) DO UPDATE SET blocked = true, \
             blocked_until = excluded.blocked_until, blocked_reason = excluded.blocked_reason, \
             blocking_task_id = excluded.blocking_task_id, blocked_at = excluded.blocked_at",
        )
        .bind(&b.key.region)
        .bind(&b.key.instance)
        .bind(b.until)
        .bind(&b.reason)
        .bind(&b.task_id)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn instance_unblock(&self, key: &InstanceKey) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE instances SET blocked = false, blocked_until = NULL, blocked_reason = NULL, \
             blocking_task_id = NULL, blocked_at = NULL \
             WHERE region = $1 AND instance = $2 AND blocked",
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
            "SELECT {INSTANCE_COLUMNS} FROM instances WHERE blocked \
             AND blocked_until IS NOT NULL AND blocked_until <= $1 ORDER BY blocked_until"
        );
        let found = sqlx::query(&sql).bind(now).fetch_all(&self.pool).await?;
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
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
