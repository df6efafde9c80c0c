//! `/v1/schedules` over the scheduler's operations, both backends.

use super::{spawn_app, TestApp, ADMIN_TOKEN, READ_TOKEN};
use crate::helpers::db::{both_backends, TestDb};
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn spec(name: &str) -> Value {
    json!({
        "name": name,
        "cron": "30 2 * * *",
        "timezone": "Asia/Shanghai",
        "targets": {"kind": "instance", "region": "cn-hangzhou", "instance": "rm-s1"},
        "template": {"format": "CSV", "target_type": "URL"},
        "backup": "pitr_at_fire_time",
    })
}

/// Every property a schema allows, following `$ref` and `allOf` (serde flatten).
fn schema_props(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap();
        return schema_props(doc, &doc["components"]["schemas"][name]);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            out.extend(schema_props(doc, s));
        }
    }
    if let Some(p) = schema.get("properties").and_then(Value::as_object) {
        out.extend(p.keys().cloned());
    }
    out
}

/// The JSON the server sent uses only fields its OpenAPI schema names.
async fn assert_matches_schema(app: &TestApp, value: &Value, schema: &str) {
    let doc = app.get("/v1/openapi.json", None).await.json();
    let allowed = schema_props(
        &doc,
        &json!({"$ref": format!("#/components/schemas/{schema}")}),
    );
    assert!(!allowed.is_empty(), "no schema {schema}");
    for k in value.as_object().unwrap().keys() {
        assert!(
            allowed.contains(k),
            "{schema} lacks {k}; allowed {allowed:?}"
        );
    }
}

async fn schedule_lifecycle(db: TestDb) {
    let app = spawn_app(db).await;
    let r = app
        .post("/v1/schedules", Some(ADMIN_TOKEN), &spec("nightly"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let created = r.json();
    assert_eq!(created["name"], "nightly");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["origin"], "api");
    assert!(created["next_fire_time"].is_string(), "{created}");
    assert_matches_schema(&app, &created, "ScheduleDoc").await;
    let id = created["id"].as_i64().unwrap();

    // Same name again: rejected, naming the field.
    let r = app
        .post("/v1/schedules", Some(ADMIN_TOKEN), &spec("nightly"))
        .await;
    assert_eq!(r.error(422).1.as_deref(), Some("name"));

    let r = app.get("/v1/schedules", Some(READ_TOKEN)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["schedules"].as_array().unwrap().len(), 1);

    // By name and by id.
    let detail = app
        .get("/v1/schedules/nightly", Some(READ_TOKEN))
        .await
        .json();
    assert_eq!(detail["id"], id);
    assert_eq!(detail["next_fires"].as_array().unwrap().len(), 5);
    assert_matches_schema(&app, &detail, "ScheduleDetailDoc").await;
    let by_id = app
        .get(&format!("/v1/schedules/{id}"), Some(READ_TOKEN))
        .await;
    assert_eq!(by_id.json()["name"], "nightly");

    // Update: new cron.
    let mut s = spec("nightly");
    s["cron"] = json!("0 4 * * *");
    let r = app
        .send(
            app.http
                .put(app.url("/v1/schedules/nightly"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&s),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["cron"], "0 4 * * *");

    // Pause / resume.
    let r = app
        .post("/v1/schedules/nightly/pause", Some(ADMIN_TOKEN), &json!({}))
        .await;
    assert_eq!((r.status, r.json()["enabled"].clone()), (200, json!(false)));
    let detail = app
        .get("/v1/schedules/nightly", Some(READ_TOKEN))
        .await
        .json();
    assert_eq!(detail["next_fires"], json!([]));
    let r = app
        .post(
            "/v1/schedules/nightly/resume",
            Some(ADMIN_TOKEN),
            &json!({}),
        )
        .await;
    assert_eq!((r.status, r.json()["enabled"].clone()), (200, json!(true)));

    // Preview: a dry run that enqueues nothing.
    let r = app
        .get(
            "/v1/schedules/nightly/preview?at=2030-01-01T20:00:00Z",
            Some(READ_TOKEN),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let preview = r.json();
    assert_eq!(preview["fire_time"], "2030-01-01T20:00:00Z");
    assert_eq!(preview["items"][0]["instance"]["instance"], "rm-s1");
    assert_eq!(preview["items"][0]["request"]["bak_set_type"], "pitr");
    assert_eq!(preview["items"][0]["job_id"], Value::Null);
    assert_matches_schema(&app, &preview, "FireOutcomeDoc").await;
    assert_eq!(app.db.query_i64("SELECT count(*) FROM jobs").await, 0);
    let r = app
        .get("/v1/schedules/nightly/preview?at=soon", Some(READ_TOKEN))
        .await;
    assert_eq!(r.error(400).1.as_deref(), Some("at"));

    // Run now: one job, linked to the schedule, visible through the downloads filter.
    let r = app
        .post(
            "/v1/schedules/nightly/run-now",
            Some(ADMIN_TOKEN),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let job_id = r.json()["items"][0]["job_id"].as_i64().expect("a job");
    let jobs = app
        .get(&format!("/v1/downloads?schedule_id={id}"), Some(READ_TOKEN))
        .await
        .json();
    assert_eq!(jobs["jobs"][0]["id"], job_id);
    assert_eq!(jobs["jobs"][0]["source"], "schedule");
    let detail = app
        .get("/v1/schedules/nightly", Some(READ_TOKEN))
        .await
        .json();
    assert_eq!(detail["recent_runs"][0]["job_id"], job_id);

    // Read tokens cannot change anything.
    for (method, path) in [
        (reqwest::Method::POST, "/v1/schedules/nightly/pause"),
        (reqwest::Method::DELETE, "/v1/schedules/nightly"),
        (reqwest::Method::POST, "/v1/schedules/nightly/run-now"),
    ] {
        let r = app
            .send(
                app.http
                    .request(method, app.url(path))
                    .bearer_auth(READ_TOKEN),
            )
            .await;
        assert_eq!(r.error(403).0, "forbidden", "{path}");
    }

    // Delete: gone; its job stays.
    let r = app
        .send(
            app.http
                .delete(app.url("/v1/schedules/nightly"))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.get("/v1/schedules/nightly", Some(READ_TOKEN))
            .await
            .error(404)
            .0,
        "not_found"
    );
    assert_eq!(
        app.get(&format!("/v1/downloads/{job_id}"), Some(READ_TOKEN))
            .await
            .status,
        200
    );
    for path in ["/v1/schedules/nope/pause", "/v1/schedules/nope/run-now"] {
        let r = app.post(path, Some(ADMIN_TOKEN), &json!({})).await;
        assert_eq!(r.error(404).0, "not_found", "{path}");
    }
}

async fn bad_specs_name_the_field(db: TestDb) {
    let app = spawn_app(db).await;
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (Box::new(|s| s["cron"] = json!("every day")), "cron"),
        (
            Box::new(|s| s["timezone"] = json!("Mars/Olympus")),
            "timezone",
        ),
        (Box::new(|s| s["name"] = json!("has space")), "name"),
        (Box::new(|s| s["misfire"] = json!("sometimes")), "misfire"),
        (
            Box::new(|s| s["targets"]["kind"] = json!("all")),
            "targets.kind",
        ),
        (
            Box::new(|s| s["template"]["format"] = json!("csv")),
            "template.format",
        ),
        (
            Box::new(|s| s["template"]["colour"] = json!("red")),
            "template.colour",
        ),
        (Box::new(|s| s["surprise"] = json!(1)), "surprise"),
        (
            Box::new(|s| {
                s["targets"].as_object_mut().unwrap().remove("instance");
            }),
            "targets.instance",
        ),
        (
            Box::new(|s| s["template"]["target_type"] = json!("OSS")),
            "template.bucket",
        ),
        (Box::new(|s| s["max_attempts"] = json!(0)), "max_attempts"),
    ];
    for (mutate, field) in cases {
        let mut s = spec("bad");
        mutate(&mut s);
        let r = app.post("/v1/schedules", Some(ADMIN_TOKEN), &s).await;
        let (code, f) = r.error(422);
        assert_eq!(
            (code.as_str(), f.as_deref()),
            ("validation_failed", Some(field)),
            "{s}"
        );
    }
    let r = app.post_raw("/v1/schedules", "{\"name\":").await;
    assert_eq!(r.error(400).0, "malformed_json");
    assert_eq!(
        app.get("/v1/schedules", Some(READ_TOKEN)).await.json()["schedules"],
        json!([])
    );
}

both_backends!(schedule_lifecycle, bad_specs_name_the_field);
