//! The error codes the simulator can answer with, with the HTTP status and the verbatim
//! message of dbs-api.md §3.4 (business) and §8.2 (gateway).
//!
//! Business codes with HTTP 200 come back in the DBS envelope with `Success: "false"`;
//! everything else comes back in the gateway body of §8.1 (`RequestId`, `HostId`, `Code`,
//! `Message`, `Recommend`).

/// One code the simulator knows how to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: &'static str,
    pub http_status: u16,
    pub message: &'static str,
}

/// dbs-api.md §3.4, verbatim.
pub const BUSINESS_CODES: &[ErrorCode] = &[
    c(200, "DBS.DownloadTask.CannotFind", "Can not find download task."),
    c(
        200,
        "DBS.DownloadTask.JobAlreadyExist",
        "Job already submit in recent days, please check it.",
    ),
    c(
        200,
        "DBS.DownloadTask.OnlyOneRunningOrFailedTask",
        "There can be only one running or failed task for the instance.",
    ),
    c(
        200,
        "DBS.DownloadTask.OssForbid",
        "OSS is forbidden to access. Please check your OSS bucket.",
    ),
    c(
        200,
        "DBS.DownloadTask.OssStorageTypeInvalid",
        "Unsupported bucket storage. Please make sure that your OSS bucket's storgae type is standard.",
    ),
    c(200, "Forbidden.InstanceNotFound", "instance not found"),
    c(
        200,
        "DBS.DownloadTask.BakSetError",
        "DBS download task bak set error. Your backup set does not meet the requirements.",
    ),
    c(
        200,
        "DBS.DownloadTask.CustinIdNotSupport",
        "DBS DownloadTask CustinIdNotSupport.",
    ),
    c(
        200,
        "DBS.DownloadTask.CustinNameNotSupport",
        "DBS DownloadTask CustinNameNotSupport.",
    ),
    c(
        200,
        "DBS.DownloadTask.DbTypeNotSupport",
        "DBS DownloadTask DbTypeNotSupport.",
    ),
    c(
        200,
        "DBS.DownloadTask.InstanceInfoNotSupport",
        "DBS DownloadTask InstanceInfoNotSupport.",
    ),
    c(
        200,
        "DBS.DownloadTask.InstanceParamNotSupport",
        "DBS DownloadTask InstanceParamNotSupport.",
    ),
    c(
        200,
        "DBS.DownloadTask.InstanceStorageTypeNotSupport",
        "DBS DownloadTask InstanceStorageTypeNotSupport.",
    ),
    c(
        200,
        "DBS.DownloadTask.InstanceVersionNotSupport",
        "DBS DownloadTask InstanceVersionNotSupport.",
    ),
    c(200, "DBS.DownloadTask.NotSupport", "DBS DownloadTask NotSupport."),
    c(
        200,
        "DBS.DownloadTask.RegionNotSupport",
        "DBS DownloadTask RegionNotSupport.",
    ),
    c(
        200,
        "DBS.DownloadTask.UserNotSupport",
        "DBS DownloadTask UserNotSupport.",
    ),
    c(200, "DBS.ParamIsInValid", "formatType can not be empty"),
    c(403, "Request.Forbidden", "Have no Permissions"),
    c(
        403,
        "DBS.NoPermissionException",
        "Rejected by ValidationChecker.",
    ),
    c(404, "DBS.NotExists", "data source do not existed."),
];

/// dbs-api.md §8.2 (statuses as printed there; `SignatureDoesNotMatch` is 403).
pub const GATEWAY_CODES: &[ErrorCode] = &[
    c(
        400,
        "MissingParameter",
        "A required parameter is not supplied.",
    ),
    c(
        400,
        "IncompleteSignature",
        "The request signature does not conform to Aliyun standards.",
    ),
    c(
        403,
        "SignatureDoesNotMatch",
        "Specified signature is not matched with our calculation.",
    ),
    c(
        404,
        "InvalidAccessKeyId.NotFound",
        "Specified access key is not found.",
    ),
    c(
        400,
        "InvalidTimeStamp.Format",
        "Specified time stamp or date value is not well formatted.",
    ),
    c(
        400,
        "InvalidTimeStamp.Expired",
        "Specified time stamp or date value is expired.",
    ),
    c(
        400,
        "SignatureNonceUsed",
        "Specified signature nonce was used already.",
    ),
    c(
        400,
        "MissingSecurityToken",
        "SecurityToken is mandatory for this action.",
    ),
    c(
        400,
        "InvalidSecurityToken.Expired",
        "Specified SecurityToken is expired.",
    ),
    c(
        400,
        "InvalidSecurityToken.MismatchWithAccessKey",
        "Specified SecurityToken mismatch with the AccessKey.",
    ),
    c(
        404,
        "InvalidApi.NotFound",
        "Specified api is not found, please check your url and method.",
    ),
    c(
        403,
        "Forbidden.RAM",
        "User not authorized to operate on the specified resource.",
    ),
    c(
        400,
        "Throttling.User",
        "Request was denied due to user flow control.",
    ),
    c(
        400,
        "Throttling.Api",
        "Request was denied due to api flow control.",
    ),
    c(
        503,
        "ServiceUnavailable",
        "The request has failed due to a temporary failure of the server.",
    ),
    c(
        500,
        "InternalError",
        "The request processing has failed due to some unknown error, exception or failure.",
    ),
    c(
        404,
        "InvalidDBInstanceId.NotFound",
        "Specified instance does not exist or not support.",
    ),
    c(
        400,
        "InvalidParameter",
        "The specified parameter is not valid.",
    ),
];

const fn c(http_status: u16, code: &'static str, message: &'static str) -> ErrorCode {
    ErrorCode {
        code,
        http_status,
        message,
    }
}

/// Find a code in either table.
pub fn lookup(code: &str) -> Option<ErrorCode> {
    BUSINESS_CODES
        .iter()
        .chain(GATEWAY_CODES)
        .find(|c| c.code == code)
        .copied()
}

/// Business codes answered inside the DBS envelope (`Success: "false"`, HTTP 200).
pub fn is_business(code: &str) -> bool {
    BUSINESS_CODES.iter().any(|c| c.code == code)
}

/// A reply the simulator decided to give instead of data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: String,
    pub http_status: u16,
    pub message: String,
    /// Extra headers (throttling hints).
    pub headers: Vec<(String, String)>,
}

impl Rejection {
    /// A known code with its table message.
    pub fn of(code: &str) -> Self {
        let known = lookup(code).unwrap_or(ErrorCode {
            code: "InternalError",
            http_status: 500,
            message: "unknown simulator error code",
        });
        Self {
            code: code.to_string(),
            http_status: known.http_status,
            message: known.message.to_string(),
            headers: Vec::new(),
        }
    }

    /// A known code with a specific message (e.g. which parameter is invalid).
    pub fn with_message(code: &str, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::of(code)
        }
    }

    /// `DBS.ParamIsInValid` naming the field, in the service's camelCase style.
    pub fn param(message: impl Into<String>) -> Self {
        Self::with_message("DBS.ParamIsInValid", message)
    }

    /// `MissingParameter` naming the parameter (gateway style).
    pub fn missing(name: &str) -> Self {
        Self::with_message(
            "MissingParameter",
            format!(
                "The input parameter \"{name}\" that is mandatory for processing this request is not supplied."
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_business_ones_match_the_doc_statuses() {
        let mut seen = std::collections::HashSet::new();
        for c in BUSINESS_CODES.iter().chain(GATEWAY_CODES) {
            assert!(seen.insert(c.code), "duplicate {}", c.code);
        }
        assert_eq!(lookup("SignatureDoesNotMatch").unwrap().http_status, 403);
        assert_eq!(
            lookup("InvalidAccessKeyId.NotFound").unwrap().http_status,
            404
        );
        assert_eq!(lookup("DBS.NotExists").unwrap().http_status, 404);
        assert!(is_business("DBS.DownloadTask.JobAlreadyExist"));
        assert!(!is_business("Throttling.User"));
    }
}
