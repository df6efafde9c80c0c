//! What can go wrong while fetching and storing an archive, each with its class: a
//! retryable error resumes from the partial file later; a permanent one fails the archive
//! with a code and a message that say what to do.

use crate::retry::ErrorClass;

/// Errors of the archive layer. Messages never contain the signed URL or a credential.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The download link has expired (HTTP 403 or past its expiry time): the file is gone
    /// from the cloud's side, so retrying cannot help.
    #[error("the download link expired{}; the archive can no longer be fetched (re-run the download)", .at.map(|t| format!(" at {t}")).unwrap_or_default())]
    UrlExpired {
        at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// More bytes arrived than the task reported: not the file we were promised.
    #[error("size mismatch: the task reported {expected} bytes, the link sent {got} or more")]
    TooLarge { expected: i64, got: i64 },
    /// The body ended before the reported size (a dropped connection); resumable.
    #[error("the body ended after {got} of {expected} bytes")]
    Truncated { expected: i64, got: i64 },
    /// Connection reset, timeout, DNS: resumable.
    #[error("transfer interrupted: {0}")]
    Transfer(String),
    /// The server answered with a status we cannot use.
    #[error("the link answered HTTP {status}")]
    Http { status: u16 },
    /// The sink could not take the object (I/O or object-store error).
    #[error("sink {sink}: {message}")]
    Sink { sink: String, message: String },
    /// The archive names a sink that is not configured (changed settings, SQL insert).
    #[error("sink {0:?} is not configured ([[sinks]])")]
    UnknownSink(String),
    /// A sink setting that only fails when used (credentials file unreadable, …).
    #[error("sink configuration: {0}")]
    Config(String),
}

impl ArchiveError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ArchiveError::Truncated { .. }
            | ArchiveError::Transfer(_)
            | ArchiveError::Sink { .. } => ErrorClass::Retryable,
            ArchiveError::Http { status } if *status >= 500 || *status == 429 || *status == 408 => {
                ErrorClass::Retryable
            }
            _ => ErrorClass::Permanent,
        }
    }

    /// Stable machine code, stored as `archives.last_error_code`.
    pub fn code(&self) -> &'static str {
        match self {
            ArchiveError::UrlExpired { .. } => "Archive.UrlExpired",
            ArchiveError::TooLarge { .. } => "Archive.SizeMismatch",
            ArchiveError::Truncated { .. } => "Archive.Truncated",
            ArchiveError::Transfer(_) => "Archive.TransferInterrupted",
            ArchiveError::Http { .. } => "Archive.Http",
            ArchiveError::Sink { .. } => "Archive.SinkError",
            ArchiveError::UnknownSink(_) => "Archive.UnknownSink",
            ArchiveError::Config(_) => "Archive.SinkConfig",
        }
    }

    /// A reqwest error without the URL (it carries a signature).
    pub(crate) fn transfer(e: reqwest::Error) -> Self {
        ArchiveError::Transfer(e.without_url().to_string())
    }

    pub(crate) fn sink(sink: &str, e: impl std::fmt::Display) -> Self {
        ArchiveError::Sink {
            sink: sink.to_string(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interruptions_retry_and_expiry_does_not() {
        assert_eq!(
            ArchiveError::Truncated {
                expected: 2,
                got: 1
            }
            .class(),
            ErrorClass::Retryable
        );
        assert_eq!(
            ArchiveError::Http { status: 503 }.class(),
            ErrorClass::Retryable
        );
        assert_eq!(
            ArchiveError::Http { status: 404 }.class(),
            ErrorClass::Permanent
        );
        assert_eq!(
            ArchiveError::UrlExpired { at: None }.class(),
            ErrorClass::Permanent
        );
        assert!(ArchiveError::UrlExpired { at: None }
            .to_string()
            .contains("expired"));
    }
}
