//! Typed requests and responses of the operations we call (dbs-api.md §3–5).
//!
//! Parsing is lenient on purpose: numbers may arrive as strings, states in any case and
//! with both `queueing`/`queuing` spellings, page fields as `PageNumber` or `Number`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `DownloadStatus` of a remote task, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RemoteTaskStatus {
    Initializing,
    Queueing,
    Running,
    Failed,
    Finished,
    Expired,
    /// Anything else, kept verbatim (lower-cased).
    Other(String),
}

impl RemoteTaskStatus {
    /// Case-insensitive; `queuing` and `queueing` are the same state.
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "initializing" => Self::Initializing,
            "queueing" | "queuing" => Self::Queueing,
            "running" => Self::Running,
            "failed" => Self::Failed,
            "finished" => Self::Finished,
            "expired" => Self::Expired,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Initializing => "initializing",
            Self::Queueing => "queueing",
            Self::Running => "running",
            Self::Failed => "failed",
            Self::Finished => "finished",
            Self::Expired => "expired",
            Self::Other(s) => s,
        }
    }

    /// Still holding the instance and making progress.
    pub fn is_in_progress(&self) -> bool {
        matches!(self, Self::Initializing | Self::Queueing | Self::Running)
    }
}

impl fmt::Display for RemoteTaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One remote download task as CreateDownload / DescribeDownloadTask report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadTask {
    pub task_id: String,
    pub region_code: Option<String>,
    /// `Format` as returned (`csv`, `SQL`, `Parquet`…).
    pub format: Option<String>,
    pub db_list: Option<String>,
    pub bak_set_id: Option<String>,
    pub status: RemoteTaskStatus,
    pub export_data_size: Option<i64>,
    pub import_data_size: Option<i64>,
    /// UNIX ms.
    pub backup_set_time: Option<i64>,
    pub target_type: Option<String>,
    pub target_path: Option<String>,
    /// "tables done/total".
    pub progress: Option<String>,
    /// UNIX ms.
    pub gmt_create: Option<i64>,
    /// `full` or `pitr` when known: the task object carries no type, so this is set only
    /// from a listing filtered by `TaskType` ([`crate::dbs::DbsClient::list_download_tasks`]).
    #[serde(default)]
    pub task_type: Option<String>,
}

/// A successful reply: the data and the cloud's RequestId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<T> {
    pub request_id: Option<String>,
    pub data: T,
}

/// DescribeDownloadTask filters (one instance; the API has no TaskId filter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeTasksQuery {
    pub region: String,
    pub instance: String,
    /// `ClusterName`: MongoDB sharded clusters only (dbs-api.md §4.1).
    pub cluster_name: Option<String>,
    pub state: Option<String>,
    pub task_type: Option<String>,
    pub backup_set_id: Option<String>,
    /// Creation-time window, UNIX ms.
    pub start_time_ms: Option<i64>,
    pub end_time_ms: Option<i64>,
    pub page_size: u32,
    pub page: u32,
}

/// One page of DescribeDownloadTask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPage {
    pub page_number: i64,
    pub page_size: i64,
    pub total_elements: i64,
    pub total_pages: i64,
    pub tasks: Vec<DownloadTask>,
}

/// DescribeDownloadBackupSetStorageInfo `Data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageInfo {
    pub public_url: Option<String>,
    pub private_url: Option<String>,
    /// Normalised to UNIX ms (values < 1e12 are read as seconds).
    pub expiration_time_ms: Option<i64>,
}

/// One RDS DescribeBackups item (2014-08-15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdsBackup {
    pub backup_id: String,
    pub backup_size: Option<i64>,
    pub backup_start_time: Option<chrono::DateTime<chrono::Utc>>,
    pub backup_end_time: Option<chrono::DateTime<chrono::Utc>>,
    pub backup_status: Option<String>,
    pub backup_type: Option<String>,
    pub backup_method: Option<String>,
    pub is_avail: bool,
}
