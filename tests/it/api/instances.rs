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

/// `PUT /v1/instances/{region}/{instance}` registers an instance (or replaces its tags)
/// before any job exists for it, so a schedule that targets a tag finds it; `GET` reads
/// one instance back. Writes need the admin token; bad input is refused (422) with its field
/// named, and stores nothing.
async fn register_with_tags_then_a_tag_schedule_finds_it(db: TestDb) {
    let app = spawn_app(db).await;
    let put = |path: &str, token: &str, body: Value| {
        app.http.put(app.url(path)).bearer_auth(token).json(&body)
    };
    let path = "/v1/instances/cn-hangzhou/rm-fresh";

    let r = app
        .send(put(path, READ_TOKEN, json!({"tags": ["prod"]})))
        .await;
    assert_eq!(r.error(403).0, "forbidden");
    let r = app
        .send(put(
            path,
            ADMIN_TOKEN,
            json!({"tags": ["prod", "has space"]}),
        ))
        .await;
    assert_eq!(r.error(422).1.as_deref(), Some("tags[1]"));
    let r = app
        .send(put(path, ADMIN_TOKEN, json!({"tags": [], "color": "red"})))
        .await;
    assert_eq!(r.error(422).1.as_deref(), Some("color"));
    let r = app
        .send(put(
            "/v1/instances/cn-hangzhou/rm%20bad",
            ADMIN_TOKEN,
            json!({"tags": []}),
        ))
        .await;
    assert_eq!(r.error(422).1.as_deref(), Some("instance"));
    assert!(app
        .db
        .store
        .instance_get(&InstanceKey::new("cn-hangzhou", "rm-fresh"))
        .await
        .unwrap()
        .is_none());

    let r = app
        .send(put(
            path,
            ADMIN_TOKEN,
            json!({"tags": ["prod", "env=eu", "prod"]}),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["tags"], json!(["prod", "env=eu"]));
    assert_eq!(r.json()["blocked"], false);
    // Idempotent: the same PUT again changes nothing.
    let again = app
        .send(put(path, ADMIN_TOKEN, json!({"tags": ["prod", "env=eu"]})))
        .await;
    assert_eq!(again.json(), r.json());

    let got = app.get(path, Some(READ_TOKEN)).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json()["tags"], json!(["prod", "env=eu"]));
    assert_eq!(
        app.get("/v1/instances/cn-hangzhou/rm-nope", Some(READ_TOKEN))
            .await
            .error(404)
            .0,
        "not_found"
    );

    // A schedule targeting the tag selects it, though no job ever ran there.
    let r = app
        .post(
            "/v1/schedules",
            Some(ADMIN_TOKEN),
            &json!({
                "name": "by-tag",
                "cron": "0 3 * * *",
                "targets": {"kind": "tag", "tag": "env=eu"},
                "template": {"format": "CSV", "target_type": "URL"},
                "backup": "pitr_at_fire_time",
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let preview = app
        .get(
            "/v1/schedules/by-tag/preview?at=2030-01-01T03:00:00Z",
            Some(READ_TOKEN),
        )
        .await;
    assert_eq!(preview.status, 200, "{}", preview.text);
    let items = preview.json()["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(1), "{items}");
    assert_eq!(items[0]["instance"]["instance"], "rm-fresh");

    // Replacing the tags drops the old ones.
    let r = app.send(put(path, ADMIN_TOKEN, json!({"tags": []}))).await;
    assert_eq!(r.json()["tags"], json!([]));
    let preview = app
        .get(
            "/v1/schedules/by-tag/preview?at=2030-01-01T03:00:00Z",
            Some(READ_TOKEN),
        )
        .await;
    assert_eq!(preview.json()["items"], json!([]));
}

both_backends!(register_with_tags_then_a_tag_schedule_finds_it);

/// `dbs-archiver instances add` does what the PUT does, straight on the database; a bad
/// tag names the flag and stores nothing.
async fn cli_add_registers_with_tags(db: TestDb) {
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dbs-archiver"))
            .arg("instances")
            .args(args)
            .env("DBS_ARCHIVER__DATABASE__URL", &db.url)
            .env("DBS_ARCHIVER__TELEMETRY__LOG_LEVEL", "warn")
            .output()
            .unwrap()
    };
    let key = InstanceKey::new("cn-beijing", "rm-cli");
    let bad = cli(&["add", "cn-beijing/rm-cli", "--tag", "ok", "--tag", "no way"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("--tag: tags[1]"), "{stderr}");
    assert!(db.store.instance_get(&key).await.unwrap().is_none());

    let ok = cli(&[
        "add",
        "rm-cli",
        "--region",
        "cn-beijing",
        "--tag",
        "nightly",
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stored = db.store.instance_get(&key).await.unwrap().expect("stored");
    assert_eq!(stored.tags, vec!["nightly".to_string()]);
    let list = cli(&["list"]);
    let stdout = String::from_utf8_lossy(&list.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("cn-beijing/rm-cli") && l.contains("nightly")),
        "{stdout}"
    );
}

both_backends!(cli_add_registers_with_tags);
