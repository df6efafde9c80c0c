//! Worker evidence (issue 4): the dispatcher, tracker and maintenance services against a
//! real database (both backends) and the simulator over real TCP.
//!
//! Time is driven, not slept: the worker and the simulator share one [`ManualClock`]
//! (simulator time scale 1), so advancing it makes remote tasks progress and polls come
//! due; each step calls the services' `run_once`.

mod adoption;
mod cost;
pub(crate) mod crash;
mod db_outage;
mod errors;
mod fleet;
mod lifecycle;
mod pg_restart;
mod private_pg;
mod rate_limit_keys;
mod remote_faults;
mod schedule_kills;
mod sigterm_drain;
mod slow_cloud;
mod soak;
mod sql_props;

use crate::helpers::db::TestDb;
use chrono::Utc;
use dbs_archiver::clock::{Clock, ManualClock};
use dbs_archiver::config::RemoteFailurePolicy;
use dbs_archiver::dbs::{DbsClient, DbsClientConfig};
use dbs_archiver::model::{DownloadRequest, InstanceKey, Job, JobSource, JobState, TargetType};
use dbs_archiver::retry::RetryPolicy;
use dbs_archiver::sim::{Durations, SimConfig, SimHandle, Simulator};
use dbs_archiver::store::{JobFilter, NewJob};
use dbs_archiver::worker::{
    Dispatcher, Maintenance, PollSchedule, Tracker, WorkerConfig, WorkerContext,
};
use std::sync::Arc;
use std::time::Duration;

pub const REGION: &str = "cn-hangzhou";

/// Worker settings for tests: fast client, the default poll schedule.
pub fn test_config() -> WorkerConfig {
    WorkerConfig {
        owner: format!("test-{:08x}", rand::random::<u32>()),
        concurrency: 16,
        lease: Duration::from_secs(60),
        heartbeat: Duration::from_secs(15),
        idle_poll: Duration::from_millis(200),
        rescue_interval: Duration::from_secs(15),
        retention: None,
        shutdown_grace: Duration::from_secs(5),
        retry: RetryPolicy {
            base_seconds: 5.0,
            cap_seconds: 600.0,
        },
        poll: PollSchedule {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            growth: 1.5,
            plan: dbs_archiver::config::PollPlan::Predict,
        },
        on_remote_failure: RemoteFailurePolicy::Retry,
        max_remote_retries: 2,
        blocked_reprobe: Duration::from_secs(600),
        url_duration_seconds: 7200,
        recent_window: Duration::from_secs(7 * 86_400),
        missing_task_grace: Duration::from_secs(1800),
        tracker_batch: 256,
    }
}

/// Short remote tasks (simulated): 10 s initializing, 10 s queueing, 60 s running.
pub fn short_durations() -> Durations {
    Durations {
        initializing: Duration::from_secs(10),
        queueing: Duration::from_secs(10),
        running: Duration::from_secs(60),
        url_expiry: Duration::from_secs(3 * 86_400),
    }
}

/// A simulator with `n` instances `rm-w0001…` and no demo fleet, on the shared clock.
pub fn sim_config(clock: &ManualClock, n: usize) -> SimConfig {
    SimConfig::demo()
        .fleet(Default::default())
        .with_instances(REGION, "rm-w", n)
        .durations(short_durations())
        .clock(Arc::new(clock.clone()))
}

pub fn instance(i: usize) -> String {
    format!("rm-w{:04}", i + 1)
}

/// Enqueue `per_instance` distinct point-in-time jobs on each of the first `instances`
/// instances (the k-th job of every instance before the (k+1)-th); their ids in that order.
pub async fn enqueue_pitr_jobs(
    store: &dbs_archiver::store::DynStore,
    instances: usize,
    per_instance: usize,
) -> Vec<i64> {
    let mut ids = Vec::new();
    for k in 0..per_instance {
        for i in 0..instances {
            let job = store
                .job_enqueue(NewJob::new(pitr_request(&instance(i), k), JobSource::Api))
                .await
                .unwrap()
                .job;
            ids.push(job.id);
        }
    }
    ids
}

/// The `k`-th distinct request for an instance: point-in-time downloads one minute apart
/// (the simulator accepts any point after a backup and before now).
pub fn pitr_request(instance: &str, k: usize) -> DownloadRequest {
    let base = Utc::now() - chrono::Duration::hours(1);
    let mut r = DownloadRequest::example_full(REGION, instance, "unused");
    r.bak_set_type = dbs_archiver::model::BakSetType::Pitr;
    r.bak_set_id = None;
    r.download_point_in_time =
        Some((base - chrono::Duration::minutes(k as i64)).timestamp_millis());
    r.target_type = TargetType::Oss;
    r.target_bucket = Some("archive".into());
    r.target_oss_region = Some(REGION.into());
    r.target_path = Some(format!("{instance}/{k}"));
    r
}

/// A full-backup request for one of the instance's three backup sets (URL target).
/// `SimConfig::with_instances` names them `1460000000 + ordinal·100 + day`.
pub fn full_request(instance: &str, k: usize) -> DownloadRequest {
    let ordinal: i64 = instance
        .trim_start_matches("rm-w")
        .parse()
        .expect("rm-wNNNN");
    let id = 1_460_000_000 + ordinal * 100 + (k as i64 % 3) + 1;
    DownloadRequest::example_full(REGION, instance, &id.to_string())
}

/// Every job (in `state`, if given), newest first, read page by page.
pub async fn list_jobs(store: &dbs_archiver::store::DynStore, state: Option<JobState>) -> Vec<Job> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .job_list(&JobFilter {
                state,
                cursor,
                limit: 500,
                ..Default::default()
            })
            .await
            .unwrap();
        out.extend(page.jobs);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// Store + simulator + the three services, all on one manual clock.
pub struct Rig {
    pub db: TestDb,
    pub sim: SimHandle,
    pub clock: ManualClock,
    pub ctx: WorkerContext,
    pub dispatcher: Dispatcher,
    pub tracker: Tracker,
    pub maintenance: Maintenance,
}

/// A client for the simulator with a generous rate limit (tests measure behaviour, not
/// the bucket) unless `rate` is given.
pub fn client_for(sim: &SimHandle, rate: Option<f64>) -> DbsClient {
    let mut c = DbsClientConfig {
        endpoint_override: Some(sim.endpoint()),
        rds_endpoint_override: Some(sim.endpoint()),
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        calls_per_second_per_region: 10_000.0,
        burst: 10_000,
        ..DbsClientConfig::default()
    };
    if let Some(r) = rate {
        c.calls_per_second_per_region = r;
        c.burst = r.max(1.0) as u32;
    }
    DbsClient::new(c, sim.credentials_provider()).expect("client")
}

impl Rig {
    /// Start a simulator built by `sim` on a manual clock an hour ahead of the wall clock
    /// (so jobs enqueued "now" are due), and the services with `config`.
    pub async fn start(
        db: TestDb,
        sim: impl FnOnce(&ManualClock) -> SimConfig,
        config: WorkerConfig,
    ) -> Rig {
        let clock = ManualClock::new(Utc::now() + chrono::Duration::hours(1));
        let sim = Simulator::start(sim(&clock), "127.0.0.1:0")
            .await
            .expect("simulator");
        let client = client_for(&sim, None);
        let ctx = WorkerContext::new(db.store.clone(), client, Arc::new(clock.clone()), config);
        Rig {
            dispatcher: Dispatcher::new(ctx.clone()),
            tracker: Tracker::new(ctx.clone()),
            maintenance: Maintenance::new(ctx.clone()),
            db,
            sim,
            clock,
            ctx,
        }
    }

    pub async fn enqueue(&self, req: DownloadRequest) -> Job {
        self.db
            .store
            .job_enqueue(NewJob::new(req, JobSource::Api))
            .await
            .expect("enqueue")
            .job
    }

    pub async fn job(&self, id: i64) -> Job {
        self.db
            .store
            .job_get(id)
            .await
            .unwrap()
            .expect("job exists")
    }

    pub fn advance(&self, by: Duration) {
        self.clock
            .advance(chrono::Duration::from_std(by).expect("duration"));
    }

    /// Jobs not yet terminal.
    pub async fn open_jobs(&self) -> i64 {
        let counts = self.db.store.job_count_by_state().await.unwrap();
        counts
            .iter()
            .filter(|(s, _)| !s.is_terminal())
            .map(|(_, n)| *n)
            .sum()
    }

    pub async fn jobs_in(&self, state: JobState) -> Vec<Job> {
        list_jobs(&self.db.store, Some(state)).await
    }

    /// One step: dispatch what can be dispatched, poll what is due.
    pub async fn step(&self) {
        while self.dispatcher.run_once().await.expect("dispatch").claimed > 0 {}
        self.tracker.run_once().await.expect("track");
    }

    /// Step and advance the clock by `tick` until no job is open (or `max_steps`).
    /// Returns the steps taken.
    pub async fn run_until_idle(&self, tick: Duration, max_steps: usize) -> usize {
        for n in 0..max_steps {
            self.step().await;
            if self.open_jobs().await == 0 {
                return n + 1;
            }
            self.advance(tick);
        }
        panic!(
            "jobs still open after {max_steps} steps: {:?}",
            self.db.store.job_count_by_state().await.unwrap()
        );
    }

    /// Is the instance blocked, and by which task?
    pub async fn blocked_by(&self, instance: &str) -> Option<Option<String>> {
        let i = self
            .db
            .store
            .instance_get(&InstanceKey::new(REGION, instance))
            .await
            .unwrap()?;
        i.blocked.then_some(i.blocking_task_id)
    }
}
