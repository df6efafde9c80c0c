//! The collector's database read ([`Store::queue_snapshot`]) on both backends: states,
//! the backlog's age, blocks, and the id watermark that counts SQL inserts once.

use crate::helpers::db::{both_backends, TestDb};
use chrono::{Duration, Utc};
use dbs_archiver::model::{InstanceKey, JobSource, JobState};
use dbs_archiver::store::BlockInstance;

async fn snapshot_counts_states_ages_blocks_and_new_jobs(db: TestDb) {
    let store = &db.store;
    let empty = store.queue_snapshot(0).await.unwrap();
    assert_eq!(empty.max_job_id, 0);
    assert!(empty.by_state.is_empty() && empty.new_by_source.is_empty());
    assert_eq!(empty.oldest_due(Utc::now()), None);

    let first = db.enqueue("rm-a").await;
    db.enqueue("rm-b").await;
    db.exec(
        "INSERT INTO jobs (region, instance, bak_set_type, bak_set_id, format, target_type) \
         VALUES ('cn-hangzhou', 'rm-c', 'full', '1', 'CSV', 'URL')",
    )
    .await
    .unwrap();
    store
        .instance_block(&BlockInstance {
            key: InstanceKey::new("cn-hangzhou", "rm-a"),
            task_id: Some("t-1".into()),
            reason: "remote task failed".into(),
            until: None,
        })
        .await
        .unwrap();
    let now = Utc::now() + Duration::seconds(30);
    let snap = store.queue_snapshot(first.id).await.unwrap();
    assert_eq!(snap.by_state, vec![(JobState::Queued, 3)]);
    let age = now - snap.oldest_due(now).expect("a due queued job");
    assert!(
        age >= Duration::seconds(29) && age < Duration::seconds(120),
        "{age}"
    );
    assert_eq!(snap.blocked_instances, 1);
    assert!(snap.oldest_block.is_some());
    // Jobs after the first one, by source: the helper enqueues as api, the INSERT is sql.
    let mut sources = snap.new_by_source.clone();
    sources.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(sources, vec![(JobSource::Api, 1), (JobSource::Sql, 1)]);
    // The next round, from the returned watermark, sees nothing new.
    let again = store.queue_snapshot(snap.max_job_id).await.unwrap();
    assert!(again.new_by_source.is_empty());
    assert_eq!(again.max_job_id, snap.max_job_id);
    // A job due later is not part of the backlog's age.
    assert_eq!(snap.oldest_due(Utc::now() - Duration::hours(1)), None);
}

both_backends!(snapshot_counts_states_ages_blocks_and_new_jobs);

/// The store's stamp once it stops moving (SQLite: a second after the last write;
/// PostgreSQL: once the row counters are published).
async fn settled_stamp(store: &dbs_archiver::store::DynStore) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let first = store.change_stamp().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        let second = store.change_stamp().await.unwrap();
        if let (Some(a), Some(b)) = (&first, &second) {
            if a == b {
                return b.clone();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the change stamp never settled: {first:?} {second:?}"
        );
    }
}

/// The collector re-reads only when the change stamp moved: reads leave it alone, a plain
/// SQL `INSERT` from another client moves it.
async fn change_stamp_moves_with_writes_not_reads(db: TestDb) {
    let store = &db.store;
    db.enqueue("rm-a").await;
    let settled = settled_stamp(store).await;
    store.queue_snapshot(0).await.unwrap();
    store.job_list(&Default::default()).await.unwrap();
    store.schedule_list().await.unwrap();
    assert_eq!(
        settled_stamp(store).await,
        settled,
        "a read moved the stamp"
    );
    db.exec(
        "INSERT INTO jobs (region, instance, bak_set_type, bak_set_id, format, target_type) \
         VALUES ('cn-hangzhou', 'rm-s', 'full', '1', 'CSV', 'URL')",
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.change_stamp().await.unwrap().as_ref() == Some(&settled) {
        assert!(
            std::time::Instant::now() < deadline,
            "an INSERT did not move the stamp"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

both_backends!(change_stamp_moves_with_writes_not_reads);
