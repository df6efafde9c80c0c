//! One validation for every entry point, seen through the API: the request-field rules of
//! `DownloadRequest::validate`, the shared bounds, and JSON bodies with a key given twice.

use super::{request, spawn_app, ADMIN_TOKEN};
use crate::helpers::db::{both_backends, TestDb};
use serde_json::json;

async fn duplicated_keys_are_refused_by_name(db: TestDb) {
    let app = spawn_app(db).await;
    let r = app
        .post_raw(
            "/v1/downloads",
            r#"{"region":"cn-hangzhou","instance":"rm-a","region":"cn-beijing","bak_set_type":"full","bak_set_id":"1","format":"CSV","target_type":"URL"}"#,
        )
        .await;
    assert_eq!(
        r.error(400),
        ("duplicate_key".into(), Some("region".into()))
    );
    let r = app
        .post_raw(
            "/v1/schedules",
            r#"{"name":"n","cron":"0 2 * * *","targets":{"kind":"instance","kind":"prefix","region":"cn-hangzhou","instance":"rm-a"},"template":{"format":"CSV","target_type":"URL"}}"#,
        )
        .await;
    assert_eq!(
        r.error(400),
        ("duplicate_key".into(), Some("targets.kind".into()))
    );
    // Nothing was created by either.
    let jobs = app.get("/v1/downloads", Some(ADMIN_TOKEN)).await.json();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0);
    let schedules = app.get("/v1/schedules", Some(ADMIN_TOKEN)).await.json();
    assert_eq!(schedules["schedules"].as_array().unwrap().len(), 0);
}

async fn field_rules_name_the_field(db: TestDb) {
    let app = spawn_app(db).await;
    let cases = [
        ("target_bucket", json!("Bad_Bucket"), "OSS bucket name"),
        ("target_path", json!("a/../b"), "'..'"),
        (
            "download_point_in_time",
            json!(1_661_331_864),
            "UNIX milliseconds",
        ),
        ("admin_database", json!("admin.db"), "characters"),
        ("cluster_name", json!("dds\u{1b}x"), "control characters"),
        ("cluster_name", json!("dds x"), "letters, digits"),
        ("use_zstd", json!("yes"), "true or false"),
        ("bak_set_size", json!(-1), "negative"),
        ("priority", json!(5000), "between -1000 and 1000"),
        ("max_attempts", json!(1000), "between 1 and 100"),
    ];
    for (field, value, rule) in cases {
        let mut body = request("rm-a");
        body[field] = value;
        let r = app.post("/v1/downloads", Some(ADMIN_TOKEN), &body).await;
        let (code, named) = r.error(422);
        assert_eq!(code, "validation_failed", "{field}: {}", r.text);
        assert_eq!(named.as_deref(), Some(field), "{}", r.text);
        assert!(r.text.contains(rule), "{field}: {}", r.text);
    }
    // The MongoDB flags in any case are stored lowercase.
    let mut body = request("rm-a");
    body["is_cluster"] = json!("TRUE");
    body["use_zstd"] = json!("False");
    body["cluster_name"] = json!("dds-example");
    body["admin_database"] = json!("admin");
    let job = app.enqueue(&body).await;
    let id = job["id"].as_i64().unwrap();
    let stored = app.db.store.job_get(id).await.unwrap().unwrap();
    assert_eq!(stored.request.is_cluster.as_deref(), Some("true"));
    assert_eq!(stored.request.use_zstd.as_deref(), Some("false"));
    assert_eq!(job["request"]["is_cluster"], "true");
}

both_backends!(
    duplicated_keys_are_refused_by_name,
    field_rules_name_the_field
);
