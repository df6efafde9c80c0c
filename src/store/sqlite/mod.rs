//! The embedded backend: SQLite, one process per database file.
//!
//! STUB: filled in by the queue work (issue #2).

mod schedules;

use super::StoreError;

/// The embedded backend: one process per database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: sqlx::SqlitePool,
}

impl SqliteStore {
    pub async fn connect(_url: &str, _max_connections: u32) -> Result<Self, StoreError> {
        Err(StoreError::Config(
            "sqlite store not implemented yet".into(),
        ))
    }
}
