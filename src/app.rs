//! `serve`: wire the store, the DBS client, the worker, the scheduler and the API, and run
//! until the shutdown token fires. Tests call the same function.

use crate::config::Settings;
use crate::store;
use tokio_util::sync::CancellationToken;

/// Open the database named in settings, applying migrations when configured.
pub async fn open_store(settings: &Settings) -> anyhow::Result<store::DynStore> {
    let store = store::connect(&settings.database.url, settings.database.max_connections).await?;
    if settings.database.migrate_on_start {
        store.migrate().await?;
    }
    Ok(store)
}

/// Run the service until `shutdown` is cancelled.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let _store = open_store(&settings).await?;
    shutdown.cancelled().await;
    Ok(())
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
        t.cancel();
    });
    token
}
