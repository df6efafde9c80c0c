//! Decoding PostgreSQL rows into the model.

use crate::model::{
    DownloadRequest, Instance, InstanceKey, Job, JobError, JobEvent, JobState, RemoteStatus,
};
use crate::store::sql::tags_from_json;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

fn get_time(row: &PgRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    Ok(row.try_get::<DateTime<Utc>, _>(column)?)
}

fn get_opt_time(row: &PgRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(row.try_get::<Option<DateTime<Utc>>, _>(column)?)
}

crate::store::sql::row_decoders!(PgRow);
