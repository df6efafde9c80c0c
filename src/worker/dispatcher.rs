//! The dispatcher: claim queued jobs (never more than the free slots), submit each with
//! CreateDownload — or adopt the task it already has — and record the outcome with a
//! fenced update.
//!
//! Claim and commit; call; record (design.md invariant 3): the claim is one short store
//! call that moves the job to `submitting` under our lease, the cloud call happens with no
//! transaction open, and every outcome is written through `Store::job_update` fenced on
//! (`submitting`, our lease). A fence that no longer holds means another process rescued
//! the job; we log it at debug and move on.
//!
//! The decision for every cloud answer is the pure [`decide_error`] / [`decide_lookup`];
//! `process` only performs the I/O around them.

use super::reconcile::{self, find_blocker, find_match, remote_from_task, Match};
use super::{chrono_dur, unit, InFlightGuard, WorkerContext};
use crate::dbs::types::DownloadTask;
use crate::dbs::{DbsError, DbsErrorKind};
use crate::model::{Job, JobError, JobState};
use crate::retry::RetryPolicy;
use crate::store::{BlockInstance, ClaimParams, Fence, JobPatch, StoreError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Why the dispatcher lists an instance's tasks after a failed CreateDownload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// `JobAlreadyExist`: the task exists; find it and adopt it.
    AlreadySubmitted,
    /// `OnlyOneRunningOrFailedTask`: find the task holding the instance.
    InstanceBusy,
}

/// What to do with a claimed job.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Record the task and move to `running`.
    Running {
        task: DownloadTask,
        request_id: Option<String>,
        /// An existing task was found rather than a new one created.
        adopted: bool,
        reason: String,
    },
    /// Back to `queued`.
    Requeue {
        run_at: DateTime<Utc>,
        spend_attempt: bool,
        needs_reconcile: Option<bool>,
        error: JobError,
        reason: String,
    },
    /// Back to `queued` without spending an attempt, and mark the instance blocked.
    Block {
        block: BlockInstance,
        error: JobError,
        reason: String,
    },
    /// Terminal failure.
    Fail { error: JobError, reason: String },
    /// List the instance's recent tasks, then [`decide_lookup`].
    Lookup(Lookup),
}

/// The knobs the decisions depend on.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub retry: RetryPolicy,
    pub blocked_reprobe: Duration,
    /// Re-probe a block caused by somebody else's *running* task this soon.
    pub busy_reprobe: Duration,
}

fn job_error(e: &DbsError) -> JobError {
    JobError {
        code: e.code.clone(),
        message: e.message.clone(),
        request_id: e.request_id.clone(),
    }
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono_dur(d)
}

/// A retry that spends an attempt, or the terminal failure when none are left.
fn spend_or_fail(
    job: &Job,
    e: &DbsError,
    p: &Policy,
    now: DateTime<Utc>,
    unit: f64,
    needs_reconcile: Option<bool>,
) -> Decision {
    let attempt = job.attempts.saturating_add(1);
    if attempt >= job.max_attempts {
        return Decision::Fail {
            error: job_error(e),
            reason: format!("{} after {attempt} attempts", e.kind.as_str()),
        };
    }
    let delay = p.retry.delay(attempt as u32, unit, e.retry_after);
    Decision::Requeue {
        run_at: after(now, delay),
        spend_attempt: true,
        needs_reconcile,
        error: job_error(e),
        reason: format!(
            "{}: retry {attempt} in {:.1}s",
            e.kind.as_str(),
            delay.as_secs_f64()
        ),
    }
}

/// What a failed CreateDownload (or a failed reconcile listing) means for the job.
pub fn decide_error(
    job: &Job,
    e: &DbsError,
    p: &Policy,
    now: DateTime<Utc>,
    unit: f64,
) -> Decision {
    match e.kind {
        DbsErrorKind::AlreadySubmitted => Decision::Lookup(Lookup::AlreadySubmitted),
        DbsErrorKind::InstanceBusy => Decision::Lookup(Lookup::InstanceBusy),
        DbsErrorKind::Throttled => {
            // Waiting is not failing: no attempt spent. Without a hint, the policy's first
            // step (jittered) keeps a thundering herd from coming back together.
            let wait = e
                .retry_after
                .unwrap_or_else(|| p.retry.delay(1, 0.5 + unit / 2.0, None));
            Decision::Requeue {
                run_at: after(now, wait),
                spend_attempt: false,
                needs_reconcile: None,
                error: job_error(e),
                reason: format!("throttled: wait {:.1}s", wait.as_secs_f64()),
            }
        }
        DbsErrorKind::Transient => spend_or_fail(job, e, p, now, unit, None),
        // The task may exist now: reconcile before any resubmission. Never a terminal
        // failure from here — the next claim lists the instance's tasks first, and only
        // gives up (with attempts exhausted) when no matching task exists. The job keeps
        // its place in the queue (its original `run_at`, no backoff): it must be the next
        // job claimed on its instance, because the task it may have created holds the
        // instance; a sibling submitted first would be refused (or, on a lenient cloud,
        // run a second task on the instance). A failing reconcile listing backs off.
        DbsErrorKind::Ambiguous => Decision::Requeue {
            run_at: job.run_at.min(now),
            spend_attempt: true,
            needs_reconcile: Some(true),
            error: job_error(e),
            reason: "ambiguous: reconcile before resubmitting".into(),
        },
        DbsErrorKind::Permanent | DbsErrorKind::NotFound => Decision::Fail {
            error: job_error(e),
            reason: format!("permanent error {}", e.code),
        },
    }
}

/// Decide after listing the instance's tasks because of `why`.
pub fn decide_lookup(
    job: &Job,
    why: Lookup,
    cause: &DbsError,
    tasks: &[DownloadTask],
    p: &Policy,
    now: DateTime<Utc>,
    unit: f64,
) -> Decision {
    let found = find_match(job, tasks);
    if let Some(t) = found.found() {
        return Decision::Running {
            task: t.clone(),
            request_id: cause.request_id.clone(),
            adopted: true,
            reason: format!("adopted existing task {} ({})", t.task_id, cause.code),
        };
    }
    if let Some(d) = ambiguous(job, &found, cause.request_id.clone()) {
        return d;
    }
    match why {
        // The cloud says it exists but the list does not show it (yet): try again later,
        // reconciling first, as for any failed try.
        Lookup::AlreadySubmitted => spend_or_fail(job, cause, p, now, unit, Some(true)),
        Lookup::InstanceBusy => match find_blocker(tasks) {
            Some(b) => {
                let running = b.status.is_in_progress();
                let until = after(
                    now,
                    if running {
                        p.busy_reprobe
                    } else {
                        p.blocked_reprobe
                    },
                );
                Decision::Block {
                    block: BlockInstance {
                        key: job.instance_key(),
                        task_id: Some(b.task_id.clone()),
                        reason: format!(
                            "instance held by task {} ({}): {}",
                            b.task_id, b.status, cause.code
                        ),
                        until: Some(until),
                    },
                    error: job_error(cause),
                    reason: format!("instance busy with task {} ({})", b.task_id, b.status),
                }
            }
            // Busy, but nothing holds it any more (it just finished): come back soon.
            None => {
                let wait = p.retry.delay(1, unit, None);
                Decision::Requeue {
                    run_at: after(now, wait),
                    spend_attempt: false,
                    needs_reconcile: None,
                    error: job_error(cause),
                    reason: "instance busy but no blocking task listed; retry soon".into(),
                }
            }
        },
    }
}

/// Several remote tasks could be the job's: block the instance until an operator looks
/// (the job stays queued and reconciles again), rather than adopt the wrong one or submit
/// a second download.
pub fn ambiguous(job: &Job, found: &Match<'_>, request_id: Option<String>) -> Option<Decision> {
    let why = found.ambiguity_reason(job)?;
    Some(Decision::Block {
        block: BlockInstance {
            key: job.instance_key(),
            task_id: None,
            reason: why.clone(),
            until: None,
        },
        error: JobError {
            code: "Reconcile.Ambiguous".into(),
            message: why,
            request_id,
        },
        reason: "several remote tasks could be this job's: instance blocked".into(),
    })
}

/// Counts of one dispatch round (for tests and logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchReport {
    pub claimed: usize,
    pub running: usize,
    pub adopted: usize,
    pub requeued: usize,
    pub blocked: usize,
    pub failed: usize,
    /// The fence no longer held (another process took the job over).
    pub lost: usize,
    /// Claimed but released unsent (shutdown).
    pub released: usize,
}

impl DispatchReport {
    fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Running { adopted } => {
                self.running += 1;
                if adopted {
                    self.adopted += 1
                }
            }
            Outcome::Requeued => self.requeued += 1,
            Outcome::Blocked => self.blocked += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Lost => self.lost += 1,
            Outcome::Released => self.released += 1,
        }
    }
}

/// How processing one job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Running { adopted: bool },
    Requeued,
    Blocked,
    Failed,
    Lost,
    Released,
}

/// Claims and submits; see the module docs.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    ctx: WorkerContext,
    permits: Arc<Semaphore>,
}

impl Dispatcher {
    pub fn new(ctx: WorkerContext) -> Self {
        let permits = Arc::new(Semaphore::new(ctx.config.concurrency as usize));
        Self { ctx, permits }
    }

    fn policy(&self) -> Policy {
        let c = &self.ctx.config;
        Policy {
            retry: c.retry,
            blocked_reprobe: c.blocked_reprobe,
            busy_reprobe: c.poll.max.min(c.blocked_reprobe),
        }
    }

    #[tracing::instrument(name = "job.claim", skip_all, fields(limit = limit, claimed))]
    async fn claim(&self, limit: u32) -> Result<Vec<Job>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let c = &self.ctx.config;
        let now = self.ctx.clock.now();
        let jobs = self
            .ctx
            .store
            .job_claim(&ClaimParams {
                owner: c.owner.clone(),
                limit,
                lease: c.lease,
                now,
            })
            .await?;
        tracing::Span::current().record("claimed", jobs.len());
        for job in &jobs {
            crate::telemetry::metrics::job_claimed(job, now);
        }
        Ok(jobs)
    }

    /// One step for tests: claim up to the free slots, process every claimed job to its
    /// recorded outcome, and report.
    pub async fn run_once(&self) -> Result<DispatchReport, StoreError> {
        let free = self.permits.available_permits() as u32;
        let jobs = self.claim(free).await?;
        let mut report = DispatchReport {
            claimed: jobs.len(),
            ..Default::default()
        };
        let never = CancellationToken::new();
        let mut set = JoinSet::new();
        for job in jobs {
            let ctx = self.ctx.clone();
            let policy = self.policy();
            let stop = never.clone();
            set.spawn(async move { process(&ctx, &policy, job, &stop).await });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(o) => report.add(o),
                Err(e) => {
                    crate::telemetry::metrics::panic_caught("dispatch_task");
                    tracing::error!(error = %e, "dispatch task panicked");
                }
            }
        }
        Ok(report)
    }

    /// The loop: take permits, claim at most that many, process each in its own task;
    /// wake on a new-job notification, a freed slot, or a jittered idle poll.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut wakeups = self.ctx.store.job_notifier();
        let mut inflight: JoinSet<Outcome> = JoinSet::new();
        let mut jobs_by_task: HashMap<tokio::task::Id, Job> = HashMap::new();
        let mut store_backoff = Duration::from_millis(100);
        tracing::info!(owner = %self.ctx.config.owner, concurrency = self.ctx.config.concurrency, "dispatcher started");
        loop {
            while let Some(r) = inflight.try_join_next_with_id() {
                reap(&mut jobs_by_task, r);
            }
            if shutdown.is_cancelled() {
                break;
            }
            let free = self.permits.available_permits() as u32;
            let mut full = false;
            if free > 0 {
                wakeups.mark_seen();
                match self.claim(free).await {
                    Ok(jobs) => {
                        store_backoff = Duration::from_millis(100);
                        full = jobs.len() as u32 == free;
                        for job in jobs {
                            let permit = match self.permits.clone().try_acquire_owned() {
                                Ok(p) => p,
                                Err(_) => unreachable!("only this loop takes permits"),
                            };
                            let ctx = self.ctx.clone();
                            let policy = self.policy();
                            let stop = shutdown.clone();
                            let span = tracing::info_span!("dispatch", job.id = job.id, instance = %job.instance_key());
                            let j = job.clone();
                            let handle = inflight.spawn(
                                async move {
                                    let o = process(&ctx, &policy, j, &stop).await;
                                    drop(permit);
                                    o
                                }
                                .instrument(span),
                            );
                            jobs_by_task.insert(handle.id(), job);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "claim failed; backing off");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(store_backoff) => {}
                        }
                        store_backoff = (store_backoff * 2).min(Duration::from_secs(10));
                        continue;
                    }
                }
            }
            if full {
                continue;
            }
            let idle = self.ctx.config.idle_poll.mul_f64(0.75 + 0.5 * unit());
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wakeups.changed() => {}
                _ = tokio::time::sleep(idle) => {}
                Some(r) = inflight.join_next_with_id(), if !inflight.is_empty() => reap(&mut jobs_by_task, r),
            }
        }
        // Phase two: no more claims; let in-flight calls finish within the grace period.
        tracing::info!(in_flight = inflight.len(), "dispatcher stopping");
        let grace = self.ctx.config.shutdown_grace;
        let drained = tokio::time::timeout(grace, async {
            while let Some(r) = inflight.join_next_with_id().await {
                reap(&mut jobs_by_task, r);
            }
        })
        .await;
        if drained.is_err() {
            inflight.abort_all();
            while let Some(r) = inflight.join_next_with_id().await {
                reap(&mut jobs_by_task, r);
            }
            // Whatever was aborted may have sent its CreateDownload: requeue it for
            // reconciliation and drop our lease so the next process can take it at once.
            // It keeps its `run_at`, so it stays the head of its instance: a sibling
            // submitted first could run next to the task it may have created.
            for job in jobs_by_task.into_values() {
                let patch = JobPatch {
                    to: Some(JobState::Queued),
                    needs_reconcile: Some(true),
                    release_lease: true,
                    reason: "shutdown: call aborted after the grace period; reconcile first".into(),
                    ..Default::default()
                };
                let _ = release(&self.ctx, &job, &patch).await;
            }
        }
        tracing::info!("dispatcher stopped");
    }
}

fn reap(
    jobs: &mut HashMap<tokio::task::Id, Job>,
    r: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>,
) {
    match r {
        Ok((id, _)) => {
            jobs.remove(&id);
        }
        Err(e) if e.is_cancelled() => {} // keep: released after abort
        Err(e) => {
            let job = jobs.remove(&e.id()).map(|j| j.id);
            crate::telemetry::metrics::panic_caught("dispatch_task");
            let panic = e
                .try_into_panic()
                .map(|p| crate::supervisor::panic_message(p.as_ref()))
                .unwrap_or_default();
            tracing::error!(job.id = ?job, %panic, "dispatch task panicked; the lease will expire and rescue it");
        }
    }
}

fn fence(ctx: &WorkerContext, job: &Job) -> Fence {
    Fence {
        id: job.id,
        state: JobState::Submitting,
        owner: Some(ctx.config.owner.clone()),
    }
}

async fn release(ctx: &WorkerContext, job: &Job, patch: &JobPatch) -> Outcome {
    match ctx.update(&fence(ctx, job), patch).await {
        Ok(true) => Outcome::Released,
        Ok(false) => Outcome::Lost,
        Err(e) => {
            tracing::warn!(job.id = job.id, error = %e, "could not release lease; it will expire");
            Outcome::Lost
        }
    }
}

/// Submit (or adopt) one claimed job and record the outcome.
pub async fn process(
    ctx: &WorkerContext,
    p: &Policy,
    job: Job,
    stop: &CancellationToken,
) -> Outcome {
    let _guard = InFlightGuard::new(&ctx.inflight, job.id);
    let key = job.instance_key();
    let decision = async {
        // Honour a throttling pause of the region; a shutdown meanwhile releases the job
        // unsent (nothing was called, nothing is spent).
        tokio::select! {
            _ = ctx.gate.wait(&key.region) => {}
            _ = stop.cancelled() => return None,
        }
        if stop.is_cancelled() {
            return None;
        }
        if job.needs_reconcile {
            let now = ctx.clock.now();
            match reconcile::list_for_job(&ctx.client, &job, now, ctx.config.recent_window).await {
                Ok(tasks) => {
                    let found = find_match(&job, &tasks);
                    if let Some(t) = found.found() {
                        return Some(Decision::Running {
                            task: t.clone(),
                            request_id: None,
                            adopted: true,
                            reason: format!("reconciled: adopted task {}", t.task_id),
                        });
                    }
                    if let Some(d) = ambiguous(&job, &found, None) {
                        return Some(d);
                    }
                    if job.attempts >= job.max_attempts {
                        return Some(Decision::Fail {
                            error: job.last_error.clone().unwrap_or_else(|| JobError {
                                code: "Worker.AttemptsExhausted".into(),
                                message: "no attempts left".into(),
                                request_id: None,
                            }),
                            reason: format!(
                                "gave up after {} attempts; reconcile found no remote task",
                                job.attempts
                            ),
                        });
                    }
                    tracing::debug!(job.id = job.id, "reconcile found no task; submitting");
                }
                Err(e) => return Some(on_list_error(ctx, p, &job, &e)),
            }
        }
        match ctx.client.create_download(&job.request).await {
            Ok(reply) => Some(Decision::Running {
                task: reply.data,
                request_id: reply.request_id,
                adopted: false,
                reason: "CreateDownload accepted".into(),
            }),
            Err(e) if e.kind == DbsErrorKind::Ambiguous => {
                // Look at once, while we still hold the instance: usually the task is
                // there and the job goes straight to running.
                if let Some(d) = reconcile_now(ctx, &job, &e).await {
                    return Some(d);
                }
                Some(on_error(ctx, p, &job, &e))
            }
            Err(e) => {
                let d = on_error(ctx, p, &job, &e);
                let Decision::Lookup(why) = d else {
                    return Some(d);
                };
                let now = ctx.clock.now();
                ctx.gate.wait(&key.region).await;
                match reconcile::list_for_job(&ctx.client, &job, now, ctx.config.recent_window)
                    .await
                {
                    Ok(tasks) => Some(decide_lookup(
                        &job,
                        why,
                        &e,
                        &tasks,
                        p,
                        ctx.clock.now(),
                        unit(),
                    )),
                    // Cannot look: treat like the listing error, but reconcile next time.
                    Err(le) => Some(on_list_error(ctx, p, &job, &le)),
                }
            }
        }
    }
    .await;
    let Some(decision) = decision else {
        let patch = JobPatch {
            to: Some(JobState::Queued),
            run_at: Some(ctx.clock.now()),
            release_lease: true,
            reason: "shutdown before submission; released".into(),
            ..Default::default()
        };
        return release(ctx, &job, &patch).await;
    };
    record(ctx, &job, decision).await
}

/// After an ambiguous CreateDownload: list the instance's recent tasks (twice, a second
/// apart, in case the listing lags the create) and adopt the match if there is one.
async fn reconcile_now(ctx: &WorkerContext, job: &Job, cause: &DbsError) -> Option<Decision> {
    let key = job.instance_key();
    for round in 0..2 {
        if round > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        ctx.gate.wait(&key.region).await;
        let now = ctx.clock.now();
        match reconcile::list_for_job(&ctx.client, job, now, ctx.config.recent_window).await {
            Ok(tasks) => {
                let found = find_match(job, &tasks);
                if let Some(d) = ambiguous(job, &found, cause.request_id.clone()) {
                    return Some(d);
                }
                if let Some(t) = found.found() {
                    return Some(Decision::Running {
                        task: t.clone(),
                        request_id: cause.request_id.clone(),
                        adopted: true,
                        reason: format!(
                            "reconciled after {}: adopted task {}",
                            cause.code, t.task_id
                        ),
                    });
                }
            }
            Err(e) => {
                tracing::debug!(job.id = job.id, error = %e, "reconcile listing failed");
                return None;
            }
        }
    }
    None
}

/// Classify, remembering throttling in the region gate.
fn on_error(ctx: &WorkerContext, p: &Policy, job: &Job, e: &DbsError) -> Decision {
    metrics::counter!(crate::telemetry::metrics::DISPATCH_ERRORS, "kind" => e.kind.as_str())
        .increment(1);
    if e.kind == DbsErrorKind::Throttled {
        ctx.gate.throttled(
            &job.request.region,
            e.retry_after.unwrap_or(Duration::from_secs(1)),
        );
    }
    decide_error(job, e, p, ctx.clock.now(), unit())
}

/// A failed DescribeDownloadTask while looking for the job's task: as [`on_error`], but
/// the job must reconcile before it is submitted again, and a lookup-kind code (which a
/// listing should never return) counts as transient rather than recursing.
fn on_list_error(ctx: &WorkerContext, p: &Policy, job: &Job, e: &DbsError) -> Decision {
    match on_error(ctx, p, job, e) {
        Decision::Lookup(_) => spend_or_fail(job, e, p, ctx.clock.now(), unit(), Some(true)),
        Decision::Requeue {
            run_at,
            spend_attempt,
            error,
            reason,
            ..
        } => Decision::Requeue {
            run_at,
            spend_attempt,
            needs_reconcile: Some(true),
            error,
            reason,
        },
        other => other,
    }
}

/// Write the decision with a fenced update.
async fn record(ctx: &WorkerContext, job: &Job, d: Decision) -> Outcome {
    let now = ctx.clock.now();
    let (patch, outcome, block) = match d {
        Decision::Running {
            task,
            request_id,
            adopted,
            reason,
        } => {
            let next = now + chrono_dur(ctx.config.poll.delay(0, unit()));
            (
                JobPatch {
                    to: Some(JobState::Running),
                    remote: Some(remote_from_task(&task, &job.remote)),
                    next_poll_at: Some(next),
                    needs_reconcile: Some(false),
                    last_error: Some(None),
                    release_lease: true,
                    reason: format!("{reason}: task {}", task.task_id),
                    request_id,
                    ..Default::default()
                },
                Outcome::Running { adopted },
                None,
            )
        }
        Decision::Requeue {
            run_at,
            spend_attempt,
            needs_reconcile,
            error,
            reason,
        } => (
            JobPatch {
                to: Some(JobState::Queued),
                run_at: Some(run_at),
                spend_attempt,
                needs_reconcile,
                request_id: error.request_id.clone(),
                last_error: Some(Some(error)),
                release_lease: true,
                reason,
                ..Default::default()
            },
            Outcome::Requeued,
            None,
        ),
        Decision::Block {
            block,
            error,
            reason,
        } => (
            JobPatch {
                to: Some(JobState::Queued),
                run_at: Some(now),
                request_id: error.request_id.clone(),
                last_error: Some(Some(error)),
                release_lease: true,
                reason,
                ..Default::default()
            },
            Outcome::Blocked,
            Some(block),
        ),
        Decision::Fail { error, reason } => (
            JobPatch {
                to: Some(JobState::Failed),
                spend_attempt: false,
                request_id: error.request_id.clone(),
                last_error: Some(Some(error)),
                release_lease: true,
                reason,
                ..Default::default()
            },
            Outcome::Failed,
            None,
        ),
        Decision::Lookup(_) => unreachable!("lookups are resolved before recording"),
    };
    // Block the instance first: if we crash between the two writes, the job is rescued
    // and the next try finds the instance already blocked (nothing lost, nothing doubled).
    if let Some(b) = &block {
        let store = ctx.store.clone();
        if let Err(e) = super::retry_store(ctx.config.lease, || store.instance_block(b)).await {
            tracing::warn!(error = %e, instance = %b.key, "could not record the block");
        } else {
            tracing::warn!(instance = %b.key, task = ?b.task_id, reason = %b.reason, "instance blocked");
        }
    }
    match ctx.update(&fence(ctx, job), &patch).await {
        Ok(true) => {
            if let Some(to) = patch.to {
                let bytes = patch.remote.as_ref().and_then(|r| r.export_data_size);
                crate::telemetry::metrics::job_transition(
                    job,
                    JobState::Submitting,
                    to,
                    bytes,
                    now,
                );
            }
            let to = patch.to.map(|s| s.as_str()).unwrap_or("-");
            tracing::info!(job.id = job.id, instance = %job.instance_key(), to, reason = %patch.reason, "job updated");
            outcome
        }
        Ok(false) => {
            tracing::debug!(job.id = job.id, "job no longer ours; skipping");
            Outcome::Lost
        }
        Err(e) => {
            tracing::warn!(job.id = job.id, error = %e, "could not record the outcome; the lease will expire and the job will be reconciled");
            Outcome::Lost
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::reconcile::tests::task;
    use crate::worker::test_support::job;

    fn pol() -> Policy {
        Policy {
            retry: RetryPolicy {
                base_seconds: 2.0,
                cap_seconds: 60.0,
            },
            blocked_reprobe: Duration::from_secs(600),
            busy_reprobe: Duration::from_secs(300),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_100, 0).unwrap()
    }

    fn err(kind: DbsErrorKind, code: &str) -> DbsError {
        let mut e = DbsError::new(kind, code, "msg");
        e.request_id = Some("req-1".into());
        e
    }

    #[test]
    fn throttled_waits_the_hint_without_spending_an_attempt() {
        let mut e = err(DbsErrorKind::Throttled, "Throttling.User");
        e.retry_after = Some(Duration::from_secs(9));
        match decide_error(&job(0, 5), &e, &pol(), now(), 0.3) {
            Decision::Requeue {
                run_at,
                spend_attempt,
                needs_reconcile,
                ..
            } => {
                assert_eq!(run_at, now() + chrono::Duration::seconds(9));
                assert!(!spend_attempt);
                assert_eq!(needs_reconcile, None);
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn transient_spends_an_attempt_with_backoff_then_fails() {
        let e = err(DbsErrorKind::Transient, "ServiceUnavailable");
        match decide_error(&job(1, 5), &e, &pol(), now(), 0.999_999) {
            Decision::Requeue {
                run_at,
                spend_attempt,
                ..
            } => {
                assert!(spend_attempt);
                // attempt 2 ⇒ ceiling 4 s.
                let d = (run_at - now()).num_milliseconds();
                assert!((3990..=4000).contains(&d), "{d}");
            }
            d => panic!("{d:?}"),
        }
        match decide_error(&job(4, 5), &e, &pol(), now(), 0.5) {
            Decision::Fail { error, .. } => {
                assert_eq!(error.code, "ServiceUnavailable");
                assert_eq!(error.request_id.as_deref(), Some("req-1"));
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn permanent_fails_with_code_message_and_request_id() {
        let e = err(DbsErrorKind::Permanent, "DBS.DownloadTask.OssForbid");
        match decide_error(&job(0, 5), &e, &pol(), now(), 0.5) {
            Decision::Fail { error, .. } => {
                assert_eq!(error.code, "DBS.DownloadTask.OssForbid");
                assert_eq!(error.message, "msg");
                assert_eq!(error.request_id.as_deref(), Some("req-1"));
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn ambiguous_requeues_for_reconciliation_even_without_attempts_left() {
        let e = err(DbsErrorKind::Ambiguous, "Network.Timeout");
        for attempts in [0, 4, 9] {
            match decide_error(&job(attempts, 5), &e, &pol(), now(), 0.5) {
                Decision::Requeue {
                    needs_reconcile,
                    spend_attempt,
                    ..
                } => {
                    assert_eq!(needs_reconcile, Some(true));
                    assert!(spend_attempt);
                }
                d => panic!("{d:?}"),
            }
        }
    }

    #[test]
    fn lookup_codes_ask_for_a_listing() {
        assert!(matches!(
            decide_error(
                &job(0, 5),
                &err(DbsErrorKind::AlreadySubmitted, "x"),
                &pol(),
                now(),
                0.5
            ),
            Decision::Lookup(Lookup::AlreadySubmitted)
        ));
        assert!(matches!(
            decide_error(
                &job(0, 5),
                &err(DbsErrorKind::InstanceBusy, "x"),
                &pol(),
                now(),
                0.5
            ),
            Decision::Lookup(Lookup::InstanceBusy)
        ));
    }

    #[test]
    fn already_submitted_adopts_the_matching_task() {
        let e = err(
            DbsErrorKind::AlreadySubmitted,
            "DBS.DownloadTask.JobAlreadyExist",
        );
        let tasks = vec![
            task("dt-x", "b9", "running", 5),
            task("dt-mine", "b1", "finished", 3),
        ];
        match decide_lookup(
            &job(0, 5),
            Lookup::AlreadySubmitted,
            &e,
            &tasks,
            &pol(),
            now(),
            0.5,
        ) {
            Decision::Running {
                task, request_id, ..
            } => {
                assert_eq!(task.task_id, "dt-mine");
                assert_eq!(request_id.as_deref(), Some("req-1"));
            }
            d => panic!("{d:?}"),
        }
        // Not listed yet: retry later, reconciling first.
        match decide_lookup(
            &job(0, 5),
            Lookup::AlreadySubmitted,
            &e,
            &tasks[..1],
            &pol(),
            now(),
            0.5,
        ) {
            Decision::Requeue {
                needs_reconcile, ..
            } => assert_eq!(needs_reconcile, Some(true)),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn busy_by_our_own_task_adopts_it() {
        let e = err(
            DbsErrorKind::InstanceBusy,
            "DBS.DownloadTask.OnlyOneRunningOrFailedTask",
        );
        let tasks = vec![task("dt-mine", "b1", "running", 3)];
        assert!(matches!(
            decide_lookup(
                &job(0, 5),
                Lookup::InstanceBusy,
                &e,
                &tasks,
                &pol(),
                now(),
                0.5
            ),
            Decision::Running { .. }
        ));
    }

    #[test]
    fn busy_by_a_foreign_failed_task_blocks_the_instance() {
        let e = err(
            DbsErrorKind::InstanceBusy,
            "DBS.DownloadTask.OnlyOneRunningOrFailedTask",
        );
        let tasks = vec![task("dt-foreign", "b7", "failed", 3)];
        match decide_lookup(
            &job(2, 5),
            Lookup::InstanceBusy,
            &e,
            &tasks,
            &pol(),
            now(),
            0.5,
        ) {
            Decision::Block { block, .. } => {
                assert_eq!(block.task_id.as_deref(), Some("dt-foreign"));
                assert_eq!(block.key.instance, "rm-1");
                assert!(block.reason.contains("failed"));
                assert_eq!(block.until, Some(now() + chrono::Duration::seconds(600)));
            }
            d => panic!("{d:?}"),
        }
        // A foreign *running* task is re-probed sooner.
        let tasks = vec![task("dt-foreign", "b7", "running", 3)];
        match decide_lookup(
            &job(2, 5),
            Lookup::InstanceBusy,
            &e,
            &tasks,
            &pol(),
            now(),
            0.5,
        ) {
            Decision::Block { block, .. } => {
                assert_eq!(block.until, Some(now() + chrono::Duration::seconds(300)))
            }
            d => panic!("{d:?}"),
        }
        // Nothing holds it any more: requeue soon, no attempt.
        match decide_lookup(
            &job(2, 5),
            Lookup::InstanceBusy,
            &e,
            &[],
            &pol(),
            now(),
            0.5,
        ) {
            Decision::Requeue { spend_attempt, .. } => assert!(!spend_attempt),
            d => panic!("{d:?}"),
        }
    }
}
