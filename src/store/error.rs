use crate::model::ValidationError;
use crate::retry::ErrorClass;

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The input broke a rule (application check or CHECK constraint).
    #[error("invalid input: {0}")]
    Invalid(#[from] ValidationError),
    /// `database.url` or pool settings are wrong.
    #[error("database configuration: {0}")]
    Config(String),
    /// Another process holds the SQLite database.
    #[error("database is locked by another process: {0}")]
    Locked(String),
    /// An update asked for a state change the state machine does not have.
    #[error(transparent)]
    Forbidden(#[from] crate::model::transitions::ForbiddenTransition),
    /// A row read back could not be decoded into the model.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

/// A CHECK constraint (or the insert rule's trigger) refused the row: bad input, named by
/// the rule, not a database failure. Everything else stays a [`StoreError::Database`].
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match super::sql::refused_by_rule(&e) {
            Some(v) => StoreError::Invalid(v),
            None => StoreError::Database(e),
        }
    }
}

impl StoreError {
    /// Connection trouble is retryable; bad input and corrupt rows are not.
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Database(e) => sqlx_class(e),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => sqlx_class(e),
            StoreError::Locked(_) => ErrorClass::Retryable,
            _ => ErrorClass::Permanent,
        }
    }
}

/// Lost connections and server shutdowns are retryable: SQLSTATE class 08 (connection
/// exception), 57P01-57P03 (the server or an administrator ended the session), 40001
/// (serialization failure).
fn sqlx_class(e: &sqlx::Error) -> ErrorClass {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => ErrorClass::Retryable,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some(c) if c == "40001" || c.starts_with("08") || c.starts_with("57P") => {
                ErrorClass::Retryable
            }
            _ => ErrorClass::Permanent,
        },
        _ => ErrorClass::Permanent,
    }
}
