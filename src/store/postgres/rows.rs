//! Decoding PostgreSQL rows into the model.
//!
//! Times are decoded by hand: sqlx's chrono decoder adds the stored microseconds to
//! 2000-01-01 without a check, so `'infinity'` or a year past 262143 (which a SQL client
//! can store) panicked the process. Here such a value is a [`StoreError::Corrupt`], which
//! the store turns into a quarantine of the row.

use crate::model::{
    bounds, DownloadRequest, Instance, InstanceKey, Job, JobError, JobEvent, JobState, RemoteStatus,
};
use crate::store::sql::tags_from_json;
use crate::store::StoreError;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::{Row, ValueRef};

/// A `timestamptz` within [`bounds::TIME_MS`], or why not.
fn get_opt_time(row: &PgRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let raw = row.try_get_raw(column)?;
    if raw.is_null() {
        return Ok(None);
    }
    let corrupt = |what: &str| StoreError::Corrupt(format!("jobs.{column}: {what}"));
    let t = match raw.format() {
        PgValueFormat::Binary => {
            let bytes: [u8; 8] = raw
                .as_bytes()
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt("not a timestamptz"))?;
            let micros = i64::from_be_bytes(bytes);
            let epoch = DateTime::from_timestamp(946_684_800, 0).expect("2000-01-01");
            epoch.checked_add_signed(TimeDelta::microseconds(micros))
        }
        // The text form parses without panicking ('infinity' is an error).
        PgValueFormat::Text => row
            .try_get::<Option<DateTime<Utc>>, _>(column)
            .ok()
            .flatten(),
    };
    match t {
        Some(t) if bounds::TIME_MS.contains(&t.timestamp_millis()) => Ok(Some(t)),
        _ => Err(corrupt(
            "not a time between 1970-01-01 and 9999-12-31 (infinite or out of range)",
        )),
    }
}

fn get_time(row: &PgRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    get_opt_time(row, column)?.ok_or_else(|| StoreError::Corrupt(format!("jobs.{column}: NULL")))
}

crate::store::sql::row_decoders!(PgRow);
