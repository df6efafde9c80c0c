//! Outcomes written together (design.md invariant 9): the dispatcher's and the tracker's
//! fenced updates go through one [`OutcomeWriter`], which writes every update waiting at
//! that moment with one `Store::job_update_many` — one statement (and its events) for
//! the batch instead of one transaction per job.
//!
//! It is a group commit with no lingering: the first update starts a write at once; the
//! ones that arrive while it runs wait for it and go together in the next. So a claimed
//! batch whose cloud calls end together (or a polling round) is one statement, and a lone
//! outcome is not delayed. The write runs in its own task, so a caller that is aborted
//! (shutdown after the grace period) does not cancel the others' write half way.
//!
//! Each update keeps its own fence and its own answer (`Ok(false)` = no longer ours). A
//! retryable error is retried for up to one lease period, like a single write; a
//! permanent one (a forbidden transition refuses the whole batch) is retried one update
//! at a time, so one bad patch costs only itself.

use crate::retry::ErrorClass;
use crate::store::{DynStore, Fence, JobPatch, StoreError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// What a caller gets back: the fence held, or why the write failed (shared, since one
/// failure answers the whole batch).
pub type Recorded = Result<bool, Arc<StoreError>>;

type Waiting = (Fence, JobPatch, oneshot::Sender<Recorded>);

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// A write task is running; it takes what is waiting before it stops.
    writing: bool,
}

/// Batches fenced job updates; see the module docs.
pub struct OutcomeWriter {
    store: DynStore,
    /// How long a retryable error is retried (the lease: after that, rescue owns the job).
    budget: Duration,
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for OutcomeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutcomeWriter").finish_non_exhaustive()
    }
}

impl OutcomeWriter {
    pub fn new(store: DynStore, budget: Duration) -> Arc<Self> {
        Arc::new(Self {
            store,
            budget,
            queue: Mutex::new(Queue::default()),
        })
    }

    /// Write one fenced update with whatever else is waiting.
    pub async fn record(self: &Arc<Self>, fence: Fence, patch: JobPatch) -> Recorded {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = self.queue.lock().expect("outcome queue");
            q.waiting.push((fence, patch, tx));
            !std::mem::replace(&mut q.writing, true)
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move { me.write_all().await });
        }
        rx.await.unwrap_or_else(|_| {
            Err(Arc::new(StoreError::Corrupt(
                "the outcome writer stopped before answering".into(),
            )))
        })
    }

    /// Write batches until nothing is waiting.
    async fn write_all(&self) {
        loop {
            let batch = {
                let mut q = self.queue.lock().expect("outcome queue");
                if q.waiting.is_empty() {
                    q.writing = false;
                    return;
                }
                std::mem::take(&mut q.waiting)
            };
            self.write(batch).await;
        }
    }

    async fn write(&self, batch: Vec<Waiting>) {
        let (updates, answers): (Vec<(Fence, JobPatch)>, Vec<_>) =
            batch.into_iter().map(|(f, p, tx)| ((f, p), tx)).unzip();
        let results = write_many(&self.store, self.budget, &updates).await;
        for (tx, r) in answers.into_iter().zip(results) {
            let _ = tx.send(r);
        }
    }
}

/// Write `updates` with one `job_update_many`, retried like a single write; a permanent
/// error of the batch is retried one update at a time. One answer per update, in order.
pub(crate) async fn write_many(
    store: &DynStore,
    budget: Duration,
    updates: &[(Fence, JobPatch)],
) -> Vec<Recorded> {
    if updates.is_empty() {
        return Vec::new();
    }
    let result = super::retry_store(budget, || store.job_update_many(updates)).await;
    tracing::debug!(
        updates = updates.len(),
        ok = result.is_ok(),
        "outcomes written"
    );
    match result {
        Ok(held) => held.into_iter().map(Ok).collect(),
        Err(e) if e.class() == ErrorClass::Permanent && updates.len() > 1 => {
            tracing::warn!(error = %e, updates = updates.len(), "batched update refused; writing one at a time");
            let mut out = Vec::with_capacity(updates.len());
            for (fence, patch) in updates {
                let one = super::retry_store(budget, || store.job_update(fence, patch)).await;
                out.push(one.map_err(Arc::new));
            }
            out
        }
        Err(e) => {
            let e = Arc::new(e);
            updates.iter().map(|_| Err(e.clone())).collect()
        }
    }
}
