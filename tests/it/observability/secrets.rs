//! A whole job at log level debug with a known AccessKey secret and a known API token:
//! neither appears in any log line, error body, metric, trace or database row.

use super::harness::{self, AK_ID, AK_SECRET, API_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_appear_in_no_log_error_metric_trace_or_row() {
    let run = harness::run().await;
    // The run really exercised what we search: debug logs, signed calls, rows, spans.
    assert!(
        run.logs.lines().count() > 50,
        "too few log lines to mean anything"
    );
    assert!(
        run.logs.contains("\"level\":\"DEBUG\""),
        "the child did not log at debug"
    );
    assert!(run.db_dump.lines().any(|l| l.starts_with("jobs ")));
    assert!(run.db_dump.lines().any(|l| l.starts_with("job_events ")));
    assert!(run.scrape.contains("dbs_archiver_cloud_calls_total"));
    assert!(!run.otlp.is_empty(), "no traces were received");
    assert_eq!(run.api_errors.len(), 2);
    let places: Vec<(&str, String)> = vec![
        ("logs", run.logs.clone()),
        ("database", run.db_dump.clone()),
        ("metrics", run.scrape.clone()),
        ("api errors", run.api_errors.join("\n")),
        ("traces", run.otlp.join("\n")),
    ];
    for (place, text) in &places {
        for (what, secret) in [("AccessKey secret", AK_SECRET), ("API token", API_TOKEN)] {
            assert!(!text.contains(secret), "the {what} appears in the {place}");
        }
    }
    // The AccessKey *id* is not a secret, and the search would find it if it were there:
    // proof that the logs we search hold what the client sent.
    assert!(run.logs.contains(AK_ID) || run.logs.contains("DBS credentials source chosen"));
}
