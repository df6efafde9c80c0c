//! `dbs-archiver dbs …`: make one signed DBS/RDS call with the configured settings and
//! print the reply as JSON. A debugging aid (and the way docs/simulator.md shows a signed
//! call against the simulator): `dbs.endpoint`, `dbs.signature` and the credentials chain
//! (explicit `dbs.access_key_id`/`dbs.access_key_secret` first) decide where and how it is
//! sent.

use super::request::RequestArgs;
use crate::config::Settings;
use crate::dbs::types::{DescribeTasksQuery, DownloadTask};
use crate::dbs::{DbsClient, DbsError};
use serde_json::json;

/// Region and instance, shared by every call.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// RegionCode of the instance (e.g. cn-hangzhou).
    #[arg(long)]
    pub region: String,
    /// InstanceName (e.g. rm-demo0001).
    #[arg(long)]
    pub instance: String,
    /// ClusterName: MongoDB sharded clusters only (sent on every DBS operation).
    #[arg(long)]
    pub cluster_name: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum DbsCommand {
    /// CreateDownload (validated first, exactly as the worker sends it).
    #[command(after_help = "Examples:
  dbs-archiver dbs create-download --region cn-hangzhou --instance rm-demo0001 \\
      --bak-set-id 1001 --format CSV --target-type URL
  dbs-archiver dbs create-download --region cn-hangzhou --instance dds-demo --bak-set-type pitr \\
      --download-point-in-time 2024-05-01T00:00:00Z --format csv --cluster-name dds-demo \\
      --is-cluster true --admin-database admin")]
    CreateDownload(Box<RequestArgs>),
    /// DescribeDownloadTask: one page, or every page with --all.
    #[command(after_help = "Examples:
  dbs-archiver dbs describe-tasks --region cn-hangzhou --instance rm-demo0001
  dbs-archiver dbs describe-tasks --region cn-hangzhou --instance rm-demo0001 --state failed --all")]
    DescribeTasks {
        #[command(flatten)]
        target: Target,
        /// State filter (initializing, queueing, running, failed, finished, expired).
        #[arg(long)]
        state: Option<String>,
        /// Tasks per page.
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        /// Page number, from 1.
        #[arg(long, default_value_t = 1)]
        page: u32,
        /// Every page, not one.
        #[arg(long)]
        all: bool,
    },
    /// DescribeDownloadBackupSetStorageInfo: the URL of a finished URL-target task.
    #[command(after_help = "Example:
  dbs-archiver dbs storage-info --region cn-hangzhou --instance rm-demo0001 --task-id dt-abc123")]
    StorageInfo {
        #[command(flatten)]
        target: Target,
        /// TaskId of the finished download (dt-…).
        #[arg(long)]
        task_id: String,
        /// URL validity in seconds (300–86400).
        #[arg(long, default_value_t = 7200)]
        duration: u32,
    },
    /// RetryDownloadTask on a failed task.
    #[command(after_help = "Example:
  dbs-archiver dbs retry --region cn-hangzhou --instance rm-demo0001 --task-id dt-abc123")]
    Retry {
        #[command(flatten)]
        target: Target,
        /// TaskId of the failed download (dt-…).
        #[arg(long)]
        task_id: String,
    },
    /// DescribeDownloadSupport.
    #[command(after_help = "Example:
  dbs-archiver dbs support --region cn-hangzhou --instance rm-demo0001")]
    Support {
        #[command(flatten)]
        target: Target,
    },
    /// RDS DescribeBackups: the newest successful full backup within --days.
    #[command(after_help = "Example:
  dbs-archiver dbs latest-backup --region cn-hangzhou --instance rm-demo0001 --days 3")]
    LatestBackup {
        #[command(flatten)]
        target: Target,
        /// How many days back to look, at least 1.
        #[arg(long, default_value_t = 7, allow_negative_numbers = true)]
        days: i64,
    },
}

/// A client from `[dbs]` and the credentials chain (settings → environment → credentials
/// file → ECS role); the RDS endpoint falls back to `dbs.endpoint` (the simulator serves
/// both).
pub fn client_from_settings(settings: &Settings) -> anyhow::Result<DbsClient> {
    let mut dbs = settings.dbs.clone();
    if dbs.rds_endpoint.trim().is_empty() {
        dbs.rds_endpoint = dbs.endpoint.clone();
    }
    Ok(DbsClient::from_settings(&dbs)?)
}

fn task_json(t: &DownloadTask) -> serde_json::Value {
    serde_json::to_value(t).unwrap_or_default()
}

fn print(v: serde_json::Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
    );
}

fn failed(e: DbsError) -> anyhow::Error {
    print(json!({
        "error": {
            "kind": e.kind.as_str(),
            "code": e.code,
            "message": e.message,
            "request_id": e.request_id,
            "http_status": e.http_status,
            "retry_after_ms": e.retry_after.map(|d| d.as_millis() as u64),
        }
    }));
    anyhow::anyhow!("the call failed: {e}")
}

pub async fn run(args: DbsCommand, settings: Settings) -> anyhow::Result<()> {
    // Bad flags are reported before credentials are looked for.
    let create = match &args {
        DbsCommand::CreateDownload(a) => Some(a.to_request()?),
        _ => None,
    };
    let client = client_from_settings(&settings)?;
    match args {
        DbsCommand::CreateDownload(_) => {
            if let Some(req) = &create {
                let r = client.create_download(req).await.map_err(failed)?;
                print(json!({ "RequestId": r.request_id, "Task": task_json(&r.data) }));
            }
        }
        DbsCommand::DescribeTasks {
            target,
            state,
            page_size,
            page,
            all,
        } => {
            let q = DescribeTasksQuery {
                region: target.region,
                instance: target.instance,
                cluster_name: target.cluster_name,
                state,
                page_size,
                page,
                ..DescribeTasksQuery::default()
            };
            if all {
                let tasks = client.list_download_tasks(&q).await.map_err(failed)?;
                print(json!({ "Tasks": tasks.iter().map(task_json).collect::<Vec<_>>() }));
            } else {
                let r = client.describe_download_tasks(&q).await.map_err(failed)?;
                let p = r.data;
                print(json!({
                    "RequestId": r.request_id,
                    "PageNumber": p.page_number,
                    "PageSize": p.page_size,
                    "TotalElements": p.total_elements,
                    "TotalPages": p.total_pages,
                    "Tasks": p.tasks.iter().map(task_json).collect::<Vec<_>>(),
                }));
            }
        }
        DbsCommand::StorageInfo {
            target,
            task_id,
            duration,
        } => {
            let r = client
                .describe_download_backup_set_storage_info(
                    &target.region,
                    &target.instance,
                    target.cluster_name.as_deref(),
                    &task_id,
                    duration,
                )
                .await
                .map_err(failed)?;
            print(json!({
                "RequestId": r.request_id,
                "PublicUrl": r.data.public_url,
                "PrivateUrl": r.data.private_url,
                "ExpirationTimeMs": r.data.expiration_time_ms,
            }));
        }
        DbsCommand::Retry { target, task_id } => {
            let r = client
                .retry_download_task(
                    &target.region,
                    &target.instance,
                    target.cluster_name.as_deref(),
                    &task_id,
                )
                .await
                .map_err(failed)?;
            print(json!({ "RequestId": r.request_id, "Retried": task_id }));
        }
        DbsCommand::Support { target } => {
            let r = client
                .describe_download_support(
                    &target.region,
                    &target.instance,
                    target.cluster_name.as_deref(),
                )
                .await
                .map_err(failed)?;
            print(json!({ "RequestId": r.request_id, "Supported": r.data }));
        }
        DbsCommand::LatestBackup { target, days } => {
            if days < 1 {
                anyhow::bail!("--days: must be at least 1");
            }
            let b = client
                .latest_full_backup(
                    &target.region,
                    &target.instance,
                    chrono::Duration::days(days),
                )
                .await
                .map_err(failed)?;
            print(match b {
                None => json!({ "Backup": null }),
                Some(b) => json!({ "Backup": {
                    "BackupId": b.backup_id,
                    "BackupSize": b.backup_size,
                    "BackupStartTime": b.backup_start_time,
                    "BackupEndTime": b.backup_end_time,
                    "BackupStatus": b.backup_status,
                    "BackupType": b.backup_type,
                    "BackupMethod": b.backup_method,
                    "IsAvail": b.is_avail,
                }}),
            });
        }
    }
    Ok(())
}
