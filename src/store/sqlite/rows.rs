//! Decoding SQLite rows into the model. Times are INTEGER UNIX milliseconds.

use crate::model::{
    bounds, DownloadRequest, Instance, InstanceKey, Job, JobError, JobEvent, JobState, RemoteStatus,
};
use crate::store::sql::tags_from_json;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// A time as stored: UNIX milliseconds.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(v: i64, column: &str) -> Result<DateTime<Utc>, StoreError> {
    bounds::time_from_ms(v).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "jobs.{column}: {v} is not a time between 1970-01-01 and 9999-12-31"
        ))
    })
}

fn get_time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    time(row.try_get::<i64, _>(column)?, column)
}

fn get_opt_time(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    row.try_get::<Option<i64>, _>(column)?
        .map(|v| time(v, column))
        .transpose()
}

crate::store::sql::row_decoders!(SqliteRow);
