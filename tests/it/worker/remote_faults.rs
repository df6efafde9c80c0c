//! Remote task failures under cloud faults: while the simulator drops 15% of the replies
//! (connection closed, nothing answered), every remote task fails once.
//!
//! - `on_remote_failure = retry`: RetryDownloadTask restarts each task (its reply may be
//!   dropped too), every job succeeds on its one task, no instance is blocked.
//! - `on_remote_failure = fail`: the failed task fails its job and blocks its instance
//!   (with the task id); the other instances keep flowing; once the task is cleared the
//!   re-probe unblocks the instance and the job that waited behind it succeeds.

use super::*;
use crate::helpers::db::both_backends;
use dbs_archiver::sim::{FaultRule, Faults};
use std::collections::HashSet;

const INSTANCES: usize = 4;

fn dropping_sim(clock: &ManualClock) -> SimConfig {
    sim_config(clock, INSTANCES)
        .enforce_one_active(false)
        .faults(Faults {
            drop_connection: FaultRule::probability(0.15),
            ..Faults::default()
        })
}

/// Fail (once) every remote task the simulator runs that has not failed yet.
fn fail_new_tasks(rig: &Rig, failed: &mut HashSet<String>) {
    for t in rig.sim.tasks() {
        if t.retries == 0 && !failed.contains(&t.task_id) && rig.sim.fail_task(&t.task_id).is_ok() {
            failed.insert(t.task_id);
        }
    }
}

async fn remote_failures_are_retried_while_replies_drop(db: TestDb) {
    let rig = Rig::start(db, dropping_sim, test_config()).await;
    let mut ids = Vec::new();
    for k in 0..2 {
        for i in 0..INSTANCES {
            ids.push(rig.enqueue(pitr_request(&instance(i), k)).await.id);
        }
    }
    let mut failed = HashSet::new();
    let mut steps = 0;
    while rig.open_jobs().await > 0 {
        rig.step().await;
        fail_new_tasks(&rig, &mut failed);
        rig.advance(Duration::from_secs(20));
        steps += 1;
        assert!(
            steps < 400,
            "still open: {:?}",
            rig.db.store.job_count_by_state().await
        );
    }
    let stats = rig.sim.stats();
    for id in &ids {
        let j = rig.job(*id).await;
        assert_eq!(j.state, JobState::Succeeded, "job {id}: {:?}", j.last_error);
        assert!(j.remote_retries >= 1, "job {id} was never retried");
    }
    assert_eq!(failed.len(), ids.len(), "every task failed once");
    assert_eq!(
        stats.total_tasks_created(),
        ids.len() as u64,
        "one task per job"
    );
    assert_eq!(stats.max_active_any(), 1);
    assert!(stats.count("RetryDownloadTask", "Success") >= ids.len() as u64);
    for i in 0..INSTANCES {
        assert_eq!(rig.blocked_by(&instance(i)).await, None);
    }
    eprintln!(
        "remote failures, retry ({:?}): {} jobs, {} dropped replies, {} RetryDownloadTask calls",
        rig.db.backend,
        ids.len(),
        stats
            .calls
            .values()
            .filter_map(|m| m.get("Dropped"))
            .sum::<u64>(),
        stats.calls_of("RetryDownloadTask")
    );
}

async fn failed_task_blocks_only_its_instance_while_replies_drop(db: TestDb) {
    let mut config = test_config();
    config.on_remote_failure = RemoteFailurePolicy::Fail;
    let rig = Rig::start(db, dropping_sim, config).await;
    let doomed = rig.enqueue(pitr_request(&instance(0), 0)).await;
    let waiting = rig.enqueue(pitr_request(&instance(0), 1)).await;
    let mut others = Vec::new();
    for k in 0..2 {
        for i in 1..INSTANCES {
            others.push(rig.enqueue(pitr_request(&instance(i), k)).await.id);
        }
    }
    // Submit until the doomed job has its task (a dropped reply is reconciled first).
    let mut task = None;
    for _ in 0..50 {
        rig.step().await;
        task = rig.job(doomed.id).await.remote.task_id;
        if task.is_some() {
            break;
        }
        rig.advance(Duration::from_secs(20));
    }
    let task = task.expect("the doomed job was submitted");
    rig.sim.fail_task(&task).unwrap();
    for _ in 0..200 {
        rig.step().await;
        rig.advance(Duration::from_secs(20));
        let mut done = rig.job(doomed.id).await.state == JobState::Failed;
        for id in &others {
            done &= rig.job(*id).await.state == JobState::Succeeded;
        }
        if done {
            break;
        }
    }
    assert_eq!(rig.job(doomed.id).await.state, JobState::Failed);
    assert_eq!(rig.blocked_by(&instance(0)).await, Some(Some(task.clone())));
    assert_eq!(rig.job(waiting.id).await.state, JobState::Queued);
    for id in &others {
        let j = rig.job(*id).await;
        assert_eq!(j.state, JobState::Succeeded, "job {id}: {:?}", j.last_error);
    }
    assert_eq!(rig.sim.stats().calls_of("RetryDownloadTask"), 0);

    // The operator clears the task in the cloud; the re-probe unblocks the instance.
    assert_eq!(rig.sim.clear_instance(&instance(0)), 1);
    for _ in 0..10 {
        rig.advance(rig.ctx.config.blocked_reprobe + Duration::from_secs(1));
        // A dropped listing leaves the instance blocked until the next re-probe.
        let _ = rig.maintenance.reprobe_once().await;
        if rig.blocked_by(&instance(0)).await.is_none() {
            break;
        }
    }
    assert_eq!(rig.blocked_by(&instance(0)).await, None);
    rig.run_until_idle(Duration::from_secs(20), 300).await;
    assert_eq!(rig.job(waiting.id).await.state, JobState::Succeeded);
    assert_eq!(rig.sim.stats().max_active_any(), 1);
}

both_backends!(
    remote_failures_are_retried_while_replies_drop,
    failed_task_blocks_only_its_instance_while_replies_drop
);
