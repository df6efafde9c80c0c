//! A PostgreSQL restart with two nodes running: two `serve` processes share a private
//! cluster (never the shared server, see [`PrivatePg`]) while it is crash-stopped and
//! restarted three times mid-drain, with CreateDownloads stalling after creating their
//! task. Both nodes ride it out without exiting; afterwards every job succeeded with
//! exactly one remote task and no instance ever had two active tasks.

use super::crash::{
    assert_all_succeeded_with_one_task_each, sigterm_and_wait, spawn_serve, stalling_sim,
    wait_until_drained,
};
use super::private_pg::PrivatePg;
use super::*;

const RESTARTS: usize = 3;
const JOBS_PER_INSTANCE: usize = 8;
const INSTANCES: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_with_two_nodes_loses_and_doubles_nothing() {
    let Some(pg) = PrivatePg::start_or_skip("postgres_restart_with_two_nodes") else {
        return;
    };
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(stalling_sim(INSTANCES), "127.0.0.1:0")
        .await
        .unwrap();
    let store = dbs_archiver::store::connect(&url, 2).await.expect("store");
    store.migrate().await.expect("migrate");
    let ids = enqueue_pitr_jobs(&store, INSTANCES, JOBS_PER_INSTANCE).await;

    let mut a = spawn_serve(&url, &sim, dir.path(), 0);
    let mut b = spawn_serve(&url, &sim, dir.path(), 1);
    for r in 0..RESTARTS {
        tokio::time::sleep(Duration::from_millis(rand::random_range(800..2000u64))).await;
        for (n, child) in [(0, &mut a), (1, &mut b)] {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("node {n} exited before restart {r} ({status})");
            }
        }
        pg.crash_restart(Duration::from_millis(rand::random_range(500..3000u64)))
            .await;
    }
    wait_until_drained(
        &store,
        &mut [(0, &mut a), (1, &mut b)],
        dir.path(),
        Duration::from_secs(150),
    )
    .await;
    for (n, child) in [(0, &mut a), (1, &mut b)] {
        let status = sigterm_and_wait(child, dir.path(), n);
        assert!(status.success(), "node {n} exit: {status}");
    }
    let stats = sim.stats();
    eprintln!(
        "postgres restart: {RESTARTS} restarts, two nodes, {} CreateDownload calls, {} stalled",
        stats.calls_of("CreateDownload"),
        stats.count("CreateDownload", "Stalled")
    );
    assert_all_succeeded_with_one_task_each(&store, &sim, &ids).await;
    sim.shutdown().await;
}
