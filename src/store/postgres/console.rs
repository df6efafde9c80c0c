//! [`crate::store::ConsoleStore`] on PostgreSQL: the shared SQL of `store::console` with
//! `timestamptz`.

use super::rows;
use super::PgStore;
use sqlx::Postgres;

crate::store::console::console_store! {
    store: PgStore,
    db: Postgres,
    bind_time: std::convert::identity,
    stored_time: chrono::DateTime<chrono::Utc>,
    read_time: Some,
    bucket: "CAST(floor(extract(epoch FROM finished_at - $1) * 1000 / $2) AS BIGINT)",
}
