//! Migration 0005 on a database that already holds rows the new rules refuse: each is
//! quarantined (failed, Store.Quarantined, original values in the message and an event),
//! the valid ones are untouched, history is kept, and the store reads every row after.

use crate::helpers::db::{postgres_unmigrated, sqlite_unmigrated, Backend, TestDb};
use dbs_archiver::model::JobState;
use dbs_archiver::store::JobFilter;

/// Every migration of the backend, in order, as (file name, SQL).
fn migrations(backend: Backend) -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        });
    let mut all: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    all.sort();
    all
}

const COLS: &str = "region, instance, bak_set_type, bak_set_id, format, target_type";

async fn existing_bad_rows_are_quarantined(db: TestDb) {
    let all = migrations(db.backend);
    let (before, from_0005): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|(name, _)| name.as_str() < "0005");
    for (_, sql) in &before {
        db.exec(sql).await.expect("older migration");
    }
    let bad_run_at = match db.backend {
        Backend::Sqlite => "(julianday('now') - 2440587.5) * 86400000 + 0.5",
        Backend::Postgres => "'-infinity'",
    };
    let base = "'cn-hangzhou', 'rm-1', 'full', '1001', 'CSV', 'URL'";
    for sql in [
        format!("INSERT INTO jobs ({COLS}) VALUES ({base})"),
        format!("INSERT INTO jobs ({COLS}, run_at) VALUES ('cn-hangzhou', 'rm-2', 'full', '1', 'CSV', 'URL', {bad_run_at})"),
        format!("INSERT INTO jobs ({COLS}, priority) VALUES ('cn-hangzhou', 'rm-3', 'full', '1', 'CSV', 'URL', 5000)"),
        format!("INSERT INTO jobs ({COLS}, state) VALUES ('cn-hangzhou', 'rm-4', 'full', '1', 'CSV', 'URL', 'submitting')"),
        // History is not rewritten: a finished job with a path the rules now refuse stays.
        format!("INSERT INTO jobs ({COLS}, state, target_path) VALUES ('cn-hangzhou', 'rm-5', 'full', '1', 'CSV', 'URL', 'succeeded', 'a/../b')"),
    ] {
        db.exec(&sql).await.expect("accepted before 0005");
    }
    let events_before = db.query_i64("SELECT count(*) FROM job_events").await;
    // 0005 and everything after it, each in a transaction as sqlx runs them.
    for (name, sql) in &from_0005 {
        let wrapped = format!("BEGIN; {sql} COMMIT;");
        db.exec(&wrapped)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    let page = db
        .store
        .job_list(&JobFilter::default())
        .await
        .expect("every row reads");
    let state_of = |instance: &str| {
        let job = page
            .jobs
            .iter()
            .find(|j| j.request.instance == instance)
            .unwrap();
        (job.state, job.last_error.as_ref().map(|e| e.code.clone()))
    };
    assert_eq!(state_of("rm-1"), (JobState::Queued, None));
    assert_eq!(state_of("rm-5"), (JobState::Succeeded, None));
    for instance in ["rm-2", "rm-3", "rm-4"] {
        assert_eq!(
            state_of(instance),
            (JobState::Failed, Some("Store.Quarantined".to_string())),
            "{instance}"
        );
    }
    let rm3 = page
        .jobs
        .iter()
        .find(|j| j.request.instance == "rm-3")
        .unwrap();
    assert_eq!(rm3.priority, 1000, "clamped");
    assert!(rm3
        .last_error
        .as_ref()
        .unwrap()
        .message
        .contains("priority=5000"));
    assert_eq!(
        db.query_i64("SELECT count(*) FROM job_events").await,
        events_before + 3,
        "one event per quarantined job, and every old event kept"
    );
    // The valid job is still claimable: the instance bookkeeping survived.
    assert_eq!(
        db.query_i64("SELECT count(*) FROM instances WHERE head_job_id IS NOT NULL")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_bad_rows_are_quarantined_sqlite() {
    existing_bad_rows_are_quarantined(sqlite_unmigrated().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_bad_rows_are_quarantined_postgres() {
    if let Some(db) = postgres_unmigrated().await {
        existing_bad_rows_are_quarantined(db).await;
    }
}
