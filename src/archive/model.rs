//! An archive: the file of one finished URL download, on its way into (or kept in) a sink.
//!
//! Its own small state machine, next to the job's rather than inside it, so the jobs table
//! keeps the states every other part of the system knows:
//!
//! ```text
//! pending ──claim──► fetching ──verified + committed──► stored ──retention──► deleted
//!    ▲                  │
//!    └──retry (backoff)─┤
//!                       └──permanent error / link expired / attempts spent──► failed
//! ```

use crate::model::{JobId, ValidationError};
use chrono::{DateTime, Utc};
use serde::Serialize;

pub type ArchiveId = i64;

crate::model::wire_enum!(
    /// Where an archive stands (docs/archives.md).
    ArchiveState, "archives.state" {
        Pending => "pending",
        Fetching => "fetching",
        Stored => "stored",
        Failed => "failed",
        Deleted => "deleted",
    }
);

/// The transitions the fetcher and retention may make; every fenced update checks this.
pub fn allowed(from: ArchiveState, to: ArchiveState) -> bool {
    use ArchiveState::*;
    matches!(
        (from, to),
        (Pending, Fetching)
            | (Pending, Failed)
            | (Fetching, Pending)
            | (Fetching, Stored)
            | (Fetching, Failed)
            | (Stored, Deleted)
            | (Failed, Pending)
    )
}

/// One archive row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Archive {
    pub id: ArchiveId,
    pub job_id: JobId,
    pub sink: String,
    pub region: String,
    pub instance: String,
    pub task_id: String,
    /// The signed download link. Not a secret of ours, but it grants access to the file
    /// until it expires, so views show only whether there is one.
    #[serde(skip)]
    pub url: String,
    pub url_expires_at: Option<DateTime<Utc>>,
    /// The task's reported `ExportDataSize`: the fetched file must have exactly this size.
    pub expected_size: Option<i64>,
    pub state: ArchiveState,
    pub run_at: DateTime<Utc>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Bytes fetched so far (progress while fetching; the resume offset after a failure).
    pub bytes_done: i64,
    /// Object name inside the sink, from the sink's template.
    pub object_name: String,
    /// Where the archive is, once stored: `file:///…` or `s3://bucket/key`.
    pub location: Option<String>,
    pub size: Option<i64>,
    /// Lowercase hex SHA-256 of the stored bytes, computed while streaming.
    pub sha256: Option<String>,
    pub last_error_code: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub stored_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// One history row of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveEvent {
    pub id: i64,
    pub archive_id: ArchiveId,
    pub from_state: Option<ArchiveState>,
    pub to_state: ArchiveState,
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// `key: value` lines for `jobs show`: where the archive is, or how far its fetch got.
pub fn summary(a: &Archive) -> Vec<(&'static str, String)> {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut kv = vec![
        ("archive", format!("{} (sink {})", a.state, a.sink)),
        (
            "archive_progress",
            match a.expected_size {
                Some(n) if n > 0 => format!(
                    "{} / {} bytes ({:.0}%), attempt {}/{}",
                    a.bytes_done,
                    n,
                    a.bytes_done as f64 * 100.0 / n as f64,
                    a.attempts,
                    a.max_attempts
                ),
                _ => format!(
                    "{} bytes, attempt {}/{}",
                    a.bytes_done, a.attempts, a.max_attempts
                ),
            },
        ),
    ];
    if a.state == ArchiveState::Stored || a.location.is_some() {
        kv.push(("archive_location", dash(a.location.clone())));
        kv.push(("archive_size", dash(a.size.map(|s| s.to_string()))));
        kv.push(("archive_sha256", dash(a.sha256.clone())));
    }
    if let Some(code) = &a.last_error_code {
        kv.push((
            "archive_error",
            format!("{code}: {}", a.last_error.as_deref().unwrap_or("")),
        ));
    }
    kv
}

/// Why a field of an archive row could not be read.
pub(crate) fn corrupt(column: &str, e: ValidationError) -> crate::store::StoreError {
    crate::store::StoreError::Corrupt(format!("{column}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_transitions_are_allowed() {
        use ArchiveState::*;
        assert!(allowed(Pending, Fetching));
        assert!(allowed(Fetching, Stored));
        assert!(allowed(Stored, Deleted));
        assert!(
            !allowed(Pending, Stored),
            "nothing is stored without a fetch"
        );
        assert!(!allowed(Deleted, Stored));
        assert!(
            !allowed(Failed, Deleted),
            "retention deletes only what we stored"
        );
    }
}
