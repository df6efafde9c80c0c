//! `bench throttle`: a region's call rate under random throttling, and how long it takes
//! to climb back to the configured rate once the throttling stops.
//!
//! A few callers loop DescribeDownloadSupport (a read: retried in-process like the
//! tracker's polls) through one client against the simulator. For `throttled` seconds the
//! simulator answers `probability` of the calls with `Throttling.User` and a `TimeLeft`
//! hint; then it is healthy for `recovery` seconds. Every half second the bench samples the
//! simulator's call counters and the limiter's state: the trace that shows where the rate
//! goes.

use super::common::REGION;
use dbs_archiver::dbs::{DbsClient, DbsClientConfig};
use dbs_archiver::sim::{FaultRule, Faults, SimConfig, Simulator};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one run measures under.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct ThrottleKnobs {
    /// `dbs.calls_per_second_per_region` of the client.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// `dbs.burst` of the client.
    #[arg(long, default_value_t = 10)]
    pub burst: u32,
    /// Share of the calls the simulator throttles during the throttled phase.
    #[arg(long, default_value_t = 0.1)]
    pub probability: f64,
    /// `TimeLeft` the simulator advertises with each throttle, ms.
    #[arg(long, default_value_t = 1000)]
    pub time_left_ms: u64,
    /// Seconds of random throttling.
    #[arg(long, default_value_t = 30)]
    pub throttled: u64,
    /// Seconds without throttling afterwards.
    #[arg(long, default_value_t = 20)]
    pub recovery: u64,
    /// Concurrent callers sharing the client.
    #[arg(long, default_value_t = 4)]
    pub callers: usize,
}

impl Default for ThrottleKnobs {
    fn default() -> Self {
        Self {
            rate: 10.0,
            burst: 10,
            probability: 0.1,
            time_left_ms: 1000,
            throttled: 30,
            recovery: 20,
            callers: 4,
        }
    }
}

/// One half-second sample of the trace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the start (throttling stops at `knobs.throttled`).
    pub t: f64,
    /// Calls the simulator saw in this half second, and how many it throttled.
    pub calls: u64,
    pub throttled: u64,
    /// The limiter's refill rate and whether it was paused.
    pub rate: f64,
    pub paused: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThrottleResult {
    pub knobs: ThrottleKnobs,
    /// Calls per second reaching the simulator during the throttled phase (after its
    /// first 5 s) and during the last 5 s of the recovery phase.
    pub calls_per_second_throttled: f64,
    pub calls_per_second_recovered: f64,
    /// Mean limiter rate and paused share of the samples in the throttled phase.
    pub mean_rate_throttled: f64,
    pub paused_share_throttled: f64,
    /// Seconds from the end of throttling until the limiter is back at the configured
    /// rate; `None` if it never got there within the recovery phase.
    pub rate_recovered_after: Option<f64>,
    /// Seconds from the end of throttling until a trailing 1 s window carries at least
    /// 90% of the configured rate.
    pub calls_recovered_after: Option<f64>,
    pub trace: Vec<Sample>,
}

pub async fn round(knobs: &ThrottleKnobs) -> anyhow::Result<ThrottleResult> {
    let sim = Simulator::start(
        SimConfig::demo()
            .fleet(Default::default())
            .with_instances(REGION, "rm-t", 1),
        "127.0.0.1:0",
    )
    .await?;
    let throttling = Faults {
        throttle: FaultRule::probability(knobs.probability),
        throttle_time_left_ms: knobs.time_left_ms,
        ..Faults::default()
    };
    sim.set_faults(throttling).map_err(anyhow::Error::msg)?;
    let client = DbsClient::new(
        DbsClientConfig {
            endpoint_override: Some(sim.endpoint()),
            rds_endpoint_override: Some(sim.endpoint()),
            calls_per_second_per_region: knobs.rate,
            burst: knobs.burst,
            ..DbsClientConfig::default()
        },
        sim.credentials_provider(),
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for _ in 0..knobs.callers {
        let (client, stop) = (client.clone(), stop.clone());
        callers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = client
                    .describe_download_support(REGION, "rm-t0001", None)
                    .await;
            }
        }));
    }

    let step = Duration::from_millis(500);
    let started = Instant::now();
    let total = Duration::from_secs(knobs.throttled + knobs.recovery);
    let mut healthy = false;
    let (mut last_calls, mut last_throttled) = (0, 0);
    let mut trace = Vec::new();
    while started.elapsed() < total {
        tokio::time::sleep(step).await;
        let t = started.elapsed().as_secs_f64();
        if !healthy && t >= knobs.throttled as f64 {
            sim.set_faults(Faults::default())
                .map_err(anyhow::Error::msg)?;
            healthy = true;
        }
        let stats = sim.stats();
        let (calls, throttled) = (stats.total_calls(), throttled_calls(&stats));
        let limit = client.rate_limits().into_values().next();
        trace.push(Sample {
            t,
            calls: calls - last_calls,
            throttled: throttled - last_throttled,
            rate: limit.map_or(knobs.rate, |l| l.rate),
            paused: limit.is_some_and(|l| l.paused_for > Duration::ZERO),
        });
        (last_calls, last_throttled) = (calls, throttled);
    }
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.abort();
    }
    sim.shutdown().await;
    Ok(summarise(knobs, trace))
}

fn throttled_calls(stats: &dbs_archiver::sim::SimStats) -> u64 {
    stats
        .calls
        .values()
        .flat_map(|by_code| by_code.iter())
        .filter(|(code, _)| code.starts_with("Throttling"))
        .map(|(_, n)| *n)
        .sum()
}

fn summarise(knobs: &ThrottleKnobs, trace: Vec<Sample>) -> ThrottleResult {
    let end = knobs.throttled as f64;
    let window = |from: f64, to: f64| trace.iter().filter(move |s| s.t > from && s.t <= to);
    let per_second = |from: f64, to: f64| {
        let calls: u64 = window(from, to).map(|s| s.calls).sum();
        calls as f64 / (to - from).max(0.5)
    };
    let throttled: Vec<&Sample> = window(5.0_f64.min(end / 2.0), end).collect();
    let n = throttled.len().max(1) as f64;
    let rate_recovered_after = trace
        .iter()
        .find(|s| s.t > end && s.rate >= knobs.rate * 0.999 && !s.paused)
        .map(|s| s.t - end);
    let calls_recovered_after = trace
        .iter()
        .filter(|s| s.t > end + 1.0)
        .find(|s| per_second(s.t - 1.0, s.t) >= knobs.rate * 0.9)
        .map(|s| s.t - end);
    let total = end + knobs.recovery as f64;
    ThrottleResult {
        knobs: knobs.clone(),
        calls_per_second_throttled: per_second(5.0_f64.min(end / 2.0), end),
        calls_per_second_recovered: per_second((total - 5.0).max(end), total),
        mean_rate_throttled: throttled.iter().map(|s| s.rate).sum::<f64>() / n,
        paused_share_throttled: throttled.iter().filter(|s| s.paused).count() as f64 / n,
        rate_recovered_after,
        calls_recovered_after,
        trace,
    }
}

/// `bench throttle` on its own: the trace, then the summary.
pub async fn run(knobs: ThrottleKnobs) -> anyhow::Result<()> {
    let r = round(&knobs).await?;
    println!("     t  calls  throttled   rate  paused");
    for s in &r.trace {
        println!(
            "{:>6.1} {:>6} {:>10} {:>6.2} {:>7}",
            s.t, s.calls, s.throttled, s.rate, s.paused
        );
    }
    println!("{}", line(&r));
    Ok(())
}

/// The one-line summary `bench all` prints too.
pub fn line(r: &ThrottleResult) -> String {
    let secs = |v: Option<f64>| v.map_or("never".to_string(), |v| format!("{v:.1} s"));
    format!(
        "throttle {:.0}% (TimeLeft {} ms) at {}/s: {:.2} calls/s while throttled (mean limiter \
         rate {:.2}, paused {:.0}% of the time); after it stops: limiter at the configured rate \
         in {}, calls at 90% of it in {}, {:.2} calls/s at the end",
        r.knobs.probability * 100.0,
        r.knobs.time_left_ms,
        r.knobs.rate,
        r.calls_per_second_throttled,
        r.mean_rate_throttled,
        r.paused_share_throttled * 100.0,
        secs(r.rate_recovered_after),
        secs(r.calls_recovered_after),
        r.calls_per_second_recovered
    )
}
