//! SIGTERM in the middle of a busy drain: `serve` is stopped gracefully three times while
//! 80 jobs over 10 instances are being submitted and tracked (every call slowed down, some
//! CreateDownloads stalling after creating their task, a one-second grace period so
//! in-flight calls are really cut off). After each stop the process exited cleanly and no
//! job holds a lease or sits in `submitting`; after the restarts every job succeeded with
//! exactly one remote task.

use super::crash::{
    assert_all_succeeded_with_one_task_each, serve_command, sigterm_and_wait, stalling_sim,
    wait_until_drained,
};
use super::*;
use crate::helpers::db::both_backends;
use dbs_archiver::sim::Faults;

const STOPS: usize = 3;
const JOBS_PER_INSTANCE: usize = 8;
const INSTANCES: usize = 10;

/// Slow every call (300 ms) on top of the stalling creates, so a drain is always busy.
fn busy_sim() -> SimConfig {
    let sim = stalling_sim(INSTANCES);
    let faults = Faults {
        latency_ms: 300,
        ..sim.faults.clone()
    };
    sim.faults(faults)
}

async fn sigterm_mid_drain_leaves_no_lease_and_doubles_nothing(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(busy_sim(), "127.0.0.1:0").await.unwrap();
    let store = db.store.clone();
    let ids = enqueue_pitr_jobs(&store, INSTANCES, JOBS_PER_INSTANCE).await;
    let spawn = |n: usize| {
        serve_command(&db.url, &sim, dir.path(), n)
            .env("DBS_ARCHIVER__WORKER__SHUTDOWN_GRACE_SECONDS", "1")
            .spawn()
            .expect("spawn serve")
    };

    for n in 0..STOPS {
        let created = sim.stats().total_tasks_created();
        let mut child = spawn(n);
        // Busy: wait until this process has created a few tasks, then a little more.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while sim.stats().total_tasks_created() < created + 5 {
            assert!(
                std::time::Instant::now() < deadline,
                "serve {n} never got busy"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..700u64))).await;
        let status = sigterm_and_wait(&mut child, dir.path(), n);
        assert!(status.success(), "serve {n} exit: {status}");
        let leased = db
            .query_i64("SELECT count(*) FROM jobs WHERE lease_owner IS NOT NULL")
            .await;
        let submitting = db
            .query_i64("SELECT count(*) FROM jobs WHERE state = 'submitting'")
            .await;
        assert_eq!(leased, 0, "stop {n}: leases left behind");
        assert_eq!(submitting, 0, "stop {n}: jobs left in submitting");
    }
    let mut child = spawn(STOPS);
    wait_until_drained(
        &store,
        &mut [(STOPS, &mut child)],
        dir.path(),
        Duration::from_secs(150),
    )
    .await;
    let status = sigterm_and_wait(&mut child, dir.path(), STOPS);
    assert!(status.success(), "final serve exit: {status}");
    let stats = sim.stats();
    eprintln!(
        "sigterm drain ({:?}): {STOPS} stops, {} CreateDownload calls, {} stalled",
        db.backend,
        stats.calls_of("CreateDownload"),
        stats.count("CreateDownload", "Stalled")
    );
    assert_all_succeeded_with_one_task_each(&store, &sim, &ids).await;
    sim.shutdown().await;
}

both_backends!(sigterm_mid_drain_leaves_no_lease_and_doubles_nothing);
