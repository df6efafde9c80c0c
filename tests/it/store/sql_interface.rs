//! docs/sql-interface.md is an interface: its enqueue `INSERT` is executed verbatim here,
//! on both backends, and the job it makes is claimable.

use crate::helpers::db::{both_backends, Backend, TestDb};
use chrono::Utc;
use dbs_archiver::model::{JobSource, JobState};
use dbs_archiver::store::ClaimParams;
use std::time::Duration;

const DOC: &str = include_str!("../../../docs/sql-interface.md");

/// The SQL between `<!-- BEGIN enqueue-NAME -->` and `<!-- END enqueue-NAME -->`,
/// without the code fence.
fn documented(name: &str) -> String {
    let begin = format!("<!-- BEGIN enqueue-{name} -->");
    let end = format!("<!-- END enqueue-{name} -->");
    let start = DOC.find(&begin).expect("begin marker") + begin.len();
    let stop = DOC[start..].find(&end).expect("end marker") + start;
    let block = &DOC[start..stop];
    let body: Vec<&str> = block
        .lines()
        .filter(|l| !l.trim_start().starts_with("```"))
        .collect();
    let sql = body.join("\n").trim().to_string();
    assert!(sql.starts_with("INSERT INTO jobs"), "{sql}");
    sql
}

async fn documented_insert_enqueues_a_claimable_job(db: TestDb) {
    let sql = documented(match db.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    });
    assert_eq!(db.exec(&sql).await.unwrap(), 1);
    let claimed = db
        .store
        .job_claim(&ClaimParams {
            owner: "w".into(),
            limit: 10,
            lease: Duration::from_secs(60),
            now: Utc::now() + chrono::Duration::seconds(1),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let job = &claimed[0];
    assert_eq!(job.source, JobSource::Sql);
    assert_eq!(job.state, JobState::Submitting);
    assert_eq!(job.max_attempts, 5);
    assert!(job.request.validate().is_ok());
    let events = db.store.event_list(job.id).await.unwrap();
    assert_eq!(events[0].reason, "enqueued via sql");
}

async fn documented_oss_example_is_valid_too(db: TestDb) {
    let sql = documented(match db.backend {
        Backend::Sqlite => "sqlite-oss",
        Backend::Postgres => "postgres-oss",
    });
    assert_eq!(db.exec(&sql).await.unwrap(), 1);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM jobs WHERE state = 'queued'")
            .await,
        1
    );
}

both_backends!(
    documented_insert_enqueues_a_claimable_job,
    documented_oss_example_is_valid_too,
);
