//! The job queue's SQL, written once for both backends (docs/store.md, "One store layer").
//!
//! [`job_store!`] expands the whole [`super::Store`] implementation inside a backend's
//! module, like `archives::archive_store!` and `sql::quarantine_readers!`. Every statement
//! whose text is the same on SQLite and PostgreSQL is here; a backend supplies only what
//! really differs, as arguments and as a few inherent methods of its store (its dialect):
//!
//! * arguments: the backend name, the sqlx database and row types, the migrator, how a time
//!   is bound (`ms` or as is) and read back (`$stored` → `$read_time`), and whether the
//!   batched update can append its events in the same statement (a data-modifying CTE on
//!   PostgreSQL; SQLite has none, so there it is a second statement in the transaction);
//! * methods: `begin` (SQLite takes the write lock up front), `wake` and `after_enqueue`
//!   (LISTEN/NOTIFY vs the SQLite watcher), `claim` and `claim_polls` (the claim's locking),
//!   `has_migrations_table`.
//!
//! Adding a store method is one SQL text here (plus, only where the databases differ, one
//! such hook). The transitions the SQL makes are held to `model::transitions` in
//! `store/mod.rs` (the fixed ones) and by [`crate::model::transitions::check`] (patches).

use super::{Fence, JobPatch};
use crate::model::JobState;
use chrono::{DateTime, Utc};

/// The most patches one batched statement carries: 27 parameters each stays well under
/// SQLite's 32,766 and PostgreSQL's 65,535 bind parameters.
pub(crate) const BATCH_MAX: usize = 500;

/// One fenced patch in the form the batched `UPDATE … FROM (VALUES …)` binds: every
/// decision that depends only on the fence and the patch is made here, in Rust, so the
/// SQL is one text for every kind of patch.
pub(crate) struct PatchRow<'a> {
    pub fence: &'a Fence,
    pub patch: &'a JobPatch,
    /// The new state when the patch changes it (an event row is written then).
    pub to: Option<JobState>,
    pub finished_at: Option<DateTime<Utc>>,
    pub drop_lease: bool,
}

impl<'a> PatchRow<'a> {
    /// Check the transition against the state machine's one table and decide the derived
    /// columns. A forbidden transition is an error before anything is written.
    pub fn new(
        fence: &'a Fence,
        patch: &'a JobPatch,
        now: DateTime<Utc>,
    ) -> Result<Self, super::StoreError> {
        if let Some(to) = patch.to {
            crate::model::transitions::check(fence.state, to)?;
        }
        let to = patch.to.filter(|to| *to != fence.state);
        Ok(Self {
            fence,
            patch,
            to,
            finished_at: to.filter(|s| s.is_terminal()).map(|_| now),
            drop_lease: patch.release_lease || to.is_some_and(|s| !s.is_active()),
        })
    }
}

/// Columns of the batch's `VALUES` list, in bind order (`PatchRow`).
pub(crate) const PATCH_COLUMNS: &str = "job_id, from_state, owner, to_state, finished_at, \
    drop_lease, run_at, spend, set_remote, remote_task_id, remote_status, remote_progress, \
    export_data_size, import_data_size, backup_set_time, download_url, \
    download_url_expires_at, progress_anchor_at, progress_anchor_ppm, next_poll_at, poll, \
    remote_retry, needs_reconcile, set_error, \
    error_code, error_message, error_request_id, reason, request_id";

/// What the batch writes, each column from its patch row `p` or kept as it is; then the
/// fence (design.md invariant 2) per row.
pub(crate) const PATCH_SET: &str = "state = coalesce(p.to_state, jobs.state), \
    finished_at = coalesce(p.finished_at, jobs.finished_at), \
    lease_owner = CASE WHEN p.drop_lease THEN NULL ELSE jobs.lease_owner END, \
    lease_expires_at = CASE WHEN p.drop_lease THEN NULL ELSE jobs.lease_expires_at END, \
    run_at = coalesce(p.run_at, jobs.run_at), \
    attempts = jobs.attempts + p.spend, \
    remote_task_id = CASE WHEN p.set_remote THEN p.remote_task_id ELSE jobs.remote_task_id END, \
    remote_status = CASE WHEN p.set_remote THEN p.remote_status ELSE jobs.remote_status END, \
    remote_progress = CASE WHEN p.set_remote THEN p.remote_progress ELSE jobs.remote_progress END, \
    export_data_size = CASE WHEN p.set_remote THEN p.export_data_size ELSE jobs.export_data_size END, \
    import_data_size = CASE WHEN p.set_remote THEN p.import_data_size ELSE jobs.import_data_size END, \
    backup_set_time = CASE WHEN p.set_remote THEN p.backup_set_time ELSE jobs.backup_set_time END, \
    download_url = CASE WHEN p.set_remote THEN p.download_url ELSE jobs.download_url END, \
    download_url_expires_at = CASE WHEN p.set_remote THEN p.download_url_expires_at \
        ELSE jobs.download_url_expires_at END, \
    progress_anchor_at = CASE WHEN p.set_remote THEN p.progress_anchor_at \
        ELSE jobs.progress_anchor_at END, \
    progress_anchor_ppm = CASE WHEN p.set_remote THEN p.progress_anchor_ppm \
        ELSE jobs.progress_anchor_ppm END, \
    next_poll_at = coalesce(p.next_poll_at, jobs.next_poll_at), \
    polls = jobs.polls + p.poll, \
    remote_retries = jobs.remote_retries + p.remote_retry, \
    needs_reconcile = coalesce(p.needs_reconcile, jobs.needs_reconcile), \
    last_error_code = CASE WHEN p.set_error THEN p.error_code ELSE jobs.last_error_code END, \
    last_error_message = CASE WHEN p.set_error THEN p.error_message ELSE jobs.last_error_message END, \
    last_error_request_id = CASE WHEN p.set_error THEN p.error_request_id \
        ELSE jobs.last_error_request_id END \
    FROM p WHERE jobs.id = p.job_id AND jobs.state = p.from_state \
      AND (p.owner IS NULL OR jobs.lease_owner = p.owner)";

/// `job_rescue_expired`, part one: `submitting` with an expired lease ⇒ `queued`, to be
/// reconciled before it is submitted again.
pub(crate) const RESCUE_SUBMITTING_SQL: &str = "UPDATE jobs SET state = 'queued', \
    needs_reconcile = true, lease_owner = NULL, lease_expires_at = NULL, updated_at = $1 \
    WHERE state = 'submitting' AND lease_owner IS NOT NULL AND lease_expires_at < $1 \
    RETURNING id";
pub(crate) const RESCUE_REASON: &str =
    "lease expired while submitting; reconcile before resubmitting";

/// `job_rescue_expired`, part two: `running` with an expired lease: drop the lease and
/// make it due for a poll (it is still running).
pub(crate) const RESCUE_RUNNING_SQL: &str = "UPDATE jobs SET lease_owner = NULL, \
    lease_expires_at = NULL, \
    next_poll_at = CASE WHEN next_poll_at IS NULL OR next_poll_at > $1 THEN $1 \
        ELSE next_poll_at END, updated_at = $1 \
    WHERE state = 'running' AND lease_owner IS NOT NULL AND lease_expires_at < $1 \
    RETURNING id";

pub(crate) const ENQUEUE_SQL: &str = "INSERT INTO jobs (region, instance, bak_set_type, \
    bak_set_id, bak_set_size, download_point_in_time, format, target_type, target_bucket, \
    target_oss_region, target_path, cluster_name, is_cluster, admin_database, \
    primary_key_type_only, use_zstd, is_physical, source, priority, run_at, max_attempts, \
    idempotency_key, schedule_id, fire_time, created_at, updated_at, sink) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
    $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27) ON CONFLICT DO NOTHING RETURNING ";

pub(crate) const CANCEL_SQL: &str = "UPDATE jobs SET state = 'cancelled', finished_at = $1, \
    updated_at = $1, lease_owner = NULL, lease_expires_at = NULL \
    WHERE id = $2 AND state = 'queued'";

/// `failed`/`cancelled` ⇒ `queued`, fenced on the state read just before.
pub(crate) const RETRY_SQL: &str = "UPDATE jobs SET state = 'queued', run_at = $1, \
    updated_at = $1, attempts = 0, polls = 0, remote_retries = 0, finished_at = NULL, \
    next_poll_at = NULL, lease_owner = NULL, lease_expires_at = NULL, remote_task_id = NULL, \
    remote_status = NULL, remote_progress = NULL, export_data_size = NULL, \
    import_data_size = NULL, backup_set_time = NULL, download_url = NULL, \
    download_url_expires_at = NULL, progress_anchor_at = NULL, progress_anchor_ppm = NULL \
    WHERE id = $2 AND state = $3";

pub(crate) const BLOCK_SQL: &str = "INSERT INTO instances (region, instance, blocked, \
    blocked_until, blocked_reason, blocking_task_id, blocked_at) \
    VALUES ($1, $2, true, $3, $4, $5, $6) \
    ON CONFLICT (region, instance) DO UPDATE SET blocked = true, \
    blocked_until = excluded.blocked_until, blocked_reason = excluded.blocked_reason, \
    blocking_task_id = excluded.blocking_task_id, blocked_at = excluded.blocked_at";

pub(crate) const UNBLOCK_SQL: &str = "UPDATE instances SET blocked = false, \
    blocked_until = NULL, blocked_reason = NULL, blocking_task_id = NULL, blocked_at = NULL \
    WHERE region = $1 AND instance = $2 AND blocked";

/// Up to the `VALUES` list of [`MARK_SUCCESS_TAIL`]: the rows are taken in key order (the
/// order the bookkeeping function locks instances in, so the two cannot deadlock); the
/// `WHERE true` keeps SQLite from reading the upsert's `ON` as a join's.
pub(crate) const MARK_SUCCESS_HEAD: &str = "INSERT INTO instances (region, instance, \
    last_success_at) SELECT column1, column2, column3 FROM (";

pub(crate) const MARK_SUCCESS_TAIL: &str = ") AS v WHERE true ORDER BY column1, column2 \
    ON CONFLICT (region, instance) DO UPDATE SET last_success_at = excluded.last_success_at";

/// An event row to append: job, from, to, reason, cloud RequestId.
pub(crate) type NewEvent<'a> = (
    crate::model::JobId,
    Option<JobState>,
    JobState,
    &'a str,
    Option<&'a str>,
);

/// The [`super::Store`] implementation for one backend, expanded in that backend's module
/// (which provides `rows`, `readable`, `fetch_job` and the dialect methods named in the
/// module docs). `$events_in_update`: whether the batched update appends its events in
/// the same statement (a data-modifying CTE).
macro_rules! job_store {
    (
        backend: $name:literal,
        store: $store:ty,
        db: $db:ty,
        migrator: $migrator:path,
        bind_time: $t:path,
        stored_time: $stored:ty,
        read_time: $read:path,
        events_in_update: $events_in_update:literal $(,)?
    ) => {
        mod job_store_impl {
            use super::*;
            use crate::store::jobs::{
                NewEvent, PatchRow, BATCH_MAX, BLOCK_SQL, CANCEL_SQL, ENQUEUE_SQL,
                MARK_SUCCESS_HEAD, MARK_SUCCESS_TAIL, PATCH_COLUMNS, PATCH_SET, RESCUE_REASON,
                RESCUE_RUNNING_SQL, RESCUE_SUBMITTING_SQL, RETRY_SQL, UNBLOCK_SQL,
            };
            use crate::store::sql::{
                page_limit, tags_to_json, EVENT_COLUMNS, INSTANCE_COLUMNS, JOB_COLUMNS,
                JOB_DELETE_SQL, JOB_STATE_SQL,
            };
            use crate::store::{
                BlockInstance, ClaimParams, Enqueued, Fence, JobFilter, JobPage, JobPatch,
                NewJob, PollClaimParams, QueueSnapshot, Store, StoreError,
            };
            use crate::model::{Instance, InstanceKey, Job, JobEvent, JobId, JobState};
            use chrono::{DateTime, Utc};
            use sqlx::QueryBuilder;
            use std::time::Duration;

            type Conn = <$db as sqlx::Database>::Connection;

            /// Append event rows, one statement for all of them.
            pub(super) async fn insert_events(
                conn: &mut Conn,
                at: DateTime<Utc>,
                events: &[NewEvent<'_>],
            ) -> Result<(), StoreError> {
                if events.is_empty() {
                    return Ok(());
                }
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO job_events (job_id, from_state, to_state, at, reason, \
                     request_id) ",
                );
                q.push_values(events, |mut b, (id, from, to, reason, request_id)| {
                    b.push_bind(*id)
                        .push_bind(from.map(|s| s.as_str()))
                        .push_bind(to.as_str())
                        .push_bind($t(at))
                        .push_bind(*reason)
                        .push_bind(*request_id);
                });
                q.build().execute(&mut *conn).await?;
                Ok(())
            }

            /// Existing job with the same idempotency key or the same schedule fire on
            /// the instance.
            async fn find_duplicate(
                conn: &mut Conn,
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
                        "SELECT {JOB_COLUMNS} FROM jobs WHERE schedule_id = $1 \
                         AND fire_time IS NOT DISTINCT FROM $2 AND region = $3 AND instance = $4"
                    );
                    if let Some(row) = sqlx::query(&sql)
                        .bind(schedule_id)
                        .bind(job.fire_time.map($t))
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

            /// `job_list`'s query: newest first, one more than a page to know whether
            /// another follows.
            fn list_query(filter: &JobFilter, limit: u32) -> QueryBuilder<'static, $db> {
                let mut q =
                    QueryBuilder::<$db>::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1"));
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
                    q.push(" AND created_at > ").push_bind($t(after));
                }
                if let Some(before) = filter.created_before {
                    q.push(" AND created_at < ").push_bind($t(before));
                }
                if let Some(cursor) = filter.cursor {
                    q.push(" AND id < ").push_bind(cursor);
                }
                q.push(" ORDER BY id DESC LIMIT ")
                    .push_bind(i64::from(limit) + 1);
                q
            }

            /// The batched fenced update: `UPDATE jobs … FROM (VALUES …)`, one statement
            /// for every patch of the chunk; the event rows of the state changes in the
            /// same statement (`$events_in_update`) or the same transaction. Returns the
            /// ids whose fence held.
            async fn update_chunk(
                conn: &mut Conn,
                patches: &[PatchRow<'_>],
                now: DateTime<Utc>,
            ) -> Result<Vec<JobId>, StoreError> {
                let mut q = QueryBuilder::<$db>::new(format!("WITH p ({PATCH_COLUMNS}) AS ("));
                q.push_values(patches, |mut b, r| {
                    let (p, f) = (r.patch, r.fence);
                    let remote = p.remote.clone().unwrap_or_default();
                    let error = p.last_error.clone().flatten();
                    b.push_bind(f.id)
                        .push_bind(f.state.as_str())
                        .push_bind(f.owner.clone())
                        .push_bind(r.to.map(|s| s.as_str()))
                        .push_bind(r.finished_at.map($t))
                        .push_bind(r.drop_lease)
                        .push_bind(p.run_at.map($t))
                        .push_bind(i32::from(p.spend_attempt))
                        .push_bind(p.remote.is_some())
                        .push_bind(remote.task_id)
                        .push_bind(remote.status)
                        .push_bind(remote.progress)
                        .push_bind(remote.export_data_size)
                        .push_bind(remote.import_data_size)
                        .push_bind(remote.backup_set_time)
                        .push_bind(remote.download_url)
                        .push_bind(remote.download_url_expires_at.map($t))
                        .push_bind(remote.progress_anchor_at.map($t))
                        .push_bind(remote.progress_anchor_ppm)
                        .push_bind(p.next_poll_at.map($t))
                        .push_bind(i32::from(p.count_poll))
                        .push_bind(i32::from(p.count_remote_retry))
                        .push_bind(p.needs_reconcile)
                        .push_bind(p.last_error.is_some())
                        .push_bind(error.as_ref().map(|e| e.code.clone()))
                        .push_bind(error.as_ref().map(|e| e.message.clone()))
                        .push_bind(error.and_then(|e| e.request_id))
                        .push_bind(p.reason.clone())
                        .push_bind(p.request_id.clone());
                });
                if $events_in_update {
                    q.push("), updated AS (UPDATE jobs SET updated_at = ");
                    q.push_bind($t(now)).push(", ").push(PATCH_SET);
                    q.push(
                        " RETURNING p.job_id, p.from_state, p.to_state, p.reason, p.request_id), \
                         events AS (INSERT INTO job_events \
                         (job_id, from_state, to_state, at, reason, request_id) \
                         SELECT job_id, from_state, to_state, ",
                    );
                    q.push_bind($t(now)).push(
                        ", reason, request_id FROM updated WHERE to_state IS NOT NULL) \
                         SELECT job_id FROM updated",
                    );
                    Ok(q.build_query_scalar().fetch_all(&mut *conn).await?)
                } else {
                    q.push(") UPDATE jobs SET updated_at = ");
                    q.push_bind($t(now)).push(", ").push(PATCH_SET);
                    q.push(" RETURNING id");
                    let held: Vec<JobId> = q.build_query_scalar().fetch_all(&mut *conn).await?;
                    let events: Vec<NewEvent<'_>> = patches
                        .iter()
                        .filter(|r| held.contains(&r.fence.id))
                        .filter_map(|r| {
                            r.to.map(|to| {
                                (
                                    r.fence.id,
                                    Some(r.fence.state),
                                    to,
                                    r.patch.reason.as_str(),
                                    r.patch.request_id.as_deref(),
                                )
                            })
                        })
                        .collect();
                    insert_events(conn, now, &events).await?;
                    Ok(held)
                }
            }

            impl $store {
                /// Stamp with `clock` instead of the wall clock.
                pub fn with_clock(mut self, clock: crate::clock::DynClock) -> Self {
                    self.clock = clock;
                    self
                }

                /// The time every stamp of this store comes from.
                pub(super) fn now(&self) -> DateTime<Utc> {
                    self.clock.now()
                }

                /// Every fenced patch in one transaction, one statement per
                /// [`BATCH_MAX`] patches; whether each fence held, in input order.
                async fn update_batch(
                    &self,
                    items: &[(&Fence, &JobPatch)],
                ) -> Result<Vec<bool>, StoreError> {
                    if items.is_empty() {
                        return Ok(Vec::new());
                    }
                    let now = self.now();
                    let patches = items
                        .iter()
                        .map(|(f, p)| PatchRow::new(f, p, now))
                        .collect::<Result<Vec<_>, _>>()?;
                    let mut ids: Vec<JobId> = items.iter().map(|(f, _)| f.id).collect();
                    ids.sort_unstable();
                    if ids.windows(2).any(|w| w[0] == w[1]) {
                        return Err(StoreError::Invalid(crate::model::ValidationError::new(
                            "fence.id",
                            "a job may appear only once in a batch of updates",
                        )));
                    }
                    let mut held = Vec::with_capacity(items.len());
                    let mut tx = self.begin().await?;
                    for chunk in patches.chunks(BATCH_MAX) {
                        held.extend(update_chunk(&mut tx, chunk, now).await?);
                    }
                    tx.commit().await?;
                    let done: Vec<bool> =
                        items.iter().map(|(f, _)| held.contains(&f.id)).collect();
                    let wakes = items
                        .iter()
                        .zip(&done)
                        .any(|((f, p), d)| *d && p.wakes_dispatcher(f.state));
                    if wakes {
                        self.wake();
                    }
                    Ok(done)
                }
            }

            #[async_trait::async_trait]
            impl Store for $store {
                fn backend(&self) -> &'static str {
                    $name
                }

                fn job_notifier(&self) -> crate::store::wake::Waiter {
                    self.notify.subscribe()
                }

                async fn migrate(&self) -> Result<(), StoreError> {
                    $migrator.run(&self.pool).await?;
                    Ok(())
                }

                async fn ready(&self) -> Result<bool, StoreError> {
                    if !self.has_migrations_table().await? {
                        return Ok(false);
                    }
                    let applied: Vec<i64> =
                        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                            .fetch_all(&self.pool)
                            .await?;
                    Ok($migrator.iter().all(|m| applied.contains(&m.version)))
                }

                async fn job_enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
                    job.validate()?;
                    let now = self.now();
                    let mut tx = self.begin().await?;
                    if let Some(existing) = find_duplicate(&mut tx, &job).await? {
                        return Ok(Enqueued {
                            job: existing,
                            created: false,
                        });
                    }
                    // A racing enqueue with the same key commits first (PostgreSQL): DO
                    // NOTHING, then read it.
                    let sql = format!("{ENQUEUE_SQL}{JOB_COLUMNS}");
                    let row = crate::store::jobs::bind_new_job!(sqlx::query(&sql), &job, now, $t)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(row) = row else {
                        let existing = find_duplicate(&mut tx, &job).await?.ok_or_else(|| {
                            StoreError::Corrupt(
                                "enqueue conflicted but no duplicate job found".into(),
                            )
                        })?;
                        tx.commit().await?;
                        return Ok(Enqueued {
                            job: existing,
                            created: false,
                        });
                    };
                    let created = rows::job(&row)?;
                    tx.commit().await?;
                    self.after_enqueue(created.id);
                    crate::telemetry::metrics::job_enqueued(job.source);
                    Ok(Enqueued {
                        job: created,
                        created: true,
                    })
                }

                async fn job_claim(&self, p: &ClaimParams) -> Result<Vec<Job>, StoreError> {
                    Ok(if p.limit == 0 { Vec::new() } else { self.claim(p).await? })
                }

                async fn job_claim_polls(
                    &self,
                    p: &PollClaimParams,
                ) -> Result<Vec<Job>, StoreError> {
                    // Zero free slots: nothing to lease, no round trip.
                    Ok(match p.limit {
                        0 => Vec::new(),
                        _ => self.claim_polls(p).await?,
                    })
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
                    let now = self.now();
                    let mut q = QueryBuilder::<$db>::new("UPDATE jobs SET lease_expires_at = ");
                    q.push_bind($t(crate::store::lease_until(now, lease)))
                        .push(", updated_at = ")
                        .push_bind($t(now))
                        .push(" WHERE state IN ('submitting', 'running') AND lease_owner = ")
                        .push_bind(owner.to_string())
                        .push(" AND id IN (");
                    let mut list = q.separated(", ");
                    for id in ids {
                        list.push_bind(*id);
                    }
                    q.push(") RETURNING id");
                    let mut kept: Vec<JobId> =
                        q.build_query_scalar().fetch_all(&self.pool).await?;
                    kept.sort_unstable();
                    Ok(kept)
                }

                async fn job_update(
                    &self,
                    fence: &Fence,
                    patch: &JobPatch,
                ) -> Result<bool, StoreError> {
                    Ok(self.update_batch(&[(fence, patch)]).await?[0])
                }

                async fn job_update_many(
                    &self,
                    updates: &[(Fence, JobPatch)],
                ) -> Result<Vec<bool>, StoreError> {
                    let items: Vec<(&Fence, &JobPatch)> =
                        updates.iter().map(|(f, p)| (f, p)).collect();
                    self.update_batch(&items).await
                }

                async fn job_rescue_expired(
                    &self,
                    now: DateTime<Utc>,
                ) -> Result<Vec<JobId>, StoreError> {
                    let mut tx = self.begin().await?;
                    let stuck: Vec<JobId> = sqlx::query_scalar(RESCUE_SUBMITTING_SQL)
                        .bind($t(now))
                        .fetch_all(&mut *tx)
                        .await?;
                    let events: Vec<NewEvent<'_>> = stuck
                        .iter()
                        .map(|id| {
                            (
                                *id,
                                Some(JobState::Submitting),
                                JobState::Queued,
                                RESCUE_REASON,
                                None,
                            )
                        })
                        .collect();
                    insert_events(&mut tx, now, &events).await?;
                    let polling: Vec<JobId> = sqlx::query_scalar(RESCUE_RUNNING_SQL)
                        .bind($t(now))
                        .fetch_all(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    let mut ids: Vec<JobId> = stuck.into_iter().chain(polling).collect();
                    ids.sort_unstable();
                    Ok(ids)
                }

                async fn job_get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
                    let mut conn = self.pool.acquire().await?;
                    fetch_job(&mut conn, id, self.now()).await
                }

                async fn job_list(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
                    let limit = page_limit(filter.limit);
                    let mut conn = self.pool.acquire().await?;
                    let found = list_query(filter, limit)
                        .build()
                        .fetch_all(&mut *conn)
                        .await?;
                    let (mut jobs, bad) = readable(&mut conn, &found, self.now()).await?;
                    if bad > 0 {
                        // The quarantined rows are readable now: list them in their place.
                        let found = list_query(filter, limit)
                            .build()
                            .fetch_all(&mut *conn)
                            .await?;
                        jobs = readable(&mut conn, &found, self.now()).await?.0;
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
                    let found: Vec<(String, i64)> = sqlx::query_as(
                        "SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state",
                    )
                    .fetch_all(&self.pool)
                    .await?;
                    crate::store::sql::parse_counts(found, "jobs.state")
                }

                async fn change_stamp(&self) -> Result<Option<String>, StoreError> {
                    self.stamp().await
                }

                async fn reclaim_bookkeeping(&self) -> Result<(), StoreError> {
                    self.reclaim().await
                }

                async fn queue_snapshot(
                    &self,
                    after_id: JobId,
                ) -> Result<QueueSnapshot, StoreError> {
                    let by_state: Vec<(String, i64)> = sqlx::query_as(
                        "SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state",
                    )
                    .fetch_all(&self.pool)
                    .await?;
                    // The oldest queued job, due or not, from its index (a `run_at <= now`
                    // filter would make the planner read every queued job); what is due is
                    // `QueueSnapshot::oldest_due`'s to say.
                    let (oldest_queued,): (Option<$stored>,) = sqlx::query_as(&format!(
                        "SELECT min(run_at) FROM jobs{QUEUED_BY_RUN_AT} WHERE state = 'queued'"
                    ))
                    .fetch_one(&self.pool)
                    .await?;
                    let oldest_queued = oldest_queued.and_then($read);
                    let (blocked, oldest_block): (i64, Option<$stored>) = sqlx::query_as(
                        "SELECT count(*), min(blocked_at) FROM instances WHERE blocked",
                    )
                    .fetch_one(&self.pool)
                    .await?;
                    let (max_id,): (i64,) =
                        sqlx::query_as("SELECT CAST(coalesce(max(id), 0) AS BIGINT) FROM jobs")
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
                    Ok(QueueSnapshot {
                        by_state: crate::store::sql::parse_counts(by_state, "jobs.state")?,
                        oldest_queued,
                        blocked_instances: blocked,
                        oldest_block: oldest_block.and_then($read),
                        max_job_id: max_id,
                        new_by_source: crate::store::sql::parse_counts(
                            new_by_source,
                            "jobs.source",
                        )?,
                    })
                }

                async fn job_cancel(
                    &self,
                    id: JobId,
                    reason: &str,
                ) -> Result<Option<Job>, StoreError> {
                    let now = self.now();
                    let mut tx = self.begin().await?;
                    let done = sqlx::query(CANCEL_SQL)
                        .bind($t(now))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        > 0;
                    if done {
                        let event = (
                            id,
                            Some(JobState::Queued),
                            JobState::Cancelled,
                            reason,
                            None,
                        );
                        insert_events(&mut tx, now, &[event]).await?;
                    }
                    let job = fetch_job(&mut tx, id, now).await?;
                    tx.commit().await?;
                    if let (true, Some(j)) = (done, &job) {
                        crate::telemetry::metrics::job_finished(j, JobState::Cancelled, now);
                    }
                    Ok(job)
                }

                async fn job_retry(
                    &self,
                    id: JobId,
                    reason: &str,
                ) -> Result<Option<Job>, StoreError> {
                    let now = self.now();
                    let mut tx = self.begin().await?;
                    let state: Option<String> = sqlx::query_scalar(JOB_STATE_SQL)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(state) = state.map(|s| s.parse::<JobState>()).transpose()? else {
                        return Ok(None);
                    };
                    if matches!(state, JobState::Failed | JobState::Cancelled) {
                        // Fenced on the state just read: a concurrent change wins.
                        let done = sqlx::query(RETRY_SQL)
                            .bind($t(now))
                            .bind(id)
                            .bind(state.as_str())
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                            > 0;
                        if done {
                            let event = (id, Some(state), JobState::Queued, reason, None);
                            insert_events(&mut tx, now, &[event]).await?;
                        }
                    }
                    let job = fetch_job(&mut tx, id, now).await?;
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
                    let n = sqlx::query(
                        "DELETE FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') \
                         AND finished_at < $1",
                    )
                    .bind($t(before))
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    Ok(n)
                }

                async fn event_list(&self, job_id: JobId) -> Result<Vec<JobEvent>, StoreError> {
                    let sql = format!(
                        "SELECT {EVENT_COLUMNS} FROM job_events WHERE job_id = $1 ORDER BY id"
                    );
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
                    sqlx::query(BLOCK_SQL)
                        .bind(&b.key.region)
                        .bind(&b.key.instance)
                        .bind(b.until.map($t))
                        .bind(&b.reason)
                        .bind(&b.task_id)
                        .bind($t(self.now()))
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn instance_unblock(&self, key: &InstanceKey) -> Result<bool, StoreError> {
                    let done = sqlx::query(UNBLOCK_SQL)
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

                async fn instance_get(
                    &self,
                    key: &InstanceKey,
                ) -> Result<Option<Instance>, StoreError> {
                    let sql = format!(
                        "SELECT {INSTANCE_COLUMNS} FROM instances WHERE region = $1 AND instance = $2"
                    );
                    let row = sqlx::query(&sql)
                        .bind(&key.region)
                        .bind(&key.instance)
                        .fetch_optional(&self.pool)
                        .await?;
                    row.as_ref().map(rows::instance).transpose()
                }

                async fn instance_list(&self) -> Result<Vec<Instance>, StoreError> {
                    let sql =
                        format!("SELECT {INSTANCE_COLUMNS} FROM instances ORDER BY region, instance");
                    let found = sqlx::query(&sql).fetch_all(&self.pool).await?;
                    found.iter().map(rows::instance).collect()
                }

                async fn instance_list_reprobe(
                    &self,
                    now: DateTime<Utc>,
                ) -> Result<Vec<Instance>, StoreError> {
                    let sql = format!(
                        "SELECT {INSTANCE_COLUMNS} FROM instances WHERE blocked \
                         AND blocked_until IS NOT NULL AND blocked_until <= $1 \
                         ORDER BY blocked_until"
                    );
                    let found = sqlx::query(&sql)
                        .bind($t(now))
                        .fetch_all(&self.pool)
                        .await?;
                    found.iter().map(rows::instance).collect()
                }

                async fn instance_mark_success(
                    &self,
                    successes: &[(InstanceKey, DateTime<Utc>)],
                ) -> Result<(), StoreError> {
                    // One row per instance (an upsert may not touch a row twice), its
                    // latest success.
                    let mut latest: std::collections::BTreeMap<&InstanceKey, DateTime<Utc>> =
                        std::collections::BTreeMap::new();
                    for (key, at) in successes {
                        let e = latest.entry(key).or_insert(*at);
                        *e = (*e).max(*at);
                    }
                    let rows: Vec<_> = latest.into_iter().collect();
                    for chunk in rows.chunks(BATCH_MAX) {
                        let mut q = QueryBuilder::<$db>::new(MARK_SUCCESS_HEAD);
                        q.push_values(chunk, |mut b, (key, at)| {
                            b.push_bind(&key.region)
                                .push_bind(&key.instance)
                                .push_bind($t(*at));
                        });
                        q.push(MARK_SUCCESS_TAIL);
                        q.build().execute(&self.pool).await?;
                    }
                    Ok(())
                }
            }
        }
    };
}
pub(crate) use job_store;

/// Binds a [`NewJob`] to the 27 placeholders of one row of `ENQUEUE_SQL`'s column list, in
/// order (`created_at` and `updated_at` are both `now`, bound twice so every parameter is
/// used once, in order: see [`crate::store::sql::Params`]); `$time` encodes a time for the
/// backend. The one bind list of the single and the batch enqueue.
macro_rules! bind_new_job {
    ($q:expr, $job:expr, $now:expr, $time:path) => {{
        let job: &crate::store::NewJob = $job;
        let now = $now;
        let r = &job.request;
        $q.bind(&r.region)
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
            .bind($time(job.run_at.unwrap_or(now)))
            .bind(job.max_attempts)
            .bind(&job.idempotency_key)
            .bind(job.schedule_id)
            .bind(job.fire_time.map($time))
            .bind($time(now))
            .bind($time(now))
            .bind(&r.sink)
    }};
}
pub(crate) use bind_new_job;
