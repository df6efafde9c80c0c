//! Schedules on this backend (issue #5): the shared SQL of [`crate::store::schedules`] with
//! PostgreSQL's encodings. Any number of processes share the database: due schedules are
//! claimed with `FOR UPDATE SKIP LOCKED` and leased, so concurrent schedulers split the
//! work instead of queueing behind each other's row locks.

use super::PgStore;
use sqlx::postgres::PgRow;

fn at(t: DateTime<Utc>) -> DateTime<Utc> {
    t
}

fn opt_time(row: &PgRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(row.try_get(column)?)
}

crate::store::schedules::schedule_store!(
    store: PgStore,
    row: PgRow,
    time: at,
    opt_time: opt_time,
    spec_out: "spec::text AS spec",
    spec_in: "::jsonb",
    lock: " FOR UPDATE SKIP LOCKED",
    params: crate::store::sql::Params::Numbered,
);

async fn begin_write(
    s: &PgStore,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    Ok(s.pool.begin().await?)
}

fn enqueued(s: &PgStore, _jobs: &[&crate::model::Job]) {
    s.wake();
}

crate::store::enqueue_many::job_enqueue_many!(
    store: PgStore,
    begin: begin_write,
    time: at,
    job: super::rows::job,
    enqueued: enqueued,
    params: crate::store::sql::Params::Numbered,
);
