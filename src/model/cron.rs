//! Cron expressions evaluated in an IANA time zone, with the daylight-saving rules written
//! down instead of inherited by accident.
//!
//! Two spellings are accepted:
//! - the standard 5-field crontab (`min hour dom month dow`, Sunday = 0 or 7, and — as in
//!   Vixie cron — a day matches when *either* day-of-month or day-of-week matches if both
//!   are restricted);
//! - the `cron` crate's 6/7-field form with seconds (and an optional year), with that crate's
//!   semantics (Sunday = 1, day-of-month AND day-of-week), plus the `@daily`-style shorthands.
//!
//! The `cron` crate evaluates a schedule directly in the zone, and on its own it gets DST
//! wrong for archival purposes: a local time that does not exist (spring forward) is
//! silently skipped, and a local time that happens twice (fall back) fires twice. So we ask
//! the crate only for matching *wall-clock* times (evaluated in a zone without DST) and map
//! each one to an instant ourselves:
//! - a wall-clock time that exists once fires then;
//! - a wall-clock time that exists twice fires once, at its **first** occurrence;
//! - a wall-clock time that does not exist fires at the **first valid instant after the
//!   gap** (02:30 on a 02:00→03:00 spring-forward day fires at 03:00); several matches
//!   inside one gap collapse into that single fire.
//!
//! The mapping is monotonic, so fire times stay strictly increasing.

use crate::model::ValidationError;
use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use std::str::FromStr;

/// A parsed cron expression bound to its time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    tz: Tz,
    /// Normalised cron-crate expressions; a fire is a wall-clock match of any of them (more
    /// than one only for the crontab "day-of-month OR day-of-week" rule).
    parts: Vec<cron::Schedule>,
}

const DOW_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Parse a timezone name, naming the field on error.
pub fn parse_timezone(field: &str, name: &str) -> Result<Tz, ValidationError> {
    Tz::from_str(name.trim()).map_err(|_| {
        ValidationError::new(
            field,
            format!("unknown IANA time zone {name:?} (e.g. Asia/Shanghai, Europe/Berlin, UTC)"),
        )
    })
}

impl CronSchedule {
    /// Parse `expr` (5-, 6- or 7-field, or `@hourly|@daily|@weekly|@monthly|@yearly`) in the
    /// zone `timezone`. Errors name the field (`cron` or `timezone`).
    pub fn parse(expr: &str, timezone: &str) -> Result<Self, ValidationError> {
        let tz = parse_timezone("timezone", timezone)?;
        let parts = normalise(expr)?
            .into_iter()
            .map(|e| {
                cron::Schedule::from_str(&e).map_err(|err| {
                    ValidationError::new("cron", format!("invalid expression {expr:?}: {err}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let s = Self { tz, parts };
        if s.next_after(Utc::now()).is_none() {
            return Err(ValidationError::new(
                "cron",
                format!("expression {expr:?} never fires in the future"),
            ));
        }
        Ok(s)
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first fire strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Wall-clock matches are generated in a zone without DST (UTC used as "naive").
        let local_after = after.with_timezone(&self.tz).naive_local();
        let start = Utc.from_utc_datetime(&local_after);
        let mut iters: Vec<_> = self
            .parts
            .iter()
            .map(|p| p.after(&start).peekable())
            .collect();
        // A bound on candidates that map to or before `after` (the repeated hour of a
        // fall-back day holds at most 3,600 per-second matches).
        for _ in 0..100_000 {
            let naive = iters.iter_mut().filter_map(|it| it.peek().copied()).min()?;
            for it in iters.iter_mut() {
                if it.peek() == Some(&naive) {
                    it.next();
                }
            }
            let instant = resolve_local(&self.tz, naive.naive_utc());
            if instant > after {
                return Some(instant);
            }
        }
        None
    }

    /// Fire times strictly after `after`, in order.
    pub fn fires_after(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let mut cursor = after;
        std::iter::from_fn(move || {
            let next = self.next_after(cursor)?;
            cursor = next;
            Some(next)
        })
    }
}

/// Map a wall-clock time of `tz` to the instant it fires at (module doc: DST rules).
pub fn resolve_local(tz: &Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => gap_end(tz, naive),
    }
}

/// The first valid instant after the DST gap that swallows `naive`.
fn gap_end(tz: &Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = naive
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(naive);
    // Gaps are at most a day long (Samoa skipped 2011-12-30); walk whole minutes.
    for _ in 0..(2 * 24 * 60) {
        probe += Duration::minutes(1);
        if let Some(valid) = tz.from_local_datetime(&probe).earliest() {
            let valid = valid.with_timezone(&Utc);
            // The transition is within the minute before `valid`: find its exact second.
            let offset = tz.offset_from_utc_datetime(&valid.naive_utc()).fix();
            return (0..60)
                .rev()
                .map(|s| valid - Duration::seconds(s))
                .find(|t| tz.offset_from_utc_datetime(&t.naive_utc()).fix() == offset)
                .unwrap_or(valid);
        }
    }
    // Unreachable with real zone data; fall back to the pre-gap offset.
    Utc.from_utc_datetime(&naive)
}

/// Turn the accepted spellings into cron-crate expressions (see the module doc).
fn normalise(expr: &str) -> Result<Vec<String>, ValidationError> {
    let expr = expr.trim();
    if expr.starts_with('@') {
        return Ok(vec![expr.to_string()]);
    }
    let fields: Vec<&str> = expr.split_whitespace().collect();
    match fields.len() {
        5 => {
            let [min, hour, dom, month, dow] = [fields[0], fields[1], fields[2], fields[3], fields[4]];
            let dow = crontab_dow(dow)?;
            let restricted = |f: &str| f != "*" && f != "?";
            if restricted(dom) && restricted(&dow) {
                // Vixie cron: either day field may match.
                Ok(vec![
                    format!("0 {min} {hour} {dom} {month} *"),
                    format!("0 {min} {hour} * {month} {dow}"),
                ])
            } else {
                Ok(vec![format!("0 {min} {hour} {dom} {month} {dow}")])
            }
        }
        6 | 7 => Ok(vec![fields.join(" ")]),
        n => Err(ValidationError::new(
            "cron",
            format!(
                "expected 5 fields (min hour dom month dow), or 6/7 with seconds (and year), got {n}"
            ),
        )),
    }
}

/// Rewrite a crontab day-of-week field (0-7, Sunday = 0 or 7, names) as day names, which
/// the cron crate reads unambiguously (its numbers start at Sunday = 1).
fn crontab_dow(field: &str) -> Result<String, ValidationError> {
    if field == "*" || field == "?" {
        return Ok(field.to_string());
    }
    let bad = |why: String| ValidationError::new("cron", format!("day-of-week {field:?}: {why}"));
    let day = |s: &str| -> Result<u32, ValidationError> {
        if let Ok(n) = s.parse::<u32>() {
            return if n <= 7 {
                Ok(n % 7)
            } else {
                Err(bad(format!("{n} is not in 0-7")))
            };
        }
        DOW_NAMES
            .iter()
            .position(|d| d.eq_ignore_ascii_case(s.get(..3).unwrap_or(s)) && s.len() >= 3)
            .map(|p| p as u32)
            .ok_or_else(|| bad(format!("{s:?} is not a day")))
    };
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(format!("step {s:?} must be a positive number")))?;
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (day(a)?, day(b)?);
            // `5-7` means Fri..Sun: 7 is Sunday at the end of the week.
            let b = if b == 0 && a > 0 { 7 } else { b };
            if a > b {
                return Err(bad(format!("range {range:?} runs backwards")));
            }
            (a, b)
        } else if item.contains('/') {
            (day(range)?, 6)
        } else {
            let d = day(range)?;
            (d, d)
        };
        let mut d = lo;
        while d <= hi {
            days[(d % 7) as usize] = true;
            d += step;
        }
    }
    Ok(DOW_NAMES
        .iter()
        .zip(days)
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate, Weekday};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn fires(expr: &str, tz: &str, from: &str, to: &str) -> Vec<DateTime<Utc>> {
        let c = CronSchedule::parse(expr, tz).unwrap();
        c.fires_after(utc(from))
            .take_while(|t| *t <= utc(to))
            .collect()
    }

    fn local_dates(ts: &[DateTime<Utc>], tz: &str) -> Vec<NaiveDate> {
        let tz: Tz = tz.parse().unwrap();
        ts.iter()
            .map(|t| t.with_timezone(&tz).date_naive())
            .collect()
    }

    #[test]
    fn cron_crate_alone_loses_spring_and_doubles_fall() {
        // What the crate does without our mapping (why this module exists).
        let s = cron::Schedule::from_str("0 30 2 * * *").unwrap();
        let ny: Tz = "America/New_York".parse().unwrap();
        let start = utc("2026-03-07T12:00:00Z").with_timezone(&ny);
        let spring: Vec<_> = s.after(&start).take(2).collect();
        assert_eq!(
            spring[0].day(),
            9,
            "crate skips the non-existent 02:30 of Mar 8"
        );
        let s = cron::Schedule::from_str("0 30 1 * * *").unwrap();
        let start = utc("2026-10-31T12:00:00Z").with_timezone(&ny);
        let fall: Vec<_> = s.after(&start).take(2).collect();
        assert_eq!(fall[0].day(), 1);
        assert_eq!(fall[1].day(), 1, "crate fires 01:30 twice on Nov 1");
    }

    #[test]
    fn new_york_spring_forward_fires_once_at_gap_end() {
        let f = fires(
            "30 2 * * *",
            "America/New_York",
            "2026-03-06T12:00:00Z",
            "2026-03-10T12:00:00Z",
        );
        assert_eq!(
            f,
            vec![
                utc("2026-03-07T07:30:00Z"), // 02:30 EST
                utc("2026-03-08T07:00:00Z"), // 02:30 does not exist → 03:00 EDT
                utc("2026-03-09T06:30:00Z"), // 02:30 EDT
                utc("2026-03-10T06:30:00Z"),
            ]
        );
    }

    #[test]
    fn new_york_fall_back_fires_once_at_first_occurrence() {
        let f = fires(
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T00:00:00Z",
            "2026-11-02T12:00:00Z",
        );
        assert_eq!(
            f,
            vec![
                utc("2026-10-31T05:30:00Z"), // 01:30 EDT
                utc("2026-11-01T05:30:00Z"), // first 01:30 (EDT), not 06:30Z (EST)
                utc("2026-11-02T06:30:00Z"), // 01:30 EST
            ]
        );
        // And a fire time taken as the cursor in the middle of the repeated hour does not
        // produce the second occurrence.
        let c = CronSchedule::parse("30 1 * * *", "America/New_York").unwrap();
        assert_eq!(
            c.next_after(utc("2026-11-01T06:00:00Z")),
            Some(utc("2026-11-02T06:30:00Z"))
        );
    }

    #[test]
    fn berlin_0230_fires_once_per_local_day_across_both_transitions() {
        for (from, to, expected) in [
            (
                "2026-03-27T12:00:00Z",
                "2026-03-31T12:00:00Z",
                vec![
                    "2026-03-28T01:30:00Z", // 02:30 CET
                    "2026-03-29T01:00:00Z", // gap 02:00-03:00 → 03:00 CEST
                    "2026-03-30T00:30:00Z", // 02:30 CEST
                    "2026-03-31T00:30:00Z",
                ],
            ),
            (
                "2026-10-23T12:00:00Z",
                "2026-10-27T12:00:00Z",
                vec![
                    "2026-10-24T00:30:00Z", // 02:30 CEST
                    "2026-10-25T00:30:00Z", // first 02:30 (CEST); 01:30Z (CET) skipped
                    "2026-10-26T01:30:00Z", // 02:30 CET
                    "2026-10-27T01:30:00Z",
                ],
            ),
        ] {
            let f = fires("30 2 * * *", "Europe/Berlin", from, to);
            let want: Vec<_> = expected.into_iter().map(utc).collect();
            assert_eq!(f, want);
            let dates = local_dates(&f, "Europe/Berlin");
            let mut dedup = dates.clone();
            dedup.dedup();
            assert_eq!(dates, dedup, "one fire per local day");
        }
    }

    #[test]
    fn matches_inside_a_gap_collapse_into_one_fire() {
        let f = fires(
            "*/30 * * * *",
            "America/New_York",
            "2026-03-08T06:00:00Z", // 01:00 EST
            "2026-03-08T08:00:00Z",
        );
        assert_eq!(
            f,
            vec![
                utc("2026-03-08T06:30:00Z"), // 01:30 EST
                utc("2026-03-08T07:00:00Z"), // 02:00, 02:30 (gap) and 03:00 EDT
                utc("2026-03-08T07:30:00Z"), // 03:30 EDT
                utc("2026-03-08T08:00:00Z"),
            ]
        );
    }

    #[test]
    fn lord_howe_half_hour_gap() {
        // Australia/Lord_Howe moves by 30 minutes (02:00 → 02:30 on 2026-10-04).
        let f = fires(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-01T12:00:00Z",
            "2026-10-04T12:00:00Z",
        );
        let tz: Tz = "Australia/Lord_Howe".parse().unwrap();
        let locals: Vec<_> = f
            .iter()
            .map(|t| t.with_timezone(&tz).format("%m-%d %H:%M").to_string())
            .collect();
        assert_eq!(locals, vec!["10-02 02:15", "10-03 02:15", "10-04 02:30"]);
    }

    #[test]
    fn five_field_day_of_week_is_crontab_numbering() {
        let c = CronSchedule::parse("0 2 * * 1", "UTC").unwrap();
        let t = c.next_after(utc("2026-01-01T00:00:00Z")).unwrap();
        assert_eq!(t.weekday(), Weekday::Mon);
        for sunday in ["0", "7", "sun", "SUN"] {
            let c = CronSchedule::parse(&format!("0 2 * * {sunday}"), "UTC").unwrap();
            let t = c.next_after(utc("2026-01-01T00:00:00Z")).unwrap();
            assert_eq!(t.weekday(), Weekday::Sun, "{sunday}");
        }
        let c = CronSchedule::parse("0 2 * * 1-5", "UTC").unwrap();
        let days: Vec<_> = c
            .fires_after(utc("2026-01-04T00:00:00Z")) // a Sunday
            .take(6)
            .map(|t| t.weekday())
            .collect();
        use Weekday::*;
        assert_eq!(days, vec![Mon, Tue, Wed, Thu, Fri, Mon]);
        let c = CronSchedule::parse("0 0 * * 5-7", "UTC").unwrap();
        let days: Vec<_> = c
            .fires_after(utc("2026-01-04T00:00:00Z"))
            .take(3)
            .map(|t| t.weekday())
            .collect();
        assert_eq!(days, vec![Fri, Sat, Sun]);
    }

    #[test]
    fn five_field_day_of_month_or_day_of_week() {
        // Vixie cron: the 13th OR a Friday.
        let c = CronSchedule::parse("0 0 13 * 5", "UTC").unwrap();
        let got: Vec<_> = c
            .fires_after(utc("2026-02-01T00:00:00Z"))
            .take(4)
            .map(|t| t.date_naive().to_string())
            .collect();
        assert_eq!(
            got,
            vec!["2026-02-06", "2026-02-13", "2026-02-20", "2026-02-27"]
        );
        let got: Vec<_> = c
            .fires_after(utc("2026-04-01T00:00:00Z"))
            .take(4)
            .map(|t| t.date_naive().to_string())
            .collect();
        assert_eq!(
            got,
            vec!["2026-04-03", "2026-04-10", "2026-04-13", "2026-04-17"]
        );
    }

    #[test]
    fn six_and_seven_field_forms_and_shorthands() {
        let five = CronSchedule::parse("30 2 * * *", "Asia/Shanghai").unwrap();
        let six = CronSchedule::parse("0 30 2 * * *", "Asia/Shanghai").unwrap();
        let seven = CronSchedule::parse("0 30 2 * * * *", "Asia/Shanghai").unwrap();
        let from = utc("2026-05-01T00:00:00Z");
        let want = utc("2026-05-01T18:30:00Z"); // 02:30 CST (+08) on May 2
        assert_eq!(five.next_after(from), Some(want));
        assert_eq!(six.next_after(from), Some(want));
        assert_eq!(seven.next_after(from), Some(want));
        let secs = CronSchedule::parse("*/15 * * * * *", "UTC").unwrap();
        assert_eq!(
            secs.next_after(utc("2026-05-01T00:00:07Z")),
            Some(utc("2026-05-01T00:00:15Z"))
        );
        let daily = CronSchedule::parse("@daily", "Europe/Berlin").unwrap();
        assert_eq!(daily.next_after(from), Some(utc("2026-05-01T22:00:00Z")));
    }

    #[test]
    fn bad_input_names_the_field() {
        for bad in [
            "61 * * * *",
            "* * *",
            "0 0 * * 8",
            "0 0 * * 1/0",
            "0 0 * * 5-1",
            "nonsense here x y z",
            "0 0 0 31 2 * 2020",
        ] {
            let e = CronSchedule::parse(bad, "UTC").unwrap_err();
            assert_eq!(e.field, "cron", "{bad}: {e}");
        }
        let e = CronSchedule::parse("0 2 * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(e.field, "timezone");
        assert!(e.rule.contains("Mars/Olympus"));
    }
}
