//! Reading requests so that every mistake comes back in the one error shape, naming the
//! field: JSON bodies (through `serde_path_to_error`), query strings, path segments and
//! headers.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// A JSON body. Like `axum::Json`, but a rejection is an [`ApiError`]: malformed JSON is
/// 400 `malformed_json`, a wrong type / unknown field / invalid enum value is 422
/// `validation_failed` with `field` set to the JSON path of the culprit.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(usize::MAX);
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_rejection(e, limit))?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The configured body limit, put into request extensions so rejections can quote it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

fn body_rejection(e: BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::bad_request("unreadable_body", Some("body"), e.body_text())
    }
}

/// Deserialize `bytes`, mapping serde's complaint to the field it is about.
///
/// Steps: text → JSON value (a syntax error is 400 `malformed_json`); a second pass over
/// the text refusing a key given twice in one object (400 `duplicate_key` naming it: a
/// JSON value keeps only the last, so `"region"` twice would silently pick one); a check
/// that no string holds control characters (PostgreSQL cannot store NUL, and no field has a
/// use for them); then value → `T` through `serde_path_to_error` (422 naming the field).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("malformed_json", Some("body"), strip_position(&e)))?;
    if let Some(path) = duplicate_key(bytes) {
        return Err(ApiError::bad_request(
            "duplicate_key",
            Some(&path),
            "key given more than once in the same object",
        ));
    }
    no_control_chars(&value, &mut String::new())?;
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Ok(v),
        Err(err) => {
            let path = err.path().to_string();
            let message = strip_position(err.inner());
            let parent = if path == "." || path.is_empty() || path.contains('?') {
                None
            } else {
                Some(path)
            };
            // serde reports missing fields at the parent: name the field.
            let named = quoted_name(&message, "unknown field `")
                .or_else(|| quoted_name(&message, "missing field `"));
            let field = match (parent, named) {
                // Unknown fields are already part of the path; missing ones are not.
                (Some(p), Some(n)) if p == n || p.ends_with(&format!(".{n}")) => p,
                (Some(p), Some(n)) => format!("{p}.{n}"),
                (None, Some(n)) => n,
                (Some(p), None) => p,
                (None, None) => "body".to_string(),
            };
            Err(ApiError::invalid(field, message))
        }
    }
}

/// The path (`a.b[2].c`) of the first key repeated within one object, if any. Call on text
/// already known to be valid JSON. Also used for JSON files the CLI reads.
pub fn duplicate_key(bytes: &[u8]) -> Option<String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde::de::DeserializeSeed::deserialize(DupSeek(String::new()), &mut de)
        .ok()
        .flatten()
}

/// Walks any JSON value; yields the path of the first duplicated key.
struct DupSeek(String);

impl<'de> serde::de::DeserializeSeed<'de> for DupSeek {
    type Value = Option<String>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DupSeek {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut i = 0;
        while let Some(dup) = seq.next_element_seed(DupSeek(format!("{}[{i}]", self.0)))? {
            found = found.or(dup);
            i += 1;
        }
        Ok(found)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = std::collections::HashSet::new();
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.0.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.0)
            };
            if !seen.insert(key) {
                found = found.or(Some(path.clone()));
            }
            let dup = map.next_value_seed(DupSeek(path))?;
            found = found.or(dup);
        }
        Ok(found)
    }
}

fn no_control_chars(v: &serde_json::Value, path: &mut String) -> Result<(), ApiError> {
    let bad = |path: &str| {
        ApiError::invalid(
            if path.is_empty() { "body" } else { path },
            "must not contain control characters",
        )
    };
    match v {
        serde_json::Value::String(s) if s.chars().any(char::is_control) => Err(bad(path)),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                no_control_chars(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        serde_json::Value::Object(map) => {
            for (k, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                if k.chars().any(char::is_control) {
                    return Err(bad(path));
                }
                no_control_chars(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn quoted_name(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next().map(str::to_string)
}

/// serde_json appends " at line L column C"; keep the rule, drop the position.
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Query parameters, each at most once, only from `allowed`.
pub fn query_params(
    raw: Option<&str>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiError::bad_request(
                "unknown_parameter",
                Some(&k),
                format!("unknown query parameter; allowed: {}", allowed.join(", ")),
            ));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(ApiError::bad_request(
                "duplicate_parameter",
                Some(&k),
                "query parameter given more than once",
            ));
        }
    }
    Ok(out)
}

/// Earliest and latest times the API accepts: both databases store them without loss.
pub fn time_in_range(field: &str, t: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    Ok(crate::model::bounds::time(field, t)?)
}

/// An RFC 3339 timestamp from a query parameter.
pub fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    let t = DateTime::parse_from_rfc3339(value)
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_parameter",
                Some(field),
                "must be an RFC 3339 timestamp such as 2024-05-01T00:00:00Z",
            )
        })?
        .with_timezone(&Utc);
    time_in_range(field, t)
}

/// A positive integer id from a path segment or query parameter.
pub fn parse_id(field: &str, value: &str) -> Result<i64, ApiError> {
    match value.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::bad_request(
            "invalid_parameter",
            Some(field),
            "must be a positive integer",
        )),
    }
}

/// Reject NUL and other control characters: PostgreSQL cannot store NUL in text, and no
/// cloud identifier or path contains control characters.
pub fn printable(field: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        format: crate::model::FormatType,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
    }

    fn field_of(json: &str) -> (String, Option<String>) {
        match parse_json::<Outer>(json.as_bytes()).unwrap_err() {
            ApiError::BadRequest { code, field, .. } => (code.to_string(), field),
            ApiError::Validation { code, field, .. } => (code.to_string(), Some(field)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field_of(r#"{"name":"a","inner":{"format":"csv"}}"#),
            ("validation_failed".into(), Some("inner.format".into()))
        );
        assert_eq!(
            field_of(r#"{"name":"a","bogus":1}"#),
            ("validation_failed".into(), Some("bogus".into()))
        );
        assert_eq!(
            field_of(r#"{"name":"a","inner":{"format":"CSV","x":1}}"#),
            ("validation_failed".into(), Some("inner.x".into()))
        );
        assert_eq!(
            field_of(r#"{"inner":null}"#),
            ("validation_failed".into(), Some("name".into()))
        );
        assert_eq!(
            field_of(r#"{"name":5}"#),
            ("validation_failed".into(), Some("name".into()))
        );
        assert_eq!(
            field_of(r#"{"name":"a""#),
            ("malformed_json".into(), Some("body".into()))
        );
        assert_eq!(
            field_of("{\"name\":\"a\\u0000b\"}"),
            ("validation_failed".into(), Some("name".into()))
        );
        assert_eq!(
            field_of("{\"name\":\"a\",\"inner\":{\"format\":\"\\n\"}}"),
            ("validation_failed".into(), Some("inner.format".into()))
        );
        assert_eq!(
            field_of(r#"{"name":"a"} x"#),
            ("malformed_json".into(), Some("body".into()))
        );
    }

    #[test]
    fn duplicate_keys_are_refused_by_name() {
        let dup = |json: &str| match parse_json::<serde_json::Value>(json.as_bytes()) {
            Err(ApiError::BadRequest {
                code: "duplicate_key",
                field,
                ..
            }) => field,
            other => panic!("{json}: {other:?}"),
        };
        assert_eq!(dup(r#"{"region":"a","region":"b"}"#), Some("region".into()));
        assert_eq!(
            dup(r#"{"t":{"kind":"x","kind":"y"}}"#),
            Some("t.kind".into())
        );
        assert_eq!(
            dup(r#"{"l":[{"a":1},{"a":1,"a":2}]}"#),
            Some("l[1].a".into())
        );
        assert!(
            parse_json::<serde_json::Value>(br#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#)
                .is_ok()
        );
    }

    #[test]
    fn query_rejects_unknown_and_duplicates() {
        assert!(query_params(Some("a=1&b=2"), &["a", "b"]).is_ok());
        let e = query_params(Some("a=1&c=2"), &["a", "b"]).unwrap_err();
        assert!(matches!(e, ApiError::BadRequest { field: Some(f), .. } if f == "c"));
        let e = query_params(Some("a=1&a=2"), &["a"]).unwrap_err();
        assert!(matches!(
            e,
            ApiError::BadRequest {
                code: "duplicate_parameter",
                ..
            }
        ));
    }

    #[test]
    fn times_and_ids() {
        assert!(parse_time("t", "2024-05-01T00:00:00Z").is_ok());
        assert!(parse_time("t", "yesterday").is_err());
        assert!(parse_time("t", "+200000-01-01T00:00:00Z").is_err());
        assert_eq!(parse_id("id", "42").unwrap(), 42);
        assert!(parse_id("id", "0").is_err());
        assert!(parse_id("id", "99999999999999999999").is_err());
        assert!(printable("x", "a\0b").is_err());
    }
}
