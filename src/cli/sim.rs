//! `dbs-archiver sim`: run the built-in DBS simulator standalone.
//!
//! Contract relied on by scripts (issue #3): `--listen 127.0.0.1:PORT`, optional
//! `--access-key-id ID --access-key-secret SECRET` (without them the documented demo pair
//! is accepted) and `--time-scale F`. Everything else is optional.

use crate::sim::{
    Durations, FaultRule, Faults, Fleet, SimConfig, SimKey, Simulator, DEMO_ACCESS_KEY_ID,
};
use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: String,
    /// Accept this AccessKeyId (with --access-key-secret) instead of the demo pair.
    #[arg(long, requires = "access_key_secret")]
    pub access_key_id: Option<String>,
    /// Secret for --access-key-id (also read from DBS_SIM_ACCESS_KEY_SECRET).
    #[arg(
        long,
        env = "DBS_SIM_ACCESS_KEY_SECRET",
        hide_env_values = true,
        requires = "access_key_id"
    )]
    pub access_key_secret: Option<String>,
    /// Require this STS token with the configured key.
    #[arg(long, requires = "access_key_id", hide_env_values = true)]
    pub security_token: Option<String>,
    /// Simulated seconds per real second (3600: an hour of task time per second).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Fleet file (JSON or TOML); default: the demo fleet rm-demo0001 … rm-demo0010 plus
    /// a MongoDB replica set (dds-demo0001) and sharded cluster (dds-demo0002).
    #[arg(long)]
    pub fleet: Option<PathBuf>,
    /// Keep tasks in this file across restarts (reloaded at start).
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// Seed for failures, faults and task ids.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Probability that a task ends `failed`.
    #[arg(long, default_value_t = 0.0)]
    pub failure_probability: f64,
    /// Tasks finish the moment they are created (benchmarks).
    #[arg(long)]
    pub instant: bool,
    /// Simulated seconds in `initializing`.
    #[arg(long)]
    pub initializing_secs: Option<f64>,
    /// Simulated seconds in `queueing`.
    #[arg(long)]
    pub queueing_secs: Option<f64>,
    /// Simulated seconds in `running`.
    #[arg(long)]
    pub running_secs: Option<f64>,
    /// Simulated seconds from `finished` to `expired` for URL targets (default 3 days).
    #[arg(long)]
    pub url_expiry_secs: Option<f64>,
    /// Identical CreateDownload within this many simulated hours ⇒ JobAlreadyExist.
    #[arg(long)]
    pub job_exist_window_hours: Option<f64>,
    /// Do not enforce one running-or-failed task per instance.
    #[arg(long)]
    pub allow_concurrent_tasks: bool,
    /// Fraction of calls answered with Throttling.User.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_probability: f64,
    /// Fraction of calls answered with ServiceUnavailable (503).
    #[arg(long, default_value_t = 0.0)]
    pub unavailable_probability: f64,
    /// Fraction of calls answered with InternalError (500).
    #[arg(long, default_value_t = 0.0)]
    pub internal_error_probability: f64,
    /// Fraction of calls whose connection is closed without a response.
    #[arg(long, default_value_t = 0.0)]
    pub drop_probability: f64,
    /// Fraction of CreateDownload calls that create the task and then never answer.
    #[arg(long, default_value_t = 0.0)]
    pub timeout_after_create_probability: f64,
    /// Latency added to every call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
}

fn secs(name: &str, v: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("--{name}: must be a number >= 0"))
}

impl SimArgs {
    /// The simulator configuration these flags describe.
    pub fn to_config(&self) -> anyhow::Result<SimConfig> {
        let mut config = SimConfig::demo()
            .with_mongodb(crate::sim::DEMO_REGION)
            .time_scale(self.time_scale)
            .seed(self.seed)
            .failure_probability(self.failure_probability)
            .enforce_one_active(!self.allow_concurrent_tasks);
        if let (Some(id), Some(secret)) = (&self.access_key_id, &self.access_key_secret) {
            let mut key = SimKey::access_key(id.clone(), secret.clone());
            if let Some(t) = &self.security_token {
                key = key.with_security_token(t.clone());
            }
            config = config.keys(vec![key]);
        }
        if let Some(path) = &self.fleet {
            config = config.fleet(Fleet::load(path).map_err(anyhow::Error::msg)?);
        }
        if let Some(path) = &self.state_file {
            config = config.state_file(path.clone());
        }
        let mut d = if self.instant {
            Durations::instant()
        } else {
            Durations::default()
        };
        if let Some(v) = self.initializing_secs {
            d.initializing = secs("initializing-secs", v)?;
        }
        if let Some(v) = self.queueing_secs {
            d.queueing = secs("queueing-secs", v)?;
        }
        if let Some(v) = self.running_secs {
            d.running = secs("running-secs", v)?;
        }
        if let Some(v) = self.url_expiry_secs {
            d.url_expiry = secs("url-expiry-secs", v)?;
        }
        config = config.durations(d);
        if let Some(h) = self.job_exist_window_hours {
            config = config.job_exist_window(secs("job-exist-window-hours", h * 3600.0)?);
        }
        config = config.faults(Faults {
            throttle: FaultRule::probability(self.throttle_probability),
            unavailable: FaultRule::probability(self.unavailable_probability),
            internal_error: FaultRule::probability(self.internal_error_probability),
            drop_connection: FaultRule::probability(self.drop_probability),
            timeout_after_create: FaultRule::probability(self.timeout_after_create_probability),
            latency_ms: self.latency_ms,
            ..Faults::default()
        });
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid simulator flags: {e}"))?;
        Ok(config)
    }
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let config = args.to_config()?;
    let key_id = config.keys[0].access_key_id.clone();
    let instances = config.fleet.instances.len();
    let sim = Simulator::start(config, &args.listen).await?;
    println!(
        "DBS simulator listening on {} (AccessKeyId {}{}, {} instances, time scale {})",
        sim.endpoint(),
        key_id,
        if key_id == DEMO_ACCESS_KEY_ID {
            ", the demo pair"
        } else {
            ""
        },
        instances,
        args.time_scale
    );
    shutdown_signal().await;
    sim.shutdown().await;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        args: SimArgs,
    }

    fn parse(v: &[&str]) -> SimArgs {
        T::try_parse_from(std::iter::once("sim").chain(v.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn contract_flags_build_a_config() {
        let a = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--access-key-id",
            "AK",
            "--access-key-secret",
            "SK",
            "--time-scale",
            "120",
        ]);
        let c = a.to_config().unwrap();
        assert_eq!(c.keys.len(), 1);
        assert_eq!(c.keys[0].access_key_id, "AK");
        assert_eq!(c.time_scale, 120.0);
        assert_eq!(c.fleet.instances.len(), 12, "ten MySQL, two MongoDB");
    }

    #[test]
    fn without_keys_the_demo_pair_is_accepted() {
        let c = parse(&[]).to_config().unwrap();
        assert_eq!(c.keys[0].access_key_id, DEMO_ACCESS_KEY_ID);
    }

    #[test]
    fn bad_flags_are_named() {
        let e = parse(&["--failure-probability", "2"])
            .to_config()
            .unwrap_err();
        assert!(e.to_string().contains("failure_probability"), "{e}");
        let e = parse(&["--running-secs=-1"]).to_config().unwrap_err();
        assert!(e.to_string().contains("--running-secs"), "{e}");
    }
}
