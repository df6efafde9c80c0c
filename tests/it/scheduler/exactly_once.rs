//! Exactly once per (schedule, fire time, instance): concurrent schedulers on one database
//! never enqueue a fire twice, and a scheduler dying mid-fire loses nothing.

use super::*;
use crate::helpers::db::{both_backends, Backend};
use dbs_archiver::model::InstanceKey;
use dbs_archiver::scheduler::model::{OverlapPolicy, Targets};
use dbs_archiver::store::schedules::{ScheduleAdvance, ScheduleClaim};
use dbs_archiver::store::NewJob;
use std::collections::HashSet;

fn three_instances() -> Targets {
    Targets::list(&[
        InstanceKey::new("cn-hangzhou", "rm-a"),
        InstanceKey::new("cn-hangzhou", "rm-b"),
        InstanceKey::new("cn-beijing", "rm-c"),
    ])
}

/// Three schedulers, each with its own store handle (as three `serve` processes would
/// have), tick together for an hour of 5-minute fires over 40 schedules × 3 instances.
async fn three_schedulers_race(db: TestDb) {
    let t0 = utc("2026-06-01T00:00:00Z");
    let clock = ManualClock::new(t0);
    for i in 0..40 {
        let mut spec = pitr_spec(&format!("race-{i}"), "*/5 * * * *", "UTC", "x");
        spec.targets = three_instances();
        spec.overlap = OverlapPolicy::Queue;
        create(&db, spec, t0).await;
    }
    let handles = [
        db.store.clone(),
        db.connect_again().await,
        db.connect_again().await,
    ];
    let schedulers: Vec<_> = handles
        .iter()
        .enumerate()
        .map(|(i, store)| {
            // Small batches, so the three interleave claim by claim.
            let config = Config {
                batch_size: 5,
                ..config(&format!("proc-{i}"))
            };
            Scheduler::new(store.clone(), Arc::new(clock.clone()), config)
        })
        .collect();
    let mut created = 0;
    let mut per_process = [0usize; 3];
    for tick in 1..=12 {
        let now = t0 + chrono::Duration::minutes(5 * tick) + chrono::Duration::milliseconds(300);
        clock.set(now);
        let (a, b, c) = tokio::join!(
            schedulers[0].run_once(now),
            schedulers[1].run_once(now),
            schedulers[2].run_once(now)
        );
        for (i, r) in [a, b, c].into_iter().enumerate() {
            let r = r.expect("no scheduler errors");
            assert_eq!(r.errors, 0);
            created += r.jobs_created;
            per_process[i] += r.jobs_created;
        }
    }
    let expected = 40 * 3 * 12;
    assert_eq!(created, expected, "created across processes");
    let total = db.query_i64("SELECT count(*) FROM jobs").await;
    assert_eq!(
        total, expected as i64,
        "one job per (fire, instance), none lost"
    );
    let distinct = db
        .query_i64(
            "SELECT count(*) FROM (SELECT DISTINCT schedule_id, fire_time, region, instance \
             FROM jobs) d",
        )
        .await;
    assert_eq!(distinct, expected as i64);
    if db.backend == Backend::Postgres {
        // SKIP LOCKED spreads the claims: more than one process did work.
        assert!(
            per_process.iter().filter(|n| **n > 0).count() >= 2,
            "work split: {per_process:?}"
        );
    }
    // Every schedule's cursor is at the last fire.
    for s in db.store.schedule_list().await.unwrap() {
        assert_eq!(s.last_fire_time, Some(t0 + chrono::Duration::minutes(60)));
    }
}

/// Process A claims a due schedule, enqueues one of three jobs and dies. Process B cannot
/// take the schedule while A's lease lasts; after it expires B finishes the fire: two new
/// jobs, one duplicate, no loss. A's late cursor advance is fenced off.
async fn dying_scheduler_loses_nothing(db: TestDb) {
    let t0 = utc("2026-06-01T00:00:00Z");
    let clock = ManualClock::new(t0);
    let mut spec = pitr_spec("crashy", "0 * * * *", "UTC", "x");
    spec.targets = three_instances();
    let sched = create(&db, spec.clone(), t0).await;
    let fire = utc("2026-06-01T01:00:00Z");
    let now = fire + chrono::Duration::seconds(1);
    clock.set(now);

    let claimed = db
        .store
        .schedule_claim_due(&ScheduleClaim {
            owner: "proc-a".into(),
            limit: 10,
            lease: Duration::from_secs(30),
            now,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let claimed = claimed.into_iter().next().unwrap();
    // A got as far as one instance.
    let mut req = dbs_archiver::model::DownloadRequest::example_full("cn-hangzhou", "rm-a", "");
    req.bak_set_type = dbs_archiver::model::BakSetType::Pitr;
    req.bak_set_id = None;
    req.download_point_in_time = Some(fire.timestamp_millis());
    let mut job = NewJob::new(req, dbs_archiver::model::JobSource::Schedule);
    job.schedule_id = Some(sched.id);
    job.fire_time = Some(fire);
    assert!(db.store.job_enqueue(job).await.unwrap().created);
    // …and died.

    let b = scheduler(&db.connect_again().await, &clock, "proc-b");
    let r = b.run_once(now).await.unwrap();
    assert_eq!(r.schedules, 0, "A's lease still holds");
    clock.set(now + chrono::Duration::seconds(31));
    let r = b.run_once(clock.now()).await.unwrap();
    assert_eq!((r.jobs_created, r.duplicates), (2, 1));
    let jobs = jobs_of(&db.store, sched.id).await;
    let keys: HashSet<_> = jobs.iter().map(|j| j.instance_key()).collect();
    assert_eq!(jobs.len(), 3);
    assert_eq!(keys.len(), 3);
    assert!(jobs.iter().all(|j| j.fire_time == Some(fire)));

    // A wakes up and tries to advance from the cursor it saw: fenced off.
    let stale = db
        .store
        .schedule_advance(&ScheduleAdvance {
            id: claimed.id,
            expected_last_fire_time: claimed.last_fire_time,
            expected_version: claimed.version,
            last_fire_time: fire,
            next_fire_time: Some(fire + chrono::Duration::hours(1)),
            now: clock.now(),
        })
        .await
        .unwrap();
    assert!(!stale);
    // Running again at the same instant fires nothing more.
    let r = b.run_once(clock.now()).await.unwrap();
    assert_eq!((r.schedules, r.jobs_created), (0, 0));
}

/// A spec change between claim and advance fences the advance (version), so the fire is
/// recomputed with the new spec rather than the cursor skipping ahead on the old one.
async fn spec_change_fences_the_advance(db: TestDb) {
    let t0 = utc("2026-06-01T00:00:00Z");
    let sched = create(&db, pitr_spec("fenced", "0 * * * *", "UTC", "rm-1"), t0).await;
    let now = utc("2026-06-01T01:00:01Z");
    let claimed = db
        .store
        .schedule_claim_due(&ScheduleClaim {
            owner: "a".into(),
            limit: 1,
            lease: Duration::from_secs(30),
            now,
        })
        .await
        .unwrap()
        .remove(0);
    let mut spec = sched.spec.clone();
    spec.priority = 7;
    ops::update(db.store.as_ref(), "fenced", spec, now)
        .await
        .unwrap();
    let ok = db
        .store
        .schedule_advance(&ScheduleAdvance {
            id: claimed.id,
            expected_last_fire_time: claimed.last_fire_time,
            expected_version: claimed.version,
            last_fire_time: utc("2026-06-01T01:00:00Z"),
            next_fire_time: Some(utc("2026-06-01T02:00:00Z")),
            now,
        })
        .await
        .unwrap();
    assert!(!ok, "version changed");
}

/// Set-based fire (issue 11): 200 schedules × 2 instances all due at the same minute, two
/// schedulers racing with small batches, and a crashed earlier pass that had already
/// enqueued the jobs of 10 schedules. Exactly one job and one history row per (schedule,
/// fire time, instance); the pre-existing jobs come back as duplicates, not copies.
async fn many_due_at_once_two_schedulers(db: TestDb) {
    let t0 = utc("2026-06-01T00:00:00Z");
    let fire = utc("2026-06-01T01:00:00Z");
    let clock = ManualClock::new(t0);
    let targets = Targets::list(&[
        InstanceKey::new("cn-hangzhou", "rm-a"),
        InstanceKey::new("cn-beijing", "rm-b"),
    ]);
    let mut schedules = Vec::new();
    for i in 0..200 {
        let mut spec = pitr_spec(&format!("many-{i}"), "0 * * * *", "UTC", "x");
        spec.targets = targets.clone();
        schedules.push(create(&db, spec, t0).await);
    }
    // The crashed pass: the jobs of the first 10 schedules exist, their cursors did not move.
    let early: Vec<NewJob> = schedules[..10]
        .iter()
        .flat_map(|s| {
            targets
                .fixed_keys()
                .unwrap()
                .into_iter()
                .map(move |k| (s.id, k))
        })
        .map(|(id, k)| {
            let mut req =
                dbs_archiver::model::DownloadRequest::example_full(&k.region, &k.instance, "");
            req.bak_set_type = dbs_archiver::model::BakSetType::Pitr;
            req.bak_set_id = None;
            req.download_point_in_time = Some(fire.timestamp_millis());
            let mut job = NewJob::new(req, dbs_archiver::model::JobSource::Schedule);
            job.schedule_id = Some(id);
            job.fire_time = Some(fire);
            job
        })
        .collect();
    let first = db.store.job_enqueue_many(&early).await.unwrap();
    assert!(first.iter().all(|e| e.created));
    // A repeat of the same batch creates nothing and returns the same jobs, in order.
    let again = db.store.job_enqueue_many(&early).await.unwrap();
    assert!(again.iter().all(|e| !e.created));
    let ids = |v: &[dbs_archiver::store::Enqueued]| v.iter().map(|e| e.job.id).collect::<Vec<_>>();
    assert_eq!(ids(&first), ids(&again));

    let now = fire + chrono::Duration::milliseconds(300);
    clock.set(now);
    let a = Scheduler::new(
        db.store.clone(),
        Arc::new(clock.clone()),
        Config {
            batch_size: 16,
            ..config("proc-a")
        },
    );
    let b = Scheduler::new(
        db.connect_again().await,
        Arc::new(clock.clone()),
        Config {
            batch_size: 16,
            ..config("proc-b")
        },
    );
    let (ra, rb) = tokio::join!(a.run_once(now), b.run_once(now));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra.errors, rb.errors), (0, 0));
    assert_eq!(
        ra.schedules + rb.schedules,
        200,
        "each schedule claimed once"
    );
    assert_eq!(ra.fires + rb.fires, 200);
    assert_eq!(ra.jobs_created + rb.jobs_created, 190 * 2);
    assert_eq!(ra.duplicates + rb.duplicates, 10 * 2);
    let expected = 200 * 2;
    assert_eq!(db.query_i64("SELECT count(*) FROM jobs").await, expected);
    let distinct = db
        .query_i64(
            "SELECT count(*) FROM (SELECT DISTINCT schedule_id, fire_time, region, instance \
             FROM jobs) d",
        )
        .await;
    assert_eq!(distinct, expected);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM schedule_runs WHERE outcome = 'enqueued'")
            .await,
        expected
    );
    for s in db.store.schedule_list().await.unwrap() {
        assert_eq!(s.last_fire_time, Some(fire), "{}", s.spec.name);
    }
    // Nothing is due any more.
    let (ra, rb) = tokio::join!(a.run_once(now), b.run_once(now));
    assert_eq!(ra.unwrap().fires + rb.unwrap().fires, 0);
}

/// The end of a scheduler batch (history rows and cursor advances) is one store call in one
/// transaction; each answer comes back in input order, as the two separate calls gave it.
async fn batch_end_records_and_advances_in_one_call(db: TestDb) {
    use dbs_archiver::model::schedule::RunOutcome;
    use dbs_archiver::store::schedules::NewScheduleRun;
    let t0 = utc("2026-06-01T00:00:00Z");
    let now = utc("2026-06-01T01:00:01Z");
    let fire = utc("2026-06-01T01:00:00Z");
    let a = create(&db, pitr_spec("end-a", "0 * * * *", "UTC", "rm-1"), t0).await;
    let b = create(&db, pitr_spec("end-b", "0 * * * *", "UTC", "rm-2"), t0).await;
    let run = |id, instance: &str| NewScheduleRun {
        schedule_id: id,
        fire_time: fire,
        instance: Some(InstanceKey::new("cn-hangzhou", instance)),
        outcome: RunOutcome::Enqueued,
        reason: None,
        detail: None,
        job_id: None,
        now,
    };
    let advance = |s: &dbs_archiver::scheduler::model::Schedule, version| ScheduleAdvance {
        id: s.id,
        expected_last_fire_time: s.last_fire_time,
        expected_version: version,
        last_fire_time: fire,
        next_fire_time: Some(utc("2026-06-01T02:00:00Z")),
        now,
    };
    assert!(db
        .store
        .schedule_run_record(&run(a.id, "rm-1"))
        .await
        .unwrap());
    let (new, moved) = db
        .store
        .schedule_record_and_advance(
            &[run(a.id, "rm-1"), run(b.id, "rm-2")],
            &[advance(&a, a.version + 1), advance(&b, b.version)],
        )
        .await
        .unwrap();
    assert_eq!(new, vec![false, true], "the first row existed already");
    assert_eq!(
        moved,
        vec![false, true],
        "a's fence expected another version"
    );
    let b_now = db.store.schedule_get(b.id).await.unwrap().unwrap();
    assert_eq!(b_now.last_fire_time, Some(fire));
    assert_eq!(db.store.schedule_run_list(b.id, 10).await.unwrap().len(), 1);
    let (new, moved) = db
        .store
        .schedule_record_and_advance(&[], &[])
        .await
        .unwrap();
    assert!(new.is_empty() && moved.is_empty());
}

both_backends!(
    batch_end_records_and_advances_in_one_call,
    many_due_at_once_two_schedulers,
    three_schedulers_race,
    dying_scheduler_loses_nothing,
    spec_change_fences_the_advance
);
