//! `[[sinks]]` and `[archive]`: where URL downloads are archived, how they are fetched and
//! how long they are kept. Validated at start-up with errors that name the key, like every
//! other setting (config.rs calls [`validate`]).

use crate::model::bounds::{ARCHIVE_CONCURRENCY, ARCHIVE_KEEP_DAYS, ARCHIVE_KEEP_LAST};
use crate::model::ValidationError;
use serde::Deserialize;
use std::path::PathBuf;

/// Placeholders of a sink's `object_template`.
pub const OBJECT_PLACEHOLDERS: &[&str] = &[
    "region",
    "instance",
    "backup_set",
    "task_id",
    "job_id",
    "date",
    "format",
];

/// The default object name: one folder per instance, then the day the task finished.
pub const DEFAULT_OBJECT_TEMPLATE: &str =
    "{region}/{instance}/{date}/{task_id}_{backup_set}.{format}.tar.gz";

crate::model::wire_enum!(
    /// Where a sink keeps its objects.
    SinkKind, "sinks.kind" {
        /// A directory on a local or mounted filesystem.
        Local => "local",
        /// Any S3-compatible object store (AWS S3, MinIO, Ceph, OSS's S3 API, …).
        S3 => "s3",
    }
);

/// One `[[sinks]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSettings {
    /// What requests and schedules name in their `sink` field.
    pub name: String,
    pub kind: SinkKind,
    /// `local`: the directory (created if missing).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `s3`: the endpoint URL; empty = AWS's default for `region`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `s3`: the bucket (must exist).
    #[serde(default)]
    pub bucket: Option<String>,
    /// `s3`: the signing region.
    #[serde(default)]
    pub region: Option<String>,
    /// `s3`: a key prefix every object name goes under.
    #[serde(default)]
    pub prefix: Option<String>,
    /// `s3`: permit `http://` endpoints (a store on the same host or network only).
    #[serde(default)]
    pub allow_http: bool,
    /// `s3`: a TOML file with `access_key_id`, `secret_access_key` and optionally
    /// `session_token`. Without it the keys come from the environment variables named by
    /// `access_key_id_env` / `secret_access_key_env` (default `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY`). Keys are never put in the settings themselves.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    #[serde(default)]
    pub access_key_id_env: Option<String>,
    #[serde(default)]
    pub secret_access_key_env: Option<String>,
    /// The object name of an archive (placeholders: [`OBJECT_PLACEHOLDERS`]).
    #[serde(default = "default_template")]
    pub object_template: String,
    /// Retention: keep the newest N archives per instance…
    #[serde(default)]
    pub keep_last: Option<u32>,
    /// …and/or those younger than D days. With both, an archive is kept when either rule
    /// keeps it; with neither, archives are kept forever.
    #[serde(default)]
    pub keep_days: Option<u32>,
}

fn default_template() -> String {
    DEFAULT_OBJECT_TEMPLATE.to_string()
}

impl SinkSettings {
    /// A local-directory sink named `local` at `path`, default template, kept forever.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        Self {
            name: "local".into(),
            kind: SinkKind::Local,
            path: Some(path.into()),
            endpoint: None,
            bucket: None,
            region: None,
            prefix: None,
            allow_http: false,
            credentials_file: None,
            access_key_id_env: None,
            secret_access_key_env: None,
            object_template: default_template(),
            keep_last: None,
            keep_days: None,
        }
    }
}

/// `[archive]`: the fetcher and retention services. Keys left out take the defaults
/// documented in `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveSettings {
    /// Run the fetcher and retention in `serve`.
    pub enabled: bool,
    /// The sink of URL jobs that name none; empty = such jobs are not archived.
    pub default_sink: String,
    /// Fetches in flight at once (per process).
    pub concurrency: u32,
    /// Total fetch bandwidth of this process in bytes per second; 0 = unlimited.
    pub bandwidth_bytes_per_second: u64,
    /// Attempts before an archive fails (retries use `worker.retry`).
    pub max_attempts: u32,
    pub lease_seconds: u64,
    /// Fallback wake-up of an idle fetcher (milliseconds).
    pub idle_poll_ms: u64,
    /// Where partial downloads for object-store sinks are kept until they are uploaded
    /// (local sinks keep theirs in `<path>/.partial/`, on the same filesystem).
    pub spool_dir: PathBuf,
    /// A retry is never scheduled later than this before the link expires, and a fetch
    /// that would finish later is alerted on (see docs/archives.md).
    pub expiry_margin_seconds: u64,
    /// How often retention runs.
    pub retention_interval_seconds: u64,
    /// Log what retention would delete instead of deleting it.
    pub retention_dry_run: bool,
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            default_sink: String::new(),
            concurrency: 2,
            bandwidth_bytes_per_second: 0,
            max_attempts: 5,
            lease_seconds: 60,
            idle_poll_ms: 1000,
            spool_dir: PathBuf::from("archives/.spool"),
            expiry_margin_seconds: 900,
            retention_interval_seconds: 3600,
            retention_dry_run: false,
        }
    }
}

fn invalid(key: String, rule: impl Into<String>) -> ValidationError {
    ValidationError::new(key, rule)
}

fn required<'a>(
    key: String,
    v: &'a Option<String>,
    kind: &str,
) -> Result<&'a str, ValidationError> {
    match v.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(invalid(key, format!("is required for kind = \"{kind}\""))),
    }
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    key: String,
    v: T,
    r: &std::ops::RangeInclusive<T>,
) -> Result<(), ValidationError> {
    if r.contains(&v) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("must be within {}..={}", r.start(), r.end()),
        ))
    }
}

impl SinkSettings {
    fn validate(&self, i: usize) -> Result<(), ValidationError> {
        let key = |field: &str| format!("sinks[{i}].{field}");
        crate::model::identifier(&key("name"), &self.name)?;
        crate::model::path_template::check_template(
            &key("object_template"),
            &self.object_template,
            OBJECT_PLACEHOLDERS,
        )?;
        if let Some(n) = self.keep_last {
            in_range(key("keep_last"), n, &ARCHIVE_KEEP_LAST)?;
        }
        if let Some(d) = self.keep_days {
            in_range(key("keep_days"), d, &ARCHIVE_KEEP_DAYS)?;
        }
        match self.kind {
            SinkKind::Local => {
                if self.path.as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
                    return Err(invalid(key("path"), "is required for kind = \"local\""));
                }
            }
            SinkKind::S3 => {
                required(key("bucket"), &self.bucket, "s3")?;
                required(key("region"), &self.region, "s3")?;
                if let Some(e) = self.endpoint.as_deref().filter(|e| !e.is_empty()) {
                    let u = url::Url::parse(e)
                        .map_err(|_| invalid(key("endpoint"), "must be an http(s) URL"))?;
                    match u.scheme() {
                        "https" => {}
                        "http" if self.allow_http => {}
                        "http" => {
                            return Err(invalid(
                                key("endpoint"),
                                "is plain http: set allow_http = true to permit it",
                            ))
                        }
                        _ => return Err(invalid(key("endpoint"), "must be an http(s) URL")),
                    }
                }
                if let Some(p) = &self.prefix {
                    if p.split('/').any(|s| s == "..") {
                        return Err(invalid(key("prefix"), "must not contain '..' segments"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The rules serde cannot express, for `[[sinks]]` and `[archive]` together.
pub fn validate(sinks: &[SinkSettings], a: &ArchiveSettings) -> Result<(), ValidationError> {
    for (i, s) in sinks.iter().enumerate() {
        s.validate(i)?;
        if sinks[..i].iter().any(|o| o.name == s.name) {
            return Err(invalid(
                format!("sinks[{i}].name"),
                format!(
                    "{:?} is used by an earlier sink; names must be unique",
                    s.name
                ),
            ));
        }
    }
    if !a.default_sink.is_empty() && !sinks.iter().any(|s| s.name == a.default_sink) {
        return Err(invalid(
            "archive.default_sink".into(),
            format!("names no [[sinks]] entry: {:?}", a.default_sink),
        ));
    }
    in_range(
        "archive.concurrency".into(),
        a.concurrency,
        &ARCHIVE_CONCURRENCY,
    )?;
    if a.max_attempts == 0 {
        return Err(invalid("archive.max_attempts".into(), "must be at least 1"));
    }
    if a.lease_seconds == 0 {
        return Err(invalid(
            "archive.lease_seconds".into(),
            "must be at least 1",
        ));
    }
    if a.retention_interval_seconds == 0 {
        return Err(invalid(
            "archive.retention_interval_seconds".into(),
            "must be at least 1",
        ));
    }
    Ok(())
}

/// Check a request's `sink` against the configured sinks (the API and the CLI call this
/// at enqueue, so a typo is refused before the download is made).
pub fn check_sink_name(sinks: &[SinkSettings], name: Option<&str>) -> Result<(), ValidationError> {
    match name {
        Some(n) if !sinks.iter().any(|s| s.name == n) => Err(invalid(
            "sink".into(),
            format!(
                "names no configured sink; configured: {}",
                if sinks.is_empty() {
                    "none".to_string()
                } else {
                    sinks
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        )),
        _ => Ok(()),
    }
}

/// `serve --simulate`: a sink `local` at `./archives/` as the default, so a newcomer sees
/// archives appear; paced, because the demo's backup sets are gigabytes.
pub fn demo_local_sink(sinks: &mut Vec<SinkSettings>, a: &mut ArchiveSettings) {
    if !sinks.iter().any(|s| s.name == "local") {
        sinks.push(SinkSettings {
            keep_last: Some(3),
            ..SinkSettings::local("archives")
        });
    }
    if a.default_sink.is_empty() {
        a.default_sink = "local".into();
    }
    if a.bandwidth_bytes_per_second == 0 {
        a.bandwidth_bytes_per_second = DEMO_BANDWIDTH;
    }
}

/// Fetch pace of the demo: 32 MiB/s.
const DEMO_BANDWIDTH: u64 = 32 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn local(name: &str) -> SinkSettings {
        SinkSettings {
            name: name.into(),
            ..SinkSettings::local("archives")
        }
    }

    #[test]
    fn errors_name_the_key() {
        let a = ArchiveSettings::default();
        let mut s = local("x");
        s.path = None;
        assert_eq!(validate(&[s], &a).unwrap_err().field, "sinks[0].path");
        let mut s = local("x");
        s.object_template = "{nope}".into();
        assert_eq!(
            validate(&[s], &a).unwrap_err().field,
            "sinks[0].object_template"
        );
        let mut s = local("x");
        s.kind = SinkKind::S3;
        assert_eq!(validate(&[s], &a).unwrap_err().field, "sinks[0].bucket");
        let mut s = local("x");
        s.keep_last = Some(0);
        assert_eq!(validate(&[s], &a).unwrap_err().field, "sinks[0].keep_last");
        assert_eq!(
            validate(&[local("a"), local("a")], &a).unwrap_err().field,
            "sinks[1].name"
        );
        let a = ArchiveSettings {
            default_sink: "missing".into(),
            ..ArchiveSettings::default()
        };
        assert_eq!(
            validate(&[local("a")], &a).unwrap_err().field,
            "archive.default_sink"
        );
    }

    #[test]
    fn unknown_sink_names_the_configured_ones() {
        let e = check_sink_name(&[local("a"), local("b")], Some("c")).unwrap_err();
        assert_eq!(e.field, "sink");
        assert!(e.rule.contains("a, b"), "{}", e.rule);
        assert!(check_sink_name(&[local("a")], Some("a")).is_ok());
        assert!(check_sink_name(&[], None).is_ok());
    }
}
