//! Wake-ups for SQL-inserted jobs: the `jobs_enqueued` trigger NOTIFYs
//! [`CHANNEL`]; this task LISTENs and turns each message into a [`Wakeups`] wake-up.
//!
//! It reconnects on its own after errors (waking everyone once after a reconnect, since
//! messages sent while it was away are lost) and stops when the last store handle drops.

use super::super::wake::Wakeups;
use sqlx::postgres::PgListener;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The channel the jobs trigger notifies.
pub const CHANNEL: &str = "dbs_archiver_jobs";

const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// Listen until `stop` fires. `ready` is sent once the first LISTEN is in place.
pub(crate) async fn run(
    url: String,
    notify: Wakeups,
    stop: CancellationToken,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    loop {
        let attempt = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = stop.cancelled() => return,
            result = attempt => match result {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "job notification listener cannot connect; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(RECONNECT_DELAY) => continue,
                    }
                }
            }
        };
        if let Some(tx) = ready.take() {
            let _ = tx.send(());
        } else {
            // Messages sent while we were away are gone: let workers look once.
            notify.wake();
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                msg = listener.recv() => match msg {
                    Ok(_) => notify.wake(),
                    Err(e) => {
                        tracing::warn!(error = %e, "job notification listener lost its connection; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}
