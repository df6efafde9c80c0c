//! The retry policy: a pure function from (attempt, hint, random draw) to a delay.
//!
//! Stored as the job's next `run_at`, never slept on in-process, so a restart keeps it.

use std::time::Duration;

/// Retryable vs permanent: every layer's error enum answers `class()` with this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Worth trying again later.
    Retryable,
    /// Trying again cannot help; an operator must act.
    Permanent,
}

/// Exponential, capped, full-jitter backoff.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Delay scale of the first retry, seconds.
    pub base_seconds: f64,
    /// No delay exceeds this, seconds.
    pub cap_seconds: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_seconds: 5.0,
            cap_seconds: 3600.0,
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1 = first retry).
    ///
    /// `unit` is a uniform draw in `[0, 1)` (full jitter: `unit × min(cap, base·2^(attempt-1))`);
    /// `floor` (e.g. a throttling `TimeLeft`) raises the result and is itself capped.
    pub fn delay(&self, attempt: u32, unit: f64, floor: Option<Duration>) -> Duration {
        let exp = self.base_seconds * 2f64.powi(attempt.saturating_sub(1).min(62) as i32);
        let ceiling = exp.min(self.cap_seconds).max(0.0);
        let jittered = ceiling * unit.clamp(0.0, 1.0);
        let floor = floor
            .map(|f| f.as_secs_f64().min(self.cap_seconds))
            .unwrap_or(0.0);
        Duration::from_secs_f64(jittered.max(floor))
    }

    /// `delay` with a thread-local random draw.
    pub fn delay_random(&self, attempt: u32, floor: Option<Duration>) -> Duration {
        self.delay(attempt, rand::random::<f64>(), floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    #[test]
    fn grows_exponentially_until_the_cap() {
        let p = RetryPolicy {
            base_seconds: 2.0,
            cap_seconds: 60.0,
        };
        // unit just below 1 gives (almost) the ceiling.
        let top = |a| p.delay(a, 0.999_999, None).as_secs_f64();
        assert!((top(1) - 2.0).abs() < 0.01);
        assert!((top(2) - 4.0).abs() < 0.01);
        assert!((top(5) - 32.0).abs() < 0.01);
        assert!((top(6) - 60.0).abs() < 0.01);
        assert!((top(1000) - 60.0).abs() < 0.01);
    }

    #[test]
    fn full_jitter_stays_in_range_with_fixed_seed() {
        let p = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(42);
        let mut seen_low = false;
        for _ in 0..1000 {
            let d = p.delay(4, rng.random::<f64>(), None).as_secs_f64();
            assert!((0.0..=40.0).contains(&d));
            seen_low |= d < 10.0;
        }
        assert!(seen_low, "full jitter must reach low values");
    }

    #[test]
    fn throttle_hint_raises_the_floor_but_not_past_the_cap() {
        let p = RetryPolicy {
            base_seconds: 1.0,
            cap_seconds: 30.0,
        };
        assert_eq!(
            p.delay(1, 0.0, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            p.delay(1, 0.0, Some(Duration::from_secs(700))),
            Duration::from_secs(30)
        );
    }
}
