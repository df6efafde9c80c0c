//! Overlap policy: `skip` records the skipped fire with its reason while the previous job
//! of that schedule and instance is unfinished; `queue` enqueues anyway.

use super::*;
use crate::helpers::db::both_backends;
use dbs_archiver::scheduler::model::{OverlapPolicy, RunOutcome, SkipReason};

async fn overlap_skip_is_recorded(db: TestDb) {
    let t0 = utc("2026-02-01T00:00:00Z");
    let clock = ManualClock::new(t0);
    let sched = create(&db, pitr_spec("ov-skip", "0 * * * *", "UTC", "rm-1"), t0).await;
    assert_eq!(
        sched.spec.overlap,
        OverlapPolicy::Skip,
        "skip is the default"
    );
    let s = scheduler(&db.store, &clock, "ov");
    clock.set(utc("2026-02-01T01:00:01Z"));
    assert_eq!(s.run_once(clock.now()).await.unwrap().jobs_created, 1);
    let first = jobs_of(&db.store, sched.id).await.remove(0);

    // 02:00: the 01:00 job is still queued ⇒ skipped, recorded with reason and job.
    clock.set(utc("2026-02-01T02:00:01Z"));
    let r = s.run_once(clock.now()).await.unwrap();
    assert_eq!((r.jobs_created, r.skipped), (0, 1));
    let runs = db.store.schedule_run_list(sched.id, 10).await.unwrap();
    let skip = runs
        .iter()
        .find(|r| r.outcome == RunOutcome::Skipped)
        .expect("skip recorded");
    assert_eq!(skip.reason, Some(SkipReason::Overlap));
    assert_eq!(skip.fire_time, utc("2026-02-01T02:00:00Z"));
    assert_eq!(skip.job_id, Some(first.id));
    assert_eq!(skip.instance.as_ref().unwrap().instance, "rm-1");
    assert!(skip.detail.as_deref().unwrap().contains("unfinished"));

    // Once the earlier job is finished (cancelled here), the next fire goes through.
    db.store.job_cancel(first.id, "test").await.unwrap();
    clock.set(utc("2026-02-01T03:00:01Z"));
    assert_eq!(s.run_once(clock.now()).await.unwrap().jobs_created, 1);
    let fires: Vec<_> = jobs_of(&db.store, sched.id)
        .await
        .iter()
        .map(|j| j.fire_time.unwrap())
        .collect();
    assert_eq!(
        fires,
        vec![utc("2026-02-01T01:00:00Z"), utc("2026-02-01T03:00:00Z")]
    );

    // Deleting the schedule deletes its fire history (SQLite: the foreign key's cascade;
    // PostgreSQL: the delete trigger of migration 0013).
    let count = format!(
        "SELECT count(*) FROM schedule_runs WHERE schedule_id = {}",
        sched.id
    );
    assert!(db.query_i64(&count).await >= 3);
    dbs_archiver::scheduler::ops::delete(db.store.as_ref(), "ov-skip")
        .await
        .unwrap();
    assert_eq!(db.query_i64(&count).await, 0);
}

async fn overlap_queue_enqueues_anyway(db: TestDb) {
    let t0 = utc("2026-02-01T00:00:00Z");
    let clock = ManualClock::new(t0);
    let mut spec = pitr_spec("ov-queue", "0 * * * *", "UTC", "rm-1");
    spec.overlap = OverlapPolicy::Queue;
    let sched = create(&db, spec, t0).await;
    let s = scheduler(&db.store, &clock, "ov");
    for h in 1..=3 {
        clock.set(t0 + chrono::Duration::hours(h) + chrono::Duration::seconds(1));
        assert_eq!(s.run_once(clock.now()).await.unwrap().jobs_created, 1);
    }
    assert_eq!(jobs_of(&db.store, sched.id).await.len(), 3);
}

both_backends!(overlap_skip_is_recorded, overlap_queue_enqueues_anyway);
