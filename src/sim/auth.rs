//! The gateway's signature check, for both schemes (dbs-api.md §7), reusing the client's
//! signing code so client and simulator can only agree by being right.
//!
//! Order of checks (each failure is one §8.2 code): required parameters → timestamp format
//! and 15-minute window → AccessKeyId → signature (and body hash for V3) → STS token.
//! The nonce is checked by the caller afterwards, so a rejected request does not burn it.

use super::config::SimKey;
use super::errors::Rejection;
use crate::dbs::signing::{self, V3Input};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

/// The parts of an HTTP request the gateway looks at.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    pub path: String,
    /// Decoded query-string pairs (what V3 signs as the canonical query).
    pub query: Vec<(String, String)>,
    /// Decoded form-body pairs (`application/x-www-form-urlencoded`), if any.
    pub form: Vec<(String, String)>,
    /// Header names lower-cased; values as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .chain(&self.form)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Which scheme a request was signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    V3,
    V2,
}

impl Scheme {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scheme::V3 => "v3",
            Scheme::V2 => "v2",
        }
    }
}

/// A request whose signature checked out.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub scheme: Scheme,
    pub access_key_id: String,
    pub nonce: String,
    pub action: String,
    pub version: String,
}

/// Best-effort action name for logging requests that fail before authentication.
pub fn claimed_action(req: &RawRequest) -> String {
    req.header("x-acs-action")
        .or_else(|| req.param("Action"))
        .unwrap_or("Unknown")
        .to_string()
}

/// Verify the request against the configured keys at wall time `now`.
pub fn authenticate(
    req: &RawRequest,
    keys: &[SimKey],
    tolerance: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<Authenticated, Rejection> {
    if let Some(auth) = req.header("authorization") {
        verify_v3(req, auth, keys, tolerance, now)
    } else if req.param("Signature").is_some() {
        verify_v2(req, keys, tolerance, now)
    } else {
        Err(Rejection::with_message(
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards: neither an Authorization header nor a Signature parameter was sent.",
        ))
    }
}

fn check_time(
    value: &str,
    tolerance: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<(), Rejection> {
    let t = parse_acs_date(value).ok_or_else(|| {
        Rejection::with_message(
            "InvalidTimeStamp.Format",
            format!("Specified time stamp or date value is not well formatted: {value:?}, expected yyyy-MM-ddTHH:mm:ssZ."),
        )
    })?;
    let skew = (now - t).num_milliseconds().unsigned_abs();
    if skew > tolerance.as_millis() as u64 {
        return Err(Rejection::with_message(
            "InvalidTimeStamp.Expired",
            format!(
                "Specified time stamp or date value is expired: {value} is more than {} s away from the server time {}.",
                tolerance.as_secs(),
                now.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        ));
    }
    Ok(())
}

/// The one documented form, `yyyy-MM-ddTHH:mm:ssZ` (dbs-api.md §6): UTC with a literal
/// `Z`, no fractional seconds, no offset — as strict as the gateway, so a client that
/// sends anything else fails here and not first in production.
pub fn parse_acs_date(value: &str) -> Option<DateTime<Utc>> {
    let b = value.as_bytes();
    let shape_ok = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// Headers the V3 signature must cover (besides `x-acs-security-token` when sent): the
/// date and the nonce, so neither can be replayed or altered without breaking it.
pub const MUST_SIGN: [&str; 2] = ["x-acs-date", "x-acs-signature-nonce"];

fn find_key<'a>(keys: &'a [SimKey], id: &str) -> Result<&'a SimKey, Rejection> {
    keys.iter()
        .find(|k| k.access_key_id == id)
        .ok_or_else(|| Rejection::of("InvalidAccessKeyId.NotFound"))
}

fn check_token(key: &SimKey, sent: Option<&str>) -> Result<(), Rejection> {
    match (&key.security_token, sent) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(Rejection::of("MissingSecurityToken")),
        (Some(want), Some(got)) if signing::signatures_equal(want.expose_secret(), got) => Ok(()),
        _ => Err(Rejection::of("InvalidSecurityToken.MismatchWithAccessKey")),
    }
}

fn verify_v3(
    req: &RawRequest,
    auth: &str,
    keys: &[SimKey],
    tolerance: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<Authenticated, Rejection> {
    let parsed = signing::parse_v3_authorization(auth).ok_or_else(|| {
        Rejection::with_message(
            "IncompleteSignature",
            "The Authorization header is not `ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…`.",
        )
    })?;
    let need = |name: &str| req.header(name).ok_or_else(|| Rejection::missing(name));
    let action = need("x-acs-action")?.to_string();
    let version = need("x-acs-version")?.to_string();
    let date = need("x-acs-date")?;
    let nonce = need("x-acs-signature-nonce")?.to_string();
    check_time(date, tolerance, now)?;
    let key = find_key(keys, &parsed.access_key_id)?;

    let body_hash = signing::sha256_hex(&req.body);
    let payload_hash = match req.header("x-acs-content-sha256") {
        Some(sent) if !sent.eq_ignore_ascii_case(&body_hash) => {
            return Err(Rejection::with_message(
                "SignatureDoesNotMatch",
                "x-acs-content-sha256 does not match the SHA-256 of the request body.",
            ))
        }
        Some(sent) => sent.to_string(),
        None => body_hash,
    };
    let signed: Vec<&str> = parsed.signed_headers.iter().map(String::as_str).collect();
    if let Some(missing) = signed.iter().find(|h| req.header(h).is_none()) {
        return Err(Rejection::with_message(
            "IncompleteSignature",
            format!("SignedHeaders lists {missing:?}, which the request does not carry."),
        ));
    }
    if let Some(unsigned) = MUST_SIGN.iter().find(|h| !signed.contains(h)) {
        return Err(Rejection::with_message(
            "IncompleteSignature",
            format!("{unsigned} must be a signed header."),
        ));
    }
    if req.header("x-acs-security-token").is_some() && !signed.contains(&"x-acs-security-token") {
        return Err(Rejection::with_message(
            "IncompleteSignature",
            "x-acs-security-token must be a signed header.",
        ));
    }
    let input = V3Input {
        method: &req.method,
        path: &req.path,
        query: &req.query,
        headers: &req.headers,
        payload_hash: &payload_hash,
    };
    let (canonical, _) = signing::v3_canonical_request(&input, Some(&signed));
    let expected = signing::v3_signature(key.access_key_secret.expose_secret(), &canonical);
    if !signing::signatures_equal(&expected, &parsed.signature.to_ascii_lowercase()) {
        return Err(Rejection::with_message(
            "SignatureDoesNotMatch",
            format!(
                "Specified signature is not matched with our calculation. server string to sign is:{}\n{}",
                signing::V3_ALGORITHM,
                signing::sha256_hex(canonical.as_bytes())
            ),
        ));
    }
    check_token(key, req.header("x-acs-security-token"))?;
    Ok(Authenticated {
        scheme: Scheme::V3,
        access_key_id: parsed.access_key_id,
        nonce,
        action,
        version,
    })
}

fn verify_v2(
    req: &RawRequest,
    keys: &[SimKey],
    tolerance: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<Authenticated, Rejection> {
    let need = |name: &str| req.param(name).ok_or_else(|| Rejection::missing(name));
    let action = need("Action")?.to_string();
    let version = need("Version")?.to_string();
    let ak = need("AccessKeyId")?.to_string();
    let nonce = need("SignatureNonce")?.to_string();
    let timestamp = need("Timestamp")?;
    let method = need("SignatureMethod")?;
    if method != "HMAC-SHA1" {
        return Err(Rejection::with_message(
            "IncompleteSignature",
            format!("SignatureMethod {method:?} is not supported; use HMAC-SHA1."),
        ));
    }
    if need("SignatureVersion")? != "1.0" {
        return Err(Rejection::with_message(
            "IncompleteSignature",
            "SignatureVersion must be 1.0.",
        ));
    }
    check_time(timestamp, tolerance, now)?;
    let key = find_key(keys, &ak)?;
    let all: Vec<(String, String)> = req.query.iter().chain(&req.form).cloned().collect();
    let expected = signing::v2_signature(key.access_key_secret.expose_secret(), &req.method, &all);
    let sent = req.param("Signature").unwrap_or_default();
    if !signing::signatures_equal(&expected, sent) {
        return Err(Rejection::with_message(
            "SignatureDoesNotMatch",
            format!(
                "Specified signature is not matched with our calculation. server string to sign is:{}",
                signing::v2_string_to_sign(&req.method, &all)
            ),
        ));
    }
    check_token(key, req.param("SecurityToken"))?;
    Ok(Authenticated {
        scheme: Scheme::V2,
        access_key_id: ak,
        nonce,
        action,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// The DBS vector of dbs-api.md §7.3, verified from the server side.
    fn v3_request(date: &str, token: Option<&str>, ak: &str) -> RawRequest {
        let query = pairs(&[
            ("BakSetId", "1460050000"),
            ("BakSetType", "full"),
            ("FormatType", "CSV"),
            ("InstanceName", "rm-test123"),
            ("RegionCode", "cn-hangzhou"),
            ("TargetType", "URL"),
        ]);
        let mut headers = pairs(&[
            ("host", "dbs-api.cn-hangzhou.aliyuncs.com"),
            ("x-acs-action", "CreateDownload"),
            ("x-acs-version", "2021-01-01"),
            ("x-acs-date", date),
            ("x-acs-signature-nonce", "0123456789abcdef0123456789abcdef"),
            ("x-acs-content-sha256", signing::EMPTY_SHA256),
            ("accept", "application/json"),
        ]);
        if let Some(t) = token {
            headers.push(("x-acs-security-token".into(), t.into()));
        }
        let input = V3Input {
            method: "POST",
            path: "/",
            query: &query,
            headers: &headers,
            payload_hash: signing::EMPTY_SHA256,
        };
        let auth = signing::v3_authorization(ak, "testsecret", &input);
        headers.push(("authorization".into(), auth));
        RawRequest {
            method: "POST".into(),
            path: "/".into(),
            query,
            form: vec![],
            headers,
            body: vec![],
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const TOL: std::time::Duration = std::time::Duration::from_secs(900);

    #[test]
    fn v3_vector_verifies_and_tampering_does_not() {
        let keys = [SimKey::access_key("testid", "testsecret")];
        let req = v3_request("2024-01-01T00:00:00Z", None, "testid");
        let ok = authenticate(&req, &keys, TOL, at("2024-01-01T00:10:00Z")).unwrap();
        assert_eq!(ok.action, "CreateDownload");
        assert_eq!(ok.scheme, Scheme::V3);

        let mut bad = req.clone();
        bad.query[0].1 = "1460050001".into();
        let e = authenticate(&bad, &keys, TOL, at("2024-01-01T00:10:00Z")).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.http_status),
            ("SignatureDoesNotMatch", 403)
        );

        let e = authenticate(&req, &keys, TOL, at("2024-01-01T00:15:01Z")).unwrap_err();
        assert_eq!(e.code, "InvalidTimeStamp.Expired");

        let wrong = [SimKey::access_key("testid", "other")];
        let e = authenticate(&req, &wrong, TOL, at("2024-01-01T00:00:00Z")).unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");

        let e = authenticate(
            &req,
            &[SimKey::access_key("x", "y")],
            TOL,
            at("2024-01-01T00:00:00Z"),
        )
        .unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.http_status),
            ("InvalidAccessKeyId.NotFound", 404)
        );

        let mut body = req.clone();
        body.body = b"x".to_vec();
        let e = authenticate(&body, &keys, TOL, at("2024-01-01T00:00:00Z")).unwrap_err();
        assert!(e.message.contains("x-acs-content-sha256"));
    }

    #[test]
    fn dates_only_in_the_documented_form() {
        let ok = parse_acs_date("2024-01-01T00:00:00Z").unwrap();
        assert_eq!(ok, at("2024-01-01T00:00:00Z"));
        for bad in [
            "2024-01-01T00:00:00.000Z",
            "2024-01-01T00:00:00+00:00",
            "2024-01-01T00:00:00z",
            "2024-01-01 00:00:00Z",
            "2024-1-01T00:00:00Z",
            "2024-01-01T00:00Z",
            "2024-13-01T00:00:00Z",
            "Mon, 01 Jan 2024 00:00:00 GMT",
        ] {
            assert!(parse_acs_date(bad).is_none(), "{bad}");
        }
        let keys = [SimKey::access_key("testid", "testsecret")];
        let req = v3_request("2024-01-01T00:00:00.000Z", None, "testid");
        let e = authenticate(&req, &keys, TOL, at("2024-01-01T00:00:00Z")).unwrap_err();
        assert_eq!(e.code, "InvalidTimeStamp.Format");
    }

    #[test]
    fn date_and_nonce_must_be_signed() {
        let keys = [SimKey::access_key("testid", "testsecret")];
        let now = at("2024-01-01T00:00:00Z");
        for skip in MUST_SIGN {
            let mut req = v3_request("2024-01-01T00:00:00Z", None, "testid");
            // Re-sign without `skip` in SignedHeaders.
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .filter(|(k, _)| k != "authorization" && k != skip)
                .cloned()
                .collect();
            let input = V3Input {
                method: "POST",
                path: "/",
                query: &req.query,
                headers: &headers,
                payload_hash: signing::EMPTY_SHA256,
            };
            let auth = signing::v3_authorization("testid", "testsecret", &input);
            req.headers.retain(|(k, _)| k != "authorization");
            req.headers.push(("authorization".into(), auth));
            let e = authenticate(&req, &keys, TOL, now).unwrap_err();
            assert_eq!(e.code, "IncompleteSignature", "{skip}");
            assert!(e.message.contains(skip), "{}", e.message);
        }
    }

    #[test]
    fn v3_sts_token_must_match() {
        let keys =
            [SimKey::access_key("STS.testid", "testsecret")
                .with_security_token("sts-token-example")];
        let now = at("2024-01-01T00:00:00Z");
        let req = v3_request(
            "2024-01-01T00:00:00Z",
            Some("sts-token-example"),
            "STS.testid",
        );
        assert!(authenticate(&req, &keys, TOL, now).is_ok());
        let req = v3_request("2024-01-01T00:00:00Z", None, "STS.testid");
        assert_eq!(
            authenticate(&req, &keys, TOL, now).unwrap_err().code,
            "MissingSecurityToken"
        );
        let req = v3_request("2024-01-01T00:00:00Z", Some("other"), "STS.testid");
        assert_eq!(
            authenticate(&req, &keys, TOL, now).unwrap_err().code,
            "InvalidSecurityToken.MismatchWithAccessKey"
        );
    }

    #[test]
    fn v2_vector_verifies() {
        let mut query = pairs(&[
            ("BakSetId", "1460050000"),
            ("BakSetType", "full"),
            ("FormatType", "CSV"),
            ("InstanceName", "rm-test123"),
            ("RegionCode", "cn-hangzhou"),
            ("TargetType", "URL"),
            ("Action", "CreateDownload"),
            ("Version", "2021-01-01"),
            ("Format", "JSON"),
            ("AccessKeyId", "testid"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", "0123456789abcdef0123456789abcdef"),
            ("Timestamp", "2024-01-01T00:00:00Z"),
        ]);
        query.push(("Signature".into(), "042EwOgjmHmgz23dCHjKFf1c+Tg=".into()));
        let req = RawRequest {
            method: "POST".into(),
            path: "/".into(),
            query,
            form: vec![],
            headers: vec![],
            body: vec![],
        };
        let keys = [SimKey::access_key("testid", "testsecret")];
        let ok = authenticate(&req, &keys, TOL, at("2024-01-01T00:01:00Z")).unwrap();
        assert_eq!((ok.scheme, ok.version.as_str()), (Scheme::V2, "2021-01-01"));
        let wrong = [SimKey::access_key("testid", "nope")];
        assert_eq!(
            authenticate(&req, &wrong, TOL, at("2024-01-01T00:01:00Z"))
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch"
        );
    }
}
