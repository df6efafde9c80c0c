//! The bounds every entry point shares: the API, the CLI, the config's schedules, the
//! direct `dbs` commands and the SQL CHECK constraints (migrations/*/0005_hardening.sql).
//!
//! One place, so a value the API refuses is refused everywhere with the same words, and a
//! row the database accepts is always one the code can read. The integration test
//! `store::bounds` inserts each boundary (and one past it) with plain SQL on both backends
//! to hold the migrations to these numbers.

use super::ValidationError;
use chrono::{DateTime, Utc};
use std::ops::RangeInclusive;

/// `priority`: higher runs first.
pub const PRIORITY: RangeInclusive<i32> = -1000..=1000;
/// `max_attempts`: attempts before a job fails.
pub const MAX_ATTEMPTS: RangeInclusive<i32> = 1..=100;
/// `Idempotency-Key` / `idempotency_key`: visible ASCII.
pub const IDEMPOTENCY_KEY_LEN: RangeInclusive<usize> = 1..=255;
/// Region, instance, cluster and backup-set ids: letters, digits, `-`, `_`, `.`.
pub const IDENTIFIER_LEN: RangeInclusive<usize> = 1..=128;
/// Free text the cloud takes (`target_path`, …).
pub const TEXT_MAX_LEN: usize = 1024;
/// `admin_database`: a MongoDB database name (MongoDB's own limit is 64 bytes).
pub const ADMIN_DATABASE_LEN: RangeInclusive<usize> = 1..=64;
/// Characters a MongoDB database name may not hold (besides control characters).
pub const ADMIN_DATABASE_FORBIDDEN: &[char] = &['/', '\\', '.', ' ', '"', '$'];
/// The stored spelling of the MongoDB string flags (`is_cluster`, `use_zstd`, …).
pub const FLAG_VALUES: [&str; 2] = ["true", "false"];
/// OSS bucket names: 3-63 lowercase letters, digits and `-`, starting and ending with a
/// letter or digit (OSS naming rules).
pub const BUCKET_LEN: RangeInclusive<usize> = 3..=63;
/// Every stored time: 1970-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z, in UNIX ms. Both
/// databases store these without loss, and adding a few years to one cannot overflow.
pub const TIME_MS: RangeInclusive<i64> = 0..=253_402_300_799_999;
/// `DownloadPointInTime` is UNIX *milliseconds*; a value below 10^12 (2001-09-09 in ms)
/// can only be seconds, which the cloud would read as January 1970.
pub const POINT_IN_TIME_MIN_MS: i64 = 1_000_000_000_000;

/// `Ok` when `ok`, else the field and the rule `rule()` words.
fn check(ok: bool, field: &str, rule: impl FnOnce() -> String) -> Result<(), ValidationError> {
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(field, rule()))
    }
}

fn out_of_range<T: std::fmt::Display>(field: &str, r: &RangeInclusive<T>) -> ValidationError {
    ValidationError::new(
        field,
        format!("must be between {} and {}", r.start(), r.end()),
    )
}

/// `priority` within [`PRIORITY`].
pub fn priority(field: &str, v: i32) -> Result<i32, ValidationError> {
    if PRIORITY.contains(&v) {
        Ok(v)
    } else {
        Err(out_of_range(field, &PRIORITY))
    }
}

/// `max_attempts` within [`MAX_ATTEMPTS`].
pub fn max_attempts(field: &str, v: i32) -> Result<i32, ValidationError> {
    if MAX_ATTEMPTS.contains(&v) {
        Ok(v)
    } else {
        Err(out_of_range(field, &MAX_ATTEMPTS))
    }
}

/// An idempotency key: 1-255 visible ASCII characters.
pub fn idempotency_key(field: &str, v: &str) -> Result<(), ValidationError> {
    let ok = IDEMPOTENCY_KEY_LEN.contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic());
    check(ok, field, || {
        format!(
            "must be {}-{} visible ASCII characters",
            IDEMPOTENCY_KEY_LEN.start(),
            IDEMPOTENCY_KEY_LEN.end()
        )
    })
}

/// A cloud identifier (region, instance, backup set, cluster): [`IDENTIFIER_LEN`] ASCII
/// letters, digits, `-`, `_` and `.`. Anything else would be refused by the cloud or
/// break a log line, a metric label or a path.
pub fn identifier(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::new(
            field,
            "is required and must not be empty",
        ));
    }
    if !IDENTIFIER_LEN.contains(&value.len())
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(ValidationError::new(
            field,
            format!(
                "must be {}-{} characters of letters, digits, '-', '_' or '.'",
                IDENTIFIER_LEN.start(),
                IDENTIFIER_LEN.end()
            ),
        ));
    }
    Ok(())
}

/// An OSS bucket name ([`BUCKET_LEN`]; OSS refuses anything else, late and vaguely).
pub fn bucket(field: &str, value: &str) -> Result<(), ValidationError> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = BUCKET_LEN.contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && edge(value.chars().next())
        && edge(value.chars().last());
    check(ok, field, || {
        format!(
            "must be an OSS bucket name: {}-{} lowercase letters, digits and '-', \
             starting and ending with a letter or digit",
            BUCKET_LEN.start(),
            BUCKET_LEN.end()
        )
    })
}

/// Free text: at most [`TEXT_MAX_LEN`] characters, no control characters (PostgreSQL
/// cannot store NUL, and a newline would forge log lines).
pub fn text(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.chars().count() > TEXT_MAX_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be at most {TEXT_MAX_LEN} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A path in a bucket: [`text`] without a `..` segment, so a template or a typo cannot
/// climb out of the prefix the operator chose.
pub fn object_path(field: &str, value: &str) -> Result<(), ValidationError> {
    text(field, value)?;
    if value.split('/').any(|seg| seg == "..") {
        return Err(ValidationError::new(
            field,
            "must not contain '..' segments",
        ));
    }
    Ok(())
}

/// A MongoDB database name: [`ADMIN_DATABASE_LEN`] characters, none of
/// [`ADMIN_DATABASE_FORBIDDEN`] and no control characters (MongoDB's naming rules).
pub fn admin_database(field: &str, value: &str) -> Result<(), ValidationError> {
    let ok = ADMIN_DATABASE_LEN.contains(&value.chars().count())
        && !value
            .chars()
            .any(|c| c.is_control() || ADMIN_DATABASE_FORBIDDEN.contains(&c));
    check(ok, field, || {
        format!(
            "must be {}-{} characters without control characters or any of / \\ . space \" $",
            ADMIN_DATABASE_LEN.start(),
            ADMIN_DATABASE_LEN.end()
        )
    })
}

/// A MongoDB string flag in any case, normalized to its stored spelling (`true`/`false`):
/// the cloud types these as strings, and `TRUE` and `true` must not become two requests.
pub fn flag(field: &str, value: &str) -> Result<String, ValidationError> {
    let lower = value.to_ascii_lowercase();
    if FLAG_VALUES.contains(&lower.as_str()) {
        Ok(lower)
    } else {
        Err(ValidationError::new(field, "must be true or false"))
    }
}

/// `DownloadPointInTime`: UNIX milliseconds from [`POINT_IN_TIME_MIN_MS`] to the end of
/// [`TIME_MS`].
pub fn point_in_time(field: &str, ms: i64) -> Result<i64, ValidationError> {
    if ms < POINT_IN_TIME_MIN_MS {
        return Err(ValidationError::new(
            field,
            format!(
                "must be UNIX milliseconds (at least {POINT_IN_TIME_MIN_MS}); a smaller value \
                 is seconds, which the cloud would read as January 1970"
            ),
        ));
    }
    if ms > *TIME_MS.end() {
        return Err(ValidationError::new(
            field,
            format!(
                "must be at most {} (9999-12-31T23:59:59.999Z in UNIX milliseconds)",
                TIME_MS.end()
            ),
        ));
    }
    Ok(ms)
}

/// The queue options every enqueue shares (API, CLI, schedule): one check, one wording.
pub fn job_options(
    priority_value: i32,
    max_attempts_value: i32,
    key: Option<&str>,
    run_at: Option<DateTime<Utc>>,
) -> Result<(), ValidationError> {
    priority("priority", priority_value)?;
    max_attempts("max_attempts", max_attempts_value)?;
    if let Some(k) = key {
        idempotency_key("idempotency_key", k)?;
    }
    if let Some(t) = run_at {
        time("run_at", t)?;
    }
    Ok(())
}

/// A time within [`TIME_MS`].
pub fn time(field: &str, t: DateTime<Utc>) -> Result<DateTime<Utc>, ValidationError> {
    if TIME_MS.contains(&t.timestamp_millis()) {
        Ok(t)
    } else {
        Err(ValidationError::new(
            field,
            "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
        ))
    }
}

/// The time of a stored UNIX-ms value, or `None` outside [`TIME_MS`].
pub fn time_from_ms(ms: i64) -> Option<DateTime<Utc>> {
    if TIME_MS.contains(&ms) {
        DateTime::from_timestamp_millis(ms)
    } else {
        None
    }
}

/// Archive retention (`keep_last` per instance, `keep_days`): 0 would delete every archive,
/// which no rule should say by accident.
pub const ARCHIVE_KEEP_LAST: RangeInclusive<u32> = 1..=1_000_000;
pub const ARCHIVE_KEEP_DAYS: RangeInclusive<u32> = 1..=36_500;
/// Archive fetches in flight at once, per process.
pub const ARCHIVE_CONCURRENCY: RangeInclusive<u32> = 1..=256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_name_the_field_and_the_bounds() {
        assert_eq!(priority("priority", 1000), Ok(1000));
        let e = priority("priority", 1001).unwrap_err();
        assert_eq!(e.to_string(), "priority: must be between -1000 and 1000");
        assert!(max_attempts("max_attempts", 0).is_err());
        assert!(max_attempts("max_attempts", 101).is_err());
        assert!(idempotency_key("k", &"x".repeat(256)).is_err());
        assert!(idempotency_key("k", "a b").is_err());
        assert!(idempotency_key("k", &"x".repeat(255)).is_ok());
    }

    #[test]
    fn identifiers_buckets_and_text() {
        assert!(identifier("region", "cn-hangzhou").is_ok());
        assert!(identifier("region", &"a".repeat(128)).is_ok());
        assert!(identifier("region", &"a".repeat(129)).is_err());
        assert!(identifier("cluster_name", "a\u{7}b").is_err());
        assert_eq!(identifier("region", "").unwrap_err().field, "region");
        for ok in ["abc", "my-bucket-1", &"a".repeat(63)] {
            assert!(bucket("target_bucket", ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "-abc", "abc-", "Abc", "a_b", "a.b", &"a".repeat(64)] {
            assert!(bucket("target_bucket", bad).is_err(), "{bad}");
        }
        assert!(object_path("target_path", "a/b/").is_ok());
        assert!(object_path("target_path", "a/../b").is_err());
        assert!(object_path("target_path", "a\nb").is_err());
        assert!(object_path("target_path", &"é".repeat(TEXT_MAX_LEN)).is_ok());
        assert!(object_path("target_path", &"a".repeat(TEXT_MAX_LEN + 1)).is_err());
    }

    #[test]
    fn admin_database_and_flags() {
        assert!(admin_database("admin_database", "admin").is_ok());
        assert!(admin_database("admin_database", &"a".repeat(64)).is_ok());
        for bad in ["", "a/b", "a\\b", "a.b", "a b", "a\"b", "a$b", "a\tb"] {
            assert!(admin_database("admin_database", bad).is_err(), "{bad:?}");
        }
        assert!(admin_database("admin_database", &"a".repeat(65)).is_err());
        assert_eq!(flag("use_zstd", "TRUE").unwrap(), "true");
        assert_eq!(flag("use_zstd", "False").unwrap(), "false");
        let e = flag("use_zstd", "yes").unwrap_err();
        assert_eq!(e.to_string(), "use_zstd: must be true or false");
    }

    #[test]
    fn point_in_time_is_milliseconds() {
        assert!(point_in_time("p", POINT_IN_TIME_MIN_MS).is_ok());
        let e = point_in_time("p", 1_661_331_864).unwrap_err();
        assert!(e.rule.contains("UNIX milliseconds"), "{e}");
        assert!(point_in_time("p", *TIME_MS.end()).is_ok());
        assert!(point_in_time("p", *TIME_MS.end() + 1).is_err());
    }

    #[test]
    fn job_options_name_the_field() {
        assert!(job_options(0, 5, Some("k"), None).is_ok());
        assert_eq!(
            job_options(5000, 5, None, None).unwrap_err().field,
            "priority"
        );
        assert_eq!(
            job_options(0, 1000, None, None).unwrap_err().field,
            "max_attempts"
        );
        let long = "k".repeat(300);
        let e = job_options(0, 5, Some(&long), None).unwrap_err();
        assert_eq!(e.field, "idempotency_key");
    }

    #[test]
    fn times_stay_in_the_stored_range() {
        assert!(time_from_ms(-1).is_none());
        assert!(time_from_ms(*TIME_MS.end() + 1).is_none());
        let last = time_from_ms(*TIME_MS.end()).unwrap();
        assert_eq!(last.to_rfc3339(), "9999-12-31T23:59:59.999+00:00");
        assert!(time("run_at", last).is_ok());
    }
}
