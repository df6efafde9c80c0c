//! Durable archives of URL downloads (docs/archives.md).
//!
//! A `TargetType=URL` download leaves its file at a link that expires; this module fetches
//! it into storage the operator owns and keeps it by a rule:
//! - [`sink`]: where archives go (a local directory, any S3-compatible store);
//! - [`fetcher`]: the worker service that streams a finished task's link into its sink,
//!   resumable, size- and SHA-256-checked, committed atomically ([`transfer`]);
//! - [`retention`]: keep the last N per instance and/or those younger than D days.
//!
//! An archive has its own row, state, lease and events ([`model`]), so the job state
//! machine is unchanged; the job's views show its archive next to it.

pub mod error;
pub mod fetcher;
pub mod metrics;
pub mod model;
pub mod naming;
pub mod retention;
pub mod settings;
pub mod sink;
pub mod transfer;

pub use error::ArchiveError;
pub use fetcher::{FetchReport, Fetcher, FetcherConfig};
pub use model::{Archive, ArchiveEvent, ArchiveState};
pub use retention::{Retention, RetentionReport};
pub use settings::{ArchiveSettings, SinkKind, SinkSettings};
pub use sink::{Sink, Sinks};

use crate::clock::DynClock;
use crate::config::Settings;
use crate::store::DynStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Spawn the fetcher and retention into `serve`'s services (a no-op when
/// `archive.enabled` is false). Building the sinks reads S3 credentials; a failure stops
/// `serve` with an error that names the sink.
pub fn spawn(
    store: &DynStore,
    settings: &Settings,
    clock: DynClock,
    owner: &str,
    set: &mut JoinSet<anyhow::Result<()>>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let a = &settings.archive;
    if !a.enabled {
        return Ok(());
    }
    let sinks = Arc::new(Sinks::new(&settings.sinks, a)?);
    let fetcher = Fetcher::new(
        store.clone(),
        sinks.clone(),
        clock.clone(),
        FetcherConfig::from_settings(a, settings.worker.retry, owner),
    )?;
    let retention = Retention::new(
        store.clone(),
        sinks,
        clock,
        Duration::from_secs(a.retention_interval_seconds),
        a.retention_dry_run,
    );
    let (s1, s2) = (stop.clone(), stop.clone());
    set.spawn(async move {
        fetcher.run(s1).await;
        Ok(())
    });
    set.spawn(async move {
        retention.run(s2).await;
        Ok(())
    });
    Ok(())
}
