//! The soak: `serve` for a given time against the simulator with random cloud faults,
//! SIGKILLs, database outages and poison SQL rows, then a check, from the simulator's own
//! task table, that every valid job finished once and nothing valid was lost.
//!
//! ```text
//! SOAK_SECONDS=1800 SOAK_BACKEND=postgres \
//!   cargo test --test it worker::soak -- --ignored --nocapture
//! ```
//!
//! `SOAK_BACKEND` is `postgres` (two nodes on a private cluster that is crash-restarted),
//! `sqlite` (one node; outages are an exclusive lock held past the busy timeout) or `both`
//! (default); `SOAK_SECONDS` defaults to 120 per backend. docs/reliability.md has the
//! figures of the last long run.

use super::crash::{serve_command, sigterm_and_wait, tail};
use super::db_outage::hold_sqlite_lock;
use super::private_pg::PrivatePg;
use super::*;
use dbs_archiver::sim::{FaultRule, Faults};
use sqlx::Connection;
use std::collections::{BTreeMap, HashMap};
use std::process::Child;

const INSTANCES: usize = 20;
const POISON_INSTANCES: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq)]
enum SoakBackend {
    Postgres,
    Sqlite,
}

/// Every cloud fault at once, at rates a bad day might bring.
fn faulty_sim() -> SimConfig {
    SimConfig::demo()
        .fleet(Default::default())
        .with_instances(REGION, "rm-w", INSTANCES)
        .with_instances(REGION, "rm-p", POISON_INSTANCES)
        .durations(short_durations())
        .time_scale(40.0)
        .enforce_one_active(false)
        .failure_probability(0.02)
        .stall(Duration::from_millis(1500))
        .faults(Faults {
            timeout_after_create: FaultRule::probability(0.1).for_actions(&["CreateDownload"]),
            drop_connection: FaultRule::probability(0.02),
            throttle: FaultRule::probability(0.03),
            throttle_time_left_ms: 300,
            unavailable: FaultRule::probability(0.02),
            internal_error: FaultRule::probability(0.01),
            ..Faults::default()
        })
}

/// A distinct, valid request: its target path names it, so the simulator's task table
/// says which job each task belongs to.
fn soak_request(k: usize) -> DownloadRequest {
    let mut r = pitr_request(&instance(k % INSTANCES), k % 600);
    r.target_path = Some(format!("soak/{k}"));
    r
}

/// Rows no entry point would accept, inserted with plain SQL as a hostile client might.
/// The database refuses more of them as constraints are added; an accepted one must not
/// stop the queue. `{i}` is a poison instance.
fn poison_rows(backend: SoakBackend, i: &str) -> Vec<String> {
    let cols = "INSERT INTO jobs (region, instance, bak_set_type, bak_set_id, format, \
                target_type";
    let ok = format!("'{REGION}', '{i}', 'full', '1', 'CSV', 'URL'");
    let far_future = match backend {
        SoakBackend::Postgres => "'infinity'",
        SoakBackend::Sqlite => "9000000000000000000",
    };
    vec![
        format!("{cols}, state) VALUES ({ok}, 'running')"),
        format!("{cols}, state, remote_task_id) VALUES ({ok}, 'submitting', 'dbstask-x')"),
        format!("{cols}) VALUES ('{REGION}', '{i}', 'full', '1', 'XLS', 'URL')"),
        format!("{cols}) VALUES ('{REGION}', '{i}', 'full', NULL, 'CSV', 'URL')"),
        format!("{cols}) VALUES ('{REGION}', '{i}', 'pitr', NULL, 'CSV', 'URL')"),
        format!("{cols}) VALUES ('{REGION}', '{i}', 'full', '1', 'CSV', 'OSS')"),
        format!("{cols}) VALUES (NULL, '{i}', 'full', '1', 'CSV', 'URL')"),
        format!("{cols}) VALUES ('', '', 'full', '1', 'CSV', 'URL')"),
        format!("{cols}) VALUES ('{REGION}', '../{i}', 'weird', '1', 'CSV', 'URL')"),
        format!("{cols}, priority) VALUES ({ok}, 99999)"),
        format!("{cols}, max_attempts) VALUES ({ok}, -5)"),
        format!("{cols}, attempts, max_attempts) VALUES ({ok}, 1000, 1)"),
        format!("{cols}, run_at) VALUES ({ok}, {far_future})"),
        format!("{cols}, lease_owner) VALUES ({ok}, 'nobody')"),
        format!(
            "{cols}, target_bucket, target_oss_region, target_path) VALUES \
             ('{REGION}', '{i}', 'full', '1', 'CSV', 'OSS', 'b', '{REGION}', '../../etc')"
        ),
    ]
}

#[derive(Debug, Default)]
struct Figures {
    seconds: u64,
    nodes: usize,
    valid_jobs: usize,
    succeeded: usize,
    failed: usize,
    kills: usize,
    db_outages: usize,
    poison_tried: usize,
    poison_accepted: usize,
    drain_seconds: f64,
}

async fn insert_poison(url: &str, backend: SoakBackend, sql: &str) -> bool {
    match backend {
        SoakBackend::Postgres => match sqlx::PgConnection::connect(url).await {
            Ok(mut c) => sqlx::raw_sql(sql).execute(&mut c).await.is_ok(),
            Err(_) => false,
        },
        SoakBackend::Sqlite => match sqlx::SqliteConnection::connect(url).await {
            Ok(mut c) => sqlx::raw_sql(sql).execute(&mut c).await.is_ok(),
            Err(_) => false,
        },
    }
}

/// A database outage: PostgreSQL crash-restarted, or SQLite locked past the busy timeout.
async fn outage(backend: SoakBackend, pg: Option<&PrivatePg>, url: &str) {
    match backend {
        SoakBackend::Postgres => {
            let pg = pg.expect("private cluster");
            pg.crash_restart(Duration::from_millis(rand::random_range(500..5000u64)))
                .await;
        }
        SoakBackend::Sqlite => hold_sqlite_lock(url).await,
    }
}

async fn soak(backend: SoakBackend, seconds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let pg = match backend {
        SoakBackend::Postgres => Some(PrivatePg::start().expect("private PostgreSQL cluster")),
        SoakBackend::Sqlite => None,
    };
    let url = match &pg {
        Some(pg) => pg.url(),
        None => format!("sqlite://{}", dir.path().join("soak.db").display()),
    };
    let sim = Simulator::start(faulty_sim(), "127.0.0.1:0").await.unwrap();
    let store = dbs_archiver::store::connect(&url, 2).await.expect("store");
    store.migrate().await.expect("migrate");
    let nodes = if backend == SoakBackend::Postgres {
        2
    } else {
        1
    };
    let mut logs = 0usize;
    let mut spawn = || {
        logs += 1;
        let n = logs - 1;
        let child = serve_command(&url, &sim, dir.path(), n)
            .spawn()
            .expect("spawn serve");
        (n, child)
    };
    let mut running: Vec<(usize, Child)> = (0..nodes).map(|_| spawn()).collect();

    let mut f = Figures {
        seconds,
        nodes,
        ..Figures::default()
    };
    let mut valid: Vec<i64> = Vec::new();
    let started = std::time::Instant::now();
    let mut next_chaos = started + Duration::from_secs(rand::random_range(10..25u64));
    let mut next_poison = started + Duration::from_secs(5);
    let mut k = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        // About two valid jobs a second; the store may be down, so failures are retried.
        for _ in 0..2 {
            let req = soak_request(k);
            match store.job_enqueue(NewJob::new(req, JobSource::Api)).await {
                Ok(e) => {
                    valid.push(e.job.id);
                    k += 1;
                }
                Err(e) => eprintln!("soak: enqueue retried later ({e})"),
            }
        }
        for (n, child) in running.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("serve {n} exited ({status}):\n{}", tail(dir.path(), *n));
            }
        }
        let now = std::time::Instant::now();
        if now >= next_poison {
            let rows = poison_rows(backend, &format!("rm-p{:04}", rand::random_range(1..=4)));
            let sql = &rows[rand::random_range(0..rows.len())];
            f.poison_tried += 1;
            if insert_poison(&url, backend, sql).await {
                f.poison_accepted += 1;
                eprintln!("soak: poison row accepted: {sql}");
            }
            next_poison = now + Duration::from_secs(rand::random_range(3..10u64));
        }
        if now >= next_chaos {
            if rand::random_bool(0.6) {
                let victim = rand::random_range(0..running.len());
                let (n, mut child) = running.swap_remove(victim);
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                eprintln!("soak: SIGKILL serve {n}");
                tokio::time::sleep(Duration::from_millis(rand::random_range(0..2000u64))).await;
                running.push(spawn());
                f.kills += 1;
            } else {
                eprintln!("soak: database outage");
                outage(backend, pg.as_ref(), &url).await;
                f.db_outages += 1;
            }
            next_chaos =
                std::time::Instant::now() + Duration::from_secs(rand::random_range(10..30u64));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Chaos over: the valid jobs must all finish (faults stay on).
    let drain_started = std::time::Instant::now();
    let mut waiting: Vec<(usize, &mut Child)> = running.iter_mut().map(|(n, c)| (*n, c)).collect();
    wait_for_valid(&store, &valid, &mut waiting, dir.path()).await;
    f.drain_seconds = drain_started.elapsed().as_secs_f64();
    for (n, child) in running.iter_mut() {
        let status = sigterm_and_wait(child, dir.path(), *n);
        assert!(status.success(), "serve {n} exit: {status}");
    }

    // From the simulator's own task table: one task per valid job (its target path).
    let mut tasks_per_path: HashMap<String, usize> = HashMap::new();
    for t in sim.tasks() {
        if let Some(p) = t.target_path {
            *tasks_per_path.entry(p).or_default() += 1;
        }
    }
    let mut by_state: BTreeMap<&'static str, usize> = BTreeMap::new();
    for id in &valid {
        let j = store.job_get(*id).await.unwrap().expect("valid job kept");
        assert!(j.state.is_terminal(), "job {id} still {:?}", j.state);
        *by_state.entry(j.state.as_str()).or_default() += 1;
        let path = j.request.target_path.clone().unwrap();
        let tasks = tasks_per_path.get(&path).copied().unwrap_or(0);
        match j.state {
            JobState::Succeeded => assert_eq!(tasks, 1, "job {id} ({path}): {tasks} tasks"),
            _ => assert!(tasks <= 1, "job {id} ({path}): {tasks} tasks"),
        }
    }
    let stats = sim.stats();
    f.valid_jobs = valid.len();
    f.succeeded = by_state.get("succeeded").copied().unwrap_or(0);
    f.failed = by_state.get("failed").copied().unwrap_or(0);
    let throttled: u64 = stats
        .calls
        .values()
        .flat_map(|m| m.iter())
        .filter(|(c, _)| c.starts_with("Throttling"))
        .map(|(_, n)| *n)
        .sum();
    let dropped: u64 = stats.calls.values().filter_map(|m| m.get("Dropped")).sum();
    eprintln!(
        "SOAK {backend:?}: {}s, {} node(s); {} valid jobs: {} succeeded, {} failed, 0 lost, \
         0 submitted twice; max active tasks on one instance {}; {} SIGKILLs, {} database \
         outages; poison rows {} tried, {} accepted; cloud: {} calls, {} CreateDownload ({} \
         stalled), {} throttled, {} dropped, {} RetryDownloadTask; drain after the chaos {:.0} s",
        f.seconds,
        f.nodes,
        f.valid_jobs,
        f.succeeded,
        f.failed,
        stats.max_active_any(),
        f.kills,
        f.db_outages,
        f.poison_tried,
        f.poison_accepted,
        stats.total_calls(),
        stats.calls_of("CreateDownload"),
        stats.count("CreateDownload", "Stalled"),
        throttled,
        dropped,
        stats.calls_of("RetryDownloadTask"),
        f.drain_seconds
    );
    assert!(
        stats.max_active_any() <= 1,
        "two active tasks on one instance"
    );
    assert_eq!(f.succeeded + f.failed, f.valid_jobs);
    sim.shutdown().await;
}

/// Wait until every valid job is terminal (the poison ones may stay queued forever).
async fn wait_for_valid(
    store: &dbs_archiver::store::DynStore,
    valid: &[i64],
    children: &mut [(usize, &mut Child)],
    dir: &std::path::Path,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let mut open: Vec<i64> = valid.to_vec();
    while !open.is_empty() {
        let mut still = Vec::new();
        for id in &open {
            match store.job_get(*id).await {
                Ok(Some(j)) if j.state.is_terminal() => {}
                _ => still.push(*id),
            }
        }
        open = still;
        if open.is_empty() {
            break;
        }
        for (n, child) in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("serve {n} exited ({status}):\n{}", tail(dir, *n));
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} valid jobs still open after the drain window, e.g. {:?}",
            open.len(),
            &open[..open.len().min(5)]
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the soak: run on purpose, see the module docs"]
async fn soak_serve_under_every_fault() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let which = std::env::var("SOAK_BACKEND").unwrap_or_else(|_| "both".into());
    if which == "postgres" || which == "both" {
        soak(SoakBackend::Postgres, seconds).await;
    }
    if which == "sqlite" || which == "both" {
        soak(SoakBackend::Sqlite, seconds).await;
    }
}
