//! The shared end-to-end run and the helpers to read what it produced.

use axum::body::Bytes;
use axum::routing::post;
use dbs_archiver::model::JobState;
use dbs_archiver::sim::{FaultRule, Faults, SimConfig, SimKey, Simulator};
use serde_json::{json, Value};
use sqlx::{Column, Connection, Row};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

pub const REGION: &str = "cn-hangzhou";
/// Secrets the run uses; they must never leave the places they are meant for.
pub const AK_ID: &str = "LTAI5tTelemetryTestKey";
pub const AK_SECRET: &str = "TelemetrySecret-7f3a9c1e5b2d";
pub const API_TOKEN: &str = "telemetry-api-token-4d8e2b6a9c";
/// Jobs enqueued through the API that must succeed.
pub const API_JOBS: usize = 4;
pub const SCHEDULE: &str = "every-second";

/// One sample of the exposition: name, labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Everything the run left behind, for the tests to inspect.
#[derive(Debug)]
pub struct Run {
    /// `/metrics` right after start-up, before any work (one instance registered).
    pub fresh: Vec<Sample>,
    /// `/metrics` after the queue went quiet.
    pub scrape: String,
    pub samples: Vec<Sample>,
    /// Jobs per state and per source in the database at scrape time.
    pub db_states: BTreeMap<String, i64>,
    pub db_sources: BTreeMap<String, i64>,
    /// `sum(export_data_size)` of succeeded jobs.
    pub db_exported_bytes: i64,
    /// Every row of every table, rendered as text (after the child stopped).
    pub db_dump: String,
    /// The child's stderr (log_level = debug) and the CLI child's output.
    pub logs: String,
    /// Bodies of error responses the API gave during the run.
    pub api_errors: Vec<String>,
    /// OTLP/HTTP JSON bodies received.
    pub otlp: Vec<String>,
    pub exit_ok: bool,
}

impl Run {
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.samples.iter().map(|s| s.name.clone()).collect()
    }

    /// Sum of the samples of `name` whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        value_of(&self.samples, name, labels)
    }
}

/// Sum of the `samples` of `name` whose labels include `labels` (None: no such series).
pub fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

static RUN: OnceCell<Run> = OnceCell::const_new();

/// The end-to-end run, made once per test binary.
pub async fn run() -> &'static Run {
    RUN.get_or_init(run_once).await
}

/// Parse the Prometheus text format (enough of it for our own exposition).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.trim_end_matches('}');
                let mut labels = BTreeMap::new();
                for pair in split_labels(body) {
                    let (k, v) = pair.split_once('=').expect("label k=v");
                    labels.insert(k.to_string(), v.trim_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or(f64::NAN),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// Split `a="x",b="y,z"` on commas outside quotes.
fn split_labels(body: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in body.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    parts
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process with the test's environment minus anything that would change the
/// settings (DBS_ARCHIVER*, RUST_LOG, OTEL_*).
fn command(args: &[&str], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dbs-archiver"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("DBS_ARCHIVER") || k == "RUST_LOG" || k.starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    // Export batches quickly so spans arrive while the test watches.
    cmd.env("OTEL_BSP_SCHEDULE_DELAY", "100");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn terminate(child: &mut Child) -> bool {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A receiver for OTLP/HTTP JSON traces on 127.0.0.1:0.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let store = store.clone();
            async move {
                store
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                ([("content-type", "application/json")], "{}")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), got)
}

/// `GET /metrics` of the server at `base`.
async fn scrape(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn run_once() -> Run {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("obs.db");
    let db_url = format!("sqlite://{}", db_path.display());
    let sim_config = SimConfig::demo()
        .fleet(Default::default())
        .keys(vec![SimKey::access_key(AK_ID, AK_SECRET)])
        .with_instances(REGION, "rm-obs", 6)
        .instant()
        .faults(Faults {
            // Two throttled CreateDownload replies: throttling metrics with real values.
            throttle: FaultRule::next(2).for_actions(&["CreateDownload"]),
            throttle_time_left_ms: 100,
            ..Default::default()
        });
    let fleet = sim_config.fleet.clone();
    let sim_backup = |instance: &str| -> String {
        fleet
            .instances
            .iter()
            .find(|i| i.id == instance)
            .and_then(|i| i.backup_sets.iter().find(|b| b.is_downloadable()))
            .map(|b| b.id.clone())
            .expect("a downloadable backup set")
    };
    let sim = Simulator::start(sim_config, "127.0.0.1:0").await.unwrap();
    let (otlp_endpoint, otlp) = otlp_receiver().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("obs.toml");
    std::fs::write(
        &config,
        format!("[[api.tokens]]\ntoken = \"{API_TOKEN}\"\nrole = \"admin\"\n"),
    )
    .unwrap();
    let env: Vec<(String, String)> = [
        ("DATABASE__URL", db_url.clone()),
        ("DBS__ENDPOINT", sim.endpoint()),
        ("DBS__RDS_ENDPOINT", sim.endpoint()),
        ("DBS__ACCESS_KEY_ID", AK_ID.to_string()),
        ("DBS__ACCESS_KEY_SECRET", AK_SECRET.to_string()),
        ("DBS__CALLS_PER_SECOND_PER_REGION", "1000".into()),
        ("DBS__BURST", "1000".into()),
        ("API__LISTEN", format!("127.0.0.1:{port}")),
        ("WORKER__IDLE_POLL_MS", "50".into()),
        ("WORKER__SHUTDOWN_GRACE_SECONDS", "2".into()),
        ("WORKER__RETRY__BASE_SECONDS", "0.1".into()),
        ("TRACKER__POLL_INITIAL_SECONDS", "0.1".into()),
        ("TRACKER__POLL_MAX_SECONDS", "0.3".into()),
        ("SCHEDULER__TICK_SECONDS", "0.2".into()),
        ("TELEMETRY__LOG_LEVEL", "debug".into()),
        ("TELEMETRY__LOG_FORMAT", "json".into()),
        ("TELEMETRY__OTLP_ENDPOINT", otlp_endpoint),
        ("TELEMETRY__COLLECT_INTERVAL_SECONDS", "0.2".into()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("DBS_ARCHIVER__{k}"), v))
    .collect();
    // One instance registered before start: the collector's first round puts its region's
    // cloud series at 0, which the fresh scrape must show.
    {
        let store = dbs_archiver::store::connect(&db_url, 2).await.unwrap();
        store.migrate().await.unwrap();
        store
            .instance_upsert(
                &dbs_archiver::model::InstanceKey::new(REGION, "rm-obs0001"),
                None,
            )
            .await
            .unwrap();
    }
    let stderr_path = dir.path().join("serve.stderr");
    let mut child = command(&["--config", config.to_str().unwrap(), "serve"], &env)
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap()))
        .spawn()
        .expect("start serve");

    let http = reqwest::Client::new();
    let auth = format!("Bearer {API_TOKEN}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not become ready: {}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The collector's first round sets its id baseline; enqueue after it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fresh = scrape(&http, &base).await;

    let mut api_errors = Vec::new();
    for i in 0..API_JOBS {
        let inst = format!("rm-obs{:04}", i + 1);
        let backup = sim_backup(&inst);
        let r = http
            .post(format!("{base}/v1/downloads"))
            .header("authorization", &auth)
            .json(
                &json!({"region": REGION, "instance": inst, "bak_set_type": "full",
                "bak_set_id": backup, "format": "CSV", "target_type": "URL"}),
            )
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "enqueue: {}",
            r.text().await.unwrap()
        );
    }
    // One job for later, cancelled through the API.
    let later = http
        .post(format!("{base}/v1/downloads"))
        .header("authorization", &auth)
        .json(
            &json!({"region": REGION, "instance": "rm-obs0005", "bak_set_type": "full",
            "bak_set_id": sim_backup("rm-obs0005"), "format": "SQL", "target_type": "URL",
            "run_at": "2999-01-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    let later: Value = later.json().await.unwrap();
    let id = later["id"].as_i64().expect("job id");
    let r = http
        .post(format!("{base}/v1/downloads/{id}/cancel"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // Errors the API gives: a wrong token and a bad request.
    for (token, body) in [
        ("Bearer wrong-token-000000000000", json!({})),
        (
            auth.as_str(),
            json!({"region": REGION, "instance": "rm-obs0001", "bak_set_type": "full", "format": "CSV", "target_type": "URL"}),
        ),
    ] {
        let r = http
            .post(format!("{base}/v1/downloads"))
            .header("authorization", token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error());
        api_errors.push(r.text().await.unwrap());
    }
    // A plain SQL INSERT (the documented interface) and a CLI enqueue from another process.
    {
        let mut conn = sqlx::SqliteConnection::connect(&db_url).await.unwrap();
        sqlx::query(
            "INSERT INTO jobs (region, instance, bak_set_type, bak_set_id, format, target_type) \
             VALUES ($1, 'rm-obs0006', 'full', $2, 'Parquet', 'URL')",
        )
        .bind(REGION)
        .bind(sim_backup("rm-obs0006"))
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let cli = command(
        &[
            "--config",
            config.to_str().unwrap(),
            "enqueue",
            "--region",
            REGION,
            "--instance",
            "rm-obs0002",
            "--bak-set-id",
            &sim_backup("rm-obs0002"),
            "--format",
            "Parquet",
        ],
        &env,
    )
    .output()
    .expect("cli enqueue");
    assert!(
        cli.status.success(),
        "cli enqueue: {}",
        String::from_utf8_lossy(&cli.stderr)
    );
    // A schedule that fires every second on rm-obs0003, paused after its first job.
    let mut spec = serde_json::to_value(dbs_archiver::scheduler::ScheduleSpec::example(
        SCHEDULE,
        REGION,
        "rm-obs0003",
    ))
    .unwrap();
    spec["cron"] = json!("* * * * * *");
    let r = http
        .post(format!("{base}/v1/schedules"))
        .header("authorization", &auth)
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "schedule: {}",
        r.text().await.unwrap()
    );

    // Wait for a schedule job, pause the schedule, then for the queue to go quiet.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut paused = false;
    let (states, sources) = loop {
        let (states, sources) = db_counts(&db_url).await;
        if !paused && sources.get("schedule").copied().unwrap_or(0) > 0 {
            let r = http
                .post(format!("{base}/v1/schedules/{SCHEDULE}/pause"))
                .header("authorization", &auth)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            paused = true;
        }
        let busy: i64 = ["queued", "submitting", "running"]
            .iter()
            .map(|s| states.get(*s).copied().unwrap_or(0))
            .sum();
        if paused && busy == 0 && states.get("succeeded").copied().unwrap_or(0) >= API_JOBS as i64 {
            break (states, sources);
        }
        assert!(
            Instant::now() < deadline,
            "queue did not drain: {states:?} {sources:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The collector's next read: its rounds are spaced by at least 100 times the last
    // read's duration, so on a loaded machine that is more than a fixed wait. Scrape until
    // the `dbs_archiver_jobs` gauges show the quiet database (bounded; if they never do,
    // the evidence test's comparison fails on the last scrape).
    let deadline = Instant::now() + Duration::from_secs(15);
    let scrape = loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let text = scrape(&http, &base).await;
        let samples = parse_exposition(&text);
        let gauges_match = ["queued", "submitting", "running", "succeeded", "failed"]
            .iter()
            .all(|state| {
                value_of(&samples, "dbs_archiver_jobs", &[("state", state)]).unwrap_or(0.0)
                    == states.get(*state).copied().unwrap_or(0) as f64
            });
        if gauges_match || Instant::now() > deadline {
            break text;
        }
    };
    let exported: i64 = {
        let mut conn = sqlx::SqliteConnection::connect(&db_url).await.unwrap();
        let (n,): (i64,) = sqlx::query_as(
            "SELECT coalesce(sum(export_data_size), 0) FROM jobs WHERE state = 'succeeded'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        n
    };
    // Let the last trace batch go out, then stop (SIGTERM flushes the rest).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let exit_ok = terminate(&mut child);
    let mut logs = std::fs::read_to_string(&stderr_path).unwrap();
    logs.push_str(&String::from_utf8_lossy(&cli.stdout));
    logs.push_str(&String::from_utf8_lossy(&cli.stderr));
    let db_dump = dump_sqlite(&db_url).await;
    sim.shutdown().await;
    let otlp = otlp.lock().unwrap().clone();
    Run {
        fresh: parse_exposition(&fresh),
        samples: parse_exposition(&scrape),
        scrape,
        db_states: states,
        db_sources: sources,
        db_exported_bytes: exported,
        db_dump,
        logs,
        api_errors,
        otlp,
        exit_ok,
    }
}

async fn db_counts(url: &str) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM jobs GROUP BY state")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let sources: Vec<(String, i64)> =
        sqlx::query_as("SELECT source, count(*) FROM jobs GROUP BY source")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    conn.close().await.unwrap();
    let mut st: BTreeMap<String, i64> = states.into_iter().collect();
    for s in JobState::ALL {
        st.entry(s.as_str().to_string()).or_insert(0);
    }
    (st, sources.into_iter().collect())
}

/// Every row of every table as text.
async fn dump_sqlite(url: &str) -> String {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let mut out = String::new();
    for (table,) in tables {
        let rows = sqlx::query(&format!("SELECT * FROM \"{table}\""))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        for row in rows {
            out.push_str(&table);
            for (i, col) in row.columns().iter().enumerate() {
                let v = row
                    .try_get::<Option<String>, _>(i)
                    .map(|v| v.unwrap_or_default())
                    .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}")))
                    .or_else(|_| row.try_get::<Option<f64>, _>(i).map(|v| format!("{v:?}")))
                    .or_else(|_| {
                        row.try_get::<Option<Vec<u8>>, _>(i)
                            .map(|v| String::from_utf8_lossy(&v.unwrap_or_default()).into_owned())
                    })
                    .unwrap_or_else(|e| panic!("{table}.{}: {e}", col.name()));
                out.push_str(&format!(" {}={v}", col.name()));
            }
            out.push('\n');
        }
    }
    conn.close().await.unwrap();
    out
}
