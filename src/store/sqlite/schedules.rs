//! Schedules on this backend (issue #5): the shared SQL of [`crate::store::schedules`] with
//! SQLite's encodings. One process per database file, so the claim needs no row lock; the
//! lease and the fenced advance are kept anyway so the code path is PostgreSQL's.

use super::rows::ms;
use super::SqliteStore;
use sqlx::sqlite::SqliteRow;

/// Times are INTEGER UNIX milliseconds, as in the jobs table.
fn opt_time(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    row.try_get::<Option<i64>, _>(column)?
        .map(|v| {
            DateTime::from_timestamp_millis(v)
                .ok_or_else(|| StoreError::Corrupt(format!("{column}: {v} is not a time")))
        })
        .transpose()
}

crate::store::schedules::schedule_store!(
    store: SqliteStore,
    row: SqliteRow,
    time: ms,
    opt_time: opt_time,
    spec_out: "spec",
    spec_in: "",
    lock: "",
    params: crate::store::sql::Params::Anonymous,
);

async fn begin_write(
    s: &SqliteStore,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
    s.begin().await
}

/// Our own inserts wake the workers directly (the watcher skips ids up to `own_newest`).
fn enqueued(s: &SqliteStore, jobs: &[&crate::model::Job]) {
    if let Some(newest) = jobs.iter().map(|j| j.id).max() {
        s.own_newest
            .fetch_max(newest, std::sync::atomic::Ordering::Relaxed);
    }
    s.wake();
}

crate::store::enqueue_many::job_enqueue_many!(
    store: SqliteStore,
    begin: begin_write,
    time: ms,
    job: super::rows::job,
    enqueued: enqueued,
    params: crate::store::sql::Params::Anonymous,
);
