//! Fire lag with 1,000 schedules due in the same minute. Not a timed assertion (speed is
//! measured, not tested): it asserts that all 1,000 fire exactly once and prints p50/p99
//! of due time → job enqueued, per backend. Run with `--nocapture` to see the figures.

use super::*;
use crate::helpers::db::both_backends;
use dbs_archiver::scheduler::model::OverlapPolicy;
use std::time::Instant;

/// Real elapsed time, starting at a chosen instant: the scheduler "wakes" exactly at the
/// due time, so the measured lag is the scheduler's own work.
#[derive(Debug)]
struct FromInstant {
    start: Instant,
    at: DateTime<Utc>,
}

impl Clock for FromInstant {
    fn now(&self) -> DateTime<Utc> {
        self.at + chrono::Duration::from_std(self.start.elapsed()).unwrap()
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn fire_lag_1000_schedules_same_minute(db: TestDb) {
    let t0 = utc("2026-07-01T00:00:30Z");
    let due = utc("2026-07-01T00:01:00Z");
    for i in 0..1000 {
        let mut spec = pitr_spec(
            &format!("b{i:04}"),
            "* * * * *",
            "UTC",
            &format!("rm-b{i:04}"),
        );
        spec.overlap = OverlapPolicy::Queue;
        create(&db, spec, t0).await;
    }
    let clock = Arc::new(FromInstant {
        start: Instant::now(),
        at: due,
    });
    let s = Scheduler::new(db.store.clone(), clock.clone(), config("bench"));
    let started = Instant::now();
    let r = s.run_once(due).await.unwrap();
    let wall = started.elapsed();
    assert_eq!(r.jobs_created, 1000);
    assert_eq!(r.fires, 1000);
    assert_eq!(db.query_i64("SELECT count(*) FROM jobs").await, 1000);
    let mut lags = r.lags.clone();
    lags.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "[scheduler bench] backend={:?} schedules=1000 (debug build) fire lag p50={:.3}s \
         p99={:.3}s max={:.3}s; run_once wall={:.3}s ({:.0} fires/s)",
        db.backend,
        percentile(&lags, 0.50),
        percentile(&lags, 0.99),
        lags.last().unwrap(),
        wall.as_secs_f64(),
        1000.0 / wall.as_secs_f64()
    );
}

both_backends!(fire_lag_1000_schedules_same_minute);
