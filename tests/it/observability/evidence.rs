//! `/metrics` after an end-to-end run: every documented metric is there, with values that
//! match what the run did and what the database holds.

use super::harness::{self, repo_path, API_JOBS};

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
        let kind = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{metric}`")))
            .and_then(|l| l.split('|').nth(2))
            .unwrap()
            .trim()
            .to_string();
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
