//! The operator console under `/ui/`: its store queries on both backends, its HTTP
//! behaviour (sign-in, sessions, CSRF, roles, errors) over real TCP on both backends, and
//! the browser suite that drives Debian Chromium through chromedriver.

mod browser;
mod http;
mod store;

use crate::api::{test_settings, ADMIN_TOKEN};
use crate::helpers::db::TestDb;
use dbs_archiver::api::{self, ApiState};
use dbs_archiver::clock::ManualClock;
use dbs_archiver::config::Settings;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A running server (API + console) over a test database, with a clock the test moves.
pub struct ConsoleApp {
    pub base: String,
    pub db: TestDb,
    pub clock: ManualClock,
    /// No redirects followed, so a test sees each 303.
    pub http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for ConsoleApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_console(db: TestDb, tweak: impl FnOnce(&mut Settings)) -> ConsoleApp {
    let settings = test_settings(tweak);
    let clock = ManualClock::new(chrono::Utc::now());
    let state = ApiState::new(db.store.clone(), &settings).with_clock(Arc::new(clock.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(api::serve(state, listener, shutdown.clone()));
    ConsoleApp {
        base: format!("http://{addr}"),
        db,
        clock,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        shutdown,
    }
}

/// A response, read completely.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token embedded in this page's forms.
    pub fn csrf(&self) -> String {
        let at = self
            .text
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in page:\n{}", self.text));
        let rest = &self.text[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

impl ConsoleApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn read(r: reqwest::Response) -> Page {
        Page {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            text: r.text().await.expect("body"),
        }
    }

    /// GET with a session cookie (`None` = signed out).
    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Page {
        let mut req = self.http.get(self.url(path));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        Self::read(req.send().await.expect("request sent")).await
    }

    /// POST a form with a session cookie.
    pub async fn post(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Page {
        let mut req = self.http.post(self.url(path)).form(form);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        Self::read(req.send().await.expect("request sent")).await
    }

    /// Sign in with `token`; returns the `name=value` cookie to send back.
    pub async fn sign_in(&self, token: &str) -> String {
        let r = self
            .post("/ui/login", None, &[("token", token), ("next", "/ui/")])
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        let set = r
            .headers
            .get("set-cookie")
            .expect("a session cookie")
            .to_str()
            .unwrap()
            .to_string();
        set.split(';').next().unwrap().to_string()
    }

    /// Create a schedule through the JSON API (bearer token) targeting one instance.
    pub async fn add_schedule(&self, name: &str, instance: &str) {
        let r = self
            .http
            .post(self.url("/v1/schedules"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({
                "name": name,
                "cron": "30 2 * * *",
                "timezone": "Asia/Shanghai",
                "targets": {"kind": "instance", "region": "cn-hangzhou", "instance": instance},
                "template": {"format": "CSV", "target_type": "URL"},
                "backup": "pitr_at_fire_time",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
}
