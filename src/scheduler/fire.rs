//! One fire of one schedule: resolve the instances, apply the overlap policy, resolve the
//! backup set, render the request, enqueue (idempotently) and record what happened.
//! Shared by the scheduler loop, `run-now` and the `preview` dry run.

use super::error::SchedulerError;
use super::model::{BackupSelection, OverlapPolicy, RunOutcome, Schedule, SkipReason, TargetKind};
use super::template::{build_request, FireContext};
use super::{metrics, BackupFinder};
use crate::clock::Clock;
use crate::dbs::types::RdsBackup;
use crate::model::{DownloadRequest, InstanceKey, JobId, JobSource};
use crate::retry::ErrorClass;
use crate::store::schedules::NewScheduleRun;
use crate::store::{NewJob, Store, StoreError};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
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
    /// Resolve everything but enqueue and record nothing.
    pub dry_run: bool,
}

/// The instances a schedule targets right now.
pub async fn resolve_targets(
    store: &dyn Store,
    schedule: &Schedule,
) -> Result<Vec<InstanceKey>, StoreError> {
    let targets = &schedule.spec.targets;
    if let Some(keys) = targets.fixed_keys() {
        return Ok(keys);
    }
    let mut keys: Vec<InstanceKey> = store
        .instance_list()
        .await?
        .into_iter()
        .filter(|i| targets.matches(&i.key, &i.tags))
        .map(|i| i.key)
        .collect();
    keys.sort();
    keys.dedup();
    debug_assert!(matches!(targets.kind, TargetKind::Prefix | TargetKind::Tag));
    Ok(keys)
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

/// Run one fire. A retryable failure (database, DescribeBackups) aborts with an error so
/// the caller leaves the cursor where it is and the whole fire is retried; everything
/// already enqueued is then found again as a duplicate.
pub async fn fire(
    env: &FireEnv<'_>,
    schedule: &Schedule,
    tz: Tz,
    fire_time: DateTime<Utc>,
) -> Result<FireOutcome, SchedulerError> {
    let spec = &schedule.spec;
    let mut out = FireOutcome {
        schedule: spec.name.clone(),
        fire_time,
        items: Vec::new(),
        lags: Vec::new(),
    };
    let keys = resolve_targets(env.store, schedule).await?;
    if keys.is_empty() {
        record(
            env,
            schedule,
            fire_time,
            None,
            SkipReason::NoTargets,
            Some("the targets matched no registered instance".into()),
            None,
        )
        .await?;
        return Ok(out);
    }
    for key in keys {
        let mut item = FireItem {
            instance: key.clone(),
            request: None,
            job_id: None,
            created: false,
            skipped: None,
            detail: None,
        };
        let skip = |item: &mut FireItem, reason: SkipReason, detail: String| {
            item.skipped = Some(reason);
            item.detail = Some(detail);
        };
        if spec.overlap == OverlapPolicy::Skip {
            if let Some(job) = env
                .store
                .schedule_unfinished_job(schedule.id, &key, fire_time)
                .await?
            {
                skip(
                    &mut item,
                    SkipReason::Overlap,
                    format!("job {job} of an earlier fire is still unfinished"),
                );
                item.job_id = Some(job);
            }
        }
        let mut backup: Option<RdsBackup> = None;
        if item.skipped.is_none() && spec.backup == BackupSelection::LatestFull {
            match env.backups {
                None => skip(
                    &mut item,
                    SkipReason::BackupLookupFailed,
                    "no DBS client is configured to resolve latest_full".into(),
                ),
                Some(finder) => match finder.latest_full(&key, env.backup_window).await {
                    Ok(Some(b)) => backup = Some(b),
                    Ok(None) => skip(
                        &mut item,
                        SkipReason::NoBackup,
                        format!(
                            "DescribeBackups found no successful available full backup in the last {} hours",
                            env.backup_window.num_hours()
                        ),
                    ),
                    Err(e) if e.class() == ErrorClass::Retryable && !env.dry_run => {
                        return Err(SchedulerError::Dbs(e))
                    }
                    Err(e) => skip(
                        &mut item,
                        SkipReason::BackupLookupFailed,
                        format!("DescribeBackups: {e}"),
                    ),
                },
            }
        }
        if item.skipped.is_none() {
            let ctx = FireContext {
                schedule: &spec.name,
                instance: &key,
                fire_time,
                tz,
            };
            match build_request(spec, &ctx, backup.as_ref()) {
                Ok(req) => item.request = Some(req),
                Err(e) => skip(&mut item, SkipReason::InvalidRequest, e.to_string()),
            }
        }
        if env.dry_run {
            out.items.push(item);
            continue;
        }
        if let (Some(req), None) = (&item.request, item.skipped) {
            let job = NewJob {
                request: req.clone(),
                source: JobSource::Schedule,
                priority: spec.priority,
                run_at: Some(fire_time + jitter(schedule.id, fire_time, &key, spec.jitter_seconds)),
                max_attempts: spec.max_attempts,
                idempotency_key: None,
                schedule_id: Some(schedule.id),
                fire_time: Some(fire_time),
            };
            match env.store.job_enqueue(job).await {
                Ok(e) => {
                    item.job_id = Some(e.job.id);
                    item.created = e.created;
                    if e.created {
                        let lag = (env.clock.now() - fire_time)
                            .num_microseconds()
                            .unwrap_or(i64::MAX) as f64
                            / 1e6;
                        metrics::fire_lag(lag);
                        out.lags.push(lag);
                    }
                    env.store
                        .schedule_run_record(&NewScheduleRun {
                            schedule_id: schedule.id,
                            fire_time,
                            instance: Some(key.clone()),
                            outcome: RunOutcome::Enqueued,
                            reason: None,
                            detail: None,
                            job_id: Some(e.job.id),
                            now: env.clock.now(),
                        })
                        .await?;
                }
                Err(StoreError::Invalid(v)) => {
                    skip(&mut item, SkipReason::InvalidRequest, v.to_string());
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(reason) = item.skipped {
            record(
                env,
                schedule,
                fire_time,
                Some(key.clone()),
                reason,
                item.detail.clone(),
                item.job_id,
            )
            .await?;
        }
        out.items.push(item);
    }
    Ok(out)
}

async fn record(
    env: &FireEnv<'_>,
    schedule: &Schedule,
    fire_time: DateTime<Utc>,
    instance: Option<InstanceKey>,
    reason: SkipReason,
    detail: Option<String>,
    job_id: Option<JobId>,
) -> Result<(), StoreError> {
    if env.dry_run {
        return Ok(());
    }
    let new = env
        .store
        .schedule_run_record(&NewScheduleRun {
            schedule_id: schedule.id,
            fire_time,
            instance,
            outcome: RunOutcome::Skipped,
            reason: Some(reason),
            detail,
            job_id,
            now: env.clock.now(),
        })
        .await?;
    if new {
        metrics::skipped(reason, 1);
    }
    Ok(())
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
