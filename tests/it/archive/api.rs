//! The API refuses a `sink` that is not configured (or on an OSS target) and shows a job's
//! archive: state, location, size and checksum.

use super::*;
use crate::api::{request, spawn_app_with, ADMIN_TOKEN, READ_TOKEN};
use crate::helpers::db::both_backends;
use dbs_archiver::archive::ArchiveState;
use dbs_archiver::store::archives::{ArchiveFence, ArchivePatch, NewArchive};
use serde_json::json;

async fn api_checks_the_sink_and_shows_the_archive(db: TestDb) {
    let app = spawn_app_with(db, |s| s.sinks.push(SinkSettings::local("unused-archives"))).await;

    let mut body = request("rm-s1");
    body["sink"] = json!("nowhere");
    let r = app.post("/v1/downloads", Some(ADMIN_TOKEN), &body).await;
    assert_eq!(
        r.error(422),
        ("validation_failed".into(), Some("sink".into()))
    );
    assert!(r.text.contains("configured: local"), "{}", r.text);

    let mut oss = request("rm-s1");
    oss["target_type"] = json!("OSS");
    oss["target_bucket"] = json!("b-1");
    oss["target_oss_region"] = json!("cn-hangzhou");
    oss["target_path"] = json!("x/y");
    oss["sink"] = json!("local");
    let r = app.post("/v1/downloads", Some(ADMIN_TOKEN), &oss).await;
    assert_eq!(
        r.error(422),
        ("validation_failed".into(), Some("sink".into()))
    );

    let mut body = request("rm-s1");
    body["sink"] = json!("local");
    let job = app.enqueue(&body).await;
    assert_eq!(job["request"]["sink"], "local", "{job}");
    let id = job["id"].as_i64().unwrap();
    let detail = app
        .get(&format!("/v1/downloads/{id}"), Some(READ_TOKEN))
        .await;
    assert_eq!(detail.json()["archive"], serde_json::Value::Null);

    // Its archive, as the fetcher would record it.
    let store = &app.db.store;
    let now = chrono::Utc::now();
    let a = store
        .archive_create(&NewArchive {
            job_id: id,
            sink: "local".into(),
            region: "cn-hangzhou".into(),
            instance: "rm-s1".into(),
            task_id: "dbstask1".into(),
            url: "http://127.0.0.1:9/x?Expires=1&Signature=secret".into(),
            url_expires_at: Some(now + chrono::Duration::hours(2)),
            expected_size: Some(10),
            max_attempts: 5,
            object_name: "x".into(),
            failed: None,
            now,
        })
        .await
        .unwrap()
        .unwrap();
    store
        .archive_claim("w", 1, Duration::from_secs(60), now)
        .await
        .unwrap();
    let mut p = ArchivePatch::to(ArchiveState::Stored, "stored", now);
    p.location = Some("file:///srv/archives/x".into());
    p.size = Some(10);
    p.bytes_done = Some(10);
    p.sha256 = Some("ab".repeat(32));
    let fence = ArchiveFence {
        id: a.id,
        state: ArchiveState::Fetching,
        owner: Some("w".into()),
    };
    assert!(store.archive_update(&fence, &p).await.unwrap());

    let detail = app
        .get(&format!("/v1/downloads/{id}"), Some(READ_TOKEN))
        .await;
    let v = detail.json();
    let archive = &v["archive"];
    assert_eq!(archive["state"], "stored", "{v}");
    assert_eq!(archive["location"], "file:///srv/archives/x");
    assert_eq!(archive["size"], 10);
    assert_eq!(archive["sha256"], "ab".repeat(32));
    assert_eq!(archive["bytes_done"], 10);
    assert!(
        !detail.text.contains("Signature=secret"),
        "the signed link is not shown: {}",
        detail.text
    );

    // The console's job page shows the same archive (signed in with a read token).
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(app.url("/ui/login"))
        .form(&[("token", READ_TOKEN), ("next", "/ui/")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page = http
        .get(app.url(&format!("/ui/jobs/{id}")))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"archive\""), "{html}");
    assert!(html.contains("file:///srv/archives/x"), "{html}");
    assert!(html.contains(&"ab".repeat(32)), "{html}");
    assert!(
        !html.contains("Signature=secret"),
        "the signed link is not shown"
    );
}

both_backends!(api_checks_the_sink_and_shows_the_archive);
