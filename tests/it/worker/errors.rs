//! One test per error-class path of the dispatcher and the tracker (issue 4), each against
//! the simulator over TCP, on both backends.

use super::*;
use crate::helpers::db::both_backends;
use dbs_archiver::sim::{FaultRule, Faults};

async fn events_text(rig: &Rig, id: i64) -> String {
    rig.db
        .store
        .event_list(id)
        .await
        .unwrap()
        .iter()
        .map(|e| format!("{:?}->{}: {}", e.from_state, e.to_state, e.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `JobAlreadyExist`: the download was already submitted (by an earlier run): the job
/// adopts that task instead of creating a second one.
async fn already_submitted_adopts_the_existing_task(db: TestDb) {
    let rig = Rig::start(db, |c| sim_config(c, 2), test_config()).await;
    let req = full_request(&instance(0), 0);
    let earlier = rig.ctx.client.create_download(&req).await.expect("create");
    rig.advance(Duration::from_secs(120)); // it finishes
    let job = rig.enqueue(req).await;
    rig.run_until_idle(Duration::from_secs(20), 200).await;

    let j = rig.job(job.id).await;
    assert_eq!(j.state, JobState::Succeeded, "{:?}", j.last_error);
    assert_eq!(
        j.remote.task_id.as_deref(),
        Some(earlier.data.task_id.as_str())
    );
    assert_eq!(j.attempts, 0);
    let stats = rig.sim.stats();
    assert_eq!(stats.total_tasks_created(), 1, "no second task");
    assert_eq!(
        stats.count("CreateDownload", "DBS.DownloadTask.JobAlreadyExist"),
        1
    );
    assert!(events_text(&rig, job.id).await.contains("adopted"));
}

/// A failed task that is not ours holds one instance: that instance is blocked (task id,
/// reason), its jobs wait without spending attempts, the others finish. After the operator
/// clears the task in the cloud, the re-probe unblocks it and its jobs run.
async fn foreign_failed_task_blocks_only_its_instance(db: TestDb) {
    let rig = Rig::start(db, |c| sim_config(c, 4), test_config()).await;
    let foreign = rig
        .ctx
        .client
        .create_download(&full_request(&instance(0), 2))
        .await
        .expect("create");
    let foreign_id = foreign.data.task_id.clone();
    rig.sim.fail_task(&foreign_id).expect("fail task");

    let blocked_jobs = [
        rig.enqueue(pitr_request(&instance(0), 1)).await.id,
        rig.enqueue(pitr_request(&instance(0), 2)).await.id,
    ];
    let mut others = Vec::new();
    for i in 1..4 {
        others.push(rig.enqueue(pitr_request(&instance(i), 1)).await.id);
    }
    for _ in 0..40 {
        rig.step().await;
        rig.advance(Duration::from_secs(20));
    }
    for id in &others {
        assert_eq!(rig.job(*id).await.state, JobState::Succeeded);
    }
    assert_eq!(
        rig.blocked_by(&instance(0)).await,
        Some(Some(foreign_id.clone()))
    );
    for id in blocked_jobs {
        let j = rig.job(id).await;
        assert_eq!(j.state, JobState::Queued);
        assert_eq!(
            j.attempts, 0,
            "waiting on a busy instance spends no attempt"
        );
    }
    // One busy reply, then the block kept us from hammering the instance.
    assert_eq!(
        rig.sim.stats().busy_rejections.get(&instance(0)).copied(),
        Some(1)
    );

    // Re-probe while the failed task still holds it: stays blocked.
    rig.advance(Duration::from_secs(601));
    let r = rig.maintenance.reprobe_once().await.unwrap();
    assert_eq!((r.probed, r.still_blocked, r.unblocked), (1, 1, 0));
    // The operator clears it in the cloud; the next re-probe unblocks.
    assert_eq!(rig.sim.clear_instance(&instance(0)), 1);
    rig.advance(Duration::from_secs(601));
    let r = rig.maintenance.reprobe_once().await.unwrap();
    assert_eq!(r.unblocked, 1);
    assert_eq!(rig.blocked_by(&instance(0)).await, None);
    rig.run_until_idle(Duration::from_secs(20), 400).await;
    for id in blocked_jobs {
        assert_eq!(rig.job(id).await.state, JobState::Succeeded);
    }
}

/// Throttling: the job goes back without spending an attempt, at the hinted time, and the
/// region is slowed down for every caller of this process.
async fn throttling_spends_no_attempt_and_slows_the_region(db: TestDb) {
    let rig = Rig::start(
        db,
        |c| {
            sim_config(c, 3).faults(Faults {
                throttle: FaultRule::next(3).for_actions(&["CreateDownload"]),
                throttle_time_left_ms: 1500,
                ..Faults::default()
            })
        },
        test_config(),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(rig.enqueue(pitr_request(&instance(i), 0)).await.id);
    }
    let now = rig.clock.now();
    let r = rig.dispatcher.run_once().await.unwrap();
    assert_eq!((r.claimed, r.requeued), (3, 3));
    for id in &ids {
        let j = rig.job(*id).await;
        assert_eq!(j.state, JobState::Queued);
        assert_eq!(j.attempts, 0, "throttling spends no attempt");
        assert!(j
            .last_error
            .as_ref()
            .unwrap()
            .code
            .starts_with("Throttling"));
        assert!(
            j.run_at >= now + chrono::Duration::milliseconds(1400),
            "hint honoured"
        );
    }
    // The region is paused: the next calls wait for the hint (a lower call rate).
    let left = rig.ctx.gate.remaining(REGION);
    assert!(left > Duration::from_millis(500), "{left:?}");
    rig.advance(Duration::from_secs(2));
    let t0 = std::time::Instant::now();
    let r = rig.dispatcher.run_once().await.unwrap();
    assert_eq!(r.running, 3);
    assert!(
        t0.elapsed() + Duration::from_millis(50) >= left,
        "calls went out before the pause ended"
    );
    rig.run_until_idle(Duration::from_secs(20), 200).await;
    for id in &ids {
        let j = rig.job(*id).await;
        assert_eq!(j.state, JobState::Succeeded);
        assert_eq!(j.attempts, 0);
    }
    assert_eq!(rig.sim.stats().calls_of("CreateDownload"), 6);
}

/// A permanent error fails the job with the cloud's code, message and RequestId.
async fn permanent_error_fails_with_the_clouds_code(db: TestDb) {
    let rig = Rig::start(
        db,
        |c| {
            let mut s = sim_config(c, 1);
            s.fleet.forbidden_buckets = vec!["forbidden".into()];
            s
        },
        test_config(),
    )
    .await;
    let mut req = pitr_request(&instance(0), 0);
    req.target_bucket = Some("forbidden".into());
    let job = rig.enqueue(req).await;
    let r = rig.dispatcher.run_once().await.unwrap();
    assert_eq!(r.failed, 1);
    let j = rig.job(job.id).await;
    assert_eq!(j.state, JobState::Failed);
    let e = j.last_error.expect("error recorded");
    assert_eq!(e.code, "DBS.DownloadTask.OssForbid");
    assert!(e.message.contains("OSS is forbidden"), "{}", e.message);
    assert!(e.request_id.is_some(), "RequestId kept");
}

/// Transient errors spend attempts with backoff; when they run out the job fails.
async fn transient_errors_retry_then_fail(db: TestDb) {
    let rig = Rig::start(
        db,
        |c| {
            sim_config(c, 2).faults(Faults {
                unavailable: FaultRule::next(3).for_actions(&["CreateDownload"]),
                ..Faults::default()
            })
        },
        test_config(),
    )
    .await;
    let mut one_shot = NewJob::new(pitr_request(&instance(1), 0), JobSource::Api);
    one_shot.max_attempts = 1;
    let one_shot = rig.db.store.job_enqueue(one_shot).await.unwrap().job;
    rig.dispatcher.run_once().await.unwrap();
    let j = rig.job(one_shot.id).await;
    assert_eq!(j.state, JobState::Failed);
    assert_eq!(j.last_error.unwrap().code, "ServiceUnavailable");

    let job = rig.enqueue(pitr_request(&instance(0), 0)).await;
    rig.run_until_idle(Duration::from_secs(30), 400).await;
    let j = rig.job(job.id).await;
    assert_eq!(j.state, JobState::Succeeded);
    assert_eq!(j.attempts, 2, "two 503s, two attempts spent");
}

/// The call timed out after the cloud created the task: the job reconciles (lists the
/// instance's tasks) and adopts it — no second task.
async fn ambiguous_create_is_reconciled_not_resubmitted(db: TestDb) {
    let rig = Rig::start(
        db,
        |c| {
            sim_config(c, 1)
                .stall(Duration::from_millis(2500))
                .faults(Faults {
                    timeout_after_create: FaultRule::next(1),
                    ..Faults::default()
                })
        },
        test_config(),
    )
    .await;
    let job = rig.enqueue(pitr_request(&instance(0), 0)).await;
    let r = rig.dispatcher.run_once().await.unwrap();
    // Reconciled at once, while the job still holds its instance.
    assert_eq!((r.running, r.adopted), (1, 1));
    let j = rig.job(job.id).await;
    assert_eq!(j.state, JobState::Running);
    assert!(!j.needs_reconcile);
    assert_eq!(j.attempts, 0, "it worked: no attempt spent");
    assert_eq!(rig.sim.stats().total_tasks_created(), 1);
    rig.run_until_idle(Duration::from_secs(20), 200).await;
    let j = rig.job(job.id).await;
    assert_eq!(j.state, JobState::Succeeded);
    assert_eq!(rig.sim.stats().total_tasks_created(), 1);
    assert_eq!(
        rig.sim.stats().calls_of("CreateDownload"),
        1,
        "never resubmitted"
    );
    assert!(events_text(&rig, job.id).await.contains("reconciled"));
}

/// A worker died while `submitting` after its call reached the cloud: the lease expires,
/// the rescue requeues the job for reconciliation, and the next worker adopts the task.
async fn rescued_submission_is_reconciled(db: TestDb) {
    let rig = Rig::start(db, |c| sim_config(c, 1), test_config()).await;
    let req = pitr_request(&instance(0), 0);
    let job = rig.enqueue(req.clone()).await;
    let claimed = rig
        .db
        .store
        .job_claim(&dbs_archiver::store::ClaimParams {
            owner: "dead-worker".into(),
            limit: 1,
            lease: Duration::from_secs(60),
            now: rig.clock.now(),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let sent = rig.ctx.client.create_download(&req).await.unwrap(); // then it died
    assert_eq!(
        rig.dispatcher.run_once().await.unwrap().claimed,
        0,
        "still leased"
    );
    rig.advance(Duration::from_secs(61));
    assert_eq!(rig.maintenance.rescue_once().await.unwrap().rescued, 1);
    assert!(rig.job(job.id).await.needs_reconcile);
    rig.run_until_idle(Duration::from_secs(20), 200).await;
    let j = rig.job(job.id).await;
    assert_eq!(j.state, JobState::Succeeded);
    assert_eq!(j.remote.task_id, Some(sent.data.task_id));
    assert_eq!(rig.sim.stats().total_tasks_created(), 1);
}

/// A remote task fails; `on_remote_failure = retry` calls RetryDownloadTask and the same
/// task finishes.
async fn remote_failure_is_retried(db: TestDb) {
    let rig = Rig::start(db, |c| sim_config(c, 1), test_config()).await;
    let job = rig.enqueue(pitr_request(&instance(0), 0)).await;
    rig.step().await;
    let task = rig.job(job.id).await.remote.task_id.expect("submitted");
    rig.sim.fail_task(&task).unwrap();
    rig.run_until_idle(Duration::from_secs(20), 200).await;
    let j = rig.job(job.id).await;
    assert_eq!(j.state, JobState::Succeeded, "{:?}", j.last_error);
    assert_eq!(j.remote_retries, 1);
    assert_eq!(j.remote.task_id.as_deref(), Some(task.as_str()));
    let stats = rig.sim.stats();
    assert_eq!(stats.count("RetryDownloadTask", "Success"), 1);
    assert_eq!(stats.total_tasks_created(), 1);
    assert_eq!(rig.blocked_by(&instance(0)).await, None);
}

/// With `on_remote_failure = fail`, a failed remote task fails the job and blocks the
/// instance by that task; other instances keep flowing.
async fn remote_failure_fails_and_blocks(db: TestDb) {
    let mut config = test_config();
    config.on_remote_failure = RemoteFailurePolicy::Fail;
    let rig = Rig::start(db, |c| sim_config(c, 2), config).await;
    let job = rig.enqueue(pitr_request(&instance(0), 0)).await;
    let waiting = rig.enqueue(pitr_request(&instance(0), 1)).await;
    let other = rig.enqueue(pitr_request(&instance(1), 0)).await;
    rig.step().await;
    let task = rig.job(job.id).await.remote.task_id.expect("submitted");
    rig.sim.fail_task(&task).unwrap();
    for _ in 0..30 {
        rig.step().await;
        rig.advance(Duration::from_secs(20));
    }
    let j = rig.job(job.id).await;
    assert_eq!(j.state, JobState::Failed);
    assert_eq!(j.last_error.unwrap().code, "DBS.DownloadTask.Failed");
    assert_eq!(rig.blocked_by(&instance(0)).await, Some(Some(task)));
    assert_eq!(rig.job(waiting.id).await.state, JobState::Queued);
    assert_eq!(rig.job(other.id).await.state, JobState::Succeeded);
    assert_eq!(rig.sim.stats().calls_of("RetryDownloadTask"), 0);
}

/// URL targets: the download URL and its expiry are recorded on success.
async fn url_target_records_the_url(db: TestDb) {
    let rig = Rig::start(db, |c| sim_config(c, 1), test_config()).await;
    let job = rig.enqueue(full_request(&instance(0), 0)).await;
    rig.run_until_idle(Duration::from_secs(20), 200).await;
    let j = rig.job(job.id).await;
    assert_eq!(j.state, JobState::Succeeded);
    let url = j.remote.download_url.expect("URL recorded");
    assert!(url.starts_with("http"), "{url}");
    assert!(j.remote.download_url_expires_at.expect("expiry") > rig.clock.now());
    assert_eq!(
        rig.sim
            .stats()
            .count("DescribeDownloadBackupSetStorageInfo", "Success"),
        1
    );
    let inst = rig
        .db
        .store
        .instance_get(&InstanceKey::new(REGION, instance(0)))
        .await
        .unwrap()
        .expect("instance row");
    assert!(inst.last_success_at.is_some());
}

both_backends!(
    already_submitted_adopts_the_existing_task,
    foreign_failed_task_blocks_only_its_instance,
    throttling_spends_no_attempt_and_slows_the_region,
    permanent_error_fails_with_the_clouds_code,
    transient_errors_retry_then_fail,
    ambiguous_create_is_reconciled_not_resubmitted,
    rescued_submission_is_reconciled,
    remote_failure_is_retried,
    remote_failure_fails_and_blocks,
    url_target_records_the_url,
);
