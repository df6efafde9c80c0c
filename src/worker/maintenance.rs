//! Keeping the queue healthy: small services, each with a `*_once` step a test can call.
//!
//! - **Heartbeat** (`worker.heartbeat_seconds`): extend the leases of the jobs this process
//!   is working on, so a slow cloud call does not look like a dead worker.
//! - **Rescue** (`worker.rescue_interval_seconds`): jobs whose lease expired (their worker
//!   died) go back to `queued` with `needs_reconcile` (from `submitting`) or become due for
//!   a poll again (from `running`).
//! - **Re-probe** (same timer; each blocked instance is due `tracker.blocked_reprobe_seconds`
//!   after it was blocked): list the instance's recent tasks; unblock when nothing holds it
//!   any more (no failed and no in-progress task), otherwise block again for another period.
//! - **Reclaim** (same timer): vacuum the per-instance bookkeeping, whose rows every claim
//!   and every job's end rewrite (`Store::reclaim_bookkeeping`; PostgreSQL only).
//! - **Retention** (hourly): delete terminal jobs older than `worker.retention_days`.

use super::reconcile::{find_blocker, list_recent};
use super::{chrono_dur, WorkerContext};
use crate::dbs::DbsErrorKind;
use crate::store::{BlockInstance, StoreError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Counts of one maintenance step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub heartbeated: usize,
    /// Jobs we thought we held whose lease was gone.
    pub lost: usize,
    pub rescued: usize,
    pub probed: usize,
    pub unblocked: usize,
    pub still_blocked: usize,
    pub pruned: u64,
}

const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Maintenance {
    ctx: WorkerContext,
}

impl Maintenance {
    pub fn new(ctx: WorkerContext) -> Self {
        Self { ctx }
    }

    /// Extend the leases of every job in flight in this process.
    pub async fn heartbeat_once(&self) -> Result<MaintenanceReport, StoreError> {
        let ids = self.ctx.inflight.ids();
        let mut r = MaintenanceReport::default();
        if ids.is_empty() {
            return Ok(r);
        }
        let kept = self
            .ctx
            .store
            .job_heartbeat(&self.ctx.config.owner, &ids, self.ctx.config.lease)
            .await?;
        r.heartbeated = kept.len();
        r.lost = ids.len().saturating_sub(kept.len());
        if r.lost > 0 {
            tracing::debug!(lost = r.lost, "some leases were no longer ours");
        }
        Ok(r)
    }

    /// Rescue jobs whose lease expired.
    pub async fn rescue_once(&self) -> Result<MaintenanceReport, StoreError> {
        let ids = self
            .ctx
            .store
            .job_rescue_expired(self.ctx.clock.now())
            .await?;
        if !ids.is_empty() {
            tracing::info!(count = ids.len(), ids = ?ids, "rescued jobs with expired leases");
            crate::telemetry::metrics::lease_rescues(ids.len());
        }
        Ok(MaintenanceReport {
            rescued: ids.len(),
            ..Default::default()
        })
    }

    /// Reclaim the bookkeeping's dead row versions (`Store::reclaim_bookkeeping`).
    pub async fn reclaim_once(&self) -> Result<MaintenanceReport, StoreError> {
        self.ctx.store.reclaim_bookkeeping().await?;
        Ok(MaintenanceReport::default())
    }

    /// Re-probe blocked instances that are due.
    pub async fn reprobe_once(&self) -> Result<MaintenanceReport, StoreError> {
        let now = self.ctx.clock.now();
        let due = self.ctx.store.instance_list_reprobe(now).await?;
        let mut r = MaintenanceReport::default();
        for inst in due {
            r.probed += 1;
            self.ctx.gate.wait(&inst.key.region).await;
            let tasks = match list_recent(
                &self.ctx.client,
                &inst.key,
                None,
                now,
                self.ctx.config.recent_window,
            )
            .await
            {
                Ok(t) => t,
                Err(e) => {
                    if e.kind == DbsErrorKind::Throttled {
                        self.ctx.gate.throttled(
                            &inst.key.region,
                            e.retry_after.unwrap_or(Duration::from_secs(1)),
                        );
                    }
                    tracing::warn!(instance = %inst.key, error = %e, "re-probe failed; next period");
                    self.block_again(&inst, inst.blocking_task_id.clone(), None)
                        .await?;
                    r.still_blocked += 1;
                    continue;
                }
            };
            match find_blocker(&tasks) {
                None => {
                    if self.ctx.store.instance_unblock(&inst.key).await? {
                        tracing::info!(instance = %inst.key, "instance unblocked: no task holds it any more");
                        r.unblocked += 1;
                    }
                }
                Some(t) => {
                    let why = format!("re-probe: task {} is {}", t.task_id, t.status);
                    self.block_again(&inst, Some(t.task_id.clone()), Some(why))
                        .await?;
                    r.still_blocked += 1;
                }
            }
        }
        Ok(r)
    }

    async fn block_again(
        &self,
        inst: &crate::model::Instance,
        task_id: Option<String>,
        why: Option<String>,
    ) -> Result<(), StoreError> {
        let until = self.ctx.clock.now() + chrono_dur(self.ctx.config.blocked_reprobe);
        self.ctx
            .store
            .instance_block(&BlockInstance {
                key: inst.key.clone(),
                task_id,
                reason: why
                    .or_else(|| inst.blocked_reason.clone())
                    .unwrap_or_else(|| "blocked".into()),
                until: Some(until),
            })
            .await
    }

    /// Delete terminal jobs older than the retention period (if one is set).
    pub async fn prune_once(&self) -> Result<MaintenanceReport, StoreError> {
        let Some(keep) = self.ctx.config.retention else {
            return Ok(MaintenanceReport::default());
        };
        let before = self.ctx.clock.now() - chrono_dur(keep);
        let pruned = self.ctx.store.job_prune(before).await?;
        if pruned > 0 {
            tracing::info!(pruned, %before, "pruned finished jobs");
        }
        Ok(MaintenanceReport {
            pruned,
            ..Default::default()
        })
    }

    /// Every step once, in order (for tests and `serve` start-up).
    pub async fn run_once(&self) -> Result<MaintenanceReport, StoreError> {
        let h = self.heartbeat_once().await?;
        let r = self.rescue_once().await?;
        let p = self.reprobe_once().await?;
        let x = self.prune_once().await?;
        self.reclaim_once().await?;
        Ok(MaintenanceReport {
            heartbeated: h.heartbeated,
            lost: h.lost,
            rescued: r.rescued,
            probed: p.probed,
            unblocked: p.unblocked,
            still_blocked: p.still_blocked,
            pruned: x.pruned,
        })
    }

    /// The loop; stops at once on shutdown (in-flight leases are released by their owners).
    pub async fn run(&self, shutdown: CancellationToken) {
        let c = &self.ctx.config;
        let mut heartbeat = tokio::time::interval(c.heartbeat);
        let mut rescue = tokio::time::interval(c.rescue_interval);
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        for i in [&mut heartbeat, &mut rescue, &mut prune] {
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            let step = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = heartbeat.tick() => self.heartbeat_once().await,
                _ = rescue.tick() => async {
                    self.rescue_once().await?;
                    self.reprobe_once().await?;
                    self.reclaim_once().await
                }
                .await,
                _ = prune.tick() => self.prune_once().await,
            };
            if let Err(e) = step {
                tracing::warn!(error = %e, "maintenance step failed; next tick");
            }
        }
        tracing::info!("maintenance stopped");
    }
}
