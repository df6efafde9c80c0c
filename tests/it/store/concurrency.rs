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

/// Writers racing to create the same new instances (migration 0011 creates an instance with
/// its bookkeeping computed, and only a writer that finds the row locks and recomputes
/// it): whoever commits first, every instance ends with the head its queued jobs give and
/// the claim takes every job.
async fn enqueues_racing_on_new_instances_keep_the_bookkeeping(db: TestDb) {
    const WRITERS: usize = 8;
    const INSTANCES: usize = 20;
    let inserts = (0..WRITERS).map(|w| {
        // Each writer names the instances in its own order, several jobs per statement.
        let rows: Vec<String> = (0..INSTANCES)
            .map(|i| (i * 7 + w * 3) % INSTANCES)
            .map(|i| {
                format!(
                    "('cn-hangzhou', 'rm-new-{i}', 'full', '{}', 'CSV', 'URL', {})",
                    1000 + w,
                    (w % 3) as i64 - 1
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO jobs (region, instance, bak_set_type, bak_set_id, format, \
             target_type, priority) VALUES {}",
            rows.join(", ")
        );
        let db = &db;
        async move { db.exec(&sql).await }
    });
    for r in futures::future::join_all(inserts).await {
        r.expect("a racing enqueue");
    }
    assert_eq!(
        db.query_i64("SELECT count(*) FROM instances WHERE instance LIKE 'rm-new-%'")
            .await,
        INSTANCES as i64
    );
    // The bookkeeping is what a recompute from the jobs gives.
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM instances i WHERE i.instance LIKE 'rm-new-%' \
             AND (i.active_job_id IS NOT NULL OR i.head_job_id IS DISTINCT FROM ( \
               SELECT j.id FROM jobs j WHERE j.region = i.region \
                 AND j.instance = i.instance AND j.state = 'queued' \
               ORDER BY j.priority DESC, j.run_at, j.id LIMIT 1))"
        )
        .await,
        0
    );
    // And the claim reaches every instance.
    let claimed = db
        .store
        .job_claim(&ClaimParams {
            owner: "t".into(),
            limit: 100,
            lease: Duration::from_secs(60),
            now: Utc::now() + chrono::Duration::seconds(1),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), INSTANCES);
}

crate::helpers::db::both_backends!(enqueues_racing_on_new_instances_keep_the_bookkeeping);
