//! How often we talk to the cloud: the growing poll interval of a running task, and the
//! per-region gate that makes every caller in this process back off after throttling.
//!
//! Polling is the bulk of our API traffic ("API calls per finished download" is a headline
//! metric), so the interval grows geometrically while a task runs, and jitter spreads the
//! polls of tasks that started together.

use crate::config::PollPlan;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// `initial × growth^polls`, capped at `max`, jittered ±20 %; with [`PollPlan::Predict`]
/// the tracker plans running tasks' polls with `worker::predict` instead, within the same
/// `initial`..`max` bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollSchedule {
    pub initial: Duration,
    pub max: Duration,
    pub growth: f64,
    pub plan: PollPlan,
}

impl PollSchedule {
    /// Delay before the next poll of a task already polled `polls` times; `unit` is a
    /// uniform draw in `[0, 1)` mapped to a factor in `[0.8, 1.2)`. Never above `max`.
    pub fn delay(&self, polls: u32, unit: f64) -> Duration {
        let base = self.initial.as_secs_f64() * self.growth.powi(polls.min(1000) as i32);
        let capped = base.min(self.max.as_secs_f64());
        let factor = 0.8 + 0.4 * unit.clamp(0.0, 1.0);
        Duration::from_secs_f64((capped * factor).min(self.max.as_secs_f64()).max(0.0))
    }
}

/// After a `Throttled` reply every cloud call of this process to that region waits until
/// the hinted time has passed: the whole region slows down, not only the job that was
/// told. The client's own token bucket caps the steady rate; this gate reacts to the
/// cloud saying the cap is still too high.
#[derive(Debug, Default)]
pub struct RegionGate {
    paused_until: Mutex<HashMap<String, Instant>>,
    throttled: std::sync::atomic::AtomicU64,
}

/// Longest single wait at the gate; longer hints are honoured by requeueing instead.
pub const MAX_GATE_WAIT: Duration = Duration::from_secs(30);

impl RegionGate {
    /// Record a throttling reply: pause the region for `wait` (at least 200 ms), never
    /// shortening an existing pause.
    pub fn throttled(&self, region: &str, wait: Duration) {
        self.throttled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let until = Instant::now() + wait.max(Duration::from_millis(200));
        let mut map = self.paused_until.lock().expect("gate lock");
        let entry = map.entry(region.to_string()).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }

    /// How long a call to `region` must still wait (zero when open).
    pub fn remaining(&self, region: &str) -> Duration {
        let map = self.paused_until.lock().expect("gate lock");
        map.get(region)
            .map(|until| until.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    /// Wait until the region is open (at most [`MAX_GATE_WAIT`] per call).
    pub async fn wait(&self, region: &str) {
        loop {
            let left = self.remaining(region);
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left.min(MAX_GATE_WAIT)).await;
        }
    }

    /// Throttling replies seen since start (for the report and the metrics).
    pub fn throttled_count(&self) -> u64 {
        self.throttled.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched() -> PollSchedule {
        PollSchedule {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            growth: 1.5,
            plan: PollPlan::Geometric,
        }
    }

    #[test]
    fn poll_interval_grows_then_caps() {
        let s = sched();
        let mid = |n| s.delay(n, 0.5).as_secs_f64();
        assert!((mid(0) - 10.0).abs() < 1e-9);
        assert!((mid(1) - 15.0).abs() < 1e-9);
        assert!((mid(2) - 22.5).abs() < 1e-9);
        assert!(mid(3) > mid(2));
        assert!((mid(20) - 300.0).abs() < 1e-9);
        assert!((mid(u32::MAX) - 300.0).abs() < 1e-9);
    }

    #[test]
    fn poll_jitter_is_bounded_and_never_exceeds_the_cap() {
        let s = sched();
        assert!((s.delay(0, 0.0).as_secs_f64() - 8.0).abs() < 1e-9);
        assert!(s.delay(0, 0.999).as_secs_f64() < 12.0);
        assert!(s.delay(0, 0.999).as_secs_f64() > 11.9);
        assert!(s.delay(30, 0.999).as_secs_f64() <= 300.0);
    }

    #[tokio::test]
    async fn gate_pauses_one_region_only_and_never_shortens() {
        let g = RegionGate::default();
        assert!(g.remaining("cn-hangzhou").is_zero());
        g.throttled("cn-hangzhou", Duration::from_millis(400));
        g.throttled("cn-hangzhou", Duration::from_millis(200));
        assert!(g.remaining("cn-hangzhou") > Duration::from_millis(300));
        assert!(g.remaining("cn-beijing").is_zero());
        let t0 = Instant::now();
        g.wait("cn-hangzhou").await;
        assert!(t0.elapsed() >= Duration::from_millis(390));
        assert!(g.remaining("cn-hangzhou").is_zero());
        assert_eq!(g.throttled_count(), 2);
    }
}
