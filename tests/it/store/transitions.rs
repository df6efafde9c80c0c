//! Every store update is held to the state machine's one table (`model::transitions`):
//! a forbidden change is an error and writes nothing, on both backends.

use crate::helpers::db::{both_backends, TestDb};
use dbs_archiver::model::transitions::{self, TRANSITIONS};
use dbs_archiver::model::JobState;
use dbs_archiver::store::{Fence, JobPatch, StoreError};

fn to(state: JobState) -> JobPatch {
    JobPatch {
        to: Some(state),
        reason: "test".into(),
        ..Default::default()
    }
}

async fn forbidden_transitions_are_refused_and_write_nothing(db: TestDb) {
    let job = db.enqueue("rm-1").await;
    let fence = Fence {
        id: job.id,
        state: JobState::Queued,
        owner: None,
    };
    let events = db.store.event_list(job.id).await.unwrap().len();
    for target in [JobState::Running, JobState::Succeeded] {
        match db.store.job_update(&fence, &to(target)).await {
            Err(StoreError::Forbidden(e)) => {
                assert_eq!((e.from, e.to), (JobState::Queued, target));
            }
            other => panic!("queued → {target} must be refused, got {other:?}"),
        }
    }
    let after = db.store.job_get(job.id).await.unwrap().unwrap();
    assert_eq!(after.state, JobState::Queued);
    assert_eq!(db.store.event_list(job.id).await.unwrap().len(), events);
    // An allowed one goes through (queued → cancelled through the generic update).
    assert!(db
        .store
        .job_update(&fence, &to(JobState::Cancelled))
        .await
        .unwrap());
}

/// Every pair outside the table is refused by the check the store runs.
#[test]
fn only_the_table_is_allowed() {
    for from in JobState::ALL {
        for target in JobState::ALL {
            let listed = TRANSITIONS
                .iter()
                .any(|(f, t, _)| *f == Some(from) && *t == target);
            assert_eq!(
                transitions::check(from, target).is_ok(),
                listed || from == target,
                "{from} → {target}"
            );
        }
    }
}

both_backends!(forbidden_transitions_are_refused_and_write_nothing);
