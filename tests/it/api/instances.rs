//! `/v1/instances` and unblocking.

use super::{remote, request, spawn_app, ADMIN_TOKEN, READ_TOKEN};
use crate::helpers::db::{both_backends, TestDb};
use dbs_archiver::model::{InstanceKey, JobState};
use dbs_archiver::store::BlockInstance;
use serde_json::{json, Value};

fn find<'a>(list: &'a Value, instance: &str) -> &'a Value {
    list["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance"] == instance)
        .unwrap_or_else(|| panic!("{instance} not listed: {list}"))
}

async fn list_shows_active_and_blocked(db: TestDb) {
    let app = spawn_app(db).await;
    app.enqueue(&request("rm-busy")).await;
    // Not due yet, so the claim below leaves it queued.
    let mut later = request("rm-idle");
    later["run_at"] = json!("2099-01-01T00:00:00Z");
    app.enqueue(&later).await;
    let busy = app.claim("rm-busy").await;
    app.advance(
        &busy,
        JobState::Submitting,
        JobState::Running,
        remote("dt-7", "1/3"),
    )
    .await;
    let key = InstanceKey::new("cn-hangzhou", "rm-blocked");
    app.db.store.instance_upsert(&key, None).await.unwrap();
    app.db
        .store
        .instance_block(&BlockInstance {
            key: key.clone(),
            task_id: Some("dt-failed-1".into()),
            reason: "remote task failed: disk full".into(),
            until: None,
        })
        .await
        .unwrap();

    let r = app.get("/v1/instances", Some(READ_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let list = r.json();
    assert_eq!(find(&list, "rm-busy")["active_job_id"], busy.id);
    assert_eq!(find(&list, "rm-busy")["blocked"], false);
    assert_eq!(find(&list, "rm-idle")["active_job_id"], Value::Null);
    let blocked = find(&list, "rm-blocked");
    assert_eq!(blocked["blocked"], true);
    assert_eq!(blocked["blocking_task_id"], "dt-failed-1");
    assert_eq!(blocked["blocked_reason"], "remote task failed: disk full");

    // Unblock: first call clears it, the second is a no-op.
    let path = "/v1/instances/cn-hangzhou/rm-blocked/unblock";
    assert_eq!(
        app.post(path, Some(READ_TOKEN), &json!({}))
            .await
            .error(403)
            .0,
        "forbidden"
    );
    let r = app.post(path, Some(ADMIN_TOKEN), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["unblocked"], true);
    assert_eq!(r.json()["instance"]["blocked"], false);
    assert!(
        !app.db
            .store
            .instance_get(&key)
            .await
            .unwrap()
            .unwrap()
            .blocked
    );
    let r = app.post(path, Some(ADMIN_TOKEN), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["unblocked"], false);

    let r = app
        .post(
            "/v1/instances/cn-hangzhou/rm-nope/unblock",
            Some(ADMIN_TOKEN),
            &json!({}),
        )
        .await;
    assert_eq!(r.error(404).0, "not_found");
}

both_backends!(list_shows_active_and_blocked);
