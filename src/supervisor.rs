//! Keeps `serve`'s long-lived services alive through a panic.
//!
//! A panic in a service (a bug, or a value nothing anticipated) used to end `serve`, and on
//! a restart the same row panicked it again, on every node. Here the panic is caught,
//! logged with its message, counted in `dbs_archiver_panics_total{service}`, and the
//! service starts afresh after a pause: whatever it held (a job's lease) expires and is
//! rescued as after a crash, and every other service goes on.

use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Pause before a service that panicked starts again.
pub const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// Run the service `make()` builds until it returns; a panic restarts it (with a fresh
/// `make()`), unless `stop` has fired. The service's own result is passed on.
pub async fn supervised<F, Fut>(
    service: &'static str,
    stop: CancellationToken,
    make: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    loop {
        match AssertUnwindSafe(make()).catch_unwind().await {
            Ok(result) => return result,
            Err(panic) => {
                crate::telemetry::metrics::panic_caught(service);
                tracing::error!(
                    service,
                    panic = %panic_message(panic.as_ref()),
                    "service panicked; restarting it"
                );
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(RESTART_PAUSE) => {}
                }
            }
        }
    }
}

/// The text of a panic payload (`panic!("…")` carries a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_service_is_restarted_and_its_result_passed_on() {
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let result = supervised("dispatcher", CancellationToken::new(), move || {
            let r = r.clone();
            async move {
                if r.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("boom");
                }
                Ok(())
            }
        })
        .await;
        assert!(result.is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_service_is_not_restarted() {
        let stop = CancellationToken::new();
        stop.cancel();
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let result = supervised("tracker", stop, move || {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                panic!("boom");
            }
        })
        .await;
        assert!(result.is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn panic_messages_are_read() {
        let p = std::panic::catch_unwind(|| panic!("at {}", 3)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "at 3");
    }
}
