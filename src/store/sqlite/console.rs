//! [`crate::store::ConsoleStore`] on SQLite: the shared SQL of `store::console` with
//! times as UNIX ms.

use super::rows::{self, ms};
use super::SqliteStore;
use sqlx::Sqlite;

fn read_ms(v: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(v)
}

crate::store::console::console_store! {
    store: SqliteStore,
    db: Sqlite,
    bind_time: ms,
    stored_time: i64,
    read_time: read_ms,
    bucket: "(finished_at - $1) / $2",
}
