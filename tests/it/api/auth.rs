//! Bearer tokens and roles on every route; which routes may be open.

use super::{request, spawn_app, spawn_app_with, ADMIN_TOKEN, READ_TOKEN};
use crate::helpers::db::{both_backends, TestDb};
use dbs_archiver::api::route_table;
use serde_json::json;

/// A concrete URL for a route template.
fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{region}", "cn-hangzhou")
        .replace("{instance}", "rm-a")
}

/// Routes that are open under the default settings.
const OPEN_BY_DEFAULT: &[&str] = &["/healthz", "/readyz", "/metrics", "/v1/openapi.json"];

async fn every_protected_route_needs_a_token(db: TestDb) {
    let app = spawn_app(db).await;
    let mut checked = 0;
    for (method, path) in route_table() {
        if OPEN_BY_DEFAULT.contains(&path) {
            continue;
        }
        let url = app.url(&concrete(path));
        let req = |token: Option<&str>| {
            let mut r = app.http.request(method.clone(), &url);
            if method != reqwest::Method::GET {
                r = r.json(&request("rm-a"));
            }
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r
        };
        // No token.
        let r = app.send(req(None)).await;
        assert_eq!(r.error(401).0, "unauthorized", "{method} {path}");
        let challenge = r.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        assert!(!challenge.contains("invalid_token"), "{challenge}");
        // Wrong token (a prefix of a real one).
        let r = app
            .send(req(Some(&ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1])))
            .await;
        assert_eq!(r.error(401).0, "unauthorized", "{method} {path}");
        assert!(r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token"));
        // Read token: GETs pass the gate, writes are forbidden.
        let r = app.send(req(Some(READ_TOKEN))).await;
        if method == reqwest::Method::GET {
            assert!(
                r.status != 401 && r.status != 403,
                "{method} {path}: {}",
                r.text
            );
        } else {
            assert_eq!(r.error(403).0, "forbidden", "{method} {path}");
        }
        // Admin token passes the gate everywhere.
        let r = app.send(req(Some(ADMIN_TOKEN))).await;
        assert!(
            r.status != 401 && r.status != 403,
            "{method} {path}: {}",
            r.text
        );
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} protected routes");
    // Nothing was enqueued by the read token.
    assert_eq!(
        app.db
            .query_i64("SELECT count(*) FROM jobs WHERE instance = 'rm-a'")
            .await,
        1
    );
}

async fn health_open_or_protected_by_settings(db: TestDb) {
    let app = spawn_app(db).await;
    for path in OPEN_BY_DEFAULT {
        let r = app.get(path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
    drop(app);

    let db = crate::helpers::db::sqlite().await;
    let app = spawn_app_with(db, |s| {
        s.api.open_health = false;
    })
    .await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            app.get(path, None).await.error(401).0,
            "unauthorized",
            "{path}"
        );
        assert_eq!(app.get(path, Some(READ_TOKEN)).await.status, 200, "{path}");
    }
    // The API description stays open: it holds no data. `/` and `/ui/` are the console's,
    // which checks its own session (tests/it/console): no bearer token is asked for there.
    assert_eq!(app.get("/v1/openapi.json", None).await.status, 200);
    assert_eq!(
        app.get("/ui/", None).await.status,
        200,
        "redirects, then the sign-in form"
    );
}

async fn unknown_routes_and_methods_use_the_error_shape(db: TestDb) {
    let app = spawn_app(db).await;
    let r = app.get("/v1/nothing-here", Some(READ_TOKEN)).await;
    assert_eq!(r.error(404).0, "not_found");
    // Without a token the answer does not reveal whether the route exists.
    assert_eq!(
        app.get("/v1/nothing-here", None).await.error(401).0,
        "unauthorized"
    );
    let r = app
        .send(
            app.http
                .delete(app.url("/v1/downloads"))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(r.error(405).0, "method_not_allowed");
    let r = app
        .post("/v1/instances", Some(ADMIN_TOKEN), &json!({}))
        .await;
    assert_eq!(r.error(405).0, "method_not_allowed");
}

both_backends!(
    every_protected_route_needs_a_token,
    health_open_or_protected_by_settings,
    unknown_routes_and_methods_use_the_error_shape,
);
