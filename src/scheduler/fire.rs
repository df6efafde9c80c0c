//! Fires: resolve the instances, apply the overlap policy, resolve the backup set, render
//! the requests, enqueue (idempotently) and record what happened.
//!
//! Set-based (issue 11): [`fire_set`] takes the fires of many schedules at once and costs
//! a fixed number of statements — one instance list, one overlap query, one multi-row
//! job `INSERT` per chunk, one multi-row history `INSERT` per chunk — so fire lag no longer
//! grows with the number of schedules due together. DescribeBackups calls (`latest_full`)
//! stay one per instance, `concurrency` at a time. Shared by the scheduler loop, `run-now`
//! and the `preview` dry run (a set of one).

use super::error::SchedulerError;
use super::model::{BackupSelection, OverlapPolicy, RunOutcome, Schedule, SkipReason, TargetKind};
use super::template::{build_request, FireContext};
use super::{metrics, BackupFinder};
use crate::clock::Clock;
use crate::dbs::types::RdsBackup;
use crate::model::{DownloadRequest, Instance, InstanceKey, JobId, JobSource};
use crate::retry::ErrorClass;
use crate::store::schedules::{NewScheduleRun, UnfinishedJob};
use crate::store::{Enqueued, NewJob, Store, StoreError};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use futures::StreamExt;
use serde::Serialize;

/// What one fire did (or, in a dry run, would do) for one instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FireItem {
    pub instance: InstanceKey,
    /// The request (enqueued, or that would be).
    pub request: Option<DownloadRequest>,
    /// The job, when enqueued.
    pub job_id: Option<JobId>,
    /// False when the job already existed (another scheduler, or an earlier attempt).
    pub created: bool,
    pub skipped: Option<SkipReason>,
    pub detail: Option<String>,
}

/// Everything one fire did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FireOutcome {
    pub schedule: String,
    pub fire_time: DateTime<Utc>,
    /// Instances matched by the targets (empty ⇒ recorded as `no_targets`).
    pub items: Vec<FireItem>,
    /// Seconds from the fire time to each created job (fire lag).
    #[serde(skip)]
    pub lags: Vec<f64>,
}

/// The inputs a fire needs besides the schedule.
pub struct FireEnv<'a> {
    pub store: &'a dyn Store,
    pub backups: Option<&'a dyn BackupFinder>,
    pub clock: &'a dyn Clock,
    /// DescribeBackups look-back for `latest_full`.
    pub backup_window: Duration,
    /// DescribeBackups calls of one set in flight at once.
    pub concurrency: usize,
    /// Resolve everything but enqueue and record nothing.
    pub dry_run: bool,
}

/// One fire of a set: a schedule (at most once per set), its zone and the fire time.
#[derive(Debug, Clone, Copy)]
pub struct Fire<'a> {
    pub schedule: &'a Schedule,
    pub tz: Tz,
    pub fire_time: DateTime<Utc>,
}

/// The instances a schedule targets right now.
pub async fn resolve_targets(
    store: &dyn Store,
    schedule: &Schedule,
) -> Result<Vec<InstanceKey>, StoreError> {
    let registered = match schedule.spec.targets.fixed_keys() {
        Some(_) => Vec::new(),
        None => store.instance_list().await?,
    };
    Ok(targets_of(schedule, &registered))
}

/// [`resolve_targets`] against an instance list read once for a whole set.
fn targets_of(schedule: &Schedule, registered: &[Instance]) -> Vec<InstanceKey> {
    let targets = &schedule.spec.targets;
    if let Some(keys) = targets.fixed_keys() {
        return keys;
    }
    let mut keys: Vec<InstanceKey> = registered
        .iter()
        .filter(|i| targets.matches(&i.key, &i.tags))
        .map(|i| i.key.clone())
        .collect();
    keys.sort();
    keys.dedup();
    debug_assert!(matches!(targets.kind, TargetKind::Prefix | TargetKind::Tag));
    keys
}

/// Deterministic jitter in `[0, max]` seconds for one fire and instance, so a retried fire
/// computes the same `run_at`.
fn jitter(schedule_id: i64, fire: DateTime<Utc>, key: &InstanceKey, max: u32) -> Duration {
    if max == 0 {
        return Duration::zero();
    }
    // FNV-1a over the identifying parts.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in schedule_id
        .to_le_bytes()
        .iter()
        .chain(fire.timestamp().to_le_bytes().iter())
        .chain(key.region.as_bytes())
        .chain(b"/")
        .chain(key.instance.as_bytes())
    {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Duration::seconds((h % (max as u64 + 1)) as i64)
}

/// Run one fire (a set of one).
pub async fn fire(
    env: &FireEnv<'_>,
    schedule: &Schedule,
    tz: Tz,
    fire_time: DateTime<Utc>,
) -> Result<FireOutcome, SchedulerError> {
    let fire = Fire {
        schedule,
        tz,
        fire_time,
    };
    fire_set(env, &[fire])
        .await?
        .pop()
        .expect("one result per fire")
}

fn skip(item: &mut FireItem, reason: SkipReason, detail: String) {
    item.skipped = Some(reason);
    item.detail = Some(detail);
}

/// The unfinished job of an earlier fire of this schedule on this instance, if any (the
/// oldest, as `schedule_unfinished_job` returns).
fn overlapping(
    unfinished: &[UnfinishedJob],
    schedule_id: i64,
    key: &InstanceKey,
    fire_time: DateTime<Utc>,
) -> Option<JobId> {
    unfinished
        .iter()
        .find(|u| {
            u.schedule_id == schedule_id && &u.instance == key && u.fire_time != Some(fire_time)
        })
        .map(|u| u.job_id)
}

/// A set's fires, enqueued, with their history rows not yet recorded.
pub struct FiredSet {
    /// Per fire, in input order.
    pub results: Vec<Result<FireOutcome, SchedulerError>>,
    /// What to append to the fires history ([`fire_set`] writes it at once; the scheduler
    /// with its batch's cursor advances).
    pub runs: Vec<NewScheduleRun>,
}

/// Run the fires of many schedules (each schedule at most once) and record their history.
/// The outer error fails the whole set (a database error: nothing is lost, the cursors
/// stay and the fires are retried, what was enqueued coming back as duplicates); an inner
/// one fails one fire (a retryable DescribeBackups error), whose instances are then
/// neither enqueued nor recorded. Results are in input order.
pub async fn fire_set(
    env: &FireEnv<'_>,
    fires: &[Fire<'_>],
) -> Result<Vec<Result<FireOutcome, SchedulerError>>, SchedulerError> {
    let set = fire_set_unrecorded(env, fires).await?;
    if !env.dry_run {
        let new = env.store.schedule_run_record_many(&set.runs).await?;
        count_skips(&set.runs, &new);
    }
    Ok(set.results)
}

/// Count each skip once, when its history row is new (a retried fire's is not).
pub fn count_skips(runs: &[NewScheduleRun], new: &[bool]) {
    for (r, new) in runs.iter().zip(new) {
        if let (true, Some(reason)) = (new, r.reason) {
            metrics::skipped(reason, 1);
        }
    }
}

/// [`fire_set`] without the history write: the scheduler records a batch's history in the
/// transaction that advances its cursors (one commit fewer per batch).
pub async fn fire_set_unrecorded(
    env: &FireEnv<'_>,
    fires: &[Fire<'_>],
) -> Result<FiredSet, SchedulerError> {
    let registered = if fires
        .iter()
        .any(|f| f.schedule.spec.targets.fixed_keys().is_none())
    {
        env.store.instance_list().await?
    } else {
        Vec::new()
    };
    let overlap_ids: Vec<i64> = fires
        .iter()
        .filter(|f| f.schedule.spec.overlap == OverlapPolicy::Skip)
        .map(|f| f.schedule.id)
        .collect();
    let unfinished = if overlap_ids.is_empty() {
        Vec::new()
    } else {
        env.store.schedule_unfinished_jobs(&overlap_ids).await?
    };

    // Targets and overlap, in memory.
    let mut outs: Vec<FireOutcome> = Vec::with_capacity(fires.len());
    let mut records: Vec<NewScheduleRun> = Vec::new();
    for f in fires {
        let spec = &f.schedule.spec;
        let mut out = FireOutcome {
            schedule: spec.name.clone(),
            fire_time: f.fire_time,
            items: Vec::new(),
            lags: Vec::new(),
        };
        let keys = targets_of(f.schedule, &registered);
        if keys.is_empty() {
            records.push(skipped_run(
                env,
                f,
                None,
                SkipReason::NoTargets,
                Some("the targets matched no registered instance".into()),
                None,
            ));
        }
        for key in keys {
            let mut item = FireItem {
                instance: key,
                request: None,
                job_id: None,
                created: false,
                skipped: None,
                detail: None,
            };
            if spec.overlap == OverlapPolicy::Skip {
                if let Some(job) =
                    overlapping(&unfinished, f.schedule.id, &item.instance, f.fire_time)
                {
                    skip(
                        &mut item,
                        SkipReason::Overlap,
                        format!("job {job} of an earlier fire is still unfinished"),
                    );
                    item.job_id = Some(job);
                }
            }
            out.items.push(item);
        }
        outs.push(out);
    }

    // Backup sets (remote calls), `concurrency` at a time.
    let lookups: Vec<(usize, usize)> = outs
        .iter()
        .enumerate()
        .filter(|(fi, _)| fires[*fi].schedule.spec.backup == BackupSelection::LatestFull)
        .flat_map(|(fi, out)| {
            out.items
                .iter()
                .enumerate()
                .filter(|(_, item)| item.skipped.is_none())
                .map(move |(ii, _)| (fi, ii))
        })
        .collect();
    let found: Vec<_> = futures::stream::iter(lookups)
        .map(|(fi, ii)| {
            let key = outs[fi].items[ii].instance.clone();
            async move {
                let r = match env.backups {
                    None => None,
                    Some(finder) => Some(finder.latest_full(&key, env.backup_window).await),
                };
                (fi, ii, r)
            }
        })
        .buffer_unordered(env.concurrency.max(1))
        .collect()
        .await;
    let mut failed: Vec<Option<SchedulerError>> = fires.iter().map(|_| None).collect();
    let mut backups: Vec<Vec<Option<RdsBackup>>> =
        outs.iter().map(|o| vec![None; o.items.len()]).collect();
    for (fi, ii, r) in found {
        let item = &mut outs[fi].items[ii];
        match r {
            None => skip(
                item,
                SkipReason::BackupLookupFailed,
                "no DBS client is configured to resolve latest_full".into(),
            ),
            Some(Ok(Some(b))) => backups[fi][ii] = Some(b),
            Some(Ok(None)) => skip(
                item,
                SkipReason::NoBackup,
                format!(
                    "DescribeBackups found no successful available full backup in the last {} hours",
                    env.backup_window.num_hours()
                ),
            ),
            Some(Err(e)) if e.class() == ErrorClass::Retryable && !env.dry_run => {
                failed[fi] = Some(SchedulerError::Dbs(e))
            }
            Some(Err(e)) => skip(
                item,
                SkipReason::BackupLookupFailed,
                format!("DescribeBackups: {e}"),
            ),
        }
    }

    // Requests.
    for (fi, f) in fires.iter().enumerate() {
        for (ii, item) in outs[fi].items.iter_mut().enumerate() {
            if item.skipped.is_some() {
                continue;
            }
            let ctx = FireContext {
                schedule: &f.schedule.spec.name,
                instance: &item.instance,
                fire_time: f.fire_time,
                tz: f.tz,
            };
            match build_request(&f.schedule.spec, &ctx, backups[fi][ii].as_ref()) {
                Ok(req) => item.request = Some(req),
                Err(e) => skip(item, SkipReason::InvalidRequest, e.to_string()),
            }
        }
    }
    if env.dry_run {
        return Ok(FiredSet {
            results: outs.into_iter().map(Ok).collect(),
            runs: Vec::new(),
        });
    }

    // Enqueue every job of the set at once.
    let mut slots: Vec<(usize, usize)> = Vec::new();
    let mut jobs: Vec<NewJob> = Vec::new();
    for (fi, f) in fires.iter().enumerate() {
        if failed[fi].is_some() {
            continue;
        }
        let spec = &f.schedule.spec;
        for (ii, item) in outs[fi].items.iter().enumerate() {
            if let (Some(req), None) = (&item.request, item.skipped) {
                let run_at = f.fire_time
                    + jitter(
                        f.schedule.id,
                        f.fire_time,
                        &item.instance,
                        spec.jitter_seconds,
                    );
                slots.push((fi, ii));
                jobs.push(NewJob {
                    request: req.clone(),
                    source: JobSource::Schedule,
                    priority: spec.priority,
                    run_at: Some(run_at),
                    max_attempts: spec.max_attempts,
                    idempotency_key: None,
                    schedule_id: Some(f.schedule.id),
                    fire_time: Some(f.fire_time),
                });
            }
        }
    }
    let enqueued = enqueue_each(env.store, jobs).await?;
    let lag_now = env.clock.now();
    for ((fi, ii), result) in slots.into_iter().zip(enqueued) {
        let f = &fires[fi];
        let FireOutcome { items, lags, .. } = &mut outs[fi];
        let item = &mut items[ii];
        match result {
            Ok(e) => {
                item.job_id = Some(e.job.id);
                item.created = e.created;
                if e.created {
                    let lag = (lag_now - f.fire_time)
                        .num_microseconds()
                        .unwrap_or(i64::MAX) as f64
                        / 1e6;
                    metrics::fire_lag(lag);
                    lags.push(lag);
                }
                records.push(NewScheduleRun {
                    schedule_id: f.schedule.id,
                    fire_time: f.fire_time,
                    instance: Some(item.instance.clone()),
                    outcome: RunOutcome::Enqueued,
                    reason: None,
                    detail: None,
                    job_id: Some(e.job.id),
                    now: env.clock.now(),
                });
            }
            Err(v) => skip(item, SkipReason::InvalidRequest, v.to_string()),
        }
    }

    // History rows, for one write (whoever writes them counts each skip once, when its row
    // is new: `count_skips`).
    for (fi, f) in fires.iter().enumerate() {
        if failed[fi].is_some() {
            continue;
        }
        for item in &outs[fi].items {
            if let Some(reason) = item.skipped {
                records.push(skipped_run(
                    env,
                    f,
                    Some(item.instance.clone()),
                    reason,
                    item.detail.clone(),
                    item.job_id,
                ));
            }
        }
    }
    let records: Vec<NewScheduleRun> = records
        .into_iter()
        .filter(|r| {
            let fi = fires.iter().position(|f| f.schedule.id == r.schedule_id);
            fi.is_none_or(|fi| failed[fi].is_none())
        })
        .collect();
    Ok(FiredSet {
        results: outs
            .into_iter()
            .zip(failed)
            .map(|(out, failed)| match failed {
                Some(e) => Err(e),
                None => Ok(out),
            })
            .collect(),
        runs: records,
    })
}

/// Enqueue in one batch; when the batch is refused as invalid (a row broke a rule the
/// database checks), enqueue one by one so only the offending jobs are skipped.
async fn enqueue_each(
    store: &dyn Store,
    jobs: Vec<NewJob>,
) -> Result<Vec<Result<Enqueued, crate::model::ValidationError>>, StoreError> {
    match store.job_enqueue_many(&jobs).await {
        Ok(done) => Ok(done.into_iter().map(Ok).collect()),
        Err(StoreError::Invalid(_)) => {
            let mut out = Vec::with_capacity(jobs.len());
            for job in jobs {
                match store.job_enqueue(job).await {
                    Ok(e) => out.push(Ok(e)),
                    Err(StoreError::Invalid(v)) => out.push(Err(v)),
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        }
        Err(e) => Err(e),
    }
}

fn skipped_run(
    env: &FireEnv<'_>,
    f: &Fire<'_>,
    instance: Option<InstanceKey>,
    reason: SkipReason,
    detail: Option<String>,
    job_id: Option<JobId>,
) -> NewScheduleRun {
    NewScheduleRun {
        schedule_id: f.schedule.id,
        fire_time: f.fire_time,
        instance,
        outcome: RunOutcome::Skipped,
        reason: Some(reason),
        detail,
        job_id,
        now: env.clock.now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_deterministic_and_bounded() {
        let k = InstanceKey::new("cn-hangzhou", "rm-1");
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(jitter(1, t, &k, 0), Duration::zero());
        let a = jitter(1, t, &k, 300);
        assert_eq!(a, jitter(1, t, &k, 300));
        let spread: std::collections::HashSet<_> = (0..50)
            .map(|i| jitter(i, t, &k, 300))
            .inspect(|d| assert!(*d >= Duration::zero() && *d <= Duration::seconds(300)))
            .collect();
        assert!(spread.len() > 10, "jitter should spread: {spread:?}");
    }
}
