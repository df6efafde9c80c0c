//! `/metrics` after an end-to-end run: every documented metric is there, with values that
//! match what the run did and what the database holds.

use super::harness::{self, repo_path, API_JOBS, REGION};

/// Metric names of the table in docs/metrics.md.
pub fn documented_metrics() -> Vec<String> {
    let doc = std::fs::read_to_string(repo_path("docs/metrics.md")).unwrap();
    let names: Vec<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `dbs_archiver_"))
        .map(|rest| format!("dbs_archiver_{}", rest.split('`').next().unwrap()))
        .collect();
    assert!(
        names.len() >= 20,
        "docs/metrics.md lists too few metrics: {names:?}"
    );
    names
}

/// The type column of `metric`'s row in docs/metrics.md (`doc`).
fn documented_kind(doc: &str, metric: &str) -> String {
    doc.lines()
        .find(|l| l.starts_with(&format!("| `{metric}`")))
        .and_then(|l| l.split('|').nth(2))
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_metric_is_scraped_with_values_matching_the_run() {
    let run = harness::run().await;
    assert!(
        run.exit_ok,
        "serve did not stop cleanly:\n{}",
        tail(&run.logs)
    );
    let names = run.names();
    let doc = std::fs::read_to_string(repo_path("docs/metrics.md")).unwrap();
    for metric in documented_metrics() {
        let kind = documented_kind(&doc, &metric);
        let series = if kind == "histogram" {
            format!("{metric}_bucket")
        } else {
            metric.clone()
        };
        assert!(
            names.contains(&series),
            "{series} ({kind}) missing from /metrics"
        );
        assert!(
            run.scrape.contains(&format!("# TYPE {metric} {kind}")),
            "{metric} is not exposed as a {kind}"
        );
    }

    // Outcomes match the database, and the run's own numbers.
    let db = |s: &str| run.db_states.get(s).copied().unwrap_or(0) as f64;
    let v = |name: &str, labels: &[(&str, &str)]| run.value(name, labels).unwrap_or(0.0);
    assert!(
        db("succeeded") >= (API_JOBS + 3) as f64,
        "{:?}",
        run.db_states
    );
    assert_eq!(
        v(
            "dbs_archiver_jobs_finished_total",
            &[("outcome", "succeeded")]
        ),
        db("succeeded")
    );
    assert_eq!(
        v(
            "dbs_archiver_jobs_finished_total",
            &[("outcome", "cancelled")]
        ),
        1.0
    );
    assert_eq!(
        v("dbs_archiver_jobs_finished_total", &[("outcome", "failed")]),
        db("failed")
    );
    for state in [
        "queued",
        "submitting",
        "running",
        "succeeded",
        "failed",
        "cancelled",
    ] {
        assert_eq!(
            v("dbs_archiver_jobs", &[("state", state)]),
            db(state),
            "jobs{{state={state}}}"
        );
    }
    // Enqueues by source: api and schedule counted in-process, cli and sql by the collector.
    for source in ["api", "cli", "sql", "schedule"] {
        let in_db = run.db_sources.get(source).copied().unwrap_or(0) as f64;
        assert_eq!(
            v("dbs_archiver_jobs_enqueued_total", &[("source", source)]),
            in_db,
            "enqueued{{source={source}}}"
        );
    }
    assert_eq!(
        v("dbs_archiver_jobs_enqueued_total", &[("source", "api")]),
        (API_JOBS + 1) as f64
    );
    assert_eq!(
        v("dbs_archiver_jobs_enqueued_total", &[("source", "sql")]),
        1.0
    );
    assert_eq!(
        v("dbs_archiver_jobs_enqueued_total", &[("source", "cli")]),
        1.0
    );
    // Histograms observed every claim and every finished job.
    let finished = db("succeeded") + db("failed") + db("cancelled");
    assert_eq!(v("dbs_archiver_job_duration_seconds_count", &[]), finished);
    assert!(v("dbs_archiver_queue_wait_seconds_count", &[]) >= db("succeeded"));
    // Cloud calls: every job made at least a CreateDownload and a DescribeDownloadTask;
    // the two injected throttles are counted as calls, as throttles, and as dispatch errors.
    let creates_ok = v(
        "dbs_archiver_cloud_calls_total",
        &[("action", "CreateDownload"), ("result", "ok")],
    );
    // At most one successful CreateDownload per success (a JobAlreadyExist reply is adopted
    // instead of submitted again), and at least one.
    assert!(
        creates_ok >= 1.0 && creates_ok <= db("succeeded"),
        "{creates_ok} CreateDownload ok"
    );
    assert_eq!(
        v(
            "dbs_archiver_cloud_calls_total",
            &[("action", "CreateDownload"), ("result", "throttled")]
        ),
        2.0
    );
    assert_eq!(
        v(
            "dbs_archiver_cloud_throttled_total",
            &[("region", harness::REGION)]
        ),
        2.0
    );
    assert_eq!(
        v(
            "dbs_archiver_dispatch_errors_total",
            &[("kind", "throttled")]
        ),
        2.0
    );
    assert!(
        v(
            "dbs_archiver_cloud_calls_total",
            &[("action", "DescribeDownloadTask")]
        ) > 0.0
    );
    assert!(
        v(
            "dbs_archiver_cloud_call_duration_seconds_count",
            &[("action", "CreateDownload")]
        ) >= creates_ok + 2.0
    );
    assert_eq!(
        v("dbs_archiver_exported_bytes_total", &[]),
        run.db_exported_bytes as f64,
        "exported bytes = sum of export_data_size of succeeded jobs"
    );
    assert_eq!(v("dbs_archiver_instances_blocked", &[]), 0.0);
    assert_eq!(v("dbs_archiver_oldest_queued_job_age_seconds", &[]), 0.0);
    assert_eq!(v("dbs_archiver_lease_rescues_total", &[]), 0.0);
    assert!(v("dbs_archiver_schedule_fires_total", &[]) >= 1.0);
    assert!(v("dbs_archiver_schedule_fire_lag_seconds_count", &[]) >= 1.0);
    assert!(
        v(
            "dbs_archiver_api_requests_total",
            &[("route", "/v1/downloads"), ("method", "POST")]
        ) >= API_JOBS as f64
    );
    // Labels never carry ids: no label value looks like an instance or a job id.
    for s in &run.samples {
        for (k, val) in &s.labels {
            assert!(
                !val.starts_with("rm-"),
                "{} has an instance id in {k}",
                s.name
            );
            assert!(
                k != "job_id" && k != "instance",
                "{} has an id label {k}",
                s.name
            );
        }
    }
}

pub fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A fresh process already exposes every documented metric (counters and gauges at 0,
/// histograms with empty buckets), each value of the fixed label sets, the cloud series of
/// the region registered before start, `process_*` and `dbs_archiver_build_info`, so
/// dashboards and alerts have a series before the first event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_series_exists_from_start() {
    let run = harness::run().await;
    let doc = std::fs::read_to_string(repo_path("docs/metrics.md")).unwrap();
    let has = |name: &str, labels: &[(&str, &str)]| {
        run.fresh.iter().any(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    };
    for metric in documented_metrics() {
        if metric == "dbs_archiver_schedule_next_fire_timestamp_seconds" {
            continue; // one series per schedule: none before a schedule exists
        }
        let series = if documented_kind(&doc, &metric) == "histogram" {
            format!("{metric}_bucket")
        } else {
            metric.clone()
        };
        assert!(has(&series, &[]), "{series} missing from a fresh /metrics");
    }
    for state in dbs_archiver::model::JobState::ALL {
        let state = state.as_str();
        assert!(has("dbs_archiver_jobs", &[("state", state)]), "{state}");
    }
    for outcome in ["succeeded", "failed", "cancelled"] {
        assert!(has(
            "dbs_archiver_jobs_finished_total",
            &[("outcome", outcome)]
        ));
        assert!(has(
            "dbs_archiver_job_duration_seconds_bucket",
            &[("outcome", outcome)]
        ));
    }
    for kind in [
        "throttled",
        "transient",
        "ambiguous",
        "instance_busy",
        "already_submitted",
        "not_found",
        "permanent",
    ] {
        assert!(has("dbs_archiver_dispatch_errors_total", &[("kind", kind)]));
        assert!(has(
            "dbs_archiver_cloud_calls_total",
            &[
                ("region", REGION),
                ("action", "CreateDownload"),
                ("result", kind)
            ]
        ));
    }
    assert!(has(
        "dbs_archiver_cloud_calls_total",
        &[
            ("region", REGION),
            ("action", "DescribeDownloadTask"),
            ("result", "ok")
        ]
    ));
    assert!(has(
        "dbs_archiver_cloud_throttled_total",
        &[("region", REGION)]
    ));
    for process in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(has(process, &[]), "{process} missing");
    }
    let build = run
        .fresh
        .iter()
        .find(|s| s.name == "dbs_archiver_build_info")
        .expect("build_info");
    assert_eq!(build.value, 1.0);
    assert_eq!(
        build.labels.get("version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
    // Counters start at 0: nothing has happened yet.
    let finished: f64 = run
        .fresh
        .iter()
        .filter(|s| s.name == "dbs_archiver_jobs_finished_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(finished, 0.0);
}
