//! The DBS / RDS client: signs, sends, parses leniently, classifies errors.
//!
//! Every call goes through [`DbsClient::execute`]: take a token from the region's bucket,
//! fetch credentials, sign (V3 or V2, dbs-api.md §7), send over rustls, classify the
//! reply in one place ([`super::classify`]). Idempotent reads are retried a few times
//! in-process; writes never are — a lost CreateDownload reply is `Ambiguous` and the
//! worker reconciles it by listing tasks, not by sending it again.

use super::classify::{self, Idempotency, Parsed, Phase};
use super::credentials::{self, Credentials, CredentialsProvider};
use super::endpoints;
use super::ratelimit::{BucketRate, LimitKey, RateLimiter};
use super::signing::{self, SignatureVersion, V3Input, EMPTY_SHA256};
use super::types::*;
use super::wire;
use super::{DbsError, DbsErrorKind};
use crate::clock::{DynClock, SystemClock};
use crate::model::DownloadRequest;
use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// API version of the DBS download operations.
pub const DBS_VERSION: &str = "2021-01-01";
/// API version of RDS DescribeBackups.
pub const RDS_VERSION: &str = "2014-08-15";
const USER_AGENT: &str = concat!("dbs-archiver/", env!("CARGO_PKG_VERSION"));
/// DescribeDownloadTask page size when the query leaves it at 0 (the documented example).
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Paging stops here even if the server keeps announcing more pages.
const MAX_PAGES: u32 = 200;
/// In-process attempts for reads (first try included).
const READ_ATTEMPTS: usize = 3;
/// A throttling hint longer than this is handed to the caller instead of waited out.
const MAX_INPROCESS_WAIT: Duration = Duration::from_secs(5);

/// Client settings (from `[dbs]`).
#[derive(Debug, Clone)]
pub struct DbsClientConfig {
    /// Use this base URL for every region instead of the endpoint table.
    pub endpoint_override: Option<String>,
    /// Public or VPC hosts from the endpoint table (when not overridden).
    pub endpoint_kind: endpoints::EndpointKind,
    /// Same for RDS DescribeBackups.
    pub rds_endpoint_override: Option<String>,
    pub signature: SignatureVersion,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Token bucket per account and endpoint host (regions sharing a host share it),
    /// shared by every caller of this client.
    pub calls_per_second_per_region: f64,
    pub burst: u32,
    /// Allow plain `http://` overrides on non-loopback hosts (a simulator in another
    /// container); never for the real cloud.
    pub allow_insecure_http: bool,
}

impl Default for DbsClientConfig {
    /// The values of `config/default.toml` (no overrides, V3).
    fn default() -> Self {
        Self {
            endpoint_override: None,
            endpoint_kind: endpoints::EndpointKind::Public,
            rds_endpoint_override: None,
            signature: SignatureVersion::V3,
            connect_timeout: Duration::from_millis(5000),
            request_timeout: Duration::from_millis(30000),
            calls_per_second_per_region: 10.0,
            burst: 20,
            allow_insecure_http: false,
        }
    }
}

impl DbsClientConfig {
    /// From `[dbs]`; empty override strings mean "use the table".
    pub fn from_settings(s: &crate::config::DbsSettings) -> Self {
        let non_empty = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_string());
        Self {
            endpoint_override: non_empty(&s.endpoint),
            endpoint_kind: s.endpoint_kind,
            rds_endpoint_override: non_empty(&s.rds_endpoint),
            signature: s.signature,
            connect_timeout: Duration::from_millis(s.connect_timeout_ms),
            request_timeout: Duration::from_millis(s.request_timeout_ms),
            calls_per_second_per_region: s.calls_per_second_per_region,
            burst: s.burst,
            allow_insecure_http: s.allow_insecure_http,
        }
    }
}

/// A cheap-to-clone handle; every clone shares the HTTP pool and the rate limiter.
#[derive(Debug, Clone)]
pub struct DbsClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: DbsClientConfig,
    credentials: Arc<dyn CredentialsProvider>,
    http: reqwest::Client,
    limiter: RateLimiter,
    clock: DynClock,
    dbs_override: Option<url::Url>,
    rds_override: Option<url::Url>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Product {
    Dbs,
    Rds,
}

/// One RPC call before signing.
#[derive(Debug)]
struct Call {
    product: Product,
    action: &'static str,
    region: String,
    params: Vec<(String, String)>,
    idempotency: Idempotency,
}

impl Call {
    fn new(product: Product, action: &'static str, region: &str, idempotency: Idempotency) -> Self {
        Self {
            product,
            action,
            region: region.to_string(),
            params: Vec::new(),
            idempotency,
        }
    }

    fn param(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.push((name.to_string(), value.into()));
        self
    }

    /// Adds the parameter only when set and not blank.
    fn opt(self, name: &str, value: Option<impl ToString>) -> Self {
        match value.map(|v| v.to_string()) {
            Some(v) if !v.trim().is_empty() => self.param(name, v),
            _ => self,
        }
    }
}

fn invalid(field: &str, rule: impl std::fmt::Display) -> DbsError {
    DbsError::new(
        DbsErrorKind::Permanent,
        "Request.Invalid",
        format!("{field}: {rule}"),
    )
}

fn malformed(kind: DbsErrorKind, what: &str, request_id: Option<String>) -> DbsError {
    let mut e = DbsError::new(kind, "Response.Malformed", what.to_string());
    e.request_id = request_id;
    e
}

/// Region ids go into host names (RDS) and the rate limiter: keep them tame.
fn check_region(region: &str) -> Result<(), DbsError> {
    if region.is_empty()
        || region.len() > 64
        || !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(invalid(
            "region",
            format!("must be a region id such as cn-hangzhou, got {region:?}"),
        ));
    }
    Ok(())
}

fn parse_override(
    key: &str,
    value: &Option<String>,
    allow_insecure_http: bool,
) -> Result<Option<url::Url>, DbsError> {
    let Some(raw) = value else { return Ok(None) };
    endpoints::check_override(raw, allow_insecure_http).map_err(|rule| invalid(key, rule))?;
    let url = url::Url::parse(raw).map_err(|e| invalid(key, e))?;
    if url.path() != "/" || url.query().is_some() {
        return Err(invalid(
            key,
            "must be a base URL without a path or query (RPC calls go to /)",
        ));
    }
    Ok(Some(url))
}

/// Exactly what goes into the `Host` header (and is signed): host plus a non-default port.
fn host_header(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Errors worth another in-process attempt of a read.
fn retry_in_process(e: &DbsError) -> bool {
    match e.kind {
        DbsErrorKind::Transient => true,
        DbsErrorKind::Throttled => e.retry_after.is_none_or(|d| d <= MAX_INPROCESS_WAIT),
        _ => false,
    }
}

impl DbsClient {
    pub fn new(
        config: DbsClientConfig,
        credentials: Arc<dyn CredentialsProvider>,
    ) -> Result<Self, DbsError> {
        Self::with_clock(config, credentials, Arc::new(SystemClock))
    }

    /// Like [`DbsClient::new`] with the clock that stamps `x-acs-date` / `Timestamp` and
    /// bounds DescribeBackups windows (tests use a skewed or manual clock).
    pub fn with_clock(
        config: DbsClientConfig,
        credentials: Arc<dyn CredentialsProvider>,
        clock: DynClock,
    ) -> Result<Self, DbsError> {
        let dbs_override = parse_override(
            "dbs.endpoint",
            &config.endpoint_override,
            config.allow_insecure_http,
        )?;
        let rds_override = parse_override(
            "dbs.rds_endpoint",
            &config.rds_endpoint_override,
            config.allow_insecure_http,
        )?;
        let rate = config.calls_per_second_per_region;
        if rate.is_nan() || rate <= 0.0 {
            return Err(invalid("dbs.calls_per_second_per_region", "must be > 0"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(USER_AGENT)
            // Throttling may surface as a 302 (dbs-api.md §8.2): classify it, never follow it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DbsError::new(DbsErrorKind::Permanent, "Client.Build", e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                limiter: RateLimiter::new(config.calls_per_second_per_region, config.burst),
                config,
                credentials,
                http,
                clock,
                dbs_override,
                rds_override,
            }),
        })
    }

    /// The client the service runs with: `[dbs]` settings and the credentials chain
    /// (settings → environment → credentials file → ECS RAM role).
    pub fn from_settings(settings: &crate::config::DbsSettings) -> Result<Self, DbsError> {
        let env: std::collections::HashMap<String, String> = std::env::vars().collect();
        let clock: DynClock = Arc::new(SystemClock);
        let chosen = credentials::resolve_chain(settings, &env, clock.clone())?;
        tracing::info!(source = %chosen.source, "DBS credentials source chosen");
        Self::with_clock(
            DbsClientConfig::from_settings(settings),
            chosen.provider,
            clock,
        )
    }

    /// Current token-bucket state per account and endpoint host (for metrics and tests).
    pub fn rate_limits(&self) -> BTreeMap<LimitKey, BucketRate> {
        self.inner.limiter.snapshot()
    }

    /// Validates the request (§3.1) before sending; never retried in-process.
    pub async fn create_download(
        &self,
        req: &DownloadRequest,
    ) -> Result<Reply<DownloadTask>, DbsError> {
        req.validate()?;
        let call = Call::new(
            Product::Dbs,
            "CreateDownload",
            &req.region,
            Idempotency::Write,
        )
        .param("RegionCode", &req.region)
        .param("InstanceName", &req.instance)
        .param("BakSetType", req.bak_set_type.as_str())
        .opt("BakSetId", req.bak_set_id.as_ref())
        .opt("BakSetSize", req.bak_set_size)
        .opt("DownloadPointInTime", req.download_point_in_time)
        .param("FormatType", req.format.as_str())
        // The service default for a missing TargetType is unknown: always send it.
        .param("TargetType", req.target_type.as_str())
        .opt("TargetBucket", req.target_bucket.as_ref())
        .opt("TargetOssRegion", req.target_oss_region.as_ref())
        .opt("TargetPath", req.target_path.as_ref())
        .opt("ClusterName", req.cluster_name.as_ref())
        .opt("IsCluster", req.is_cluster.as_ref())
        .opt("AdminDatabase", req.admin_database.as_ref())
        .opt("PrimaryKeyTypeOnly", req.primary_key_type_only.as_ref())
        .opt("UseZstd", req.use_zstd.as_ref())
        .opt("IsPhysical", req.is_physical);
        let parsed = self.execute(&call).await?;
        let request_id = parsed.envelope.request_id.clone();
        let data = wire::field(&parsed.body, &["Data", "data"]);
        match data.and_then(|d| wire::parse_task(d, RemoteTaskStatus::Initializing)) {
            Some(task) => Ok(Reply {
                request_id,
                data: task,
            }),
            // Success without a task id: the task may exist, so the caller must look.
            None => Err(malformed(
                DbsErrorKind::Ambiguous,
                "CreateDownload succeeded without Data.TaskId",
                request_id,
            )),
        }
    }

    /// One page of DescribeDownloadTask.
    pub async fn describe_download_tasks(
        &self,
        q: &DescribeTasksQuery,
    ) -> Result<Reply<TaskPage>, DbsError> {
        check_region(&q.region)?;
        if q.instance.trim().is_empty() {
            return Err(invalid("instance", "is required"));
        }
        let page_size = if q.page_size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            q.page_size
        };
        let call = Call::new(
            Product::Dbs,
            "DescribeDownloadTask",
            &q.region,
            Idempotency::Read,
        )
        .param("RegionCode", &q.region)
        .param("InstanceName", &q.instance)
        .opt("ClusterName", q.cluster_name.as_ref())
        .opt("State", q.state.as_ref())
        .opt("TaskType", q.task_type.as_ref())
        .opt("BackupSetId", q.backup_set_id.as_ref())
        .opt("StartTime", q.start_time_ms)
        .opt("EndTime", q.end_time_ms)
        .param("PageSize", page_size.to_string())
        .param("CurrentPage", q.page.max(1).to_string())
        .param("OrderColumn", "gmt_create")
        .param("OrderDirect", "desc");
        let parsed = self.execute(&call).await?;
        let request_id = parsed.envelope.request_id.clone();
        let data = wire::field(&parsed.body, &["Data", "data"]).ok_or_else(|| {
            malformed(
                DbsErrorKind::Permanent,
                "DescribeDownloadTask reply without Data",
                request_id.clone(),
            )
        })?;
        let mut page = wire::parse_task_page(data);
        // The task object has no type field; a listing filtered by type tells it.
        if let Some(kind) = &q.task_type {
            for t in &mut page.tasks {
                t.task_type = Some(kind.to_ascii_lowercase());
            }
        }
        Ok(Reply {
            request_id,
            data: page,
        })
    }

    /// Every page of DescribeDownloadTask for the query, starting at `q.page` (or 1).
    pub async fn list_download_tasks(
        &self,
        q: &DescribeTasksQuery,
    ) -> Result<Vec<DownloadTask>, DbsError> {
        let mut q = q.clone();
        q.page = q.page.max(1);
        if q.page_size == 0 {
            q.page_size = DEFAULT_PAGE_SIZE;
        }
        let mut tasks = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = self.describe_download_tasks(&q).await?.data;
            let got = page.tasks.len();
            tasks.extend(page.tasks);
            if got == 0 || i64::from(q.page) >= page.total_pages {
                break;
            }
            q.page += 1;
        }
        Ok(tasks)
    }

    /// A fresh download URL of a finished URL-target task; `cluster_name` for MongoDB
    /// sharded clusters (the API takes it on every download operation).
    pub async fn describe_download_backup_set_storage_info(
        &self,
        region: &str,
        instance: &str,
        cluster_name: Option<&str>,
        task_id: &str,
        duration_seconds: u32,
    ) -> Result<Reply<StorageInfo>, DbsError> {
        check_region(region)?;
        if task_id.trim().is_empty() {
            return Err(invalid("task_id", "is required"));
        }
        if !(300..=86_400).contains(&duration_seconds) {
            return Err(invalid(
                "duration_seconds",
                format!("must be between 300 and 86400, got {duration_seconds}"),
            ));
        }
        let call = Call::new(
            Product::Dbs,
            "DescribeDownloadBackupSetStorageInfo",
            region,
            Idempotency::Read,
        )
        .param("RegionCode", region)
        .opt("InstanceName", Some(instance))
        .opt("ClusterName", cluster_name)
        .param("TaskId", task_id)
        .param("Duration", duration_seconds.to_string());
        let parsed = self.execute(&call).await?;
        let request_id = parsed.envelope.request_id.clone();
        let data = wire::field(&parsed.body, &["Data", "data"]).ok_or_else(|| {
            malformed(
                DbsErrorKind::Permanent,
                "DescribeDownloadBackupSetStorageInfo reply without Data",
                request_id.clone(),
            )
        })?;
        Ok(Reply {
            request_id,
            data: wire::parse_storage_info(data),
        })
    }

    /// Retry a failed remote task; never retried in-process.
    pub async fn retry_download_task(
        &self,
        region: &str,
        instance: &str,
        cluster_name: Option<&str>,
        task_id: &str,
    ) -> Result<Reply<()>, DbsError> {
        check_region(region)?;
        if task_id.trim().is_empty() {
            return Err(invalid("task_id", "is required"));
        }
        let call = Call::new(
            Product::Dbs,
            "RetryDownloadTask",
            region,
            Idempotency::Write,
        )
        .param("RegionCode", region)
        .param("TaskId", task_id)
        .opt("InstanceName", Some(instance))
        .opt("ClusterName", cluster_name);
        let parsed = self.execute(&call).await?;
        Ok(Reply {
            request_id: parsed.envelope.request_id,
            data: (),
        })
    }

    /// Whether the instance supports advanced download (`Data` is `"true"`/`"false"`).
    pub async fn describe_download_support(
        &self,
        region: &str,
        instance: &str,
        cluster_name: Option<&str>,
    ) -> Result<Reply<bool>, DbsError> {
        check_region(region)?;
        if instance.trim().is_empty() {
            return Err(invalid("instance", "is required"));
        }
        let call = Call::new(
            Product::Dbs,
            "DescribeDownloadSupport",
            region,
            Idempotency::Read,
        )
        .param("RegionCode", region)
        .param("InstanceName", instance)
        .opt("ClusterName", cluster_name);
        let parsed = self.execute(&call).await?;
        let request_id = parsed.envelope.request_id.clone();
        match wire::field(&parsed.body, &["Data", "data"]).and_then(wire::as_bool) {
            Some(data) => Ok(Reply { request_id, data }),
            None => Err(malformed(
                DbsErrorKind::Permanent,
                "DescribeDownloadSupport reply without a true/false Data",
                request_id,
            )),
        }
    }

    /// Newest successful, available full backup within `window` (RDS DescribeBackups).
    pub async fn latest_full_backup(
        &self,
        region: &str,
        instance: &str,
        window: chrono::Duration,
    ) -> Result<Option<RdsBackup>, DbsError> {
        check_region(region)?;
        if instance.trim().is_empty() {
            return Err(invalid("instance", "is required"));
        }
        if window <= chrono::Duration::zero() {
            return Err(invalid("window", "must be positive"));
        }
        let end = self.inner.clock.now();
        let start = end - window;
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let call = Call::new(Product::Rds, "DescribeBackups", region, Idempotency::Read)
                .param("DBInstanceId", instance)
                .param("BackupStatus", "Success")
                .param("BackupType", "FullBackup")
                .param("StartTime", wire::format_rds_time(start))
                .param("EndTime", wire::format_rds_time(end))
                .param("PageSize", "100")
                .param("PageNumber", page.to_string());
            let parsed = self.execute(&call).await?;
            let rds = wire::parse_rds_page(&parsed.body);
            let got = rds.backups.len();
            all.extend(rds.backups);
            let total = rds.total_record_count.unwrap_or(0);
            if got == 0 || all.len() as i64 >= total {
                break;
            }
        }
        Ok(wire::pick_latest_full(all))
    }

    /// Run one call: reads retry a few times on transient/throttled errors, writes go once.
    #[tracing::instrument(
        name = "dbs.call",
        skip_all,
        fields(action = call.action, region = %call.region, request_id, result, code)
    )]
    async fn execute(&self, call: &Call) -> Result<Parsed, DbsError> {
        let result = match call.idempotency {
            Idempotency::Write => self.send(call).await,
            Idempotency::Read => {
                let backoff = ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(2))
                    .with_max_times(READ_ATTEMPTS - 1)
                    .with_jitter();
                (|| self.send(call))
                    .retry(backoff)
                    .when(retry_in_process)
                    .notify(|e: &DbsError, after: Duration| {
                        tracing::debug!(code = %e.code, kind = e.kind.as_str(), ?after, "retrying read");
                    })
                    .await
            }
        };
        let span = tracing::Span::current();
        match &result {
            Ok(parsed) => {
                if let Some(id) = &parsed.envelope.request_id {
                    span.record("request_id", id.as_str());
                }
                span.record("result", "ok");
            }
            Err(e) => {
                if let Some(id) = &e.request_id {
                    span.record("request_id", id.as_str());
                }
                span.record("result", e.kind.as_str());
                span.record("code", e.code.as_str());
                tracing::debug!(code = %e.code, http_status = ?e.http_status, "cloud call failed");
            }
        }
        result
    }

    /// One call with the current credentials; if the cloud refuses their STS token
    /// (expired or revoked early), the provider drops them and the call goes once more
    /// with fresh ones. Safe for writes too: a refused token means nothing was applied.
    /// Still refused after a refresh ⇒ Transient (the role may hand out new ones soon);
    /// fixed credentials, which cannot be refreshed ⇒ Permanent.
    async fn send(&self, call: &Call) -> Result<Parsed, DbsError> {
        let base = self.base_url(call)?;
        let provider = &self.inner.credentials;
        let creds = provider.credentials().await?;
        match self.attempt(call, &base, &creds).await {
            Err(mut e) if classify::credentials_rejected(&e.code) => {
                if provider.invalidate(&creds.access_key_id).await {
                    tracing::info!(code = %e.code, "security token refused; retrying with fresh credentials");
                    let fresh = provider.credentials().await?;
                    self.attempt(call, &base, &fresh).await
                } else {
                    // Fixed credentials stay refused until an operator changes them.
                    e.kind = DbsErrorKind::Permanent;
                    Err(e)
                }
            }
            other => other,
        }
    }

    /// One attempt: rate-limit token, sign, send, classify. Every attempt that reaches
    /// the network is counted here, and only here (`dbs_archiver_cloud_*`).
    async fn attempt(
        &self,
        call: &Call,
        base: &url::Url,
        creds: &Credentials,
    ) -> Result<Parsed, DbsError> {
        let key = LimitKey::new(&creds.access_key_id, &host_header(base));
        let sent = self.inner.limiter.acquire(&key).await;
        let started = std::time::Instant::now();
        let result = self.send_signed(call, base, creds).await;
        if let Err(e) = &result {
            if e.kind == DbsErrorKind::Throttled {
                self.inner.limiter.throttled(&key, sent, e.retry_after);
            }
        }
        let class = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind.as_str(),
        };
        crate::telemetry::metrics::cloud_call(
            call.action,
            &call.region,
            class,
            started.elapsed().as_secs_f64(),
        );
        result
    }

    async fn send_signed(
        &self,
        call: &Call,
        base: &url::Url,
        creds: &Credentials,
    ) -> Result<Parsed, DbsError> {
        let request = self.build_request(call, base, creds)?;
        let response = self
            .inner
            .http
            .execute(request)
            .await
            .map_err(|e| classify::classify_transport(e, call.idempotency, Phase::Send))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| classify::classify_transport(e, call.idempotency, Phase::Body))?;
        classify::classify_reply(status, &headers, &body, call.idempotency)
    }

    fn base_url(&self, call: &Call) -> Result<url::Url, DbsError> {
        let (overridden, host) = match call.product {
            Product::Dbs => (
                &self.inner.dbs_override,
                endpoints::dbs_endpoint(&call.region, self.inner.config.endpoint_kind),
            ),
            Product::Rds => {
                check_region(&call.region)?;
                (
                    &self.inner.rds_override,
                    Some(endpoints::rds_host(&call.region)),
                )
            }
        };
        if let Some(url) = overridden {
            return Ok(url.clone());
        }
        let host = host.ok_or_else(|| {
            DbsError::new(
                DbsErrorKind::Permanent,
                "Endpoint.UnknownRegion",
                format!(
                    "no DBS endpoint is known for region {:?}; set dbs.endpoint to override",
                    call.region
                ),
            )
        })?;
        url::Url::parse(&format!("https://{host}/")).map_err(|e| invalid("region", e))
    }

    /// Sign per dbs-api.md §7: V3 headers, or V2 common parameters in the query.
    fn build_request(
        &self,
        call: &Call,
        base: &url::Url,
        creds: &Credentials,
    ) -> Result<reqwest::Request, DbsError> {
        let version = match call.product {
            Product::Dbs => DBS_VERSION,
            Product::Rds => RDS_VERSION,
        };
        let timestamp = self
            .inner
            .clock
            .now()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let host = host_header(base);
        let secret = creds.access_key_secret.expose_secret();
        let token = creds.security_token.as_ref().map(|t| t.expose_secret());
        let mut query = call.params.clone();
        let mut headers: Vec<(String, String)> = vec![("host".into(), host)];
        let mut sensitive: Vec<&str> = Vec::new();
        match self.inner.config.signature {
            SignatureVersion::V3 => {
                headers.extend([
                    ("x-acs-action".into(), call.action.into()),
                    ("x-acs-version".into(), version.into()),
                    ("x-acs-date".into(), timestamp),
                    ("x-acs-signature-nonce".into(), nonce),
                    ("x-acs-content-sha256".into(), EMPTY_SHA256.into()),
                ]);
                if let Some(token) = token {
                    headers.push(("x-acs-security-token".into(), token.to_string()));
                    sensitive.push("x-acs-security-token");
                }
                let authorization = signing::v3_authorization(
                    &creds.access_key_id,
                    secret,
                    &V3Input {
                        method: "POST",
                        path: "/",
                        query: &query,
                        headers: &headers,
                        payload_hash: EMPTY_SHA256,
                    },
                );
                headers.push(("authorization".into(), authorization));
                sensitive.push("authorization");
            }
            SignatureVersion::V2 => {
                query.extend([
                    ("Action".into(), call.action.into()),
                    ("Version".into(), version.into()),
                    ("Format".into(), "JSON".into()),
                    ("AccessKeyId".into(), creds.access_key_id.clone()),
                    ("SignatureMethod".into(), "HMAC-SHA1".into()),
                    ("SignatureVersion".into(), "1.0".into()),
                    ("SignatureNonce".into(), nonce),
                    ("Timestamp".into(), timestamp),
                ]);
                if let Some(token) = token {
                    query.push(("SecurityToken".into(), token.to_string()));
                }
                let signature = signing::v2_signature(secret, "POST", &query);
                query.push(("Signature".into(), signature));
            }
        }
        headers.push(("accept".into(), "application/json".into()));
        let mut map = HeaderMap::new();
        for (name, value) in &headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid("header", format!("bad header name {name}")))?;
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                invalid(
                    name.as_str(),
                    "contains characters not allowed in an HTTP header",
                )
            })?;
            value.set_sensitive(sensitive.contains(&name.as_str()));
            map.insert(name, value);
        }
        let mut url = base.clone();
        url.set_path("/");
        url.set_query(Some(&signing::canonical_query(&query)));
        let mut request = reqwest::Request::new(reqwest::Method::POST, url);
        *request.headers_mut() = map;
        Ok(request)
    }
}

#[cfg(test)]
mod tests;
