//! Instances: upsert with tags, block / unblock (a blocked instance is never claimed),
//! re-probe listing, last success.

use crate::helpers::db::{both_backends, TestDb};
use chrono::{Duration as ChronoDuration, Utc};
use dbs_archiver::model::InstanceKey;
use dbs_archiver::store::{BlockInstance, ClaimParams};
use std::time::Duration;

fn claim(owner: &str) -> ClaimParams {
    ClaimParams {
        owner: owner.into(),
        limit: 10,
        lease: Duration::from_secs(60),
        now: Utc::now(),
    }
}

async fn upsert_keeps_or_replaces_tags(db: TestDb) {
    let key = InstanceKey::new("cn-hangzhou", "rm-1");
    db.store
        .instance_upsert(&key, Some(&["prod".to_string(), "mysql".to_string()]))
        .await
        .unwrap();
    db.store.instance_upsert(&key, None).await.unwrap();
    let got = db.store.instance_get(&key).await.unwrap().unwrap();
    assert_eq!(got.tags, vec!["prod", "mysql"]);
    assert!(!got.blocked);
    db.store
        .instance_upsert(&key, Some(&["staging".to_string()]))
        .await
        .unwrap();
    let got = db.store.instance_get(&key).await.unwrap().unwrap();
    assert_eq!(got.tags, vec!["staging"]);
    // Enqueueing creates the instance row too.
    db.enqueue("rm-2").await;
    let all = db.store.instance_list().await.unwrap();
    let names: Vec<_> = all.iter().map(|i| i.key.instance.as_str()).collect();
    assert_eq!(names, vec!["rm-1", "rm-2"]);
    assert!(db
        .store
        .instance_get(&InstanceKey::new("cn-hangzhou", "nope"))
        .await
        .unwrap()
        .is_none());
}

async fn blocked_instance_is_not_claimed_until_unblocked(db: TestDb) {
    let key = InstanceKey::new("cn-hangzhou", "rm-1");
    let job = db.enqueue("rm-1").await;
    let other = db.enqueue("rm-2").await;
    let until = Utc::now() + ChronoDuration::minutes(10);
    db.store
        .instance_block(&BlockInstance {
            key: key.clone(),
            task_id: Some("dt-9".into()),
            reason: "remote task failed".into(),
            until: Some(until),
        })
        .await
        .unwrap();
    let inst = db.store.instance_get(&key).await.unwrap().unwrap();
    assert!(inst.blocked);
    assert_eq!(inst.blocking_task_id.as_deref(), Some("dt-9"));
    assert_eq!(inst.blocked_reason.as_deref(), Some("remote task failed"));
    assert!(inst.blocked_at.is_some());
    assert_eq!(
        inst.blocked_until.map(|t| t.timestamp_millis()),
        Some(until.timestamp_millis())
    );

    // Other instances keep flowing; the blocked one does not.
    let got = db.store.job_claim(&claim("w")).await.unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![other.id]);
    assert!(db.store.job_claim(&claim("w")).await.unwrap().is_empty());

    // Due for a re-probe only once blocked_until has passed.
    assert!(db
        .store
        .instance_list_reprobe(Utc::now())
        .await
        .unwrap()
        .is_empty());
    let due = db
        .store
        .instance_list_reprobe(until + ChronoDuration::seconds(1))
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].key, key);

    assert!(db.store.instance_unblock(&key).await.unwrap());
    assert!(!db.store.instance_unblock(&key).await.unwrap());
    let inst = db.store.instance_get(&key).await.unwrap().unwrap();
    assert!(!inst.blocked && inst.blocking_task_id.is_none() && inst.blocked_until.is_none());
    let got = db.store.job_claim(&claim("w")).await.unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![job.id]);
}

async fn block_without_until_waits_for_an_operator(db: TestDb) {
    let key = InstanceKey::new("cn-hangzhou", "rm-new");
    // Blocking an instance never seen before creates it.
    db.store
        .instance_block(&BlockInstance {
            key: key.clone(),
            task_id: None,
            reason: "operator hold".into(),
            until: None,
        })
        .await
        .unwrap();
    assert!(db
        .store
        .instance_list_reprobe(Utc::now() + ChronoDuration::days(365))
        .await
        .unwrap()
        .is_empty());
    db.enqueue("rm-new").await;
    assert!(db.store.job_claim(&claim("w")).await.unwrap().is_empty());
}

/// A tracker round's successes in one call: every instance gets its latest success, an
/// instance named twice included (one upsert may not touch a row twice), known or not.
async fn mark_success_records_the_time(db: TestDb) {
    let known = InstanceKey::new("cn-hangzhou", "rm-1");
    db.enqueue("rm-1").await;
    let fresh = InstanceKey::new("cn-hangzhou", "rm-new");
    let at = Utc::now();
    let earlier = at - ChronoDuration::minutes(5);
    db.store
        .instance_mark_success(&[
            (known.clone(), at),
            (fresh.clone(), earlier),
            (known.clone(), earlier),
        ])
        .await
        .unwrap();
    db.store.instance_mark_success(&[]).await.unwrap();
    for (key, want) in [(&known, at), (&fresh, earlier)] {
        let inst = db.store.instance_get(key).await.unwrap().unwrap();
        assert_eq!(
            inst.last_success_at.map(|t| t.timestamp_millis()),
            Some(want.timestamp_millis()),
            "{key}"
        );
    }
}

/// Every claim and every end of a job rewrites its instance's bookkeeping row; the
/// maintenance step vacuums that table on PostgreSQL (a server may run without autovacuum,
/// as this project's CI server does), and is a no-op on SQLite.
async fn reclaim_vacuums_the_bookkeeping(db: TestDb) {
    for i in 0..5 {
        db.enqueue(&format!("rm-{i}")).await;
    }
    assert_eq!(db.store.job_claim(&claim("w1")).await.unwrap().len(), 5);
    db.store.reclaim_bookkeeping().await.unwrap();
    if db.backend == crate::helpers::db::Backend::Postgres {
        let vacuums = db
            .query_i64(
                "SELECT vacuum_count FROM pg_stat_user_tables \
                 WHERE relname = 'instances' AND schemaname = current_schema()",
            )
            .await;
        assert_eq!(
            vacuums, 1,
            "one VACUUM of instances, by reclaim_bookkeeping"
        );
    }
    // The bookkeeping is intact: the claimed instances are busy, nothing more to claim.
    assert!(db.store.job_claim(&claim("w2")).await.unwrap().is_empty());
}

both_backends!(
    reclaim_vacuums_the_bookkeeping,
    upsert_keeps_or_replaces_tags,
    blocked_instance_is_not_claimed_until_unblocked,
    block_without_until_waits_for_an_operator,
    mark_success_records_the_time,
);
