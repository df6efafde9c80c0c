//! The admin HTTP API over real TCP against a real database (both backends).
//!
//! [`spawn_app`] starts `api::serve` on 127.0.0.1 port 0 over a fresh [`TestDb`]; requests
//! go through reqwest. Jobs are moved through states with the store directly, as a worker
//! would, so the API is seen exactly as an operator sees it.

mod auth;
mod downloads;
mod fuzz;
mod health;
mod instances;
mod openapi;
mod schedules;
mod validation;

use crate::helpers::db::TestDb;
use chrono::Utc;
use dbs_archiver::api::{self, ApiState};
use dbs_archiver::config::{ApiToken, Role, Settings};
use dbs_archiver::model::{InstanceKey, Job, JobState, RemoteStatus};
use dbs_archiver::store::{ClaimParams, Fence, JobFilter, JobPatch};
use secrecy::SecretString;
use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0001";
pub const READ_TOKEN: &str = "read-token-for-tests-00001";

/// A running API server over a test database.
pub struct TestApp {
    pub base: String,
    pub db: TestDb,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Settings for tests: both tokens, everything else default unless `tweak` changes it.
pub fn test_settings(tweak: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings::load_from(None, Vec::<(String, String)>::new()).expect("defaults");
    s.api.tokens = vec![
        ApiToken {
            token: SecretString::from(ADMIN_TOKEN),
            role: Role::Admin,
        },
        ApiToken {
            token: SecretString::from(READ_TOKEN),
            role: Role::Read,
        },
    ];
    tweak(&mut s);
    s.validate().expect("test settings are valid");
    s
}

pub async fn spawn_app(db: TestDb) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

pub async fn spawn_app_with(db: TestDb, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let settings = test_settings(tweak);
    let state = ApiState::new(db.store.clone(), &settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(api::serve(state, listener, shutdown.clone()));
    TestApp {
        base: format!("http://{addr}"),
        db,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        shutdown,
    }
}

/// A response, read completely.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Assert the one error shape and return (code, field).
    pub fn error(&self, status: u16) -> (String, Option<String>) {
        assert_eq!(self.status, status, "{}", self.text);
        let v = self.json();
        let err = v
            .get("error")
            .unwrap_or_else(|| panic!("no error object: {v}"));
        let code = err["code"].as_str().expect("code").to_string();
        assert!(!err["message"].as_str().expect("message").is_empty(), "{v}");
        let field = err.get("field").and_then(|f| f.as_str()).map(String::from);
        (code, field)
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let r = req.send().await.expect("request sent");
        Reply {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            text: r.text().await.expect("body"),
        }
    }

    /// GET with a token (`None` = no Authorization header).
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    /// POST a JSON value with a token.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    /// POST raw bytes as `application/json` with the admin token.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.send(
            self.http
                .post(self.url(path))
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// Enqueue through the API as admin; returns the job JSON.
    pub async fn enqueue(&self, body: &Value) -> Value {
        let r = self.post("/v1/downloads", Some(ADMIN_TOKEN), body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()
    }

    /// Claim every claimable job as a worker would (queued ⇒ submitting, one per instance)
    /// and return the one on `instance`.
    pub async fn claim(&self, instance: &str) -> Job {
        self.db
            .store
            .job_claim(&ClaimParams {
                owner: "test-worker".into(),
                limit: 100,
                lease: Duration::from_secs(60),
                now: Utc::now() + chrono::Duration::seconds(1),
            })
            .await
            .unwrap();
        let page = self
            .db
            .store
            .job_list(&JobFilter {
                state: Some(JobState::Submitting),
                instance: Some(InstanceKey::new("cn-hangzhou", instance)),
                limit: 10,
                ..JobFilter::default()
            })
            .await
            .unwrap();
        page.jobs
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no claimable job on {instance}"))
    }

    /// Move a job that this test's worker holds to `to`, with a remote status.
    pub async fn advance(&self, job: &Job, from: JobState, to: JobState, remote: RemoteStatus) {
        let ok = self
            .db
            .store
            .job_update(
                &Fence {
                    id: job.id,
                    state: from,
                    owner: Some("test-worker".into()),
                },
                &JobPatch {
                    to: Some(to),
                    remote: Some(remote),
                    release_lease: to.is_terminal(),
                    reason: format!("test moves it to {to}"),
                    ..JobPatch::default()
                },
            )
            .await
            .unwrap();
        assert!(ok, "fence held for job {}", job.id);
    }
}

/// A valid full-backup URL-target request for `instance`.
pub fn request(instance: &str) -> Value {
    serde_json::json!({
        "region": "cn-hangzhou",
        "instance": instance,
        "bak_set_type": "full",
        "bak_set_id": "1001",
        "format": "CSV",
        "target_type": "URL",
    })
}

pub fn remote(task: &str, progress: &str) -> RemoteStatus {
    RemoteStatus {
        task_id: Some(task.into()),
        status: Some("exporting".into()),
        progress: Some(progress.into()),
        ..RemoteStatus::default()
    }
}
