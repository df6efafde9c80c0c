//! Errors of the scheduler library.

use crate::dbs::DbsError;
use crate::model::ValidationError;
use crate::retry::ErrorClass;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// Bad input; names the field. Nothing was stored.
    #[error("invalid schedule: {0}")]
    Invalid(#[from] ValidationError),
    /// No schedule with that name or id.
    #[error("no schedule {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A retryable DescribeBackups failure: the fire is retried on the next tick.
    #[error("resolving latest_full: {0}")]
    Dbs(#[from] DbsError),
}

impl SchedulerError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SchedulerError::Invalid(_) | SchedulerError::NotFound(_) => ErrorClass::Permanent,
            SchedulerError::Store(e) => e.class(),
            SchedulerError::Dbs(e) => e.class(),
        }
    }
}

impl From<SchedulerError> for StoreError {
    fn from(e: SchedulerError) -> Self {
        match e {
            SchedulerError::Store(s) => s,
            SchedulerError::Invalid(v) => StoreError::Invalid(v),
            other => StoreError::Config(other.to_string()),
        }
    }
}
