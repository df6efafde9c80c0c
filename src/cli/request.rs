//! The CreateDownload flags shared by `enqueue` and `dbs create-download`, and the value
//! parsers every command uses, so the command line refuses exactly what the API refuses,
//! in the same words ([`DownloadRequest::checked`], [`crate::model::bounds`]); only the
//! field is spelled as the flag the operator typed.

use crate::model::{bounds, BakSetType, DownloadRequest, FormatType, TargetType, ValidationError};
use chrono::{DateTime, Utc};

/// `bak_set_id` ⇒ `--bak-set-id`: validation errors name the flag the user typed.
pub fn flag_name(field: &str) -> String {
    format!("--{}", field.replace('_', "-"))
}

/// A [`ValidationError`] as the command line reports it: `--flag: rule`.
pub fn flag_error(e: ValidationError) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", flag_name(&e.field), e.rule)
}

/// `FormatType` in any case (`csv` ⇒ `CSV`).
pub fn format_type(s: &str) -> Result<FormatType, String> {
    FormatType::parse_any_case(s).map_err(|e| e.rule)
}

/// `TargetType` in any case (`oss` ⇒ `OSS`).
pub fn target_type(s: &str) -> Result<TargetType, String> {
    TargetType::parse_any_case(s).map_err(|e| e.rule)
}

/// `BakSetType` in any case (`FULL` ⇒ `full`).
pub fn bak_set_type(s: &str) -> Result<BakSetType, String> {
    BakSetType::parse_any_case(s).map_err(|e| e.rule)
}

/// A count (seconds, fires): a negative number gets our words, not clap's.
pub fn count(s: &str) -> Result<u32, String> {
    match s.parse::<i64>() {
        Ok(n) if n < 0 => Err("must not be negative".into()),
        Ok(n) => u32::try_from(n).map_err(|_| format!("must be at most {}", u32::MAX)),
        Err(_) => Err("must be a whole number".into()),
    }
}

/// A MongoDB string flag in any case, stored lowercase.
pub fn mongo_flag(s: &str) -> Result<String, String> {
    bounds::flag("", s).map_err(|e| e.rule)
}

/// An RFC 3339 time within the stored range; the error says which format is expected.
pub fn rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("must be an RFC 3339 time such as 2024-05-01T00:00:00Z ({e})"))?
        .with_timezone(&Utc);
    bounds::time("", t).map_err(|e| e.rule)
}

/// `DownloadPointInTime`: UNIX milliseconds or an RFC 3339 time (range checked later, by
/// [`DownloadRequest::validate`], so the message is the API's).
pub fn point_in_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            "must be UNIX milliseconds or an RFC 3339 time such as 2024-05-01T00:00:00Z".into()
        })
}

/// One `CreateDownload` request as flags (dbs-api.md §3.1).
#[derive(Debug, Clone, clap::Args)]
pub struct RequestArgs {
    /// RegionCode: the instance's region, e.g. cn-hangzhou.
    #[arg(long)]
    pub region: String,
    /// InstanceName: the instance or cluster id, e.g. rm-bp1abc.
    #[arg(long)]
    pub instance: String,
    /// BakSetType: full (a backup set) or pitr (a point in time); any case.
    #[arg(long, default_value = "full", value_parser = bak_set_type)]
    pub bak_set_type: BakSetType,
    /// BakSetId: the backup set (RDS DescribeBackups); required with full.
    #[arg(long)]
    pub bak_set_id: Option<String>,
    /// BakSetSize: bytes of the backup set (optional, from DescribeBackups); at least 0.
    #[arg(long, allow_negative_numbers = true)]
    pub bak_set_size: Option<i64>,
    /// DownloadPointInTime: UNIX milliseconds or RFC 3339; required with pitr.
    #[arg(long, alias = "point-in-time-ms", allow_negative_numbers = true, value_parser = point_in_time)]
    pub download_point_in_time: Option<i64>,
    /// FormatType: CSV, SQL or Parquet; any case.
    #[arg(long, value_parser = format_type)]
    pub format: FormatType,
    /// TargetType: OSS (your bucket) or URL (a link minted by DBS); any case.
    #[arg(long, default_value = "URL", value_parser = target_type)]
    pub target_type: TargetType,
    /// TargetBucket: OSS bucket name; required with OSS.
    #[arg(long)]
    pub target_bucket: Option<String>,
    /// TargetOssRegion: the bucket's region; required with OSS.
    #[arg(long)]
    pub target_oss_region: Option<String>,
    /// TargetPath: path in the bucket, no '..' segment; required with OSS.
    #[arg(long)]
    pub target_path: Option<String>,
    /// ClusterName: MongoDB sharded-cluster name.
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// IsCluster (MongoDB): true or false, any case.
    #[arg(long, value_parser = mongo_flag)]
    pub is_cluster: Option<String>,
    /// AdminDatabase (MongoDB): the authentication database (cloud default admin).
    #[arg(long)]
    pub admin_database: Option<String>,
    /// PrimaryKeyTypeOnly (MongoDB): true or false, any case.
    #[arg(long, value_parser = mongo_flag)]
    pub primary_key_type_only: Option<String>,
    /// UseZstd: zstd-compress the output; true or false, any case.
    #[arg(long, value_parser = mongo_flag)]
    pub use_zstd: Option<String>,
    /// IsPhysical: physical (not logical) download; true or false.
    #[arg(long)]
    pub is_physical: Option<bool>,
}

impl RequestArgs {
    /// The request these flags describe, normalized and validated; errors name the flag.
    pub fn to_request(&self) -> anyhow::Result<DownloadRequest> {
        DownloadRequest {
            region: self.region.clone(),
            instance: self.instance.clone(),
            bak_set_type: self.bak_set_type,
            bak_set_id: self.bak_set_id.clone(),
            bak_set_size: self.bak_set_size,
            download_point_in_time: self.download_point_in_time,
            format: self.format,
            target_type: self.target_type,
            target_bucket: self.target_bucket.clone(),
            target_oss_region: self.target_oss_region.clone(),
            target_path: self.target_path.clone(),
            cluster_name: self.cluster_name.clone(),
            is_cluster: self.is_cluster.clone(),
            admin_database: self.admin_database.clone(),
            primary_key_type_only: self.primary_key_type_only.clone(),
            use_zstd: self.use_zstd.clone(),
            is_physical: self.is_physical,
            sink: None,
        }
        .checked()
        .map_err(flag_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        a: RequestArgs,
    }

    fn parse(args: &[&str]) -> Result<RequestArgs, clap::Error> {
        let mut v = vec!["t", "--region", "cn-hangzhou", "--instance", "rm-1"];
        v.extend_from_slice(args);
        T::try_parse_from(v).map(|t| t.a)
    }

    #[test]
    fn enums_and_flags_in_any_case() {
        let a = parse(&[
            "--format",
            "csv",
            "--target-type",
            "url",
            "--bak-set-type",
            "FULL",
            "--bak-set-id",
            "b1",
            "--use-zstd",
            "TRUE",
        ])
        .unwrap();
        let r = a.to_request().unwrap();
        assert_eq!(r.format, FormatType::Csv);
        assert_eq!(r.use_zstd.as_deref(), Some("true"));
        let e = parse(&["--format", "xml"]).unwrap_err().to_string();
        assert!(e.contains("must be one of CSV, SQL, Parquet"), "{e}");
        let e = parse(&["--format", "CSV", "--is-cluster", "yes"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be true or false"), "{e}");
    }

    #[test]
    fn rules_are_the_api_rules_with_the_flag_named() {
        let e = parse(&[
            "--format",
            "CSV",
            "--bak-set-id",
            "b1",
            "--cluster-name",
            "a\u{7}b",
        ])
        .unwrap()
        .to_request()
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--cluster-name: must be 1-128 characters"),
            "{e}"
        );
        let e = parse(&[
            "--format",
            "CSV",
            "--bak-set-id",
            "b1",
            "--bak-set-size",
            "-1",
        ])
        .unwrap()
        .to_request()
        .unwrap_err()
        .to_string();
        assert_eq!(e, "--bak-set-size: must not be negative");
        let e = parse(&[
            "--format",
            "CSV",
            "--bak-set-type",
            "pitr",
            "--download-point-in-time",
            "1661331864",
        ])
        .unwrap()
        .to_request()
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--download-point-in-time: must be UNIX milliseconds"),
            "{e}"
        );
    }

    #[test]
    fn times_name_rfc3339() {
        assert!(rfc3339("2024-05-01T00:00:00Z").is_ok());
        assert!(rfc3339("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(point_in_time("May 1st").unwrap_err().contains("RFC 3339"));
    }
}
