//! The tracker: follow every running job's remote task to the end, cheaply.
//!
//! Each round leases the running jobs whose poll is due, groups them by instance and makes
//! **one** DescribeDownloadTask listing per instance (narrowed to the creation window of
//! its tasks, all pages), which updates every tracked task of that instance at once. The
//! next poll of a task that is still running is planned around its predicted end
//! ([`super::predict`]; `tracker.poll_plan = "geometric"`: `poll_initial ×
//! poll_growth^polls`, capped at `poll_max`, jittered).
//!
//! Outcomes ([`decide_poll`], pure):
//! - `finished` ⇒ succeeded (URL targets: fetch the URL and its expiry with
//!   DescribeDownloadBackupSetStorageInfo first); the instance's last success is recorded.
//! - `failed` ⇒ `tracker.on_remote_failure`: `retry` calls RetryDownloadTask up to
//!   `max_remote_retries` times, then fails the job and blocks the instance; `fail` does
//!   that at once.
//! - `expired` ⇒ the task had finished and its URL lapsed before we saw it: succeeded,
//!   with status `expired` and a note.
//! - not listed ⇒ see [`MISSING_CODE`]: keep polling for `missing_task_grace`, then fail.

use super::predict::{next_delay, Anchor, Sighting};
use super::reconcile::{remote_from_task, CLOCK_SLACK, PAGE_SIZE};
use super::{chrono_dur, unit, InFlightGuard, WorkerContext};
use crate::config::{PollPlan, RemoteFailurePolicy};
use crate::dbs::types::{DescribeTasksQuery, DownloadTask, RemoteTaskStatus};
use crate::dbs::{DbsError, DbsErrorKind};
use crate::model::{InstanceKey, Job, JobError, JobState, RemoteStatus, TargetType};
use crate::store::{BlockInstance, Fence, JobPatch, PollClaimParams, StoreError};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `last_error.code` of a job whose task is not in the listing. The message ends with the
/// RFC 3339 time it was first missed, so the grace period survives restarts without a
/// dedicated column.
pub const MISSING_CODE: &str = "Tracker.TaskMissing";

/// `last_error.code` of a job failed because its remote task failed.
pub const REMOTE_FAILED_CODE: &str = "DBS.DownloadTask.Failed";

/// The knobs the decisions depend on.
#[derive(Debug, Clone, Copy)]
pub struct TrackPolicy {
    pub poll: super::PollSchedule,
    pub on_remote_failure: RemoteFailurePolicy,
    pub max_remote_retries: u32,
    pub blocked_reprobe: Duration,
    pub missing_task_grace: Duration,
}

/// What to do with one running job after a listing.
#[derive(Debug, Clone)]
pub enum PollAction {
    /// Still going: record progress, poll again at `next_poll_at`.
    Progress {
        remote: RemoteStatus,
        next_poll_at: DateTime<Utc>,
        /// The task is visible again after having been missed.
        clear_missing: bool,
    },
    /// Done. `fetch_url`: a URL target whose link must be fetched first.
    Succeed {
        remote: RemoteStatus,
        fetch_url: bool,
        note: Option<JobError>,
    },
    /// Ask the cloud to retry the failed task.
    RetryRemote { remote: RemoteStatus },
    /// Fail the job and block the instance by the failed task.
    FailAndBlock {
        remote: RemoteStatus,
        error: JobError,
        block: BlockInstance,
    },
    /// Not listed; keep looking until the grace period ends.
    Missing {
        since: DateTime<Utc>,
        next_poll_at: DateTime<Utc>,
    },
    /// Not listed for longer than the grace period.
    GiveUp { error: JobError },
}

/// When this job's task was first missed, if it is currently marked missing.
pub fn missing_since(job: &Job) -> Option<DateTime<Utc>> {
    let e = job.last_error.as_ref()?;
    if e.code != MISSING_CODE {
        return None;
    }
    let stamp = e.message.rsplit(' ').next()?;
    DateTime::parse_from_rfc3339(stamp)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn missing_error(task_id: &str, since: DateTime<Utc>) -> JobError {
    JobError {
        code: MISSING_CODE.into(),
        message: format!(
            "task {task_id} not listed by DescribeDownloadTask since {}",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        request_id: None,
    }
}

/// Decide what one listing means for one running job.
pub fn decide_poll(
    job: &Job,
    observed: Option<&DownloadTask>,
    p: &TrackPolicy,
    now: DateTime<Utc>,
    unit: f64,
) -> PollAction {
    let next = now + chrono_dur(p.poll.delay(job.polls.max(0) as u32 + 1, unit));
    let task_id = job.remote.task_id.clone().unwrap_or_default();
    let Some(task) = observed else {
        let since = missing_since(job).unwrap_or(now);
        if now - since >= chrono_dur(p.missing_task_grace) {
            return PollAction::GiveUp {
                error: JobError {
                    code: MISSING_CODE.into(),
                    message: format!(
                        "task {task_id} not listed by DescribeDownloadTask since {}; gave up after {}s",
                        since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        p.missing_task_grace.as_secs()
                    ),
                    request_id: None,
                },
            };
        }
        return PollAction::Missing {
            since,
            next_poll_at: next,
        };
    };
    let mut remote = remote_from_task(task, &job.remote);
    match &task.status {
        RemoteTaskStatus::Finished => PollAction::Succeed {
            fetch_url: job.request.target_type == TargetType::Url,
            remote,
            note: None,
        },
        RemoteTaskStatus::Expired => PollAction::Succeed {
            note: (job.request.target_type == TargetType::Url).then(|| JobError {
                code: "DBS.DownloadTask.Expired".into(),
                message: format!(
                    "task {} finished and its download URL expired before it was fetched",
                    task.task_id
                ),
                request_id: None,
            }),
            remote,
            fetch_url: false,
        },
        RemoteTaskStatus::Failed => {
            let can_retry = p.on_remote_failure == RemoteFailurePolicy::Retry
                && (job.remote_retries.max(0) as u32) < p.max_remote_retries;
            if can_retry {
                // The retried task starts over: so does the baseline of its rate.
                Anchor::store(None, &mut remote);
                return PollAction::RetryRemote { remote };
            }
            let why = match p.on_remote_failure {
                RemoteFailurePolicy::Retry => format!(
                    "remote task {} failed after {} RetryDownloadTask calls",
                    task.task_id, job.remote_retries
                ),
                RemoteFailurePolicy::Fail => format!("remote task {} failed", task.task_id),
            };
            PollAction::FailAndBlock {
                remote,
                error: JobError {
                    code: REMOTE_FAILED_CODE.into(),
                    message: why.clone(),
                    request_id: None,
                },
                block: BlockInstance {
                    key: job.instance_key(),
                    task_id: Some(task.task_id.clone()),
                    reason: format!("{why}; it holds the instance until retried or cleared"),
                    until: Some(now + chrono_dur(p.blocked_reprobe)),
                },
            }
        }
        _ => {
            let sighting = Sighting::of(job, task, now);
            Anchor::store(sighting.next_anchor(), &mut remote);
            let next_poll_at = match p.poll.plan {
                PollPlan::Predict => now + chrono_dur(next_delay(&p.poll, &sighting, unit)),
                PollPlan::Geometric => next,
            };
            PollAction::Progress {
                remote,
                next_poll_at,
                clear_missing: missing_since(job).is_some(),
            }
        }
    }
}

/// DescribeDownloadTask narrowed to the creation window of these jobs' tasks: from the
/// earliest claim (a task is created after its job is claimed) minus clock slack. The
/// window keeps the listing to one page however many finished tasks the instance has; a
/// task created earlier (adopted after `JobAlreadyExist`) is found by the wide fallback.
pub fn group_query(key: &InstanceKey, jobs: &[Job]) -> DescribeTasksQuery {
    let earliest = jobs
        .iter()
        .map(|j| j.started_at.unwrap_or(j.created_at))
        .min();
    DescribeTasksQuery {
        region: key.region.clone(),
        instance: key.instance.clone(),
        cluster_name: jobs.iter().find_map(|j| j.request.cluster_name.clone()),
        start_time_ms: earliest.map(|t| (t - chrono_dur(CLOCK_SLACK)).timestamp_millis()),
        page_size: PAGE_SIZE,
        page: 1,
        ..Default::default()
    }
}

/// Counts of one tracker round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackReport {
    pub claimed: usize,
    /// DescribeDownloadTask listings made (all pages of one count once).
    pub listings: usize,
    pub progressed: usize,
    pub succeeded: usize,
    pub remote_retries: usize,
    pub failed: usize,
    pub missing: usize,
    pub lost: usize,
    /// Listing or follow-up call failed; rescheduled.
    pub deferred: usize,
}

impl TrackReport {
    fn merge(&mut self, o: &TrackReport) {
        self.claimed += o.claimed;
        self.listings += o.listings;
        self.progressed += o.progressed;
        self.succeeded += o.succeeded;
        self.remote_retries += o.remote_retries;
        self.failed += o.failed;
        self.missing += o.missing;
        self.lost += o.lost;
        self.deferred += o.deferred;
    }
}

/// Polls running jobs; see the module docs.
#[derive(Debug, Clone)]
pub struct Tracker {
    ctx: WorkerContext,
}

impl Tracker {
    pub fn new(ctx: WorkerContext) -> Self {
        Self { ctx }
    }

    fn policy(&self) -> TrackPolicy {
        let c = &self.ctx.config;
        TrackPolicy {
            poll: c.poll,
            on_remote_failure: c.on_remote_failure,
            max_remote_retries: c.max_remote_retries,
            blocked_reprobe: c.blocked_reprobe,
            missing_task_grace: c.missing_task_grace,
        }
    }

    /// One round: lease due running jobs, one listing per instance, record.
    pub async fn run_once(&self) -> Result<TrackReport, StoreError> {
        let c = &self.ctx.config;
        let jobs = self
            .ctx
            .store
            .job_claim_polls(&PollClaimParams {
                owner: c.owner.clone(),
                limit: c.tracker_batch,
                lease: c.lease,
                now: self.ctx.clock.now(),
            })
            .await?;
        let mut report = TrackReport {
            claimed: jobs.len(),
            ..Default::default()
        };
        if jobs.is_empty() {
            return Ok(report);
        }
        let mut groups: BTreeMap<InstanceKey, Vec<Job>> = BTreeMap::new();
        for j in jobs {
            groups.entry(j.instance_key()).or_default().push(j);
        }
        let width = (c.concurrency as usize).max(1);
        let policy = self.policy();
        let mut results = futures::stream::iter(groups)
            .map(|(key, jobs)| {
                let ctx = self.ctx.clone();
                async move { track_instance(&ctx, &policy, key, jobs).await }
            })
            .buffer_unordered(width);
        let (mut writes, mut in_flight) = (Vec::new(), Vec::new());
        while let Some(r) = results.next().await {
            report.merge(&r.report);
            writes.extend(r.writes);
            in_flight.extend(r.in_flight);
        }
        record_round(&self.ctx, writes, &mut report).await;
        drop(in_flight);
        Ok(report)
    }

    /// The loop: a round whenever the previous one leased a full batch, otherwise after a
    /// short jittered pause (polls are due by time, nothing notifies us).
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let round = self.run_once();
            // A round in progress is allowed to finish (its calls are short reads) within
            // the grace period; leases are released by each record.
            let r = tokio::select! {
                r = round => r,
                _ = async {
                    shutdown.cancelled().await;
                    tokio::time::sleep(self.ctx.config.shutdown_grace).await
                } => break,
            };
            let pause = match r {
                Ok(rep) if rep.claimed as u32 >= self.ctx.config.tracker_batch => Duration::ZERO,
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    self.ctx.config.idle_poll.mul_f64(0.75 + 0.5 * unit())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tracker round failed; backing off");
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    backoff
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!("tracker stopped");
    }
}

fn fence(ctx: &WorkerContext, job: &Job) -> Fence {
    Fence {
        id: job.id,
        state: JobState::Running,
        owner: Some(ctx.config.owner.clone()),
    }
}

async fn list(ctx: &WorkerContext, q: &DescribeTasksQuery) -> Result<Vec<DownloadTask>, DbsError> {
    ctx.gate.wait(&q.region).await;
    let r = ctx.client.list_download_tasks(q).await;
    if let Err(e) = &r {
        if e.kind == DbsErrorKind::Throttled {
            ctx.gate
                .throttled(&q.region, e.retry_after.unwrap_or(Duration::from_secs(1)));
        }
    }
    r
}

/// One instance's share of a round: its counts, and its writes, which the round makes
/// together at its end (one statement for the round).
#[derive(Default)]
struct Round {
    report: TrackReport,
    writes: Vec<RoundWrite>,
    /// Its jobs stay in flight (heartbeats keep their leases) until the round's write.
    in_flight: Vec<InFlightGuard>,
}

/// A fenced write of the round, and what to count (or do) once it is known to hold.
struct RoundWrite {
    job: Job,
    patch: JobPatch,
    then: Then,
}

#[derive(Debug, Clone)]
enum Then {
    Nothing,
    Progressed,
    Succeeded { at: DateTime<Utc> },
    RemoteRetried { task_id: String },
    Failed,
    Missing,
}

impl Round {
    fn queue(&mut self, job: &Job, patch: JobPatch, then: Then) {
        self.writes.push(RoundWrite {
            job: job.clone(),
            patch,
            then,
        });
    }
}

impl std::ops::Deref for Round {
    type Target = TrackReport;
    fn deref(&self) -> &TrackReport {
        &self.report
    }
}

/// The decisions below count into the round's report directly.
impl std::ops::DerefMut for Round {
    fn deref_mut(&mut self) -> &mut TrackReport {
        &mut self.report
    }
}

/// One listing for the instance, then one decision (and queued write) per job.
async fn track_instance(
    ctx: &WorkerContext,
    p: &TrackPolicy,
    key: InstanceKey,
    jobs: Vec<Job>,
) -> Round {
    let mut report = Round {
        in_flight: jobs
            .iter()
            .map(|j| InFlightGuard::new(&ctx.inflight, j.id))
            .collect(),
        ..Round::default()
    };
    let q = group_query(&key, &jobs);
    let mut tasks = match list(ctx, &q).await {
        Ok(t) => t,
        Err(e) => {
            report.listings += 1;
            defer_all(ctx, p, &jobs, &e, &mut report).await;
            return report;
        }
    };
    report.listings += 1;
    let listed = |tasks: &[DownloadTask], j: &Job| {
        j.remote
            .task_id
            .as_deref()
            .is_some_and(|id| tasks.iter().any(|t| t.task_id == id))
    };
    // Something not in the narrowed window (clock skew on the cloud's side, an adopted
    // task older than the job): one wider look before calling it missing.
    if jobs.iter().any(|j| !listed(&tasks, j)) && q.start_time_ms.is_some() {
        let wide = DescribeTasksQuery {
            start_time_ms: None,
            ..q.clone()
        };
        report.listings += 1;
        if let Ok(more) = list(ctx, &wide).await {
            tasks = more;
        }
    }
    for job in &jobs {
        let observed = job
            .remote
            .task_id
            .as_deref()
            .and_then(|id| tasks.iter().find(|t| t.task_id == id));
        let action = decide_poll(job, observed, p, ctx.clock.now(), unit());
        apply(ctx, p, job, action, &mut report).await;
    }
    report
}

/// The listing failed: poll these jobs again later (at least the throttling hint).
async fn defer_all(
    ctx: &WorkerContext,
    p: &TrackPolicy,
    jobs: &[Job],
    e: &DbsError,
    report: &mut Round,
) {
    let now = ctx.clock.now();
    tracing::warn!(error = %e, jobs = jobs.len(), "DescribeDownloadTask failed; polling later");
    for job in jobs {
        let wait = p
            .poll
            .delay(job.polls.max(0) as u32, unit())
            .max(e.retry_after.unwrap_or_default());
        let patch = JobPatch {
            next_poll_at: Some(now + chrono_dur(wait)),
            last_error: (e.kind == DbsErrorKind::Permanent).then(|| {
                Some(JobError {
                    code: e.code.clone(),
                    message: e.message.clone(),
                    request_id: e.request_id.clone(),
                })
            }),
            release_lease: true,
            reason: format!("poll failed: {}", e.code),
            ..Default::default()
        };
        report.queue(job, patch, Then::Nothing);
        report.deferred += 1;
    }
}

/// The round's writes, one `job_update_many` (a fenced update per job, their events with
/// them), then what each applied write means.
async fn record_round(ctx: &WorkerContext, writes: Vec<RoundWrite>, report: &mut TrackReport) {
    let updates: Vec<(Fence, JobPatch)> = writes
        .iter()
        .map(|w| (fence(ctx, &w.job), w.patch.clone()))
        .collect();
    let spans: Vec<Option<tracing::Span>> = updates
        .iter()
        .map(|(f, p)| super::transition_span(f, p))
        .collect();
    let results = super::outcomes::write_many(&ctx.store, ctx.config.lease, &updates).await;
    let mut successes = Vec::new();
    for ((w, result), span) in writes.into_iter().zip(results).zip(spans) {
        if let (Some(span), Ok(applied)) = (span, &result) {
            span.record("applied", *applied);
        }
        if written(ctx, &w.job, &w.patch, result, report) {
            if let Some(at) = after(&w.job, w.then, report) {
                successes.push((w.job.instance_key(), at));
            }
        }
    }
    if successes.is_empty() {
        return;
    }
    // The instances' last success, one statement for the round's.
    let store = ctx.store.clone();
    if let Err(e) =
        super::retry_store(ctx.config.lease, || store.instance_mark_success(&successes)).await
    {
        tracing::warn!(instances = successes.len(), error = %e, "could not record the instances' last success");
    }
}

/// What an applied write means for the report; a success returns when it happened, for
/// its instance's `last_success_at`.
fn after(job: &Job, then: Then, report: &mut TrackReport) -> Option<DateTime<Utc>> {
    match then {
        Then::Nothing => {}
        Then::Progressed => report.progressed += 1,
        Then::Missing => report.missing += 1,
        Then::Failed => report.failed += 1,
        Then::RemoteRetried { task_id } => {
            tracing::info!(job.id = job.id, task = %task_id, retry = job.remote_retries + 1, "remote task retried");
            report.remote_retries += 1;
        }
        Then::Succeeded { at } => {
            report.succeeded += 1;
            return Some(at);
        }
    }
    None
}

/// The answer of one fenced write; counts a lost fence. Returns whether it was applied.
fn written(
    ctx: &WorkerContext,
    job: &Job,
    patch: &JobPatch,
    result: super::outcomes::Recorded,
    report: &mut TrackReport,
) -> bool {
    match result {
        Ok(true) => {
            if let Some(to) = patch.to {
                let bytes = patch.remote.as_ref().and_then(|r| r.export_data_size);
                crate::telemetry::metrics::job_transition(
                    job,
                    JobState::Running,
                    to,
                    bytes,
                    ctx.clock.now(),
                );
                tracing::info!(job.id = job.id, instance = %job.instance_key(), to = %to, reason = %patch.reason, "job updated");
            }
            true
        }
        Ok(false) => {
            tracing::debug!(job.id = job.id, "job no longer ours; skipping");
            report.lost += 1;
            false
        }
        Err(e) => {
            tracing::warn!(job.id = job.id, error = %e, "could not record poll; the lease will expire and it is polled again");
            report.lost += 1;
            false
        }
    }
}

async fn apply(
    ctx: &WorkerContext,
    p: &TrackPolicy,
    job: &Job,
    action: PollAction,
    report: &mut Round,
) {
    let now = ctx.clock.now();
    let key = job.instance_key();
    match action {
        PollAction::Progress {
            remote,
            next_poll_at,
            clear_missing,
        } => {
            let patch = JobPatch {
                remote: Some(remote),
                next_poll_at: Some(next_poll_at),
                count_poll: true,
                last_error: clear_missing.then_some(None),
                release_lease: true,
                reason: "poll".into(),
                ..Default::default()
            };
            report.queue(job, patch, Then::Progressed);
        }
        PollAction::Succeed {
            mut remote,
            fetch_url,
            mut note,
        } => {
            if fetch_url {
                let task_id = remote.task_id.clone().unwrap_or_default();
                ctx.gate.wait(&key.region).await;
                match ctx
                    .client
                    .describe_download_backup_set_storage_info(
                        &key.region,
                        &key.instance,
                        job.request.cluster_name.as_deref(),
                        &task_id,
                        ctx.config.url_duration_seconds,
                    )
                    .await
                {
                    Ok(reply) => {
                        remote.download_url = reply.data.public_url.or(reply.data.private_url);
                        remote.download_url_expires_at = reply
                            .data
                            .expiration_time_ms
                            .and_then(DateTime::from_timestamp_millis);
                    }
                    Err(e) if e.class() == crate::retry::ErrorClass::Retryable => {
                        if e.kind == DbsErrorKind::Throttled {
                            ctx.gate.throttled(
                                &key.region,
                                e.retry_after.unwrap_or(Duration::from_secs(1)),
                            );
                        }
                        // Finished, URL not fetched yet: stay running, try again soon.
                        let wait = p.poll.initial.max(e.retry_after.unwrap_or_default());
                        let patch = JobPatch {
                            remote: Some(remote),
                            next_poll_at: Some(now + chrono_dur(wait)),
                            release_lease: true,
                            reason: format!("finished; URL fetch failed: {}", e.code),
                            ..Default::default()
                        };
                        report.queue(job, patch, Then::Nothing);
                        report.deferred += 1;
                        return;
                    }
                    Err(e) => {
                        note = Some(JobError {
                            code: e.code.clone(),
                            message: format!(
                                "finished, but the download URL could not be fetched: {}",
                                e.message
                            ),
                            request_id: e.request_id.clone(),
                        });
                    }
                }
            }
            let patch = JobPatch {
                to: Some(JobState::Succeeded),
                remote: Some(remote),
                count_poll: true,
                last_error: Some(note),
                release_lease: true,
                reason: "remote task finished".into(),
                ..Default::default()
            };
            report.queue(job, patch, Then::Succeeded { at: now });
        }
        PollAction::RetryRemote { remote } => {
            let task_id = remote.task_id.clone().unwrap_or_default();
            ctx.gate.wait(&key.region).await;
            match ctx
                .client
                .retry_download_task(
                    &key.region,
                    &key.instance,
                    job.request.cluster_name.as_deref(),
                    &task_id,
                )
                .await
            {
                Ok(reply) => {
                    let patch = JobPatch {
                        remote: Some(remote),
                        count_remote_retry: true,
                        next_poll_at: Some(now + chrono_dur(p.poll.delay(0, unit()))),
                        release_lease: true,
                        reason: format!("remote task {task_id} failed; RetryDownloadTask accepted"),
                        request_id: reply.request_id,
                        ..Default::default()
                    };
                    report.queue(job, patch, Then::RemoteRetried { task_id });
                }
                Err(e) if e.class() == crate::retry::ErrorClass::Retryable => {
                    if e.kind == DbsErrorKind::Throttled {
                        ctx.gate.throttled(
                            &key.region,
                            e.retry_after.unwrap_or(Duration::from_secs(1)),
                        );
                    }
                    let wait = p.poll.initial.max(e.retry_after.unwrap_or_default());
                    let patch = JobPatch {
                        remote: Some(remote),
                        next_poll_at: Some(now + chrono_dur(wait)),
                        release_lease: true,
                        reason: format!("RetryDownloadTask failed: {}", e.code),
                        ..Default::default()
                    };
                    report.queue(job, patch, Then::Nothing);
                    report.deferred += 1;
                }
                Err(e) => {
                    let block = BlockInstance {
                        key: key.clone(),
                        task_id: Some(task_id.clone()),
                        reason: format!(
                            "remote task {task_id} failed and RetryDownloadTask was refused: {e}"
                        ),
                        until: Some(now + chrono_dur(p.blocked_reprobe)),
                    };
                    let error = JobError {
                        code: e.code.clone(),
                        message: format!(
                            "remote task {task_id} failed; RetryDownloadTask refused: {}",
                            e.message
                        ),
                        request_id: e.request_id.clone(),
                    };
                    fail_and_block(ctx, job, remote, error, block, report).await;
                }
            }
        }
        PollAction::FailAndBlock {
            remote,
            error,
            block,
        } => {
            fail_and_block(ctx, job, remote, error, block, report).await;
        }
        PollAction::Missing {
            since,
            next_poll_at,
        } => {
            let task_id = job.remote.task_id.clone().unwrap_or_default();
            if missing_since(job).is_none() {
                tracing::warn!(job.id = job.id, task = %task_id, "remote task not listed; will keep looking");
            }
            let patch = JobPatch {
                next_poll_at: Some(next_poll_at),
                count_poll: true,
                last_error: Some(Some(missing_error(&task_id, since))),
                release_lease: true,
                reason: "poll: task not listed".into(),
                ..Default::default()
            };
            report.queue(job, patch, Then::Missing);
        }
        PollAction::GiveUp { error } => {
            let patch = JobPatch {
                to: Some(JobState::Failed),
                last_error: Some(Some(error)),
                release_lease: true,
                reason: "remote task disappeared".into(),
                ..Default::default()
            };
            report.queue(job, patch, Then::Failed);
        }
    }
}

async fn fail_and_block(
    ctx: &WorkerContext,
    job: &Job,
    remote: RemoteStatus,
    error: JobError,
    block: BlockInstance,
    report: &mut Round,
) {
    // Block first: a crash in between leaves the job running, and the next poll decides
    // the same again (both writes are idempotent).
    let store = ctx.store.clone();
    if let Err(e) = super::retry_store(ctx.config.lease, || store.instance_block(&block)).await {
        tracing::warn!(instance = %block.key, error = %e, "could not record the block; will retry on the next poll");
        return;
    }
    tracing::warn!(instance = %block.key, task = ?block.task_id, reason = %block.reason, "instance blocked");
    let patch = JobPatch {
        to: Some(JobState::Failed),
        remote: Some(remote),
        request_id: error.request_id.clone(),
        last_error: Some(Some(error)),
        release_lease: true,
        reason: block.reason.clone(),
        ..Default::default()
    };
    report.queue(job, patch, Then::Failed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::reconcile::tests::task;
    use crate::worker::PollSchedule;

    fn pol(on: RemoteFailurePolicy) -> TrackPolicy {
        TrackPolicy {
            poll: PollSchedule {
                initial: Duration::from_secs(10),
                max: Duration::from_secs(300),
                growth: 2.0,
                plan: crate::config::PollPlan::Geometric,
            },
            on_remote_failure: on,
            max_remote_retries: 2,
            blocked_reprobe: Duration::from_secs(600),
            missing_task_grace: Duration::from_secs(1800),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_100, 0).unwrap()
    }

    fn running(polls: i32) -> Job {
        let mut j = crate::worker::test_support::job(0, 5);
        j.state = JobState::Running;
        j.polls = polls;
        j.remote.task_id = Some("dt-1".into());
        j.remote.download_url = None;
        j
    }

    #[test]
    fn running_task_is_polled_later_and_later() {
        let t = task("dt-1", "b1", "running", 1);
        let at = |polls| match decide_poll(
            &running(polls),
            Some(&t),
            &pol(RemoteFailurePolicy::Retry),
            now(),
            0.5,
        ) {
            PollAction::Progress {
                next_poll_at,
                remote,
                clear_missing,
            } => {
                assert_eq!(remote.status.as_deref(), Some("running"));
                assert!(!clear_missing);
                (next_poll_at - now()).num_seconds()
            }
            a => panic!("{a:?}"),
        };
        assert_eq!(at(0), 20);
        assert_eq!(at(1), 40);
        assert_eq!(at(10), 300);
    }

    #[test]
    fn finished_url_target_fetches_the_url() {
        let t = task("dt-1", "b1", "finished", 1);
        match decide_poll(
            &running(3),
            Some(&t),
            &pol(RemoteFailurePolicy::Retry),
            now(),
            0.5,
        ) {
            PollAction::Succeed {
                fetch_url, note, ..
            } => {
                assert!(fetch_url);
                assert!(note.is_none());
            }
            a => panic!("{a:?}"),
        }
        let mut j = running(3);
        j.request.target_type = TargetType::Oss;
        assert!(matches!(
            decide_poll(&j, Some(&t), &pol(RemoteFailurePolicy::Retry), now(), 0.5),
            PollAction::Succeed {
                fetch_url: false,
                ..
            }
        ));
    }

    #[test]
    fn expired_is_recorded_as_success_with_a_note() {
        let t = task("dt-1", "b1", "expired", 1);
        match decide_poll(
            &running(3),
            Some(&t),
            &pol(RemoteFailurePolicy::Retry),
            now(),
            0.5,
        ) {
            PollAction::Succeed {
                remote,
                fetch_url,
                note,
            } => {
                assert_eq!(remote.status.as_deref(), Some("expired"));
                assert!(!fetch_url);
                assert!(note.unwrap().message.contains("expired"));
            }
            a => panic!("{a:?}"),
        }
    }

    #[test]
    fn failed_task_is_retried_then_fails_and_blocks() {
        let t = task("dt-1", "b1", "failed", 1);
        let p = pol(RemoteFailurePolicy::Retry);
        let mut j = running(3);
        assert!(matches!(
            decide_poll(&j, Some(&t), &p, now(), 0.5),
            PollAction::RetryRemote { .. }
        ));
        j.remote_retries = 2;
        match decide_poll(&j, Some(&t), &p, now(), 0.5) {
            PollAction::FailAndBlock { error, block, .. } => {
                assert_eq!(error.code, REMOTE_FAILED_CODE);
                assert_eq!(block.task_id.as_deref(), Some("dt-1"));
                assert_eq!(block.until, Some(now() + chrono::Duration::seconds(600)));
            }
            a => panic!("{a:?}"),
        }
        j.remote_retries = 0;
        assert!(matches!(
            decide_poll(&j, Some(&t), &pol(RemoteFailurePolicy::Fail), now(), 0.5),
            PollAction::FailAndBlock { .. }
        ));
    }

    #[test]
    fn missing_task_is_awaited_for_the_grace_period_then_given_up() {
        let p = pol(RemoteFailurePolicy::Retry);
        let mut j = running(3);
        let since = match decide_poll(&j, None, &p, now(), 0.5) {
            PollAction::Missing { since, .. } => since,
            a => panic!("{a:?}"),
        };
        assert_eq!(since, now());
        j.last_error = Some(missing_error("dt-1", since));
        assert_eq!(missing_since(&j), Some(now()));
        let later = now() + chrono::Duration::seconds(1799);
        assert!(
            matches!(decide_poll(&j, None, &p, later, 0.5), PollAction::Missing { since: s, .. } if s == now())
        );
        let later = now() + chrono::Duration::seconds(1800);
        assert!(matches!(
            decide_poll(&j, None, &p, later, 0.5),
            PollAction::GiveUp { .. }
        ));
        // Seen again: the marker is cleared.
        let t = task("dt-1", "b1", "running", 1);
        assert!(matches!(
            decide_poll(&j, Some(&t), &p, later, 0.5),
            PollAction::Progress {
                clear_missing: true,
                ..
            }
        ));
    }

    #[test]
    fn group_query_starts_before_the_oldest_claim() {
        let mut a = running(0);
        a.started_at = Some(a.created_at + chrono::Duration::seconds(3600));
        let mut b = running(0);
        b.started_at = Some(a.created_at + chrono::Duration::seconds(100));
        let q = group_query(&a.instance_key(), &[a.clone(), b.clone()]);
        assert_eq!(
            q.start_time_ms,
            Some((b.started_at.unwrap() - chrono::Duration::seconds(600)).timestamp_millis())
        );
    }
}
