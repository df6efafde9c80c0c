//! Cron schedules → jobs, exactly once per fire time across any number of processes.
//!
//! - [`cron`]: expressions evaluated in an IANA zone with explicit DST rules;
//! - [`model`]: the `Schedule` domain type and its validation;
//! - [`template`]: path templates and the request each fire becomes;
//! - [`plan`]: which fires are due and what the misfire policy makes of them (pure);
//! - [`fire`]: one fire — targets, overlap, backup set, enqueue, history;
//! - [`service`]: the [`Scheduler`] (claim → fire → fenced advance) and its loop;
//! - [`ops`]: the operations the CLI and the API share; [`sync`]: config-declared schedules.
//!
//! Operator documentation: docs/schedules.md.

pub mod error;
pub mod fire;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod plan;
pub mod service;
pub mod sync;
pub mod template;

/// Cron evaluation is pure domain logic; it lives in [`crate::model::cron`] so schedule
/// validation needs no scheduler import.
pub use crate::model::cron;

pub use error::SchedulerError;
pub use model::{Schedule, ScheduleSpec};
pub use service::{Config, RunReport, Scheduler};

use crate::dbs::types::RdsBackup;
use crate::dbs::{DbsClient, DbsError};
use crate::model::schedule::SchedulerSettings;
use crate::model::InstanceKey;
use async_trait::async_trait;

/// Finds the backup set `latest_full` exports. A trait so the scheduler does not need the
/// whole client to be testable; production uses [`DbsClient`] (RDS DescribeBackups).
#[async_trait]
pub trait BackupFinder: Send + Sync {
    /// The newest successful, available full backup within `window`, if any.
    async fn latest_full(
        &self,
        key: &InstanceKey,
        window: chrono::Duration,
    ) -> Result<Option<RdsBackup>, DbsError>;
}

#[async_trait]
impl BackupFinder for DbsClient {
    async fn latest_full(
        &self,
        key: &InstanceKey,
        window: chrono::Duration,
    ) -> Result<Option<RdsBackup>, DbsError> {
        self.latest_full_backup(&key.region, &key.instance, window)
            .await
    }
}

/// Wire the scheduler into `serve`: sync the config-declared schedules, then tick until
/// `stop`. Does nothing when `scheduler.enabled` is false. The service ends with an error
/// only if the declared schedules cannot be synced.
pub fn spawn(
    store: &crate::store::DynStore,
    client: &DbsClient,
    settings: &SchedulerSettings,
    worker_id: &str,
    clock: crate::clock::DynClock,
    services: &mut tokio::task::JoinSet<anyhow::Result<()>>,
    stop: &tokio_util::sync::CancellationToken,
) {
    if !settings.enabled {
        tracing::info!("scheduler disabled (scheduler.enabled = false)");
        return;
    }
    let store = store.clone();
    let declared = settings.schedules.clone();
    let config = Config::from_settings(settings, worker_id);
    let backups = std::sync::Arc::new(client.clone());
    let stop = stop.clone();
    services.spawn(async move {
        let report = sync::sync_declared(store.as_ref(), &declared, clock.now()).await?;
        tracing::info!(created = ?report.created, updated = ?report.updated,
            deleted = ?report.deleted, conflicts = ?report.conflicts, "declared schedules synced");
        crate::supervisor::supervised("scheduler", stop.clone(), move || {
            let scheduler = Scheduler::new(store.clone(), clock.clone(), config.clone())
                .with_backups(backups.clone());
            let stop = stop.clone();
            async move {
                scheduler.run(stop).await;
                Ok(())
            }
        })
        .await
    });
}
