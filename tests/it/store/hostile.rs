//! The SQL interface is public, so it is treated as hostile (design.md invariant 8).
//!
//! Each case reproduces a row that stopped the queue before migration 0005: the database
//! now refuses it, naming the rule. A row that slips past anyway (constraints disabled by
//! hand) is quarantined by every read path, and the other jobs keep flowing.

use crate::helpers::db::{both_backends, Backend, TestDb};
use chrono::Utc;
use dbs_archiver::model::JobState;
use dbs_archiver::store::{ClaimParams, JobFilter, PollClaimParams, StoreError};
use std::time::Duration;

const COLS: &str = "region, instance, bak_set_type, bak_set_id, format, target_type";
const VALS: &str = "'cn-hangzhou', 'rm-bad', 'full', '1001', 'CSV', 'URL'";

/// `INSERT` a minimal valid row plus `extra` columns, expecting the rule `rule` to refuse it.
async fn refused(db: &TestDb, extra_cols: &str, extra_vals: &str, rule: &str) {
    let sql = format!("INSERT INTO jobs ({COLS}, {extra_cols}) VALUES ({VALS}, {extra_vals})");
    let err = db.exec(&sql).await.expect_err(&sql).to_string();
    assert!(
        err.contains(rule),
        "{sql}\nshould be refused by {rule}: {err}"
    );
    assert_eq!(db.query_i64("SELECT count(*) FROM jobs").await, 0, "{sql}");
}

fn claim(now: chrono::DateTime<Utc>) -> ClaimParams {
    ClaimParams {
        owner: "w1".into(),
        limit: 10,
        lease: Duration::from_secs(60),
        now,
    }
}

/// PostgreSQL `'-infinity'` in `run_at` made `serve` panic on every claim; `'infinity'`
/// broke every read. SQLite has no infinity: the natural REAL expression for "now in ms",
/// text in INTEGER columns and a year past 9999 stood in for it.
async fn unreadable_times_and_numbers_are_refused(db: TestDb) {
    match db.backend {
        Backend::Postgres => {
            refused(&db, "run_at", "'-infinity'", "jobs_run_at_time").await;
            refused(&db, "run_at", "'infinity'", "jobs_run_at_time").await;
            refused(&db, "run_at", "'262143-01-01'", "jobs_run_at_time").await;
        }
        Backend::Sqlite => {
            // The natural "now in ms" is a REAL (+ 0.5: now and then it is a whole number,
            // which SQLite stores as an INTEGER and is fine).
            let real_now = "(julianday('now') - 2440587.5) * 86400000 + 0.5";
            refused(&db, "run_at", real_now, "jobs_run_at_time").await;
            refused(&db, "run_at", "'soon'", "jobs_run_at_time").await;
            refused(&db, "run_at", "253402300800000", "jobs_run_at_time").await;
            refused(&db, "priority", "'high'", "jobs_priority_range").await;
            refused(&db, "bak_set_size", "'big'", "jobs_bak_set_size_bytes").await;
            refused(&db, "max_attempts", "2.5", "jobs_max_attempts_range").await;
        }
    }
    refused(&db, "priority", "2147483647", "jobs_priority_range").await;
    refused(&db, "max_attempts", "2147483647", "jobs_max_attempts_range").await;
    refused(&db, "max_attempts", "0", "jobs_max_attempts_range").await;
    refused(&db, "bak_set_size", "-1", "jobs_bak_set_size_bytes").await;
}

/// A SQL insert in state `submitting` (no lease) blocked its instance forever; one in
/// `running` without a task waited out the missing-task grace. Only the service moves a
/// job past `queued`.
async fn sql_inserts_only_fresh_queued_jobs(db: TestDb) {
    refused(&db, "state", "'submitting'", "jobs_").await;
    refused(&db, "state", "'running'", "jobs_").await;
    refused(&db, "state", "'failed'", "jobs_insert_queued_only").await;
    refused(&db, "lease_owner", "'me'", "jobs_insert_queued_only").await;
    refused(&db, "attempts", "3", "jobs_insert_queued_only").await;
    refused(&db, "remote_task_id", "'dt-1'", "jobs_insert_queued_only").await;
    // And the state invariants hold for updates too.
    db.exec(&format!("INSERT INTO jobs ({COLS}) VALUES ({VALS})"))
        .await
        .unwrap();
    let err = db
        .exec("UPDATE jobs SET state = 'submitting'")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("jobs_submitting_has_lease"), "{err}");
    let err = db
        .exec("UPDATE jobs SET state = 'running'")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("jobs_running_has_task"), "{err}");
}

/// The request rules of the API hold for SQL too.
async fn request_rules_match_the_api(db: TestDb) {
    refused(
        &db,
        "download_point_in_time",
        "1661331864",
        "jobs_point_in_time_ms",
    )
    .await;
    refused(&db, "target_path", "'a/../b'", "jobs_target_path_safe").await;
    refused(
        &db,
        "target_bucket",
        "'Bad_Bucket'",
        "jobs_target_bucket_name",
    )
    .await;
    refused(&db, "cluster_name", "'dds x'", "jobs_cluster_name_valid_id").await;
    refused(&db, "admin_database", "'a.b'", "jobs_admin_database_name").await;
    refused(&db, "use_zstd", "'yes'", "jobs_use_zstd_flag").await;
    // The lengths of the rules, at both edges (PostgreSQL tests a length and an unbounded
    // pattern, migration 0011; SQLite and the API a bounded one): one past is refused...
    for (col, val, rule) in [
        (
            "cluster_name",
            "c".repeat(129),
            "jobs_cluster_name_valid_id",
        ),
        ("cluster_name", String::new(), "jobs_cluster_name_valid_id"),
        ("target_bucket", "ab".into(), "jobs_target_bucket_name"),
        ("target_bucket", "b".repeat(64), "jobs_target_bucket_name"),
        ("target_bucket", "-bucket".into(), "jobs_target_bucket_name"),
        ("admin_database", "d".repeat(65), "jobs_admin_database_name"),
        ("admin_database", String::new(), "jobs_admin_database_name"),
        (
            "idempotency_key",
            String::new(),
            "jobs_idempotency_key_valid",
        ),
    ] {
        refused(&db, col, &format!("'{val}'"), rule).await;
    }
    // ...and the edge itself is accepted.
    for (col, val) in [
        ("cluster_name", "c".repeat(128)),
        ("target_bucket", "abc".into()),
        ("target_bucket", "b".repeat(63)),
        ("admin_database", "d".repeat(64)),
        ("idempotency_key", "k".repeat(255)),
    ] {
        let sql = format!("INSERT INTO jobs ({COLS}, {col}) VALUES ({VALS}, '{val}')");
        db.exec(&sql).await.expect(&sql);
        db.exec("DELETE FROM jobs").await.unwrap();
    }
    refused(
        &db,
        "idempotency_key",
        &format!("'{}'", "k".repeat(256)),
        "jobs_idempotency_key_valid",
    )
    .await;
    // A broken rule reaches the caller as bad input naming the field, not a 500.
    let sql = format!("INSERT INTO jobs ({COLS}, priority) VALUES ({VALS}, 5000)");
    let raw = db.exec(&sql).await.unwrap_err();
    match StoreError::from(raw) {
        StoreError::Invalid(v) => {
            assert_eq!(v.field, "priority");
            assert!(v.rule.contains("between -1000 and 1000"), "{v}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// The request rules hold for an operator's `UPDATE` too: on a job that can still be sent,
/// and on a finished job brought back to `queued`; a finished job's history may keep what
/// it was (PostgreSQL checks these per statement in a trigger, SQLite with CHECKs).
async fn request_rules_hold_for_updates_and_retries(db: TestDb) {
    db.exec(&format!("INSERT INTO jobs ({COLS}) VALUES ({VALS})"))
        .await
        .unwrap();
    let err = db
        .exec("UPDATE jobs SET target_path = 'a/../b'")
        .await
        .expect_err("a queued job's request must stay valid")
        .to_string();
    assert!(err.contains("jobs_target_path_safe"), "{err}");
    match StoreError::from(
        db.exec("UPDATE jobs SET use_zstd = 'yes'")
            .await
            .unwrap_err(),
    ) {
        StoreError::Invalid(v) => assert_eq!(v.field, "use_zstd", "{v}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    db.exec("UPDATE jobs SET state = 'failed'").await.unwrap();
    db.exec("UPDATE jobs SET target_path = 'a/../b'")
        .await
        .expect("a finished job is exempt: history is not rewritten");
    let err = db
        .exec("UPDATE jobs SET state = 'queued'")
        .await
        .expect_err("a retried job must be sendable")
        .to_string();
    assert!(err.contains("jobs_target_path_safe"), "{err}");
    assert_eq!(
        db.query_i64("SELECT count(*) FROM jobs WHERE state = 'failed'")
            .await,
        1
    );
}

/// Switch the database's rules off (as a manual repair or an old version might have), so
/// a row the code cannot read gets in.
async fn smuggle(db: &TestDb, cols: &str, vals: &str) {
    let insert = format!("INSERT INTO jobs ({COLS}, {cols}) VALUES ({VALS}, {vals})");
    let sql = match db.backend {
        Backend::Sqlite => format!("PRAGMA ignore_check_constraints = ON; {insert};"),
        Backend::Postgres => format!(
            "ALTER TABLE jobs DROP CONSTRAINT jobs_run_at_time, \
             DROP CONSTRAINT jobs_next_poll_at_time; {insert};"
        ),
    };
    db.exec(&sql).await.expect("smuggled row");
}

/// A row that slipped past the rules is quarantined by the claim: marked failed with
/// Store.Quarantined, its instance freed, and the valid job beside it claimed.
async fn an_unreadable_row_is_quarantined_not_fatal(db: TestDb) {
    let bad_run_at = match db.backend {
        Backend::Sqlite => "1.5",
        Backend::Postgres => "'-infinity'",
    };
    smuggle(&db, "run_at", bad_run_at).await;
    let good = db.enqueue("rm-good").await;
    let now = Utc::now();
    let claimed = db
        .store
        .job_claim(&claim(now))
        .await
        .expect("claim goes on");
    assert_eq!(
        claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![good.id]
    );
    let page = db
        .store
        .job_list(&JobFilter::default())
        .await
        .expect("list goes on");
    let bad = page
        .jobs
        .iter()
        .find(|j| j.request.instance == "rm-bad")
        .expect("the quarantined row is listed");
    assert_eq!(bad.state, JobState::Failed);
    let error = bad.last_error.as_ref().expect("error recorded");
    assert_eq!(error.code, "Store.Quarantined");
    assert!(error.message.contains("run_at"), "{}", error.message);
    assert!(bad.lease_owner.is_none());
    let events = db.store.event_list(bad.id).await.unwrap();
    assert_eq!(events.last().unwrap().to_state, JobState::Failed);
    // The operator can retry it (its values are readable again) or leave it.
    let again = db.store.job_get(bad.id).await.unwrap().unwrap();
    assert_eq!(again.state, JobState::Failed);
}

/// The same on the read paths and the tracker's claim: each quarantines instead of
/// failing the whole list or round.
async fn read_paths_and_the_tracker_quarantine_too(db: TestDb) {
    let (bad_run_at, bad_poll) = match db.backend {
        Backend::Sqlite => ("'later'", "1.5"),
        Backend::Postgres => ("'infinity'", "'-infinity'"),
    };
    smuggle(&db, "run_at", bad_run_at).await;
    let id = db.query_i64("SELECT max(id) FROM jobs").await;
    let job = db
        .store
        .job_get(id)
        .await
        .expect("get goes on")
        .expect("row");
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.last_error.unwrap().code, "Store.Quarantined");

    // A running job whose next poll time cannot be read.
    let running = db.enqueue("rm-running").await;
    let sql = format!(
        "{}UPDATE jobs SET state = 'running', remote_task_id = 'dt-1', next_poll_at = {bad_poll} \
         WHERE id = {}",
        match db.backend {
            Backend::Sqlite => "PRAGMA ignore_check_constraints = ON; ",
            Backend::Postgres => "",
        },
        running.id
    );
    db.exec(&sql).await.unwrap();
    let polled = db
        .store
        .job_claim_polls(&PollClaimParams {
            owner: "t1".into(),
            limit: 10,
            lease: Duration::from_secs(60),
            now: Utc::now(),
        })
        .await
        .expect("poll claim goes on");
    assert!(polled.is_empty());
    let after = db.store.job_get(running.id).await.unwrap().unwrap();
    assert_eq!(after.state, JobState::Failed);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM jobs WHERE state = 'failed'")
            .await,
        2
    );
}

both_backends!(
    unreadable_times_and_numbers_are_refused,
    sql_inserts_only_fresh_queued_jobs,
    request_rules_match_the_api,
    request_rules_hold_for_updates_and_retries,
    an_unreadable_row_is_quarantined_not_fatal,
    read_paths_and_the_tracker_quarantine_too,
);
