//! `dbs-archiver enqueue`: put one download request in the queue.
//!
//! The flags mirror the fields of [`DownloadRequest`] (and so the CreateDownload
//! parameters); a request that breaks a rule is rejected with the flag named. Like the
//! other inspection commands this talks to the database directly (`database.url`), so it
//! works whether or not a `serve` process is running; a running worker picks the job up
//! at once (in-process notification on the same store handle, `NOTIFY` on PostgreSQL,
//! otherwise its idle poll).

use crate::config::Settings;
use crate::model::{BakSetType, DownloadRequest, FormatType, JobSource, TargetType};
use crate::store::NewJob;
use anyhow::Context;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, clap::Args)]
pub struct EnqueueArgs {
    /// RegionCode: the instance's region, e.g. cn-hangzhou.
    #[arg(long)]
    pub region: String,
    /// InstanceName: the instance or cluster id, e.g. rm-bp1…
    #[arg(long)]
    pub instance: String,
    /// BakSetType: full (a backup set) or pitr (a point in time).
    #[arg(long, default_value = "full")]
    pub bak_set_type: BakSetType,
    /// BakSetId: required with --bak-set-type full.
    #[arg(long)]
    pub bak_set_id: Option<String>,
    /// BakSetSize in bytes (optional, from DescribeBackups).
    #[arg(long)]
    pub bak_set_size: Option<i64>,
    /// DownloadPointInTime: UNIX milliseconds or RFC 3339; required with pitr.
    #[arg(long, value_parser = parse_point_in_time)]
    pub download_point_in_time: Option<i64>,
    /// FormatType: CSV, SQL or Parquet.
    #[arg(long)]
    pub format: FormatType,
    /// TargetType: OSS or URL.
    #[arg(long, default_value = "URL")]
    pub target_type: TargetType,
    /// TargetBucket: required with OSS.
    #[arg(long)]
    pub target_bucket: Option<String>,
    /// TargetOssRegion: required with OSS.
    #[arg(long)]
    pub target_oss_region: Option<String>,
    /// TargetPath: required with OSS.
    #[arg(long)]
    pub target_path: Option<String>,
    /// ClusterName (MongoDB sharded clusters).
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// IsCluster (MongoDB; passed through).
    #[arg(long)]
    pub is_cluster: Option<String>,
    /// AdminDatabase (MongoDB authentication database).
    #[arg(long)]
    pub admin_database: Option<String>,
    /// PrimaryKeyTypeOnly (MongoDB; passed through).
    #[arg(long)]
    pub primary_key_type_only: Option<String>,
    /// UseZstd: zstd-compress the output.
    #[arg(long)]
    pub use_zstd: Option<String>,
    /// IsPhysical (passed through).
    #[arg(long)]
    pub is_physical: Option<bool>,
    /// URL targets only: the `[[sinks]]` entry to fetch the archive into.
    #[arg(long)]
    pub sink: Option<String>,
    /// Higher runs first.
    #[arg(long, default_value_t = 0)]
    pub priority: i32,
    /// Not before this time (RFC 3339); default now.
    #[arg(long)]
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts before the job fails (default: worker.default_max_attempts).
    #[arg(long)]
    pub max_attempts: Option<i32>,
    /// Same key ⇒ same job: enqueueing twice returns the first job.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Print the job as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_point_in_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| "must be UNIX milliseconds or an RFC 3339 time".to_string())
}

/// `bak_set_id` ⇒ `--bak-set-id`: validation errors name the flag the user typed.
pub fn flag_name(field: &str) -> String {
    format!("--{}", field.replace('_', "-"))
}

impl EnqueueArgs {
    /// The request these flags describe, validated; errors name the flag.
    pub fn to_request(&self) -> anyhow::Result<DownloadRequest> {
        let r = DownloadRequest {
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
            sink: self.sink.clone(),
        };
        r.validate()
            .map_err(|e| anyhow::anyhow!("{}: {}", flag_name(&e.field), e.rule))?;
        Ok(r)
    }
}

pub async fn run(args: EnqueueArgs, settings: Settings) -> anyhow::Result<()> {
    let request = args.to_request()?;
    crate::archive::settings::check_sink_name(&settings.sinks, request.sink.as_deref())
        .map_err(|e| anyhow::anyhow!("--{}: {}", e.field, e.rule))?;
    if let Some(n) = args.max_attempts {
        if n < 1 {
            anyhow::bail!("--max-attempts: must be at least 1");
        }
    }
    let store = crate::app::open_store(&settings)
        .await
        .context("opening the database (database.url)")?;
    let mut job = NewJob::new(request, JobSource::Cli);
    job.priority = args.priority;
    job.run_at = args.run_at;
    job.max_attempts = args
        .max_attempts
        .unwrap_or(settings.worker.default_max_attempts);
    job.idempotency_key = args.idempotency_key.clone();
    let done = store.job_enqueue(job).await.map_err(|e| match e {
        crate::store::StoreError::Invalid(v) => {
            anyhow::anyhow!("{}: {}", flag_name(&v.field), v.rule)
        }
        other => anyhow::Error::new(other),
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&done.job)?);
    } else if done.created {
        println!(
            "enqueued job {} for {} ({})",
            done.job.id,
            done.job.instance_key(),
            done.job.state
        );
    } else {
        println!(
            "job {} already exists for this idempotency key ({}); nothing enqueued",
            done.job.id, done.job.state
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        a: EnqueueArgs,
    }

    fn parse(args: &[&str]) -> Result<EnqueueArgs, clap::Error> {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).map(|t| t.a)
    }

    #[test]
    fn validation_errors_name_the_flag() {
        let a = parse(&[
            "--region",
            "cn-hangzhou",
            "--instance",
            "rm-1",
            "--format",
            "CSV",
        ])
        .unwrap();
        let e = a.to_request().unwrap_err().to_string();
        assert!(e.starts_with("--bak-set-id:"), "{e}");
        let a = parse(&[
            "--region",
            "cn-hangzhou",
            "--instance",
            "rm-1",
            "--format",
            "CSV",
            "--bak-set-id",
            "b1",
            "--target-type",
            "OSS",
        ])
        .unwrap();
        let e = a.to_request().unwrap_err().to_string();
        assert!(e.starts_with("--target-bucket:"), "{e}");
        let e = parse(&["--region", "r", "--instance", "i", "--format", "csv"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--format"), "{e}");
    }

    #[test]
    fn point_in_time_accepts_millis_and_rfc3339() {
        let a = parse(&[
            "--region",
            "cn-hangzhou",
            "--instance",
            "rm-1",
            "--format",
            "SQL",
            "--bak-set-type",
            "pitr",
            "--download-point-in-time",
            "2024-01-01T00:00:00Z",
        ])
        .unwrap();
        let r = a.to_request().unwrap();
        assert_eq!(r.download_point_in_time, Some(1_704_067_200_000));
        assert_eq!(r.target_type, TargetType::Url);
    }
}
