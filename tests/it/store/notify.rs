//! Wake-ups: in-process enqueues and plain SQL INSERTs from another connection or
//! process, on both backends (PostgreSQL: NOTIFY; SQLite: the `data_version` watcher).

use crate::helpers::db::{both_backends, postgres, sqlite, TestDb};
use std::time::Duration;

const SQL_INSERT: &str = "INSERT INTO jobs (region, instance, bak_set_type, bak_set_id, \
    format, target_type) VALUES ('cn-hangzhou', 'rm-sql', 'full', '1', 'CSV', 'URL')";

async fn enqueue_wakes_a_waiting_worker(db: TestDb) {
    let mut wakeups = db.store.job_notifier();
    // Settle a wake-up a set-up step may still deliver.
    let _ = tokio::time::timeout(Duration::from_millis(20), wakeups.changed()).await;
    let woken = wakeups.changed();
    tokio::pin!(woken);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut woken)
            .await
            .is_err(),
        "nothing enqueued yet"
    );
    db.enqueue("rm-1").await;
    tokio::time::timeout(Duration::from_secs(5), woken)
        .await
        .expect("enqueue wakes the notifier");
}

both_backends!(enqueue_wakes_a_waiting_worker);

/// SQLite has no NOTIFY: a SQL client's INSERT (another connection, as another process
/// would be) is noticed by the store's `PRAGMA data_version` watcher, not the idle poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_sql_insert_wakes_the_sqlite_notifier() {
    let db = sqlite().await;
    let mut wakeups = db.store.job_notifier();
    // Settle a wake-up a set-up step may still deliver.
    let _ = tokio::time::timeout(Duration::from_millis(200), wakeups.changed()).await;
    let woken = wakeups.changed();
    tokio::pin!(woken);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut woken)
            .await
            .is_err(),
        "nothing inserted yet, and an idle file wakes nobody"
    );
    db.exec(SQL_INSERT).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), woken)
        .await
        .expect("a plain SQL INSERT from another connection wakes the notifier");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_sql_insert_wakes_the_postgres_notifier() {
    let Some(db) = postgres().await else { return };
    let mut wakeups = db.store.job_notifier();
    // Settle a wake-up a set-up step may still deliver.
    let _ = tokio::time::timeout(Duration::from_millis(20), wakeups.changed()).await;
    let woken = wakeups.changed();
    tokio::pin!(woken);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut woken)
            .await
            .is_err(),
        "nothing inserted yet"
    );
    // One NOTIFY per statement (a bulk INSERT … SELECT must not queue one per row).
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'jobs_enqueued_notify' \
             AND (tgtype & 1) = 0"
        )
        .await,
        1,
        "statement-level NOTIFY trigger"
    );
    // A separate connection, as any SQL client: the trigger NOTIFYs, the store LISTENs.
    db.exec(SQL_INSERT).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), woken)
        .await
        .expect("a plain SQL INSERT wakes the notifier through NOTIFY");
}

/// A job leaving `submitting`/`running` frees its instance: an idle dispatcher must hear of
/// it at once rather than on its next idle poll.
async fn finishing_an_active_job_wakes_a_waiting_worker(db: TestDb) {
    use chrono::Utc;
    use dbs_archiver::model::JobState;
    use dbs_archiver::store::{ClaimParams, Fence, JobPatch};

    let job = db.enqueue("rm-free").await;
    let claimed = db
        .store
        .job_claim(&ClaimParams {
            owner: "w1".into(),
            limit: 1,
            lease: Duration::from_secs(60),
            now: Utc::now(),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let mut wakeups = db.store.job_notifier();
    // Settle a wake-up a set-up step may still deliver.
    let _ = tokio::time::timeout(Duration::from_millis(20), wakeups.changed()).await;
    let woken = wakeups.changed();
    tokio::pin!(woken);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut woken)
            .await
            .is_err(),
        "nothing changed yet"
    );
    let fence = Fence {
        id: job.id,
        state: JobState::Submitting,
        owner: Some("w1".into()),
    };
    let patch = JobPatch {
        to: Some(JobState::Failed),
        reason: "test: permanent error".into(),
        ..JobPatch::default()
    };
    assert!(db.store.job_update(&fence, &patch).await.unwrap());
    tokio::time::timeout(Duration::from_secs(5), woken)
        .await
        .expect("freeing an instance wakes the notifier");
}

both_backends!(finishing_an_active_job_wakes_a_waiting_worker);
