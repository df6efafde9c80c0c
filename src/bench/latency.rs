//! Dispatch latency: a running, idle service; jobs enqueued one at a time (each on an
//! instance of its own, at random gaps) by a plain SQL `INSERT` from another connection or
//! by `POST /v1/downloads`; latency = enqueue start → the simulator receives the job's
//! CreateDownload (its request log's arrival time, millisecond resolution).

use super::common::{self, Backend, TempDb, REGION};
use dbs_archiver::api::{self, ApiState};
use dbs_archiver::app::App;
use dbs_archiver::sim::{SimConfig, Simulator};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    Sql,
    Api,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyResult {
    pub backend: Backend,
    pub path: Path,
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Jobs whose CreateDownload never arrived within the wait.
    pub missing: usize,
}

const TOKEN: &str = "bench-admin-token-0123456789abcdef";

pub async fn round(
    backend: Backend,
    database_url: &str,
    path: Path,
    samples: u32,
) -> anyhow::Result<LatencyResult> {
    let label = match path {
        Path::Sql => "lat_sql",
        Path::Api => "lat_api",
    };
    let db = TempDb::create(backend, database_url, label).await?;
    let result = async {
        let sim = Simulator::start(
            common::sim_fleet(SimConfig::demo(), samples).seed(rand::random()),
            "127.0.0.1:0",
        )
        .await?;
        // Default worker settings (idle poll 1 s, notify wake-ups); only the client-side
        // rate limit is lifted so the tracker's polls never delay a CreateDownload.
        let mut s = common::settings(&db.url, &sim.endpoint())?;
        s.dbs.calls_per_second_per_region = 1e9;
        s.dbs.burst = 1_000_000_000;
        s.api.tokens = vec![serde_json::from_value(serde_json::json!({
            "token": TOKEN, "role": "admin"
        }))?];
        s.validate()?;
        let app = App::build(s.clone()).await?;
        let stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api_url = format!("http://{}", listener.local_addr()?);
        let api_task = tokio::spawn(api::serve(
            ApiState::new(app.store.clone(), &s),
            listener,
            stop.clone(),
        ));
        let running = tokio::spawn(app.run(stop.clone()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let http = reqwest::Client::new();
        // The SQL client connects once, as an application that enqueues by INSERT does.
        let mut sql = db.client().await?;
        let mut sent: HashMap<String, f64> = HashMap::new();
        for k in 1..=samples {
            let at = common::unix_ms_f64();
            match path {
                Path::Sql => {
                    sql.execute(&common::insert_one_sql(k, label)).await?;
                }
                Path::Api => {
                    let body = serde_json::json!({
                        "region": REGION, "instance": format!("rm-b{k}"),
                        "bak_set_type": "full",
                        "bak_set_id": (1_460_000_000u64 + u64::from(k) * 100 + 1).to_string(),
                        "format": "CSV", "target_type": "OSS", "target_bucket": "bench",
                        "target_oss_region": REGION, "target_path": format!("bench/api/{k}"),
                    });
                    let r = http
                        .post(format!("{api_url}/v1/downloads"))
                        .bearer_auth(TOKEN)
                        .json(&body)
                        .send()
                        .await?;
                    anyhow::ensure!(
                        r.status().is_success(),
                        "POST /v1/downloads: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    );
                }
            }
            sent.insert(format!("rm-b{k}"), at);
            let gap = 20 + rand::random::<u64>() % 60;
            tokio::time::sleep(Duration::from_millis(gap)).await;
        }
        // Wait for the stragglers (SQLite's idle poll is 1 s).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while sim.stats().count("CreateDownload", "Success") < u64::from(samples)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sql.close().await?;
        stop.cancel();
        let _ = running.await;
        let _ = api_task.await;
        let mut lat: Vec<f64> = Vec::new();
        for e in sim.request_log() {
            if e.action != "CreateDownload" || e.code != "Success" {
                continue;
            }
            if let Some(at) = e.instance.as_ref().and_then(|i| sent.remove(i)) {
                lat.push((e.at_ms as f64 - at).max(0.0));
            }
        }
        sim.shutdown().await;
        lat.sort_by(|a, b| a.total_cmp(b));
        Ok::<_, anyhow::Error>(LatencyResult {
            backend,
            path,
            samples: lat.len(),
            p50_ms: common::pct(&lat, 0.50),
            p99_ms: common::pct(&lat, 0.99),
            max_ms: lat.last().copied().unwrap_or(f64::NAN),
            missing: sent.len(),
        })
    }
    .await;
    db.drop_db().await?;
    result
}
