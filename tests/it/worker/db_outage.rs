//! Database outages: one `serve` child process keeps running while its database goes away
//! again and again, and nothing is lost or submitted twice.
//!
//! - PostgreSQL: every session of the test database (pool connections and the LISTEN
//!   connection alike) is killed with `pg_terminate_backend` every few tens of
//!   milliseconds, so statements fail mid-flight and transactions roll back.
//! - SQLite: another connection holds `BEGIN EXCLUSIVE` for longer than the store's busy
//!   timeout (10 s), so writes fail with `SQLITE_BUSY` (a file has no connection to lose;
//!   a lock it cannot get is SQLite's outage).
//!
//! The simulator also stalls 30% of CreateDownload calls after creating the task, so the
//! outage meets ambiguous submissions. `serve` must ride it out without exiting; afterwards
//! every job has succeeded with exactly one remote task.

use super::crash::{spawn_serve, tail};
use super::*;
use crate::helpers::db::{both_backends, Backend};
use dbs_archiver::sim::{FaultRule, Faults};
use sqlx::Connection;
use std::process::Child;

const JOBS_PER_INSTANCE: usize = 8;
const INSTANCES: usize = 10;

/// Cut the database off from `serve` for a while; returns how many outages happened
/// (PostgreSQL: sessions killed; SQLite: lock episodes).
async fn outages(db: &TestDb, child: &mut Child, dir: &std::path::Path) -> u64 {
    let mut hits = 0u64;
    match db.backend {
        Backend::Postgres => {
            let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let until = std::time::Instant::now() + Duration::from_secs(15);
            while std::time::Instant::now() < until {
                let killed: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
                )
                .fetch_one(&mut admin)
                .await
                .unwrap();
                hits += killed as u64;
                assert_serving(child, dir);
                tokio::time::sleep(Duration::from_millis(rand::random_range(10..80u64))).await;
            }
        }
        Backend::Sqlite => {
            let mut locker = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            for _ in 0..2 {
                tokio::time::sleep(Duration::from_millis(rand::random_range(500..1500u64))).await;
                sqlx::raw_sql("BEGIN EXCLUSIVE")
                    .execute(&mut locker)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_secs(12)).await;
                sqlx::raw_sql("COMMIT").execute(&mut locker).await.unwrap();
                hits += 1;
                assert_serving(child, dir);
            }
        }
    }
    hits
}

fn assert_serving(child: &mut Child, dir: &std::path::Path) {
    if let Ok(Some(status)) = child.try_wait() {
        panic!(
            "serve exited during the outage ({status}):\n{}",
            tail(dir, 0)
        );
    }
}

async fn database_outages_lose_and_double_nothing(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(
        SimConfig::demo()
            .fleet(Default::default())
            .with_instances(REGION, "rm-w", INSTANCES)
            .durations(short_durations())
            .time_scale(40.0) // about 2 s per task
            // A second submission shows up as a second task instead of being refused.
            .enforce_one_active(false)
            .stall(Duration::from_millis(1500))
            .faults(Faults {
                timeout_after_create: FaultRule::probability(0.3).for_actions(&["CreateDownload"]),
                ..Faults::default()
            }),
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let store = db.store.clone();
    let mut ids = Vec::new();
    for k in 0..JOBS_PER_INSTANCE {
        for i in 0..INSTANCES {
            let job = store
                .job_enqueue(NewJob::new(pitr_request(&instance(i), k), JobSource::Api))
                .await
                .unwrap()
                .job;
            ids.push(job.id);
        }
    }

    let mut child = spawn_serve(&db.url, &sim, dir.path(), 0);
    let hits = outages(&db, &mut child, dir.path()).await;
    let created_during = sim.stats().total_tasks_created();
    assert!(hits >= 2, "the outage never happened ({hits})");

    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    loop {
        // The test's own pool lost its sessions too; a failed read is retried.
        if let Ok(counts) = store.job_count_by_state().await {
            let open: i64 = counts
                .iter()
                .filter(|(s, _)| !s.is_terminal())
                .map(|(_, c)| *c)
                .sum();
            if open == 0 {
                break;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("jobs still open: {counts:?}\n{}", tail(dir.path(), 0));
            }
        }
        assert_serving(&mut child, dir.path());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("serve-0.log")).unwrap_or_default();
    let complaints: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    for line in complaints.iter().take(5) {
        eprintln!("  serve: {line}");
    }
    let complaints = complaints.len();

    let mut tasks = Vec::new();
    for id in &ids {
        let j = store.job_get(*id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Succeeded, "job {id}: {:?}", j.last_error);
        tasks.push(j.remote.task_id.expect("task id"));
    }
    tasks.sort();
    tasks.dedup();
    let stats = sim.stats();
    eprintln!(
        "database outage ({:?}): {hits} outages, {created_during} tasks created meanwhile, \
         {} CreateDownload calls, {} stalled after create, {complaints} warnings/errors logged",
        db.backend,
        stats.calls_of("CreateDownload"),
        stats.count("CreateDownload", "Stalled")
    );
    assert_eq!(tasks.len(), ids.len(), "one distinct task per job");
    assert_eq!(
        stats.total_tasks_created(),
        ids.len() as u64,
        "exactly one task per job (no double submission)"
    );
    assert_eq!(
        stats.max_active_any(),
        1,
        "two active tasks on one instance"
    );
    sim.shutdown().await;
}

both_backends!(database_outages_lose_and_double_nothing);
