//! `dbs-archiver serve [--simulate]`.
//!
//! Plain `serve` runs the worker (and the scheduler and admin API once wired in
//! [`crate::app`]) against the real cloud until SIGTERM or Ctrl-C.
//!
//! `serve --simulate` is the first-run experience: the built-in DBS simulator runs
//! in-process on `127.0.0.1:0` with time scaled so a download takes a few seconds, the
//! client is pointed at it with the simulator's demo key pair, the ten demo instances and
//! a handful of demo requests are seeded (with idempotency keys, so a restart does not
//! duplicate them), and progress is logged until every demo job has finished. Watch it from
//! another terminal with `dbs-archiver jobs watch`. The simulator keeps its tasks in a file
//! next to the SQLite database (`<db>.sim.json`, or `--sim-state FILE`), so a restarted
//! demo still finds the tasks its jobs are following.

use crate::app::App;
use crate::config::Settings;
use crate::model::{DownloadRequest, FormatType, JobSource, JobState, TargetType};
use crate::sim::{SimConfig, Simulator, DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET};
use crate::store::{DynStore, NewJob};
use anyhow::Context;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Run the built-in DBS simulator in-process and point the client at it (demo mode:
    /// seeds demo instances and requests; no cloud account needed).
    #[arg(long)]
    pub simulate: bool,
    /// With --simulate: simulated seconds per real second (a demo task lasts ~67 simulated
    /// minutes, so the default makes it ~7 s).
    #[arg(long, default_value_t = 600.0)]
    pub sim_time_scale: f64,
    /// With --simulate: how many demo requests to seed (0 = none).
    #[arg(long, default_value_t = 12)]
    pub demo_requests: usize,
    /// With --simulate: where the simulator keeps its tasks across restarts (default: next
    /// to the SQLite database file, `<db>.sim.json`; with PostgreSQL or an in-memory
    /// database, nowhere unless given).
    #[arg(long)]
    pub sim_state: Option<std::path::PathBuf>,
}

/// Where `serve --simulate` keeps the simulator's tasks: `--sim-state`, else
/// `<sqlite file>.sim.json`, else nowhere (in memory).
pub fn sim_state_path(
    flag: Option<&std::path::Path>,
    database_url: &str,
) -> Option<std::path::PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    if !database_url.starts_with("sqlite:") {
        return None;
    }
    let db = crate::store::sqlite::database_path(database_url).ok()??;
    let mut name = db.into_os_string();
    name.push(".sim.json");
    Some(name.into())
}

/// Where `serve --simulate` keeps the demo's console token: `<sqlite file>.console-token`.
pub fn demo_token_path(database_url: &str) -> Option<std::path::PathBuf> {
    let db = crate::store::sqlite::database_path(database_url).ok()??;
    let mut name = db.into_os_string();
    name.push(".console-token");
    Some(name.into())
}

/// The demo comes with no `api.tokens`, so nobody could sign in to the console: give it
/// one admin token, kept (created once, mode 0600) in [`demo_token_path`]. The log names
/// the file, never the token. Configured tokens win: then nothing is added.
fn demo_console_token(settings: &mut Settings) -> anyhow::Result<()> {
    if !settings.api.tokens.is_empty() {
        return Ok(());
    }
    let Some(path) = demo_token_path(&settings.database.url) else {
        return Ok(());
    };
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    let token = match kept.trim() {
        t if t.len() >= 32 => t.to_string(),
        _ => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let token = hex::encode(rand::random::<[u8; 24]>());
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut f| writeln!(f, "{token}"))
                .with_context(|| format!("writing the demo console token to {}", path.display()))?;
            token
        }
    };
    settings.api.tokens.push(crate::config::ApiToken {
        token: secrecy::SecretString::from(token),
        role: crate::config::Role::Admin,
    });
    tracing::info!(
        file = %path.display(),
        "demo console: sign in at /ui/ as admin with the token in this file"
    );
    Ok(())
}

pub async fn run(args: ServeArgs, mut settings: Settings) -> anyhow::Result<()> {
    let shutdown = crate::app::shutdown_on_signals();
    if !args.simulate {
        return crate::app::run(settings, shutdown).await;
    }
    if !(args.sim_time_scale.is_finite() && args.sim_time_scale > 0.0) {
        anyhow::bail!("--sim-time-scale: must be a number > 0");
    }
    demo_console_token(&mut settings)?;
    // A fresh seed per run: task ids of a restarted simulator must not repeat the ids of
    // the previous one (which the database may still track). A saved state brings back
    // its own seed and id sequence.
    let mut sim_config = SimConfig::demo()
        .with_mongodb(crate::sim::DEMO_REGION)
        .time_scale(args.sim_time_scale)
        .seed(rand::random());
    if let Some(path) = sim_state_path(args.sim_state.as_deref(), &settings.database.url) {
        tracing::info!(path = %path.display(), "simulator state kept across restarts");
        sim_config = sim_config.state_file(path);
    }
    let fleet = sim_config.fleet.clone();
    let sim = Simulator::start(sim_config, "127.0.0.1:0").await?;
    tracing::info!(endpoint = %sim.endpoint(), "simulated DBS running in-process (demo key pair)");
    let settings = simulate_settings(settings, &sim.endpoint())?;
    let app = App::build(settings).await?;
    seed_demo(&app.store, &fleet, args.demo_requests).await?;
    let store = app.store.clone();
    let reporter_stop = shutdown.child_token();
    let reporter = tokio::spawn(report_progress(store, reporter_stop.clone()));
    let result = app.run(shutdown).await;
    reporter_stop.cancel();
    let _ = reporter.await;
    sim.shutdown().await;
    result
}

/// Point the client at the simulator and make the demo snappy: polls every second or
/// two instead of every 10 s – 5 min, and a short wait for a task a restarted simulator
/// no longer knows.
pub fn simulate_settings(mut s: Settings, endpoint: &str) -> anyhow::Result<Settings> {
    s.dbs.endpoint = endpoint.to_string();
    s.dbs.rds_endpoint = endpoint.to_string();
    s.dbs.access_key_id = DEMO_ACCESS_KEY_ID.to_string();
    s.dbs.access_key_secret = DEMO_ACCESS_KEY_SECRET.to_string().into();
    s.dbs.security_token = String::new().into();
    s.dbs.request_timeout_ms = s.dbs.request_timeout_ms.min(10_000);
    s.tracker.poll_initial_seconds = 1.0;
    s.tracker.poll_max_seconds = 3.0;
    s.tracker.poll_growth = 1.2;
    s.tracker.missing_task_grace_seconds = 60;
    s.worker.idle_poll_ms = s.worker.idle_poll_ms.min(500);
    crate::archive::settings::demo_local_sink(&mut s.sinks, &mut s.archive);
    s.validate()?;
    Ok(s)
}

/// The demo instances (tagged `demo`) and `n` requests spread over them: URL and OSS
/// targets, every format, each with an idempotency key so a restart adds nothing.
pub async fn seed_demo(
    store: &DynStore,
    fleet: &crate::sim::Fleet,
    n: usize,
) -> anyhow::Result<usize> {
    let tags = vec!["demo".to_string()];
    for inst in &fleet.instances {
        store
            .instance_upsert(
                &crate::model::InstanceKey::new(&inst.region, &inst.id),
                Some(&tags),
            )
            .await?;
    }
    let downloadable: Vec<_> = fleet
        .instances
        .iter()
        .map(|i| {
            let sets: Vec<_> = i
                .backup_sets
                .iter()
                .filter(|b| b.is_downloadable())
                .collect();
            (i, sets)
        })
        .filter(|(_, sets)| !sets.is_empty())
        .collect();
    if downloadable.is_empty() {
        return Ok(0);
    }
    let formats = [FormatType::Csv, FormatType::Parquet, FormatType::Sql];
    let mut created = 0;
    for k in 0..n {
        let (inst, sets) = &downloadable[k % downloadable.len()];
        let round = k / downloadable.len();
        let set = sets[round % sets.len()];
        let format = formats[k % formats.len()];
        let mut req = DownloadRequest::example_full(&inst.region, &inst.id, &set.id);
        req.bak_set_size = Some(set.size_bytes);
        if inst.cluster_name.is_some() {
            req.cluster_name = inst.cluster_name.clone();
            req.is_cluster = Some("true".into());
        }
        req.format = format;
        if k % 4 == 3 {
            req.target_type = TargetType::Oss;
            req.target_bucket = Some("demo-archive".into());
            req.target_oss_region = Some(inst.region.clone());
            req.target_path = Some(format!("demo/{}/{}", inst.id, set.id));
        }
        let mut job = NewJob::new(req, JobSource::Cli);
        job.idempotency_key = Some(format!("demo-{}-{}-{}", inst.id, set.id, format));
        if store.job_enqueue(job).await?.created {
            created += 1;
        }
    }
    tracing::info!(
        instances = fleet.instances.len(),
        requests = n,
        new = created,
        "demo seeded (watch with `dbs-archiver jobs watch`)"
    );
    Ok(created)
}

/// Log the queue's counts every few seconds, and once when it drains.
async fn report_progress(store: DynStore, stop: tokio_util::sync::CancellationToken) {
    let mut last = String::new();
    let mut announced_idle = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3)) => {}
        }
        let Ok(counts) = store.job_count_by_state().await else {
            continue;
        };
        let get = |s: JobState| {
            counts
                .iter()
                .find(|(st, _)| *st == s)
                .map(|(_, n)| *n)
                .unwrap_or(0)
        };
        let line = JobState::ALL
            .iter()
            .map(|s| format!("{} {}", get(*s), s))
            .collect::<Vec<_>>()
            .join(", ");
        let busy = get(JobState::Queued) + get(JobState::Submitting) + get(JobState::Running);
        if line != last {
            tracing::info!("jobs: {line}");
            last = line;
        }
        if busy == 0 && !announced_idle {
            tracing::info!(
                "queue idle: every job has finished. Try `dbs-archiver jobs list`, \
                 `dbs-archiver jobs show ID`, or enqueue more with `dbs-archiver enqueue …`"
            );
        }
        announced_idle = busy == 0;
    }
}
