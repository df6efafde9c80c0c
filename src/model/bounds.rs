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
/// Free text the cloud takes (`target_path`, `admin_database`, …).
pub const TEXT_MAX_LEN: usize = 1024;
/// OSS bucket names: 3-63 lowercase letters, digits and `-`, starting and ending with a
/// letter or digit (OSS naming rules).
pub const BUCKET_LEN: RangeInclusive<usize> = 3..=63;
/// Every stored time: 1970-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z, in UNIX ms. Both
/// databases store these without loss, and adding a few years to one cannot overflow.
pub const TIME_MS: RangeInclusive<i64> = 0..=253_402_300_799_999;
/// `DownloadPointInTime` is UNIX *milliseconds*; a value below 10^12 (2001-09-09 in ms)
/// can only be seconds, which the cloud would read as January 1970.
pub const POINT_IN_TIME_MIN_MS: i64 = 1_000_000_000_000;

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
    if IDEMPOTENCY_KEY_LEN.contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            "must be 1-255 visible ASCII characters",
        ))
    }
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
    fn times_stay_in_the_stored_range() {
        assert!(time_from_ms(-1).is_none());
        assert!(time_from_ms(*TIME_MS.end() + 1).is_none());
        let last = time_from_ms(*TIME_MS.end()).unwrap();
        assert_eq!(last.to_rfc3339(), "9999-12-31T23:59:59.999+00:00");
        assert!(time("run_at", last).is_ok());
    }
}
