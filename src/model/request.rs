//! The validated parameters of one `CreateDownload` call (dbs-api.md §3.1).
//!
//! Validation lives here, next to the type, so every entry point (API, CLI, schedule,
//! SQL through CHECK constraints) enforces the same conditional rules before the cloud does.

use super::wire_enum;
use serde::{Deserialize, Serialize};

/// A rejected input: names the field and the rule it broke, so the operator can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{field}: {rule}")]
pub struct ValidationError {
    /// Field name as the operator wrote it (API JSON / CLI flag / config key).
    pub field: String,
    /// The rule, in words.
    pub rule: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

wire_enum!(
    /// `BakSetType`: a whole backup set, or data as of a point in time.
    BakSetType, "bak_set_type" { Full => "full", Pitr => "pitr" }
);
wire_enum!(
    /// `FormatType`: the export file format.
    FormatType, "format" { Csv => "CSV", Sql => "SQL", Parquet => "Parquet" }
);
wire_enum!(
    /// `TargetType`: an OSS bucket of the customer, or a download URL minted by DBS.
    TargetType, "target_type" { Oss => "OSS", Url => "URL" }
);

/// One `CreateDownload` request. Field names follow the snake_case of the wire names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadRequest {
    /// `RegionCode`: the instance's region (not the endpoint's).
    pub region: String,
    /// `InstanceName`: the instance or cluster id, e.g. `rm-…`.
    pub instance: String,
    pub bak_set_type: BakSetType,
    /// Required when `bak_set_type = full`.
    #[serde(default)]
    pub bak_set_id: Option<String>,
    /// Bytes of the full backup set, from DescribeBackups; optional.
    #[serde(default)]
    pub bak_set_size: Option<i64>,
    /// UNIX milliseconds; required when `bak_set_type = pitr`.
    #[serde(default)]
    pub download_point_in_time: Option<i64>,
    pub format: FormatType,
    pub target_type: TargetType,
    /// OSS only, required there.
    #[serde(default)]
    pub target_bucket: Option<String>,
    /// OSS only, required there.
    #[serde(default)]
    pub target_oss_region: Option<String>,
    /// OSS only, required there.
    #[serde(default)]
    pub target_path: Option<String>,
    /// MongoDB sharded clusters only.
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// MongoDB only (semantics undocumented, passed through).
    #[serde(default)]
    pub is_cluster: Option<String>,
    /// MongoDB authentication database (cloud default `admin`).
    #[serde(default)]
    pub admin_database: Option<String>,
    /// MongoDB only (semantics undocumented, passed through).
    #[serde(default)]
    pub primary_key_type_only: Option<String>,
    /// zstd compression of the output (cloud default false).
    #[serde(default)]
    pub use_zstd: Option<String>,
    /// Physical download (one format only; passed through).
    #[serde(default)]
    pub is_physical: Option<bool>,
    /// Not a cloud parameter: the `[[sinks]]` entry a URL download's archive is fetched
    /// into (docs/archives.md); `None` = `archive.default_sink`.
    #[serde(default)]
    pub sink: Option<String>,
}

fn required(field: &str, value: &Option<String>, rule: &str) -> Result<(), ValidationError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(()),
        _ => Err(ValidationError::new(field, rule)),
    }
}

pub(crate) fn identifier(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::new(
            field,
            "is required and must not be empty",
        ));
    }
    if value.len() > 128
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(ValidationError::new(
            field,
            "must be 1-128 characters of letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(())
}

impl DownloadRequest {
    /// The conditional rules of dbs-api.md §3.1; the same rules are CHECK constraints in SQL.
    pub fn validate(&self) -> Result<(), ValidationError> {
        identifier("region", &self.region)?;
        identifier("instance", &self.instance)?;
        if let Some(sink) = &self.sink {
            identifier("sink", sink)?;
            if self.target_type != TargetType::Url {
                return Err(ValidationError::new(
                    "sink",
                    "is only for target_type URL (an OSS target is already in your bucket)",
                ));
            }
        }
        match self.bak_set_type {
            BakSetType::Full => required(
                "bak_set_id",
                &self.bak_set_id,
                "is required when bak_set_type is full",
            )?,
            BakSetType::Pitr => match self.download_point_in_time {
                Some(ms) if ms > 0 => {}
                Some(_) => {
                    return Err(ValidationError::new(
                        "download_point_in_time",
                        "must be a positive UNIX time in milliseconds",
                    ))
                }
                None => {
                    return Err(ValidationError::new(
                        "download_point_in_time",
                        "is required when bak_set_type is pitr",
                    ))
                }
            },
        }
        if let Some(size) = self.bak_set_size {
            if size < 0 {
                return Err(ValidationError::new("bak_set_size", "must not be negative"));
            }
        }
        if self.target_type == TargetType::Oss {
            required(
                "target_bucket",
                &self.target_bucket,
                "is required when target_type is OSS",
            )?;
            required(
                "target_path",
                &self.target_path,
                "is required when target_type is OSS",
            )?;
            required(
                "target_oss_region",
                &self.target_oss_region,
                "is required when target_type is OSS",
            )?;
            if let Some(path) = &self.target_path {
                if path.split('/').any(|seg| seg == "..") {
                    return Err(ValidationError::new(
                        "target_path",
                        "must not contain '..' segments",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The instance this request runs against: the unit of the cloud's one-task rule.
    pub fn instance_key(&self) -> super::InstanceKey {
        super::InstanceKey::new(&self.region, &self.instance)
    }

    /// A minimal valid full-backup request; handy for tests, demo seeding and examples.
    pub fn example_full(region: &str, instance: &str, bak_set_id: &str) -> Self {
        Self {
            region: region.into(),
            instance: instance.into(),
            bak_set_type: BakSetType::Full,
            bak_set_id: Some(bak_set_id.into()),
            bak_set_size: None,
            download_point_in_time: None,
            format: FormatType::Csv,
            target_type: TargetType::Url,
            target_bucket: None,
            target_oss_region: None,
            target_path: None,
            cluster_name: None,
            is_cluster: None,
            admin_database: None,
            primary_key_type_only: None,
            use_zstd: None,
            is_physical: None,
            sink: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_requires_backup_set() {
        let mut r = DownloadRequest::example_full("cn-hangzhou", "rm-1", "123");
        assert!(r.validate().is_ok());
        r.bak_set_id = None;
        assert_eq!(r.validate().unwrap_err().field, "bak_set_id");
    }

    #[test]
    fn pitr_requires_point_in_time() {
        let mut r = DownloadRequest::example_full("cn-hangzhou", "rm-1", "123");
        r.bak_set_type = BakSetType::Pitr;
        assert_eq!(r.validate().unwrap_err().field, "download_point_in_time");
        r.download_point_in_time = Some(1_661_331_864_000);
        assert!(r.validate().is_ok());
    }

    #[test]
    fn oss_requires_bucket_path_region() {
        let mut r = DownloadRequest::example_full("cn-hangzhou", "rm-1", "123");
        r.target_type = TargetType::Oss;
        assert_eq!(r.validate().unwrap_err().field, "target_bucket");
        r.target_bucket = Some("b".into());
        assert_eq!(r.validate().unwrap_err().field, "target_path");
        r.target_path = Some("a/../b".into());
        assert_eq!(r.validate().unwrap_err().field, "target_oss_region");
        r.target_oss_region = Some("cn-hangzhou".into());
        assert_eq!(r.validate().unwrap_err().field, "target_path");
        r.target_path = Some("a/b".into());
        assert!(r.validate().is_ok());
    }

    #[test]
    fn enums_name_field_and_values() {
        let e = "csv".parse::<FormatType>().unwrap_err();
        assert_eq!(e.field, "format");
        assert!(e.rule.contains("CSV, SQL, Parquet"));
    }
}
