//! `serve`: wire the store, the DBS client, the worker, the scheduler and the API, and run
//! until the shutdown token fires. Tests call the same function.
//!
//! Lifecycle (style.md 8): one [`CancellationToken`], a [`JoinSet`] of long-lived services,
//! a two-phase stop. When the token fires, the dispatcher and the tracker stop claiming and
//! give in-flight cloud calls `worker.shutdown_grace_seconds` to finish; whatever is still
//! in flight after that is aborted and its lease released. If any service ends with an
//! error, the others are stopped the same way and the error is returned.

use crate::clock::{DynClock, SystemClock};
use crate::config::Settings;
use crate::dbs::DbsClient;
use crate::store;
use crate::worker::{WorkerConfig, WorkerContext};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Open the database named in settings, applying migrations when configured.
pub async fn open_store(settings: &Settings) -> anyhow::Result<store::DynStore> {
    open_store_with_clock(settings, Arc::new(SystemClock)).await
}

/// [`open_store`] with the clock the store stamps times with.
pub async fn open_store_with_clock(
    settings: &Settings,
    clock: DynClock,
) -> anyhow::Result<store::DynStore> {
    let store = store::connect_with_clock(
        &settings.database.url,
        settings.database.max_connections,
        clock,
    )
    .await?;
    if settings.database.migrate_on_start {
        store.migrate().await?;
    }
    Ok(store)
}

/// [`open_store`] for a long-running service: a database that is down or drops the
/// connection while starting (a restart, a failover, a compose stack still coming up) is
/// waited for, with backoff, for up to a minute; a permanent error (a wrong URL, a failed
/// migration) still stops at once. The CLI's one-shot commands use [`open_store`] and fail
/// fast.
pub async fn open_store_patiently(
    settings: &Settings,
    clock: DynClock,
) -> anyhow::Result<store::DynStore> {
    use backon::{ExponentialBuilder, Retryable};
    let retryable = |e: &anyhow::Error| {
        e.downcast_ref::<store::StoreError>()
            .is_some_and(|s| s.class() == crate::retry::ErrorClass::Retryable)
    };
    (|| open_store_with_clock(settings, clock.clone()))
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_total_delay(Some(Duration::from_secs(60)))
                .with_max_times(usize::MAX)
                .with_jitter(),
        )
        .when(retryable)
        .notify(|e: &anyhow::Error, after: Duration| {
            tracing::warn!(error = %e, ?after, "database not available at start-up; retrying");
        })
        .await
}

/// The DBS client described by `[dbs]`, with the credentials chain (settings →
/// environment → credentials file → ECS RAM role).
pub fn build_client(settings: &Settings) -> anyhow::Result<DbsClient> {
    Ok(DbsClient::from_settings(&settings.dbs)?)
}

/// A built, not yet running service: the pieces `serve` wires together. Exposed so
/// `serve --simulate` can seed demo data and tests can drive the worker step by step.
#[derive(Clone)]
pub struct App {
    pub settings: Settings,
    /// SQLite: the exclusive process lock on `<database>.lock`, held while the app lives.
    _lock: Option<Arc<crate::store::sqlite::ProcessLock>>,
    pub store: store::DynStore,
    pub client: DbsClient,
    pub worker: WorkerContext,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("worker", &self.worker).finish()
    }
}

impl App {
    /// Open the store (migrating if configured), build the client and the worker context.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(settings: Settings, clock: DynClock) -> anyhow::Result<Self> {
        // One `serve` per SQLite file: take the lock before touching the database, so a
        // second process fails fast with a message that says why.
        let lock = if settings.database.url.starts_with("sqlite:") {
            Some(Arc::new(crate::store::sqlite::acquire_process_lock(
                &settings.database.url,
            )?))
        } else {
            None
        };
        let store = open_store_patiently(&settings, clock.clone()).await?;
        let client = build_client(&settings)?;
        let worker = WorkerContext::new(
            store.clone(),
            client.clone(),
            clock,
            WorkerConfig::from_settings(&settings),
        );
        Ok(Self {
            settings,
            _lock: lock,
            store,
            client,
            worker,
        })
    }

    /// Spawn every service and run until `shutdown` fires (or a service fails).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut services: JoinSet<anyhow::Result<()>> = JoinSet::new();
        // Services stop on `stop`; it follows `shutdown` and also fires when a service dies.
        let stop = shutdown.child_token();

        crate::worker::spawn(&self.worker, &mut services, &stop);

        // Cron schedules → jobs (issue 5); a no-op when `scheduler.enabled` is false.
        crate::scheduler::spawn(
            &self.store,
            &self.client,
            &self.settings.scheduler,
            &self.settings.worker.id,
            self.worker.clock.clone(),
            &mut services,
            &stop,
        );
        // The admin HTTP API on `api.listen` (issue 6); a bind failure stops `serve`.
        let api = crate::api::ApiState::new(self.store.clone(), &self.settings)
            .with_backups(Arc::new(self.client.clone()))
            .with_clock(self.worker.clock.clone());
        crate::api::spawn(api, &mut services, &stop);
        // Database-derived gauges for /metrics (issue 7).
        crate::telemetry::collector::spawn(
            &self.store,
            self.worker.clock.clone(),
            Duration::from_secs_f64(self.settings.telemetry.collect_interval_seconds),
            &mut services,
            &stop,
        );
        // URL downloads → archives in the configured sinks, and their retention.
        crate::archive::spawn(
            &self.store,
            &self.settings,
            self.worker.clock.clone(),
            &self.worker.config.owner,
            &mut services,
            &stop,
        )?;
        // More services plug in here: spawn into `services`, return when `stop` fires.

        tracing::info!(
            backend = self.store.backend(),
            owner = %self.worker.config.owner,
            "dbs-archiver serving"
        );
        let mut first_error: Option<anyhow::Error> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                r = services.join_next() => match r {
                    None => break,
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(e))) => {
                        tracing::error!(error = %format!("{e:#}"), "a service failed; stopping");
                        first_error = Some(e);
                        stop.cancel();
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "a service panicked; stopping");
                        first_error = Some(anyhow::anyhow!("service panicked: {e}"));
                        stop.cancel();
                        break;
                    }
                }
            }
        }
        tracing::info!("shutting down: no more claims, letting in-flight calls finish");
        // The services honour the grace period themselves; this outer bound only guards
        // against a stuck one.
        let bound = self.worker.config.shutdown_grace + Duration::from_secs(10);
        let drained = tokio::time::timeout(bound, async {
            while let Some(r) = services.join_next().await {
                if let Ok(Err(e)) = r {
                    tracing::warn!(error = %format!("{e:#}"), "service ended with an error during shutdown");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("services did not stop in time; aborting them");
            services.abort_all();
        }
        tracing::info!("stopped");
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Run the service until `shutdown` is cancelled.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    App::build(settings).await?.run(shutdown).await
}

/// A token cancelled on SIGTERM or Ctrl-C.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("signal received; stopping (Ctrl-C again to force)");
        t.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!("second signal: exiting now; leases expire and are rescued");
            std::process::exit(130);
        }
    });
    token
}
