//! Peer comparison: the same N trivial jobs drained through graphile-worker (npm), on the
//! same PostgreSQL server in a database of its own, with its default settings and
//! `concurrency` workers; only its logger is narrowed to warnings and errors (ours runs
//! without a log subscriber in the drain). Its jobs do nothing; each of ours makes at least two signed HTTP
//! calls (CreateDownload, DescribeDownloadTask) and several fenced database writes.

use super::common::{Backend, TempDb};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerResult {
    pub peer: String,
    pub version: String,
    pub jobs: u32,
    pub concurrency: u32,
    pub seconds: f64,
    pub jobs_per_second: f64,
}

/// What happened with the peer: a result, or why there is none.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PeerOutcome {
    Ran(Vec<PeerResult>),
    Skipped { skipped: String },
}

const SCRIPT: &str = r#"
import { run, runMigrations, Logger } from "graphile-worker";
import pg from "pg";
const [connectionString, nArg, cArg] = process.argv.slice(2);
const n = Number(nArg), concurrency = Number(cArg);
await runMigrations({ connectionString });
const pool = new pg.Pool({ connectionString, max: 2 });
const runner = await run({
  connectionString, concurrency, noHandleSignals: true,
  logger: new Logger(() => (level, message) => {
    if (level === "error" || level === "warning") console.error(message);
  }),
  taskList: { noop: async () => {} },
});
const t0 = performance.now();
await pool.query("SELECT graphile_worker.add_job('noop', '{}'::json) FROM generate_series(1, $1)", [n]);
for (;;) {
  const r = await pool.query("SELECT count(*)::int AS c FROM graphile_worker.jobs");
  if (r.rows[0].c === 0) break;
  await new Promise((res) => setTimeout(res, 25));
}
const seconds = (performance.now() - t0) / 1000;
await runner.stop();
await pool.end();
console.log(JSON.stringify({ seconds }));
"#;

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
    std::fs::write(dir.join("drain.mjs"), SCRIPT).map_err(|e| format!("drain.mjs: {e}"))?;
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "graphile-worker@0.17",
            ])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| "npm install graphile-worker timed out after 180 s".to_string())?
    .map_err(|e| format!("cannot run npm: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "npm install graphile-worker failed ({}): {}",
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

pub async fn round(
    dir: &std::path::Path,
    version: &str,
    database_url: &str,
    jobs: u32,
    concurrency: u32,
) -> anyhow::Result<PeerResult> {
    let db = TempDb::create(Backend::Postgres, database_url, &format!("peer_{jobs}")).await?;
    let result = async {
        // Generous and growing with N: a slow peer is a figure, not a failure.
        let limit = Duration::from_secs(300 + u64::from(jobs) / 100);
        let out = tokio::time::timeout(
            limit,
            tokio::process::Command::new("node")
                .arg("drain.mjs")
                .arg(&db.url)
                .arg(jobs.to_string())
                .arg(concurrency.to_string())
                .current_dir(dir)
                .stdin(Stdio::null())
                .output(),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "graphile-worker drain timed out after {} s",
                limit.as_secs()
            )
        })??;
        anyhow::ensure!(
            out.status.success(),
            "graphile-worker drain failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
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
            jobs,
            concurrency,
            seconds,
            jobs_per_second: f64::from(jobs) / seconds,
        })
    }
    .await;
    db.drop_db().await?;
    result
}
