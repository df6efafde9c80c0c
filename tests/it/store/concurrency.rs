//! Racing claimers: every job claimed exactly once, and no instance ever had two active
//! jobs — asserted from the events table, the history the database itself kept.

use crate::helpers::db::{postgres, sqlite, TestDb};
use chrono::Utc;
use dbs_archiver::model::JobState;
use dbs_archiver::store::{ClaimParams, DynStore, Fence, JobPatch};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const JOBS: usize = 2_000;
const INSTANCES: u32 = 50;
const CLAIMERS_PER_HANDLE: usize = 8;

/// Claim, then finish each job (half through `running`), until all are done.
async fn claimer(
    store: DynStore,
    owner: String,
    done: Arc<AtomicUsize>,
    claimed: Arc<Mutex<Vec<i64>>>,
) {
    while done.load(Ordering::SeqCst) < JOBS {
        let jobs = store
            .job_claim(&ClaimParams {
                owner: owner.clone(),
                limit: 4,
                lease: Duration::from_secs(300),
                now: Utc::now(),
            })
            .await
            .expect("claim never errors on a lost race");
        if jobs.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        claimed.lock().unwrap().extend(jobs.iter().map(|j| j.id));
        for job in jobs {
            let mut state = JobState::Submitting;
            if job.id % 2 == 0 {
                assert!(store
                    .job_update(
                        &Fence {
                            id: job.id,
                            state,
                            owner: Some(owner.clone()),
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
                state = JobState::Running;
            }
            assert!(
                store
                    .job_update(
                        &Fence {
                            id: job.id,
                            state,
                            owner: Some(owner.clone()),
                        },
                        &JobPatch {
                            // A submission ends as running or failed, never succeeded.
                            to: Some(if state == JobState::Running {
                                JobState::Succeeded
                            } else {
                                JobState::Failed
                            }),
                            reason: "done".into(),
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap(),
                "the claimer owns its job"
            );
            done.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn race(db: &TestDb, handles: Vec<DynStore>) {
    db.seed(JOBS as u32, INSTANCES).await;
    let done = Arc::new(AtomicUsize::new(0));
    let claimed = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for (h, store) in handles.iter().enumerate() {
        for c in 0..CLAIMERS_PER_HANDLE {
            tasks.spawn(claimer(
                store.clone(),
                format!("handle{h}-claimer{c}"),
                done.clone(),
                claimed.clone(),
            ));
        }
    }
    let all = tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(r) = tasks.join_next().await {
            r.expect("claimer panicked");
        }
    })
    .await;
    assert!(all.is_ok(), "claimers did not finish");

    // Every job claimed exactly once.
    let claimed = claimed.lock().unwrap().clone();
    let unique: HashSet<_> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), JOBS, "claims handed out");
    assert_eq!(unique.len(), JOBS, "no job claimed twice");
    assert_eq!(
        db.query_i64("SELECT count(*) FROM jobs WHERE state IN ('succeeded', 'failed')")
            .await,
        JOBS as i64
    );
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM job_events WHERE from_state = 'queued' AND to_state = 'submitting'"
        )
        .await,
        JOBS as i64,
        "one claim event per job"
    );

    // Replay the events per instance in commit-consistent order (a claim's event is
    // written after the previous active job's terminal event committed, so ids order them).
    let events: Vec<(String, Option<String>, String)> = match db.backend {
        crate::helpers::db::Backend::Sqlite => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_as(
                "SELECT j.instance, e.from_state, e.to_state FROM job_events e \
                 JOIN jobs j ON j.id = e.job_id ORDER BY e.id",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap()
        }
        crate::helpers::db::Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_as(
                "SELECT j.instance, e.from_state, e.to_state FROM job_events e \
                 JOIN jobs j ON j.id = e.job_id ORDER BY e.id",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap()
        }
    };
    let active = |s: &str| s == "submitting" || s == "running";
    let mut now_active: HashMap<String, i32> = HashMap::new();
    let mut peak = 0;
    for (instance, from, to) in &events {
        let was = from.as_deref().is_some_and(active);
        let is = active(to);
        let n = now_active.entry(instance.clone()).or_default();
        match (was, is) {
            (false, true) => *n += 1,
            (true, false) => *n -= 1,
            _ => {}
        }
        assert!(*n <= 1, "instance {instance} had {n} active jobs at once");
        peak = peak.max(*n);
    }
    assert_eq!(peak, 1);
    assert!(now_active.values().all(|n| *n == 0));
    // The claim bookkeeping ends empty: nothing queued, nothing active.
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM instances WHERE head_job_id IS NOT NULL \
             OR active_job_id IS NOT NULL"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_times_eight_claimers_on_postgres() {
    let Some(db) = postgres().await else { return };
    let second = db.connect_again().await;
    race(&db, vec![db.store.clone(), second]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_claimers_on_sqlite() {
    let db = sqlite().await;
    race(&db, vec![db.store.clone()]).await;
}
