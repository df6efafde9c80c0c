//! `/v1/downloads`: enqueue, idempotency, validation, listing, cancel, retry.

use super::{remote, request, spawn_app, spawn_app_with, ADMIN_TOKEN, READ_TOKEN};
use crate::helpers::db::{both_backends, Backend, TestDb};
use dbs_archiver::model::JobState;
use serde_json::json;

async fn enqueue_then_get_with_events(db: TestDb) {
    let app = spawn_app(db).await;
    let mut body = request("rm-a");
    body["priority"] = json!(7);
    body["max_attempts"] = json!(3);
    body["run_at"] = json!("2030-01-02T03:04:05Z");
    let r = app.post("/v1/downloads", Some(ADMIN_TOKEN), &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let job = r.json();
    let id = job["id"].as_i64().unwrap();
    assert_eq!(
        r.headers["location"].to_str().unwrap(),
        format!("/v1/downloads/{id}")
    );
    assert_eq!(job["state"], "queued");
    assert_eq!(job["source"], "api");
    assert_eq!(job["priority"], 7);
    assert_eq!(job["max_attempts"], 3);
    assert_eq!(job["run_at"], "2030-01-02T03:04:05Z");
    assert_eq!(job["request"]["instance"], "rm-a");
    assert_eq!(job["request"]["format"], "CSV");

    // The stored job is the one the API reports.
    let stored = app.db.store.job_get(id).await.unwrap().unwrap();
    assert_eq!(stored.priority, 7);
    assert_eq!(stored.request.bak_set_id.as_deref(), Some("1001"));

    let r = app
        .get(&format!("/v1/downloads/{id}"), Some(READ_TOKEN))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let detail = r.json();
    assert_eq!(detail["id"], id);
    let events = detail["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{detail}");
    assert_eq!(events[0]["to_state"], "queued");

    // Defaults: priority 0, max_attempts from worker.default_max_attempts.
    let job = app.enqueue(&request("rm-b")).await;
    assert_eq!(job["priority"], 0);
    assert_eq!(job["max_attempts"], 5);
}

async fn idempotent_replay_returns_the_same_job(db: TestDb) {
    let app = spawn_app(db).await;
    let send = |body: serde_json::Value| {
        app.http
            .post(app.url("/v1/downloads"))
            .bearer_auth(ADMIN_TOKEN)
            .header("Idempotency-Key", "nightly-rm-a-2024-05-01")
            .json(&body)
    };
    let first = app.send(send(request("rm-a"))).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = app.send(send(request("rm-a"))).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(first.json()["id"], again.json()["id"]);
    assert_eq!(again.json()["idempotency_key"], "nightly-rm-a-2024-05-01");
    assert_eq!(app.db.query_i64("SELECT count(*) FROM jobs").await, 1);

    // Same key, different request: a conflict, still no new job.
    let other = app.send(send(request("rm-other"))).await;
    let (code, _) = other.error(409);
    assert_eq!(code, "idempotency_key_reused");
    assert_eq!(app.db.query_i64("SELECT count(*) FROM jobs").await, 1);

    // Without the header, the same body makes a second job.
    app.enqueue(&request("rm-a")).await;
    assert_eq!(app.db.query_i64("SELECT count(*) FROM jobs").await, 2);

    // A key that is not a visible-ASCII token names the header.
    let r = app
        .send(
            app.http
                .post(app.url("/v1/downloads"))
                .bearer_auth(ADMIN_TOKEN)
                .header("Idempotency-Key", "has space")
                .json(&request("rm-a")),
        )
        .await;
    assert_eq!(
        r.error(400),
        ("invalid_header".into(), Some("Idempotency-Key".into()))
    );
}

async fn concurrent_replays_make_one_job(db: TestDb) {
    let app = spawn_app(db).await;
    let send = || {
        app.send(
            app.http
                .post(app.url("/v1/downloads"))
                .bearer_auth(ADMIN_TOKEN)
                .header("Idempotency-Key", "race-1")
                .json(&request("rm-race")),
        )
    };
    let replies = futures::future::join_all((0..8).map(|_| send())).await;
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 200, 200, 201],
        "{replies:?}"
    );
    let ids: std::collections::BTreeSet<i64> = replies
        .iter()
        .map(|r| r.json()["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(app.db.query_i64("SELECT count(*) FROM jobs").await, 1);
}

async fn bad_bodies_name_the_field(db: TestDb) {
    let app = spawn_app(db).await;
    let check = |body: serde_json::Value, status: u16, code: &'static str, field: &'static str| {
        let app = &app;
        async move {
            let r = app.post("/v1/downloads", Some(ADMIN_TOKEN), &body).await;
            assert_eq!(
                r.error(status),
                (code.to_string(), Some(field.to_string())),
                "body {body}"
            );
        }
    };
    // Missing conditional field (DownloadRequest::validate).
    let mut b = request("rm-a");
    b.as_object_mut().unwrap().remove("bak_set_id");
    check(b, 422, "validation_failed", "bak_set_id").await;
    // OSS target without a bucket.
    let mut b = request("rm-a");
    b["target_type"] = json!("OSS");
    check(b, 422, "validation_failed", "target_bucket").await;
    // Invalid enum values.
    let mut b = request("rm-a");
    b["format"] = json!("csv");
    check(b, 422, "validation_failed", "format").await;
    let mut b = request("rm-a");
    b["bak_set_type"] = json!("incremental");
    check(b, 422, "validation_failed", "bak_set_type").await;
    // Unknown field.
    let mut b = request("rm-a");
    b["bak_set_idd"] = json!("1");
    check(b, 422, "validation_failed", "bak_set_idd").await;
    // Wrong type.
    let mut b = request("rm-a");
    b["priority"] = json!("high");
    check(b, 422, "validation_failed", "priority").await;
    // Missing required field.
    let mut b = request("rm-a");
    b.as_object_mut().unwrap().remove("region");
    check(b, 422, "validation_failed", "region").await;
    // Out-of-range queue options.
    let mut b = request("rm-a");
    b["max_attempts"] = json!(0);
    check(b, 422, "validation_failed", "max_attempts").await;
    let mut b = request("rm-a");
    b["priority"] = json!(5000);
    check(b, 422, "validation_failed", "priority").await;
    let mut b = request("rm-a");
    b["run_at"] = json!("not a time");
    check(b, 422, "validation_failed", "run_at").await;
    // Control characters (PostgreSQL cannot even store NUL).
    let mut b = request("rm-a");
    b["bak_set_id"] = json!("10\u{0}01");
    check(b, 422, "validation_failed", "bak_set_id").await;
    let mut b = request("rm-a");
    b["instance"] = json!("rm a");
    check(b, 422, "validation_failed", "instance").await;

    // Malformed JSON.
    let r = app
        .post_raw("/v1/downloads", r#"{"region": "cn-hangzhou",,}"#)
        .await;
    assert_eq!(r.error(400).0, "malformed_json");
    let r = app.post_raw("/v1/downloads", "").await;
    assert_eq!(r.error(400).0, "malformed_json");
    let r = app.post_raw("/v1/downloads", "[1,2]").await;
    assert_eq!(r.error(422).0, "validation_failed");

    // Not JSON at all.
    let r = app
        .send(
            app.http
                .post(app.url("/v1/downloads"))
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", "text/plain")
                .body(request("rm-a").to_string()),
        )
        .await;
    assert_eq!(r.error(415).0, "unsupported_media_type");

    assert_eq!(app.db.query_i64("SELECT count(*) FROM jobs").await, 0);
}

async fn oversized_body_is_413(db: TestDb) {
    let app = spawn_app_with(db, |s| s.api.body_limit_bytes = 2048).await;
    let mut b = request("rm-a");
    b["cluster_name"] = json!("x".repeat(4096));
    let r = app.post("/v1/downloads", Some(ADMIN_TOKEN), &b).await;
    assert_eq!(
        r.error(413),
        ("payload_too_large".into(), Some("body".into()))
    );
    // Just under the limit is fine (a long path: the longest field the rules allow).
    let mut b = request("rm-a");
    b["target_path"] = json!("x".repeat(1024));
    assert_eq!(
        app.post("/v1/downloads", Some(ADMIN_TOKEN), &b)
            .await
            .status,
        201
    );
}

async fn list_paginates_newest_first(db: TestDb) {
    let app = spawn_app(db).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.enqueue(&request(&format!("rm-{i}"))).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/downloads?limit=2&cursor={c}"),
            None => "/v1/downloads?limit=2".to_string(),
        };
        let r = app.get(&path, Some(READ_TOKEN)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let page = r.json();
        let jobs = page["jobs"].as_array().unwrap();
        assert!(jobs.len() <= 2);
        seen.extend(jobs.iter().map(|j| j["id"].as_i64().unwrap()));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen, ids, "every job once, newest first");
    assert_eq!(pages, 3);

    // Filters.
    let r = app
        .get(
            "/v1/downloads?region=cn-hangzhou&instance=rm-3",
            Some(READ_TOKEN),
        )
        .await;
    let jobs = r.json()["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["request"]["instance"], "rm-3");

    let cancelled = ids[0];
    let r = app
        .post(
            &format!("/v1/downloads/{cancelled}/cancel"),
            Some(ADMIN_TOKEN),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .get("/v1/downloads?state=cancelled", Some(READ_TOKEN))
        .await;
    let jobs = r.json()["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["id"], cancelled);
    let r = app
        .get("/v1/downloads?state=queued&limit=500", Some(READ_TOKEN))
        .await;
    assert_eq!(r.json()["jobs"].as_array().unwrap().len(), 4);

    let r = app
        .get(
            "/v1/downloads?created_after=2999-01-01T00:00:00Z",
            Some(READ_TOKEN),
        )
        .await;
    assert_eq!(r.json()["jobs"].as_array().unwrap().len(), 0);
    let r = app
        .get(
            "/v1/downloads?created_before=2999-01-01T00:00:00Z",
            Some(READ_TOKEN),
        )
        .await;
    assert_eq!(r.json()["jobs"].as_array().unwrap().len(), 5);

    // Bad parameters name themselves.
    for (query, field) in [
        ("state=done", "state"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=abc", "cursor"),
        ("created_after=yesterday", "created_after"),
        ("region=cn-hangzhou", "instance"),
        ("schedule_id=-1", "schedule_id"),
        ("colour=red", "colour"),
        ("limit=1&limit=2", "limit"),
    ] {
        let r = app
            .get(&format!("/v1/downloads?{query}"), Some(READ_TOKEN))
            .await;
        let (_, f) = r.error(400);
        assert_eq!(f.as_deref(), Some(field), "query {query}");
    }
}

async fn cancel_and_retry_follow_the_state_machine(db: TestDb) {
    let app = spawn_app(db).await;
    let id = app.enqueue(&request("rm-a")).await["id"].as_i64().unwrap();
    let cancel = format!("/v1/downloads/{id}/cancel");
    let retry = format!("/v1/downloads/{id}/retry");

    // queued: retry is not allowed.
    let r = app.post(&retry, Some(ADMIN_TOKEN), &json!({})).await;
    assert_eq!(r.error(409).0, "invalid_state");

    let r = app.post(&cancel, Some(ADMIN_TOKEN), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["state"], "cancelled");
    // Cancelling again is a no-op.
    assert_eq!(
        app.post(&cancel, Some(ADMIN_TOKEN), &json!({}))
            .await
            .status,
        200
    );

    let r = app.post(&retry, Some(ADMIN_TOKEN), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["state"], "queued");
    assert_eq!(r.json()["attempts"], 0);

    // submitting / running: neither cancel nor retry.
    let job = app.claim("rm-a").await;
    assert_eq!(job.id, id);
    let r = app.post(&cancel, Some(ADMIN_TOKEN), &json!({})).await;
    assert_eq!(r.error(409).0, "invalid_state");
    app.advance(
        &job,
        JobState::Submitting,
        JobState::Running,
        remote("dt-1", "1/4"),
    )
    .await;
    let r = app.post(&cancel, Some(ADMIN_TOKEN), &json!({})).await;
    assert_eq!(r.error(409).0, "invalid_state");
    assert_eq!(
        app.post(&retry, Some(ADMIN_TOKEN), &json!({}))
            .await
            .error(409)
            .0,
        "invalid_state"
    );

    // failed: retry queues it again.
    app.advance(
        &job,
        JobState::Running,
        JobState::Failed,
        remote("dt-1", "2/4"),
    )
    .await;
    let r = app.post(&retry, Some(ADMIN_TOKEN), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["state"], "queued");

    // The history shows every step.
    let detail = app
        .get(&format!("/v1/downloads/{id}"), Some(READ_TOKEN))
        .await
        .json();
    let states: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "queued",
            "cancelled",
            "queued",
            "submitting",
            "running",
            "failed",
            "queued"
        ]
    );

    // Unknown and malformed ids.
    for path in [
        "/v1/downloads/999999",
        "/v1/downloads/999999/cancel",
        "/v1/downloads/999999/retry",
    ] {
        let r = if path.ends_with("999999") {
            app.get(path, Some(READ_TOKEN)).await
        } else {
            app.post(path, Some(ADMIN_TOKEN), &json!({})).await
        };
        assert_eq!(r.error(404).0, "not_found", "{path}");
    }
    let r = app.get("/v1/downloads/abc", Some(READ_TOKEN)).await;
    assert_eq!(
        r.error(400),
        ("invalid_parameter".into(), Some("id".into()))
    );
    let r = app
        .post("/v1/downloads/0/cancel", Some(ADMIN_TOKEN), &json!({}))
        .await;
    assert_eq!(r.error(400).1.as_deref(), Some("id"));
}

/// A row that slipped past the database's rules is quarantined when read: the list and the
/// job answer (no 500), the job shows Store.Quarantined, and an admin can delete it.
async fn a_quarantined_row_is_shown_and_can_be_deleted(db: TestDb) {
    let smuggle = match db.backend {
        Backend::Sqlite => {
            "PRAGMA ignore_check_constraints = ON; INSERT INTO jobs (region, \
            instance, bak_set_type, bak_set_id, format, target_type, run_at) VALUES \
            ('cn-hangzhou', 'rm-q', 'full', '1', 'CSV', 'URL', 'soon');"
        }
        Backend::Postgres => {
            "ALTER TABLE jobs DROP CONSTRAINT jobs_run_at_time; INSERT INTO \
            jobs (region, instance, bak_set_type, bak_set_id, format, target_type, run_at) \
            VALUES ('cn-hangzhou', 'rm-q', 'full', '1', 'CSV', 'URL', 'infinity');"
        }
    };
    db.exec(smuggle).await.unwrap();
    let app = spawn_app(db).await;
    let r = app.get("/v1/downloads", Some(READ_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let job = &r.json()["jobs"][0];
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["last_error"]["code"], "Store.Quarantined", "{job}");
    let id = job["id"].as_i64().unwrap();
    let path = format!("/v1/downloads/{id}");

    let live = app.enqueue(&request("rm-a")).await["id"].as_i64().unwrap();
    let delete = |path: String, token: &'static str| {
        let req = app.http.delete(app.url(&path)).bearer_auth(token);
        app.send(req)
    };
    assert_eq!(delete(path.clone(), READ_TOKEN).await.status, 403);
    let r = delete(format!("/v1/downloads/{live}"), ADMIN_TOKEN).await;
    assert_eq!(r.error(409).0, "invalid_state");
    assert_eq!(delete(path.clone(), ADMIN_TOKEN).await.status, 204);
    assert_eq!(app.get(&path, Some(READ_TOKEN)).await.status, 404);
    assert_eq!(delete(path, ADMIN_TOKEN).await.error(404).0, "not_found");
}

both_backends!(
    a_quarantined_row_is_shown_and_can_be_deleted,
    enqueue_then_get_with_events,
    idempotent_replay_returns_the_same_job,
    concurrent_replays_make_one_job,
    bad_bodies_name_the_field,
    oversized_body_is_413,
    list_paginates_newest_first,
    cancel_and_retry_follow_the_state_machine,
);
