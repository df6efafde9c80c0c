//! The library operations the CLI and API share: create/list/get/update/pause/resume/
//! delete/preview/run-now, bad input (field named, nothing stored), target resolution,
//! and the declarative config sync.

use super::*;
use crate::helpers::db::both_backends;
use dbs_archiver::model::{InstanceKey, TargetType};
use dbs_archiver::scheduler::model::{OverlapPolicy, ScheduleOrigin, SkipReason, Targets};
use dbs_archiver::scheduler::{sync, SchedulerError};

fn field_of(e: SchedulerError) -> String {
    match e {
        SchedulerError::Invalid(v) => v.field,
        SchedulerError::Store(dbs_archiver::store::StoreError::Invalid(v)) => v.field,
        other => panic!("expected a validation error, got {other}"),
    }
}

async fn bad_input_names_the_field_and_stores_nothing(db: TestDb) {
    let now = utc("2026-01-01T00:00:00Z");
    let good = pitr_spec("good", "30 2 * * *", "Asia/Shanghai", "rm-1");
    let cases: Vec<(&str, ScheduleSpec)> = vec![
        (
            "cron",
            ScheduleSpec {
                cron: "99 2 * * *".into(),
                ..good.clone()
            },
        ),
        (
            "timezone",
            ScheduleSpec {
                timezone: "Asia/Nowhere".into(),
                ..good.clone()
            },
        ),
        ("template.path", {
            let mut s = good.clone();
            s.template.target_type = TargetType::Oss;
            s.template.bucket = Some("bkt".into());
            s.template.bucket_region = Some("cn-hangzhou".into());
            s.template.path = Some("{instance}/{yyyy}".into());
            s
        }),
        ("template.path", {
            let mut s = good.clone();
            s.template.target_type = TargetType::Oss;
            s.template.bucket = Some("bkt".into());
            s.template.bucket_region = Some("cn-hangzhou".into());
            s.template.path = Some("archive/../other/{instance}".into());
            s
        }),
    ];
    for (field, spec) in cases {
        let e = ops::create(db.store.as_ref(), spec, ScheduleOrigin::Api, now)
            .await
            .unwrap_err();
        assert_eq!(field_of(e), field);
    }
    // Unknown policy, as the API receives it.
    let mut v = serde_json::to_value(&good).unwrap();
    v["misfire"] = "eventually".into();
    assert_eq!(ScheduleSpec::from_json(v).unwrap_err().field, "misfire");
    assert!(
        ops::list(db.store.as_ref()).await.unwrap().is_empty(),
        "nothing stored"
    );

    create(&db, good.clone(), now).await;
    let e = ops::create(db.store.as_ref(), good, ScheduleOrigin::Api, now)
        .await
        .unwrap_err();
    assert_eq!(field_of(e), "name");
    assert_eq!(ops::list(db.store.as_ref()).await.unwrap().len(), 1);
}

async fn lifecycle_pause_resume_update_delete(db: TestDb) {
    let t0 = utc("2026-01-01T00:00:00Z");
    let clock = ManualClock::new(t0);
    let s = scheduler(&db.store, &clock, "ops");
    let mut spec = pitr_spec("life", "0 * * * *", "UTC", "rm-1");
    spec.overlap = OverlapPolicy::Queue;
    let created = create(&db, spec, t0).await;
    assert_eq!(created.next_fire_time, Some(utc("2026-01-01T01:00:00Z")));
    assert_eq!(
        ops::get(db.store.as_ref(), "life").await.unwrap().id,
        created.id
    );
    assert_eq!(
        ops::get(db.store.as_ref(), &created.id.to_string())
            .await
            .unwrap()
            .spec
            .name,
        "life"
    );
    assert!(matches!(
        ops::get(db.store.as_ref(), "nope").await,
        Err(SchedulerError::NotFound(_))
    ));

    // Paused across 01:00 and 02:00: nothing fires, and resuming does not make them up.
    let paused = ops::pause(db.store.as_ref(), "life", t0).await.unwrap();
    assert!(!paused.enabled);
    clock.set(utc("2026-01-01T02:30:00Z"));
    assert_eq!(s.run_once(clock.now()).await.unwrap().schedules, 0);
    let resumed = ops::resume(db.store.as_ref(), "life", clock.now())
        .await
        .unwrap();
    assert!(resumed.enabled);
    assert_eq!(resumed.next_fire_time, Some(utc("2026-01-01T03:00:00Z")));
    assert_eq!(s.run_once(clock.now()).await.unwrap().jobs_created, 0);
    clock.set(utc("2026-01-01T03:00:01Z"));
    assert_eq!(s.run_once(clock.now()).await.unwrap().jobs_created, 1);

    // Update: the cursor stays, the next fire follows the new expression.
    let mut spec = resumed.spec.clone();
    spec.cron = "30 * * * *".into();
    let updated = ops::update(db.store.as_ref(), "life", spec, clock.now())
        .await
        .unwrap();
    assert_eq!(updated.version, resumed.version + 1);
    assert_eq!(updated.last_fire_time, Some(utc("2026-01-01T03:00:00Z")));
    assert_eq!(updated.next_fire_time, Some(utc("2026-01-01T03:30:00Z")));
    let next = ops::next_fires(&updated.spec, clock.now(), 10).unwrap();
    assert_eq!(next.len(), 10);
    assert_eq!(next[0].with_timezone(&Utc), utc("2026-01-01T03:30:00Z"));

    let deleted = ops::delete(db.store.as_ref(), "life").await.unwrap();
    assert_eq!(deleted.id, created.id);
    assert!(ops::list(db.store.as_ref()).await.unwrap().is_empty());
    assert_eq!(jobs_of(&db.store, created.id).await.len(), 1, "jobs stay");
}

async fn preview_is_dry_and_run_now_is_idempotent(db: TestDb) {
    let t0 = utc("2026-11-29T12:00:00Z");
    let clock = ManualClock::new(t0);
    for (inst, tags) in [
        ("rm-prod-1", vec!["nightly"]),
        ("rm-prod-2", vec![]),
        ("rm-dev-1", vec!["nightly"]),
    ] {
        let tags: Vec<String> = tags.into_iter().map(String::from).collect();
        db.store
            .instance_upsert(&InstanceKey::new("cn-hangzhou", inst), Some(&tags))
            .await
            .unwrap();
    }
    let mut spec = pitr_spec("prod", "0 2 * * *", "Asia/Shanghai", "x");
    spec.targets = Targets::prefix("rm-prod-", Some("cn-hangzhou"));
    spec.template.target_type = TargetType::Oss;
    spec.template.bucket = Some("archive".into());
    spec.template.bucket_region = Some("cn-hangzhou".into());
    spec.template.path = Some("{schedule}/{instance}/{date}/{fire_time}".into());
    let sched = create(&db, spec, t0).await;

    let p = ops::preview(
        db.store.as_ref(),
        None,
        &clock,
        &sched,
        None,
        chrono::Duration::days(7),
    )
    .await
    .unwrap();
    // 02:00 Asia/Shanghai on 11-30 = 18:00Z on 11-29.
    assert_eq!(p.fire_time, utc("2026-11-29T18:00:00Z"));
    let paths: Vec<_> = p
        .items
        .iter()
        .map(|i| i.request.as_ref().unwrap().target_path.clone().unwrap())
        .collect();
    assert_eq!(
        paths,
        vec![
            "prod/rm-prod-1/2026-11-30/20261129T180000Z",
            "prod/rm-prod-2/2026-11-30/20261129T180000Z"
        ]
    );
    assert!(
        jobs_of(&db.store, sched.id).await.is_empty(),
        "preview enqueues nothing"
    );
    assert!(db
        .store
        .schedule_run_list(sched.id, 10)
        .await
        .unwrap()
        .is_empty());

    // Tag targets pick the tagged instances only.
    let mut tagged = sched.spec.clone();
    tagged.name = "tagged".into();
    tagged.targets = Targets::tag("nightly", None);
    let tagged = create(&db, tagged, t0).await;
    let p = ops::preview(
        db.store.as_ref(),
        None,
        &clock,
        &tagged,
        None,
        chrono::Duration::days(7),
    )
    .await
    .unwrap();
    let names: Vec<_> = p
        .items
        .iter()
        .map(|i| i.instance.instance.as_str())
        .collect();
    assert_eq!(names, vec!["rm-dev-1", "rm-prod-1"]);

    // latest_full without a DBS client: reported, not enqueued.
    let mut lf = sched.spec.clone();
    lf.name = "lf".into();
    lf.backup = dbs_archiver::scheduler::model::BackupSelection::LatestFull;
    let lf = create(&db, lf, t0).await;
    let p = ops::preview(
        db.store.as_ref(),
        None,
        &clock,
        &lf,
        None,
        chrono::Duration::days(7),
    )
    .await
    .unwrap();
    assert!(p
        .items
        .iter()
        .all(|i| i.skipped == Some(SkipReason::BackupLookupFailed)));

    // run-now: enqueues the targets once; a second call in the same second finds them.
    clock.set(utc("2026-11-29T12:00:00.250Z"));
    let a = ops::run_now(
        db.store.as_ref(),
        None,
        &clock,
        &sched,
        chrono::Duration::days(7),
    )
    .await
    .unwrap();
    assert_eq!(a.fire_time, utc("2026-11-29T12:00:00Z"));
    assert!(a.items.iter().all(|i| i.created));
    clock.set(utc("2026-11-29T12:00:00.900Z"));
    let b = ops::run_now(
        db.store.as_ref(),
        None,
        &clock,
        &sched,
        chrono::Duration::days(7),
    )
    .await
    .unwrap();
    assert!(b.items.iter().all(|i| !i.created && i.job_id.is_some()));
    assert_eq!(jobs_of(&db.store, sched.id).await.len(), 2);
    let after = db.store.schedule_get(sched.id).await.unwrap().unwrap();
    assert_eq!(
        after.last_fire_time, None,
        "run-now does not move the cursor"
    );
    let _ = clock.now();
}

async fn declared_schedules_sync_without_clobbering(db: TestDb) {
    let now = utc("2026-01-01T00:00:00Z");
    // Created through the API: must survive a sync that declares the same name.
    let api = create(&db, pitr_spec("shared", "0 1 * * *", "UTC", "rm-api"), now).await;
    let declared = vec![
        pitr_spec("declared-a", "0 2 * * *", "UTC", "rm-1"),
        pitr_spec("shared", "0 3 * * *", "UTC", "rm-config"),
    ];
    let r = sync::sync_declared(db.store.as_ref(), &declared, now)
        .await
        .unwrap();
    assert_eq!(r.created, vec!["declared-a"]);
    assert_eq!(r.conflicts, vec!["shared"]);
    let shared = ops::get(db.store.as_ref(), "shared").await.unwrap();
    assert_eq!(shared.spec, api.spec, "API schedule untouched");
    assert_eq!(shared.origin, ScheduleOrigin::Api);

    // Same declaration again: unchanged. A changed one: updated. A removed one: deleted.
    let r = sync::sync_declared(db.store.as_ref(), &declared, now)
        .await
        .unwrap();
    assert_eq!(r.unchanged, vec!["declared-a"]);
    let changed = vec![pitr_spec("declared-a", "0 4 * * *", "UTC", "rm-1")];
    let r = sync::sync_declared(db.store.as_ref(), &changed, now)
        .await
        .unwrap();
    assert_eq!(r.updated, vec!["declared-a"]);
    assert_eq!(
        ops::get(db.store.as_ref(), "declared-a")
            .await
            .unwrap()
            .spec
            .cron,
        "0 4 * * *"
    );
    let r = sync::sync_declared(db.store.as_ref(), &[], now)
        .await
        .unwrap();
    assert_eq!(r.deleted, vec!["declared-a"]);
    let names: Vec<_> = ops::list(db.store.as_ref())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.spec.name)
        .collect();
    assert_eq!(names, vec!["shared"]);

    // A bad declaration stores nothing and names the entry.
    let bad = vec![
        pitr_spec("ok", "0 2 * * *", "UTC", "rm-1"),
        pitr_spec("bad", "0 2 * * *", "Mars/Base", "rm-1"),
    ];
    let e = sync::sync_declared(db.store.as_ref(), &bad, now)
        .await
        .unwrap_err();
    assert_eq!(field_of(e), "scheduler.schedules[1].timezone");
    assert!(ops::get(db.store.as_ref(), "ok").await.is_err());
}

both_backends!(
    bad_input_names_the_field_and_stores_nothing,
    lifecycle_pause_resume_update_delete,
    preview_is_dry_and_run_now_is_idempotent,
    declared_schedules_sync_without_clobbering
);
