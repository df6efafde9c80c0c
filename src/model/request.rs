//! The validated parameters of one `CreateDownload` call (dbs-api.md §3.1).
//!
//! Validation lives here, next to the type, so every entry point (API, CLI, schedule,
//! SQL through CHECK constraints) enforces the same conditional rules before the cloud does.

use super::{bounds, wire_enum};
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
    /// `ClusterName`: MongoDB sharded clusters only; an identifier.
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// `IsCluster` (MongoDB only): `true` or `false`. The cloud types it as a string and
    /// documents no other value; its meaning (sharded cluster or not) is undocumented, so
    /// it is passed through without a cross-field rule.
    #[serde(default)]
    pub is_cluster: Option<String>,
    /// `AdminDatabase` (MongoDB only): the authentication database, cloud default
    /// `admin`; a MongoDB database name.
    #[serde(default)]
    pub admin_database: Option<String>,
    /// `PrimaryKeyTypeOnly` (MongoDB only): `true` or `false`; semantics undocumented.
    #[serde(default)]
    pub primary_key_type_only: Option<String>,
    /// `UseZstd`: zstd compression of the output, `true` or `false` (cloud default false).
    #[serde(default)]
    pub use_zstd: Option<String>,
    /// `IsPhysical` (boolean on the wire): the docs say it "applies only to one download
    /// format" without naming it, so no format rule is enforced here; the cloud decides.
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

/// Run `check` on an optional field when it is present.
fn present<T: ?Sized>(
    field: &str,
    value: Option<&T>,
    check: impl Fn(&str, &T) -> Result<(), ValidationError>,
) -> Result<(), ValidationError> {
    value.map_or(Ok(()), |v| check(field, v))
}

pub(crate) use bounds::identifier;

impl DownloadRequest {
    /// The conditional rules of dbs-api.md §3.1 and the field rules of the contract
    /// (docs/sql-interface.md); migration 0005 holds the same rules as CHECK constraints,
    /// so a row SQL may insert is exactly a request this accepts.
    ///
    /// The MongoDB flags must already be lowercase here (what is stored); entry points go
    /// through [`DownloadRequest::checked`], which normalizes them first.
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
            BakSetType::Pitr => {
                if self.download_point_in_time.is_none() {
                    return Err(ValidationError::new(
                        "download_point_in_time",
                        "is required when bak_set_type is pitr",
                    ));
                }
            }
        }
        present("bak_set_id", self.bak_set_id.as_deref(), identifier)?;
        if let Some(ms) = self.download_point_in_time {
            bounds::point_in_time("download_point_in_time", ms)?;
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
        }
        present(
            "target_bucket",
            self.target_bucket.as_deref(),
            bounds::bucket,
        )?;
        present(
            "target_path",
            self.target_path.as_deref(),
            bounds::object_path,
        )?;
        present(
            "target_oss_region",
            self.target_oss_region.as_deref(),
            identifier,
        )?;
        present("cluster_name", self.cluster_name.as_deref(), identifier)?;
        present(
            "admin_database",
            self.admin_database.as_deref(),
            bounds::admin_database,
        )?;
        for (field, value) in self.flags() {
            present(field, value, |f, v: &str| {
                if bounds::FLAG_VALUES.contains(&v) {
                    Ok(())
                } else {
                    Err(ValidationError::new(f, "must be true or false"))
                }
            })?;
        }
        Ok(())
    }

    /// The MongoDB string flags by field name.
    fn flags(&self) -> [(&'static str, Option<&str>); 3] {
        [
            ("is_cluster", self.is_cluster.as_deref()),
            (
                "primary_key_type_only",
                self.primary_key_type_only.as_deref(),
            ),
            ("use_zstd", self.use_zstd.as_deref()),
        ]
    }

    /// What every entry point (API, CLI, `dbs create-download`) calls: the MongoDB flags
    /// in any case become `true`/`false`, then [`DownloadRequest::validate`].
    pub fn checked(mut self) -> Result<Self, ValidationError> {
        for (field, slot) in [
            ("is_cluster", &mut self.is_cluster),
            ("primary_key_type_only", &mut self.primary_key_type_only),
            ("use_zstd", &mut self.use_zstd),
        ] {
            if let Some(v) = slot.as_deref() {
                *slot = Some(bounds::flag(field, v)?);
            }
        }
        self.validate()?;
        Ok(self)
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
        r.target_bucket = Some("bkt".into());
        assert_eq!(r.validate().unwrap_err().field, "target_path");
        r.target_path = Some("a/../b".into());
        assert_eq!(r.validate().unwrap_err().field, "target_oss_region");
        r.target_oss_region = Some("cn-hangzhou".into());
        assert_eq!(r.validate().unwrap_err().field, "target_path");
        r.target_path = Some("a/b".into());
        assert!(r.validate().is_ok());
    }

    fn full() -> DownloadRequest {
        DownloadRequest::example_full("cn-hangzhou", "rm-1", "123")
    }

    fn field_of(r: &DownloadRequest) -> String {
        r.validate().unwrap_err().field
    }

    #[test]
    fn identifiers_when_present() {
        let mut r = full();
        r.cluster_name = Some("dds-1\u{1b}[31m".into());
        assert_eq!(field_of(&r), "cluster_name");
        r.cluster_name = Some("dds-example".into());
        assert!(r.validate().is_ok());
        r.bak_set_id = Some("x".repeat(129));
        assert_eq!(field_of(&r), "bak_set_id");
        let mut r = full();
        r.target_oss_region = Some("cn hangzhou".into());
        assert_eq!(field_of(&r), "target_oss_region");
        let mut r = full();
        r.region = "cn/hangzhou".into();
        assert_eq!(field_of(&r), "region");
    }

    #[test]
    fn size_and_point_in_time_for_any_type() {
        let mut r = full();
        r.bak_set_size = Some(-1);
        assert_eq!(field_of(&r), "bak_set_size");
        r.bak_set_size = Some(0);
        assert!(r.validate().is_ok());
        // A full download with a point in time in seconds is refused too.
        r.download_point_in_time = Some(1_661_331_864);
        let e = r.validate().unwrap_err();
        assert_eq!(e.field, "download_point_in_time");
        assert!(e.rule.contains("UNIX milliseconds"), "{e}");
        r.download_point_in_time = Some(bounds::TIME_MS.end() + 1);
        assert_eq!(field_of(&r), "download_point_in_time");
        r.download_point_in_time = Some(*bounds::TIME_MS.end());
        assert!(r.validate().is_ok());
    }

    #[test]
    fn bucket_and_path_whatever_the_target() {
        let mut r = full();
        r.target_bucket = Some("My_Bucket".into());
        assert_eq!(field_of(&r), "target_bucket");
        r.target_bucket = Some("my-bucket".into());
        r.target_path = Some("../etc".into());
        assert_eq!(field_of(&r), "target_path");
        r.target_path = Some("a\tb".into());
        assert_eq!(field_of(&r), "target_path");
        r.target_path = Some("x".repeat(bounds::TEXT_MAX_LEN + 1));
        assert_eq!(field_of(&r), "target_path");
        r.target_path = Some("archive/rm-1/".into());
        assert!(r.validate().is_ok());
    }

    #[test]
    fn mongo_parameters() {
        let mut r = full();
        r.admin_database = Some("admin.db".into());
        assert_eq!(field_of(&r), "admin_database");
        r.admin_database = Some("admin".into());
        r.is_cluster = Some("TRUE".into());
        // Stored spelling only; `checked` normalizes what an operator typed.
        assert_eq!(field_of(&r), "is_cluster");
        let r = r.checked().unwrap();
        assert_eq!(r.is_cluster.as_deref(), Some("true"));
        let mut r = full();
        r.use_zstd = Some("yes".into());
        assert_eq!(r.clone().checked().unwrap_err().field, "use_zstd");
        r.use_zstd = None;
        r.primary_key_type_only = Some("False".into());
        let r = r.checked().unwrap();
        assert_eq!(r.primary_key_type_only.as_deref(), Some("false"));
    }

    #[test]
    fn enums_name_field_and_values() {
        let e = "csv".parse::<FormatType>().unwrap_err();
        assert_eq!(e.field, "format");
        assert!(e.rule.contains("CSV, SQL, Parquet"));
    }
}
