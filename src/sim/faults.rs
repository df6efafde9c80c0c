//! Fault injection: the failures a real gateway produces, on demand and reproducibly.
//!
//! Each fault fires for the next `next` matching calls, then with `probability` (drawn from
//! the simulator's seeded RNG). Faults are checked after the signature, before the business
//! logic, except `timeout_after_create`, which lets CreateDownload create its task first.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// When one fault fires.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRule {
    /// Fire for each of the next N matching calls (counts down).
    pub next: u32,
    /// After the counter is spent, fire with this probability (0..=1).
    pub probability: f64,
    /// Only these actions (e.g. `["CreateDownload"]`); empty = every action.
    pub actions: Vec<String>,
}

impl FaultRule {
    /// Fire for the next `n` calls of any action.
    pub fn next(n: u32) -> Self {
        Self {
            next: n,
            ..Self::default()
        }
    }

    /// Fire with probability `p` on any action.
    pub fn probability(p: f64) -> Self {
        Self {
            probability: p,
            ..Self::default()
        }
    }

    /// Restrict to these actions.
    pub fn for_actions(mut self, actions: &[&str]) -> Self {
        self.actions = actions.iter().map(|a| a.to_string()).collect();
        self
    }

    fn matches(&self, action: &str) -> bool {
        self.actions.is_empty() || self.actions.iter().any(|a| a == action)
    }

    fn is_idle(&self) -> bool {
        self.next == 0 && self.probability <= 0.0
    }

    /// Decide (and consume a `next` credit) for one call.
    pub(crate) fn fire(&mut self, action: &str, rng: &mut impl Rng) -> bool {
        if self.is_idle() || !self.matches(action) {
            return false;
        }
        if self.next > 0 {
            self.next -= 1;
            return true;
        }
        self.probability > 0.0 && rng.random::<f64>() < self.probability
    }

    fn validate(&self, name: &str) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.probability) {
            return Err(format!("faults.{name}.probability: must be within 0..=1"));
        }
        Ok(())
    }
}

/// Force a business or gateway error code (any code of dbs-api.md §3.4 / §8.2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorFault {
    pub code: String,
    #[serde(flatten)]
    pub rule: FaultRule,
}

/// Every fault at once; `Faults::default()` is a healthy cloud.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// `Throttling.User` (HTTP 400) with an `x-ratelimit-user-api` header.
    pub throttle: FaultRule,
    /// `TimeLeft` (ms) advertised in the throttling header; 0 ⇒ 1000.
    pub throttle_time_left_ms: u64,
    /// `ServiceUnavailable`, HTTP 503.
    pub unavailable: FaultRule,
    /// `InternalError`, HTTP 500.
    pub internal_error: FaultRule,
    /// Close the connection without any response.
    pub drop_connection: FaultRule,
    /// CreateDownload creates the task, then never answers (stalls, then drops).
    pub timeout_after_create: FaultRule,
    /// Added to every RPC call before it is handled.
    pub latency_ms: u64,
    /// A further uniform `0..=latency_jitter_ms` per call (a slow cloud whose calls take
    /// 2–5 s is `latency_ms = 2000, latency_jitter_ms = 3000`).
    pub latency_jitter_ms: u64,
    /// Reply with this code instead of handling the call.
    pub error: Option<ErrorFault>,
}

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        self.throttle.validate("throttle")?;
        self.unavailable.validate("unavailable")?;
        self.internal_error.validate("internal_error")?;
        self.drop_connection.validate("drop_connection")?;
        self.timeout_after_create.validate("timeout_after_create")?;
        if let Some(e) = &self.error {
            e.rule.validate("error")?;
            if super::errors::lookup(&e.code).is_none() {
                return Err(format!(
                    "faults.error.code: unknown code {:?} (see docs/simulator.md)",
                    e.code
                ));
            }
        }
        Ok(())
    }
}

impl Faults {
    /// How long to hold this call before handling it.
    pub(crate) fn latency(&self, rng: &mut impl Rng) -> std::time::Duration {
        let jitter = match self.latency_jitter_ms {
            0 => 0,
            j => rng.random_range(0..=j),
        };
        std::time::Duration::from_millis(self.latency_ms + jitter)
    }
}

/// What the fault stage decided for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FaultOutcome {
    None,
    Drop,
    Throttle { time_left_ms: u64 },
    Unavailable,
    Internal,
    Error(String),
}

impl Faults {
    /// Pick at most one fault for this call (drop, throttle, 503, 500, forced code).
    pub(crate) fn decide(&mut self, action: &str, rng: &mut impl Rng) -> FaultOutcome {
        if self.drop_connection.fire(action, rng) {
            return FaultOutcome::Drop;
        }
        if self.throttle.fire(action, rng) {
            let t = if self.throttle_time_left_ms == 0 {
                1000
            } else {
                self.throttle_time_left_ms
            };
            return FaultOutcome::Throttle { time_left_ms: t };
        }
        if self.unavailable.fire(action, rng) {
            return FaultOutcome::Unavailable;
        }
        if self.internal_error.fire(action, rng) {
            return FaultOutcome::Internal;
        }
        if let Some(e) = &mut self.error {
            if e.rule.fire(action, rng) {
                return FaultOutcome::Error(e.code.clone());
            }
        }
        FaultOutcome::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn next_counts_down_then_stops() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut f = Faults {
            unavailable: FaultRule::next(2).for_actions(&["CreateDownload"]),
            ..Faults::default()
        };
        assert_eq!(
            f.decide("DescribeDownloadTask", &mut rng),
            FaultOutcome::None
        );
        assert_eq!(
            f.decide("CreateDownload", &mut rng),
            FaultOutcome::Unavailable
        );
        assert_eq!(
            f.decide("CreateDownload", &mut rng),
            FaultOutcome::Unavailable
        );
        assert_eq!(f.decide("CreateDownload", &mut rng), FaultOutcome::None);
    }

    #[test]
    fn probability_is_seeded_and_roughly_right() {
        let run = |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut f = Faults {
                throttle: FaultRule::probability(0.25),
                ..Faults::default()
            };
            (0..4000)
                .map(|_| f.decide("X", &mut rng) != FaultOutcome::None)
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        let hits = a.iter().filter(|h| **h).count();
        assert!((800..1200).contains(&hits), "{hits}");
    }

    #[test]
    fn unknown_forced_code_is_rejected_by_name() {
        let f = Faults {
            error: Some(ErrorFault {
                code: "Nope".into(),
                rule: FaultRule::next(1),
            }),
            ..Faults::default()
        };
        assert!(f.validate().unwrap_err().starts_with("faults.error.code"));
    }
}
