//! Retention deletes exactly what the rule says: per sink, keep the newest N per instance
//! and/or those younger than D days; never an object we did not write, never an archive
//! of another sink or one that is not stored; a dry run changes nothing.

use super::*;
use crate::helpers::db::both_backends;
use chrono::{DateTime, Utc};
use dbs_archiver::archive::{ArchiveState, Retention};
use dbs_archiver::store::archives::{ArchiveFence, ArchivePatch, NewArchive};
use dbs_archiver::store::DynStore;

/// A stored archive of a fresh job on `instance`, written by us into `sink` at `location`,
/// stored `age_days` ago.
async fn stored(
    db: &TestDb,
    sink: &str,
    instance: &str,
    location: &str,
    stored_at: DateTime<Utc>,
) -> i64 {
    let store: &DynStore = &db.store;
    let job = db.enqueue(instance).await;
    let a = store
        .archive_create(&NewArchive {
            job_id: job.id,
            sink: sink.into(),
            region: "cn-hangzhou".into(),
            instance: instance.into(),
            task_id: format!("dbstask{}", job.id),
            url: "http://127.0.0.1:9/unused".into(),
            url_expires_at: None,
            expected_size: Some(3),
            max_attempts: 5,
            object_name: location.rsplit('/').next().unwrap().into(),
            failed: None,
            now: stored_at,
        })
        .await
        .unwrap()
        .unwrap();
    let claimed = store
        .archive_claim("t", 100, Duration::from_secs(60), stored_at)
        .await
        .unwrap();
    assert!(claimed.iter().any(|c| c.id == a.id));
    let mut p = ArchivePatch::to(ArchiveState::Stored, "test", stored_at);
    p.location = Some(location.into());
    p.size = Some(3);
    p.sha256 = Some("00".into());
    let fence = ArchiveFence {
        id: a.id,
        state: ArchiveState::Fetching,
        owner: Some("t".into()),
    };
    assert!(store.archive_update(&fence, &p).await.unwrap());
    a.id
}

async fn retention_deletes_exactly_what_the_rule_says(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::absolute(dir.path().join("archives")).unwrap();
    let sinks = vec![
        SinkSettings {
            keep_last: Some(2),
            keep_days: Some(3),
            ..SinkSettings::local(&root)
        },
        // "other" has no rule: it keeps everything.
        SinkSettings {
            name: "other".into(),
            ..SinkSettings::local(dir.path().join("other"))
        },
    ];
    let settings = dbs_archiver::archive::ArchiveSettings::default();
    let sinks = Arc::new(Sinks::new(&sinks, &settings).unwrap());
    let now = Utc::now();
    let days = |d: i64| now - chrono::Duration::days(d);
    let file = |name: &str| {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"abc").unwrap();
        format!("file://{}", p.display())
    };

    // rm-a: four archives; the newest two are kept by count, the 2-day-old one by age too.
    let a1 = stored(&db, "local", "rm-a", &file("a/1"), days(1)).await;
    let a2 = stored(&db, "local", "rm-a", &file("a/2"), days(2)).await;
    let a5 = stored(&db, "local", "rm-a", &file("a/5"), days(5)).await;
    let a10 = stored(&db, "local", "rm-a", &file("a/10"), days(10)).await;
    // rm-b: one old archive, kept as the newest of its instance.
    let b30 = stored(&db, "local", "rm-b", &file("b/30"), days(30)).await;
    // Another sink's archive, however old, is not this rule's business.
    let other_file = dir.path().join("other/x");
    std::fs::create_dir_all(other_file.parent().unwrap()).unwrap();
    std::fs::write(&other_file, b"abc").unwrap();
    let o = stored(
        &db,
        "other",
        "rm-a",
        &format!("file://{}", other_file.display()),
        days(40),
    )
    .await;
    // A row (say, inserted by hand) pointing outside the sink: never deleted.
    let outside = dir.path().join("precious");
    std::fs::write(&outside, b"abc").unwrap();
    let x = stored(
        &db,
        "local",
        "rm-a",
        &format!("file://{}", outside.display()),
        days(50),
    )
    .await;
    // A file in the sink that we never wrote.
    let foreign = root.join("a/foreign.bin");
    std::fs::write(&foreign, b"not ours").unwrap();

    let clock: dbs_archiver::clock::DynClock = Arc::new(ManualClock::new(now));
    let retention = Retention::new(
        db.store.clone(),
        sinks,
        clock,
        Duration::from_secs(3600),
        false,
    );

    let dry = retention.run_once(Some(true)).await.unwrap();
    assert!(dry.dry_run);
    let mut would = dry.deleted.clone();
    would.sort_unstable();
    let mut expected = vec![a5, a10];
    expected.sort_unstable();
    assert_eq!(
        would, expected,
        "the dry run names exactly the rule's victims"
    );
    for id in [a1, a2, a5, a10, b30, o, x] {
        let a = db.store.archive_get(id).await.unwrap().unwrap();
        assert_eq!(a.state, ArchiveState::Stored, "a dry run changes nothing");
        assert!(local_file(a.location.as_deref().unwrap()).exists());
    }

    let real = retention.run_once(Some(false)).await.unwrap();
    let mut deleted = real.deleted.clone();
    deleted.sort_unstable();
    assert_eq!(deleted, expected);
    assert_eq!(real.errors, 0);
    for id in [a5, a10] {
        let a = db.store.archive_get(id).await.unwrap().unwrap();
        assert_eq!(a.state, ArchiveState::Deleted);
        assert!(a.deleted_at.is_some());
        assert!(!local_file(a.location.as_deref().unwrap()).exists());
        let events = db.store.archive_events(id).await.unwrap();
        let last = events.last().unwrap();
        assert_eq!(last.to_state, ArchiveState::Deleted);
        assert!(
            last.reason.starts_with("retention: file://"),
            "{}",
            last.reason
        );
    }
    for id in [a1, a2, b30, o, x] {
        let a = db.store.archive_get(id).await.unwrap().unwrap();
        assert_eq!(a.state, ArchiveState::Stored, "archive {id} is kept");
        assert!(local_file(a.location.as_deref().unwrap()).exists());
    }
    assert!(foreign.exists(), "a file we did not write is never touched");
    assert!(outside.exists());

    // Nothing more to do: the rule is satisfied.
    assert!(retention.run_once(None).await.unwrap().deleted.is_empty());
}

both_backends!(retention_deletes_exactly_what_the_rule_says);
