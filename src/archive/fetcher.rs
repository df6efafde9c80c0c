//! The fetcher: a worker service like the dispatcher and the tracker. Each round it turns
//! succeeded URL jobs into `pending` archives, rescues archives whose fetcher died, leases
//! due ones (at most `archive.concurrency`), streams each into its sink outside any
//! transaction, and records the outcome with a fenced update.
//!
//! While a fetch runs, a heartbeat extends its lease and records progress (`bytes_done`);
//! when the fence no longer holds (the lease was rescued by another process) the fetch
//! stops without writing anything.

use super::error::ArchiveError;
use super::metrics as m;
use super::model::{Archive, ArchiveState};
use super::naming::object_name;
use super::settings::ArchiveSettings;
use super::sink::Sinks;
use super::transfer::{self, Bandwidth, Fetched};
use crate::clock::DynClock;
use crate::retry::{ErrorClass, RetryPolicy};
use crate::store::archives::{ArchiveFence, ArchivePatch, NewArchive};
use crate::store::{DynStore, StoreError};
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The shortest wait before a retry.
const MIN_RETRY_DELAY: Duration = Duration::from_secs(1);

/// What the fetcher needs from the settings.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// Lease owner written on claimed archives.
    pub owner: String,
    pub concurrency: u32,
    pub lease: Duration,
    pub idle_poll: Duration,
    pub max_attempts: u32,
    pub retry: RetryPolicy,
    /// Retries are scheduled at least this long before the link expires.
    pub expiry_margin: Duration,
    /// The sink of URL jobs that name none.
    pub default_sink: Option<String>,
    /// Whole-process fetch bandwidth, bytes per second (0 = unlimited).
    pub bandwidth_bytes_per_second: u64,
    /// Timeout of connecting to the link and of waiting for each piece of the body.
    pub read_timeout: Duration,
}

impl FetcherConfig {
    pub fn from_settings(a: &ArchiveSettings, retry: RetryPolicy, owner: &str) -> Self {
        Self {
            owner: owner.to_string(),
            concurrency: a.concurrency,
            lease: Duration::from_secs(a.lease_seconds),
            idle_poll: Duration::from_millis(a.idle_poll_ms),
            max_attempts: a.max_attempts,
            retry,
            expiry_margin: Duration::from_secs(a.expiry_margin_seconds),
            default_sink: (!a.default_sink.is_empty()).then(|| a.default_sink.clone()),
            bandwidth_bytes_per_second: a.bandwidth_bytes_per_second,
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    pub created: usize,
    pub rescued: usize,
    pub stored: usize,
    pub retried: usize,
    pub failed: usize,
}

/// How one fetch ended.
enum Outcome {
    Stored,
    Retry,
    Failed,
    /// The lease was lost mid-way: someone else owns the archive now.
    Lost,
}

/// The fetcher service.
#[derive(Clone)]
pub struct Fetcher {
    store: DynStore,
    sinks: Arc<Sinks>,
    clock: DynClock,
    config: Arc<FetcherConfig>,
    http: reqwest::Client,
    bandwidth: Arc<Bandwidth>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("owner", &self.config.owner)
            .finish()
    }
}

fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Fetcher {
    pub fn new(
        store: DynStore,
        sinks: Arc<Sinks>,
        clock: DynClock,
        config: FetcherConfig,
    ) -> Result<Self, ArchiveError> {
        // Links come from DescribeDownloadBackupSetStorageInfo; no redirects are followed
        // to anywhere else, and no whole-request timeout (a big file takes long): the
        // read timeout catches a stalled body instead.
        let http = reqwest::Client::builder()
            .connect_timeout(config.read_timeout)
            .read_timeout(config.read_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ArchiveError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            bandwidth: Arc::new(Bandwidth::new(config.bandwidth_bytes_per_second)),
            store,
            sinks,
            clock,
            config: Arc::new(config),
            http,
        })
    }

    /// Create archives for succeeded URL jobs that have none yet. A job naming a sink that
    /// is not configured gets a `failed` archive that says so.
    pub async fn discover(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let jobs = self
            .store
            .archive_candidates(now, self.config.default_sink.is_some(), 256)
            .await?;
        let mut created = 0;
        for job in jobs {
            let sink_name = job
                .request
                .sink
                .clone()
                .or_else(|| self.config.default_sink.clone())
                .unwrap_or_default();
            let sink = self.sinks.get(&sink_name);
            let (name, failed) = match &sink {
                None => (
                    String::new(),
                    Some(ArchiveError::UnknownSink(sink_name.clone())),
                ),
                Some(s) => match object_name(&s.settings.object_template, &job) {
                    Ok(n) => (n, None),
                    Err(e) => (
                        String::new(),
                        Some(ArchiveError::Config(format!("sink {sink_name}: {e}"))),
                    ),
                },
            };
            let new = NewArchive {
                job_id: job.id,
                sink: sink_name,
                region: job.request.region.clone(),
                instance: job.request.instance.clone(),
                task_id: job.remote.task_id.clone().unwrap_or_default(),
                url: job.remote.download_url.clone().unwrap_or_default(),
                url_expires_at: job.remote.download_url_expires_at,
                expected_size: job.remote.export_data_size,
                max_attempts: i64::from(self.config.max_attempts),
                object_name: name,
                failed: failed.map(|e| (e.code().to_string(), e.to_string())),
                now,
            };
            if let Some(a) = self.store.archive_create(&new).await? {
                if a.state == ArchiveState::Failed {
                    tracing::error!(archive.id = a.id, job.id = a.job_id, error = ?a.last_error, "archive cannot be fetched");
                }
                created += 1;
            }
        }
        Ok(created)
    }

    /// One round: discover, rescue, claim and fetch; returns when every fetch it started
    /// has ended.
    pub async fn run_once(&self) -> Result<FetchReport, StoreError> {
        let (created, rescued) = self.prepare().await?;
        let mut report = FetchReport {
            created,
            rescued,
            ..FetchReport::default()
        };
        let claimed = self.claim(self.config.concurrency).await?;
        let outcomes =
            futures::future::join_all(claimed.into_iter().map(|a| self.fetch_one(a))).await;
        for o in outcomes {
            match o? {
                Outcome::Stored => report.stored += 1,
                Outcome::Retry => report.retried += 1,
                Outcome::Failed => report.failed += 1,
                Outcome::Lost => {}
            }
        }
        Ok(report)
    }

    /// Discover new archives and rescue abandoned ones: (created, rescued).
    async fn prepare(&self) -> Result<(usize, usize), StoreError> {
        let created = self.discover().await?;
        let rescued = self
            .store
            .archive_rescue_expired(self.clock.now())
            .await?
            .len();
        Ok((created, rescued))
    }

    async fn claim(&self, limit: u32) -> Result<Vec<Archive>, StoreError> {
        self.store
            .archive_claim(
                &self.config.owner,
                limit,
                self.config.lease,
                self.clock.now(),
            )
            .await
    }

    fn fence(&self, a: &Archive) -> ArchiveFence {
        ArchiveFence {
            id: a.id,
            state: ArchiveState::Fetching,
            owner: Some(self.config.owner.clone()),
        }
    }

    /// Fetch one leased archive into its sink and record the outcome.
    #[tracing::instrument(skip_all, fields(archive.id = a.id, job.id = a.job_id, sink = %a.sink))]
    async fn fetch_one(&self, a: Archive) -> Result<Outcome, StoreError> {
        let started = std::time::Instant::now();
        let now = self.clock.now();
        let Some(sink) = self.sinks.get(&a.sink) else {
            let e = ArchiveError::UnknownSink(a.sink.clone());
            return self.record_failure(&a, e, a.bytes_done, started).await;
        };
        if let Some(exp) = a.url_expires_at.filter(|t| *t <= now) {
            let e = ArchiveError::UrlExpired { at: Some(exp) };
            return self.record_failure(&a, e, a.bytes_done, started).await;
        }
        self.warn_if_at_risk(&a, now);
        let progress = Arc::new(AtomicU64::new(a.bytes_done.max(0) as u64));
        let partial = sink.partial_path(a.id);
        let transfer = async {
            let fetched = transfer::fetch(
                &self.http,
                &a.url,
                a.expected_size,
                &partial,
                &self.bandwidth,
                &progress,
            )
            .await?;
            let location = sink.commit(&partial, &a.object_name).await?;
            Ok::<_, ArchiveError>((fetched, location))
        };
        let result = tokio::select! {
            r = transfer => r,
            lost = self.heartbeat(&a, &progress) => return lost,
        };
        let done = progress.load(Ordering::Relaxed) as i64;
        match result {
            Ok((fetched, location)) => self.record_stored(&a, fetched, location, started).await,
            Err(ArchiveError::UrlExpired { .. }) => {
                let e = ArchiveError::UrlExpired {
                    at: a.url_expires_at,
                };
                self.record_failure(&a, e, done, started).await
            }
            Err(e) => self.record_failure(&a, e, done, started).await,
        }
    }

    /// Extend the lease and record progress until the lease is lost (then returns
    /// `Lost`); never returns while the lease holds.
    async fn heartbeat(&self, a: &Archive, progress: &AtomicU64) -> Result<Outcome, StoreError> {
        let every = (self.config.lease / 3).max(Duration::from_millis(200));
        loop {
            tokio::time::sleep(every).await;
            let now = self.clock.now();
            let mut patch = ArchivePatch::to(ArchiveState::Fetching, "", now);
            patch.bytes_done = Some(progress.load(Ordering::Relaxed) as i64);
            patch.lease_until = Some(now + chrono_dur(self.config.lease));
            match self.store.archive_update(&self.fence(a), &patch).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("lease lost while fetching; another fetcher took over");
                    return Ok(Outcome::Lost);
                }
                // The database is away: keep fetching; the lease may still hold when it
                // is back, and the final fenced update decides.
                Err(e) => tracing::warn!(error = %e, "could not record fetch progress"),
            }
        }
    }

    /// Alert when the link will expire before a retry could reasonably run, or before
    /// the rest of the file can arrive at the configured bandwidth.
    fn warn_if_at_risk(&self, a: &Archive, now: DateTime<Utc>) {
        let Some(exp) = a.url_expires_at else { return };
        let left = (exp - now).to_std().unwrap_or_default();
        let remaining = (a.expected_size.unwrap_or(0) - a.bytes_done).max(0) as f64;
        let needed = self
            .bandwidth
            .limit()
            .map(|bps| Duration::from_secs_f64(remaining / bps as f64))
            .unwrap_or_default();
        if left < self.config.expiry_margin || needed > left {
            metrics::counter!(m::EXPIRY_AT_RISK).increment(1);
            tracing::warn!(
                expires_at = %exp,
                seconds_left = left.as_secs(),
                seconds_needed = needed.as_secs(),
                "archive fetch may not finish before its download link expires"
            );
        }
    }

    async fn record_stored(
        &self,
        a: &Archive,
        f: Fetched,
        location: String,
        started: std::time::Instant,
    ) -> Result<Outcome, StoreError> {
        let now = self.clock.now();
        let mut patch = ArchivePatch::to(
            ArchiveState::Stored,
            format!(
                "stored {} bytes, sha256 {}{}",
                f.size,
                f.sha256,
                if f.resumed_from > 0 {
                    format!(" (resumed at byte {})", f.resumed_from)
                } else {
                    String::new()
                }
            ),
            now,
        );
        patch.bytes_done = Some(f.size);
        patch.size = Some(f.size);
        patch.sha256 = Some(f.sha256.clone());
        patch.location = Some(location.clone());
        patch.error = Some(None);
        if !self.store.archive_update(&self.fence(a), &patch).await? {
            // Rescued meanwhile: the other fetcher writes the same object again.
            return Ok(Outcome::Lost);
        }
        metrics::counter!(m::FETCHED_BYTES).increment((f.size - f.resumed_from).max(0) as u64);
        m::fetch_ended("stored", started.elapsed().as_secs_f64());
        tracing::info!(%location, size = f.size, sha256 = %f.sha256, "archive stored");
        Ok(Outcome::Stored)
    }

    async fn record_failure(
        &self,
        a: &Archive,
        e: ArchiveError,
        bytes_done: i64,
        started: std::time::Instant,
    ) -> Result<Outcome, StoreError> {
        let now = self.clock.now();
        let retry = e.class() == ErrorClass::Retryable && a.attempts < a.max_attempts;
        let mut patch = ArchivePatch::to(
            if retry {
                ArchiveState::Pending
            } else {
                ArchiveState::Failed
            },
            e.to_string(),
            now,
        );
        patch.bytes_done = Some(bytes_done);
        patch.error = Some(Some((e.code().to_string(), e.to_string())));
        if retry {
            patch.run_at = Some(self.retry_at(a, now));
        }
        if !self.store.archive_update(&self.fence(a), &patch).await? {
            return Ok(Outcome::Lost);
        }
        if matches!(e, ArchiveError::UrlExpired { .. }) {
            metrics::counter!(m::LINK_EXPIRED).increment(1);
        }
        let outcome = if retry { "retry" } else { "failed" };
        m::fetch_ended(outcome, started.elapsed().as_secs_f64());
        if retry {
            tracing::warn!(error = %e, code = e.code(), attempt = a.attempts, bytes_done, "archive fetch interrupted; will resume");
            Ok(Outcome::Retry)
        } else {
            tracing::error!(error = %e, code = e.code(), attempt = a.attempts, "archive fetch failed");
            Ok(Outcome::Failed)
        }
    }

    /// The backoff of `worker.retry`, but never later than `expiry_margin` before the link
    /// expires: a fetch that must resume is retried early rather than after the link died.
    fn retry_at(&self, a: &Archive, now: DateTime<Utc>) -> DateTime<Utc> {
        // At least a second: a link that keeps dropping is not hammered in a tight loop.
        let delay = self
            .config
            .retry
            .delay_random(a.attempts.max(1) as u32, Some(MIN_RETRY_DELAY));
        let at = now + chrono_dur(delay);
        match a.url_expires_at {
            Some(exp) => {
                let latest = exp - chrono_dur(self.config.expiry_margin);
                if latest <= now {
                    metrics::counter!(m::EXPIRY_AT_RISK).increment(1);
                    tracing::warn!(expires_at = %exp, "retrying at once: the download link expires soon");
                }
                at.min(latest.max(now))
            }
            None => at,
        }
    }

    /// Run until `stop`: keep up to `concurrency` fetches in flight, claiming a new one as
    /// soon as a slot frees (a long fetch never holds up the others), and look for new work
    /// every `idle_poll` and whenever a fetch ends (not on job notifications: a newly
    /// queued job is never archive work).
    pub async fn run(self, stop: CancellationToken) {
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.config.concurrency as usize,
        ));
        let mut running = tokio::task::JoinSet::new();
        loop {
            if let Err(e) = self.prepare().await {
                tracing::warn!(error = %e, "archive fetcher round failed");
            }
            let free = slots.available_permits() as u32;
            if free > 0 {
                match self.claim(free).await {
                    Ok(claimed) => {
                        for a in claimed {
                            let Ok(permit) = slots.clone().try_acquire_owned() else {
                                break;
                            };
                            let me = self.clone();
                            running.spawn(async move {
                                let _slot = permit;
                                if let Err(e) = me.fetch_one(a).await {
                                    tracing::warn!(error = %e, "could not record a fetch outcome; the lease will expire and the fetch resume");
                                }
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "archive claim failed"),
                }
            }
            tokio::select! {
                // A fetch cut off by the stop keeps its partial file and its lease; the
                // next start rescues it when the lease expires and resumes with a range
                // request.
                _ = stop.cancelled() => {
                    running.abort_all();
                    return;
                }
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = tokio::time::sleep(self.config.idle_poll) => {}
            }
        }
    }
}
