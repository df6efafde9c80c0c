//! The DBS / RDS client: signs, sends, parses leniently, classifies errors.
//!
//! STUB: interface fixed by the lead; bodies are filled in by the DBS client work (issue #3).

use super::credentials::CredentialsProvider;
use super::signing::SignatureVersion;
use super::types::*;
use super::DbsError;
use crate::model::DownloadRequest;
use std::sync::Arc;
use std::time::Duration;

/// Client settings (from `[dbs]`).
#[derive(Debug, Clone)]
pub struct DbsClientConfig {
    /// Use this base URL for every region instead of the endpoint table.
    pub endpoint_override: Option<String>,
    /// Same for RDS DescribeBackups.
    pub rds_endpoint_override: Option<String>,
    pub signature: SignatureVersion,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Per-region token bucket shared by every caller of this client.
    pub calls_per_second_per_region: f64,
    pub burst: u32,
}

/// A cheap-to-clone handle; every clone shares the HTTP pool and the rate limiter.
#[derive(Debug, Clone)]
pub struct DbsClient {
    #[allow(dead_code)]
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    #[allow(dead_code)]
    config: DbsClientConfig,
    #[allow(dead_code)]
    credentials: Arc<dyn CredentialsProvider>,
}

impl DbsClient {
    pub fn new(
        config: DbsClientConfig,
        credentials: Arc<dyn CredentialsProvider>,
    ) -> Result<Self, DbsError> {
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                credentials,
            }),
        })
    }

    /// Validates the request (§3.1) before sending; never retried in-process.
    pub async fn create_download(
        &self,
        _req: &DownloadRequest,
    ) -> Result<Reply<DownloadTask>, DbsError> {
        todo!("issue #3")
    }

    /// One page of DescribeDownloadTask.
    pub async fn describe_download_tasks(
        &self,
        _q: &DescribeTasksQuery,
    ) -> Result<Reply<TaskPage>, DbsError> {
        todo!("issue #3")
    }

    /// Every page of DescribeDownloadTask for the query.
    pub async fn list_download_tasks(
        &self,
        _q: &DescribeTasksQuery,
    ) -> Result<Vec<DownloadTask>, DbsError> {
        todo!("issue #3")
    }

    pub async fn describe_download_backup_set_storage_info(
        &self,
        _region: &str,
        _instance: &str,
        _task_id: &str,
        _duration_seconds: u32,
    ) -> Result<Reply<StorageInfo>, DbsError> {
        todo!("issue #3")
    }

    pub async fn retry_download_task(
        &self,
        _region: &str,
        _instance: &str,
        _task_id: &str,
    ) -> Result<Reply<()>, DbsError> {
        todo!("issue #3")
    }

    pub async fn describe_download_support(
        &self,
        _region: &str,
        _instance: &str,
    ) -> Result<Reply<bool>, DbsError> {
        todo!("issue #3")
    }

    /// Newest successful, available full backup within `window` (RDS DescribeBackups).
    pub async fn latest_full_backup(
        &self,
        _region: &str,
        _instance: &str,
        _window: chrono::Duration,
    ) -> Result<Option<RdsBackup>, DbsError> {
        todo!("issue #3")
    }
}
