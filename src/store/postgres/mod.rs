//! The scale-out backend: PostgreSQL, any number of processes on one database.
//!
//! STUB: filled in by the queue work (issue #2).

mod schedules;

use super::StoreError;

/// The scale-out backend: any number of processes on one database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: sqlx::PgPool,
}

impl PgStore {
    pub async fn connect(_url: &str, _max_connections: u32) -> Result<Self, StoreError> {
        Err(StoreError::Config(
            "postgres store not implemented yet".into(),
        ))
    }
}
