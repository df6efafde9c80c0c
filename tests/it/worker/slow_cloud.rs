//! A slow cloud: every call takes 2–5 s (simulator latency) while `serve` runs 16
//! submissions at once under a tight rate limit (2 calls/s, burst 2). The limiter, not the
//! slowness, sets the pace: in no three-second window does the simulator see more calls
//! than the rate plus the burst allow; the calls per finished download stay within the
//! budget; every job succeeds with exactly one remote task.

use super::crash::{
    assert_all_succeeded_with_one_task_each, serve_command, sigterm_and_wait, wait_until_drained,
};
use super::*;
use crate::helpers::db::both_backends;
use dbs_archiver::sim::Faults;

const INSTANCES: usize = 6;
const JOBS_PER_INSTANCE: usize = 2;
const RATE: u64 = 2;
/// Calls one finished download may cost here: create, a few polls, a reconcile.
const CALLS_PER_JOB_BUDGET: f64 = 8.0;

fn slow_sim() -> SimConfig {
    SimConfig::demo()
        .fleet(Default::default())
        .with_instances(REGION, "rm-w", INSTANCES)
        .durations(short_durations())
        .time_scale(40.0)
        .enforce_one_active(false)
        .faults(Faults {
            latency_ms: 2000,
            latency_jitter_ms: 3000,
            ..Faults::default()
        })
}

async fn slow_cloud_keeps_the_rate_and_the_budget(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(slow_sim(), "127.0.0.1:0").await.unwrap();
    let store = db.store.clone();
    let ids = enqueue_pitr_jobs(&store, INSTANCES, JOBS_PER_INSTANCE).await;
    let mut child = serve_command(&db.url, &sim, dir.path(), 0)
        .env("DBS_ARCHIVER__DBS__REQUEST_TIMEOUT_MS", "8000")
        .env(
            "DBS_ARCHIVER__DBS__CALLS_PER_SECOND_PER_REGION",
            RATE.to_string(),
        )
        .env("DBS_ARCHIVER__DBS__BURST", RATE.to_string())
        .env("DBS_ARCHIVER__WORKER__LEASE_SECONDS", "30")
        .spawn()
        .expect("spawn serve");
    wait_until_drained(
        &store,
        &mut [(0, &mut child)],
        dir.path(),
        Duration::from_secs(110),
    )
    .await;
    let status = sigterm_and_wait(&mut child, dir.path(), 0);
    assert!(status.success(), "serve exit: {status}");

    let log = sim.request_log();
    let stats = sim.stats();
    assert_eq!(
        log.len() as u64,
        stats.total_calls(),
        "the log holds every call"
    );
    // The most calls that arrived within any 3 s: at most the burst plus 3 s at the rate
    // (one more for a token that lands on the window's edge).
    let mut worst = 0;
    for (i, e) in log.iter().enumerate() {
        let in_window = log[i..]
            .iter()
            .take_while(|o| o.at_ms < e.at_ms + 3000)
            .count();
        worst = worst.max(in_window);
    }
    let per_job = stats.total_calls() as f64 / ids.len() as f64;
    eprintln!(
        "slow cloud ({:?}): {} calls for {} jobs ({per_job:.1} per job), at most {worst} in \
         3 s (rate {RATE}/s, burst {RATE})",
        db.backend,
        stats.total_calls(),
        ids.len()
    );
    assert!(
        worst as u64 <= RATE + 3 * RATE + 1,
        "{worst} calls in 3 s at {RATE}/s"
    );
    assert!(
        per_job <= CALLS_PER_JOB_BUDGET,
        "{per_job:.1} calls per job"
    );
    assert_all_succeeded_with_one_task_each(&store, &sim, &ids).await;
    sim.shutdown().await;
}

both_backends!(slow_cloud_keeps_the_rate_and_the_budget);
