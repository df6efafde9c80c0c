//! Typed settings: embedded `config/default.toml` → optional `--config FILE` → environment
//! `DBS_ARCHIVER__SECTION__KEY`. Unknown keys and broken rules stop start-up with an error
//! that names the key, because a typo in a setting should never be silently ignored.

use crate::dbs::signing::SignatureVersion;
use crate::retry::RetryPolicy;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::path::Path;

/// The embedded defaults (the same text as `config/default.toml`).
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Prefix of environment overrides; sections and keys are separated by `__`.
pub const ENV_PREFIX: &str = "DBS_ARCHIVER";

/// A setting that is wrong: names the key and the rule.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key}: {rule}")]
    Invalid { key: String, rule: String },
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
}

/// A finite number above zero (NaN and infinity are rejected too).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

fn invalid(key: &str, rule: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        rule: rule.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub worker: WorkerSettings,
    pub tracker: TrackerSettings,
    pub dbs: DbsSettings,
    pub api: ApiSettings,
    pub telemetry: TelemetrySettings,
    pub scheduler: SchedulerSettings,
    /// `[[sinks]]`: where URL downloads are archived (docs/archives.md).
    #[serde(default)]
    pub sinks: Vec<crate::archive::SinkSettings>,
    /// `[archive]`: the fetcher and retention.
    #[serde(default)]
    pub archive: crate::archive::ArchiveSettings,
    pub console: ConsoleSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub id: String,
    pub concurrency: u32,
    pub lease_seconds: u64,
    pub heartbeat_seconds: u64,
    pub idle_poll_ms: u64,
    pub default_max_attempts: i32,
    pub rescue_interval_seconds: u64,
    pub retention_days: u32,
    pub shutdown_grace_seconds: u64,
    pub retry: RetryPolicy,
}

/// How the tracker picks the next poll of a running task (docs/worker.md, "How polls are
/// planned").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PollPlan {
    /// Around the end predicted from the task's own progress (`worker::predict`).
    #[default]
    Predict,
    /// `poll_initial_seconds × poll_growth^polls`, capped at `poll_max_seconds`.
    Geometric,
}

/// What the tracker does when a remote task fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteFailurePolicy {
    /// Call RetryDownloadTask (at most `max_remote_retries` times), then fail and block.
    Retry,
    /// Fail the job and block the instance by that task at once.
    Fail,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerSettings {
    pub poll_initial_seconds: f64,
    pub poll_max_seconds: f64,
    pub poll_growth: f64,
    /// `predict` (default) or `geometric`; a file without it keeps working.
    #[serde(default)]
    pub poll_plan: PollPlan,
    pub on_remote_failure: RemoteFailurePolicy,
    pub max_remote_retries: u32,
    pub blocked_reprobe_seconds: u64,
    pub url_duration_seconds: u32,
    /// A tracked task absent from DescribeDownloadTask this long fails its job.
    pub missing_task_grace_seconds: u64,
    /// Running jobs leased per tracker round.
    pub batch_size: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbsSettings {
    pub endpoint: String,
    /// Public or VPC DBS hosts from the endpoint table (ignored with an `endpoint` override).
    #[serde(default)]
    pub endpoint_kind: crate::dbs::endpoints::EndpointKind,
    pub rds_endpoint: String,
    pub signature: SignatureVersion,
    pub access_key_id: String,
    pub access_key_secret: SecretString,
    pub security_token: SecretString,
    pub ecs_metadata_url: String,
    pub ecs_role_name: String,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub calls_per_second_per_region: f64,
    pub burst: u32,
    pub recent_window_days: u32,
    /// Permit plain-http endpoint overrides beyond loopback (simulator in compose only).
    pub allow_insecure_http: bool,
}

/// Role of an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// GETs only.
    Read,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    pub token: SecretString,
    pub role: Role,
}

/// Environment variable holding API tokens as a JSON array (an environment variable cannot
/// hold a TOML array of tables, and compose and Kubernetes hand secrets over this way).
pub const TOKENS_ENV: &str = "DBS_ARCHIVER__API__TOKENS";

/// The format of [`TOKENS_ENV`] and of `api.tokens_file`, as error messages state it.
const TOKENS_FORMAT: &str =
    r#"must be a JSON array of {"token": "…", "role": "admin" or "read"} objects"#;

/// Tokens from JSON text. The parser's own message is dropped: it may quote the text,
/// that is a token; the position is enough to find the mistake.
fn tokens_from_json(key: &str, text: &str) -> Result<Vec<ApiToken>, ConfigError> {
    serde_json::from_str(text).map_err(|e| {
        invalid(
            key,
            format!(
                "{TOKENS_FORMAT} (error at line {} column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    pub listen: String,
    /// `[[api.tokens]]`, then [`TOKENS_ENV`] (replaces them), then `tokens_file` (added).
    pub tokens: Vec<ApiToken>,
    /// A file of more tokens in the [`TOKENS_ENV`] JSON format (a mounted secret); empty =
    /// none. Its tokens follow the others in `api.tokens[…]` error keys.
    pub tokens_file: String,
    pub open_health: bool,
    pub body_limit_bytes: usize,
    pub request_timeout_ms: u64,
}

/// `[console]`: the operator console under `/ui/` (docs/console.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// A signed-in session ends this long after sign-in.
    pub session_minutes: u32,
    /// Freshness objective: every instance archived within this many hours.
    pub freshness_hours: u32,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    pub log_level: String,
    pub otlp_endpoint: String,
    /// Refresh period of the database-derived gauges (seconds).
    pub collect_interval_seconds: f64,
}

/// `[scheduler]`: see docs/schedules.md (defined next to the schedule types).
pub use crate::model::schedule::SchedulerSettings;

impl Settings {
    /// Defaults, then `file` if given, then the environment; then [`Settings::validate`].
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// As [`Settings::load`] with an explicit environment (tests pass their own).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            if !path.exists() {
                return Err(invalid(
                    "--config",
                    format!("file {} does not exist", path.display()),
                ));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let prefix = format!("{ENV_PREFIX}__");
        let mut env_map: std::collections::HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .collect();
        let env_tokens = env_map
            .remove(TOKENS_ENV)
            .map(|text| tokens_from_json(TOKENS_ENV, &text))
            .transpose()?;
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env_map)),
        );
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        if let Some(tokens) = env_tokens {
            settings.api.tokens = tokens;
        }
        let file = settings.api.tokens_file.trim();
        if !file.is_empty() {
            let text = std::fs::read_to_string(file)
                .map_err(|e| invalid("api.tokens_file", format!("cannot read {file}: {e}")))?;
            let more = tokens_from_json("api.tokens_file", &text)?;
            settings.api.tokens.extend(more);
        }
        settings.validate()?;
        Ok(settings)
    }

    /// The rules that serde cannot express.
    // `!(x > 0.0)` is deliberate: it also rejects NaN.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = &self.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return Err(invalid(
                "database.url",
                "must start with sqlite:// or postgres://",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        let w = &self.worker;
        if w.concurrency == 0 {
            return Err(invalid("worker.concurrency", "must be at least 1"));
        }
        if w.lease_seconds < 2 {
            return Err(invalid("worker.lease_seconds", "must be at least 2"));
        }
        if w.heartbeat_seconds == 0 || w.heartbeat_seconds >= w.lease_seconds {
            return Err(invalid(
                "worker.heartbeat_seconds",
                "must be at least 1 and less than worker.lease_seconds",
            ));
        }
        if w.idle_poll_ms == 0 {
            return Err(invalid("worker.idle_poll_ms", "must be at least 1"));
        }
        if w.default_max_attempts < 1 {
            return Err(invalid("worker.default_max_attempts", "must be at least 1"));
        }
        if !positive(w.retry.base_seconds) || w.retry.cap_seconds < w.retry.base_seconds {
            return Err(invalid(
                "worker.retry",
                "base_seconds must be > 0 and cap_seconds >= base_seconds",
            ));
        }
        let t = &self.tracker;
        if !positive(t.poll_initial_seconds) || t.poll_max_seconds < t.poll_initial_seconds {
            return Err(invalid(
                "tracker.poll_initial_seconds",
                "must be > 0 and not above tracker.poll_max_seconds",
            ));
        }
        if !t.poll_growth.is_finite() || t.poll_growth < 1.0 {
            return Err(invalid("tracker.poll_growth", "must be at least 1.0"));
        }
        if !(300..=86400).contains(&t.url_duration_seconds) {
            return Err(invalid(
                "tracker.url_duration_seconds",
                "must be between 300 and 86400",
            ));
        }
        if t.batch_size == 0 {
            return Err(invalid("tracker.batch_size", "must be at least 1"));
        }
        if t.missing_task_grace_seconds < 60 {
            return Err(invalid(
                "tracker.missing_task_grace_seconds",
                "must be at least 60",
            ));
        }
        let d = &self.dbs;
        for (key, value) in [
            ("dbs.endpoint", &d.endpoint),
            ("dbs.rds_endpoint", &d.rds_endpoint),
        ] {
            if !value.is_empty() {
                crate::dbs::endpoints::check_override(value, d.allow_insecure_http)
                    .map_err(|rule| invalid(key, rule))?;
            }
        }
        if d.access_key_id.is_empty() != d.access_key_secret.expose_secret().is_empty() {
            return Err(invalid(
                "dbs.access_key_secret",
                "dbs.access_key_id and dbs.access_key_secret must be set together",
            ));
        }
        if !positive(d.calls_per_second_per_region) {
            return Err(invalid("dbs.calls_per_second_per_region", "must be > 0"));
        }
        if d.burst == 0 {
            return Err(invalid("dbs.burst", "must be at least 1"));
        }
        if d.recent_window_days == 0 {
            return Err(invalid("dbs.recent_window_days", "must be at least 1"));
        }
        if self.api.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "api.listen",
                "must be an address like 127.0.0.1:8080",
            ));
        }
        if self.api.body_limit_bytes < 1024 {
            return Err(invalid("api.body_limit_bytes", "must be at least 1024"));
        }
        if self.api.request_timeout_ms == 0 {
            return Err(invalid("api.request_timeout_ms", "must be at least 1"));
        }
        for (i, t) in self.api.tokens.iter().enumerate() {
            let token = t.token.expose_secret();
            if token.len() < 16 {
                return Err(invalid(
                    &format!("api.tokens[{i}].token"),
                    "must be at least 16 characters",
                ));
            }
            // One token, one role: listed twice (even with the same role) it is a
            // copy-paste mistake, and with two roles the stronger would silently win.
            if let Some(first) = self.api.tokens[..i]
                .iter()
                .position(|o| o.token.expose_secret() == token)
            {
                return Err(invalid(
                    &format!("api.tokens[{i}].token"),
                    format!("is the same token as api.tokens[{first}]; list each token once, with one role"),
                ));
            }
        }
        if self
            .telemetry
            .log_level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return Err(invalid(
                "telemetry.log_level",
                "must be a tracing filter such as info",
            ));
        }
        let tel = &self.telemetry;
        if !tel.otlp_endpoint.trim().is_empty() {
            crate::telemetry::otlp::traces_url(&tel.otlp_endpoint)
                .map_err(|e| invalid("telemetry.otlp_endpoint", e.to_string()))?;
        }
        if !positive(tel.collect_interval_seconds) || tel.collect_interval_seconds > 3600.0 {
            return Err(invalid(
                "telemetry.collect_interval_seconds",
                "must be > 0 and at most 3600",
            ));
        }
        self.scheduler
            .validate()
            .map_err(|e| invalid(&e.field, e.rule))?;
        crate::archive::settings::validate(&self.sinks, &self.archive)
            .map_err(|e| invalid(&e.field, e.rule))?;
        let c = &self.console;
        let minutes = crate::console::SESSION_MINUTES;
        if !minutes.contains(&c.session_minutes) {
            return Err(invalid(
                "console.session_minutes",
                format!("must be {} to {}", minutes.start(), minutes.end()),
            ));
        }
        if c.freshness_hours == 0 {
            return Err(invalid("console.freshness_hours", "must be at least 1"));
        }
        Ok(())
    }

    /// The effective settings as TOML with every secret replaced by `[REDACTED]`.
    pub fn redacted_toml(&self) -> String {
        // Re-serialise field by field through serde_json: secrets are SecretString,
        // which we render as a fixed marker.
        let redact = |s: &SecretString| {
            if s.expose_secret().is_empty() {
                String::new()
            } else {
                "[REDACTED]".to_string()
            }
        };
        let value = serde_json::json!({
            "database": {
                "url": redact_url(&self.database.url),
                "max_connections": self.database.max_connections,
                "migrate_on_start": self.database.migrate_on_start,
            },
            "worker": {
                "id": self.worker.id,
                "concurrency": self.worker.concurrency,
                "lease_seconds": self.worker.lease_seconds,
                "heartbeat_seconds": self.worker.heartbeat_seconds,
                "idle_poll_ms": self.worker.idle_poll_ms,
                "default_max_attempts": self.worker.default_max_attempts,
                "rescue_interval_seconds": self.worker.rescue_interval_seconds,
                "retention_days": self.worker.retention_days,
                "shutdown_grace_seconds": self.worker.shutdown_grace_seconds,
                "retry": self.worker.retry,
            },
            "tracker": {
                "poll_initial_seconds": self.tracker.poll_initial_seconds,
                "poll_max_seconds": self.tracker.poll_max_seconds,
                "poll_growth": self.tracker.poll_growth,
                "poll_plan": self.tracker.poll_plan,
                "on_remote_failure": self.tracker.on_remote_failure,
                "max_remote_retries": self.tracker.max_remote_retries,
                "blocked_reprobe_seconds": self.tracker.blocked_reprobe_seconds,
                "url_duration_seconds": self.tracker.url_duration_seconds,
                "missing_task_grace_seconds": self.tracker.missing_task_grace_seconds,
                "batch_size": self.tracker.batch_size,
            },
            "dbs": {
                "endpoint": self.dbs.endpoint,
                "endpoint_kind": self.dbs.endpoint_kind,
                "rds_endpoint": self.dbs.rds_endpoint,
                "signature": self.dbs.signature,
                "access_key_id": self.dbs.access_key_id,
                "access_key_secret": redact(&self.dbs.access_key_secret),
                "security_token": redact(&self.dbs.security_token),
                "ecs_metadata_url": self.dbs.ecs_metadata_url,
                "ecs_role_name": self.dbs.ecs_role_name,
                "connect_timeout_ms": self.dbs.connect_timeout_ms,
                "request_timeout_ms": self.dbs.request_timeout_ms,
                "calls_per_second_per_region": self.dbs.calls_per_second_per_region,
                "burst": self.dbs.burst,
                "recent_window_days": self.dbs.recent_window_days,
                "allow_insecure_http": self.dbs.allow_insecure_http,
            },
            "api": {
                "listen": self.api.listen,
                "tokens": self.api.tokens.iter().map(|t| serde_json::json!({
                    "token": redact(&t.token), "role": t.role,
                })).collect::<Vec<_>>(),
                "tokens_file": self.api.tokens_file,
                "open_health": self.api.open_health,
                "body_limit_bytes": self.api.body_limit_bytes,
                "request_timeout_ms": self.api.request_timeout_ms,
            },
            "console": {
                "session_minutes": self.console.session_minutes,
                "freshness_hours": self.console.freshness_hours,
            },
            "telemetry": {
                "log_format": self.telemetry.log_format,
                "log_level": self.telemetry.log_level,
                "otlp_endpoint": self.telemetry.otlp_endpoint,
                "collect_interval_seconds": self.telemetry.collect_interval_seconds,
            },
            "scheduler": {
                "enabled": self.scheduler.enabled,
                "tick_seconds": self.scheduler.tick_seconds,
                "batch_size": self.scheduler.batch_size,
                "concurrency": self.scheduler.concurrency,
                "lease_seconds": self.scheduler.lease_seconds,
                "misfire_grace_seconds": self.scheduler.misfire_grace_seconds,
                "max_misfire_fires": self.scheduler.max_misfire_fires,
                "latest_full_window_hours": self.scheduler.latest_full_window_hours,
                "schedules": self.scheduler.schedules,
            },
        });
        toml::to_string_pretty(&value).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

/// Hide a password embedded in a database URL.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_and_validate() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert!(s.database.url.starts_with("sqlite://"));
        assert_eq!(s.dbs.signature, SignatureVersion::V3);
        assert_eq!(
            s.dbs.endpoint_kind,
            crate::dbs::endpoints::EndpointKind::Public
        );
    }

    #[test]
    fn endpoint_kind_is_public_or_vpc() {
        let s =
            Settings::load_from(None, env(&[("DBS_ARCHIVER__DBS__ENDPOINT_KIND", "vpc")])).unwrap();
        assert_eq!(
            s.dbs.endpoint_kind,
            crate::dbs::endpoints::EndpointKind::Vpc
        );
        let e = Settings::load_from(
            None,
            env(&[("DBS_ARCHIVER__DBS__ENDPOINT_KIND", "intranet")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("endpoint_kind"), "{e}");
    }

    #[test]
    fn poll_plan_is_predict_or_geometric() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.tracker.poll_plan, PollPlan::Predict);
        let s = Settings::load_from(
            None,
            env(&[("DBS_ARCHIVER__TRACKER__POLL_PLAN", "geometric")]),
        )
        .unwrap();
        assert_eq!(s.tracker.poll_plan, PollPlan::Geometric);
        let e = Settings::load_from(None, env(&[("DBS_ARCHIVER__TRACKER__POLL_PLAN", "fixed")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("poll_plan"), "{e}");
        // A file written before the setting existed still loads.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[tracker]\npoll_max_seconds = 300.0\n").unwrap();
        let s = Settings::load_from(Some(&path), env(&[])).unwrap();
        assert_eq!(s.tracker.poll_plan, PollPlan::Predict);
    }

    #[test]
    fn env_overrides_and_names_the_key() {
        let s =
            Settings::load_from(None, env(&[("DBS_ARCHIVER__WORKER__CONCURRENCY", "3")])).unwrap();
        assert_eq!(s.worker.concurrency, 3);
        let e = Settings::load_from(None, env(&[("DBS_ARCHIVER__WORKER__CONCURRENCY", "0")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("worker.concurrency"), "{e}");
        let e = Settings::load_from(None, env(&[("DBS_ARCHIVER__DATABASE__URL", "mysql://x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("database.url"), "{e}");
    }

    #[test]
    fn unknown_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[worker]\nconcurency = 3\n").unwrap();
        let e = Settings::load_from(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("concurency"), "{e}");
    }

    #[test]
    fn declared_schedules_load_and_bad_ones_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let good = r#"
[[scheduler.schedules]]
name = "nightly"
cron = "30 2 * * *"
timezone = "Asia/Shanghai"
backup = "pitr_at_fire_time"
targets = { kind = "prefix", prefix = "rm-prod-", region = "cn-hangzhou" }
template = { format = "Parquet", target_type = "OSS", bucket = "archive", bucket_region = "cn-hangzhou", path = "{instance}/{date}/" }
"#;
        std::fs::write(&path, good).unwrap();
        let s = Settings::load_from(Some(&path), env(&[])).unwrap();
        assert_eq!(s.scheduler.schedules.len(), 1);
        assert_eq!(s.scheduler.schedules[0].timezone, "Asia/Shanghai");
        assert!(s.redacted_toml().contains("nightly"));

        std::fs::write(&path, good.replace("{date}", "{day}")).unwrap();
        let e = Settings::load_from(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("scheduler.schedules[0].template.path"), "{e}");
        assert!(e.contains("{day}"), "{e}");

        std::fs::write(&path, good.replace("Asia/Shanghai", "Asia/Atlantis")).unwrap();
        let e = Settings::load_from(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("scheduler.schedules[0].timezone"), "{e}");

        // The same bounds as the API and the CLI.
        std::fs::write(&path, format!("{good}priority = 5000\n")).unwrap();
        let e = Settings::load_from(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("scheduler.schedules[0].priority: must be between -1000 and 1000"),
            "{e}"
        );

        std::fs::write(&path, good.replace("pitr_at_fire_time", "whenever")).unwrap();
        let e = Settings::load_from(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("backup"), "{e}");

        let e = Settings::load_from(
            None,
            env(&[("DBS_ARCHIVER__SCHEDULER__MAX_MISFIRE_FIRES", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("scheduler.max_misfire_fires"), "{e}");
    }

    const ADMIN: &str = "admin-token-0123456789";
    const READ: &str = "read-token-0123456789";

    #[test]
    fn tokens_from_a_json_environment_variable() {
        let json =
            format!(r#"[{{"token":"{ADMIN}","role":"admin"}},{{"token":"{READ}","role":"read"}}]"#);
        let s = Settings::load_from(None, env(&[(TOKENS_ENV, &json)])).unwrap();
        assert_eq!(s.api.tokens.len(), 2);
        assert_eq!(s.api.tokens[1].role, Role::Read);
        assert!(!s.redacted_toml().contains(ADMIN));
        let bad = format!(r#"[{{"token":"{ADMIN}","role":"root"}}]"#);
        let e = Settings::load_from(None, env(&[(TOKENS_ENV, &bad)]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(TOKENS_ENV), "{e}");
        assert!(e.contains("JSON array"), "{e}");
        assert!(!e.contains(ADMIN), "{e}");
    }

    #[test]
    fn a_token_listed_twice_stops_start_up() {
        let json = format!(
            r#"[{{"token":"{ADMIN}","role":"admin"}},{{"token":"{ADMIN}","role":"read"}}]"#
        );
        let e = Settings::load_from(None, env(&[(TOKENS_ENV, &json)]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("api.tokens[1].token: is the same token as api.tokens[0]"),
            "{e}"
        );
        assert!(!e.contains(ADMIN), "{e}");
    }

    #[test]
    fn tokens_file_adds_tokens_and_is_checked_with_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.json");
        std::fs::write(&file, format!(r#"[{{"token":"{READ}","role":"read"}}]"#)).unwrap();
        let conf = dir.path().join("c.toml");
        std::fs::write(
            &conf,
            format!(
                "[api]\ntokens_file = {:?}\n[[api.tokens]]\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n",
                file.display().to_string()
            ),
        )
        .unwrap();
        let s = Settings::load_from(Some(&conf), env(&[])).unwrap();
        assert_eq!(s.api.tokens.len(), 2);
        assert!(s.redacted_toml().contains("tokens.json"));
        std::fs::write(&file, format!(r#"[{{"token":"{ADMIN}","role":"read"}}]"#)).unwrap();
        let e = Settings::load_from(Some(&conf), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("api.tokens[1].token"), "{e}");
        std::fs::remove_file(&file).unwrap();
        let e = Settings::load_from(Some(&conf), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("api.tokens_file: cannot read"), "{e}");
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Settings::load_from(
            None,
            env(&[
                ("DBS_ARCHIVER__DBS__ACCESS_KEY_ID", "LTAIexample"),
                ("DBS_ARCHIVER__DBS__ACCESS_KEY_SECRET", "very-secret-value"),
                ("DBS_ARCHIVER__DATABASE__URL", "postgres://u:pw-secret@h/db"),
            ]),
        )
        .unwrap();
        let out = s.redacted_toml();
        assert!(!out.contains("very-secret-value"));
        assert!(!out.contains("pw-secret"));
        assert!(!format!("{s:?}").contains("very-secret-value"));
        assert!(out.contains("[REDACTED]"));
    }
}
