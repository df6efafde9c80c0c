//! The race against graphile-worker 0.17.3 (npm), on the same PostgreSQL server in a
//! database of its own, run two ways in the same `bench all`:
//!
//! * **default** — `run()` with its defaults except `concurrency: 10`; the clock covers one
//!   `add_jobs` call of N no-op jobs and the drain, as our end-to-end drain's clock covers
//!   its `INSERT … SELECT` and the drain. Raced by `bench drain`.
//! * **perf test** — the settings of its own `perfTest/` (graphile.config.js, run.js): N
//!   no-op jobs enqueued by `add_jobs` before the clock, then four `runOnce()` processes in
//!   parallel, each with 24 concurrent jobs, a pool of 25, a local queue of 500 refetched
//!   after 10 ms, and completions and failures batched (`completeJobBatchDelay: 0`,
//!   `failJobBatchDelay: 0`); jobs/s = N / (wall time − the startup time of one `runOnce`
//!   on an empty queue), as run.js computes it. Raced by `bench store` (claim + complete,
//!   no HTTP) at the same N.
//!
//! Only the logger differs from their settings: warnings and errors only (ours runs
//! without a log subscriber in its benchmarks).

use super::common::{Backend, TempDb};
use serde::{Deserialize, Serialize};
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The exact npm package raced.
pub const PACKAGE: &str = "graphile-worker@0.17.3";
const SCRIPT_NAME: &str = "peer_race.mjs";
const SCRIPT: &str = include_str!("peer_race.mjs");

/// Their perf test's settings (perfTest/graphile.config.js and run.js at 0.17.3).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PerfSettings {
    /// `runOnce` processes started together (run.js `PARALLELISM`).
    pub processes: u32,
    /// `concurrentJobs` of each (`maxPoolSize` is one more).
    pub concurrency: u32,
    /// `localQueue.size` (jobs fetched and locked per query).
    pub local_queue: u32,
    /// `completeJobBatchDelay` and `failJobBatchDelay`, ms (0: batch what is pending).
    pub batch_delay_ms: i32,
}

impl Default for PerfSettings {
    fn default() -> Self {
        Self {
            processes: 4,
            concurrency: 24,
            local_queue: 500,
            batch_delay_ms: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerMode {
    /// Its defaults at concurrency 10, raced by our end-to-end drain.
    #[default]
    Default,
    /// Its perf-test settings, raced by `bench store`.
    PerfTest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerResult {
    pub peer: String,
    pub version: String,
    #[serde(default)]
    pub mode: PeerMode,
    pub jobs: u32,
    /// Concurrent jobs over all its processes.
    pub concurrency: u32,
    /// The timed seconds (perf test: wall time minus `startup_seconds`).
    pub seconds: f64,
    pub jobs_per_second: f64,
    /// Perf test: one `runOnce` on an empty queue, subtracted as run.js does.
    #[serde(default)]
    pub startup_seconds: Option<f64>,
    /// The command line(s) run, in the temporary directory it was installed into.
    #[serde(default)]
    pub command: String,
    /// Every setting that differs from its defaults.
    #[serde(default)]
    pub settings: String,
}

/// What happened with the peer: a result, or why there is none.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PeerOutcome {
    Ran(Vec<PeerResult>),
    Skipped { skipped: String },
}

/// Install graphile-worker into a fresh temporary directory; `Err` says why not.
pub async fn install() -> Result<(PathBuf, String), String> {
    let dir = std::env::temp_dir().join(format!("dbs-archiver-bench-peer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
    std::fs::write(
        dir.join("package.json"),
        r#"{"private":true,"type":"module"}"#,
    )
    .map_err(|e| format!("package.json: {e}"))?;
    std::fs::write(dir.join(SCRIPT_NAME), SCRIPT).map_err(|e| format!("{SCRIPT_NAME}: {e}"))?;
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                PACKAGE,
            ])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| format!("npm install {PACKAGE} timed out after 180 s"))?
    .map_err(|e| format!("cannot run npm: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "npm install {PACKAGE} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let pkg = std::fs::read_to_string(dir.join("node_modules/graphile-worker/package.json"))
        .map_err(|e| format!("graphile-worker not installed: {e}"))?;
    let version = serde_json::from_str::<serde_json::Value>(&pkg)
        .ok()
        .and_then(|v| v["version"].as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    Ok((dir, version))
}

/// `node peer_race.mjs <args>` in `dir`; its stdout, or why it failed.
async fn node(dir: &Path, args: &[String], limit: Duration) -> anyhow::Result<String> {
    let out = tokio::time::timeout(
        limit,
        tokio::process::Command::new("node")
            .arg(SCRIPT_NAME)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!(
            "node {SCRIPT_NAME} {} timed out after {} s",
            args.first().map_or("", String::as_str),
            limit.as_secs()
        )
    })??;
    anyhow::ensure!(
        out.status.success(),
        "node {SCRIPT_NAME} {} failed ({}): {}",
        args.first().map_or("", String::as_str),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Generous and growing with N: a slow peer is a figure, not a failure.
fn limit(jobs: u32) -> Duration {
    Duration::from_secs(300 + u64::from(jobs) / 100)
}

/// The command line as printed: the database URL shown as `<db>`.
fn shown(args: &[String]) -> String {
    format!("node {SCRIPT_NAME} {}", args.join(" "))
}

/// Default settings, concurrency `concurrency`: enqueue (one `add_jobs`) and drain, timed.
pub async fn default_round(
    dir: &Path,
    version: &str,
    database_url: &str,
    jobs: u32,
    concurrency: u32,
) -> anyhow::Result<PeerResult> {
    let db = TempDb::create(Backend::Postgres, database_url, &format!("peer_{jobs}")).await?;
    let args = |url: &str| {
        vec![
            "default".to_string(),
            url.to_string(),
            jobs.to_string(),
            concurrency.to_string(),
        ]
    };
    let result = async {
        let stdout = node(dir, &args(&db.url), limit(jobs)).await?;
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .ok_or_else(|| anyhow::anyhow!("no result from the drain script: {stdout}"))?;
        let v: serde_json::Value = serde_json::from_str(line)?;
        let seconds = v["seconds"].as_f64().unwrap_or(f64::NAN);
        Ok::<_, anyhow::Error>(PeerResult {
            peer: "graphile-worker".into(),
            version: version.to_string(),
            mode: PeerMode::Default,
            jobs,
            concurrency,
            seconds,
            jobs_per_second: f64::from(jobs) / seconds,
            startup_seconds: None,
            command: shown(&args("<db>")),
            settings: format!(
                "run({{ concurrency: {concurrency} }}), every other setting its default \
                 (pollInterval 2000 ms, maxPoolSize 10, no local queue, no batched \
                 completion); one add_jobs call inside the clock"
            ),
        })
    }
    .await;
    db.drop_db().await?;
    result
}

/// Its perf test's settings over a backlog of `jobs`, enqueued before the clock.
pub async fn perf_round(
    dir: &Path,
    version: &str,
    database_url: &str,
    jobs: u32,
    s: &PerfSettings,
) -> anyhow::Result<PeerResult> {
    let db = TempDb::create(Backend::Postgres, database_url, &format!("peerperf_{jobs}")).await?;
    let once = |url: &str| {
        vec![
            "once".to_string(),
            url.to_string(),
            s.concurrency.to_string(),
            s.local_queue.to_string(),
            s.batch_delay_ms.to_string(),
        ]
    };
    let enqueue = |url: &str, n: u32| vec!["enqueue".to_string(), url.to_string(), n.to_string()];
    let result = async {
        // Schema first, then the startup time of one worker on an empty queue (run.js).
        node(dir, &enqueue(&db.url, 0), limit(0)).await?;
        let t = Instant::now();
        node(dir, &once(&db.url), limit(0)).await?;
        let startup = t.elapsed().as_secs_f64();
        node(dir, &enqueue(&db.url, jobs), limit(jobs)).await?;
        let t = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..s.processes {
            let (dir, args) = (dir.to_path_buf(), once(&db.url));
            set.spawn(async move { node(&dir, &args, limit(jobs)).await });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }
        let wall = t.elapsed().as_secs_f64();
        let mut c = sqlx::PgConnection::connect(&db.url).await?;
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM graphile_worker._private_jobs")
            .fetch_one(&mut c)
            .await?;
        c.close().await?;
        anyhow::ensure!(left == 0, "graphile-worker left {left} of {jobs} jobs");
        let seconds = wall - startup;
        Ok::<_, anyhow::Error>(PeerResult {
            peer: "graphile-worker".into(),
            version: version.to_string(),
            mode: PeerMode::PerfTest,
            jobs,
            concurrency: s.processes * s.concurrency,
            seconds,
            jobs_per_second: f64::from(jobs) / seconds,
            startup_seconds: Some(startup),
            command: format!(
                "{} (untimed); then {} × `{}` in parallel",
                shown(&enqueue("<db>", jobs)),
                s.processes,
                shown(&once("<db>"))
            ),
            settings: format!(
                "{} runOnce processes × concurrentJobs {}, maxPoolSize {}, localQueue {{ size: {}, \
                 refetchDelay 10 ms }}, completeJobBatchDelay {} ms, failJobBatchDelay {} ms \
                 (perfTest/graphile.config.js); jobs/s = N / (wall {wall:.2} s − startup \
                 {startup:.2} s) as perfTest/run.js computes it",
                s.processes,
                s.concurrency,
                s.concurrency + 1,
                s.local_queue,
                s.batch_delay_ms,
                s.batch_delay_ms
            ),
        })
    }
    .await;
    db.drop_db().await?;
    result
}
