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

use super::crash::{
    assert_all_succeeded_with_one_task_each, spawn_serve, stalling_sim, tail, wait_until_drained,
};
use super::*;
use crate::helpers::db::{both_backends, Backend};
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
            for _ in 0..2 {
                tokio::time::sleep(Duration::from_millis(rand::random_range(500..1500u64))).await;
                hold_sqlite_lock(&db.url).await;
                hits += 1;
                assert_serving(child, dir);
            }
        }
    }
    hits
}

/// SQLite's outage: another connection holds `BEGIN EXCLUSIVE` for 12 s, longer than the
/// store's busy timeout (10 s).
pub(super) async fn hold_sqlite_lock(url: &str) {
    let mut locker = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    sqlx::raw_sql("COMMIT").execute(&mut locker).await.unwrap();
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
    let sim = Simulator::start(stalling_sim(INSTANCES), "127.0.0.1:0")
        .await
        .unwrap();
    let store = db.store.clone();
    let ids = enqueue_pitr_jobs(&store, INSTANCES, JOBS_PER_INSTANCE).await;

    let mut child = spawn_serve(&db.url, &sim, dir.path(), 0);
    let hits = outages(&db, &mut child, dir.path()).await;
    let created_during = sim.stats().total_tasks_created();
    assert!(hits >= 2, "the outage never happened ({hits})");

    // The test's own pool lost its sessions too; a failed read is retried.
    wait_until_drained(
        &store,
        &mut [(0, &mut child)],
        dir.path(),
        Duration::from_secs(150),
    )
    .await;
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

    let stats = sim.stats();
    eprintln!(
        "database outage ({:?}): {hits} outages, {created_during} tasks created meanwhile, \
         {} CreateDownload calls, {} stalled after create, {complaints} warnings/errors logged",
        db.backend,
        stats.calls_of("CreateDownload"),
        stats.count("CreateDownload", "Stalled")
    );
    assert_all_succeeded_with_one_task_each(&store, &sim, &ids).await;
    sim.shutdown().await;
}

both_backends!(database_outages_lose_and_double_nothing);
