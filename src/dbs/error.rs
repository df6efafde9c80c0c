//! One error type for every cloud call, classified the way the worker must react.

use crate::retry::ErrorClass;
use std::fmt;
use std::time::Duration;

/// How the worker must react to a failed cloud call (issue #3, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbsErrorKind {
    /// `DBS.DownloadTask.JobAlreadyExist`: find the existing task and adopt it.
    AlreadySubmitted,
    /// `DBS.DownloadTask.OnlyOneRunningOrFailedTask`: the instance holds another task.
    InstanceBusy,
    /// `Throttling*`: wait (`retry_after` when the gateway hinted it); no attempt spent.
    Throttled,
    /// Connect errors, 5xx, `ServiceUnavailable`, `InternalError`, `SignatureNonceUsed`.
    Transient,
    /// The request may have been applied (timeout or broken connection after sending).
    Ambiguous,
    /// `DBS.DownloadTask.CannotFind` and friends.
    NotFound,
    /// Everything else: OSS, permissions, not-supported, invalid parameters, signature/AK.
    Permanent,
}

impl DbsErrorKind {
    /// Every kind, for zero-valued metric series at start-up.
    pub const ALL: [DbsErrorKind; 7] = [
        DbsErrorKind::AlreadySubmitted,
        DbsErrorKind::InstanceBusy,
        DbsErrorKind::Throttled,
        DbsErrorKind::Transient,
        DbsErrorKind::Ambiguous,
        DbsErrorKind::NotFound,
        DbsErrorKind::Permanent,
    ];

    /// Low-cardinality label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            DbsErrorKind::AlreadySubmitted => "already_submitted",
            DbsErrorKind::InstanceBusy => "instance_busy",
            DbsErrorKind::Throttled => "throttled",
            DbsErrorKind::Transient => "transient",
            DbsErrorKind::Ambiguous => "ambiguous",
            DbsErrorKind::NotFound => "not_found",
            DbsErrorKind::Permanent => "permanent",
        }
    }
}

/// A failed cloud call. Never carries credentials: only code, message, RequestId.
#[derive(Debug, Clone, thiserror::Error)]
pub struct DbsError {
    pub kind: DbsErrorKind,
    /// Cloud code (`DBS.DownloadTask.OssForbid`, `Throttling.User`, …) or a local one
    /// (`Network.Connect`, `Network.Timeout`, `Request.Invalid`, `Response.Malformed`).
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    pub http_status: Option<u16>,
    /// From `x-ratelimit-*` `TimeLeft` when throttled.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for DbsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(id) = &self.request_id {
            write!(f, " (RequestId {id})")?;
        }
        Ok(())
    }
}

impl DbsError {
    pub fn new(kind: DbsErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: code.into(),
            message: message.into(),
            request_id: None,
            http_status: None,
            retry_after: None,
        }
    }

    /// Retryable unless permanent or not-found.
    pub fn class(&self) -> ErrorClass {
        match self.kind {
            DbsErrorKind::Permanent | DbsErrorKind::NotFound => ErrorClass::Permanent,
            _ => ErrorClass::Retryable,
        }
    }
}

impl From<crate::model::ValidationError> for DbsError {
    fn from(e: crate::model::ValidationError) -> Self {
        DbsError::new(DbsErrorKind::Permanent, "Request.Invalid", e.to_string())
    }
}
