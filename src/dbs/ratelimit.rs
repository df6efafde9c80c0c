//! A token bucket per region, shared by every clone of the client.
//!
//! The dispatcher and the tracker share one client, so one bucket per region caps the
//! calls the whole process makes there. A `Throttling*` reply slows the region down
//! (halve the rate, pause for the gateway's `TimeLeft`, then recover linearly) so every
//! caller backs off together instead of each one discovering the limit on its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Pause after a throttled reply that carried no `TimeLeft` hint.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// Never pause a region longer than this on one hint.
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// Seconds to climb from zero back to the configured rate.
const RECOVERY_SECONDS: f64 = 30.0;
/// The rate never drops below `base / MIN_RATE_DIVISOR`.
const MIN_RATE_DIVISOR: f64 = 32.0;

/// Read-only view of one region's bucket (metrics, tests).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionRate {
    /// Current refill rate, calls per second.
    pub rate: f64,
    /// The configured rate it recovers to.
    pub base_rate: f64,
    /// Tokens available right now.
    pub tokens: f64,
    /// Time left in a throttling pause.
    pub paused_for: Duration,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
    paused_until: Option<Instant>,
}

/// Per-region token buckets (`dbs.calls_per_second_per_region`, `dbs.burst`).
#[derive(Debug)]
pub struct RateLimiter {
    base_rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `rate` calls per second with up to `burst` calls at once; `rate` must be > 0.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            base_rate: rate.max(f64::MIN_POSITIVE),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn min_rate(&self) -> f64 {
        self.base_rate / MIN_RATE_DIVISOR
    }

    fn bucket<'a>(
        &self,
        map: &'a mut HashMap<String, Bucket>,
        region: &str,
        now: Instant,
    ) -> &'a mut Bucket {
        let bucket = map.entry(region.to_string()).or_insert_with(|| Bucket {
            tokens: self.burst,
            rate: self.base_rate,
            last: now,
            paused_until: None,
        });
        self.refill(bucket, now);
        bucket
    }

    /// Accrue tokens and recover the rate for the time since the last look. Nothing
    /// accrues during a pause.
    fn refill(&self, b: &mut Bucket, now: Instant) {
        let from = match b.paused_until {
            Some(until) if until > now => {
                b.last = now;
                return;
            }
            Some(until) => {
                b.paused_until = None;
                b.last.max(until)
            }
            None => b.last,
        };
        let dt = now.saturating_duration_since(from).as_secs_f64();
        let recovered = (b.rate + self.base_rate / RECOVERY_SECONDS * dt).min(self.base_rate);
        b.tokens = (b.tokens + dt * (b.rate + recovered) / 2.0).min(self.burst);
        b.rate = recovered;
        b.last = now;
    }

    /// Take one token for `region`, waiting (asynchronously) until one is available.
    pub async fn acquire(&self, region: &str) {
        loop {
            let wait = {
                let now = Instant::now();
                let mut map = self.buckets.lock().expect("rate limiter lock");
                let b = self.bucket(&mut map, region, now);
                match b.paused_until {
                    Some(until) if until > now => until - now,
                    _ if b.tokens >= 1.0 => {
                        b.tokens -= 1.0;
                        return;
                    }
                    _ => Duration::from_secs_f64(((1.0 - b.tokens) / b.rate).max(0.001)),
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The region answered `Throttling*`: halve its rate, drop its tokens and pause it
    /// for `retry_after` (or a second when the gateway gave no hint).
    pub fn throttled(&self, region: &str, retry_after: Option<Duration>) {
        let now = Instant::now();
        let min_rate = self.min_rate();
        let mut map = self.buckets.lock().expect("rate limiter lock");
        let b = self.bucket(&mut map, region, now);
        b.rate = (b.rate / 2.0).max(min_rate);
        b.tokens = b.tokens.min(0.0);
        let until = now + retry_after.unwrap_or(DEFAULT_PAUSE).min(MAX_PAUSE);
        b.paused_until = Some(b.paused_until.map_or(until, |p| p.max(until)));
    }

    /// Current state of every region seen so far.
    pub fn snapshot(&self) -> BTreeMap<String, RegionRate> {
        let now = Instant::now();
        let mut map = self.buckets.lock().expect("rate limiter lock");
        let regions: Vec<String> = map.keys().cloned().collect();
        regions
            .into_iter()
            .map(|region| {
                let b = self.bucket(&mut map, &region, now);
                let view = RegionRate {
                    rate: b.rate,
                    base_rate: self.base_rate,
                    tokens: b.tokens,
                    paused_for: b
                        .paused_until
                        .map(|u| u.saturating_duration_since(now))
                        .unwrap_or_default(),
                };
                (region, view)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Acquire and report how much (virtual) time it took.
    async fn timed(l: &RateLimiter, region: &str) -> Duration {
        let start = Instant::now();
        l.acquire(region).await;
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate() {
        let l = RateLimiter::new(2.0, 3);
        for _ in 0..3 {
            assert_eq!(timed(&l, "cn-hangzhou").await, Duration::ZERO);
        }
        // Empty: the next token arrives after 1/rate.
        let waited = timed(&l, "cn-hangzhou").await;
        assert!(
            waited >= Duration::from_millis(490) && waited <= Duration::from_millis(510),
            "{waited:?}"
        );
        // Other regions have their own bucket.
        assert_eq!(timed(&l, "cn-beijing").await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn ten_calls_take_the_rate_not_less() {
        let l = RateLimiter::new(5.0, 1);
        let start = Instant::now();
        for _ in 0..11 {
            l.acquire("r").await;
        }
        // 1 from the burst, 10 more at 5/s = 2 s.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1990), "{took:?}");
        assert!(took <= Duration::from_millis(2100), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn shared_by_concurrent_callers() {
        let l = Arc::new(RateLimiter::new(10.0, 1));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let l = l.clone();
            tasks.push(tokio::spawn(async move { l.acquire("r").await }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // 1 immediate + 4 at 10/s: at least 400 ms for all of them together.
        assert!(start.elapsed() >= Duration::from_millis(390));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_pauses_halves_and_recovers() {
        let l = RateLimiter::new(4.0, 4);
        l.acquire("r").await;
        l.throttled("r", Some(Duration::from_secs(2)));
        let snap = l.snapshot()["r"];
        assert_eq!(snap.rate, 2.0);
        assert_eq!(snap.paused_for, Duration::from_secs(2));
        // The next caller waits out the pause, then for a token at the halved rate.
        let waited = timed(&l, "r").await;
        assert!(waited >= Duration::from_secs(2), "{waited:?}");
        assert!(waited <= Duration::from_millis(2600), "{waited:?}");
        // A second throttle halves again; without a hint the pause is one second.
        l.throttled("r", None);
        let snap = l.snapshot()["r"];
        assert!(snap.rate < 2.1 && snap.rate > 1.0, "{}", snap.rate);
        assert_eq!(snap.paused_for, DEFAULT_PAUSE);
        // Recovery is gradual: part way after a few seconds, full after the window.
        tokio::time::advance(Duration::from_secs(4)).await;
        let mid = l.snapshot()["r"].rate;
        assert!(mid > snap.rate + 0.2 && mid < 4.0, "{mid}");
        tokio::time::advance(Duration::from_secs(RECOVERY_SECONDS as u64)).await;
        assert_eq!(l.snapshot()["r"].rate, 4.0);
        // Other regions were never slowed.
        l.acquire("other").await;
        assert_eq!(l.snapshot()["other"].rate, 4.0);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_has_a_floor_and_pauses_a_ceiling() {
        let l = RateLimiter::new(1.0, 1);
        for _ in 0..20 {
            l.throttled("r", Some(Duration::from_secs(3600)));
        }
        let snap = l.snapshot()["r"];
        assert!((snap.rate - 1.0 / MIN_RATE_DIVISOR).abs() < 1e-9);
        assert_eq!(snap.paused_for, MAX_PAUSE);
    }
}
