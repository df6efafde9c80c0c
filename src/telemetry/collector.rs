//! Gauges that only the database knows — jobs per state, the age of the backlog, blocked
//! instances — and the jobs enqueued by plain SQL `INSERT` (or by a separate `dbs-archiver
//! enqueue` process), which never pass through this process's code.
//!
//! One small service per `serve` process: every `interval` it reads a
//! [`QueueSnapshot`](crate::store::QueueSnapshot) and sets the gauges. Enqueues by other
//! processes are counted with an id watermark: jobs with an id above the highest id seen in
//! the previous round, by source. With several `serve` processes on one PostgreSQL
//! database, each reports the same database-derived values: aggregate them with `max`, not
//! `sum` (docs/metrics.md).

use super::metrics as m;
use crate::clock::DynClock;
use crate::model::{JobId, JobState};
use crate::store::{DynStore, QueueSnapshot, StoreError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the collector reads the database unless configured otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The collector service.
pub struct Collector {
    store: DynStore,
    clock: DynClock,
    interval: Duration,
    /// Highest job id counted so far; `None` until the first round sets the baseline.
    watermark: Option<JobId>,
    /// The last full read: the store's change stamp then, the snapshot, and the rounds
    /// that reused it since.
    last: Option<LastRead>,
}

/// What a round that finds the database unchanged publishes again.
struct LastRead {
    stamp: String,
    snapshot: QueueSnapshot,
    schedules: Vec<(String, f64)>,
    reused: u32,
}

/// Rounds that may reuse a read whose stamp has not moved before one reads anyway (a
/// stamp can miss a change: see [`crate::store::Store::change_stamp`]); at the default
/// interval the gauges are then at most a minute behind such a change.
pub const REUSE_AT_MOST: u32 = 5;

impl Collector {
    pub fn new(store: DynStore, clock: DynClock, interval: Duration) -> Self {
        Self {
            store,
            clock,
            interval,
            watermark: None,
            last: None,
        }
    }

    /// One round: read the snapshot and publish it. The first round only sets the id
    /// baseline (jobs that existed before this process started are not "enqueued" now).
    /// When the store's change stamp has not moved since the last read, the last read is
    /// published again (with what is due recomputed for now) instead of read: the counts
    /// read the whole jobs table, and an idle service's database does not change.
    pub async fn run_once(&mut self) -> Result<QueueSnapshot, StoreError> {
        let now = self.clock.now();
        let stamp = self.store.change_stamp().await?;
        if let (Some(stamp), Some(last)) = (&stamp, &mut self.last) {
            if *stamp == last.stamp && last.reused < REUSE_AT_MOST {
                last.reused += 1;
                let mut snap = last.snapshot.clone();
                snap.new_by_source.clear();
                let schedules = last.schedules.clone();
                self.publish(now, &snap, &schedules);
                return Ok(snap);
            }
        }
        if self.watermark.is_none() {
            // First round: cloud series for every region we will call, at 0.
            let regions: std::collections::BTreeSet<String> = self
                .store
                .instance_list()
                .await?
                .into_iter()
                .map(|i| i.key.region)
                .collect();
            for region in &regions {
                m::zero_cloud_series(region);
            }
        }
        let after = self.watermark.unwrap_or(JobId::MAX);
        let snap = self.store.queue_snapshot(after).await?;
        let schedules: Vec<(String, f64)> = self
            .store
            .schedule_list()
            .await?
            .into_iter()
            .map(|s| {
                let next = match (s.enabled, s.next_fire_time) {
                    (true, Some(t)) => t.timestamp() as f64,
                    _ => 0.0,
                };
                (s.spec.name, next)
            })
            .collect();
        self.publish(now, &snap, &schedules);
        // Ids only grow; a pruned or empty table never moves the watermark back.
        self.watermark = Some(self.watermark.unwrap_or(0).max(snap.max_job_id));
        self.last = stamp.map(|stamp| LastRead {
            stamp,
            snapshot: snap.clone(),
            schedules,
            reused: 0,
        });
        Ok(snap)
    }

    /// Set the gauges from a snapshot, and count the enqueues it found.
    fn publish(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        snap: &QueueSnapshot,
        schedules: &[(String, f64)],
    ) {
        for state in JobState::ALL {
            let n = snap
                .by_state
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            ::metrics::gauge!(m::JOBS, "state" => state.as_str()).set(n as f64);
        }
        let age = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
        };
        ::metrics::gauge!(m::OLDEST_QUEUED_AGE).set(age(snap.oldest_due(now)));
        ::metrics::gauge!(m::INSTANCES_BLOCKED).set(snap.blocked_instances as f64);
        ::metrics::gauge!(m::INSTANCE_BLOCKED_MAX_AGE).set(age(snap.oldest_block));
        if self.watermark.is_some() {
            for (source, n) in &snap.new_by_source {
                if m::counted_by_collector(*source) && *n > 0 {
                    ::metrics::counter!(m::JOBS_ENQUEUED, "source" => source.as_str())
                        .increment(*n as u64);
                }
            }
        }
        for (name, next) in schedules {
            ::metrics::gauge!(m::SCHEDULE_NEXT_FIRE, "schedule" => name.clone()).set(*next);
        }
    }

    /// Run until `stop`: a failed round is logged and counted, never fatal. Rounds are
    /// paced by [`pause_after`], so a large table slows the gauges instead of costing CPU.
    pub async fn run(mut self, stop: CancellationToken) {
        let handle = super::metrics_handle();
        loop {
            let started = std::time::Instant::now();
            if let Err(e) = self.run_once().await {
                ::metrics::counter!(m::COLLECTOR_ERRORS).increment(1);
                tracing::warn!(error = %e, "metrics collector could not read the database");
            }
            let took = started.elapsed();
            ::metrics::gauge!(m::COLLECTOR_ROUND).set(took.as_secs_f64());
            // Drain histogram buffers even when nobody scrapes.
            handle.run_upkeep();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(pause_after(self.interval, took)) => {}
            }
        }
    }
}

/// A round may take at most this share of the time (1 %). The counts are aggregates over
/// the whole jobs table, so their cost grows with it: on a 1M-job SQLite file one round
/// took about 0.2 s, which every 10 s is 2 % of a core for a process that has nothing to do.
pub const MAX_DUTY: f64 = 0.01;

/// The pause before the next round: the configured interval, stretched so that reading
/// the database takes at most [`MAX_DUTY`] of the time (a round of 0.2 s waits 20 s).
pub fn pause_after(interval: Duration, took: Duration) -> Duration {
    interval.max(took.div_f64(MAX_DUTY))
}

/// Spawn the collector as one of `serve`'s services.
pub fn spawn(
    store: &DynStore,
    clock: DynClock,
    interval: Duration,
    services: &mut tokio::task::JoinSet<anyhow::Result<()>>,
    stop: &CancellationToken,
) {
    let (store, stop) = (store.clone(), stop.clone());
    services.spawn(crate::supervisor::supervised(
        "collector",
        stop.clone(),
        move || {
            let collector = Collector::new(store.clone(), clock.clone(), interval);
            let stop = stop.clone();
            async move {
                collector.run(stop).await;
                Ok(())
            }
        },
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_round_stretches_the_pause_to_keep_the_duty_at_one_percent() {
        let interval = Duration::from_secs(10);
        // Cheap rounds keep the configured interval.
        assert_eq!(pause_after(interval, Duration::from_millis(5)), interval);
        assert_eq!(pause_after(interval, Duration::from_millis(100)), interval);
        // A 0.2 s round (a million-job SQLite file) waits 20 s.
        assert_eq!(
            pause_after(interval, Duration::from_millis(200)),
            Duration::from_secs(20)
        );
        let took = Duration::from_millis(750);
        let pause = pause_after(interval, took);
        assert!(took.as_secs_f64() / pause.as_secs_f64() <= MAX_DUTY + 1e-12);
    }
}
