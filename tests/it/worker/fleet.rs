//! 200 jobs over 20 instances: all succeed, one task per job, never two at once on an
//! instance. The simulator is told *not* to enforce the one-task rule, so the only thing
//! keeping an instance to one active task is the worker (and the store's unique index).

use super::*;
use crate::helpers::db::both_backends;

async fn two_hundred_jobs_over_twenty_instances(db: TestDb) {
    let rig = Rig::start(
        db,
        |c| sim_config(c, 20).enforce_one_active(false),
        test_config(),
    )
    .await;
    let mut ids = Vec::new();
    for k in 0..10 {
        for i in 0..20 {
            let inst = instance(i);
            // Mix both kinds: three full backups (URL target) and seven PITR (OSS).
            let req = if k < 3 {
                full_request(&inst, k)
            } else {
                pitr_request(&inst, k)
            };
            ids.push(rig.enqueue(req).await.id);
        }
    }
    rig.run_until_idle(Duration::from_secs(20), 5_000).await;

    for id in &ids {
        let j = rig.job(*id).await;
        assert_eq!(j.state, JobState::Succeeded, "job {id}: {:?}", j.last_error);
        assert!(j.remote.task_id.is_some());
        if j.request.target_type == TargetType::Url {
            assert!(j.remote.download_url.is_some(), "job {id} has no URL");
        }
    }
    let stats = rig.sim.stats();
    assert_eq!(stats.total_tasks_created(), 200, "{stats:?}");
    for i in 0..20 {
        assert_eq!(stats.tasks_created.get(&instance(i)).copied(), Some(10));
    }
    assert_eq!(
        stats.max_active_any(),
        1,
        "an instance had two active tasks"
    );
    // Distinct task per job.
    let mut tasks: Vec<String> = Vec::new();
    for id in &ids {
        tasks.push(rig.job(*id).await.remote.task_id.unwrap());
    }
    tasks.sort();
    tasks.dedup();
    assert_eq!(tasks.len(), 200);
}

both_backends!(two_hundred_jobs_over_twenty_instances);
