//! Schedule persistence: a separate trait so the scheduler work (issue #5) can grow it
//! without touching the job queue's code. Every [`super::Store`] also implements it.
//!
//! Exactly-once firing rests on three things here: a lease on the schedule row while a
//! scheduler works on it (claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL), the jobs
//! table's unique `(schedule_id, fire_time, region, instance)` index (re-enqueueing a fire
//! is a no-op), and a cursor that only moves forward through a fenced update.

use super::StoreError;
use crate::model::{InstanceKey, JobId};
use crate::model::schedule::{
    RunOutcome, Schedule, ScheduleId, ScheduleOrigin, ScheduleRun, ScheduleSpec, SkipReason,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A validated schedule to insert.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub spec: ScheduleSpec,
    pub enabled: bool,
    pub origin: ScheduleOrigin,
    /// The first fire after `now` (computed by the caller from the cron).
    pub next_fire_time: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// Replace the spec of a schedule (version + 1).
#[derive(Debug, Clone)]
pub struct ScheduleUpdate {
    pub id: ScheduleId,
    pub spec: ScheduleSpec,
    /// Recomputed from the cursor with the new cron.
    pub next_fire_time: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// Pause or resume. Resuming a paused schedule moves its cursor to `now` (fires while
/// paused are deliberately not made up) and sets `next_fire_time`.
#[derive(Debug, Clone)]
pub struct ScheduleSetEnabled {
    pub id: ScheduleId,
    pub enabled: bool,
    /// First fire after `now`; used only when resuming.
    pub next_fire_time: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// Lease enabled schedules whose next fire is due and which no live scheduler holds.
#[derive(Debug, Clone)]
pub struct ScheduleClaim {
    pub owner: String,
    pub limit: u32,
    pub lease: Duration,
    pub now: DateTime<Utc>,
}

/// Move the cursor, fenced on the cursor and version the claimer saw; drops the lease.
#[derive(Debug, Clone)]
pub struct ScheduleAdvance {
    pub id: ScheduleId,
    pub expected_last_fire_time: Option<DateTime<Utc>>,
    pub expected_version: i64,
    pub last_fire_time: DateTime<Utc>,
    pub next_fire_time: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// One history row; `(schedule, fire_time, instance)` is unique, a repeat is ignored.
#[derive(Debug, Clone)]
pub struct NewScheduleRun {
    pub schedule_id: ScheduleId,
    pub fire_time: DateTime<Utc>,
    pub instance: Option<InstanceKey>,
    pub outcome: RunOutcome,
    pub reason: Option<SkipReason>,
    pub detail: Option<String>,
    pub job_id: Option<JobId>,
    pub now: DateTime<Utc>,
}

#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Insert; a taken name is `StoreError::Invalid` naming `name`.
    async fn schedule_create(&self, s: &NewSchedule) -> Result<Schedule, StoreError>;

    async fn schedule_get(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError>;

    async fn schedule_get_by_name(&self, name: &str) -> Result<Option<Schedule>, StoreError>;

    /// Every schedule, by name.
    async fn schedule_list(&self) -> Result<Vec<Schedule>, StoreError>;

    /// `Ok(None)` when there is no such schedule. A name taken by another schedule is
    /// `StoreError::Invalid` naming `name`.
    async fn schedule_update(&self, u: &ScheduleUpdate) -> Result<Option<Schedule>, StoreError>;

    async fn schedule_set_enabled(
        &self,
        p: &ScheduleSetEnabled,
    ) -> Result<Option<Schedule>, StoreError>;

    /// Delete the schedule and its history (its jobs stay). False when there was none.
    async fn schedule_delete(&self, id: ScheduleId) -> Result<bool, StoreError>;

    /// Lease up to `limit` due schedules, oldest next fire first.
    async fn schedule_claim_due(&self, p: &ScheduleClaim) -> Result<Vec<Schedule>, StoreError>;

    /// The fenced cursor advance; `Ok(false)` = someone else moved it (or changed the spec).
    async fn schedule_advance(&self, p: &ScheduleAdvance) -> Result<bool, StoreError>;

    /// Drop our lease without moving the cursor (the fires will be retried).
    async fn schedule_release(&self, id: ScheduleId, owner: &str) -> Result<(), StoreError>;

    /// Append to the fires history; `Ok(false)` when that row already existed.
    async fn schedule_run_record(&self, r: &NewScheduleRun) -> Result<bool, StoreError>;

    /// The newest `limit` history rows of a schedule, newest first.
    async fn schedule_run_list(
        &self,
        schedule_id: ScheduleId,
        limit: u32,
    ) -> Result<Vec<ScheduleRun>, StoreError>;

    /// An unfinished (queued, submitting or running) job of this schedule on this instance
    /// from a fire other than `fire_time`: the overlap check.
    async fn schedule_unfinished_job(
        &self,
        schedule_id: ScheduleId,
        key: &InstanceKey,
        fire_time: DateTime<Utc>,
    ) -> Result<Option<JobId>, StoreError>;
}

/// Decode helpers shared by both backends.
pub(crate) mod decode {
    use super::*;
    use crate::model::ValidationError;

    pub fn spec(json: &str) -> Result<ScheduleSpec, StoreError> {
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("schedules.spec: {e}")))
    }

    pub fn origin(s: &str) -> Result<ScheduleOrigin, StoreError> {
        s.parse()
            .map_err(|e: ValidationError| StoreError::Corrupt(format!("schedules.{e}")))
    }

    pub fn outcome(s: &str) -> Result<RunOutcome, StoreError> {
        s.parse()
            .map_err(|e: ValidationError| StoreError::Corrupt(format!("schedule_runs.{e}")))
    }

    pub fn reason(s: Option<String>) -> Result<Option<SkipReason>, StoreError> {
        s.map(|s| {
            s.parse()
                .map_err(|e: ValidationError| StoreError::Corrupt(format!("schedule_runs.{e}")))
        })
        .transpose()
    }

    pub fn instance(region: String, instance: String) -> Option<InstanceKey> {
        (!instance.is_empty()).then(|| InstanceKey::new(region, instance))
    }

    /// A unique violation on `schedules.name`.
    pub fn name_taken(e: &sqlx::Error, name: &str) -> Option<StoreError> {
        match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Some(StoreError::Invalid(
                ValidationError::new("name", format!("a schedule named {name:?} already exists")),
            )),
            _ => None,
        }
    }
}
