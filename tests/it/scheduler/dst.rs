//! DST through the whole path (cron → cursor → jobs) in a non-UTC zone: a 02:30 daily
//! schedule fires exactly once per local day across both transitions.

use super::*;
use crate::helpers::db::both_backends;
use chrono::Duration as ChronoDuration;
use dbs_archiver::model::BakSetType;

/// Step the clock to each stored next fire (+1 s) and run the scheduler, until `end`.
async fn drive(db: &TestDb, schedule_id: i64, clock: &ManualClock, end: DateTime<Utc>) {
    let s = scheduler(&db.store, clock, "dst");
    loop {
        let sched = db.store.schedule_get(schedule_id).await.unwrap().unwrap();
        let next = sched.next_fire_time.expect("fires forever");
        if next > end {
            return;
        }
        clock.set(next + ChronoDuration::seconds(1));
        let r = s.run_once(clock.now()).await.unwrap();
        assert_eq!(r.misfires, 0, "stepping to each fire is never late");
    }
}

async fn berlin_0230_across_both_transitions(db: TestDb) {
    for (created, end, expected) in [
        (
            "2026-03-27T12:00:00Z",
            "2026-03-31T12:00:00Z",
            [
                "2026-03-28T01:30:00Z", // 02:30 CET
                "2026-03-29T01:00:00Z", // 02:30 does not exist: 03:00 CEST, the gap's end
                "2026-03-30T00:30:00Z", // 02:30 CEST
                "2026-03-31T00:30:00Z",
            ],
        ),
        (
            "2026-10-23T12:00:00Z",
            "2026-10-27T12:00:00Z",
            [
                "2026-10-24T00:30:00Z", // 02:30 CEST
                "2026-10-25T00:30:00Z", // 02:30 happens twice: the first (CEST) only
                "2026-10-26T01:30:00Z", // 02:30 CET
                "2026-10-27T01:30:00Z",
            ],
        ),
    ] {
        let clock = ManualClock::new(utc(created));
        let mut spec = pitr_spec(
            &format!("berlin-{}", &created[..7]),
            "30 2 * * *",
            "Europe/Berlin",
            "rm-1",
        );
        spec.overlap = dbs_archiver::scheduler::model::OverlapPolicy::Queue;
        let sched = create(&db, spec, clock.now()).await;
        drive(&db, sched.id, &clock, utc(end)).await;
        let jobs = jobs_of(&db.store, sched.id).await;
        let fires: Vec<_> = jobs.iter().map(|j| j.fire_time.unwrap()).collect();
        let want: Vec<_> = expected.iter().map(|s| utc(s)).collect();
        assert_eq!(fires, want, "{:?}", db.backend);
        for j in &jobs {
            assert_eq!(j.request.bak_set_type, BakSetType::Pitr);
            assert_eq!(
                j.request.download_point_in_time,
                Some(j.fire_time.unwrap().timestamp_millis()),
                "pitr at the fire time"
            );
        }
        ops::delete(db.store.as_ref(), &sched.spec.name)
            .await
            .unwrap();
    }
}

async fn new_york_hourly_across_spring_forward(db: TestDb) {
    // An hourly schedule at :30 — the 02:30 of 2026-03-08 does not exist and fires at
    // 03:00 EDT, then 03:30 EDT follows as usual.
    let clock = ManualClock::new(utc("2026-03-08T05:00:00Z")); // 00:00 EST
    let mut spec = pitr_spec("ny-hourly", "30 * * * *", "America/New_York", "rm-1");
    spec.overlap = dbs_archiver::scheduler::model::OverlapPolicy::Queue;
    let sched = create(&db, spec, clock.now()).await;
    drive(&db, sched.id, &clock, utc("2026-03-08T08:00:00Z")).await;
    let fires: Vec<_> = jobs_of(&db.store, sched.id)
        .await
        .iter()
        .map(|j| j.fire_time.unwrap())
        .collect();
    assert_eq!(
        fires,
        vec![
            utc("2026-03-08T05:30:00Z"), // 00:30 EST
            utc("2026-03-08T06:30:00Z"), // 01:30 EST
            utc("2026-03-08T07:00:00Z"), // 02:30 → 03:00 EDT
            utc("2026-03-08T07:30:00Z"), // 03:30 EDT
        ]
    );
}

both_backends!(
    berlin_0230_across_both_transitions,
    new_york_hourly_across_spring_forward
);
