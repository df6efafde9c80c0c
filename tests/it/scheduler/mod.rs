//! Scheduler evidence (issue #5): every store-backed test runs on SQLite and PostgreSQL;
//! time is a `ManualClock` and the scheduler is driven with `run_once` (no waiting).

mod bench;
mod dst;
mod exactly_once;
mod latest_full;
mod misfire;
mod operations;
mod overlap;

use crate::helpers::db::TestDb;
use chrono::{DateTime, Utc};
pub use dbs_archiver::clock::{Clock, ManualClock};
use dbs_archiver::model::Job;
use dbs_archiver::scheduler::model::{BackupSelection, ScheduleOrigin, ScheduleSpec};
use dbs_archiver::scheduler::{ops, Config, Schedule, Scheduler};
use dbs_archiver::store::{DynStore, JobFilter};
use std::sync::Arc;
use std::time::Duration;

pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A one-instance spec that needs no cloud call (`pitr_at_fire_time`).
pub fn pitr_spec(name: &str, cron: &str, tz: &str, instance: &str) -> ScheduleSpec {
    let mut s = ScheduleSpec::example(name, "cn-hangzhou", instance);
    s.cron = cron.into();
    s.timezone = tz.into();
    s.backup = BackupSelection::PitrAtFireTime;
    s
}

pub fn config(owner: &str) -> Config {
    Config {
        owner: owner.into(),
        lease: Duration::from_secs(30),
        ..Config::default()
    }
}

pub fn scheduler(store: &DynStore, clock: &ManualClock, owner: &str) -> Scheduler {
    Scheduler::new(store.clone(), Arc::new(clock.clone()), config(owner))
}

pub async fn create(db: &TestDb, spec: ScheduleSpec, now: DateTime<Utc>) -> Schedule {
    ops::create(db.store.as_ref(), spec, ScheduleOrigin::Api, now)
        .await
        .expect("create schedule")
}

/// Every job of a schedule, oldest first.
pub async fn jobs_of(store: &DynStore, schedule_id: i64) -> Vec<Job> {
    let mut page = store
        .job_list(&JobFilter {
            schedule_id: Some(schedule_id),
            limit: 1000,
            ..JobFilter::default()
        })
        .await
        .expect("list jobs");
    page.jobs.sort_by_key(|j| j.id);
    page.jobs
}
