//! The status page, rendered by a real headless Chromium after jobs moved through states.

use super::{remote, request, spawn_app, ADMIN_TOKEN};
use crate::helpers::db::{both_backends, TestDb};
use dbs_archiver::model::{InstanceKey, JobState};
use dbs_archiver::store::BlockInstance;
use std::path::Path;
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The DOM after Chromium loaded and rendered `url`; `None` (loudly) when Chromium is
/// missing off CI. On CI a missing browser is a failure: run `.ci/install-browser`.
async fn dump_dom(url: &str) -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        assert!(
            !on_ci(),
            "{CHROMIUM} is missing and CI=true: run .ci/install-browser"
        );
        eprintln!("!!! {CHROMIUM} missing: SKIPPING the browser test (run .ci/install-browser)");
        return None;
    }
    let profile = tempfile::tempdir().unwrap();
    let child = tokio::process::Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .env("HOME", profile.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .expect("chromium finished within 120 s")
        .expect("chromium started");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("UTF-8 DOM"))
}

async fn status_page_renders_in_chromium(db: TestDb) {
    let app = spawn_app(db).await;
    // One job per state of interest, moved by the store as a worker would.
    let running = app.enqueue(&request("rm-run")).await["id"]
        .as_i64()
        .unwrap();
    app.enqueue(&request("rm-done")).await;
    app.enqueue(&request("rm-fail")).await;
    let queued = app.enqueue(&request("rm-wait")).await["id"]
        .as_i64()
        .unwrap();
    let r = app
        .post(
            &format!("/v1/downloads/{queued}/cancel"),
            Some(ADMIN_TOKEN),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    // Not due yet, so the claims below leave it queued.
    let mut later = request("rm-wait");
    later["run_at"] = serde_json::json!("2099-01-01T00:00:00Z");
    app.enqueue(&later).await;

    let j = app.claim("rm-run").await;
    assert_eq!(j.id, running);
    app.advance(
        &j,
        JobState::Submitting,
        JobState::Running,
        remote("dt-run-1", "3/10"),
    )
    .await;
    let j = app.claim("rm-done").await;
    app.advance(
        &j,
        JobState::Submitting,
        JobState::Running,
        remote("dt-done-1", "5/10"),
    )
    .await;
    app.advance(
        &j,
        JobState::Running,
        JobState::Succeeded,
        remote("dt-done-1", "10/10"),
    )
    .await;
    let j = app.claim("rm-fail").await;
    app.advance(
        &j,
        JobState::Submitting,
        JobState::Running,
        remote("dt-fail-1", "1/10"),
    )
    .await;
    app.advance(
        &j,
        JobState::Running,
        JobState::Failed,
        remote("dt-fail-1", "1/10"),
    )
    .await;
    app.db
        .store
        .instance_block(&BlockInstance {
            key: InstanceKey::new("cn-hangzhou", "rm-fail"),
            task_id: Some("dt-fail-1".into()),
            reason: "<b>disk</b> full & more".into(),
            until: None,
        })
        .await
        .unwrap();

    let r = app
        .post(
            "/v1/schedules",
            Some(ADMIN_TOKEN),
            &serde_json::json!({
                "name": "nightly",
                "cron": "30 2 * * *",
                "targets": {"kind": "instance", "region": "cn-hangzhou", "instance": "rm-run"},
                "template": {"format": "CSV", "target_type": "URL"},
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let next = chrono::DateTime::parse_from_rfc3339(r.json()["next_fire_time"].as_str().unwrap())
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();

    let Some(dom) = dump_dom(&app.url("/")).await else {
        return;
    };

    // Counts by state.
    for (state, n) in [
        ("queued", 1),
        ("submitting", 0),
        ("running", 1),
        ("succeeded", 1),
        ("failed", 1),
        ("cancelled", 1),
    ] {
        assert!(
            dom.contains(&format!("<td data-state=\"{state}\">{n}</td>")),
            "count of {state} should be {n}:\n{dom}"
        );
    }
    // Instances: active with its job, blocked with reason and task — escaped, not markup.
    assert!(
        dom.contains(&format!(
            "<tr data-instance=\"cn-hangzhou/rm-run\"><td>cn-hangzhou/rm-run</td><td>#{running}</td><td>active</td>"
        )),
        "{dom}"
    );
    let blocked_row = dom
        .lines()
        .find(|l| l.contains("data-instance=\"cn-hangzhou/rm-fail\""))
        .unwrap_or_else(|| panic!("no rm-fail row:\n{dom}"));
    assert!(
        blocked_row.contains("class=\"blocked\">blocked</span>"),
        "{blocked_row}"
    );
    assert!(blocked_row.contains("<td>dt-fail-1</td>"), "{blocked_row}");
    assert!(
        blocked_row.contains("&lt;b&gt;disk&lt;/b&gt; full &amp; more"),
        "{blocked_row}"
    );
    assert!(
        !dom.contains("<b>disk</b>"),
        "reason must not become markup"
    );
    // Recent jobs with progress bars: 3/10 ⇒ 30 %, succeeded ⇒ 100 %.
    let run_row = dom
        .lines()
        .find(|l| l.contains(&format!("data-job=\"{running}\"")))
        .unwrap_or_else(|| panic!("no job row:\n{dom}"));
    assert!(run_row.contains("aria-valuenow=\"30\""), "{run_row}");
    assert!(
        run_row.contains("width: 30%") || run_row.contains("width:30%"),
        "{run_row}"
    );
    assert!(run_row.contains("3/10"), "{run_row}");
    assert!(dom.contains("aria-valuenow=\"100\""), "{dom}");
    // Schedules with their next fire.
    let schedule_row = dom
        .lines()
        .find(|l| l.contains("data-schedule=\"nightly\""))
        .unwrap_or_else(|| panic!("no schedule row:\n{dom}"));
    assert!(
        schedule_row.contains("<code>30 2 * * *</code>"),
        "{schedule_row}"
    );
    assert!(
        schedule_row.contains(&format!("<td>{next}</td>")),
        "{schedule_row}"
    );
    assert!(next.ends_with("02:30:00"), "{next}");
    // It refreshes itself.
    assert!(dom.contains("http-equiv=\"refresh\""), "{dom}");
    assert!(dom.contains("<title>dbs-archiver status</title>"), "{dom}");
}

both_backends!(status_page_renders_in_chromium);
