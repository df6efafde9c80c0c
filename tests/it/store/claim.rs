//! The claim: one job per instance, never an active or blocked instance, priority then
//! run_at order, due jobs only, poll claims for the tracker, heartbeats.

use crate::helpers::db::{both_backends, TestDb};
use chrono::{Duration as ChronoDuration, Utc};
use dbs_archiver::model::{DownloadRequest, JobSource, JobState};
use dbs_archiver::store::{ClaimParams, Fence, JobPatch, NewJob, PollClaimParams};
use std::time::Duration;

fn claim(owner: &str, limit: u32) -> ClaimParams {
    ClaimParams {
        owner: owner.into(),
        limit,
        lease: Duration::from_secs(60),
        now: Utc::now(),
    }
}

fn job_for(instance: &str, priority: i32) -> NewJob {
    let mut new = NewJob::new(
        DownloadRequest::example_full("cn-hangzhou", instance, "1"),
        JobSource::Api,
    );
    new.priority = priority;
    new
}

/// Take a claimed job through `running` to `succeeded`, as the worker would.
async fn finish(db: &TestDb, id: i64, owner: &str) {
    for (from, to) in [
        (JobState::Submitting, JobState::Running),
        (JobState::Running, JobState::Succeeded),
    ] {
        assert!(db
            .store
            .job_update(
                &Fence {
                    id,
                    state: from,
                    owner: Some(owner.into()),
                },
                &JobPatch {
                    to: Some(to),
                    remote: Some(dbs_archiver::model::RemoteStatus {
                        task_id: Some(format!("dt-{id}")),
                        ..Default::default()
                    }),
                    reason: "done".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap());
    }
}

async fn one_job_per_instance_and_never_an_active_instance(db: TestDb) {
    let a1 = db.enqueue("rm-a").await;
    let a2 = db.enqueue("rm-a").await;
    let b1 = db.enqueue("rm-b").await;
    let first = db.store.job_claim(&claim("w1", 10)).await.unwrap();
    let mut ids: Vec<_> = first.iter().map(|j| j.id).collect();
    ids.sort();
    assert_eq!(ids, vec![a1.id, b1.id]);
    for j in &first {
        assert_eq!(j.state, JobState::Submitting);
        assert_eq!(j.lease_owner.as_deref(), Some("w1"));
        assert!(j.lease_expires_at.is_some() && j.started_at.is_some());
    }
    // rm-a is active: its second job waits.
    assert!(db
        .store
        .job_claim(&claim("w2", 10))
        .await
        .unwrap()
        .is_empty());
    // Moving to running keeps it active.
    assert!(db
        .store
        .job_update(
            &Fence {
                id: a1.id,
                state: JobState::Submitting,
                owner: Some("w1".into()),
            },
            &JobPatch {
                to: Some(JobState::Running),
                remote: Some(dbs_archiver::model::RemoteStatus {
                    task_id: Some("dt-test".into()),
                    ..Default::default()
                }),
                reason: "submitted".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap());
    assert!(db
        .store
        .job_claim(&claim("w2", 10))
        .await
        .unwrap()
        .is_empty());
    assert!(db
        .store
        .job_update(
            &Fence {
                id: a1.id,
                state: JobState::Running,
                owner: None,
            },
            &JobPatch {
                to: Some(JobState::Succeeded),
                reason: "done".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap());
    let next = db.store.job_claim(&claim("w2", 10)).await.unwrap();
    assert_eq!(next.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a2.id]);
}

async fn priority_then_run_at_order_and_limit(db: TestDb) {
    let low = db.store.job_enqueue(job_for("rm-1", 0)).await.unwrap().job;
    let high = db.store.job_enqueue(job_for("rm-2", 5)).await.unwrap().job;
    let low2 = db.store.job_enqueue(job_for("rm-3", 0)).await.unwrap().job;
    let got = db.store.job_claim(&claim("w", 2)).await.unwrap();
    assert_eq!(
        got.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![high.id, low.id]
    );
    let got = db.store.job_claim(&claim("w", 2)).await.unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![low2.id]);
    // Within an instance, a later high-priority job goes first.
    let x1 = db.store.job_enqueue(job_for("rm-9", 0)).await.unwrap().job;
    let x2 = db.store.job_enqueue(job_for("rm-9", 3)).await.unwrap().job;
    let got = db.store.job_claim(&claim("w", 5)).await.unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![x2.id]);
    finish(&db, x2.id, "w").await;
    let got = db.store.job_claim(&claim("w", 5)).await.unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![x1.id]);
    assert!(db.store.job_claim(&claim("w", 0)).await.unwrap().is_empty());
}

async fn future_jobs_wait_for_their_run_at(db: TestDb) {
    let mut later = job_for("rm-1", 0);
    later.run_at = Some(Utc::now() + ChronoDuration::minutes(10));
    let later = db.store.job_enqueue(later).await.unwrap().job;
    assert!(db.store.job_claim(&claim("w", 5)).await.unwrap().is_empty());
    let mut p = claim("w", 5);
    p.now = Utc::now() + ChronoDuration::minutes(11);
    let got = db.store.job_claim(&p).await.unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![later.id]);
}

async fn requeue_with_backoff_lets_others_on_the_instance_go_first(db: TestDb) {
    let a = db.enqueue("rm-1").await;
    let b = db.enqueue("rm-1").await;
    db.store.job_claim(&claim("w", 5)).await.unwrap();
    // a hit a retryable error: back to queued, later.
    assert!(db
        .store
        .job_update(
            &Fence {
                id: a.id,
                state: JobState::Submitting,
                owner: Some("w".into()),
            },
            &JobPatch {
                to: Some(JobState::Queued),
                run_at: Some(Utc::now() + ChronoDuration::minutes(5)),
                spend_attempt: true,
                reason: "throttled".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap());
    let requeued = db.store.job_get(a.id).await.unwrap().unwrap();
    assert!(
        requeued.lease_owner.is_none(),
        "back in the queue without a lease"
    );
    assert_eq!(requeued.attempts, 1);
    let got = db.store.job_claim(&claim("w", 5)).await.unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![b.id]);
}

async fn poll_claims_lease_due_running_jobs(db: TestDb) {
    let a = db.enqueue("rm-1").await;
    let b = db.enqueue("rm-2").await;
    db.store.job_claim(&claim("w", 5)).await.unwrap();
    let now = Utc::now();
    for (id, poll_in) in [(a.id, -5), (b.id, 60)] {
        assert!(db
            .store
            .job_update(
                &Fence {
                    id,
                    state: JobState::Submitting,
                    owner: Some("w".into()),
                },
                &JobPatch {
                    to: Some(JobState::Running),
                    remote: Some(dbs_archiver::model::RemoteStatus {
                        task_id: Some("dt-test".into()),
                        ..Default::default()
                    }),
                    next_poll_at: Some(now + ChronoDuration::seconds(poll_in)),
                    release_lease: true,
                    reason: "submitted".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap());
    }
    let p = PollClaimParams {
        owner: "t1".into(),
        limit: 10,
        lease: Duration::from_secs(120),
        now,
    };
    let due = db.store.job_claim_polls(&p).await.unwrap();
    assert_eq!(due.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a.id]);
    assert_eq!(due[0].lease_owner.as_deref(), Some("t1"));
    // Leased: another tracker does not get it.
    let p2 = PollClaimParams {
        owner: "t2".into(),
        ..p.clone()
    };
    assert!(db.store.job_claim_polls(&p2).await.unwrap().is_empty());
    // Later both are due; the lease on a is still held by t1.
    let p3 = PollClaimParams {
        now: now + ChronoDuration::seconds(61),
        ..p2
    };
    let due = db.store.job_claim_polls(&p3).await.unwrap();
    assert_eq!(due.iter().map(|j| j.id).collect::<Vec<_>>(), vec![b.id]);
    // Polls are not events.
    assert_eq!(db.store.event_list(b.id).await.unwrap().len(), 3);
}

async fn heartbeat_extends_only_owned_active_jobs(db: TestDb) {
    let a = db.enqueue("rm-1").await;
    let b = db.enqueue("rm-2").await;
    let c = db.enqueue("rm-3").await;
    let mut p = claim("w1", 2);
    p.lease = Duration::from_secs(5);
    let mine = db.store.job_claim(&p).await.unwrap();
    assert_eq!(mine.len(), 2);
    let before = db
        .store
        .job_get(a.id)
        .await
        .unwrap()
        .unwrap()
        .lease_expires_at;
    let kept = db
        .store
        .job_heartbeat("w1", &[a.id, b.id, c.id], Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(kept, vec![a.id, b.id]);
    let after = db
        .store
        .job_get(a.id)
        .await
        .unwrap()
        .unwrap()
        .lease_expires_at;
    assert!(after > before);
    assert!(db
        .store
        .job_heartbeat("someone-else", &[a.id], Duration::from_secs(600))
        .await
        .unwrap()
        .is_empty());
    assert!(db
        .store
        .job_heartbeat("w1", &[], Duration::from_secs(600))
        .await
        .unwrap()
        .is_empty());
}

/// The claim bookkeeping is kept by triggers, so operator SQL keeps it right too.
async fn operator_sql_changes_keep_the_claim_bookkeeping(db: TestDb) {
    let a = db.enqueue("rm-1").await;
    let b = db.enqueue("rm-1").await;
    db.exec(&format!(
        "UPDATE jobs SET priority = 10 WHERE id = {}",
        b.id
    ))
    .await
    .unwrap();
    let got = db.store.job_claim(&claim("w", 5)).await.unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![b.id]);
    db.exec(&format!("DELETE FROM jobs WHERE id = {}", a.id))
        .await
        .unwrap();
    finish(&db, b.id, "w").await;
    assert!(db.store.job_claim(&claim("w", 5)).await.unwrap().is_empty());
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM instances WHERE head_job_id IS NOT NULL \
             OR active_job_id IS NOT NULL"
        )
        .await,
        0
    );
}

both_backends!(
    operator_sql_changes_keep_the_claim_bookkeeping,
    one_job_per_instance_and_never_an_active_instance,
    priority_then_run_at_order_and_limit,
    future_jobs_wait_for_their_run_at,
    requeue_with_backoff_lets_others_on_the_instance_go_first,
    poll_claims_lease_due_running_jobs,
    heartbeat_extends_only_owned_active_jobs,
);
