//! Shared pieces of the `all` suite: throw-away databases, a simulator fleet whose ids the
//! seeding SQL can compute, the service settings each measurement runs with, percentiles.

use anyhow::Context;
use dbs_archiver::config::Settings;
use dbs_archiver::sim::{SimConfig, DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET};
use serde::{Deserialize, Serialize};
use sqlx::Connection;

pub const REGION: &str = "cn-hangzhou";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A fresh database for one measurement: a SQLite file in the temp dir or a new
/// PostgreSQL database next to `DATABASE_URL`; removed by [`TempDb::drop_db`].
pub struct TempDb {
    pub backend: Backend,
    pub url: String,
    admin_url: String,
    name: String,
}

impl TempDb {
    pub async fn create(backend: Backend, admin_url: &str, label: &str) -> anyhow::Result<Self> {
        let name = format!("dbs_archiver_bench_{}_{label}", std::process::id());
        let url = match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                remove_sqlite(&path.display().to_string());
                format!("sqlite://{}", path.display())
            }
            Backend::Postgres => {
                let mut admin = sqlx::PgConnection::connect(admin_url)
                    .await
                    .context("connect to DATABASE_URL")?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut admin)
                    .await?;
                admin.close().await?;
                let mut url = url::Url::parse(admin_url)?;
                url.set_path(&format!("/{name}"));
                url.to_string()
            }
        };
        Ok(Self {
            backend,
            url,
            admin_url: admin_url.to_string(),
            name,
        })
    }

    pub async fn drop_db(self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => {
                let path = self.url.trim_start_matches("sqlite://");
                remove_sqlite(path);
            }
            Backend::Postgres => {
                let mut admin = sqlx::PgConnection::connect(&self.admin_url).await?;
                sqlx::raw_sql(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ))
                .execute(&mut admin)
                .await?;
                admin.close().await?;
            }
        }
        Ok(())
    }

    /// Run one statement on a connection of its own (a one-off outside client).
    pub async fn execute(&self, sql: &str) -> anyhow::Result<u64> {
        let mut client = self.client().await?;
        let n = client.execute(sql).await?;
        client.close().await?;
        Ok(n)
    }

    /// An outside SQL client with its connection open, as an application that enqueues by
    /// `INSERT` keeps one: measurements of what follows a statement then do not include
    /// connecting (a PostgreSQL backend fork costs milliseconds).
    pub async fn client(&self) -> anyhow::Result<SqlClient> {
        Ok(match self.backend {
            Backend::Sqlite => SqlClient::Sqlite(sqlx::SqliteConnection::connect(&self.url).await?),
            Backend::Postgres => SqlClient::Postgres(sqlx::PgConnection::connect(&self.url).await?),
        })
    }
}

/// One open connection of an outside SQL client; see [`TempDb::client`].
pub enum SqlClient {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl SqlClient {
    pub async fn execute(&mut self, sql: &str) -> anyhow::Result<u64> {
        Ok(match self {
            SqlClient::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await?.rows_affected(),
            SqlClient::Postgres(c) => sqlx::raw_sql(sql).execute(c).await?.rows_affected(),
        })
    }

    pub async fn close(self) -> anyhow::Result<()> {
        match self {
            SqlClient::Sqlite(c) => c.close().await?,
            SqlClient::Postgres(c) => c.close().await?,
        }
        Ok(())
    }
}

fn remove_sqlite(path: &str) {
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
}

/// A simulator fleet of `instances` instances named `rm-b1` … `rm-bN` whose first backup
/// set id is `1460000000 + k*100 + 1` (the simulator's numbering), so SQL can seed jobs.
pub fn sim_fleet(config: SimConfig, instances: u32) -> SimConfig {
    let mut c = config
        .fleet(Default::default())
        .with_instances(REGION, "rm-b", instances as usize);
    for (i, inst) in c.fleet.instances.iter_mut().enumerate() {
        inst.id = format!("rm-b{}", i + 1);
    }
    c
}

/// `INSERT … SELECT` of `jobs` distinct OSS-target jobs spread round-robin over the
/// [`sim_fleet`] instances, due `delay_secs` from now. One statement, as a bulk SQL
/// enqueue from any client would be (triggers keep the bookkeeping).
pub fn seed_sql(backend: Backend, jobs: u32, instances: u32, delay_secs: u64) -> String {
    let k = format!("((n - 1) % {instances} + 1)");
    let cols = "INSERT INTO jobs (region, instance, bak_set_type, bak_set_id, format, \
                target_type, target_bucket, target_oss_region, target_path, source, run_at)";
    match backend {
        Backend::Sqlite => format!(
            "{cols} WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {jobs}) \
             SELECT '{REGION}', 'rm-b' || {k}, 'full', CAST(1460000000 + {k} * 100 + 1 AS TEXT), \
             'CSV', 'OSS', 'bench', '{REGION}', 'bench/' || n, 'sql', \
             CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) + {delay_ms} FROM g",
            delay_ms = delay_secs * 1000
        ),
        Backend::Postgres => format!(
            "{cols} SELECT '{REGION}', 'rm-b' || {k}, 'full', (1460000000 + {k} * 100 + 1)::text, \
             'CSV', 'OSS', 'bench', '{REGION}', 'bench/' || n, 'sql', \
             now() + interval '{delay_secs} seconds' FROM generate_series(1, {jobs}) AS g(n)"
        ),
    }
}

/// One job on instance `k` (1-based) as an `INSERT` of its own.
pub fn insert_one_sql(k: u32, tag: &str) -> String {
    format!(
        "INSERT INTO jobs (region, instance, bak_set_type, bak_set_id, format, target_type, \
         target_bucket, target_oss_region, target_path, source) VALUES ('{REGION}', 'rm-b{k}', \
         'full', '{}', 'CSV', 'OSS', 'bench', '{REGION}', 'bench/{tag}/{k}', 'sql')",
        1_460_000_000u64 + u64::from(k) * 100 + 1
    )
}

/// The default settings pointed at `db_url` and the simulator at `endpoint`; no admin
/// API port and no scheduler unless a measurement wants them.
pub fn settings(db_url: &str, endpoint: &str) -> anyhow::Result<Settings> {
    let mut s = Settings::load_from(None, std::iter::empty())?;
    s.database.url = db_url.to_string();
    s.dbs.endpoint = endpoint.to_string();
    s.dbs.rds_endpoint = endpoint.to_string();
    s.dbs.access_key_id = DEMO_ACCESS_KEY_ID.to_string();
    s.dbs.access_key_secret = DEMO_ACCESS_KEY_SECRET.to_string().into();
    s.api.listen = "127.0.0.1:0".into();
    s.scheduler.enabled = false;
    s.telemetry.log_level = "warn".into();
    Ok(s)
}

/// Nearest-rank percentile of sorted values.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn unix_ms_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}
