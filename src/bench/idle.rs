//! Idle cost: a `dbs-archiver serve` child process with 100k jobs scheduled a day ahead and
//! nothing due. After a warm-up, CPU time (utime + stime from /proc/<pid>/stat) over the
//! window gives CPU%; VmRSS from /proc/<pid>/status is sampled every second.

use super::common::{self, Backend, TempDb};
use dbs_archiver::sim::{SimConfig, Simulator, DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleResult {
    pub backend: Backend,
    pub future_jobs: u32,
    pub window_seconds: f64,
    /// The `serve` process alone.
    pub cpu_percent: f64,
    /// PostgreSQL's backends serving this database over the same window (the queries the
    /// service sends run there, not in its process); `None` on SQLite, where they are in
    /// `cpu_percent` already.
    #[serde(default)]
    pub database_cpu_percent: Option<f64>,
    pub rss_mib_mean: f64,
    pub rss_mib_max: f64,
}

impl IdleResult {
    /// What idling costs the machine: `serve` plus, on PostgreSQL, the backends running
    /// its queries (on SQLite they run inside `serve`).
    pub fn total_cpu_percent(&self) -> f64 {
        self.cpu_percent + self.database_cpu_percent.unwrap_or(0.0)
    }
}

/// The `dbs-archiver` binary next to this one, built (release) when missing.
pub fn service_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("dbs-archiver");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = exe
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d == "release");
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "--bin", "dbs-archiver"]);
        if release {
            cmd.arg("--release");
        }
        println!("building the dbs-archiver binary for the idle measurement…");
        anyhow::ensure!(
            cmd.status()?.success(),
            "cargo build --bin dbs-archiver failed"
        );
    }
    Ok(bin)
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime in ticks (fields 14 and 15, counted after the `(comm)` field).
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 → index 11.
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))
}

pub async fn round(
    backend: Backend,
    database_url: &str,
    future_jobs: u32,
    window: Duration,
) -> anyhow::Result<IdleResult> {
    let bin = service_binary()?;
    let db = TempDb::create(backend, database_url, "idle").await?;
    let result = async {
        let instances = 1000.min(future_jobs.max(1));
        let sim = Simulator::start(
            common::sim_fleet(SimConfig::demo(), instances),
            "127.0.0.1:0",
        )
        .await?;
        {
            let store = dbs_archiver::store::connect(&db.url, 1).await?;
            store.migrate().await?;
        }
        db.execute(&common::seed_sql(backend, future_jobs, instances, 86_400))
            .await?;
        let log_path = std::env::temp_dir().join(format!(
            "dbs-archiver-bench-idle-{}-{}.log",
            std::process::id(),
            backend.name()
        ));
        let log = std::fs::File::create(&log_path)?;
        let mut child = tokio::process::Command::new(&bin)
            .arg("serve")
            .env("DBS_ARCHIVER__DATABASE__URL", &db.url)
            .env("DBS_ARCHIVER__DBS__ENDPOINT", sim.endpoint())
            .env("DBS_ARCHIVER__DBS__RDS_ENDPOINT", sim.endpoint())
            .env("DBS_ARCHIVER__DBS__ACCESS_KEY_ID", DEMO_ACCESS_KEY_ID)
            .env(
                "DBS_ARCHIVER__DBS__ACCESS_KEY_SECRET",
                DEMO_ACCESS_KEY_SECRET,
            )
            .env("DBS_ARCHIVER__API__LISTEN", "127.0.0.1:0")
            .env("DBS_ARCHIVER__TELEMETRY__LOG_LEVEL", "warn")
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow::anyhow!("serve exited at once; see {}", log_path.display()))?;
        // Warm-up: start, migrations check, first rounds of every service.
        tokio::time::sleep(Duration::from_secs(3)).await;
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "serve exited ({status}) during warm-up; see {}",
                log_path.display()
            );
        }
        let tck = clock_ticks();
        let t0 = cpu_ticks(pid)?;
        let backends0 = backend_ticks(&db).await?;
        let started = Instant::now();
        let mut rss = Vec::new();
        while started.elapsed() < window {
            rss.push(rss_kib(pid)? as f64 / 1024.0);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let t1 = cpu_ticks(pid)?;
        let backends1 = backend_ticks(&db).await?;
        let secs = started.elapsed().as_secs_f64();
        // A backend that started inside the window counts from zero.
        let database_ticks = backends1.map(|b1| {
            let b0 = backends0.unwrap_or_default();
            b1.iter()
                .map(|(p, t)| t - b0.get(p).copied().unwrap_or(0).min(*t))
                .sum::<u64>()
        });
        rss.push(rss_kib(pid)? as f64 / 1024.0);
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .is_err()
        {
            child.kill().await?;
        }
        sim.shutdown().await;
        let _ = std::fs::remove_file(&log_path);
        Ok::<_, anyhow::Error>(IdleResult {
            backend,
            future_jobs,
            window_seconds: secs,
            cpu_percent: (t1 - t0) as f64 / tck / secs * 100.0,
            database_cpu_percent: database_ticks.map(|t| t as f64 / tck / secs * 100.0),
            rss_mib_mean: rss.iter().sum::<f64>() / rss.len() as f64,
            rss_mib_max: rss.iter().copied().fold(0.0, f64::max),
        })
    }
    .await;
    db.drop_db().await?;
    result
}

/// CPU ticks of each PostgreSQL backend connected to `db` (by pid), read from /proc: the
/// server runs on this machine. `None` for SQLite.
async fn backend_ticks(db: &TempDb) -> anyhow::Result<Option<std::collections::HashMap<i32, u64>>> {
    if db.backend != Backend::Postgres {
        return Ok(None);
    }
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url).await?;
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut conn)
    .await?;
    conn.close().await?;
    Ok(Some(
        pids.into_iter()
            .filter_map(|p| cpu_ticks(p as u32).ok().map(|t| (p, t)))
            .collect(),
    ))
}
