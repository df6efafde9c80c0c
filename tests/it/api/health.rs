//! `/healthz`, `/readyz`, `/metrics`, `/v1/openapi.json`.

use super::{request, spawn_app, ADMIN_TOKEN};
use crate::helpers::db::{both_backends, TestDb};
use dbs_archiver::api::route_table;

async fn health_ready_metrics(db: TestDb) {
    let app = spawn_app(db).await;
    let r = app.get("/healthz", None).await;
    assert_eq!((r.status, r.json()["status"].clone()), (200, "ok".into()));
    let r = app.get("/readyz", None).await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, "ready".into())
    );

    app.enqueue(&request("rm-a")).await;
    let r = app.get("/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(
        r.text.contains("dbs_archiver_api_requests_total{")
            && r.text.contains("route=\"/v1/downloads\""),
        "{}",
        r.text
    );
    // Labels are route templates, never raw ids.
    let _ = app.get("/v1/downloads/12345", Some(ADMIN_TOKEN)).await;
    let r = app.get("/metrics", None).await;
    assert!(
        r.text.contains("route=\"/v1/downloads/{id}\""),
        "{}",
        r.text
    );
    assert!(
        !r.text.contains("route=\"/v1/downloads/12345\""),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn readyz_fails_without_migrations() {
    // A database that exists but was never migrated is not ready.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("empty.db").display());
    let store = dbs_archiver::store::connect(&url, 2).await.unwrap();
    let settings = super::test_settings(|_| {});
    let state = dbs_archiver::api::ApiState::new(store, &settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(dbs_archiver::api::serve(state, listener, stop.clone()));
    let r = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_ready");
    stop.cancel();
}

async fn openapi_document_covers_every_route(db: TestDb) {
    let app = spawn_app(db).await;
    let r = app.get("/v1/openapi.json", None).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (method, path) in route_table() {
        let op = &doc["paths"][path][method.as_str().to_lowercase()];
        assert!(
            op.is_object(),
            "{method} {path} missing from /v1/openapi.json"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

both_backends!(health_ready_metrics, openapi_document_covers_every_route,);

#[tokio::test]
async fn spawn_names_api_listen_when_it_cannot_bind() {
    let db = crate::helpers::db::sqlite().await;
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let settings = super::test_settings(|s| s.api.listen = addr.clone());
    let state = dbs_archiver::api::ApiState::new(db.store.clone(), &settings);
    let mut services = tokio::task::JoinSet::new();
    let stop = tokio_util::sync::CancellationToken::new();
    dbs_archiver::api::spawn(state, &mut services, &stop);
    let err = services.join_next().await.unwrap().unwrap().unwrap_err();
    assert!(err.to_string().contains("api.listen"), "{err}");
    assert!(err.to_string().contains(&addr), "{err}");
}

/// The README's first command fails with a message that says what to do when the API's
/// port is already taken (a newcomer's machine often has something on 8080).
#[test]
fn a_taken_api_port_stops_serve_with_a_hint() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbs-archiver"))
        .args(["serve", "--simulate"])
        .current_dir(dir.path())
        .env("DBS_ARCHIVER__API__LISTEN", &addr)
        .env("DBS_ARCHIVER__TELEMETRY__LOG_LEVEL", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve ran on a taken port: {stderr}");
    assert!(
        stderr.contains(&format!("api.listen: cannot listen on {addr}"))
            && stderr.contains("DBS_ARCHIVER__API__LISTEN=127.0.0.1:PORT"),
        "{stderr}"
    );
}
