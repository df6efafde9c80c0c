//! `job_update_many`: many fenced patches in one statement per batch, each with its own
//! answer, held to the state machine as a whole (issue 11, design.md invariants 2 and 9).

use crate::helpers::db::{both_backends, TestDb};
use dbs_archiver::model::{JobError, JobState, RemoteStatus};
use dbs_archiver::store::{ClaimParams, Fence, JobFilter, JobPatch, StoreError};
use std::time::Duration;

fn fence(id: i64, state: JobState, owner: Option<&str>) -> Fence {
    Fence {
        id,
        state,
        owner: owner.map(str::to_string),
    }
}

fn running(task: &str) -> JobPatch {
    JobPatch {
        to: Some(JobState::Running),
        remote: Some(RemoteStatus {
            task_id: Some(task.into()),
            ..Default::default()
        }),
        needs_reconcile: Some(false),
        release_lease: true,
        reason: "CreateDownload accepted".into(),
        request_id: Some("req-1".into()),
        ..Default::default()
    }
}

async fn claimed(db: &TestDb, n: usize) -> Vec<i64> {
    for i in 0..n {
        db.enqueue(&format!("rm-batch-{i}")).await;
    }
    let jobs = db
        .store
        .job_claim(&ClaimParams {
            owner: "me".into(),
            limit: n as u32,
            lease: Duration::from_secs(60),
            now: chrono::Utc::now(),
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), n);
    let mut ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    ids.sort_unstable();
    ids
}

async fn each_patch_is_fenced_and_answered_in_order(db: TestDb) {
    let ids = claimed(&db, 3).await;
    let requeue = JobPatch {
        to: Some(JobState::Queued),
        spend_attempt: true,
        last_error: Some(Some(JobError {
            code: "ServiceUnavailable".into(),
            message: "try later".into(),
            request_id: Some("req-2".into()),
        })),
        release_lease: true,
        reason: "transient error".into(),
        ..Default::default()
    };
    let updates = vec![
        (
            fence(ids[0], JobState::Submitting, Some("me")),
            running("t-0"),
        ),
        (fence(ids[1], JobState::Submitting, Some("me")), requeue),
        // Not ours: the fence does not hold, nothing is written for it.
        (
            fence(ids[2], JobState::Submitting, Some("other")),
            running("t-2"),
        ),
    ];
    let held = db.store.job_update_many(&updates).await.unwrap();
    assert_eq!(held, vec![true, true, false]);

    let j0 = db.store.job_get(ids[0]).await.unwrap().unwrap();
    assert_eq!(j0.state, JobState::Running);
    assert_eq!(j0.remote.task_id.as_deref(), Some("t-0"));
    assert_eq!((j0.lease_owner, j0.lease_expires_at), (None, None));
    let j1 = db.store.job_get(ids[1]).await.unwrap().unwrap();
    assert_eq!((j1.state, j1.attempts), (JobState::Queued, 1));
    assert_eq!(j1.last_error.unwrap().code, "ServiceUnavailable");
    let j2 = db.store.job_get(ids[2]).await.unwrap().unwrap();
    assert_eq!(
        (j2.state, j2.lease_owner.as_deref()),
        (JobState::Submitting, Some("me"))
    );

    let last = |events: Vec<dbs_archiver::model::JobEvent>| events.last().cloned().unwrap();
    let e0 = last(db.store.event_list(ids[0]).await.unwrap());
    assert_eq!(
        (e0.from_state, e0.to_state),
        (Some(JobState::Submitting), JobState::Running)
    );
    assert_eq!(e0.request_id.as_deref(), Some("req-1"));
    let e1 = last(db.store.event_list(ids[1]).await.unwrap());
    assert_eq!(
        (e1.to_state, e1.reason.as_str()),
        (JobState::Queued, "transient error")
    );
    let e2 = last(db.store.event_list(ids[2]).await.unwrap());
    assert_eq!(
        e2.to_state,
        JobState::Submitting,
        "no event for a fence that failed"
    );
}

async fn a_forbidden_transition_refuses_the_whole_batch(db: TestDb) {
    let ids = claimed(&db, 2).await;
    let events = db.store.event_list(ids[0]).await.unwrap().len();
    let succeed = JobPatch {
        to: Some(JobState::Succeeded),
        reason: "skipping running".into(),
        ..Default::default()
    };
    let updates = vec![
        (
            fence(ids[0], JobState::Submitting, Some("me")),
            running("t-0"),
        ),
        (fence(ids[1], JobState::Submitting, Some("me")), succeed),
    ];
    match db.store.job_update_many(&updates).await {
        Err(StoreError::Forbidden(e)) => {
            assert_eq!((e.from, e.to), (JobState::Submitting, JobState::Succeeded))
        }
        other => panic!("submitting → succeeded must be refused, got {other:?}"),
    }
    for id in &ids {
        let j = db.store.job_get(*id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Submitting, "nothing written");
    }
    assert_eq!(db.store.event_list(ids[0]).await.unwrap().len(), events);

    let twice = vec![
        (
            fence(ids[0], JobState::Submitting, Some("me")),
            running("t-0"),
        ),
        (
            fence(ids[0], JobState::Submitting, Some("me")),
            running("t-1"),
        ),
    ];
    assert!(matches!(
        db.store.job_update_many(&twice).await,
        Err(StoreError::Invalid(_))
    ));
}

/// More patches than one statement carries: every one is applied, in several statements
/// of one transaction.
async fn a_large_batch_is_written_in_chunks(db: TestDb) {
    db.seed(1001, 1001).await;
    let page = db
        .store
        .job_list(&JobFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let updates: Vec<(Fence, JobPatch)> = page
        .jobs
        .iter()
        .map(|j| {
            let patch = JobPatch {
                run_at: Some(later),
                reason: "later".into(),
                ..Default::default()
            };
            (fence(j.id, JobState::Queued, None), patch)
        })
        .collect();
    let held = db.store.job_update_many(&updates).await.unwrap();
    assert_eq!(held.len(), 1000);
    assert!(held.iter().all(|h| *h));
    let j = db.store.job_get(page.jobs[999].id).await.unwrap().unwrap();
    assert_eq!(j.run_at.timestamp_millis(), later.timestamp_millis());
}

both_backends!(
    each_patch_is_fenced_and_answered_in_order,
    a_forbidden_transition_refuses_the_whole_batch,
    a_large_batch_is_written_in_chunks
);
