//! What the simulator pretends the cloud looks like: keys, fleet, durations, rules, quirks.
//!
//! Everything the public docs leave open (dbs-api.md §10–11) is a field here, so a test can
//! state its assumption instead of inheriting ours.

use super::faults::Faults;
use crate::clock::{DynClock, SystemClock};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The documented demo AccessKeyId the simulator accepts when no key is configured.
pub const DEMO_ACCESS_KEY_ID: &str = "LTAI5tDemoAccessKeyId";
/// The documented demo secret (public on purpose: it only opens the simulator).
pub const DEMO_ACCESS_KEY_SECRET: &str = "DemoAccessKeySecretForTheSimulator";
/// Region of the built-in demo fleet.
pub const DEMO_REGION: &str = "cn-hangzhou";
/// The demo MongoDB replica set ([`SimConfig::with_mongodb`]).
pub const DEMO_MONGO_REPLICA_SET: &str = "dds-demo0001";
/// The demo MongoDB sharded cluster ([`SimConfig::with_mongodb`]).
pub const DEMO_MONGO_SHARDED: &str = "dds-demo0002";
/// The `ClusterName` of [`DEMO_MONGO_SHARDED`].
pub const DEMO_MONGO_CLUSTER_NAME: &str = "dds-demo0002-cluster";

/// One key pair the simulator's gateway accepts: the client's own credentials type, so the
/// secret never prints and an STS key carries the token its requests must present.
pub type SimKey = crate::dbs::credentials::Credentials;

/// The documented demo pair.
pub fn demo_key() -> SimKey {
    SimKey::access_key(DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET)
}

/// One backup set of an instance, as RDS DescribeBackups reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSetSpec {
    pub id: String,
    pub size_bytes: i64,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    /// `Success` or `Failed`.
    #[serde(default = "default_backup_status")]
    pub status: String,
    /// `FullBackup` or `IncrementalBackup`.
    #[serde(default = "default_backup_type")]
    pub backup_type: String,
    /// Tables in the set: the `n` of `Progress k/n`.
    #[serde(default = "default_tables")]
    pub tables: u32,
}

fn default_backup_status() -> String {
    "Success".into()
}
fn default_backup_type() -> String {
    "FullBackup".into()
}
fn default_tables() -> u32 {
    24
}

impl BackupSetSpec {
    /// Only successful full backups can be downloaded with `BakSetType=full`.
    pub fn is_downloadable(&self) -> bool {
        self.status.eq_ignore_ascii_case("Success")
            && self.backup_type.eq_ignore_ascii_case("FullBackup")
    }
}

/// One database instance the simulated account owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    pub id: String,
    pub region: String,
    /// `MySQL`, `PostgreSQL`, `PolarDB`, `MongoDB` support advanced download; anything else
    /// (e.g. `SQLServer`) gets `DBS.DownloadTask.DbTypeNotSupport`.
    #[serde(default = "default_engine")]
    pub engine: String,
    #[serde(default)]
    pub backup_sets: Vec<BackupSetSpec>,
    /// Force every CreateDownload on this instance to fail with this §3.4 code
    /// (e.g. `DBS.DownloadTask.InstanceVersionNotSupport`).
    #[serde(default)]
    pub reject_with: Option<String>,
    /// MongoDB sharded clusters only: the `ClusterName` the cluster answers to. A MongoDB
    /// instance without it is a replica set.
    #[serde(default)]
    pub cluster_name: Option<String>,
}

fn default_engine() -> String {
    "MySQL".into()
}

impl InstanceSpec {
    pub fn is_mongodb(&self) -> bool {
        self.engine.eq_ignore_ascii_case("mongodb")
    }

    /// A MongoDB sharded cluster (it has a cluster name).
    pub fn is_sharded_cluster(&self) -> bool {
        self.is_mongodb() && self.cluster_name.is_some()
    }

    /// Engines DBS advanced download supports (dbs-api.md §2).
    pub fn engine_supported(&self) -> bool {
        ["mysql", "postgresql", "polardb", "mongodb"]
            .iter()
            .any(|e| self.engine.eq_ignore_ascii_case(e))
    }
}

/// The fleet file (`--fleet FILE`, JSON or TOML): `[[instances]]` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    pub instances: Vec<InstanceSpec>,
    /// OSS buckets the DBS role may not write to (`DBS.DownloadTask.OssForbid`).
    #[serde(default)]
    pub forbidden_buckets: Vec<String>,
    /// Buckets whose storage class is not Standard (`DBS.DownloadTask.OssStorageTypeInvalid`).
    #[serde(default)]
    pub non_standard_buckets: Vec<String>,
}

impl Fleet {
    /// Load a fleet from JSON (`.json`) or TOML (anything else).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("fleet file {}: {e}", path.display()))?;
        let fleet: Fleet = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text)
                .map_err(|e| format!("fleet file {}: {e}", path.display()))?
        } else {
            toml::from_str(&text).map_err(|e| format!("fleet file {}: {e}", path.display()))?
        };
        fleet.validate()?;
        Ok(fleet)
    }

    /// Instance ids are unique per region; backup-set ids unique per instance.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for (i, inst) in self.instances.iter().enumerate() {
            if inst.id.trim().is_empty() || inst.region.trim().is_empty() {
                return Err(format!("instances[{i}]: id and region must not be empty"));
            }
            if !seen.insert((inst.region.clone(), inst.id.clone())) {
                return Err(format!(
                    "instances[{i}].id: {} appears twice in {}",
                    inst.id, inst.region
                ));
            }
            let mut sets = std::collections::HashSet::new();
            for (j, b) in inst.backup_sets.iter().enumerate() {
                if !sets.insert(b.id.clone()) {
                    return Err(format!(
                        "instances[{i}].backup_sets[{j}].id: {} appears twice",
                        b.id
                    ));
                }
                if b.end_time < b.start_time {
                    return Err(format!(
                        "instances[{i}].backup_sets[{j}].end_time: before start_time"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// How long each phase of a download task lasts, in *simulated* time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durations {
    #[serde(with = "duration_secs")]
    pub initializing: Duration,
    #[serde(with = "duration_secs")]
    pub queueing: Duration,
    #[serde(with = "duration_secs")]
    pub running: Duration,
    /// A finished URL-target task turns `expired` after this (3 days per dbs-api.md §4.3).
    #[serde(with = "duration_secs")]
    pub url_expiry: Duration,
}

impl Default for Durations {
    /// Plausible cloud timings: 2 min initializing, 5 min queueing, 1 h running.
    fn default() -> Self {
        Self {
            initializing: Duration::from_secs(120),
            queueing: Duration::from_secs(300),
            running: Duration::from_secs(3600),
            url_expiry: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

impl Durations {
    /// Every task finishes the moment it is created (benchmarks); URLs still expire.
    pub fn instant() -> Self {
        Self {
            initializing: Duration::ZERO,
            queueing: Duration::ZERO,
            running: Duration::ZERO,
            ..Self::default()
        }
    }
}

mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// Wire variants seen in the docs' own examples (dbs-api.md §3.2, §4.2, §5.2). Off by
/// default; the lenient-parsing tests switch them on to prove the client copes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quirks {
    /// `queuing` instead of `queueing`.
    pub queuing_spelling: bool,
    /// `Initializing`, `Running`, … (capitalised states).
    pub capitalized_states: bool,
    /// DescribeDownloadTask: `Number`/`Size` instead of `PageNumber`/`PageSize`, and
    /// page numbers as strings.
    pub xml_style_paging: bool,
    /// DescribeDownloadTask task fields as JSON numbers instead of strings.
    pub task_numbers_as_numbers: bool,
    /// CreateDownload `Data` numbers as strings instead of JSON numbers.
    pub create_numbers_as_strings: bool,
    /// `ExpirationTime` in seconds (the doc example) instead of milliseconds.
    pub expiration_in_seconds: bool,
    /// `Success: "True"` (RetryDownloadTask example) instead of `"true"`.
    pub success_capitalized: bool,
    /// `Format` in lower case (`csv`), as in the XML example.
    pub lowercase_format: bool,
    /// Point-in-time tasks report the end time of the backup they start from as
    /// `BackupSetTime`, not the requested `DownloadPointInTime` (the docs do not promise
    /// the echo; adoption must not depend on it).
    pub pitr_reports_base_backup_time: bool,
}

/// Everything a simulator instance needs. Build with [`SimConfig::demo`] and the builder
/// methods; all are cheap and chainable.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub keys: Vec<SimKey>,
    pub fleet: Fleet,
    pub durations: Durations,
    /// Simulated seconds per real second (3600 ⇒ an hour passes each second).
    pub time_scale: f64,
    /// Probability that a task (or a retried task) ends `failed` instead of `finished`.
    pub failure_probability: f64,
    /// An identical CreateDownload within this window ⇒ `JobAlreadyExist` (dbs-api.md §10:
    /// the real window is undocumented; simulated time).
    pub job_exist_window: Duration,
    /// Enforce "one running-or-failed task per instance". Turning it off lets a test see
    /// whether the caller respects the rule by itself (via `max_active`).
    pub enforce_one_active: bool,
    /// Requests whose date is further than this from the wall clock are rejected.
    pub timestamp_tolerance: Duration,
    /// DescribeDownloadTask `PageSize` is clamped to this (undocumented maximum).
    pub max_page_size: u32,
    /// DescribeDownloadTask default `PageSize`.
    pub default_page_size: u32,
    /// How long "timeout after create" stalls before dropping the connection.
    pub stall: Duration,
    /// Entries kept in the request log (oldest dropped first).
    pub request_log_capacity: usize,
    pub faults: Faults,
    pub quirks: Quirks,
    pub seed: u64,
    /// Wall clock for task creation times and lifecycle (signature dates are always
    /// checked against the real clock, since clients sign with it).
    pub clock: DynClock,
    /// Keep the tasks in this file (written after every change, reloaded at start), so a
    /// restarted simulator still knows the tasks it created, as the cloud would. `None`:
    /// in memory only (tests, benchmarks).
    pub state_file: Option<std::path::PathBuf>,
}

impl SimConfig {
    /// The demo pair, the demo fleet (`rm-demo0001` … `rm-demo0010` in cn-hangzhou, three
    /// successful daily full backups each), default durations, no failures, time scale 1.
    pub fn demo() -> Self {
        Self {
            keys: vec![demo_key()],
            fleet: Fleet::default(),
            durations: Durations::default(),
            time_scale: 1.0,
            failure_probability: 0.0,
            job_exist_window: Duration::from_secs(24 * 3600),
            enforce_one_active: true,
            timestamp_tolerance: Duration::from_secs(15 * 60),
            max_page_size: 100,
            default_page_size: 20,
            stall: Duration::from_secs(120),
            request_log_capacity: 10_000,
            faults: Faults::default(),
            quirks: Quirks::default(),
            seed: 1,
            clock: Arc::new(SystemClock),
            state_file: None,
        }
        .with_instances(DEMO_REGION, "rm-demo", 10)
    }

    /// Add `n` instances `<prefix>0001` … in `region` (MySQL, three daily full backups).
    pub fn with_instances(mut self, region: &str, prefix: &str, n: usize) -> Self {
        let now = self.clock.now();
        for i in 1..=n {
            let ordinal = self.fleet.instances.len() as i64 + 1;
            let id = format!("{prefix}{i:04}");
            self.fleet.instances.push(InstanceSpec {
                backup_sets: daily_backups(ordinal, now, 3),
                id,
                region: region.to_string(),
                engine: default_engine(),
                reject_with: None,
                cluster_name: None,
            });
        }
        self
    }

    /// Add the MongoDB pair of the demo: the replica set [`DEMO_MONGO_REPLICA_SET`] and the
    /// sharded cluster [`DEMO_MONGO_SHARDED`] (cluster name [`DEMO_MONGO_CLUSTER_NAME`]),
    /// each with three daily full backups, so the MongoDB-only parameters can be exercised.
    pub fn with_mongodb(mut self, region: &str) -> Self {
        let now = self.clock.now();
        for (id, cluster) in [
            (DEMO_MONGO_REPLICA_SET, None),
            (DEMO_MONGO_SHARDED, Some(DEMO_MONGO_CLUSTER_NAME)),
        ] {
            let ordinal = self.fleet.instances.len() as i64 + 1;
            self.fleet.instances.push(InstanceSpec {
                backup_sets: daily_backups(ordinal, now, 3),
                id: id.to_string(),
                region: region.to_string(),
                engine: "MongoDB".into(),
                reject_with: None,
                cluster_name: cluster.map(str::to_string),
            });
        }
        self
    }

    /// Add one instance as given.
    pub fn with_instance(mut self, instance: InstanceSpec) -> Self {
        self.fleet.instances.push(instance);
        self
    }

    /// Replace the whole fleet.
    pub fn fleet(mut self, fleet: Fleet) -> Self {
        self.fleet = fleet;
        self
    }

    /// Replace the accepted keys.
    pub fn keys(mut self, keys: Vec<SimKey>) -> Self {
        self.keys = keys;
        self
    }

    /// Accept one more key.
    pub fn with_key(mut self, key: SimKey) -> Self {
        self.keys.push(key);
        self
    }

    pub fn time_scale(mut self, factor: f64) -> Self {
        self.time_scale = factor;
        self
    }

    pub fn durations(mut self, durations: Durations) -> Self {
        self.durations = durations;
        self
    }

    /// Shorthand for [`Durations::instant`].
    pub fn instant(self) -> Self {
        self.durations(Durations::instant())
    }

    pub fn failure_probability(mut self, p: f64) -> Self {
        self.failure_probability = p;
        self
    }

    pub fn job_exist_window(mut self, window: Duration) -> Self {
        self.job_exist_window = window;
        self
    }

    pub fn enforce_one_active(mut self, on: bool) -> Self {
        self.enforce_one_active = on;
        self
    }

    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    pub fn quirks(mut self, quirks: Quirks) -> Self {
        self.quirks = quirks;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn clock(mut self, clock: DynClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn max_page_size(mut self, n: u32) -> Self {
        self.max_page_size = n;
        self
    }

    /// Persist tasks in `path` ([`SimConfig::state_file`]).
    pub fn state_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    pub fn stall(mut self, d: Duration) -> Self {
        self.stall = d;
        self
    }

    /// Reject settings that would make the simulator lie or misbehave; names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.keys.is_empty() {
            return Err("keys: at least one key pair is required".into());
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err("time_scale: must be a finite number > 0".into());
        }
        if !(0.0..=1.0).contains(&self.failure_probability) {
            return Err("failure_probability: must be within 0..=1".into());
        }
        if self.max_page_size == 0 || self.default_page_size == 0 {
            return Err("max_page_size/default_page_size: must be at least 1".into());
        }
        self.faults.validate()?;
        self.fleet.validate()
    }
}

/// `count` daily successful full backups ending at 02:30 UTC on the days before `now`;
/// ids are numeric like the cloud's (`1460000101`, …), sizes vary per instance.
fn daily_backups(ordinal: i64, now: DateTime<Utc>, count: i64) -> Vec<BackupSetSpec> {
    let today = now
        .date_naive()
        .and_hms_opt(2, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(now);
    (1..=count)
        .map(|day| {
            let start = today - ChronoDuration::days(day);
            BackupSetSpec {
                id: format!("{}", 1_460_000_000 + ordinal * 100 + day),
                size_bytes: (1 + ordinal % 7) * 512 * 1024 * 1024 + day * 4096,
                start_time: start,
                end_time: start + ChronoDuration::minutes(30),
                status: default_backup_status(),
                backup_type: default_backup_type(),
                tables: 8 + (ordinal % 5) as u32 * 4,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_fleet_has_ten_instances_with_two_full_backups_each() {
        let c = SimConfig::demo();
        assert_eq!(c.fleet.instances.len(), 10);
        assert_eq!(c.fleet.instances[0].id, "rm-demo0001");
        assert_eq!(c.fleet.instances[9].id, "rm-demo0010");
        for i in &c.fleet.instances {
            assert_eq!(i.region, "cn-hangzhou");
            assert!(i.backup_sets.iter().filter(|b| b.is_downloadable()).count() >= 2);
            assert!(i.backup_sets.iter().all(|b| b.end_time < Utc::now()));
        }
        assert!(c.validate().is_ok());
    }

    #[test]
    fn validation_names_the_field() {
        let e = SimConfig::demo().time_scale(0.0).validate().unwrap_err();
        assert!(e.starts_with("time_scale"), "{e}");
        let e = SimConfig::demo()
            .failure_probability(2.0)
            .validate()
            .unwrap_err();
        assert!(e.starts_with("failure_probability"), "{e}");
    }

    #[test]
    fn fleet_loads_from_toml_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("fleet.toml");
        std::fs::write(
            &toml_path,
            r#"
forbidden_buckets = ["locked"]
[[instances]]
id = "rm-a"
region = "cn-beijing"
engine = "PostgreSQL"
[[instances.backup_sets]]
id = "42"
size_bytes = 1000
start_time = "2024-01-01T00:00:00Z"
end_time = "2024-01-01T00:10:00Z"
"#,
        )
        .unwrap();
        let f = Fleet::load(&toml_path).unwrap();
        assert_eq!(f.instances[0].backup_sets[0].status, "Success");
        let json_path = dir.path().join("fleet.json");
        std::fs::write(&json_path, serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(Fleet::load(&json_path).unwrap(), f);
    }
}
