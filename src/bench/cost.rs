//! Cloud API calls per finished job with realistic task lengths: the simulator's default
//! durations (2 min initializing, 5 min queueing, 60 min running) with simulated time
//! running `scale` times faster than real time, and the tracker's default poll schedule
//! (10 s growing ×1.5 up to 5 min) divided by the same factor, so the call pattern is the
//! one a real hour-long task would see.

use super::common::{self, Backend, TempDb};
use dbs_archiver::app::App;
use dbs_archiver::sim::{SimConfig, Simulator};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CostResult {
    pub backend: Backend,
    pub jobs: u32,
    pub instances: u32,
    pub time_scale: f64,
    pub succeeded: u64,
    pub calls: u64,
    pub calls_per_job: f64,
    pub by_action: BTreeMap<String, u64>,
    pub seconds: f64,
}

pub async fn round(
    backend: Backend,
    database_url: &str,
    jobs: u32,
    instances: u32,
    scale: f64,
) -> anyhow::Result<CostResult> {
    let db = TempDb::create(backend, database_url, "cost").await?;
    let result = async {
        let sim = Simulator::start(
            common::sim_fleet(SimConfig::demo().time_scale(scale), instances).seed(rand::random()),
            "127.0.0.1:0",
        )
        .await?;
        let mut s = common::settings(&db.url, &sim.endpoint())?;
        s.tracker.poll_initial_seconds /= scale;
        s.tracker.poll_max_seconds /= scale;
        s.worker.idle_poll_ms = ((s.worker.idle_poll_ms as f64 / scale) as u64).max(20);
        s.dbs.calls_per_second_per_region *= scale;
        s.dbs.burst = (f64::from(s.dbs.burst) * scale) as u32;
        s.validate()?;
        let app = App::build(s).await?;
        let stop = CancellationToken::new();
        let running = tokio::spawn(app.run(stop.clone()));
        let started = Instant::now();
        db.execute(&common::seed_sql(backend, jobs, instances, 0))
            .await?;
        let store = app_store(&db).await?;
        // ~67 simulated minutes per task, run one at a time per instance.
        let per_instance = jobs.div_ceil(instances) as f64;
        let limit = Duration::from_secs_f64(per_instance * 4020.0 / scale * 3.0 + 30.0);
        loop {
            let counts = store.job_count_by_state().await?;
            let open: i64 = counts
                .iter()
                .filter(|(s, _)| !s.is_terminal())
                .map(|(_, n)| *n)
                .sum();
            if open == 0 || started.elapsed() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        stop.cancel();
        let _ = running.await;
        let succeeded = store
            .job_count_by_state()
            .await?
            .iter()
            .filter(|(s, _)| *s == dbs_archiver::model::JobState::Succeeded)
            .map(|(_, n)| *n as u64)
            .sum::<u64>();
        let stats = sim.stats();
        sim.shutdown().await;
        let by_action = stats
            .calls
            .iter()
            .map(|(a, m)| (a.clone(), m.values().sum()))
            .collect();
        Ok::<_, anyhow::Error>(CostResult {
            backend,
            jobs,
            instances,
            time_scale: scale,
            succeeded,
            calls: stats.total_calls(),
            calls_per_job: stats.total_calls() as f64 / succeeded.max(1) as f64,
            by_action,
            seconds,
        })
    }
    .await;
    db.drop_db().await?;
    result
}

async fn app_store(db: &TempDb) -> anyhow::Result<dbs_archiver::store::DynStore> {
    Ok(dbs_archiver::store::connect(&db.url, 2).await?)
}
