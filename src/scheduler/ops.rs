//! The schedule operations the CLI and the admin API share: create, list, get, update,
//! pause, resume, delete, preview (dry run), run-now, next fire times.
//!
//! Every write validates first; invalid input stores nothing and names the field.

use super::cron::CronSchedule;
use super::error::SchedulerError;
use super::fire::{fire, FireEnv, FireOutcome};
use super::model::{Schedule, ScheduleOrigin, ScheduleRun, ScheduleSpec};
use super::BackupFinder;
use crate::clock::Clock;
use crate::store::schedules::{NewSchedule, ScheduleSetEnabled, ScheduleUpdate};
use crate::store::Store;
use chrono::{DateTime, DurationRound, Utc};
use chrono_tz::Tz;

/// Validate and store a new schedule. Its first fire is the first one after `now`.
pub async fn create(
    store: &dyn Store,
    spec: ScheduleSpec,
    origin: ScheduleOrigin,
    now: DateTime<Utc>,
) -> Result<Schedule, SchedulerError> {
    let cron = spec.validate()?;
    let s = store
        .schedule_create(&NewSchedule {
            next_fire_time: cron.next_after(now),
            spec,
            enabled: true,
            origin,
            now,
        })
        .await?;
    Ok(s)
}

/// Every schedule, by name.
pub async fn list(store: &dyn Store) -> Result<Vec<Schedule>, SchedulerError> {
    Ok(store.schedule_list().await?)
}

/// By name, or by numeric id when no schedule has that name.
pub async fn get(store: &dyn Store, name_or_id: &str) -> Result<Schedule, SchedulerError> {
    if let Some(s) = store.schedule_get_by_name(name_or_id).await? {
        return Ok(s);
    }
    if let Ok(id) = name_or_id.parse::<i64>() {
        if let Some(s) = store.schedule_get(id).await? {
            return Ok(s);
        }
    }
    Err(SchedulerError::NotFound(name_or_id.to_string()))
}

/// Replace the spec. The cursor stays: fires already handled are not repeated, and the
/// next fire follows the new expression.
pub async fn update(
    store: &dyn Store,
    name_or_id: &str,
    spec: ScheduleSpec,
    now: DateTime<Utc>,
) -> Result<Schedule, SchedulerError> {
    let cron = spec.validate()?;
    let current = get(store, name_or_id).await?;
    store
        .schedule_update(&ScheduleUpdate {
            id: current.id,
            next_fire_time: cron.next_after(current.cursor()),
            spec,
            now,
        })
        .await?
        .ok_or_else(|| SchedulerError::NotFound(name_or_id.to_string()))
}

/// Stop firing (the cursor stays; resuming does not make up paused fires).
pub async fn pause(
    store: &dyn Store,
    name_or_id: &str,
    now: DateTime<Utc>,
) -> Result<Schedule, SchedulerError> {
    set_enabled(store, name_or_id, false, now).await
}

/// Fire again from `now` on: fires that fell in the pause are not made up.
pub async fn resume(
    store: &dyn Store,
    name_or_id: &str,
    now: DateTime<Utc>,
) -> Result<Schedule, SchedulerError> {
    set_enabled(store, name_or_id, true, now).await
}

async fn set_enabled(
    store: &dyn Store,
    name_or_id: &str,
    enabled: bool,
    now: DateTime<Utc>,
) -> Result<Schedule, SchedulerError> {
    let current = get(store, name_or_id).await?;
    let cron = CronSchedule::parse(&current.spec.cron, &current.spec.timezone)?;
    store
        .schedule_set_enabled(&ScheduleSetEnabled {
            id: current.id,
            enabled,
            next_fire_time: cron.next_after(now),
            now,
        })
        .await?
        .ok_or_else(|| SchedulerError::NotFound(name_or_id.to_string()))
}

/// Delete the schedule and its fire history; its jobs stay.
pub async fn delete(store: &dyn Store, name_or_id: &str) -> Result<Schedule, SchedulerError> {
    let current = get(store, name_or_id).await?;
    if !store.schedule_delete(current.id).await? {
        return Err(SchedulerError::NotFound(name_or_id.to_string()));
    }
    Ok(current)
}

/// The next `n` fire times after `after`, in the schedule's zone.
pub fn next_fires(
    spec: &ScheduleSpec,
    after: DateTime<Utc>,
    n: usize,
) -> Result<Vec<DateTime<Tz>>, SchedulerError> {
    let cron = CronSchedule::parse(&spec.cron, &spec.timezone)?;
    let tz = cron.timezone();
    Ok(cron
        .fires_after(after)
        .take(n)
        .map(|t| t.with_timezone(&tz))
        .collect())
}

/// Recent fire history, newest first.
pub async fn history(
    store: &dyn Store,
    schedule: &Schedule,
    limit: u32,
) -> Result<Vec<ScheduleRun>, SchedulerError> {
    Ok(store.schedule_run_list(schedule.id, limit).await?)
}

/// Dry run of the next fire after `after` (or of `at` exactly): which instances, which
/// backup set, which paths. Enqueues and records nothing (DescribeBackups is called for
/// `latest_full` when `backups` is given).
pub async fn preview(
    store: &dyn Store,
    backups: Option<&dyn BackupFinder>,
    clock: &dyn Clock,
    schedule: &Schedule,
    at: Option<DateTime<Utc>>,
    backup_window: chrono::Duration,
) -> Result<FireOutcome, SchedulerError> {
    let cron = CronSchedule::parse(&schedule.spec.cron, &schedule.spec.timezone)?;
    let t = match at {
        Some(t) => t,
        None => cron.next_after(clock.now()).ok_or_else(|| {
            SchedulerError::NotFound(format!("{}: no future fire", schedule.spec.name))
        })?,
    };
    let env = FireEnv {
        store,
        backups,
        clock,
        backup_window,
        concurrency: 1,
        dry_run: true,
    };
    fire(&env, schedule, cron.timezone(), t).await
}

/// Fire now, outside the cron (fire time = now, whole seconds); the cursor does not move.
/// Calling it twice in the same second enqueues once.
pub async fn run_now(
    store: &dyn Store,
    backups: Option<&dyn BackupFinder>,
    clock: &dyn Clock,
    schedule: &Schedule,
    backup_window: chrono::Duration,
) -> Result<FireOutcome, SchedulerError> {
    let cron = CronSchedule::parse(&schedule.spec.cron, &schedule.spec.timezone)?;
    let now = clock.now();
    let t = now
        .duration_trunc(chrono::Duration::seconds(1))
        .unwrap_or(now);
    let env = FireEnv {
        store,
        backups,
        clock,
        backup_window,
        concurrency: 1,
        dry_run: false,
    };
    fire(&env, schedule, cron.timezone(), t).await
}
