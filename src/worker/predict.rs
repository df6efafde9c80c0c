//! When to poll a running task next: around its predicted end rather than on a fixed
//! geometric schedule (issue 11, part 4).
//!
//! A DescribeDownloadTask call tells us little until the task is running and reports
//! `Progress` ("tables done/total"); after that its rate can be measured. So a poll is
//! planned in one of three ways, from what the job row already holds:
//!
//! 1. **Not running yet** (initializing, queueing): nothing to measure; poll when the
//!    elapsed time has quadrupled ([`PRE_RUN_STEP`]), so a long queue costs few calls.
//! 2. **Running, no rate yet** (first sighting, no progress since the anchor, or no
//!    `Progress` at all): poll when the elapsed time has grown by half ([`LEARN_STEP`]),
//!    or sooner when the progress is already far along: half of what is left at the
//!    slowest rate possible (the task ran at most as long as it exists).
//! 3. **Running with a rate**: the rate is measured from the *anchor* — the first progress
//!    seen while running, and when — to now, so the baseline grows with every poll and the
//!    coarse table counts matter less and less. The next poll is at the **earliest** end
//!    the observations allow (one table of rounding in the task's favour on both ends), so
//!    a steady task is never polled late; when that end is already due, a short tail
//!    ([`TAIL_STEP`] of the elapsed time) follows until the task is done.
//!
//! Every delay is jittered down by up to 15 % (tasks that started together drift apart,
//! and no poll moves later than planned) and then bounded by the configured minimum
//! (`tracker.poll_initial_seconds`) and maximum (`tracker.poll_max_seconds`): a stalled or
//! lying `Progress` can slow polling down to the maximum interval, never stop it.

use super::PollSchedule;
use crate::dbs::types::{DownloadTask, RemoteTaskStatus};
use crate::model::{Job, RemoteStatus};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Before the task runs, poll again after this multiple of the elapsed time.
pub const PRE_RUN_STEP: f64 = 3.0;
/// Running but no measurable rate: poll again after this multiple of the elapsed time.
pub const LEARN_STEP: f64 = 0.5;
/// Past the earliest predicted end: poll again after this multiple of the elapsed time
/// (bounds the detection delay of a task that ends a little later than predicted).
pub const TAIL_STEP: f64 = 0.05;
/// Jitter: delays are multiplied by a factor in `[1 - JITTER, 1)`.
pub const JITTER: f64 = 0.1;
/// A prediction never plans further ahead than this multiple of the elapsed time: progress
/// that is not linear (a few huge tables) cannot push the next poll arbitrarily far out.
pub const PREDICT_CAP: f64 = 0.5;

const PPM: f64 = 1_000_000.0;

/// A task's `Progress` as a share of the work: `done` in 0..=1, and `quantum`, the share one
/// step of the counter stands for (one table), i.e. how coarse `done` is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fraction {
    pub done: f64,
    pub quantum: f64,
}

/// `"k/n"` with `0 ≤ k ≤ n`, `n > 0`; anything else (absent, `0/0` while preparing,
/// garbled) says nothing about the rate.
pub fn parse_progress(progress: Option<&str>) -> Option<Fraction> {
    let (k, n) = progress?.trim().split_once('/')?;
    let k: u64 = k.trim().parse().ok()?;
    let n: u64 = n.trim().parse().ok()?;
    (n > 0 && k <= n).then(|| Fraction {
        done: k as f64 / n as f64,
        quantum: 1.0 / n as f64,
    })
}

/// The first progress seen while the task was running, and when.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    pub at: DateTime<Utc>,
    pub done: f64,
}

impl Anchor {
    /// The anchor stored with the job's remote status, if any.
    pub fn of(remote: &RemoteStatus) -> Option<Anchor> {
        Some(Anchor {
            at: remote.progress_anchor_at?,
            done: f64::from(remote.progress_anchor_ppm?.clamp(0, PPM as i32)) / PPM,
        })
    }

    /// Store `anchor` with the remote status.
    pub fn store(anchor: Option<Anchor>, remote: &mut RemoteStatus) {
        remote.progress_anchor_at = anchor.map(|a| a.at);
        remote.progress_anchor_ppm = anchor.map(|a| (a.done.clamp(0.0, 1.0) * PPM).round() as i32);
    }
}

/// One poll's view of the task, from the job row and the listing just made.
#[derive(Debug, Clone, Copy)]
pub struct Sighting {
    /// When the job was claimed for submission (the task was created just after).
    pub started: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// The task reported `running` (not initializing or queueing).
    pub running: bool,
    /// Its `Progress` in this listing.
    pub progress: Option<Fraction>,
    /// From the job row, before this poll.
    pub anchor: Option<Anchor>,
}

impl Sighting {
    /// What a listing at `now` shows of `job`'s task. The task's own creation time is the
    /// start when the cloud reports it (an adopted task may predate the job's claim),
    /// else the job's first claim.
    pub fn of(job: &Job, task: &DownloadTask, now: DateTime<Utc>) -> Sighting {
        let created = task.gmt_create.and_then(DateTime::from_timestamp_millis);
        Sighting {
            started: created
                .or(job.started_at)
                .unwrap_or(job.created_at)
                .min(now),
            now,
            running: task.status == RemoteTaskStatus::Running,
            progress: parse_progress(task.progress.as_deref()),
            anchor: Anchor::of(&job.remote),
        }
    }

    /// The anchor to keep after this poll: set at the first running sighting with a
    /// progress, kept while progress does not go backwards (a restarted task starts over),
    /// dropped while the task is not running.
    pub fn next_anchor(&self) -> Option<Anchor> {
        if !self.running {
            return None;
        }
        let Some(p) = self.progress else {
            return self.anchor;
        };
        match self.anchor {
            Some(a) if a.done <= p.done + 1e-9 && a.at <= self.now => Some(a),
            _ => Some(Anchor {
                at: self.now,
                done: p.done,
            }),
        }
    }

    /// Seconds until the next poll, before jitter and bounds (see the module docs).
    fn planned_secs(&self) -> f64 {
        let elapsed = secs(self.now - self.started);
        if !self.running {
            return PRE_RUN_STEP * elapsed;
        }
        let Some(p) = self.progress else {
            return LEARN_STEP * elapsed;
        };
        let measured = self
            .anchor
            .map(|a| (secs(self.now - a.at), p.done - a.done))
            .filter(|&(baseline, gained)| baseline > 0.0 && gained >= 0.0);
        let Some((baseline, gained)) = measured else {
            // No rate yet, but the task ran at most as long as it exists: at the slowest
            // rate that allows, the work left takes `latest`. First seen far along (the
            // queue ended just after a poll), the next poll comes early enough to see the
            // end.
            let latest = elapsed * (1.0 - p.done) / p.done.max(1e-6);
            return (0.5 * latest).clamp(TAIL_STEP * elapsed, LEARN_STEP * elapsed);
        };
        // Fastest rate the rounded counters allow, and the least work they leave.
        let fastest = (gained + p.quantum) / baseline;
        let least_left = (1.0 - p.done - p.quantum).max(0.0);
        (least_left / fastest).clamp(TAIL_STEP * elapsed, PREDICT_CAP * elapsed)
    }
}

/// Delay before the next poll of a running task; `unit` is a uniform draw in `[0, 1)`.
/// Always within `[schedule.initial, schedule.max]`.
pub fn next_delay(schedule: &PollSchedule, sighting: &Sighting, unit: f64) -> Duration {
    let factor = 1.0 - JITTER * unit.clamp(0.0, 1.0);
    let planned = sighting.planned_secs() * factor;
    let (min, max) = (schedule.initial.as_secs_f64(), schedule.max.as_secs_f64());
    Duration::from_secs_f64(if planned.is_finite() {
        planned.clamp(min, max)
    } else {
        max
    })
}

fn secs(d: chrono::TimeDelta) -> f64 {
    (d.num_milliseconds() as f64 / 1000.0).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: f64 = 10.0;
    const MAX: f64 = 3600.0;

    fn schedule() -> PollSchedule {
        PollSchedule {
            initial: Duration::from_secs_f64(MIN),
            max: Duration::from_secs_f64(MAX),
            growth: 1.5,
            plan: crate::config::PollPlan::Predict,
        }
    }

    /// What a listing shows `t` seconds after submission.
    enum Seen {
        Preparing,
        Running(Option<String>),
        Finished,
    }

    /// A task that prepares for `prep` s, then runs `run` s reporting `tables` tables done
    /// by `share(x)` of the way (x in 0..1).
    fn curve(prep: f64, run: f64, tables: u32, share: fn(f64) -> f64) -> impl Fn(f64) -> Seen {
        move |t| {
            if t < prep {
                Seen::Preparing
            } else if t < prep + run {
                let k = (f64::from(tables) * share((t - prep) / run)).floor() as u32;
                Seen::Running(Some(format!("{}/{tables}", k.min(tables))))
            } else {
                Seen::Finished
            }
        }
    }

    /// Poll a task ending at `end` s as the tracker would (first poll after the minimum,
    /// jitter draws cycling through `units`); returns (polls, detection delay in s, the
    /// longest gap between polls in s).
    fn track(seen: impl Fn(f64) -> Seen, end: f64, units: &[f64]) -> (u32, f64, f64) {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let at = |s: f64| t0 + chrono::Duration::milliseconds((s * 1000.0) as i64);
        let (mut t, mut polls, mut anchor, mut longest) = (MIN, 0u32, None, MIN);
        loop {
            polls += 1;
            assert!(polls < 1000, "never noticed the end");
            let (running, progress) = match seen(t) {
                Seen::Finished => return (polls, t - end, longest),
                Seen::Preparing => (false, None),
                Seen::Running(p) => (true, parse_progress(p.as_deref())),
            };
            let s = Sighting {
                started: t0,
                now: at(t),
                running,
                progress,
                anchor,
            };
            anchor = s.next_anchor();
            let d = next_delay(&schedule(), &s, units[polls as usize % units.len()]);
            if std::env::var_os("TRACE_POLLS").is_some() {
                eprintln!(
                    "poll {polls} at {t:.0} s: running {running} {progress:?} -> +{:.0} s",
                    d.as_secs_f64()
                );
            }
            longest = longest.max(d.as_secs_f64());
            t += d.as_secs_f64();
        }
    }

    const UNITS: &[f64] = &[0.5, 0.1, 0.9, 0.3, 0.7, 0.0, 0.99];
    const PREP: f64 = 420.0; // the simulator's 2 min initializing + 5 min queueing

    fn linear(x: f64) -> f64 {
        x
    }

    #[test]
    fn thirty_minute_tasks_take_at_most_ten_polls_and_are_seen_within_ten_percent() {
        for tables in [8, 12, 16, 20, 24] {
            let total = 1800.0;
            let (polls, delay, _) = track(curve(PREP, total - PREP, tables, linear), total, UNITS);
            assert!(polls <= 10, "{tables} tables: {polls} polls");
            assert!(delay <= 0.10 * total, "{tables} tables: {delay} s late");
        }
    }

    #[test]
    fn six_hour_tasks_take_at_most_eighteen_polls_and_are_seen_within_ten_percent() {
        for tables in [8, 12, 16, 20, 24] {
            let total = 6.0 * 3600.0;
            let (polls, delay, _) = track(curve(PREP, total - PREP, tables, linear), total, UNITS);
            assert!(polls <= 18, "{tables} tables: {polls} polls");
            assert!(delay <= 0.10 * total, "{tables} tables: {delay} s late");
        }
    }

    #[test]
    fn a_queue_that_ends_early_or_just_after_a_poll_stays_within_ten_percent() {
        // Running from the start: the rate is learnt from a small elapsed time, which
        // costs polls. Queue ending just after a poll: the first running sighting comes
        // late in the run (the next poll is at 4 × the elapsed time), and the next one is
        // planned from the slowest rate that progress allows.
        for (prep, most) in [(35.0, 14), (150.0, 10), (400.0, 10)] {
            for tables in [8, 24] {
                let total = 1800.0;
                let (polls, delay, _) =
                    track(curve(prep, total - prep, tables, linear), total, UNITS);
                assert!(polls <= most, "prep {prep}, {tables} tables: {polls} polls");
                assert!(
                    delay <= 0.10 * total,
                    "prep {prep}, {tables} tables: {delay} s"
                );
            }
        }
    }

    #[test]
    fn a_long_queue_is_the_known_limit() {
        // Nothing is measurable while the task prepares, so a preparing phase of a third
        // of the task or more can end it between two pre-run polls: noticed late, but
        // never later than the pre-run step allows.
        let total = 1800.0;
        let (_, delay, _) = track(curve(600.0, total - 600.0, 8, linear), total, UNITS);
        assert!(delay <= PRE_RUN_STEP * 600.0, "{delay} s");
    }

    #[test]
    fn every_jitter_draw_keeps_the_targets() {
        for u in [0.0, 0.5, 0.999] {
            let (polls, delay, _) = track(curve(PREP, 1800.0 - PREP, 8, linear), 1800.0, &[u]);
            assert!(
                polls <= 10 && delay <= 180.0,
                "unit {u}: {polls} polls, {delay} s"
            );
        }
    }

    /// `TRACE_POLLS=1 cargo test --lib predict_summary -- --ignored --nocapture`
    #[test]
    #[ignore = "prints the figures of docs/worker.md"]
    fn predict_summary() {
        for total in [1800.0, 21_600.0] {
            for tables in [8, 12, 16, 20, 24] {
                let (polls, delay, _) =
                    track(curve(PREP, total - PREP, tables, linear), total, UNITS);
                println!("{total} s, {tables} tables: {polls} polls, {delay:.0} s late");
            }
        }
    }

    #[test]
    fn stalled_progress_is_still_polled_at_the_maximum_interval() {
        // Stuck at 3/8 for ten hours, then finishes.
        let seen = |t: f64| {
            if t < 36_000.0 {
                Seen::Running(Some("3/8".into()))
            } else {
                Seen::Finished
            }
        };
        let (polls, delay, longest) = track(seen, 36_000.0, UNITS);
        assert!(longest <= MAX);
        assert!(delay <= MAX);
        // Ten hours at one poll an hour, plus the climb to it.
        assert!((10..=30).contains(&polls), "{polls}");
    }

    #[test]
    fn jumpy_progress_is_not_polled_late() {
        // Nothing for the first 60 % of the run, then everything at once in big jumps.
        fn jumpy(x: f64) -> f64 {
            if x < 0.6 {
                0.0
            } else {
                ((x - 0.6) / 0.4 * 4.0).floor() / 4.0
            }
        }
        within_ten_percent(jumpy, 20, 20);
    }

    /// 30-minute and 6-hour tasks progressing by `share` are noticed within 10 % of their
    /// length in at most `most` polls.
    fn within_ten_percent(share: fn(f64) -> f64, tables: u32, most: u32) {
        for total in [1800.0, 21_600.0] {
            let (polls, delay, _) = track(curve(PREP, total - PREP, tables, share), total, UNITS);
            assert!(delay <= 0.10 * total, "{total}: {delay} s late");
            assert!(polls <= most, "{total}: {polls} polls");
        }
    }

    #[test]
    fn without_progress_the_elapsed_time_grows_by_half_per_poll() {
        let total = 1800.0;
        let seen = |t: f64| {
            if t < PREP {
                Seen::Preparing
            } else if t < total {
                Seen::Running(None)
            } else {
                Seen::Finished
            }
        };
        let (polls, delay, longest) = track(seen, total, UNITS);
        assert!(longest <= MAX);
        assert!(delay <= LEARN_STEP * total, "{delay} s late");
        assert!(polls <= 12, "{polls}");
    }

    #[test]
    fn a_task_longer_than_predicted_gets_a_short_tail() {
        // Linear for 80 % of the tables, then the last 20 % take as long as the first 80 %.
        fn slows(x: f64) -> f64 {
            if x < 0.5 {
                x * 1.6
            } else {
                0.8 + (x - 0.5) * 0.4
            }
        }
        within_ten_percent(slows, 16, 24);
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    /// A sighting `secs` after submission at [`t0`].
    fn s(secs: i64, running: bool, progress: Option<&str>, anchor: Option<Anchor>) -> Sighting {
        Sighting {
            started: t0(),
            now: t0() + chrono::Duration::seconds(secs),
            running,
            progress: parse_progress(progress),
            anchor,
        }
    }

    #[test]
    fn delays_stay_within_the_configured_bounds_and_jitter_only_moves_polls_earlier() {
        let t0 = t0();
        let d = |s: &Sighting, u| next_delay(&schedule(), s, u).as_secs_f64();
        // Just submitted: the minimum.
        assert_eq!(d(&s(1, false, None, None), 0.5), MIN);
        // Queueing for 100 s: next when 400 s have passed, jittered to at most that.
        let q = s(100, false, Some("0/0"), None);
        assert_eq!(d(&q, 0.0), 300.0);
        assert!((d(&q, 0.999) - 270.0).abs() < 0.1);
        // Queueing for a day: the maximum.
        assert_eq!(d(&s(86_400, false, None, None), 0.5), MAX);
        // Half done 1000 s after the anchor at 0: the end is at least 4 tables away at the
        // fastest rate the counters allow (6 tables per 1000 s).
        let a = Some(Anchor {
            at: t0 + chrono::Duration::seconds(2000),
            done: 0.0,
        });
        let r = s(3000, true, Some("5/10"), a);
        assert!((d(&r, 0.0) - 0.4 / (0.6 / 1000.0)).abs() < 1e-6);
        // Past that end: a tail of 5 % of the elapsed time.
        let r = s(3000, true, Some("9/10"), a);
        assert!((d(&r, 0.0) - 150.0).abs() < 1e-6);
    }

    #[test]
    fn the_anchor_is_set_once_kept_and_dropped_on_restart() {
        let t0 = t0();
        assert_eq!(s(10, false, Some("0/0"), None).next_anchor(), None);
        let first = s(60, true, Some("2/8"), None).next_anchor().unwrap();
        assert_eq!(first.at, t0 + chrono::Duration::seconds(60));
        assert_eq!(first.done, 0.25);
        assert_eq!(
            s(90, true, Some("3/8"), Some(first)).next_anchor(),
            Some(first)
        );
        assert_eq!(s(90, true, None, Some(first)).next_anchor(), Some(first));
        // Progress went back (RetryDownloadTask restarted it): a new baseline.
        let again = s(120, true, Some("0/8"), Some(first))
            .next_anchor()
            .unwrap();
        assert_eq!(again.done, 0.0);
        assert_eq!(s(150, false, None, Some(first)).next_anchor(), None);
        // Stored as parts per million and read back.
        let mut r = RemoteStatus::default();
        Anchor::store(Some(first), &mut r);
        assert_eq!(r.progress_anchor_ppm, Some(250_000));
        assert_eq!(Anchor::of(&r), Some(first));
    }

    #[test]
    fn progress_that_says_nothing_is_ignored() {
        for p in [None, Some("0/0"), Some("9/8"), Some("x/8"), Some("3")] {
            assert_eq!(parse_progress(p), None, "{p:?}");
        }
        assert_eq!(
            parse_progress(Some(" 3/12 ")),
            Some(Fraction {
                done: 0.25,
                quantum: 1.0 / 12.0
            })
        );
    }
}
