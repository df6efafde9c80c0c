//! The console in a real browser: Debian Chromium (headless) driven through chromedriver
//! with fantoccini, against a real server and database. Each step is what an operator
//! does by hand; screenshots of every page at 1400×900 land in `target/ui-shots/`.
//!
//! On CI a missing `/usr/bin/chromium` or `/usr/bin/chromedriver` fails the test (run
//! `.ci/install-browser`); elsewhere the test says loudly that it skips.

use super::store::fixture;
use super::{spawn_console, ConsoleApp};
use crate::api::{ADMIN_TOKEN, READ_TOKEN};
use crate::helpers::db::TestDb;
use dbs_archiver::model::{InstanceKey, JobState};
use dbs_archiver::store::BlockInstance;
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::{Path, PathBuf};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn browser_installed() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !on_ci(),
        "{missing:?} missing and CI=true: run .ci/install-browser"
    );
    eprintln!("!!! {missing:?} missing: SKIPPING the browser test (run .ci/install-browser)");
    false
}

/// chromedriver on a free loopback port plus one headless Chromium session.
struct Browser {
    client: Option<Client>,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `dark`: the browser prefers a dark colour scheme (`--force-dark-mode`).
    async fn start(dark: bool) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let profile = tempfile::tempdir().unwrap();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .env("HOME", profile.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,900",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!(
            "--user-data-dir={}",
            profile.path().join("chromium").display()
        ));
        if dark {
            args.push("--force-dark-mode".into());
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": CHROMIUM, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            Duration::from_secs(60),
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&url),
        )
        .await
        .expect("a browser session within 60 s")
        .expect("chromedriver session");
        // Screenshots are of the viewport: make it 1400×900 whatever the window frame takes.
        let inner = client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .unwrap();
        let (w, h) = (
            inner[0].as_u64().unwrap() as u32,
            inner[1].as_u64().unwrap() as u32,
        );
        client
            .set_window_size(1400 + (1400 - w.min(1400)), 900 + (900 - h.min(900)))
            .await
            .unwrap();
        Self {
            client: Some(client),
            _driver: driver,
            _profile: profile,
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }

    /// The text of the first match, waiting (up to 10 s) for it to exist on a page that
    /// is not being replaced by a navigation.
    async fn text(&self, css: &str) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            let found = match self.c().find(Locator::Css(css)).await {
                Ok(e) => e.text().await,
                Err(e) => Err(e),
            };
            match found {
                Ok(t) => return t,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css}: {last}");
    }

    async fn count(&self, css: &str) -> usize {
        self.c().find_all(Locator::Css(css)).await.unwrap().len()
    }

    /// Click something that navigates, and wait until the new page has loaded.
    async fn click(&self, css: &str) {
        let before = self.c().current_url().await.unwrap();
        self.c()
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
        for _ in 0..100 {
            let now = self.c().current_url().await.unwrap();
            let ready = self
                .c()
                .execute("return document.readyState;", vec![])
                .await
                .map(|v| v == serde_json::json!("complete"))
                .unwrap_or(false);
            if now != before && ready {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("clicking {css} on {before} did not lead to another page");
    }

    async fn path(&self) -> String {
        let u = self.c().current_url().await.unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    /// Save the viewport as `target/ui-shots/<name>.png`.
    async fn shot(&self, name: &str) {
        let png = self.c().screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-shots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn sign_in(&self, app: &ConsoleApp, token: &str) {
        self.c().goto(&app.url("/ui/jobs")).await.unwrap();
        assert!(
            self.path().await.starts_with("/ui/login"),
            "redirected to sign in"
        );
        self.c()
            .find(Locator::Css("#token"))
            .await
            .unwrap()
            .send_keys(token)
            .await
            .unwrap();
        self.click("#login button[type=submit]").await;
        self.c()
            .wait()
            .at_most(Duration::from_secs(10))
            .for_url(&url::Url::parse(&app.url("/ui/jobs")).unwrap())
            .await
            .expect("back on the page asked for");
    }
}

async fn state_of(app: &ConsoleApp, id: i64) -> JobState {
    app.db.store.job_get(id).await.unwrap().unwrap().state
}

async fn console_in_chromium(db: TestDb) {
    if !browser_installed() {
        return;
    }
    let app = spawn_console(db, |_| {}).await;
    let ids = fixture(&app.db).await;
    let rm_a = InstanceKey::new("cn-hangzhou", "rm-a");
    app.db
        .store
        .instance_block(&BlockInstance {
            key: rm_a.clone(),
            task_id: Some("dt-a-1".into()),
            reason: "DBS task dt-a-1 failed: the export of table orders stopped because the \
                     destination ran out of space; a very long cloud error text that must wrap \
                     instead of breaking the layout of the page"
                .into(),
            until: None,
        })
        .await
        .unwrap();
    app.add_schedule("nightly", "rm-c").await;

    let b = Browser::start(false).await;
    b.c().goto(&app.url("/ui/login")).await.unwrap();
    b.shot("01-sign-in").await;

    // Sign in as admin: lands on the page first asked for.
    b.sign_in(&app, ADMIN_TOKEN).await;
    assert_eq!(b.text("#role").await, "admin");

    // Overview.
    b.c().goto(&app.url("/ui/")).await.unwrap();
    assert_eq!(b.text("[data-state=failed] .n").await, "1");
    assert_eq!(b.text("[data-state=cancelled] .n").await, "2");
    assert!(b.text("#blocked").await.contains("rm-a"));
    assert!(b.text("#failing").await.contains("rm-a"));
    b.shot("02-overview").await;

    // Filter jobs by state and instance with the form; the URL carries the view.
    b.c().goto(&app.url("/ui/jobs")).await.unwrap();
    assert_eq!(b.count("tr[data-job]").await, 7);
    b.c()
        .find(Locator::Css("#f-state"))
        .await
        .unwrap()
        .select_by_value("failed")
        .await
        .unwrap();
    b.c()
        .find(Locator::Css("#f-instance"))
        .await
        .unwrap()
        .send_keys("rm-a")
        .await
        .unwrap();
    b.click("#apply").await;
    b.c()
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#f-state option[value=failed][selected]"))
        .await
        .unwrap();
    let path = b.path().await;
    assert!(
        path.contains("state=failed") && path.contains("instance=rm-a"),
        "{path}"
    );
    assert_eq!(b.count("tr[data-job]").await, 1);
    b.shot("03-jobs-filtered").await;

    // Sort by instance: a header link.
    b.c().goto(&app.url("/ui/jobs")).await.unwrap();
    b.click("#sort-instance").await;
    b.c()
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#sort-instance"))
        .await
        .unwrap();
    assert!(b.path().await.contains("sort=instance"));
    b.shot("04-jobs-by-instance").await;

    // Open the failed job: its timeline and its error with the cloud request id.
    let a1 = ids["a1"];
    b.c().goto(&app.url("/ui/jobs?state=failed")).await.unwrap();
    b.click(&format!("tr[data-job=\"{a1}\"] a[href=\"/ui/jobs/{a1}\"]"))
        .await;
    assert!(b.text("#last-error").await.contains("REQ-BOOM-1"));
    let steps = b.count("#timeline li").await;
    assert!(steps >= 4, "enqueued, submitting, running, failed: {steps}");
    assert!(b.text("#timeline").await.contains("failed"));
    b.shot("05-job-failed").await;

    // Retry it from the page.
    b.click("form[action$=\"/retry\"] button").await;
    assert!(b.text("#flash").await.contains("retried"));
    assert!(b.text("#summary .badge").await.contains("queued"));
    assert_eq!(state_of(&app, a1).await, JobState::Queued);

    // Cancel a queued one from the page.
    let a3 = ids["a3"];
    b.c()
        .goto(&app.url(&format!("/ui/jobs/{a3}")))
        .await
        .unwrap();
    b.click("form[action$=\"/cancel\"] button").await;
    assert!(b.text("#flash").await.contains("cancelled"));
    assert!(b.text("#summary .badge").await.contains("cancelled"));
    assert_eq!(state_of(&app, a3).await, JobState::Cancelled);
    b.shot("06-job-cancelled").await;

    // A forged POST from the page without the CSRF token is refused, even for an admin.
    let c2 = ids["c2"];
    let status = b
        .c()
        .execute(
            "return fetch(arguments[0], {method: 'POST', body: new URLSearchParams()})\
             .then(r => r.status);",
            vec![serde_json::json!(format!("/ui/jobs/{c2}/cancel"))],
        )
        .await
        .unwrap();
    assert_eq!(status, serde_json::json!(403));
    assert_eq!(state_of(&app, c2).await, JobState::Queued);

    // Instances: the blocked one, unblocked from its page.
    b.c().goto(&app.url("/ui/instances")).await.unwrap();
    assert_eq!(b.count("tr[data-status=blocked]").await, 1);
    b.shot("07-instances").await;
    b.click("tr[data-instance=\"cn-hangzhou/rm-a\"] a").await;
    assert!(b.text("#block").await.contains("dt-a-1"));
    b.shot("08-instance-blocked").await;
    b.click("#block form button").await;
    assert!(b.text("#flash").await.contains("unblocked"));
    assert_eq!(b.count("#block").await, 0);
    assert!(
        !app.db
            .store
            .instance_get(&rm_a)
            .await
            .unwrap()
            .unwrap()
            .blocked
    );

    // Schedules: pause, then resume.
    b.c().goto(&app.url("/ui/schedules")).await.unwrap();
    b.shot("09-schedules").await;
    b.click("tr[data-schedule=nightly] a").await;
    assert_eq!(b.text("#status").await, "active");
    assert_eq!(b.count("#next-fires li").await, 5);
    b.shot("10-schedule").await;
    b.click("form[action$=\"/pause\"] button").await;
    assert!(b.text("#flash").await.contains("paused"));
    assert_eq!(b.text("#status").await, "paused");
    b.click("form[action$=\"/resume\"] button").await;
    assert!(b.text("#flash").await.contains("resumed"));
    assert_eq!(b.text("#status").await, "active");
    b.click("#preview").await;
    assert!(b.text("#preview-items").await.contains("rm-c"));
    b.shot("11-schedule-preview").await;

    // Sign out; a read-only user sees no action buttons.
    b.c().goto(&app.url("/ui/")).await.unwrap();
    b.click("#logout").await;
    assert!(b.path().await.starts_with("/ui/login"));
    b.sign_in(&app, READ_TOKEN).await;
    assert_eq!(b.text("#role").await, "read");
    for page in [
        format!("/ui/jobs/{c2}"),
        format!("/ui/jobs/{a3}"),
        "/ui/schedules/nightly".to_string(),
    ] {
        b.c().goto(&app.url(&page)).await.unwrap();
        b.text("main h1").await;
        assert_eq!(
            b.count("main form[method=post]").await,
            0,
            "no action for a read-only user on {page}"
        );
    }
    b.c()
        .goto(&app.url(&format!("/ui/jobs/{c2}")))
        .await
        .unwrap();
    b.shot("12-job-read-only").await;
    b.close().await;

    // Dark mode follows the browser's preference.
    let b = Browser::start(true).await;
    b.sign_in(&app, READ_TOKEN).await;
    b.c().goto(&app.url("/ui/")).await.unwrap();
    let bg = b
        .c()
        .execute(
            "return getComputedStyle(document.body).backgroundColor;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(bg, serde_json::json!("rgb(18, 21, 27)"), "dark background");
    b.shot("13-overview-dark").await;

    // Live updates: a new job shows up in the counts without a reload (the marker set on
    // this document survives).
    let before = b.text("[data-state=queued] .n").await;
    b.c()
        .execute("window.consoleTestMarker = 42;", vec![])
        .await
        .unwrap();
    app.db.enqueue("rm-live").await;
    let mut after = before.clone();
    for _ in 0..150 {
        after = b.text("[data-state=queued] .n").await;
        if after != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(after, before, "the queued count refreshed in place");
    let marker = b
        .c()
        .execute("return window.consoleTestMarker;", vec![])
        .await
        .unwrap();
    assert_eq!(marker, serde_json::json!(42), "no full reload");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_chromium_sqlite() {
    console_in_chromium(crate::helpers::db::sqlite().await).await;
}
