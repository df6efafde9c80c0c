//! `bench console`: how fast the operator console's job list answers over a large table.
//!
//! Per backend: a fresh database gets `--jobs` jobs over `--instances` instances with one
//! `INSERT … SELECT` (a recursive CTE on SQLite, `generate_series` on PostgreSQL), then one
//! `UPDATE` gives them a realistic mix of outcomes (70 % succeeded with a size and a task id,
//! 10 % failed with an error code, 10 % cancelled, 10 % queued). The real server (API +
//! console) is started on loopback, a session is signed in, and each view of `/ui/jobs`
//! is fetched `--repeat` times over HTTP — rendering included — plus a walk of
//! `--pages` keyset pages. Prints p50/p95/max per view and writes
//! `target/bench/console.json`.

use crate::common::{pct, seed_sql, Backend, TempDb, REGION};
use anyhow::Context;
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct ConsoleArgs {
    /// Backends to measure (repeat the flag); both when absent.
    #[arg(long, value_enum)]
    backend: Vec<Backend>,
    #[arg(long, default_value_t = 1_000_000)]
    jobs: u32,
    #[arg(long, default_value_t = 2_000)]
    instances: u32,
    /// Fetches of each view.
    #[arg(long, default_value_t = 20)]
    repeat: u32,
    /// Keyset pages walked with "Next page".
    #[arg(long, default_value_t = 50)]
    pages: u32,
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
}

/// Timings of one view, in milliseconds.
#[derive(Debug, Serialize)]
struct ViewFigures {
    view: String,
    rows: usize,
    p50_ms: f64,
    p95_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct BackendFigures {
    backend: &'static str,
    jobs: u32,
    seed_seconds: f64,
    views: Vec<ViewFigures>,
}

const TOKEN: &str = "console-bench-admin-token-0001";

/// The outcome mix, one statement (the triggers keep the instance bookkeeping).
fn outcomes_sql(backend: Backend) -> String {
    let (finished, size) = match backend {
        Backend::Sqlite => (
            "created_at + 60000 + (id % 3600) * 1000",
            "(id % 1000) * 1048576",
        ),
        Backend::Postgres => (
            "created_at + interval '60 seconds' + (id % 3600) * interval '1 second'",
            "(id % 1000) * 1048576::bigint",
        ),
    };
    format!(
        "UPDATE jobs SET \
         state = CASE WHEN id % 10 < 7 THEN 'succeeded' WHEN id % 10 = 7 THEN 'failed' ELSE 'cancelled' END, \
         remote_task_id = CASE WHEN id % 10 < 8 THEN 'dt-' || id END, \
         export_data_size = CASE WHEN id % 10 < 7 THEN {size} END, \
         last_error_code = CASE WHEN id % 10 = 7 THEN 'ConsoleBenchError' END, \
         last_error_message = CASE WHEN id % 10 = 7 THEN 'the export stopped' END, \
         finished_at = {finished} \
         WHERE id % 10 <> 9"
    )
}

struct Session {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Session {
    async fn start(base: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()?;
        let r = http
            .post(format!("{base}/ui/login"))
            .form(&[("token", TOKEN), ("next", "/ui/")])
            .send()
            .await?;
        let cookie = r
            .headers()
            .get("set-cookie")
            .context("sign-in gave no cookie")?
            .to_str()?
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(Self { http, base, cookie })
    }

    /// Fetch `path`; returns (ms, body).
    async fn get(&self, path: &str) -> anyhow::Result<(f64, String)> {
        let t = Instant::now();
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await?;
        let status = r.status();
        let body = r.text().await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(status.is_success(), "{path}: HTTP {status}");
        Ok((ms, body))
    }
}

fn rows(body: &str) -> usize {
    body.matches("<tr data-job=").count()
}

/// The "Next page" link of a job list page.
fn next_link(body: &str) -> Option<String> {
    let end = body.find("\" id=\"next-page\"")?;
    let start = body[..end].rfind("href=\"")? + "href=\"".len();
    Some(body[start..end].replace("&amp;", "&"))
}

fn figures(view: &str, rows: usize, mut ms: Vec<f64>) -> ViewFigures {
    ms.sort_by(f64::total_cmp);
    ViewFigures {
        view: view.to_string(),
        rows,
        p50_ms: pct(&ms, 0.5),
        p95_ms: pct(&ms, 0.95),
        max_ms: ms.last().copied().unwrap_or(0.0),
    }
}

async fn one_backend(args: &ConsoleArgs, backend: Backend) -> anyhow::Result<BackendFigures> {
    let db = TempDb::create(backend, &args.database_url, "console").await?;
    let store = dbs_archiver::store::connect(&db.url, 4).await?;
    store.migrate().await?;
    let t = Instant::now();
    db.execute(&seed_sql(backend, args.jobs, args.instances, 0))
        .await
        .context("seed jobs")?;
    db.execute(&outcomes_sql(backend))
        .await
        .context("set outcomes")?;
    if backend == Backend::Postgres {
        db.execute("ANALYZE jobs").await?;
    } else {
        db.execute("ANALYZE").await?;
    }
    let seed_seconds = t.elapsed().as_secs_f64();
    eprintln!(
        "{}: {} jobs seeded in {seed_seconds:.0} s",
        backend.name(),
        args.jobs
    );

    let mut settings =
        dbs_archiver::config::Settings::load_from(None, Vec::<(String, String)>::new())?;
    settings.database.url = db.url.clone();
    settings.api.tokens = vec![dbs_archiver::config::ApiToken {
        token: secrecy::SecretString::from(TOKEN),
        role: dbs_archiver::config::Role::Admin,
    }];
    let state = dbs_archiver::api::ApiState::new(store.clone(), &settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(dbs_archiver::api::serve(state, listener, stop.clone()));
    let s = Session::start(base).await?;

    let probe = args.instances / 2 + 1;
    let views = [
        ("newest first".to_string(), "/ui/jobs".to_string()),
        ("state=failed".into(), "/ui/jobs?state=failed".into()),
        ("state=queued".into(), "/ui/jobs?state=queued".into()),
        (
            "one instance".into(),
            format!("/ui/jobs?region={REGION}&instance=rm-b{probe}"),
        ),
        (
            "search instance prefix".into(),
            format!("/ui/jobs?q=rm-b{probe}"),
        ),
        (
            "search task id".into(),
            format!("/ui/jobs?q=dt-{}", args.jobs / 2),
        ),
        (
            "error code".into(),
            "/ui/jobs?error=ConsoleBenchError".into(),
        ),
        (
            "sort by instance".into(),
            "/ui/jobs?sort=instance&dir=asc".into(),
        ),
        ("sort by finish".into(), "/ui/jobs?sort=finished".into()),
        (
            "failed on one instance, oldest first".into(),
            format!("/ui/jobs?state=failed&instance=rm-b{}&dir=asc", probe + 6),
        ),
        ("200 rows".into(), "/ui/jobs?limit=200".into()),
        ("overview page".into(), "/ui/".into()),
    ];
    let mut out = Vec::new();
    for (name, path) in &views {
        s.get(path).await?; // warm
        let mut ms = Vec::new();
        let mut n = 0;
        for _ in 0..args.repeat {
            let (t, body) = s.get(path).await?;
            n = rows(&body);
            ms.push(t);
        }
        let f = figures(name, n, ms);
        eprintln!(
            "  {:<40} {:>4} rows  p50 {:>7.1} ms  p95 {:>7.1} ms",
            f.view, f.rows, f.p50_ms, f.p95_ms
        );
        out.push(f);
    }
    // Walk keyset pages from the newest job, by id and by instance.
    for (name, start) in [
        ("next page (by id)", "/ui/jobs"),
        ("next page (by instance)", "/ui/jobs?sort=instance&dir=asc"),
    ] {
        let mut path = start.to_string();
        let mut ms = Vec::new();
        let mut n = 0;
        for _ in 0..args.pages {
            let (t, body) = s.get(&path).await?;
            n = rows(&body);
            ms.push(t);
            match next_link(&body) {
                Some(next) => path = next,
                None => break,
            }
        }
        let f = figures(name, n, ms);
        eprintln!(
            "  {:<40} {:>4} rows  p50 {:>7.1} ms  p95 {:>7.1} ms",
            f.view, f.rows, f.p50_ms, f.p95_ms
        );
        out.push(f);
    }
    stop.cancel();
    let _ = server.await;
    drop(store);
    db.drop_db().await?;
    Ok(BackendFigures {
        backend: backend.name(),
        jobs: args.jobs,
        seed_seconds,
        views: out,
    })
}

pub async fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    let _ = dbs_archiver::telemetry::metrics_handle();
    let backends = if args.backend.is_empty() {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        args.backend.clone()
    };
    let mut all = Vec::new();
    for b in backends {
        all.push(one_backend(&args, b).await?);
    }
    println!("| backend | view | rows | p50 ms | p95 ms | max ms |");
    println!("|---|---|---:|---:|---:|---:|");
    for b in &all {
        for v in &b.views {
            println!(
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} |",
                b.backend, v.view, v.rows, v.p50_ms, v.p95_ms, v.max_ms
            );
        }
    }
    let dir = std::path::Path::new("target/bench");
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("console.json"),
        serde_json::to_string_pretty(&all)?,
    )?;
    Ok(())
}
