//! `bench store`: claim + complete through the `Store` trait alone (no HTTP, no worker), at
//! several backlog sizes. A fresh database is filled with the backlog by one
//! `INSERT … SELECT`; the clock starts once it is in, and concurrent claimers claim a batch
//! and complete it until `measure` jobs are done. Completing is two fenced updates,
//! `submitting → running → succeeded`: the state machine has no shorter way, and they are
//! the writes the worker makes around a task, each one statement for the claimed batch
//! (`Store::job_update_many`). `bench all`
//! drains the whole backlog, as graphile-worker's perf test does, so the two figures
//! race over the same N; flat figures across backlogs mean the claim does not slow down as
//! the queue grows.

use super::common::{self, Backend, TempDb};
use chrono::Utc;
use dbs_archiver::model::{JobState, RemoteStatus};
use dbs_archiver::store::postgres::PgStore;
use dbs_archiver::store::sqlite::SqliteStore;
use dbs_archiver::store::{ClaimParams, DynStore, Fence, JobPatch, Store};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the claimers work; printed with every figure.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct StoreKnobs {
    /// Instances the backlog is spread over.
    #[arg(long, default_value_t = 1000)]
    pub instances: u32,
    /// Concurrent claimers (the store's pool has one connection more).
    #[arg(long, default_value_t = 8)]
    pub claimers: u32,
    /// Jobs per claim call.
    #[arg(long, default_value_t = 16)]
    pub batch: u32,
}

impl Default for StoreKnobs {
    fn default() -> Self {
        Self {
            instances: 1000,
            claimers: 8,
            batch: 16,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreResult {
    pub backend: Backend,
    pub backlog: u32,
    /// Jobs claimed and completed inside the clock.
    pub jobs: u32,
    pub seconds: f64,
    pub jobs_per_second: f64,
    pub knobs: StoreKnobs,
}

impl StoreResult {
    /// The command that measures this figure alone.
    pub fn command(&self) -> String {
        format!(
            "cargo run --release --bin bench -- store --backend {} --backlogs {} --measure {} \
             --instances {} --claimers {} --batch {}",
            self.backend.name(),
            self.backlog,
            self.jobs,
            self.knobs.instances,
            self.knobs.claimers,
            self.knobs.batch
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backends {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Which backend(s) to measure.
    #[arg(long, value_enum, default_value = "both")]
    backend: Backends,
    /// Backlog sizes (queued jobs before measuring), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    backlogs: Vec<u32>,
    /// Jobs claimed and completed per measurement (at most the claimable backlog; 0: the
    /// whole backlog, as `bench all` does).
    #[arg(long, default_value_t = 5000)]
    measure: u32,
    #[command(flatten)]
    knobs: StoreKnobs,
    /// PostgreSQL server to create the benchmark databases on.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Instances made busy (an active job each) before measuring: their queued jobs
    /// stay in the backlog but cannot be claimed, the case a naive claim scans past.
    #[arg(long, default_value_t = 0)]
    busy: u32,
    /// Also print the claim's query plan at each backlog size.
    #[arg(long)]
    explain: bool,
}

pub async fn run(args: StoreArgs) -> anyhow::Result<()> {
    let k = &args.knobs;
    println!(
        "claim + complete throughput: {} claimers x {} jobs per claim, backlog over {} \
         instances, {} jobs measured per backlog",
        k.claimers,
        k.batch,
        k.instances,
        if args.measure == 0 {
            "all".to_string()
        } else {
            args.measure.to_string()
        }
    );
    if args.busy > 0 {
        println!(
            "{} of the instances are busy (their jobs cannot be claimed)",
            args.busy
        );
    }
    println!(
        "{:<10} {:>9} {:>9} {:>10} {:>10}",
        "backend", "backlog", "jobs", "seconds", "jobs/s"
    );
    let backends: &[Backend] = match args.backend {
        Backends::Sqlite => &[Backend::Sqlite],
        Backends::Postgres => &[Backend::Postgres],
        Backends::Both => &[Backend::Sqlite, Backend::Postgres],
    };
    for &b in backends {
        for &backlog in &args.backlogs {
            let r = round(b, &args.database_url, backlog, &args, |s| {
                println!("{s}");
            })
            .await?;
            println!(
                "{:<10} {:>9} {:>9} {:>10.2} {:>10.0}",
                b.name(),
                r.backlog,
                r.jobs,
                r.seconds,
                r.jobs_per_second
            );
        }
    }
    Ok(())
}

/// `bench all`'s figure: the whole backlog of `backlog` jobs claimed and completed.
pub async fn drain_backlog(
    backend: Backend,
    database_url: &str,
    backlog: u32,
    knobs: &StoreKnobs,
) -> anyhow::Result<StoreResult> {
    let args = StoreArgs {
        backend: Backends::Both,
        backlogs: vec![backlog],
        measure: 0,
        knobs: knobs.clone(),
        database_url: database_url.to_string(),
        busy: 0,
        explain: false,
    };
    round(backend, database_url, backlog, &args, drop).await
}

async fn round(
    backend: Backend,
    database_url: &str,
    backlog: u32,
    args: &StoreArgs,
    show_plan: impl FnOnce(String),
) -> anyhow::Result<StoreResult> {
    let db = TempDb::create(backend, database_url, &format!("store_{backlog}")).await?;
    let result = async {
        let store = dbs_archiver::store::connect(&db.url, args.knobs.claimers + 1).await?;
        store.migrate().await?;
        seed(&db, backlog, args.knobs.instances).await?;
        if args.explain {
            show_plan(claim_plan(&db, args.knobs.batch).await?);
        }
        hold_busy_instances(store.as_ref(), args.busy).await?;
        let claimable = backlog - backlog / args.knobs.instances.max(1) * args.busy;
        let target = match args.measure {
            0 => claimable,
            m => m.min(claimable),
        };
        measure(backend, store, &args.knobs, backlog, target).await
    }
    .await;
    db.drop_db().await?;
    result
}

/// The backlog, due now, in one statement (the triggers keep the bookkeeping), then fresh
/// planner statistics, as a long-lived queue would have.
async fn seed(db: &TempDb, backlog: u32, instances: u32) -> anyhow::Result<()> {
    db.execute(&common::seed_sql(db.backend, backlog, instances, 0))
        .await?;
    db.execute("ANALYZE").await?;
    Ok(())
}

/// The claim's query plan (an inherent method of each backend's store, not the trait).
async fn claim_plan(db: &TempDb, batch: u32) -> anyhow::Result<String> {
    let p = claim_params("explain", batch);
    Ok(match db.backend {
        Backend::Sqlite => {
            SqliteStore::connect(&db.url, 1)
                .await?
                .explain_claim(&p)
                .await?
        }
        Backend::Postgres => {
            PgStore::connect(&db.url, 1)
                .await?
                .explain_claim(&p)
                .await?
        }
    })
}

/// Claim one job on each of `busy` instances and keep it active.
async fn hold_busy_instances(store: &dyn Store, busy: u32) -> anyhow::Result<()> {
    let mut held = 0;
    while held < busy {
        let got = store
            .job_claim(&claim_params("holder", (busy - held).min(500)))
            .await?;
        anyhow::ensure!(!got.is_empty(), "fewer instances than --busy");
        held += got.len() as u32;
    }
    Ok(())
}

fn claim_params(owner: &str, limit: u32) -> ClaimParams {
    ClaimParams {
        owner: owner.to_string(),
        limit,
        lease: Duration::from_secs(300),
        now: Utc::now(),
    }
}

/// How often `serve`'s maintenance reclaims the bookkeeping's dead rows (the default
/// `worker.rescue_interval_seconds`); the measurement does the same, as a service would.
const RECLAIM_EVERY: Duration = Duration::from_secs(15);

/// Claimers claim and complete until `target` jobs are done, while the bookkeeping is
/// reclaimed every [`RECLAIM_EVERY`] as `serve`'s maintenance does.
async fn measure(
    backend: Backend,
    store: DynStore,
    knobs: &StoreKnobs,
    backlog: u32,
    target: u32,
) -> anyhow::Result<StoreResult> {
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let maintenance = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RECLAIM_EVERY);
            every.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return Ok::<_, anyhow::Error>(()),
                    _ = every.tick() => store.reclaim_bookkeeping().await?,
                }
            }
        })
    };
    for c in 0..knobs.claimers {
        let store = store.clone();
        let done = done.clone();
        let batch = knobs.batch;
        tasks.spawn(async move {
            let owner = format!("bench-{c}");
            while done.load(Ordering::Relaxed) < target as usize {
                let jobs = store.job_claim(&claim_params(&owner, batch)).await?;
                if jobs.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                // The state machine's shortest way to `succeeded`: the two writes the
                // worker makes around a task (submitted → running, finished), each for the
                // whole claimed batch in one statement (`job_update_many`), as the
                // dispatcher and the tracker write a batch's outcomes.
                let running: Vec<(Fence, JobPatch)> = jobs
                    .iter()
                    .map(|job| {
                        let fence = Fence {
                            id: job.id,
                            state: JobState::Submitting,
                            owner: Some(owner.clone()),
                        };
                        let patch = JobPatch {
                            to: Some(JobState::Running),
                            remote: Some(RemoteStatus {
                                task_id: Some(format!("bench-{}", job.id)),
                                ..Default::default()
                            }),
                            release_lease: true,
                            reason: "bench: submitted".into(),
                            ..Default::default()
                        };
                        (fence, patch)
                    })
                    .collect();
                let held = store.job_update_many(&running).await?;
                anyhow::ensure!(held.iter().all(|h| *h), "lost a job");
                let finished: Vec<(Fence, JobPatch)> = jobs
                    .iter()
                    .map(|job| {
                        let fence = Fence {
                            id: job.id,
                            state: JobState::Running,
                            owner: None,
                        };
                        let patch = JobPatch {
                            to: Some(JobState::Succeeded),
                            reason: "bench: finished".into(),
                            ..Default::default()
                        };
                        (fence, patch)
                    })
                    .collect();
                let held = store.job_update_many(&finished).await?;
                anyhow::ensure!(held.iter().all(|h| *h), "lost a job");
                done.fetch_add(jobs.len(), Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.cancel();
    maintenance.await??;
    let jobs = done.load(Ordering::Relaxed) as u32;
    Ok(StoreResult {
        backend,
        backlog,
        jobs,
        seconds,
        jobs_per_second: f64::from(jobs) / seconds,
        knobs: knobs.clone(),
    })
}
