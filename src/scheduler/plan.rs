//! Which fires of one schedule are due now, and what the misfire policy makes of them.
//! Pure: a cron, a cursor, a clock reading and the policy in; a plan out.

use super::cron::CronSchedule;
use super::model::{MisfirePolicy, SkipReason};
use chrono::{DateTime, Duration, Utc};
use std::collections::VecDeque;

/// How many missed fires are walked one by one; beyond this the outage is treated as `skip`
/// (documented in docs/schedules.md) and the count reported is "at least".
pub const MISFIRE_COUNT_CAP: u64 = 10_000;

/// Fires dropped by the misfire policy, summarised (one history row, not one per fire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedFires {
    pub reason: SkipReason,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// Capped at [`MISFIRE_COUNT_CAP`].
    pub count: u64,
}

/// The outcome of planning one schedule at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Fires to turn into jobs, oldest first.
    pub fire: Vec<DateTime<Utc>>,
    /// Fires the policy dropped.
    pub dropped: Option<DroppedFires>,
    /// Fires older than the grace period (whether fired or dropped): the misfire count.
    pub misfires: u64,
    /// The new cursor: the latest due fire (unchanged when nothing was due).
    pub cursor: DateTime<Utc>,
    /// The first fire after the new cursor.
    pub next: Option<DateTime<Utc>>,
}

/// Plan fires in `(cursor, now]`. A fire older than `now - grace` is a misfire and is
/// handled by `policy`; `max_fires` bounds `fire_all`.
pub fn plan(
    cron: &CronSchedule,
    cursor: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: Duration,
    policy: MisfirePolicy,
    max_fires: u32,
) -> Plan {
    let horizon = now - grace;
    // The most recent due fires (enough for every policy), and the misfire count.
    let keep = (max_fires.max(1)) as usize;
    let mut recent: VecDeque<DateTime<Utc>> = VecDeque::with_capacity(keep + 1);
    let mut on_time = Vec::new();
    let mut misfires = 0u64;
    let mut first_misfire = None;
    let mut total = 0u64;
    for t in cron.fires_after(cursor) {
        if t > now {
            break;
        }
        if t <= horizon {
            misfires += 1;
            first_misfire.get_or_insert(t);
            if misfires >= MISFIRE_COUNT_CAP {
                // Absurdly many (a seconds-granularity schedule after a long outage): stop
                // walking, drop everything up to the horizon whatever the policy, and plan
                // the on-time window alone.
                let rest = plan(cron, horizon, now, grace, policy, max_fires);
                return Plan {
                    misfires,
                    dropped: Some(DroppedFires {
                        reason: SkipReason::Misfire,
                        first: first_misfire.unwrap_or(t),
                        last: horizon,
                        count: misfires,
                    }),
                    cursor: rest.cursor.max(horizon),
                    next: cron.next_after(rest.cursor.max(horizon)),
                    fire: rest.fire,
                };
            }
        } else {
            on_time.push(t);
        }
        total += 1;
        recent.push_back(t);
        if recent.len() > keep {
            recent.pop_front();
        }
    }
    let latest = recent.back().copied();
    let new_cursor = latest.unwrap_or(cursor);
    let next = cron.next_after(new_cursor);
    if misfires == 0 {
        return Plan {
            fire: on_time,
            dropped: None,
            misfires: 0,
            cursor: new_cursor,
            next,
        };
    }
    let first = first_misfire.expect("misfires > 0");
    let (fire, dropped) = match policy {
        MisfirePolicy::Skip => {
            let last = recent
                .iter()
                .rev()
                .find(|t| **t <= horizon)
                .copied()
                .unwrap_or(first);
            (
                on_time,
                Some(DroppedFires {
                    reason: SkipReason::Misfire,
                    first,
                    last,
                    count: misfires,
                }),
            )
        }
        MisfirePolicy::FireOnce => {
            // The most recent due fire stands for everything missed.
            let fire = vec![latest.expect("due fires exist")];
            let dropped_count = total - 1;
            let dropped = (dropped_count > 0).then(|| DroppedFires {
                reason: SkipReason::Misfire,
                first,
                last: recent.iter().rev().nth(1).copied().unwrap_or(first),
                count: dropped_count,
            });
            (fire, dropped)
        }
        MisfirePolicy::FireAll => {
            let fire: Vec<_> = recent.iter().copied().collect();
            let dropped_count = total - fire.len() as u64;
            let dropped = (dropped_count > 0).then(|| DroppedFires {
                reason: SkipReason::MisfireBound,
                first,
                last: cron_prev(cron, first, fire[0]),
                count: dropped_count,
            });
            (fire, dropped)
        }
    };
    Plan {
        fire,
        dropped,
        misfires,
        cursor: new_cursor,
        next,
    }
}

/// The last fire in `[first, before)`, walking forward (bounded by the fire_all window).
fn cron_prev(cron: &CronSchedule, first: DateTime<Utc>, before: DateTime<Utc>) -> DateTime<Utc> {
    let mut last = first;
    for t in cron.fires_after(first) {
        if t >= before {
            break;
        }
        last = t;
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn hourly() -> CronSchedule {
        CronSchedule::parse("0 * * * *", "UTC").unwrap()
    }

    #[test]
    fn on_time_fire_is_not_a_misfire() {
        let p = plan(
            &hourly(),
            utc("2026-01-01T00:00:00Z"),
            utc("2026-01-01T01:00:00.5Z"),
            Duration::seconds(60),
            MisfirePolicy::Skip,
            10,
        );
        assert_eq!(p.fire, vec![utc("2026-01-01T01:00:00Z")]);
        assert_eq!(p.misfires, 0);
        assert_eq!(p.cursor, utc("2026-01-01T01:00:00Z"));
        assert_eq!(p.next, Some(utc("2026-01-01T02:00:00Z")));
    }

    #[test]
    fn nothing_due_keeps_cursor() {
        let c = utc("2026-01-01T00:00:00Z");
        let p = plan(
            &hourly(),
            c,
            utc("2026-01-01T00:59:59Z"),
            Duration::seconds(60),
            MisfirePolicy::FireAll,
            10,
        );
        assert!(p.fire.is_empty());
        assert_eq!(p.cursor, c);
        assert_eq!(p.next, Some(utc("2026-01-01T01:00:00Z")));
    }

    // A 3-hour outage: last fire 00:00, back at 03:20 ⇒ 01:00, 02:00, 03:00 missed.
    fn after_outage(policy: MisfirePolicy, max: u32) -> Plan {
        plan(
            &hourly(),
            utc("2026-01-01T00:00:00Z"),
            utc("2026-01-01T03:20:00Z"),
            Duration::seconds(60),
            policy,
            max,
        )
    }

    #[test]
    fn misfire_skip_drops_everything_missed() {
        let p = after_outage(MisfirePolicy::Skip, 10);
        assert!(p.fire.is_empty());
        assert_eq!(p.misfires, 3);
        let d = p.dropped.unwrap();
        assert_eq!((d.reason, d.count), (SkipReason::Misfire, 3));
        assert_eq!(d.first, utc("2026-01-01T01:00:00Z"));
        assert_eq!(d.last, utc("2026-01-01T03:00:00Z"));
        assert_eq!(p.cursor, utc("2026-01-01T03:00:00Z"));
        assert_eq!(p.next, Some(utc("2026-01-01T04:00:00Z")));
    }

    #[test]
    fn misfire_fire_once_runs_the_latest() {
        let p = after_outage(MisfirePolicy::FireOnce, 10);
        assert_eq!(p.fire, vec![utc("2026-01-01T03:00:00Z")]);
        let d = p.dropped.unwrap();
        assert_eq!(d.count, 2);
        assert_eq!(d.last, utc("2026-01-01T02:00:00Z"));
    }

    #[test]
    fn misfire_fire_all_is_bounded() {
        let p = after_outage(MisfirePolicy::FireAll, 10);
        assert_eq!(p.fire.len(), 3);
        assert!(p.dropped.is_none());
        let p = after_outage(MisfirePolicy::FireAll, 2);
        assert_eq!(
            p.fire,
            vec![utc("2026-01-01T02:00:00Z"), utc("2026-01-01T03:00:00Z")]
        );
        let d = p.dropped.unwrap();
        assert_eq!((d.reason, d.count), (SkipReason::MisfireBound, 1));
        assert_eq!(d.first, utc("2026-01-01T01:00:00Z"));
        assert_eq!(d.last, utc("2026-01-01T01:00:00Z"));
    }

    #[test]
    fn huge_outage_of_a_per_second_schedule_is_bounded() {
        let c = CronSchedule::parse("* * * * * *", "UTC").unwrap();
        let p = plan(
            &c,
            utc("2026-01-01T00:00:00Z"),
            utc("2026-01-03T00:00:00Z"),
            Duration::seconds(5),
            MisfirePolicy::FireAll,
            3,
        );
        assert!(p.misfires >= MISFIRE_COUNT_CAP);
        assert!(p.fire.len() <= 6, "{:?}", p.fire.len());
        assert!(p.cursor > utc("2026-01-02T23:59:50Z"));
    }
}
