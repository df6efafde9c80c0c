//! Every stamp the store writes comes from its injected clock (issue 11: rescue compares
//! against the injected clock, so enqueue, update, cancel, retry, heartbeat and block
//! must stamp with the same one). The clock here is a year ahead of the wall clock.

use crate::helpers::db::{both_backends, TestDb};
use dbs_archiver::clock::{Clock, ManualClock};
use dbs_archiver::model::{DownloadRequest, InstanceKey, JobSource, JobState, RemoteStatus};
use dbs_archiver::store::{self, BlockInstance, ClaimParams, Fence, JobPatch, NewJob};
use std::sync::Arc;
use std::time::Duration;

async fn stamps_come_from_the_injected_clock(db: TestDb) {
    let start = chrono::Utc::now() + chrono::Duration::days(365);
    // Whole milliseconds: SQLite keeps no more.
    let start = chrono::DateTime::from_timestamp_millis(start.timestamp_millis()).unwrap();
    let clock = ManualClock::new(start);
    let store = store::connect_with_clock(&db.url, 2, Arc::new(clock.clone()))
        .await
        .unwrap();
    let request = DownloadRequest::example_full("cn-hangzhou", "rm-clock", "1001");
    let job = store
        .job_enqueue(NewJob::new(request.clone(), JobSource::Api))
        .await
        .unwrap()
        .job;
    assert_eq!(
        (job.created_at, job.run_at, job.updated_at),
        (start, start, start)
    );

    clock.advance(chrono::Duration::seconds(10));
    let lease = Duration::from_secs(60);
    let claimed = store
        .job_claim(&ClaimParams {
            owner: "me".into(),
            limit: 1,
            lease,
            now: clock.now(),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);

    clock.advance(chrono::Duration::seconds(10));
    let kept = store.job_heartbeat("me", &[job.id], lease).await.unwrap();
    assert_eq!(kept, vec![job.id]);
    let beat = store.job_get(job.id).await.unwrap().unwrap();
    assert_eq!(beat.updated_at, clock.now());
    assert_eq!(
        beat.lease_expires_at,
        Some(clock.now() + chrono::Duration::seconds(60))
    );

    clock.advance(chrono::Duration::seconds(10));
    let fence = Fence {
        id: job.id,
        state: JobState::Submitting,
        owner: Some("me".into()),
    };
    let running = JobPatch {
        to: Some(JobState::Running),
        remote: Some(RemoteStatus {
            task_id: Some("t-1".into()),
            ..Default::default()
        }),
        release_lease: true,
        reason: "test".into(),
        ..Default::default()
    };
    assert!(store.job_update(&fence, &running).await.unwrap());
    clock.advance(chrono::Duration::seconds(10));
    let fence = Fence {
        id: job.id,
        state: JobState::Running,
        owner: None,
    };
    let failed = JobPatch {
        to: Some(JobState::Failed),
        reason: "test".into(),
        ..Default::default()
    };
    assert!(store.job_update(&fence, &failed).await.unwrap());
    let done = store.job_get(job.id).await.unwrap().unwrap();
    assert_eq!(
        (done.updated_at, done.finished_at),
        (clock.now(), Some(clock.now()))
    );
    let events = store.event_list(job.id).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!((last.to_state, last.at), (JobState::Failed, clock.now()));

    clock.advance(chrono::Duration::seconds(10));
    let retried = store.job_retry(job.id, "again").await.unwrap().unwrap();
    assert_eq!(
        (retried.state, retried.run_at),
        (JobState::Queued, clock.now())
    );

    clock.advance(chrono::Duration::seconds(10));
    let cancelled = store.job_cancel(job.id, "stop").await.unwrap().unwrap();
    assert_eq!(cancelled.finished_at, Some(clock.now()));

    let key = InstanceKey::new("cn-hangzhou", "rm-clock");
    store
        .instance_block(&BlockInstance {
            key: key.clone(),
            task_id: None,
            reason: "test".into(),
            until: None,
        })
        .await
        .unwrap();
    let blocked = store.instance_get(&key).await.unwrap().unwrap();
    assert_eq!(blocked.blocked_at, Some(clock.now()));

    // Prune compares `finished_at` (the injected clock) with what it is given.
    let n = store
        .job_prune(clock.now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(n, 1);
}

both_backends!(stamps_come_from_the_injected_clock);
