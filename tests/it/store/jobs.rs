//! Enqueue, idempotency, get, list with pagination, count, cancel, retry, prune, events.

use crate::helpers::db::{both_backends, TestDb};
use chrono::{Duration as ChronoDuration, Utc};
use dbs_archiver::model::{
    DownloadRequest, FormatType, InstanceKey, JobError, JobSource, JobState, RemoteStatus,
    TargetType,
};
use dbs_archiver::store::{ClaimParams, Fence, JobFilter, JobPatch, NewJob, StoreError};
use std::time::Duration;

fn claim_params(owner: &str, limit: u32) -> ClaimParams {
    ClaimParams {
        owner: owner.into(),
        limit,
        lease: Duration::from_secs(60),
        now: Utc::now(),
    }
}

async fn enqueue_round_trips_every_parameter(db: TestDb) {
    let request = DownloadRequest {
        region: "cn-shanghai".into(),
        instance: "dds-abc".into(),
        bak_set_type: dbs_archiver::model::BakSetType::Pitr,
        bak_set_id: None,
        bak_set_size: Some(123_456),
        download_point_in_time: Some(1_661_331_864_000),
        format: FormatType::Parquet,
        target_type: TargetType::Oss,
        target_bucket: Some("archive".into()),
        target_oss_region: Some("cn-shanghai".into()),
        target_path: Some("dds-abc/2024-01-01".into()),
        cluster_name: Some("shard-1".into()),
        is_cluster: Some("true".into()),
        admin_database: Some("admin".into()),
        primary_key_type_only: Some("false".into()),
        use_zstd: Some("true".into()),
        is_physical: Some(false),
        sink: None,
    };
    let mut new = NewJob::new(request.clone(), JobSource::Cli);
    new.priority = 7;
    new.max_attempts = 3;
    let run_at = Utc::now() + ChronoDuration::minutes(5);
    new.run_at = Some(run_at);
    let done = db.store.job_enqueue(new).await.unwrap();
    assert!(done.created);
    let job = db.store.job_get(done.job.id).await.unwrap().unwrap();
    assert_eq!(job, done.job);
    assert_eq!(job.request, request);
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.source, JobSource::Cli);
    assert_eq!(job.priority, 7);
    assert_eq!(job.max_attempts, 3);
    assert_eq!(job.attempts, 0);
    assert_eq!(job.run_at.timestamp_millis(), run_at.timestamp_millis());
    assert!(job.lease_owner.is_none() && job.finished_at.is_none());
    assert!(!job.needs_reconcile);

    let events = db.store.event_list(job.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].from_state, None);
    assert_eq!(events[0].to_state, JobState::Queued);
    assert_eq!(events[0].reason, "enqueued via cli");
}

async fn enqueue_rejects_invalid_request_naming_the_field(db: TestDb) {
    let mut request = DownloadRequest::example_full("cn-hangzhou", "rm-1", "1");
    request.bak_set_id = None;
    let err = db
        .store
        .job_enqueue(NewJob::new(request, JobSource::Api))
        .await
        .unwrap_err();
    match err {
        StoreError::Invalid(v) => assert_eq!(v.field, "bak_set_id"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(db.query_i64("SELECT count(*) FROM jobs").await, 0);
}

async fn same_idempotency_key_returns_the_existing_job(db: TestDb) {
    let mut new = NewJob::new(
        DownloadRequest::example_full("cn-hangzhou", "rm-1", "1"),
        JobSource::Api,
    );
    new.idempotency_key = Some("order-42".into());
    let first = db.store.job_enqueue(new.clone()).await.unwrap();
    assert!(first.created);
    // Even with other parameters, the key wins: same job, no duplicate.
    new.request.instance = "rm-2".into();
    let second = db.store.job_enqueue(new).await.unwrap();
    assert!(!second.created);
    assert_eq!(second.job.id, first.job.id);
    assert_eq!(second.job.request.instance, "rm-1");
    assert_eq!(db.query_i64("SELECT count(*) FROM jobs").await, 1);
}

async fn same_schedule_fire_and_instance_returns_the_existing_job(db: TestDb) {
    let fire = Utc::now();
    let make = |instance: &str| {
        let mut new = NewJob::new(
            DownloadRequest::example_full("cn-hangzhou", instance, "1"),
            JobSource::Schedule,
        );
        new.schedule_id = Some(9);
        new.fire_time = Some(fire);
        new
    };
    let a = db.store.job_enqueue(make("rm-1")).await.unwrap();
    let b = db.store.job_enqueue(make("rm-1")).await.unwrap();
    let c = db.store.job_enqueue(make("rm-2")).await.unwrap();
    assert!(a.created && !b.created && c.created);
    assert_eq!(a.job.id, b.job.id);
    assert_ne!(a.job.id, c.job.id);
    assert_eq!(a.job.schedule_id, Some(9));
    assert_eq!(
        a.job.fire_time.map(|t| t.timestamp_millis()),
        Some(fire.timestamp_millis())
    );
}

async fn list_pages_newest_first_with_filters(db: TestDb) {
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(db.enqueue(&format!("rm-{}", i % 2)).await.id);
    }
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = db
            .store
            .job_list(&JobFilter {
                cursor,
                limit: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.jobs.len() <= 3);
        seen.extend(page.jobs.iter().map(|j| j.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let only = db
        .store
        .job_list(&JobFilter {
            instance: Some(InstanceKey::new("cn-hangzhou", "rm-1")),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only.jobs.len(), 3);
    assert!(only.next_cursor.is_none());
    assert!(only.jobs.iter().all(|j| j.request.instance == "rm-1"));

    db.store
        .job_cancel(ids[0], "not needed")
        .await
        .unwrap()
        .unwrap();
    let cancelled = db
        .store
        .job_list(&JobFilter {
            state: Some(JobState::Cancelled),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        cancelled.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    let none = db
        .store
        .job_list(&JobFilter {
            created_after: Some(Utc::now() + ChronoDuration::hours(1)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.jobs.is_empty());
    let by_schedule = db
        .store
        .job_list(&JobFilter {
            schedule_id: Some(1),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(by_schedule.jobs.is_empty());

    let counts = db.store.job_count_by_state().await.unwrap();
    assert!(counts.contains(&(JobState::Queued, 6)));
    assert!(counts.contains(&(JobState::Cancelled, 1)));
}

async fn cancel_only_queued_jobs(db: TestDb) {
    let a = db.enqueue("rm-1").await;
    let cancelled = db
        .store
        .job_cancel(a.id, "operator")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(cancelled.finished_at.is_some());
    // Cancelling again changes nothing and says what the job is now.
    let again = db
        .store
        .job_cancel(a.id, "operator")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.state, JobState::Cancelled);
    assert!(db.store.job_cancel(999_999, "x").await.unwrap().is_none());

    let b = db.enqueue("rm-2").await;
    let claimed = db.store.job_claim(&claim_params("w1", 1)).await.unwrap();
    assert_eq!(claimed[0].id, b.id);
    let not = db
        .store
        .job_cancel(b.id, "operator")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(not.state, JobState::Submitting);

    let events = db.store.event_list(a.id).await.unwrap();
    let states: Vec<_> = events.iter().map(|e| e.to_state).collect();
    assert_eq!(states, vec![JobState::Queued, JobState::Cancelled]);
    assert_eq!(events[1].reason, "operator");
}

async fn retry_requeues_failed_and_cancelled(db: TestDb) {
    let job = db.enqueue("rm-1").await;
    let claimed = db.store.job_claim(&claim_params("w1", 1)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let fence = Fence {
        id: job.id,
        state: JobState::Submitting,
        owner: Some("w1".into()),
    };
    let failed = db
        .store
        .job_update(
            &fence,
            &JobPatch {
                to: Some(JobState::Failed),
                spend_attempt: true,
                last_error: Some(Some(JobError {
                    code: "InvalidParameter".into(),
                    message: "bad".into(),
                    request_id: Some("req-1".into()),
                })),
                reason: "permanent error".into(),
                request_id: Some("req-1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(failed);
    let now = db.store.job_get(job.id).await.unwrap().unwrap();
    assert_eq!(now.state, JobState::Failed);
    assert!(now.lease_owner.is_none(), "terminal state drops the lease");
    assert!(now.finished_at.is_some());
    assert_eq!(now.attempts, 1);

    let retried = db
        .store
        .job_retry(job.id, "operator retry")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retried.state, JobState::Queued);
    assert_eq!(retried.attempts, 0);
    assert!(retried.finished_at.is_none());
    // A queued job is not retried again (no-op, returns it as is).
    let same = db.store.job_retry(job.id, "again").await.unwrap().unwrap();
    assert_eq!(same.state, JobState::Queued);
    assert!(db.store.job_retry(999_999, "x").await.unwrap().is_none());
    // And it is claimable again.
    let again = db.store.job_claim(&claim_params("w2", 5)).await.unwrap();
    assert_eq!(again.iter().map(|j| j.id).collect::<Vec<_>>(), vec![job.id]);

    let events = db.store.event_list(job.id).await.unwrap();
    let path: Vec<_> = events.iter().map(|e| (e.from_state, e.to_state)).collect();
    assert_eq!(
        path,
        vec![
            (None, JobState::Queued),
            (Some(JobState::Queued), JobState::Submitting),
            (Some(JobState::Submitting), JobState::Failed),
            (Some(JobState::Failed), JobState::Queued),
            (Some(JobState::Queued), JobState::Submitting),
        ]
    );
    assert_eq!(events[2].request_id.as_deref(), Some("req-1"));
}

async fn fenced_update_records_remote_status_and_counters(db: TestDb) {
    let job = db.enqueue("rm-1").await;
    db.store.job_claim(&claim_params("w1", 1)).await.unwrap();
    let poll_at = Utc::now() + ChronoDuration::seconds(10);
    let remote = RemoteStatus {
        task_id: Some("dt-1".into()),
        status: Some("queueing".into()),
        progress: Some("0/3".into()),
        export_data_size: Some(10),
        import_data_size: Some(20),
        backup_set_time: Some(1_700_000_000_000),
        download_url: Some("https://example.invalid/x".into()),
        download_url_expires_at: Some(poll_at),
        progress_anchor_at: Some(poll_at),
        progress_anchor_ppm: Some(125_000),
    };
    let fence = Fence {
        id: job.id,
        state: JobState::Submitting,
        owner: Some("w1".into()),
    };
    assert!(db
        .store
        .job_update(
            &fence,
            &JobPatch {
                to: Some(JobState::Running),
                remote: Some(remote.clone()),
                next_poll_at: Some(poll_at),
                reason: "CreateDownload ok".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap());
    // The old fence no longer holds: nothing changes, and it says so.
    assert!(!db
        .store
        .job_update(
            &fence,
            &JobPatch {
                count_poll: true,
                ..Default::default()
            }
        )
        .await
        .unwrap());
    // Wrong owner: refused.
    let running = Fence {
        id: job.id,
        state: JobState::Running,
        owner: Some("w2".into()),
    };
    assert!(!db
        .store
        .job_update(
            &running,
            &JobPatch {
                count_poll: true,
                ..Default::default()
            }
        )
        .await
        .unwrap());
    // Unowned fence (operator / tracker without a lease): allowed.
    let any = Fence {
        id: job.id,
        state: JobState::Running,
        owner: None,
    };
    assert!(db
        .store
        .job_update(
            &any,
            &JobPatch {
                count_poll: true,
                count_remote_retry: true,
                needs_reconcile: Some(true),
                release_lease: true,
                ..Default::default()
            },
        )
        .await
        .unwrap());
    let now = db.store.job_get(job.id).await.unwrap().unwrap();
    assert_eq!(now.state, JobState::Running);
    let mut expected = remote;
    expected.download_url_expires_at = now.remote.download_url_expires_at;
    expected.progress_anchor_at = now.remote.progress_anchor_at;
    assert_eq!(now.remote, expected);
    for at in [
        now.remote.download_url_expires_at,
        now.remote.progress_anchor_at,
    ] {
        assert_eq!(
            at.map(|t| t.timestamp_millis()),
            Some(poll_at.timestamp_millis())
        );
    }
    assert_eq!(now.polls, 1);
    assert_eq!(now.remote_retries, 1);
    assert!(now.needs_reconcile);
    assert!(now.lease_owner.is_none());
    // No state change, no extra event.
    assert_eq!(db.store.event_list(job.id).await.unwrap().len(), 3);

    // Clearing the last error.
    assert!(db
        .store
        .job_update(
            &any,
            &JobPatch {
                last_error: Some(Some(JobError {
                    code: "Throttling".into(),
                    message: "slow down".into(),
                    request_id: None,
                })),
                ..Default::default()
            },
        )
        .await
        .unwrap());
    assert!(db
        .store
        .job_get(job.id)
        .await
        .unwrap()
        .unwrap()
        .last_error
        .is_some());
    assert!(db
        .store
        .job_update(
            &any,
            &JobPatch {
                last_error: Some(None),
                ..Default::default()
            }
        )
        .await
        .unwrap());
    assert!(db
        .store
        .job_get(job.id)
        .await
        .unwrap()
        .unwrap()
        .last_error
        .is_none());
}

async fn prune_deletes_old_terminal_jobs_and_their_events(db: TestDb) {
    let old = db.enqueue("rm-1").await;
    let keep_queued = db.enqueue("rm-2").await;
    db.store.job_cancel(old.id, "x").await.unwrap();
    // Nothing finished before an hour ago.
    let n = db
        .store
        .job_prune(Utc::now() - ChronoDuration::hours(1))
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n = db
        .store
        .job_prune(Utc::now() + ChronoDuration::seconds(1))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(db.store.job_get(old.id).await.unwrap().is_none());
    assert!(db.store.event_list(old.id).await.unwrap().is_empty());
    assert!(db.store.job_get(keep_queued.id).await.unwrap().is_some());
    assert_eq!(
        db.query_i64(&format!(
            "SELECT count(*) FROM job_events WHERE job_id = {}",
            old.id
        ))
        .await,
        0
    );
}

async fn ready_after_migrate(db: TestDb) {
    assert!(db.store.ready().await.unwrap());
    // Migrating twice is harmless.
    db.store.migrate().await.unwrap();
    assert!(db.store.ready().await.unwrap());
    assert_eq!(
        db.store.backend(),
        match db.backend {
            crate::helpers::db::Backend::Sqlite => "sqlite",
            crate::helpers::db::Backend::Postgres => "postgres",
        }
    );
}

both_backends!(
    enqueue_round_trips_every_parameter,
    enqueue_rejects_invalid_request_naming_the_field,
    same_idempotency_key_returns_the_existing_job,
    same_schedule_fire_and_instance_returns_the_existing_job,
    list_pages_newest_first_with_filters,
    cancel_only_queued_jobs,
    retry_requeues_failed_and_cancelled,
    fenced_update_records_remote_status_and_counters,
    prune_deletes_old_terminal_jobs_and_their_events,
    ready_after_migrate,
);

#[tokio::test]
async fn connect_names_the_setting_for_an_unknown_scheme() {
    let err = dbs_archiver::store::connect("mysql://localhost/x", 1)
        .await
        .err()
        .expect("mysql is not a backend");
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("database.url"), "{err}");
}

#[tokio::test]
async fn sqlite_file_is_created_and_not_ready_until_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    let url = format!("sqlite://{}", path.display());
    let store = dbs_archiver::store::connect(&url, 2).await.unwrap();
    assert!(path.exists(), "created if missing");
    assert!(!store.ready().await.unwrap());
    store.migrate().await.unwrap();
    assert!(store.ready().await.unwrap());
}
