//! Lease loss: an expired lease is rescued; the old owner's fenced update then changes
//! nothing and says so.

use crate::helpers::db::{both_backends, TestDb};
use chrono::{Duration as ChronoDuration, Utc};
use dbs_archiver::model::JobState;
use dbs_archiver::store::{ClaimParams, Fence, JobPatch};
use std::time::Duration;

async fn expired_submitting_job_is_rescued_and_old_owner_is_fenced_out(db: TestDb) {
    let job = db.enqueue("rm-1").await;
    let now = Utc::now();
    let claimed = db
        .store
        .job_claim(&ClaimParams {
            owner: "old".into(),
            limit: 1,
            lease: Duration::from_secs(30),
            now,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // Not expired yet: nothing to rescue.
    assert!(db.store.job_rescue_expired(now).await.unwrap().is_empty());
    let later = now + ChronoDuration::seconds(31);
    assert_eq!(
        db.store.job_rescue_expired(later).await.unwrap(),
        vec![job.id]
    );
    let rescued = db.store.job_get(job.id).await.unwrap().unwrap();
    assert_eq!(rescued.state, JobState::Queued);
    assert!(
        rescued.needs_reconcile,
        "may exist remotely: reconcile first"
    );
    assert!(rescued.lease_owner.is_none());
    // Rescuing twice does nothing.
    assert!(db.store.job_rescue_expired(later).await.unwrap().is_empty());

    // Claimable again, by someone else.
    let again = db
        .store
        .job_claim(&ClaimParams {
            owner: "new".into(),
            limit: 1,
            lease: Duration::from_secs(30),
            now: later,
        })
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert!(again[0].needs_reconcile);

    // The old owner comes back and tries to record its submission: fenced out.
    let stale = db
        .store
        .job_update(
            &Fence {
                id: job.id,
                state: JobState::Submitting,
                owner: Some("old".into()),
            },
            &JobPatch {
                to: Some(JobState::Running),
                remote: Some(dbs_archiver::model::RemoteStatus {
                    task_id: Some("dt-test".into()),
                    ..Default::default()
                }),
                reason: "CreateDownload ok".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!stale);
    let now_job = db.store.job_get(job.id).await.unwrap().unwrap();
    assert_eq!(now_job.state, JobState::Submitting);
    assert_eq!(now_job.lease_owner.as_deref(), Some("new"));
    let events = db.store.event_list(job.id).await.unwrap();
    let path: Vec<_> = events.iter().map(|e| e.to_state).collect();
    assert_eq!(
        path,
        vec![
            JobState::Queued,
            JobState::Submitting,
            JobState::Queued,
            JobState::Submitting
        ]
    );
    assert!(events[2].reason.contains("lease expired"));
}

async fn expired_running_job_keeps_running_and_is_due_for_a_poll(db: TestDb) {
    let job = db.enqueue("rm-1").await;
    let now = Utc::now();
    db.store
        .job_claim(&ClaimParams {
            owner: "w".into(),
            limit: 1,
            lease: Duration::from_secs(30),
            now,
        })
        .await
        .unwrap();
    assert!(db
        .store
        .job_update(
            &Fence {
                id: job.id,
                state: JobState::Submitting,
                owner: Some("w".into()),
            },
            &JobPatch {
                to: Some(JobState::Running),
                remote: Some(dbs_archiver::model::RemoteStatus {
                    task_id: Some("dt-test".into()),
                    ..Default::default()
                }),
                next_poll_at: Some(now + ChronoDuration::hours(1)),
                reason: "submitted".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap());
    let later = now + ChronoDuration::seconds(31);
    assert_eq!(
        db.store.job_rescue_expired(later).await.unwrap(),
        vec![job.id]
    );
    let j = db.store.job_get(job.id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Running);
    assert!(j.lease_owner.is_none());
    assert!(j.next_poll_at.unwrap() <= later + ChronoDuration::milliseconds(1));
    // Still active: the instance's other jobs wait.
    db.enqueue("rm-1").await;
    assert!(db
        .store
        .job_claim(&ClaimParams {
            owner: "w2".into(),
            limit: 5,
            lease: Duration::from_secs(30),
            now: later,
        })
        .await
        .unwrap()
        .is_empty());
}

both_backends!(
    expired_submitting_job_is_rescued_and_old_owner_is_fenced_out,
    expired_running_job_keeps_running_and_is_due_for_a_poll,
);
