//! End-to-end drain: N jobs over M instances, enqueued by one SQL `INSERT … SELECT` while
//! the service runs; the simulator (in-process, loopback, zero latency) completes every
//! task the moment it is created. Jobs/s = N / (enqueue start → last job `succeeded`).

use super::common::{self, Backend, TempDb};
use dbs_archiver::app::App;
use dbs_archiver::sim::{SimConfig, Simulator};
use serde::{Deserialize, Serialize};
use sqlx::Connection;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Worker knobs of the drain, printed with the results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrainKnobs {
    pub concurrency: u32,
    pub idle_poll_ms: u64,
    pub poll_initial_seconds: f64,
    pub max_connections: u32,
}

impl Default for DrainKnobs {
    fn default() -> Self {
        Self {
            concurrency: 16,
            idle_poll_ms: 100,
            poll_initial_seconds: 0.05,
            max_connections: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrainResult {
    pub backend: Backend,
    pub jobs: u32,
    pub instances: u32,
    /// Jobs that reached `succeeded` (equal to `jobs` unless `timed_out`).
    pub succeeded: u64,
    pub failed: u64,
    pub seconds: f64,
    pub jobs_per_second: f64,
    /// Every RPC the simulator answered, per finished job.
    pub api_calls_per_job: f64,
    pub timed_out: bool,
}

enum Conn {
    Sqlite(sqlx::SqliteConnection),
    Pg(sqlx::PgConnection),
}

impl Conn {
    async fn open(db: &TempDb) -> anyhow::Result<Self> {
        Ok(match db.backend {
            Backend::Sqlite => Conn::Sqlite(sqlx::SqliteConnection::connect(&db.url).await?),
            Backend::Postgres => Conn::Pg(sqlx::PgConnection::connect(&db.url).await?),
        })
    }

    async fn count(&mut self, states: &str) -> anyhow::Result<u64> {
        let sql = format!("SELECT count(*) FROM jobs WHERE state IN ({states})");
        let n: i64 = match self {
            Conn::Sqlite(c) => sqlx::query_scalar(&sql).fetch_one(c).await?,
            Conn::Pg(c) => sqlx::query_scalar(&sql).fetch_one(c).await?,
        };
        Ok(n as u64)
    }
}

pub async fn round(
    backend: Backend,
    database_url: &str,
    jobs: u32,
    instances: u32,
    knobs: &DrainKnobs,
    timeout: Duration,
) -> anyhow::Result<DrainResult> {
    let db = TempDb::create(backend, database_url, &format!("drain_{jobs}_{instances}")).await?;
    let result = async {
        let sim = Simulator::start(
            common::sim_fleet(SimConfig::demo().instant(), instances).seed(rand::random()),
            "127.0.0.1:0",
        )
        .await?;
        let mut s = common::settings(&db.url, &sim.endpoint())?;
        s.worker.concurrency = knobs.concurrency;
        s.worker.idle_poll_ms = knobs.idle_poll_ms;
        s.database.max_connections = knobs.max_connections;
        s.tracker.poll_initial_seconds = knobs.poll_initial_seconds;
        s.tracker.poll_max_seconds = knobs.poll_initial_seconds.max(1.0);
        // No client-side rate limit: the drain measures our overhead, not the cloud's quota.
        s.dbs.calls_per_second_per_region = 1e9;
        s.dbs.burst = 1_000_000_000;
        s.validate()?;
        let app = App::build(s).await?;
        let stop = CancellationToken::new();
        let running = tokio::spawn(app.run(stop.clone()));
        let mut conn = Conn::open(&db).await?;
        // Let the services start (PostgreSQL: LISTEN connected) before the clock starts.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        db.execute(&common::seed_sql(backend, jobs, instances, 0))
            .await?;
        let mut timed_out = false;
        loop {
            if conn.count("'queued','submitting','running'").await? == 0 {
                break;
            }
            if started.elapsed() > timeout {
                timed_out = true;
                break;
            }
            // The count reads every open job's index entry, so a 100k-job drain is not
            // polled every 25 ms: 1% of the time elapsed so far (at least 25 ms) keeps the
            // count's cost small and bounds the timing error to ~1%.
            let every = (started.elapsed() / 100).max(Duration::from_millis(25));
            tokio::time::sleep(every).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        stop.cancel();
        let _ = running.await;
        let succeeded = conn.count("'succeeded'").await?;
        let failed = conn.count("'failed'").await?;
        let calls = sim.stats().total_calls();
        sim.shutdown().await;
        Ok::<_, anyhow::Error>(DrainResult {
            backend,
            jobs,
            instances,
            succeeded,
            failed,
            seconds,
            jobs_per_second: succeeded as f64 / seconds,
            api_calls_per_job: calls as f64 / succeeded.max(1) as f64,
            timed_out,
        })
    }
    .await;
    db.drop_db().await?;
    result
}
