//! Archive evidence (docs/archives.md): URL tasks' files fetched into a local directory
//! and a real S3-compatible server (moto), resumed after a dropped connection and after a
//! killed process, expired links failing loudly, retention deleting exactly what its rule
//! says. Both backends; the simulator serves the files over real TCP.

mod api;
mod crash;
mod fetch;
mod retention;
mod s3;
mod sql;

use crate::helpers::db::TestDb;
use crate::worker::{full_request, instance, sim_config, test_config, Rig};
use dbs_archiver::archive::model::Archive;
use dbs_archiver::archive::{Fetcher, FetcherConfig, SinkSettings, Sinks};
use dbs_archiver::clock::ManualClock;
use dbs_archiver::model::{Job, JobState};
use dbs_archiver::retry::RetryPolicy;
use dbs_archiver::sim::SimConfig;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

/// Backup sets of this size export `size · 3/5` bytes (the simulator's ratio).
pub const BACKUP_BYTES: i64 = 2_000_000;

/// The worker simulator with three instances whose backup sets are `backup_bytes` large.
pub fn small_sim(clock: &ManualClock, backup_bytes: i64) -> SimConfig {
    let mut c = sim_config(clock, 3);
    for i in &mut c.fleet.instances {
        for b in &mut i.backup_sets {
            b.size_bytes = backup_bytes;
        }
    }
    c
}

/// Fetcher settings for tests: quick retries, no bandwidth limit.
pub fn fetcher_config(default_sink: Option<&str>) -> FetcherConfig {
    FetcherConfig {
        owner: format!("fetch-{:08x}", rand::random::<u32>()),
        concurrency: 4,
        lease: Duration::from_secs(30),
        idle_poll: Duration::from_millis(100),
        max_attempts: 5,
        retry: RetryPolicy {
            base_seconds: 1.0,
            cap_seconds: 10.0,
        },
        expiry_margin: Duration::from_secs(900),
        default_sink: default_sink.map(str::to_string),
        bandwidth_bytes_per_second: 0,
        read_timeout: Duration::from_secs(5),
    }
}

/// A worker rig (store, simulator, dispatcher, tracker on one manual clock), a temp dir
/// and the configured sinks.
pub struct ArchiveRig {
    pub rig: Rig,
    _dir: TempDir,
    pub sinks: Arc<Sinks>,
}

impl ArchiveRig {
    /// `sinks` get a local sink `local` at `<tmp>/archives` prepended.
    pub async fn start(db: TestDb, backup_bytes: i64, mut sinks: Vec<SinkSettings>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        sinks.insert(0, SinkSettings::local(dir.path().join("archives")));
        let archive = dbs_archiver::archive::ArchiveSettings {
            spool_dir: dir.path().join("spool"),
            ..Default::default()
        };
        dbs_archiver::archive::settings::validate(&sinks, &archive).expect("valid sinks");
        let sinks = Arc::new(Sinks::new(&sinks, &archive).expect("sinks"));
        let rig = Rig::start(db, |c| small_sim(c, backup_bytes), test_config()).await;
        Self {
            rig,
            _dir: dir,
            sinks,
        }
    }

    pub fn fetcher(&self, config: FetcherConfig) -> Fetcher {
        Fetcher::new(
            self.rig.db.store.clone(),
            self.sinks.clone(),
            self.rig.ctx.clock.clone(),
            config,
        )
        .expect("fetcher")
    }

    /// Enqueue the `k`-th URL download of instance `i` (into `sink`) and follow it until
    /// the job has succeeded with a download link.
    pub async fn succeeded_url_job(&self, i: usize, k: usize, sink: Option<&str>) -> Job {
        let mut req = full_request(&instance(i), k);
        req.sink = sink.map(str::to_string);
        let job = self.rig.enqueue(req).await;
        self.rig.run_until_idle(Duration::from_secs(10), 100).await;
        let job = self.rig.job(job.id).await;
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        assert!(job.remote.download_url.is_some(), "a URL task has a link");
        job
    }

    pub async fn archive_of(&self, job: &Job) -> Archive {
        self.rig
            .db
            .store
            .archive_get_by_job(job.id)
            .await
            .unwrap()
            .expect("the job has an archive")
    }
}

/// The bytes the simulator serves for `job`'s task.
pub fn served_bytes(job: &Job) -> Vec<u8> {
    let size = job.remote.export_data_size.expect("reported size") as usize;
    dbs_archiver::sim::file_bytes(job.remote.task_id.as_deref().unwrap(), 0, size)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The local file behind a `file://` location.
pub fn local_file(location: &str) -> std::path::PathBuf {
    location
        .strip_prefix("file://")
        .expect("a file:// location")
        .into()
}

/// A counter's value in this process's Prometheus registry (0 when absent).
pub fn counter(name: &str) -> f64 {
    dbs_archiver::telemetry::metrics_handle()
        .render()
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
