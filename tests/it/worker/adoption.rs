//! Adopting a point-in-time task must not depend on the cloud echoing
//! `DownloadPointInTime` as `BackupSetTime` (dbs-api.md §3.2 leaves it open): with a
//! simulator that reports the base backup's time instead, a lost reply is still
//! reconciled to the one plausible task; where several could be the job's, the instance
//! is blocked with a reason and nothing is resubmitted. A MongoDB sharded cluster's job
//! carries `ClusterName` through its whole lifecycle. Both backends.

use super::*;
use crate::helpers::db::both_backends;
use dbs_archiver::sim::{FaultRule, Faults, Quirks, DEMO_MONGO_CLUSTER_NAME, DEMO_MONGO_SHARDED};

/// One instance, point-in-time tasks that report their base backup's time.
fn no_echo(clock: &ManualClock, lose_first_reply: bool) -> SimConfig {
    let mut c = sim_config(clock, 1)
        .quirks(Quirks {
            pitr_reports_base_backup_time: true,
            ..Quirks::default()
        })
        .stall(Duration::from_millis(2500));
    if lose_first_reply {
        c = c.faults(Faults {
            timeout_after_create: FaultRule::next(1),
            ..Faults::default()
        });
    }
    c
}

async fn pitr_without_echo_is_adopted_after_a_lost_reply(db: TestDb) {
    let rig = Rig::start(db, |c| no_echo(c, true), test_config()).await;
    let req = pitr_request(&instance(0), 0);
    let job = rig.enqueue(req.clone()).await;
    let r = rig.dispatcher.run_once().await.unwrap();
    assert_eq!((r.running, r.adopted), (1, 1), "{r:?}");
    let j = rig.job(job.id).await;
    let task = rig.sim.tasks()[0].clone();
    assert_ne!(
        task.backup_set_time_ms,
        req.download_point_in_time.unwrap(),
        "the simulator does not echo the point in time"
    );
    assert_eq!(j.remote.task_id.as_deref(), Some(task.task_id.as_str()));
    rig.run_until_idle(Duration::from_secs(20), 200).await;
    assert_eq!(rig.job(job.id).await.state, JobState::Succeeded);
    let stats = rig.sim.stats();
    assert_eq!(stats.calls_of("CreateDownload"), 1, "never resubmitted");
    assert_eq!(stats.total_tasks_created(), 1);
}

/// Two finished point-in-time tasks like `mine` (same format and target, points one and two
/// minutes earlier), then the next CreateDownload creates its task but loses the reply.
async fn others_then_lost_reply(rig: &Rig, mine: &DownloadRequest) {
    for k in 1..=2 {
        let mut other = mine.clone();
        other.download_point_in_time = Some(mine.download_point_in_time.unwrap() - k * 60_000);
        rig.ctx
            .client
            .create_download(&other)
            .await
            .expect("create");
        rig.advance(Duration::from_secs(120)); // it finishes
    }
    rig.sim
        .set_faults(Faults {
            timeout_after_create: FaultRule::next(1),
            ..Faults::default()
        })
        .unwrap();
}

/// Two earlier point-in-time tasks of the same format and target (other points in time),
/// then the job's own create loses its reply: three tasks could be the job's. The instance
/// is blocked until an operator looks; nothing is submitted again.
async fn pitr_ambiguity_blocks_the_instance(db: TestDb) {
    let rig = Rig::start(db, |c| no_echo(c, false), test_config()).await;
    let mine = pitr_request(&instance(0), 0);
    let job = rig.enqueue(mine.clone()).await;
    others_then_lost_reply(&rig, &mine).await;
    let r = rig.dispatcher.run_once().await.unwrap();
    assert_eq!((r.running, r.blocked), (0, 1), "{r:?}");
    let j = rig.job(job.id).await;
    assert_eq!(j.state, JobState::Queued);
    assert_eq!(
        j.last_error.as_ref().map(|e| e.code.as_str()),
        Some("Reconcile.Ambiguous")
    );
    let inst = rig
        .db
        .store
        .instance_get(&InstanceKey::new(REGION, instance(0)))
        .await
        .unwrap()
        .unwrap();
    assert!(inst.blocked);
    assert_eq!(inst.blocked_until, None, "until an operator looks");
    let reason = inst.blocked_reason.unwrap_or_default();
    assert!(reason.contains("cannot tell which remote task"), "{reason}");
    for t in rig.sim.tasks() {
        assert!(reason.contains(&t.task_id), "{reason} lacks {}", t.task_id);
    }

    // Time passes, the worker keeps running: still nothing resubmitted or adopted.
    for _ in 0..5 {
        rig.advance(Duration::from_secs(600));
        rig.step().await;
        rig.maintenance.reprobe_once().await.unwrap();
    }
    assert_eq!(rig.job(job.id).await.state, JobState::Queued);
    assert_eq!(rig.sim.stats().calls_of("CreateDownload"), 3);
    assert_eq!(rig.sim.stats().total_tasks_created(), 3);
}

/// The same history with a cloud that echoes the point in time: the exact task is
/// adopted, however many others look alike.
async fn pitr_echo_picks_the_exact_task(db: TestDb) {
    let rig = Rig::start(db, |c| sim_config(c, 1), test_config()).await;
    let mine = pitr_request(&instance(0), 0);
    let job = rig.enqueue(mine.clone()).await;
    others_then_lost_reply(&rig, &mine).await;
    let r = rig.dispatcher.run_once().await.unwrap();
    assert_eq!((r.running, r.adopted), (1, 1), "{r:?}");
    let newest = rig.sim.tasks()[0].clone();
    assert_eq!(
        newest.backup_set_time_ms,
        mine.download_point_in_time.unwrap()
    );
    assert_eq!(
        rig.job(job.id).await.remote.task_id.as_deref(),
        Some(newest.task_id.as_str())
    );
}

/// A sharded cluster's job (URL target, so its link is fetched, and one remote failure,
/// so it is retried): the simulator sees `ClusterName` on every call the worker makes.
async fn sharded_cluster_jobs_send_cluster_name_everywhere(db: TestDb) {
    let rig = Rig::start(db, |c| sim_config(c, 1).with_mongodb(REGION), test_config()).await;
    // `with_instances` then `with_mongodb`: the sharded cluster is the third instance.
    let set = 1_460_000_000 + 3 * 100 + 1;
    let mut req = DownloadRequest::example_full(REGION, DEMO_MONGO_SHARDED, &set.to_string());
    req.cluster_name = Some(DEMO_MONGO_CLUSTER_NAME.into());
    req.is_cluster = Some("true".into());
    let job = rig.enqueue(req).await;
    rig.step().await;
    let task = rig.job(job.id).await.remote.task_id.expect("submitted");
    rig.sim.fail_task(&task).unwrap();
    rig.run_until_idle(Duration::from_secs(20), 300).await;
    let j = rig.job(job.id).await;
    assert_eq!(j.state, JobState::Succeeded, "{:?}", j.last_error);
    assert_eq!(j.remote_retries, 1);
    assert!(j.remote.download_url.is_some());

    let log = rig.sim.request_log();
    for action in [
        "CreateDownload",
        "DescribeDownloadTask",
        "RetryDownloadTask",
        "DescribeDownloadBackupSetStorageInfo",
    ] {
        let calls: Vec<_> = log.iter().filter(|e| e.action == action).collect();
        assert!(!calls.is_empty(), "{action} never called");
        assert!(
            calls
                .iter()
                .all(|e| e.cluster_name.as_deref() == Some(DEMO_MONGO_CLUSTER_NAME)),
            "{action} without ClusterName: {calls:?}"
        );
    }
}

both_backends!(
    pitr_without_echo_is_adopted_after_a_lost_reply,
    pitr_ambiguity_blocks_the_instance,
    pitr_echo_picks_the_exact_task,
    sharded_cluster_jobs_send_cluster_name_everywhere,
);
