//! The one place that turns a reply or a transport failure into a [`DbsError`]
//! (dbs-api.md §3.4, §8). The worker reacts to `DbsErrorKind` only, so every rule about
//! which code means what lives here and is unit-tested code by code.

use super::wire::{self, Envelope};
use super::{DbsError, DbsErrorKind};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::time::Duration;

/// Whether repeating the call can create a second effect (CreateDownload, RetryDownloadTask).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Describe*: safe to repeat.
    Read,
    /// Changes remote state: a lost reply is ambiguous.
    Write,
}

/// Headers the gateway uses to hint how long to wait (dbs-api.md §8.3).
pub(crate) const RATELIMIT_HEADERS: [&str; 2] = ["x-ratelimit-user-api", "x-ratelimit-user"];

/// `TimeLeft` (ms) from `Limit:1,Remain:0,TimeLeft:2000,Reset:1234`.
pub(crate) fn parse_time_left(value: &str) -> Option<u64> {
    value.split(',').find_map(|part| {
        let (k, v) = part.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("TimeLeft")
            .then(|| v.trim().parse::<u64>().ok())
            .flatten()
    })
}

/// The larger `TimeLeft` of the two throttling headers, as the SDK does.
pub(crate) fn retry_after_from_headers(headers: &HeaderMap) -> Option<Duration> {
    RATELIMIT_HEADERS
        .iter()
        .flat_map(|name| headers.get_all(*name).iter())
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_time_left)
        .max()
        .map(Duration::from_millis)
}

/// How the worker must react to a cloud error code. Keyed on the code, not the HTTP
/// status (statuses differ between products, §8.2); the status only decides for codes we
/// do not know (5xx ⇒ transient).
pub(crate) fn kind_for_code(code: &str, http_status: Option<u16>) -> DbsErrorKind {
    match code {
        "DBS.DownloadTask.JobAlreadyExist" => DbsErrorKind::AlreadySubmitted,
        "DBS.DownloadTask.OnlyOneRunningOrFailedTask" => DbsErrorKind::InstanceBusy,
        "DBS.DownloadTask.CannotFind" => DbsErrorKind::NotFound,
        "ServiceUnavailable" | "InternalError" | "DBS.InternalError" | "SignatureNonceUsed" => {
            DbsErrorKind::Transient
        }
        // Rejected before anything was applied; fresh credentials can fix it (§8). The
        // client refreshes and retries once, and makes it Permanent for fixed credentials.
        c if credentials_rejected(c) => DbsErrorKind::Transient,
        c if c.starts_with("Throttling") || c.ends_with(".Throttling") => DbsErrorKind::Throttled,
        _ if http_status == Some(429) => DbsErrorKind::Throttled,
        _ if http_status.is_some_and(|s| s >= 500) => DbsErrorKind::Transient,
        _ => DbsErrorKind::Permanent,
    }
}

/// The STS token was refused (expired, revoked, malformed or missing): refresh the
/// credentials and try again, as dbs-api.md §8 says.
pub(crate) fn credentials_rejected(code: &str) -> bool {
    code.starts_with("InvalidSecurityToken.") || code == "MissingSecurityToken"
}

/// A successful reply: the parsed body and its envelope.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub body: Value,
    pub envelope: Envelope,
}

/// Classify an HTTP reply. HTTP 2xx with `Success = false` is an error (§3.4); any
/// non-2xx is an error whatever its body says.
pub(crate) fn classify_reply(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    idempotency: Idempotency,
) -> Result<Parsed, DbsError> {
    let ok_status = (200..300).contains(&status);
    let parsed: Option<Value> = serde_json::from_slice(body).ok().filter(Value::is_object);
    let Some(body) = parsed else {
        let mut err = if ok_status {
            // A garbled success: for a write the effect may have happened.
            let kind = match idempotency {
                Idempotency::Read => DbsErrorKind::Transient,
                Idempotency::Write => DbsErrorKind::Ambiguous,
            };
            DbsError::new(
                kind,
                "Response.Malformed",
                format!("HTTP {status} with a body that is not a JSON object"),
            )
        } else {
            let code = format!("Http.{status}");
            let kind = kind_for_code(&code, Some(status));
            DbsError::new(
                kind,
                code,
                format!("HTTP {status} without a JSON error body"),
            )
        };
        err.http_status = Some(status);
        if err.kind == DbsErrorKind::Throttled {
            err.retry_after = retry_after_from_headers(headers);
        }
        return Err(err);
    };
    let envelope = wire::envelope(&body);
    if ok_status && envelope.success != Some(false) {
        return Ok(Parsed { body, envelope });
    }
    let code = envelope
        .code
        .clone()
        .unwrap_or_else(|| format!("Http.{status}"));
    let kind = kind_for_code(&code, Some(status));
    Err(DbsError {
        kind,
        message: envelope.message.clone().unwrap_or_default(),
        request_id: envelope.request_id.clone(),
        http_status: Some(status),
        retry_after: (kind == DbsErrorKind::Throttled)
            .then(|| retry_after_from_headers(headers))
            .flatten(),
        code,
    })
}

/// Where a transport failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Sending the request / waiting for the response head.
    Send,
    /// Reading the body after the status line arrived.
    Body,
}

/// Classify a transport failure. Connect errors never reached the server (transient);
/// anything after the request left may have been applied: ambiguous for writes.
pub(crate) fn classify_transport(
    err: reqwest::Error,
    idempotency: Idempotency,
    phase: Phase,
) -> DbsError {
    // The URL carries the V2 signature and the query: never put it in an error.
    let err = err.without_url();
    let after_send = |code: &str| {
        let kind = match idempotency {
            Idempotency::Read => DbsErrorKind::Transient,
            Idempotency::Write => DbsErrorKind::Ambiguous,
        };
        (kind, code.to_string())
    };
    let (kind, code) = if err.is_connect() && phase == Phase::Send {
        (DbsErrorKind::Transient, "Network.Connect".to_string())
    } else if err.is_timeout() {
        after_send("Network.Timeout")
    } else {
        after_send("Network.Broken")
    };
    DbsError::new(kind, code, error_chain(&err))
}

/// `error: cause: cause` without any URL (the caller strips it from the top error).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    fn reply(status: u16, body: Value) -> Result<Parsed, DbsError> {
        classify_reply(
            status,
            &HeaderMap::new(),
            body.to_string().as_bytes(),
            Idempotency::Write,
        )
    }

    fn business(code: &str, message: &str) -> DbsError {
        reply(
            200,
            json!({ "RequestId": "req-1", "Success": "false", "Code": code,
                    "ErrCode": code, "Message": message, "ErrMessage": message }),
        )
        .unwrap_err()
    }

    /// Every row of dbs-api.md §3.4, with its verbatim message and HTTP status.
    #[test]
    fn createdownload_business_codes() {
        use DbsErrorKind::*;
        let table: &[(u16, &str, &str, DbsErrorKind)] = &[
            (200, "DBS.DownloadTask.CannotFind", "Can not find download task.", NotFound),
            (200, "DBS.DownloadTask.JobAlreadyExist", "Job already submit in recent days, please check it.", AlreadySubmitted),
            (200, "DBS.DownloadTask.OnlyOneRunningOrFailedTask", "There can be only one running or failed task for the instance.", InstanceBusy),
            (200, "DBS.DownloadTask.OssForbid", "OSS is forbidden to access. Please check your OSS bucket.", Permanent),
            (200, "DBS.DownloadTask.OssStorageTypeInvalid", "Unsupported bucket storage. Please make sure that your OSS bucket's storgae type is standard.", Permanent),
            (200, "Forbidden.InstanceNotFound", "instance not found", Permanent),
            (200, "DBS.DownloadTask.BakSetError", "DBS download task bak set error. Your backup set does not meet the requirements.", Permanent),
            (200, "DBS.DownloadTask.CustinIdNotSupport", "DBS DownloadTask CustinIdNotSupport.", Permanent),
            (200, "DBS.DownloadTask.CustinNameNotSupport", "DBS DownloadTask CustinNameNotSupport.", Permanent),
            (200, "DBS.DownloadTask.DbTypeNotSupport", "DBS DownloadTask DbTypeNotSupport.", Permanent),
            (200, "DBS.DownloadTask.InstanceInfoNotSupport", "DBS DownloadTask InstanceInfoNotSupport.", Permanent),
            (200, "DBS.DownloadTask.InstanceParamNotSupport", "DBS DownloadTask InstanceParamNotSupport.", Permanent),
            (200, "DBS.DownloadTask.InstanceStorageTypeNotSupport", "DBS DownloadTask InstanceStorageTypeNotSupport.", Permanent),
            (200, "DBS.DownloadTask.InstanceVersionNotSupport", "DBS DownloadTask InstanceVersionNotSupport.", Permanent),
            (200, "DBS.DownloadTask.NotSupport", "DBS DownloadTask NotSupport.", Permanent),
            (200, "DBS.DownloadTask.RegionNotSupport", "DBS DownloadTask RegionNotSupport.", Permanent),
            (200, "DBS.DownloadTask.UserNotSupport", "DBS DownloadTask UserNotSupport.", Permanent),
            (200, "DBS.ParamIsInValid", "formatType can not be empty", Permanent),
            (403, "Request.Forbidden", "Have no Permissions", Permanent),
            (403, "DBS.NoPermissionException", "Rejected by ValidationChecker.", Permanent),
            (404, "DBS.NotExists", "data source do not existed.", Permanent),
        ];
        for (status, code, message, kind) in table {
            let body = if *status == 200 {
                json!({ "RequestId": "req-1", "Success": "false", "Code": code,
                        "Message": message })
            } else {
                json!({ "RequestId": "req-1", "HostId": "dbs-api.cn-hangzhou.aliyuncs.com",
                        "Code": code, "Message": message })
            };
            let err = reply(*status, body).unwrap_err();
            assert_eq!(err.kind, *kind, "{code}");
            assert_eq!(err.code, *code);
            assert_eq!(err.message, *message);
            assert_eq!(err.request_id.as_deref(), Some("req-1"));
            assert_eq!(err.http_status, Some(*status));
        }
    }

    /// Every row of dbs-api.md §8.2 at the status its source prints.
    #[test]
    fn gateway_codes() {
        use DbsErrorKind::*;
        let table: &[(u16, &str, DbsErrorKind)] = &[
            (400, "MissingParameter", Permanent),
            (400, "MissingRegionCode", Permanent),
            (400, "InvalidParameter", Permanent),
            (400, "IncompleteSignature", Permanent),
            (403, "SignatureDoesNotMatch", Permanent),
            (404, "InvalidAccessKeyId.NotFound", Permanent),
            (400, "InvalidAccessKeyId.NotFound", Permanent),
            (400, "InvalidAccessKeyId.Inactive", Permanent),
            (403, "Forbidden.AccessKeyDisabled", Permanent),
            (400, "InvalidTimeStamp.Format", Permanent),
            (400, "InvalidTimeStamp.Expired", Permanent),
            (400, "SignatureNonceUsed", Transient),
            // "refresh credentials, then retry" (the client refreshes and retries once).
            (400, "InvalidSecurityToken.Expired", Transient),
            (400, "InvalidSecurityToken.Malformed", Transient),
            (400, "InvalidSecurityToken.MismatchWithAccessKey", Transient),
            (400, "MissingSecurityToken", Transient),
            (404, "InvalidApi.NotFound", Permanent),
            (404, "InvalidProduct.NotFound", Permanent),
            (400, "InvalidAction.NotFound", Permanent),
            (400, "InvalidVersion", Permanent),
            (403, "UnsupportedHTTPMethod", Permanent),
            (403, "Forbidden", Permanent),
            (403, "Forbidden.RAM", Permanent),
            (403, "Request.Forbidden", Permanent),
            (403, "Forbidden.RiskControl", Permanent),
            (400, "Throttling", Throttled),
            (400, "Throttling.User", Throttled),
            (400, "Throttling.Api", Throttled),
            (302, "Throttling", Throttled),
            (503, "ServiceUnavailable", Transient),
            (500, "InternalError", Transient),
            (200, "DBS.InternalError", Transient),
            (502, "SomethingNew", Transient),
        ];
        for (status, code, kind) in table {
            let err = reply(
                *status,
                json!({ "RequestId": "gw-1", "Code": code, "Message": "m",
                        "Recommend": "https://api.alibabacloud.com/troubleshoot" }),
            );
            // DBS.InternalError arrives in a business envelope.
            let err = if *status == 200 {
                business(code, "m")
            } else {
                err.unwrap_err()
            };
            assert_eq!(err.kind, *kind, "{code} at {status}");
            assert_eq!(err.code, *code);
            assert!(err.request_id.is_some());
        }
    }

    #[test]
    fn success_false_is_an_error_whatever_the_status() {
        let err = reply(
            200,
            json!({ "RequestId": "r", "Success": "False", "ErrCode": "DBS.ParamIsInValid",
                    "ErrMessage": "regionCode can not be empty" }),
        )
        .unwrap_err();
        assert_eq!(err.kind, DbsErrorKind::Permanent);
        assert_eq!(err.code, "DBS.ParamIsInValid");
        assert_eq!(err.message, "regionCode can not be empty");
        // Success true, or absent (RDS), is a success.
        assert!(reply(200, json!({ "Success": "True", "Data": {} })).is_ok());
        assert!(reply(200, json!({ "RequestId": "r", "Items": {} })).is_ok());
        // A 4xx is an error even if the body claims success.
        assert!(reply(400, json!({ "Success": true })).is_err());
    }

    #[test]
    fn throttling_takes_the_larger_time_left() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-ratelimit-user-api",
            HeaderValue::from_static("Limit:1,Remain:0,TimeLeft:2000,Reset:1234"),
        );
        headers.insert(
            "x-ratelimit-user",
            HeaderValue::from_static("Limit:100,Remain:0,TimeLeft:3500,Reset:99"),
        );
        let body = json!({ "RequestId": "t", "Code": "Throttling.User", "Message": "flow" });
        let err = classify_reply(
            400,
            &headers,
            body.to_string().as_bytes(),
            Idempotency::Read,
        )
        .unwrap_err();
        assert_eq!(err.kind, DbsErrorKind::Throttled);
        assert_eq!(err.retry_after, Some(Duration::from_millis(3500)));
        assert_eq!(err.request_id.as_deref(), Some("t"));
        // No headers: throttled without a hint.
        let err = reply(400, body).unwrap_err();
        assert_eq!(err.retry_after, None);
        assert_eq!(parse_time_left("Limit:1, Remain:0, TimeLeft: 7"), Some(7));
        assert_eq!(parse_time_left("garbage"), None);
    }

    #[test]
    fn non_json_bodies() {
        let headers = HeaderMap::new();
        let e =
            classify_reply(502, &headers, b"<html>bad gateway", Idempotency::Write).unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_str(), e.http_status),
            (DbsErrorKind::Transient, "Http.502", Some(502))
        );
        let e = classify_reply(429, &headers, b"", Idempotency::Read).unwrap_err();
        assert_eq!(e.kind, DbsErrorKind::Throttled);
        let e = classify_reply(404, &headers, b"nope", Idempotency::Read).unwrap_err();
        assert_eq!(e.kind, DbsErrorKind::Permanent);
        // A garbled 200: a write may have been applied, a read may simply be repeated.
        let e = classify_reply(200, &headers, b"{trunc", Idempotency::Write).unwrap_err();
        assert_eq!(e.kind, DbsErrorKind::Ambiguous);
        let e = classify_reply(200, &headers, b"{trunc", Idempotency::Read).unwrap_err();
        assert_eq!(e.kind, DbsErrorKind::Transient);
    }
}
