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

use super::sql::{is_unique_violation, report_quarantine, JOB_COLUMNS, ONE_ACTIVE_INDEX};
use super::{lease_until, ClaimParams, PollClaimParams, StoreError};
use crate::model::{Job, JobId, JobState};
use chrono::{DateTime, Utc};
use rows::ms;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for another one before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Dialect hook of the collector's oldest-queued read: without statistics SQLite's planner
/// takes `jobs_state_id` for `state = 'queued'` and reads every queued row; the partial
/// index on `run_at` answers it in one probe.
const QUEUED_BY_RUN_AT: &str = " INDEXED BY jobs_queued_run_at";

/// The embedded backend: one process per database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: sqlx::SqlitePool,
    notify: super::wake::Wakeups,
    /// The newest job id this store enqueued (its own inserts wake the workers directly).
    own_newest: Arc<std::sync::atomic::AtomicI64>,
    /// The database file (`None` in memory): its stamp is the store's change stamp.
    file: Option<std::path::PathBuf>,
    /// Stops the change watcher (`watch`) when the last handle drops.
    _watch: Arc<tokio_util::sync::DropGuard>,
    /// Where every stamp the store writes comes from.
    clock: crate::clock::DynClock,
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
        let notify = super::wake::Wakeups::default();
        let own_newest = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let stop = tokio_util::sync::CancellationToken::new();
        let file = lock::database_path(url).ok().flatten();
        tokio::spawn(watch::run(
            options,
            file.clone(),
            notify.clone(),
            own_newest.clone(),
            stop.clone(),
        ));
        Ok(Self {
            pool,
            notify,
            own_newest,
            file,
            _watch: Arc::new(stop.drop_guard()),
            clock: Arc::new(crate::clock::SystemClock),
        })
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    fn wake(&self) {
        self.notify.wake();
    }

    /// Our own inserts wake the workers directly; the watcher skips them.
    fn after_enqueue(&self, id: JobId) {
        self.own_newest
            .fetch_max(id, std::sync::atomic::Ordering::Relaxed);
        self.wake();
    }

    /// The change stamp: the file's and the WAL's modification time and size, which every
    /// commit moves (the watcher's test, `watch::stamp_of`). A file modified within the
    /// last second has no stamp yet: a commit in the same mtime tick as this look, which
    /// leaves the sizes alone, would otherwise go unseen until the next change.
    async fn stamp(&self) -> Result<Option<String>, StoreError> {
        let Some(file) = self.file.as_deref() else {
            return Ok(None);
        };
        let stamp = watch::stamp_of(file);
        let settled = stamp.iter().flatten().all(|(modified, _)| {
            modified
                .elapsed()
                .is_ok_and(|age| age >= std::time::Duration::from_secs(1))
        });
        Ok(settled.then(|| format!("{stamp:?}")))
    }

    /// SQLite overwrites rows in place: no dead versions to reclaim.
    async fn reclaim(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn has_migrations_table(&self) -> Result<bool, StoreError> {
        let table: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(table.is_some())
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

impl SqliteStore {
    /// The claim under SQLite's single writer: read the heads, take each with a fenced
    /// `UPDATE`; a unique violation on one instance is skipped quietly.
    async fn claim(&self, p: &ClaimParams) -> Result<Vec<Job>, StoreError> {
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
            claimed.push(job);
        }
        let reason = format!("claimed by {}", p.owner);
        let events: Vec<_> = claimed
            .iter()
            .map(|j| {
                let (from, to) = (Some(JobState::Queued), JobState::Submitting);
                (j.id, from, to, reason.as_str(), None)
            })
            .collect();
        job_store_impl::insert_events(&mut tx, p.now, &events).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Lease due `running` jobs (one writer at a time, so no row locks are needed).
    async fn claim_polls(&self, p: &PollClaimParams) -> Result<Vec<Job>, StoreError> {
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
}

fn read_ms(v: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v)
}

super::jobs::job_store! {
    backend: "sqlite",
    store: SqliteStore,
    db: Sqlite,
    migrator: MIGRATOR,
    bind_time: ms,
    stored_time: i64,
    read_time: read_ms,
    events_in_update: false,
}
