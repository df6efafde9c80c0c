//! The worker: claim queued jobs and submit them (dispatcher), follow every remote task to
//! the end (tracker), and keep the queue healthy (maintenance: lease heartbeats, rescue of
//! expired leases, re-probing blocked instances, retention).
//!
//! Each service has a `run_once` that a test drives step by step, and a `run` loop that
//! `serve` spawns. They share one [`WorkerContext`]: the store, the DBS client, the clock,
//! the lease owner name, the set of jobs this process holds leases on, and the per-region
//! throttling gate. The decisions themselves (which error means what, when to poll next,
//! which remote task is ours) are pure functions next to each service, unit-tested without
//! I/O; the services only do the I/O around them.

pub mod dispatcher;
pub mod maintenance;
pub mod outcomes;
pub mod pacing;
pub mod predict;
pub mod reconcile;
pub mod tracker;

pub use dispatcher::{DispatchReport, Dispatcher};
pub use maintenance::{Maintenance, MaintenanceReport};
pub use pacing::{PollSchedule, RegionGate};
pub use tracker::{TrackReport, Tracker};

use crate::clock::DynClock;
use crate::config::{RemoteFailurePolicy, Settings};
use crate::dbs::DbsClient;
use crate::model::JobId;
use crate::retry::{ErrorClass, RetryPolicy};
use crate::store::{DynStore, Fence, JobPatch, StoreError};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Everything the worker services need to know, derived once from [`Settings`].
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Lease owner name written on every claimed job.
    pub owner: String,
    /// CreateDownload calls (claimed jobs) in flight at once.
    pub concurrency: u32,
    pub lease: Duration,
    pub heartbeat: Duration,
    /// Fallback wake-up of an idle dispatcher when no notification arrives.
    pub idle_poll: Duration,
    pub rescue_interval: Duration,
    /// Terminal jobs older than this are pruned; `None` keeps them forever.
    pub retention: Option<Duration>,
    pub shutdown_grace: Duration,
    pub retry: RetryPolicy,
    pub poll: PollSchedule,
    pub on_remote_failure: RemoteFailurePolicy,
    pub max_remote_retries: u32,
    /// How long an instance stays blocked before the next re-probe.
    pub blocked_reprobe: Duration,
    pub url_duration_seconds: u32,
    /// How far back to look for a task to adopt (JobAlreadyExist, crash, ambiguous call).
    pub recent_window: Duration,
    /// How long a tracked task may be missing from DescribeDownloadTask before the job is
    /// failed (see docs/worker.md, "A task that disappears").
    pub missing_task_grace: Duration,
    /// Running jobs leased per tracker round.
    pub tracker_batch: u32,
}

impl WorkerConfig {
    pub fn from_settings(s: &Settings) -> Self {
        let w = &s.worker;
        let t = &s.tracker;
        Self {
            owner: if w.id.trim().is_empty() {
                default_owner()
            } else {
                w.id.trim().to_string()
            },
            concurrency: w.concurrency,
            lease: Duration::from_secs(w.lease_seconds),
            heartbeat: Duration::from_secs(w.heartbeat_seconds),
            idle_poll: Duration::from_millis(w.idle_poll_ms),
            rescue_interval: Duration::from_secs(w.rescue_interval_seconds.max(1)),
            retention: (w.retention_days > 0)
                .then(|| Duration::from_secs(u64::from(w.retention_days) * 86_400)),
            shutdown_grace: Duration::from_secs(w.shutdown_grace_seconds),
            retry: w.retry,
            poll: PollSchedule {
                initial: Duration::from_secs_f64(t.poll_initial_seconds),
                max: Duration::from_secs_f64(t.poll_max_seconds),
                growth: t.poll_growth,
                plan: t.poll_plan,
            },
            on_remote_failure: t.on_remote_failure,
            max_remote_retries: t.max_remote_retries,
            blocked_reprobe: Duration::from_secs(t.blocked_reprobe_seconds.max(1)),
            url_duration_seconds: t.url_duration_seconds,
            recent_window: Duration::from_secs(u64::from(s.dbs.recent_window_days) * 86_400),
            missing_task_grace: Duration::from_secs(t.missing_task_grace_seconds),
            tracker_batch: t.batch_size,
        }
    }
}

/// `<hostname>-<pid>-<random>`: unique per process, readable in `jobs show`.
pub fn default_owner() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "host".to_string());
    let suffix: u32 = rand::random();
    format!("{host}-{}-{suffix:08x}", std::process::id())
}

/// The jobs this process currently holds a lease on, so the heartbeat can extend them and
/// shutdown can release them.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashSet<JobId>>);

impl InFlight {
    pub fn insert(&self, id: JobId) {
        self.0.lock().expect("inflight lock").insert(id);
    }

    pub fn remove(&self, id: JobId) {
        self.0.lock().expect("inflight lock").remove(&id);
    }

    pub fn ids(&self) -> Vec<JobId> {
        let mut v: Vec<JobId> = self
            .0
            .lock()
            .expect("inflight lock")
            .iter()
            .copied()
            .collect();
        v.sort_unstable();
        v
    }

    pub fn len(&self) -> usize {
        self.0.lock().expect("inflight lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes a job from [`InFlight`] when the work on it ends, however it ends.
pub(crate) struct InFlightGuard {
    set: Arc<InFlight>,
    id: JobId,
}

impl InFlightGuard {
    pub(crate) fn new(set: &Arc<InFlight>, id: JobId) -> Self {
        set.insert(id);
        Self {
            set: set.clone(),
            id,
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.set.remove(self.id);
    }
}

/// What every worker service shares.
#[derive(Clone)]
pub struct WorkerContext {
    pub store: DynStore,
    pub client: DbsClient,
    pub clock: DynClock,
    pub config: Arc<WorkerConfig>,
    pub inflight: Arc<InFlight>,
    pub gate: Arc<RegionGate>,
    /// Where the dispatcher's and the tracker's fenced updates are written together.
    pub outcomes: Arc<outcomes::OutcomeWriter>,
}

impl std::fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext")
            .field("backend", &self.store.backend())
            .field("owner", &self.config.owner)
            .field("in_flight", &self.inflight.len())
            .finish()
    }
}

impl WorkerContext {
    pub fn new(store: DynStore, client: DbsClient, clock: DynClock, config: WorkerConfig) -> Self {
        let outcomes = outcomes::OutcomeWriter::new(store.clone(), config.lease);
        Self {
            store,
            client,
            clock,
            outcomes,
            config: Arc::new(config),
            inflight: Arc::new(InFlight::default()),
            gate: Arc::new(RegionGate::default()),
        }
    }

    /// A fenced update that survives a flaky database: retryable store errors are retried
    /// with backoff for up to one lease period (after that the lease has expired anyway and
    /// the rescue path owns the job). `Ok(false)` means "no longer mine". It is written
    /// together with every other update waiting at that moment ([`outcomes`]): one
    /// statement for a claimed batch's outcomes or a polling round's results.
    /// A state change runs in a `job.transition` span (job id, from, to, reason, cloud
    /// RequestId, whether the fence held), so traces show each job's life.
    pub(crate) async fn update(&self, fence: &Fence, patch: &JobPatch) -> outcomes::Recorded {
        use tracing::Instrument;
        let write = self.outcomes.record(fence.clone(), patch.clone());
        let Some(span) = transition_span(fence, patch) else {
            return write.await;
        };
        let result = write.instrument(span.clone()).await;
        if let Ok(applied) = &result {
            span.record("applied", *applied);
        }
        result
    }
}

/// The `job.transition` span of a state change (job id, from, to, reason, cloud
/// RequestId; `applied` is recorded once the write is done), so traces show each job's
/// life. `None` when the patch changes no state.
pub(crate) fn transition_span(fence: &Fence, patch: &JobPatch) -> Option<tracing::Span> {
    let to = patch.to?;
    Some(tracing::info_span!(
        "job.transition",
        job.id = fence.id,
        from = fence.state.as_str(),
        to = to.as_str(),
        reason = %patch.reason,
        request_id = patch.request_id.as_deref().unwrap_or(""),
        applied = tracing::field::Empty,
    ))
}

/// Retry a store call on retryable errors with capped exponential backoff, for at most
/// `budget`; permanent errors and the last retryable one are returned.
pub(crate) async fn retry_store<T, F, Fut>(budget: Duration, mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.class() == ErrorClass::Retryable && started.elapsed() < budget => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "store call failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The three worker services, spawned into the caller's `JoinSet`.
///
/// Two-phase stop: when `shutdown` fires the dispatcher and tracker stop claiming and let
/// in-flight calls finish for up to `worker.shutdown_grace_seconds`; whatever is still in
/// flight after that is aborted and its lease released (a job whose CreateDownload may have
/// been sent is requeued with `needs_reconcile`). Maintenance stops at once.
pub fn spawn(
    ctx: &WorkerContext,
    set: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &CancellationToken,
) {
    use crate::supervisor::supervised;
    let (c1, c2, c3) = (ctx.clone(), ctx.clone(), ctx.clone());
    let (s1, s2, s3) = (shutdown.clone(), shutdown.clone(), shutdown.clone());
    set.spawn(supervised("dispatcher", s1.clone(), move || {
        let (d, s) = (Dispatcher::new(c1.clone()), s1.clone());
        async move {
            d.run(s).await;
            Ok(())
        }
    }));
    set.spawn(supervised("tracker", s2.clone(), move || {
        let (t, s) = (Tracker::new(c2.clone()), s2.clone());
        async move {
            t.run(s).await;
            Ok(())
        }
    }));
    set.spawn(supervised("maintenance", s3.clone(), move || {
        let (m, s) = (Maintenance::new(c3.clone()), s3.clone());
        async move {
            m.run(s).await;
            Ok(())
        }
    }));
}

/// A uniform draw in `[0, 1)` for jitter.
pub(crate) fn unit() -> f64 {
    rand::random::<f64>()
}

/// `chrono` from `std` durations, saturating.
pub(crate) fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn store_writes_survive_transient_errors_but_not_permanent_ones() {
        let calls = AtomicU32::new(0);
        let r = retry_store(Duration::from_secs(5), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(StoreError::Locked("busy".into()))
                } else {
                    Ok(true)
                }
            }
        })
        .await;
        assert!(r.unwrap());
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let r: Result<bool, _> = retry_store(Duration::from_secs(5), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(StoreError::Corrupt("bad row".into())) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "permanent errors are not retried"
        );
    }

    #[test]
    fn in_flight_guard_removes_on_drop() {
        let set = Arc::new(InFlight::default());
        {
            let _a = InFlightGuard::new(&set, 3);
            let _b = InFlightGuard::new(&set, 1);
            assert_eq!(set.ids(), vec![1, 3]);
        }
        assert!(set.is_empty());
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::model::{DownloadRequest, Job, JobSource, JobState, RemoteStatus};
    use chrono::DateTime;

    /// A claimed (`submitting`) job for decision tests.
    pub(crate) fn job(attempts: i32, max: i32) -> Job {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Job {
            id: 7,
            request: DownloadRequest::example_full("cn-hangzhou", "rm-1", "b1"),
            state: JobState::Submitting,
            source: JobSource::Cli,
            priority: 0,
            run_at: now,
            attempts,
            max_attempts: max,
            lease_owner: Some("me".into()),
            lease_expires_at: None,
            needs_reconcile: false,
            remote: RemoteStatus::default(),
            next_poll_at: None,
            polls: 0,
            remote_retries: 0,
            last_error: None,
            schedule_id: None,
            fire_time: None,
            idempotency_key: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
        }
    }
}
