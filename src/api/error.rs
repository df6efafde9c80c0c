//! The one error type of the HTTP API and its one response shape.
//!
//! Every error answer — 4xx and 5xx alike — is `{"error":{"code","message","field"}}` so a
//! client needs a single decoder: `code` is a stable machine string (documented in
//! `docs/api.md`), `message` is for people, and `field` names the input that was wrong when
//! there is one. Internal errors never leak their cause to the client: the response is an
//! opaque 500 and the cause chain goes to the log instead.

use crate::model::ValidationError;
use crate::retry::ErrorClass;
use crate::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for machines (`code`, `field`) and people (`message`).
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `validation_failed`, `not_found`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The offending input (JSON field path, query parameter, path segment or header),
    /// when the error is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Why the token check failed; decides the `WWW-Authenticate` challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A bearer token that matches no configured token.
    Invalid,
}

/// Every way an API call can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request could not be read: malformed JSON, wrong content type, a bad query
    /// parameter or path segment (400).
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// Well-formed input that breaks a rule: wrong type, unknown field, invalid enum value,
    /// a missing conditional field (422).
    #[error("{field}: {message}")]
    Validation {
        code: &'static str,
        field: String,
        message: String,
    },
    #[error("authentication required")]
    Unauthorized(AuthFailure),
    #[error("this token may only read")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The resource is in a state that does not allow the operation (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type: send Content-Type: application/json")]
    UnsupportedMediaType,
    /// The handler did not finish within `api.request_timeout_ms` (503).
    #[error("request took longer than {0} ms")]
    Timeout(u64),
    /// A dependency (the database) is not usable right now (503).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// Anything else: answered as an opaque 500, logged with its cause chain.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(
        code: &'static str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
            field: field.map(str::to_string),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation {
            code: "validation_failed",
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Timeout(_) | ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Validation { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unavailable { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Timeout(_) => "timeout",
            ApiError::Internal(_) => "internal",
        }
    }

    fn field(&self) -> Option<String> {
        match self {
            ApiError::BadRequest { field, .. } => field.clone(),
            ApiError::Validation { field, .. } => Some(field.clone()),
            ApiError::PayloadTooLarge { .. } => Some("body".to_string()),
            _ => None,
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Validation { message, .. } => message.clone(),
            // Never show the cause of an internal error to the client.
            ApiError::Internal(_) => "internal error; see the server log".to_string(),
            other => other.to_string(),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::invalid(e.field, e.rule)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(v) => v.into(),
            e if e.class() == ErrorClass::Retryable => {
                tracing::warn!(error = %error_chain(&e), "database unavailable");
                ApiError::Unavailable {
                    code: "database_unavailable",
                    message: "the database is not reachable right now; try again".into(),
                }
            }
            e => ApiError::Internal(anyhow::Error::new(e)),
        }
    }
}

/// `outer: inner: innermost` — the whole story for the log line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "internal error answering an API request");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.message(),
                field: self.field(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::Unauthorized(why) = self {
            let challenge = match why {
                AuthFailure::Missing => r#"Bearer realm="dbs-archiver""#,
                AuthFailure::Invalid => r#"Bearer realm="dbs-archiver", error="invalid_token""#,
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(e: ApiError) -> (StatusCode, serde_json::Value) {
        let r = e.into_response();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn validation_names_the_field() {
        let (status, v) = body_of(ValidationError::new("bak_set_id", "is required").into()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["error"]["code"], "validation_failed");
        assert_eq!(v["error"]["field"], "bak_set_id");
        assert_eq!(v["error"]["message"], "is required");
    }

    #[tokio::test]
    async fn internal_errors_are_opaque() {
        let e = anyhow::anyhow!("password=hunter2 in a connection string").context("outer");
        let (status, v) = body_of(ApiError::Internal(e)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(v["error"]["code"], "internal");
        assert!(!v.to_string().contains("hunter2"), "{v}");
        assert!(v["error"].get("field").is_none());
    }

    #[test]
    fn chain_lists_every_cause() {
        let inner = std::io::Error::other("disk on fire");
        let outer = StoreError::Corrupt(format!("row 3: {inner}"));
        assert_eq!(error_chain(&outer), "corrupt row: row 3: disk on fire");
    }
}
