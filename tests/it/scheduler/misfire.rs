//! Each misfire policy after a simulated 3-hour outage: an hourly schedule fired at 00:00,
//! then no scheduler ran until 03:20 (01:00, 02:00 and 03:00 were missed).

use super::*;
use crate::helpers::db::both_backends;
use dbs_archiver::scheduler::model::{MisfirePolicy, OverlapPolicy, RunOutcome, SkipReason};

struct Outcome {
    fires: Vec<DateTime<Utc>>,
    runs: Vec<dbs_archiver::scheduler::model::ScheduleRun>,
    misfires: u64,
    next: Option<DateTime<Utc>>,
}

async fn outage(db: &TestDb, policy: MisfirePolicy, max: Option<u32>) -> Outcome {
    let clock = ManualClock::new(utc("2026-01-01T23:30:00Z") - chrono::Duration::days(1));
    let mut spec = pitr_spec(
        &format!("hourly-{policy}-{max:?}"),
        "0 * * * *",
        "UTC",
        "rm-1",
    );
    spec.name = spec.name.replace(['(', ')'], "").replace("Some", "max");
    spec.misfire = policy;
    spec.misfire_max = max;
    spec.overlap = OverlapPolicy::Queue;
    let sched = create(db, spec, clock.now()).await;
    let s = scheduler(&db.store, &clock, "misfire");
    clock.set(utc("2026-01-01T00:00:02Z"));
    let r = s.run_once(clock.now()).await.unwrap();
    assert_eq!((r.jobs_created, r.misfires), (1, 0), "00:00 fires on time");
    // Outage: nothing runs until 03:20.
    clock.set(utc("2026-01-01T03:20:00Z"));
    let r = s.run_once(clock.now()).await.unwrap();
    let fires = jobs_of(&db.store, sched.id)
        .await
        .iter()
        .skip(1)
        .map(|j| j.fire_time.unwrap())
        .collect();
    let runs = db.store.schedule_run_list(sched.id, 50).await.unwrap();
    let next = db
        .store
        .schedule_get(sched.id)
        .await
        .unwrap()
        .unwrap()
        .next_fire_time;
    Outcome {
        fires,
        runs,
        misfires: r.misfires,
        next,
    }
}

fn skipped(o: &Outcome) -> Vec<(SkipReason, String)> {
    o.runs
        .iter()
        .filter(|r| r.outcome == RunOutcome::Skipped)
        .map(|r| (r.reason.unwrap(), r.detail.clone().unwrap_or_default()))
        .collect()
}

async fn misfire_skip(db: TestDb) {
    let o = outage(&db, MisfirePolicy::Skip, None).await;
    assert!(
        o.fires.is_empty(),
        "skip fires nothing missed: {:?}",
        o.fires
    );
    assert_eq!(o.misfires, 3);
    let s = skipped(&o);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].0, SkipReason::Misfire);
    assert!(s[0].1.starts_with("3 fire(s)"), "{}", s[0].1);
    assert_eq!(o.next, Some(utc("2026-01-01T04:00:00Z")));
}

async fn misfire_fire_once(db: TestDb) {
    let o = outage(&db, MisfirePolicy::FireOnce, None).await;
    assert_eq!(o.fires, vec![utc("2026-01-01T03:00:00Z")]);
    assert_eq!(o.misfires, 3);
    let s = skipped(&o);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, SkipReason::Misfire);
    assert!(s[0].1.starts_with("2 fire(s)"), "{}", s[0].1);
    assert_eq!(o.next, Some(utc("2026-01-01T04:00:00Z")));
}

async fn misfire_fire_all(db: TestDb) {
    let o = outage(&db, MisfirePolicy::FireAll, None).await;
    assert_eq!(
        o.fires,
        vec![
            utc("2026-01-01T01:00:00Z"),
            utc("2026-01-01T02:00:00Z"),
            utc("2026-01-01T03:00:00Z")
        ]
    );
    assert!(skipped(&o).is_empty());
    assert_eq!(o.next, Some(utc("2026-01-01T04:00:00Z")));
}

async fn misfire_fire_all_bounded(db: TestDb) {
    let o = outage(&db, MisfirePolicy::FireAll, Some(2)).await;
    assert_eq!(
        o.fires,
        vec![utc("2026-01-01T02:00:00Z"), utc("2026-01-01T03:00:00Z")],
        "the most recent ones within the bound"
    );
    let s = skipped(&o);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, SkipReason::MisfireBound);
    assert!(s[0].1.starts_with("1 fire(s)"), "{}", s[0].1);
}

both_backends!(
    misfire_skip,
    misfire_fire_once,
    misfire_fire_all,
    misfire_fire_all_bounded
);
