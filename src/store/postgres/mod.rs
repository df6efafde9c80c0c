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

use super::sql::{is_lost_race, JOB_COLUMNS};
use super::{lease_until, ClaimParams, PollClaimParams, StoreError};
use crate::model::{Job, JobId};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, Postgres};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// How long `connect` waits for the notification listener before going on without it
/// (it keeps trying in the background).
const LISTENER_READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Dialect hook of the collector's oldest-queued read: PostgreSQL's planner finds the
/// partial index `jobs_queued_run_at` by itself.
const QUEUED_BY_RUN_AT: &str = "";

/// The scale-out backend: any number of processes on one database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: sqlx::PgPool,
    notify: super::wake::Wakeups,
    /// Stops the listener task when the last handle drops.
    _listener: Arc<DropGuard>,
    /// Where every stamp the store writes comes from.
    clock: crate::clock::DynClock,
}

impl PgStore {
    /// Connect a pool and start the notification listener.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        let notify = super::wake::Wakeups::default();
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
            clock: Arc::new(crate::clock::SystemClock),
        })
    }

    fn wake(&self) {
        self.notify.wake();
    }

    /// The jobs trigger NOTIFYs every listener; wake this process's workers at once too.
    fn after_enqueue(&self, _id: JobId) {
        self.wake();
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// `VACUUM` of the bookkeeping table (see `Store::reclaim_bookkeeping`). `SKIP_LOCKED`:
    /// when another process is vacuuming it, this round has nothing to add. A user that
    /// does not own the table gets a warning from the server, not an error.
    async fn reclaim(&self) -> Result<(), StoreError> {
        sqlx::raw_sql("VACUUM (SKIP_LOCKED) instances")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The change stamp: rows inserted, updated and deleted in the tables the collector
    /// reads, from the statistics system (reading them writes nothing).
    async fn stamp(&self) -> Result<Option<String>, StoreError> {
        let stamp: Option<String> = sqlx::query_scalar(
            "SELECT string_agg(concat_ws(':', relid, n_tup_ins, n_tup_upd, n_tup_del), ',' \
                               ORDER BY relid) \
             FROM pg_stat_user_tables \
             WHERE relid IN ('jobs'::regclass, 'instances'::regclass, 'schedules'::regclass)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(stamp)
    }

    async fn has_migrations_table(&self) -> Result<bool, StoreError> {
        let table: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
                .fetch_one(&self.pool)
                .await?;
        Ok(table.is_some())
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

impl PgStore {
    /// The claim: one statement ([`claim_sql`]); a lost race claims nothing this round.
    async fn claim(&self, p: &ClaimParams) -> Result<Vec<Job>, StoreError> {
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

    /// Lease due `running` jobs, skipping rows another tracker is leasing right now.
    async fn claim_polls(&self, p: &PollClaimParams) -> Result<Vec<Job>, StoreError> {
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
}

super::jobs::job_store! {
    backend: "postgres",
    store: PgStore,
    db: Postgres,
    migrator: MIGRATOR,
    bind_time: std::convert::identity,
    stored_time: DateTime<Utc>,
    read_time: Some,
    events_in_update: true,
}
