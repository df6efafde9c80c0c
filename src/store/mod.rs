//! The persistent queue: the only code that speaks SQL.
//!
//! One [`Store`] trait, one implementation per backend ([`sqlite`], [`postgres`]); the
//! conformance suite in `tests/it/store/` runs every test against both. Methods are
//! noun_verb and take parameter structs so the two implementations cannot drift.
//!
//! Every state change is fenced (design.md invariant 2): the `WHERE` names the expected
//! state (and lease owner when there is one); zero rows affected comes back as
//! `Ok(false)` / an empty result — "no longer mine" — never as an error.

pub mod archives;
pub mod console;
pub mod enqueue_many;
mod error;
mod jobs;
pub mod postgres;
pub mod schedules;
mod sql;
pub mod sqlite;
pub mod wake;

pub(crate) use sql::lease_until;

pub use archives::ArchiveStore;
pub use console::ConsoleStore;
pub use enqueue_many::JobBatchStore;
pub use error::StoreError;
pub use schedules::ScheduleStore;

use crate::model::{
    DownloadRequest, Instance, InstanceKey, Job, JobError, JobEvent, JobId, JobSource, JobState,
    RemoteStatus,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// A shared handle to whichever backend `database.url` selected.
pub type DynStore = Arc<dyn Store>;

/// Open the backend named by the URL scheme (`sqlite://…` or `postgres://…`), stamping
/// times from the wall clock.
pub async fn connect(url: &str, max_connections: u32) -> Result<DynStore, StoreError> {
    connect_with_clock(url, max_connections, Arc::new(crate::clock::SystemClock)).await
}

/// [`connect`] with the clock every stamp the store writes comes from (`updated_at`,
/// `created_at`, `finished_at`, leases of heartbeats, events, blocks), so a test or a
/// simulation that drives time drives the store's stamps too.
pub async fn connect_with_clock(
    url: &str,
    max_connections: u32,
    clock: crate::clock::DynClock,
) -> Result<DynStore, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::connect(url, max_connections)
                .await?
                .with_clock(clock),
        ))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(
            postgres::PgStore::connect(url, max_connections)
                .await?
                .with_clock(clock),
        ))
    } else {
        Err(StoreError::Config(format!(
            "database.url: must start with sqlite:// or postgres://, got {:?}",
            url.split(':').next().unwrap_or("")
        )))
    }
}

/// A new job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub request: DownloadRequest,
    pub source: JobSource,
    pub priority: i32,
    /// Not before this time; `None` = now.
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
    /// Same key ⇒ same job, no duplicate.
    pub idempotency_key: Option<String>,
    pub schedule_id: Option<i64>,
    pub fire_time: Option<DateTime<Utc>>,
}

impl NewJob {
    /// A job with default priority (0), now, 5 attempts.
    pub fn new(request: DownloadRequest, source: JobSource) -> Self {
        Self {
            request,
            source,
            priority: 0,
            run_at: None,
            max_attempts: 5,
            idempotency_key: None,
            schedule_id: None,
            fire_time: None,
        }
    }

    /// The rules every entry point shares (the request's, then the job options'), checked
    /// before any SQL so a bad job is a field-named error, not a database one.
    pub fn validate(&self) -> Result<(), crate::model::ValidationError> {
        self.request.validate()?;
        crate::model::bounds::job_options(
            self.priority,
            self.max_attempts,
            self.idempotency_key.as_deref(),
            self.run_at,
        )
    }
}

/// What `job_enqueue` did.
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub job: Job,
    /// False when an existing job with the same idempotency key (or the same
    /// schedule + fire time + instance) was returned instead.
    pub created: bool,
}

/// Claim queued jobs for dispatch.
#[derive(Debug, Clone)]
pub struct ClaimParams {
    pub owner: String,
    /// At most this many jobs (the caller's free slots).
    pub limit: u32,
    pub lease: Duration,
    pub now: DateTime<Utc>,
}

/// Claim running jobs whose next poll is due, for the tracker.
#[derive(Debug, Clone)]
pub struct PollClaimParams {
    pub owner: String,
    pub limit: u32,
    pub lease: Duration,
    pub now: DateTime<Utc>,
}

/// The fence of a state change: the row must still look like this.
#[derive(Debug, Clone)]
pub struct Fence {
    pub id: JobId,
    pub state: JobState,
    /// `Some` ⇒ `lease_owner` must equal it.
    pub owner: Option<String>,
}

/// What to write in a fenced update. `None` fields are left unchanged.
#[derive(Debug, Clone, Default)]
pub struct JobPatch {
    /// New state; `None` keeps the state (e.g. a progress update while running).
    pub to: Option<JobState>,
    pub run_at: Option<DateTime<Utc>>,
    /// Add one to `attempts`.
    pub spend_attempt: bool,
    pub remote: Option<RemoteStatus>,
    pub next_poll_at: Option<DateTime<Utc>>,
    pub count_poll: bool,
    pub count_remote_retry: bool,
    pub needs_reconcile: Option<bool>,
    /// `Some(None)` clears the last error.
    pub last_error: Option<Option<JobError>>,
    /// Drop the lease (lease_owner, lease_expires_at = NULL).
    pub release_lease: bool,
    /// Why, for the events row (required when `to` is set).
    pub reason: String,
    /// Cloud RequestId behind this change, for the events row.
    pub request_id: Option<String>,
}

impl JobPatch {
    /// Whether applying this patch to a job in state `from` may give an idle dispatcher work:
    /// the job became claimable again (`queued`), or it left `submitting`/`running` and so
    /// freed its instance for the next queued job there.
    pub fn wakes_dispatcher(&self, from: JobState) -> bool {
        self.to.is_some_and(|to| {
            to != from && (to == JobState::Queued || (from.is_active() && !to.is_active()))
        })
    }
}

/// Filters and cursor for listing jobs, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub instance: Option<InstanceKey>,
    pub schedule_id: Option<i64>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Return jobs with id < cursor (ids grow over time).
    pub cursor: Option<JobId>,
    pub limit: u32,
}

/// A page of jobs and the cursor of the next page, if any.
#[derive(Debug, Clone)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    pub next_cursor: Option<JobId>,
}

/// Mark an instance blocked by a failed remote task.
#[derive(Debug, Clone)]
pub struct BlockInstance {
    pub key: InstanceKey,
    pub task_id: Option<String>,
    pub reason: String,
    /// Re-probe no earlier than this.
    pub until: Option<DateTime<Utc>>,
}

/// What the metrics collector reads from the database each round (docs/metrics.md):
/// numbers only, never an id or an instance name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Jobs per state (states without jobs are absent).
    pub by_state: Vec<(JobState, i64)>,
    /// `run_at` of the earliest `queued` job, due or not (see [`QueueSnapshot::oldest_due`]).
    pub oldest_queued: Option<DateTime<Utc>>,
    /// Instances currently blocked.
    pub blocked_instances: i64,
    /// `blocked_at` of the instance blocked longest.
    pub oldest_block: Option<DateTime<Utc>>,
    /// Highest job id (0 when the table is empty): the next round's `after_id`.
    pub max_job_id: JobId,
    /// Jobs with `after_id < id <= max_job_id`, per source.
    pub new_by_source: Vec<(JobSource, i64)>,
}

impl QueueSnapshot {
    /// `run_at` of the longest-waiting job that is due at `now`: the backlog's age. Decided
    /// here rather than in the query, so a snapshot the collector reuses answers for a
    /// later `now` too (and the query can read one index entry instead of every due job).
    pub fn oldest_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.oldest_queued.filter(|t| *t <= now)
    }
}

// The fixed transitions the store makes in SQL, held to the state machine's one table.
const _: () = {
    use crate::model::transitions::allowed;
    use JobState::*;
    assert!(allowed(Some(Queued), Submitting), "job_claim");
    assert!(allowed(Some(Queued), Cancelled), "job_cancel");
    assert!(
        allowed(Some(Failed), Queued) && allowed(Some(Cancelled), Queued),
        "job_retry"
    );
    assert!(allowed(Some(Submitting), Queued), "job_rescue_expired");
    assert!(allowed(None, Queued), "job_enqueue");
    assert!(
        allowed(Some(Queued), Failed)
            && allowed(Some(Submitting), Failed)
            && allowed(Some(Running), Failed)
            && allowed(Some(Succeeded), Failed)
            && allowed(Some(Cancelled), Failed),
        "quarantine"
    );
};

/// The queue, on some database.
#[async_trait]
pub trait Store:
    ScheduleStore + JobBatchStore + ArchiveStore + ConsoleStore + Send + Sync + 'static
{
    /// `sqlite` or `postgres`, for logs and metrics labels.
    fn backend(&self) -> &'static str;

    /// Wakes idle workers when a job is enqueued: in-process enqueues on every backend, and
    /// on PostgreSQL also plain SQL `INSERT`s from any client (the jobs trigger NOTIFYs and
    /// the store LISTENs, reconnecting when the connection drops).
    fn job_notifier(&self) -> wake::Waiter;

    /// Apply the embedded migrations of this backend.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// True when the database answers and every migration is applied (for `/readyz`).
    async fn ready(&self) -> Result<bool, StoreError>;

    /// Validate and insert a job (state `queued`), appending its first event.
    async fn job_enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError>;

    /// Move up to `limit` due `queued` jobs to `submitting` under a lease, highest priority
    /// then oldest `run_at` first, never a job whose instance is active or blocked, and at
    /// most one job per instance. Cost independent of the backlog size.
    async fn job_claim(&self, p: &ClaimParams) -> Result<Vec<Job>, StoreError>;

    /// Lease `running` jobs whose `next_poll_at` is due, for polling.
    async fn job_claim_polls(&self, p: &PollClaimParams) -> Result<Vec<Job>, StoreError>;

    /// Extend the lease of these jobs if still owned; returns the ids still owned.
    async fn job_heartbeat(
        &self,
        owner: &str,
        ids: &[JobId],
        lease: Duration,
    ) -> Result<Vec<JobId>, StoreError>;

    /// A fenced update (design.md invariant 2). `Ok(false)` = the fence no longer holds.
    /// A state change appends an event row in the same transaction; one the state machine
    /// does not have (`model::transitions`) is [`StoreError::Forbidden`] and writes nothing.
    async fn job_update(&self, fence: &Fence, patch: &JobPatch) -> Result<bool, StoreError>;

    /// Many fenced updates at once (a claimed batch's outcomes, a polling round's
    /// results): one `UPDATE … FROM (VALUES …)` per 500 and their event rows, in one
    /// transaction. Returns, in input order, whether each fence held. Every patch is
    /// checked against `model::transitions` first: one forbidden transition is
    /// [`StoreError::Forbidden`] and nothing is written. A job may appear once per call.
    async fn job_update_many(&self, updates: &[(Fence, JobPatch)])
        -> Result<Vec<bool>, StoreError>;

    /// Rescue jobs whose lease expired: `submitting` ⇒ `queued` with `needs_reconcile`;
    /// `running` ⇒ lease dropped (still running, due for a poll). Returns the rescued ids.
    async fn job_rescue_expired(&self, now: DateTime<Utc>) -> Result<Vec<JobId>, StoreError>;

    async fn job_get(&self, id: JobId) -> Result<Option<Job>, StoreError>;

    async fn job_list(&self, filter: &JobFilter) -> Result<JobPage, StoreError>;

    /// Number of jobs per state (for metrics and the status page).
    async fn job_count_by_state(&self) -> Result<Vec<(JobState, i64)>, StoreError>;

    /// A value that changes whenever jobs, instances or schedules change, or `None` when
    /// this backend cannot tell. The collector re-reads its aggregates (which read the whole
    /// jobs table) only when it moved. SQLite: the database file's and WAL's modification
    /// time and size. PostgreSQL: the tables' row-change counters from the statistics
    /// system, which a backend publishes within about a second of going idle (at most
    /// 10 s later). Either can miss a change (a write within one mtime tick that leaves
    /// the sizes alone; a busy backend holding its counters back), so the collector also
    /// re-reads every few rounds whatever the stamp says.
    async fn change_stamp(&self) -> Result<Option<String>, StoreError>;

    /// Reclaim the dead row versions of the per-instance bookkeeping, which every claim and
    /// every end of a job rewrites. PostgreSQL: `VACUUM (SKIP_LOCKED) instances` (a few
    /// thousand live rows at most, so milliseconds), because none of those updates can be
    /// HOT (they change what `instances_claimable` indexes) and the claim walks that index:
    /// without autovacuum (it is off on this project's CI server) a million claims left
    /// 1.1M dead versions behind 1,000 live rows. SQLite keeps no dead versions: nothing.
    /// The maintenance loop calls it every `worker.rescue_interval_seconds`.
    async fn reclaim_bookkeeping(&self) -> Result<(), StoreError>;

    /// Gauges for the metrics collector, plus the jobs created since `after_id` by source
    /// (counts SQL `INSERT`s, which bypass our code). Read-only; cheap on a large backlog.
    async fn queue_snapshot(&self, after_id: JobId) -> Result<QueueSnapshot, StoreError>;

    /// `queued` ⇒ `cancelled`. `Ok(None)` when there is no such job; `Ok(Some(job))` with the
    /// job as it is now otherwise (check its state to see whether it was cancelled).
    async fn job_cancel(&self, id: JobId, reason: &str) -> Result<Option<Job>, StoreError>;

    /// `failed` or `cancelled` ⇒ `queued` now, attempts reset. Same return as `job_cancel`.
    async fn job_retry(&self, id: JobId, reason: &str) -> Result<Option<Job>, StoreError>;

    /// Delete one finished job (succeeded, failed or cancelled) and its events: how an
    /// operator removes a quarantined row. `Ok(None)` when there is no such job;
    /// `Ok(Some(state))` otherwise, deleted when `state` is terminal.
    async fn job_delete(&self, id: JobId) -> Result<Option<JobState>, StoreError>;

    /// Delete terminal jobs (and their events) finished before `before`.
    async fn job_prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// The history of one job, oldest first.
    async fn event_list(&self, job_id: JobId) -> Result<Vec<JobEvent>, StoreError>;

    /// Upsert an instance row (tags replace the old ones when `Some`).
    async fn instance_upsert(
        &self,
        key: &InstanceKey,
        tags: Option<&[String]>,
    ) -> Result<(), StoreError>;

    async fn instance_block(&self, b: &BlockInstance) -> Result<(), StoreError>;

    /// Clear the block; returns false when the instance was not blocked.
    async fn instance_unblock(&self, key: &InstanceKey) -> Result<bool, StoreError>;

    async fn instance_get(&self, key: &InstanceKey) -> Result<Option<Instance>, StoreError>;

    async fn instance_list(&self) -> Result<Vec<Instance>, StoreError>;

    /// Blocked instances whose `blocked_until` has passed: due for a re-probe.
    async fn instance_list_reprobe(&self, now: DateTime<Utc>) -> Result<Vec<Instance>, StoreError>;

    /// Record successes on their instances (`last_success_at`, the latest per instance):
    /// one statement for a tracker round's, not one commit per job.
    async fn instance_mark_success(
        &self,
        successes: &[(InstanceKey, DateTime<Utc>)],
    ) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(state: JobState) -> JobPatch {
        JobPatch {
            to: Some(state),
            ..JobPatch::default()
        }
    }

    #[test]
    fn dispatcher_wakes_when_work_appears_or_an_instance_frees() {
        assert!(to(JobState::Queued).wakes_dispatcher(JobState::Submitting));
        assert!(to(JobState::Queued).wakes_dispatcher(JobState::Failed));
        assert!(to(JobState::Succeeded).wakes_dispatcher(JobState::Running));
        assert!(to(JobState::Failed).wakes_dispatcher(JobState::Submitting));
        assert!(!to(JobState::Running).wakes_dispatcher(JobState::Submitting));
        assert!(!to(JobState::Running).wakes_dispatcher(JobState::Running));
        assert!(!to(JobState::Cancelled).wakes_dispatcher(JobState::Queued));
        assert!(!JobPatch::default().wakes_dispatcher(JobState::Running));
    }
}
