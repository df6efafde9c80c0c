//! The `Schedule` domain type: what an operator declares (a [`ScheduleSpec`], identical in
//! API JSON, CLI flags and the config file) and what the database adds (id, cursor, …).
//!
//! Validation lives next to the type so every entry point rejects the same bad input with
//! an error that names the field, before anything is stored.

use super::cron::CronSchedule;
use super::path_template;
use super::{bounds, wire_enum, FormatType, InstanceKey, JobId, TargetType, ValidationError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Database id of a schedule.
pub type ScheduleId = i64;

wire_enum!(
    /// Which backup a fire exports.
    BackupSelection, "backup" {
        /// `pitr` with `DownloadPointInTime` = the fire time (ms).
        PitrAtFireTime => "pitr_at_fire_time",
        /// `full` with the newest successful available full backup (RDS DescribeBackups).
        LatestFull => "latest_full",
    }
);
wire_enum!(
    /// What to do with fires missed while no scheduler ran (older than the grace period).
    MisfirePolicy, "misfire" {
        /// Drop them (recorded); only on-time fires run.
        Skip => "skip",
        /// Run the most recent missed fire once.
        FireOnce => "fire_once",
        /// Run every missed fire, at most `misfire_max` (the most recent ones).
        FireAll => "fire_all",
    }
);
wire_enum!(
    /// What to do when the previous job of this schedule and instance is still unfinished.
    OverlapPolicy, "overlap" {
        /// Do not enqueue; record the skipped fire with its reason.
        Skip => "skip",
        /// Enqueue anyway; the queue runs them one after the other.
        Queue => "queue",
    }
);
wire_enum!(
    /// How the instances of a fire are chosen.
    TargetKind, "targets.kind" {
        /// One instance: `region` + `instance`.
        Instance => "instance",
        /// An explicit list: `instances = ["region/instance", …]`.
        List => "list",
        /// Every registered instance whose id starts with `prefix` (optionally in `region`).
        Prefix => "prefix",
        /// Every registered instance carrying `tag` (optionally in `region`).
        Tag => "tag",
    }
);
wire_enum!(
    /// Who owns a schedule: config-declared ones are re-synced at start-up; the others are
    /// never touched by the sync.
    ScheduleOrigin, "origin" { Api => "api", Cli => "cli", Config => "config" }
);
wire_enum!(
    /// Why a fire (or one instance of it) did not become a job. A small fixed set: it is a
    /// metrics label.
    SkipReason, "reason" {
        /// The previous job of this schedule and instance is still unfinished.
        Overlap => "overlap",
        /// `latest_full` found no successful available full backup.
        NoBackup => "no_backup",
        /// DescribeBackups failed with a permanent error.
        BackupLookupFailed => "backup_lookup_failed",
        /// Missed while no scheduler ran, dropped by the misfire policy.
        Misfire => "misfire",
        /// Missed, beyond the `fire_all` bound.
        MisfireBound => "misfire_bound",
        /// The targets matched no instance.
        NoTargets => "no_targets",
        /// The rendered request broke a CreateDownload rule.
        InvalidRequest => "invalid_request",
    }
);
wire_enum!(
    /// What happened to a fire, per instance.
    RunOutcome, "outcome" { Enqueued => "enqueued", Skipped => "skipped" }
);

/// Which instances a fire targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    pub kind: TargetKind,
    /// `instance`: required. `prefix`/`tag`: optional region filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// `list`: `"region/instance"` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl Targets {
    pub fn instance(region: &str, instance: &str) -> Self {
        Self {
            kind: TargetKind::Instance,
            region: Some(region.into()),
            instance: Some(instance.into()),
            instances: vec![],
            prefix: None,
            tag: None,
        }
    }

    pub fn list(keys: &[InstanceKey]) -> Self {
        Self {
            kind: TargetKind::List,
            region: None,
            instance: None,
            instances: keys.iter().map(|k| k.to_string()).collect(),
            prefix: None,
            tag: None,
        }
    }

    pub fn prefix(prefix: &str, region: Option<&str>) -> Self {
        Self {
            kind: TargetKind::Prefix,
            region: region.map(Into::into),
            instance: None,
            instances: vec![],
            prefix: Some(prefix.into()),
            tag: None,
        }
    }

    pub fn tag(tag: &str, region: Option<&str>) -> Self {
        Self {
            kind: TargetKind::Tag,
            region: region.map(Into::into),
            instance: None,
            instances: vec![],
            prefix: None,
            tag: Some(tag.into()),
        }
    }

    /// The fixed instance set of `instance`/`list` targets (`None` for prefix/tag, which
    /// are resolved against the instances table at fire time).
    pub fn fixed_keys(&self) -> Option<Vec<InstanceKey>> {
        match self.kind {
            TargetKind::Instance => Some(vec![InstanceKey::new(
                self.region.clone().unwrap_or_default(),
                self.instance.clone().unwrap_or_default(),
            )]),
            TargetKind::List => Some(
                self.instances
                    .iter()
                    .filter_map(|s| s.split_once('/'))
                    .map(|(r, i)| InstanceKey::new(r, i))
                    .collect(),
            ),
            TargetKind::Prefix | TargetKind::Tag => None,
        }
    }

    /// Whether a registered instance matches prefix/tag targets.
    pub fn matches(&self, key: &InstanceKey, tags: &[String]) -> bool {
        if let Some(r) = &self.region {
            if &key.region != r {
                return false;
            }
        }
        match self.kind {
            TargetKind::Prefix => self
                .prefix
                .as_deref()
                .is_some_and(|p| key.instance.starts_with(p)),
            TargetKind::Tag => self
                .tag
                .as_deref()
                .is_some_and(|t| tags.iter().any(|x| x == t)),
            TargetKind::Instance | TargetKind::List => self
                .fixed_keys()
                .unwrap_or_default()
                .iter()
                .any(|k| k == key),
        }
    }

    fn validate(&self) -> Result<(), ValidationError> {
        let need = |field: &str, v: &Option<String>| match v {
            Some(s) if !s.trim().is_empty() => Ok(()),
            _ => Err(ValidationError::new(
                format!("targets.{field}"),
                format!("is required when targets.kind is {}", self.kind),
            )),
        };
        let forbid = |field: &str, set: bool| {
            if set {
                Err(ValidationError::new(
                    format!("targets.{field}"),
                    format!("is not used when targets.kind is {}", self.kind),
                ))
            } else {
                Ok(())
            }
        };
        if let Some(r) = &self.region {
            ident("targets.region", r)?;
        }
        match self.kind {
            TargetKind::Instance => {
                need("region", &self.region)?;
                need("instance", &self.instance)?;
                ident("targets.instance", self.instance.as_deref().unwrap_or(""))?;
                forbid("instances", !self.instances.is_empty())?;
                forbid("prefix", self.prefix.is_some())?;
                forbid("tag", self.tag.is_some())?;
            }
            TargetKind::List => {
                if self.instances.is_empty() {
                    return Err(ValidationError::new(
                        "targets.instances",
                        "must list at least one \"region/instance\" when targets.kind is list",
                    ));
                }
                for (i, entry) in self.instances.iter().enumerate() {
                    let field = format!("targets.instances[{i}]");
                    let (r, inst) = entry.split_once('/').ok_or_else(|| {
                        ValidationError::new(
                            &field,
                            format!("{entry:?} must be \"region/instance\""),
                        )
                    })?;
                    ident(&field, r)?;
                    ident(&field, inst)?;
                }
                forbid("region", self.region.is_some())?;
                forbid("instance", self.instance.is_some())?;
                forbid("prefix", self.prefix.is_some())?;
                forbid("tag", self.tag.is_some())?;
            }
            TargetKind::Prefix => {
                need("prefix", &self.prefix)?;
                forbid("instance", self.instance.is_some())?;
                forbid("instances", !self.instances.is_empty())?;
                forbid("tag", self.tag.is_some())?;
            }
            TargetKind::Tag => {
                need("tag", &self.tag)?;
                forbid("instance", self.instance.is_some())?;
                forbid("instances", !self.instances.is_empty())?;
                forbid("prefix", self.prefix.is_some())?;
            }
        }
        Ok(())
    }
}

/// The CreateDownload parameters every fire shares; `path` is a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    #[serde(deserialize_with = "de_format")]
    pub format: FormatType,
    #[serde(deserialize_with = "de_target_type")]
    pub target_type: TargetType,
    /// OSS only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// OSS only: `TargetOssRegion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_region: Option<String>,
    /// OSS only: `TargetPath` with placeholders (see [`path_template::PLACEHOLDERS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// URL only: the `[[sinks]]` entry every fire's archive goes to (docs/archives.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
}

fn de_format<'de, D: Deserializer<'de>>(d: D) -> Result<FormatType, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<FormatType>()
        .map_err(|e| serde::de::Error::custom(format!("template.{e}")))
}

fn de_target_type<'de, D: Deserializer<'de>>(d: D) -> Result<TargetType, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<TargetType>()
        .map_err(|e| serde::de::Error::custom(format!("template.{e}")))
}

impl Template {
    fn validate(&self) -> Result<(), ValidationError> {
        match (&self.sink, self.target_type) {
            (Some(_), TargetType::Oss) => {
                return Err(ValidationError::new(
                    "template.sink",
                    "is only used when template.target_type is URL",
                ))
            }
            (Some(sink), TargetType::Url) => ident("template.sink", sink)?,
            (None, _) => {}
        }
        match self.target_type {
            TargetType::Oss => {
                for (field, v) in [
                    ("template.bucket", &self.bucket),
                    ("template.bucket_region", &self.bucket_region),
                    ("template.path", &self.path),
                ] {
                    if v.as_deref().is_none_or(|s| s.trim().is_empty()) {
                        return Err(ValidationError::new(
                            field,
                            "is required when template.target_type is OSS",
                        ));
                    }
                }
                ident(
                    "template.bucket_region",
                    self.bucket_region.as_deref().unwrap_or(""),
                )?;
                bounds::bucket("template.bucket", self.bucket.as_deref().unwrap_or(""))?;
                path_template::check_path("template.path", self.path.as_deref().unwrap_or(""))
            }
            TargetType::Url => {
                for (field, set) in [
                    ("template.bucket", self.bucket.is_some()),
                    ("template.bucket_region", self.bucket_region.is_some()),
                    ("template.path", self.path.is_some()),
                ] {
                    if set {
                        return Err(ValidationError::new(
                            field,
                            "is only used when template.target_type is OSS",
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

fn default_timezone() -> String {
    "UTC".into()
}
fn default_backup() -> BackupSelection {
    BackupSelection::LatestFull
}
fn default_misfire() -> MisfirePolicy {
    MisfirePolicy::FireOnce
}
fn default_overlap() -> OverlapPolicy {
    OverlapPolicy::Skip
}
fn default_max_attempts() -> i32 {
    5
}

/// What an operator declares. The same shape in API JSON, the config file
/// (`[[scheduler.schedules]]`) and (flattened) on the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Unique; letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// 5-field crontab, or 6/7 fields with seconds (see `model::cron`).
    pub cron: String,
    /// IANA zone the cron expression and `{date}` are evaluated in.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    pub targets: Targets,
    pub template: Template,
    #[serde(default = "default_backup")]
    pub backup: BackupSelection,
    #[serde(default = "default_misfire")]
    pub misfire: MisfirePolicy,
    /// `fire_all` bound; `None` = `scheduler.max_misfire_fires`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misfire_max: Option<u32>,
    #[serde(default = "default_overlap")]
    pub overlap: OverlapPolicy,
    /// Spread the jobs of one fire over up to this many seconds after the fire time
    /// (deterministic per fire and instance).
    #[serde(default)]
    pub jitter_seconds: u32,
    #[serde(default)]
    pub priority: i32,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: i32,
}

/// Upper bound of `misfire_max` and of `scheduler.max_misfire_fires`.
pub const MISFIRE_MAX_LIMIT: u32 = 10_000;

impl ScheduleSpec {
    /// A minimal valid spec: daily at 02:30 UTC, one instance, URL target, latest full.
    pub fn example(name: &str, region: &str, instance: &str) -> Self {
        Self {
            name: name.into(),
            cron: "30 2 * * *".into(),
            timezone: default_timezone(),
            targets: Targets::instance(region, instance),
            template: Template {
                format: FormatType::Csv,
                target_type: TargetType::Url,
                bucket: None,
                bucket_region: None,
                path: None,
                sink: None,
            },
            backup: default_backup(),
            misfire: default_misfire(),
            misfire_max: None,
            overlap: default_overlap(),
            jitter_seconds: 0,
            priority: 0,
            max_attempts: default_max_attempts(),
        }
    }

    /// Every rule; returns the parsed cron so callers need not parse twice.
    pub fn validate(&self) -> Result<CronSchedule, ValidationError> {
        ident("name", &self.name)?;
        let cron = CronSchedule::parse(&self.cron, &self.timezone)?;
        self.targets.validate()?;
        self.template.validate()?;
        if let Some(m) = self.misfire_max {
            if m == 0 || m > MISFIRE_MAX_LIMIT {
                return Err(ValidationError::new(
                    "misfire_max",
                    format!("must be between 1 and {MISFIRE_MAX_LIMIT}"),
                ));
            }
        }
        if self.jitter_seconds > 86_400 {
            return Err(ValidationError::new(
                "jitter_seconds",
                "must be at most 86400",
            ));
        }
        bounds::max_attempts("max_attempts", self.max_attempts)?;
        bounds::priority("priority", self.priority)?;
        Ok(cron)
    }

    /// Parse API JSON; errors name the field.
    pub fn from_json(value: serde_json::Value) -> Result<Self, ValidationError> {
        serde_json::from_value(value).map_err(serde_error)
    }
}

/// Turn a serde message into a [`ValidationError`]: our own messages already start with
/// `field: `; serde's "missing field `x`" / "unknown field `x`" name it in backticks.
pub fn serde_error(e: impl fmt::Display) -> ValidationError {
    let msg = e.to_string();
    if let Some(start) = msg.find('`') {
        if let Some(len) = msg[start + 1..].find('`') {
            let field = &msg[start + 1..start + 1 + len];
            if msg.starts_with("missing field") || msg.starts_with("unknown field") {
                return ValidationError::new(field, msg.clone());
            }
        }
    }
    if let Some((field, rule)) = msg.split_once(": ") {
        if !field.contains(' ') {
            return ValidationError::new(field, rule.to_string());
        }
    }
    ValidationError::new("schedule", msg)
}

fn ident(field: &str, value: &str) -> Result<(), ValidationError> {
    if value == "." || value == ".." {
        return Err(ValidationError::new(
            field,
            format!("{value:?} is not a name"),
        ));
    }
    bounds::identifier(field, value)
        .map_err(|e| ValidationError::new(e.field, format!("{value:?} {}", e.rule)))
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: ScheduleId,
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    pub enabled: bool,
    pub origin: ScheduleOrigin,
    /// The cursor: every fire time at or before it has been handled (fired, skipped, or
    /// passed over while paused). `None` until the first fire; fires then start after
    /// `created_at`.
    pub last_fire_time: Option<DateTime<Utc>>,
    /// The next fire after the cursor (denormalised for the due-schedules index).
    pub next_fire_time: Option<DateTime<Utc>>,
    /// Bumped by every spec change; fences the cursor advance.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Schedule {
    /// Fires strictly after this instant are still to be handled.
    pub fn cursor(&self) -> DateTime<Utc> {
        self.last_fire_time.unwrap_or(self.created_at)
    }
}

/// One row of the fires history: what a fire did for one instance (or, with no instance,
/// for the whole schedule, e.g. a misfire summary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRun {
    pub id: i64,
    pub schedule_id: ScheduleId,
    pub fire_time: DateTime<Utc>,
    pub instance: Option<InstanceKey>,
    pub outcome: RunOutcome,
    /// `None` for enqueued rows.
    pub reason: Option<SkipReason>,
    pub detail: Option<String>,
    pub job_id: Option<JobId>,
    pub recorded_at: DateTime<Utc>,
}

/// `[scheduler]` of the config file (docs/schedules.md). Here rather than in `config` so
/// the scheduler reads its settings without importing the config loader, and the loader
/// validates them without importing the scheduler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    pub enabled: bool,
    pub tick_seconds: f64,
    /// Schedules claimed per batch.
    pub batch_size: u32,
    /// Schedules of a batch worked on at once (each uses a database connection).
    pub concurrency: u32,
    /// How long a scheduler holds a claimed schedule before another may take it over.
    pub lease_seconds: u64,
    /// A fire found later than this after its time is a misfire (policy applies).
    pub misfire_grace_seconds: u64,
    /// Bound of the `fire_all` misfire policy (and default of a schedule's `misfire_max`).
    pub max_misfire_fires: u32,
    /// DescribeBackups look-back for `latest_full` (hours).
    pub latest_full_window_hours: u32,
    /// Declarative schedules, synced at start-up (`[[scheduler.schedules]]`).
    #[serde(default)]
    pub schedules: Vec<ScheduleSpec>,
}

impl SchedulerSettings {
    /// Every rule of `[scheduler]`, declared schedules included; errors name
    /// `scheduler.<key>`.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let rule = |ok: bool, key: &str, rule: String| {
            if ok {
                Ok(())
            } else {
                Err(ValidationError::new(format!("scheduler.{key}"), rule))
            }
        };
        rule(
            self.tick_seconds.is_finite() && self.tick_seconds > 0.0,
            "tick_seconds",
            "must be > 0".into(),
        )?;
        rule(
            self.latest_full_window_hours > 0,
            "latest_full_window_hours",
            "must be at least 1".into(),
        )?;
        rule(
            self.batch_size > 0,
            "batch_size",
            "must be at least 1".into(),
        )?;
        rule(
            self.concurrency > 0,
            "concurrency",
            "must be at least 1".into(),
        )?;
        rule(
            self.lease_seconds >= 2,
            "lease_seconds",
            "must be at least 2".into(),
        )?;
        rule(
            (1..=MISFIRE_MAX_LIMIT).contains(&self.max_misfire_fires),
            "max_misfire_fires",
            format!("must be between 1 and {MISFIRE_MAX_LIMIT}"),
        )?;
        validate_declared(&self.schedules)
    }
}

/// Every declared schedule is valid and names are unique; errors name
/// `scheduler.schedules[i].<field>`.
pub fn validate_declared(declared: &[ScheduleSpec]) -> Result<(), ValidationError> {
    for (i, spec) in declared.iter().enumerate() {
        spec.validate().map_err(|e| {
            ValidationError::new(format!("scheduler.schedules[{i}].{}", e.field), e.rule)
        })?;
        if declared[..i].iter().any(|d| d.name == spec.name) {
            return Err(ValidationError::new(
                format!("scheduler.schedules[{i}].name"),
                format!("{:?} is declared twice", spec.name),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oss_spec() -> ScheduleSpec {
        let mut s = ScheduleSpec::example("nightly", "cn-hangzhou", "rm-1");
        s.template.target_type = TargetType::Oss;
        s.template.bucket = Some("archive".into());
        s.template.bucket_region = Some("cn-hangzhou".into());
        s.template.path = Some("{schedule}/{instance}/{date}/".into());
        s
    }

    #[test]
    fn example_and_oss_are_valid() {
        ScheduleSpec::example("a", "cn-hangzhou", "rm-1")
            .validate()
            .unwrap();
        oss_spec().validate().unwrap();
    }

    #[test]
    fn each_bad_input_names_its_field() {
        type Mutation = Box<dyn Fn(&mut ScheduleSpec)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("cron", Box::new(|s| s.cron = "not a cron".into())),
            (
                "timezone",
                Box::new(|s| s.timezone = "Europe/Atlantis".into()),
            ),
            ("name", Box::new(|s| s.name = "has space".into())),
            (
                "template.path",
                Box::new(|s| s.template.path = Some("{instance}/{hostname}".into())),
            ),
            (
                "template.path",
                Box::new(|s| s.template.path = Some("base/../{instance}".into())),
            ),
            ("template.bucket", Box::new(|s| s.template.bucket = None)),
            ("targets.instance", Box::new(|s| s.targets.instance = None)),
            ("misfire_max", Box::new(|s| s.misfire_max = Some(0))),
            ("max_attempts", Box::new(|s| s.max_attempts = 0)),
            (
                "targets.instances[1]",
                Box::new(|s| {
                    s.targets = Targets::list(&[InstanceKey::new("cn-hangzhou", "rm-1")]);
                    s.targets.instances.push("no-slash".into());
                }),
            ),
        ];
        for (field, mutate) in cases {
            let mut s = oss_spec();
            mutate(&mut s);
            let e = s.validate().unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn unknown_policy_in_json_names_the_field() {
        let mut v = serde_json::to_value(oss_spec()).unwrap();
        v["misfire"] = "sometimes".into();
        let e = ScheduleSpec::from_json(v).unwrap_err();
        assert_eq!(e.field, "misfire", "{e}");
        assert!(e.rule.contains("skip, fire_once, fire_all"), "{e}");

        let mut v = serde_json::to_value(oss_spec()).unwrap();
        v["overlap"] = "merge".into();
        assert_eq!(ScheduleSpec::from_json(v).unwrap_err().field, "overlap");

        let mut v = serde_json::to_value(oss_spec()).unwrap();
        v["backup"] = "oldest".into();
        assert_eq!(ScheduleSpec::from_json(v).unwrap_err().field, "backup");

        let mut v = serde_json::to_value(oss_spec()).unwrap();
        v["template"]["format"] = "csv".into();
        assert_eq!(
            ScheduleSpec::from_json(v).unwrap_err().field,
            "template.format"
        );

        let mut v = serde_json::to_value(oss_spec()).unwrap();
        v["colour"] = "blue".into();
        assert_eq!(ScheduleSpec::from_json(v).unwrap_err().field, "colour");

        let v = serde_json::to_value(oss_spec()).unwrap();
        let back = ScheduleSpec::from_json(v).unwrap();
        assert_eq!(back, oss_spec());
    }

    #[test]
    fn prefix_and_tag_matching() {
        let p = Targets::prefix("rm-prod-", Some("cn-hangzhou"));
        assert!(p.matches(&InstanceKey::new("cn-hangzhou", "rm-prod-1"), &[]));
        assert!(!p.matches(&InstanceKey::new("cn-beijing", "rm-prod-1"), &[]));
        assert!(!p.matches(&InstanceKey::new("cn-hangzhou", "rm-dev-1"), &[]));
        let t = Targets::tag("nightly", None);
        assert!(t.matches(&InstanceKey::new("x", "y"), &["a".into(), "nightly".into()]));
        assert!(!t.matches(&InstanceKey::new("x", "y"), &["a".into()]));
    }
}
