//! Benchmarks: `cargo run --release --bin bench -- <subcommand>`.
//!
//! `all` is the one command behind docs/performance.md: every figure of issue 8 on both
//! backends, a printed table, target/bench/results.json and the regenerated report. The
//! other subcommands measure one part in more detail. Everything runs against real parts
//! (a SQLite file, the PostgreSQL at `DATABASE_URL`, the simulator over loopback). The
//! suite's modules live in src/bench/ (binary-only code, not part of the library).

use anyhow::Context;
use clap::{Parser, Subcommand};

#[path = "../bench/all.rs"]
mod all;
#[path = "../bench/common.rs"]
mod common;
#[path = "../bench/console.rs"]
mod console;
#[path = "../bench/cost.rs"]
mod cost;
#[path = "../bench/drain.rs"]
mod drain;
#[path = "../bench/idle.rs"]
mod idle;
#[path = "../bench/latency.rs"]
mod latency;
#[path = "../bench/peer.rs"]
mod peer;
#[path = "../bench/report.rs"]
mod report;
#[path = "../bench/store.rs"]
mod store;
#[path = "../bench/targets.rs"]
mod targets;
#[path = "../bench/throttle.rs"]
mod throttle;

#[derive(Debug, Parser)]
#[command(name = "bench", about = "dbs-archiver benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Claim + complete throughput of the queue per backlog size, on each backend.
    Store(store::StoreArgs),
    /// Fire lag (due time → job enqueued) with N schedules due in the same minute.
    Scheduler(scheduler_bench::SchedulerArgs),
    /// Everything issue 8 asks for, on both backends: prints the table, writes
    /// target/bench/results.json and regenerates docs/performance.md.
    All(all::AllArgs),
    /// One end-to-end drain (for profiling): N jobs over M instances, one backend.
    Drain(DrainArgs),
    /// A region's call rate under random throttling and its recovery once it stops.
    Throttle(throttle::ThrottleKnobs),
    /// The operator console's job list over 1M jobs, over HTTP, per view and page.
    Console(console::ConsoleArgs),
    /// Cloud calls per task and completion-detection delay for 30-minute and 6-hour tasks.
    Cost(cost::CostArgs),
    /// Dispatch latency alone (enqueue → CreateDownload), one backend and path.
    Latency(LatencyArgs),
}

#[derive(Debug, clap::Args)]
struct LatencyArgs {
    #[arg(long, value_enum, default_value = "postgres")]
    backend: common::Backend,
    #[arg(long, value_enum, default_value = "sql")]
    path: latency::Path,
    #[arg(long, default_value_t = 100)]
    samples: u32,
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
}

async fn latency_once(a: LatencyArgs) -> anyhow::Result<()> {
    let _ = dbs_archiver::telemetry::metrics_handle();
    let l = latency::round(a.backend, &a.database_url, a.path, a.samples).await?;
    println!("{}", serde_json::to_string(&l)?);
    Ok(())
}

#[derive(Debug, clap::Args)]
struct DrainArgs {
    #[arg(long, value_enum, default_value = "postgres")]
    backend: common::Backend,
    #[arg(long, default_value_t = 1000)]
    jobs: u32,
    #[arg(long, default_value_t = 1000)]
    instances: u32,
    #[arg(long, default_value_t = 16)]
    concurrency: u32,
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
}

async fn drain_once(args: DrainArgs) -> anyhow::Result<()> {
    let _ = dbs_archiver::telemetry::metrics_handle();
    let knobs = drain::DrainKnobs {
        concurrency: args.concurrency,
        ..Default::default()
    };
    let d = drain::round(
        args.backend,
        &args.database_url,
        args.jobs,
        args.instances,
        &knobs,
        std::time::Duration::from_secs(600),
    )
    .await?;
    println!("{}", serde_json::to_string(&d)?);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Store(args) => store::run(args).await,
        Command::Scheduler(args) => scheduler_bench::run(args).await,
        Command::All(args) => all::run(args).await,
        Command::Drain(args) => drain_once(args).await,
        Command::Throttle(knobs) => throttle::run(knobs).await,
        Command::Console(args) => console::run(args).await,
        Command::Latency(args) => latency_once(args).await,
        Command::Cost(args) => cost::run(args).await,
    }
    .context("benchmark failed")
}

/// `bench scheduler`: N one-instance schedules all due at the same minute; one scheduler
/// (or several, racing on PostgreSQL) wakes exactly at the due time and fires them. The
/// fire lag of each job (due time → enqueued) is measured on a clock that starts at the
/// due instant and runs in real time; p50/p99/max and fires/s are printed.
mod scheduler_bench {
    use anyhow::Context;
    use chrono::{DateTime, Utc};
    use dbs_archiver::clock::Clock;
    use dbs_archiver::scheduler::model::{
        BackupSelection, OverlapPolicy, ScheduleOrigin, ScheduleSpec,
    };
    use dbs_archiver::scheduler::{ops, Config, Scheduler};
    use dbs_archiver::store::postgres::PgStore;
    use dbs_archiver::store::sqlite::SqliteStore;
    use dbs_archiver::store::DynStore;
    use sqlx::Connection;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
    pub enum Backend {
        Sqlite,
        Postgres,
        Both,
    }

    #[derive(Debug, clap::Args)]
    pub struct SchedulerArgs {
        #[arg(long, value_enum, default_value = "both")]
        backend: Backend,
        /// Schedules due in the same minute.
        #[arg(long, default_value_t = 1000)]
        schedules: u32,
        /// Schedulers racing for them (separate store handles, as separate processes).
        #[arg(long, default_value_t = 1)]
        schedulers: usize,
        /// Schedules of a claimed batch worked on at once, per scheduler.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Schedules claimed per batch (the service's default).
        #[arg(long, default_value_t = dbs_archiver::scheduler::Config::default().batch_size)]
        batch: u32,
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        database_url: String,
    }

    /// Real time, starting at the due instant.
    #[derive(Debug)]
    struct FromInstant {
        start: Instant,
        at: DateTime<Utc>,
    }

    impl Clock for FromInstant {
        fn now(&self) -> DateTime<Utc> {
            self.at + chrono::Duration::from_std(self.start.elapsed()).unwrap_or_default()
        }
    }

    pub async fn run(args: SchedulerArgs) -> anyhow::Result<()> {
        println!(
            "fire lag: {} schedules due in the same minute, {} scheduler(s), concurrency {}, \
             batch {}",
            args.schedules, args.schedulers, args.concurrency, args.batch
        );
        println!(
            "{:<10} {:>9} {:>9} {:>9} {:>9} {:>10}",
            "backend", "p50 s", "p99 s", "max s", "wall s", "fires/s"
        );
        if matches!(args.backend, Backend::Sqlite | Backend::Both) {
            let path = std::env::temp_dir().join(format!(
                "dbs-archiver-bench-sched-{}.db",
                std::process::id()
            ));
            let url = format!("sqlite://{}", path.display());
            let pool = (args.concurrency + 2) as u32;
            let store: DynStore = Arc::new(SqliteStore::connect(&url, pool).await?);
            store.migrate().await?;
            // SQLite is one process: the schedulers share the handle.
            let handles = vec![store.clone(); args.schedulers];
            let result = round("sqlite", store, handles, &args).await.map(drop);
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
            result?;
        }
        if matches!(args.backend, Backend::Postgres | Backend::Both) {
            let name = format!("dbs_archiver_bench_sched_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(&args.database_url)
                .await
                .context("connect to DATABASE_URL")?;
            sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut admin)
                .await?;
            let mut url = url::Url::parse(&args.database_url)?;
            url.set_path(&format!("/{name}"));
            let url = url.to_string();
            let result = async {
                let pool = (args.concurrency + 2) as u32;
                let store: DynStore = Arc::new(PgStore::connect(&url, pool).await?);
                store.migrate().await?;
                let mut handles = Vec::new();
                for _ in 0..args.schedulers {
                    let h: DynStore = Arc::new(PgStore::connect(&url, pool).await?);
                    handles.push(h);
                }
                round("postgres", store, handles, &args).await.map(drop)
            }
            .await;
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut admin)
                .await?;
            result?;
        }
        Ok(())
    }

    /// One scheduler round's figures (`bench all` collects them).
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub struct SchedResult {
        pub backend: String,
        pub schedules: u32,
        pub p50_s: f64,
        pub p99_s: f64,
        pub max_s: f64,
        pub wall_s: f64,
        pub fires_per_second: f64,
    }

    /// `bench all`'s scheduler figure: `schedules` due in one minute, one scheduler with
    /// the default concurrency and batch, on a fresh database of `backend`.
    pub async fn measure(
        backend: crate::common::Backend,
        database_url: &str,
        schedules: u32,
    ) -> anyhow::Result<SchedResult> {
        let args = SchedulerArgs {
            backend: match backend {
                crate::common::Backend::Sqlite => Backend::Sqlite,
                crate::common::Backend::Postgres => Backend::Postgres,
            },
            schedules,
            schedulers: 1,
            concurrency: Config::default().concurrency,
            batch: Config::default().batch_size,
            database_url: database_url.to_string(),
        };
        let db = crate::common::TempDb::create(backend, database_url, "sched").await?;
        let result = async {
            let pool = (args.concurrency + 2) as u32;
            let store: DynStore = dbs_archiver::store::connect(&db.url, pool).await?;
            store.migrate().await?;
            round(backend.name(), store.clone(), vec![store], &args).await
        }
        .await;
        db.drop_db().await?;
        result
    }

    async fn round(
        label: &str,
        store: DynStore,
        handles: Vec<DynStore>,
        args: &SchedulerArgs,
    ) -> anyhow::Result<SchedResult> {
        let created_at: DateTime<Utc> = "2026-07-01T00:00:30Z".parse()?;
        let due: DateTime<Utc> = "2026-07-01T00:01:00Z".parse()?;
        // Set-up, not measured: create the schedules a few at a time (100k one by one
        // would take minutes).
        use futures::StreamExt;
        let mut created = futures::stream::iter(0..args.schedules)
            .map(|i| {
                let store = store.clone();
                async move {
                    let mut spec = ScheduleSpec::example(
                        &format!("b{i:06}"),
                        "cn-hangzhou",
                        &format!("rm-b{i:06}"),
                    );
                    spec.cron = "* * * * *".into();
                    spec.backup = BackupSelection::PitrAtFireTime;
                    spec.overlap = OverlapPolicy::Queue;
                    ops::create(store.as_ref(), spec, ScheduleOrigin::Api, created_at).await
                }
            })
            .buffer_unordered(args.concurrency.max(1));
        while let Some(r) = created.next().await {
            r.context("creating the schedules (set-up)")?;
        }
        let clock = Arc::new(FromInstant {
            start: Instant::now(),
            at: due,
        });
        let schedulers: Vec<Scheduler> = handles
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                Scheduler::new(
                    h,
                    clock.clone(),
                    Config {
                        owner: format!("bench-{i}"),
                        concurrency: args.concurrency,
                        batch_size: args.batch,
                        lease: Duration::from_secs(60),
                        ..Config::default()
                    },
                )
            })
            .collect();
        let started = Instant::now();
        let reports = futures::future::try_join_all(schedulers.iter().map(|s| s.run_once(due)))
            .await
            .context("firing the schedules")?;
        let wall = started.elapsed().as_secs_f64();
        let mut lags: Vec<f64> = reports.iter().flat_map(|r| r.lags.clone()).collect();
        anyhow::ensure!(
            lags.len() == args.schedules as usize,
            "expected {} jobs, created {}",
            args.schedules,
            lags.len()
        );
        lags.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| lags[((lags.len() as f64 - 1.0) * p).round() as usize];
        let r = SchedResult {
            backend: label.to_string(),
            schedules: args.schedules,
            p50_s: pct(0.50),
            p99_s: pct(0.99),
            max_s: lags[lags.len() - 1],
            wall_s: wall,
            fires_per_second: lags.len() as f64 / wall,
        };
        println!(
            "{:<10} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>10.0}",
            label, r.p50_s, r.p99_s, r.max_s, r.wall_s, r.fires_per_second
        );
        Ok(r)
    }
}
