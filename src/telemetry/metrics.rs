//! The metric catalogue: every name, its kind and labels, in one place (docs/metrics.md
//! is the operator's copy; a test checks that the two agree with a real scrape).
//!
//! Conventions (style.md 14): prefix `dbs_archiver_`, counters end in `_total`, durations
//! are histograms in `_seconds`, and labels come from small fixed sets — action, region,
//! result class, state, source, outcome — never a job id or an instance id (those live in
//! traces, logs and the status page).

use crate::model::{Job, JobSource, JobState};
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Jobs created, by `source` (api, cli, sql, schedule).
pub const JOBS_ENQUEUED: &str = "dbs_archiver_jobs_enqueued_total";
/// Jobs that reached a terminal state, by `outcome` (succeeded, failed, cancelled).
pub const JOBS_FINISHED: &str = "dbs_archiver_jobs_finished_total";
/// Jobs per `state`, read from the database by the collector.
pub const JOBS: &str = "dbs_archiver_jobs";
/// How long the longest-waiting due queued job has waited (collector; 0 when none).
pub const OLDEST_QUEUED_AGE: &str = "dbs_archiver_oldest_queued_job_age_seconds";
/// Due (`run_at`) → claimed by a dispatcher.
pub const QUEUE_WAIT: &str = "dbs_archiver_queue_wait_seconds";
/// Created → terminal, by `outcome`.
pub const JOB_DURATION: &str = "dbs_archiver_job_duration_seconds";
/// Every HTTP attempt to the cloud, by `action`, `region`, `result` (ok or error class).
pub const CLOUD_CALLS: &str = "dbs_archiver_cloud_calls_total";
/// Latency of those attempts, by `action`.
pub const CLOUD_CALL_DURATION: &str = "dbs_archiver_cloud_call_duration_seconds";
/// Attempts answered with throttling, by `region`.
pub const CLOUD_THROTTLED: &str = "dbs_archiver_cloud_throttled_total";
/// `ExportDataSize` of succeeded downloads.
pub const EXPORTED_BYTES: &str = "dbs_archiver_exported_bytes_total";
/// Instances blocked by a failed remote task (collector).
pub const INSTANCES_BLOCKED: &str = "dbs_archiver_instances_blocked";
/// Age of the oldest block (collector; 0 when none).
pub const INSTANCE_BLOCKED_MAX_AGE: &str = "dbs_archiver_instance_blocked_max_age_seconds";
/// Jobs whose lease expired and were handed back (a worker died or stalled).
pub const LEASE_RESCUES: &str = "dbs_archiver_lease_rescues_total";
/// Rows the store could not read and quarantined (marked failed, Store.Quarantined).
pub const JOBS_QUARANTINED: &str = "dbs_archiver_jobs_quarantined_total";
/// Panics caught in a service (restarted) or a job's task, by `service`.
pub const PANICS: &str = "dbs_archiver_panics_total";
/// State changes made by the worker, by `from` and `to`.
pub const JOB_TRANSITIONS: &str = "dbs_archiver_job_transitions_total";
/// Failed CreateDownload attempts, by error `kind`.
pub const DISPATCH_ERRORS: &str = "dbs_archiver_dispatch_errors_total";
/// Collector rounds that failed to read the database.
pub const COLLECTOR_ERRORS: &str = "dbs_archiver_collector_errors_total";
/// How long the collector's last round took: the next round waits at least 100 times that
/// (the collector's pacing), so this also says how stale the database-derived gauges may be.
pub const COLLECTOR_ROUND: &str = "dbs_archiver_collector_round_seconds";
/// Admin API requests, by `method`, `route` (template) and `status`.
pub const API_REQUESTS: &str = "dbs_archiver_api_requests_total";
/// Their latency, by `method` and `route`.
pub const API_REQUEST_DURATION: &str = "dbs_archiver_api_request_duration_seconds";
/// Next fire time of each schedule (UNIX seconds; 0 while paused), by `schedule` name
/// (collector): schedules are few and named by the operator, so the name is a label.
pub const SCHEDULE_NEXT_FIRE: &str = "dbs_archiver_schedule_next_fire_timestamp_seconds";
/// Always 1, labelled with the `version` running: dashboards show it, alerts can compare.
pub const BUILD_INFO: &str = "dbs_archiver_build_info";

/// Every cloud action the client calls: the `action` label's values.
pub const CLOUD_ACTIONS: [&str; 6] = [
    "CreateDownload",
    "DescribeDownloadTask",
    "DescribeDownloadBackupSetStorageInfo",
    "RetryDownloadTask",
    "DescribeDownloadSupport",
    "DescribeBackups",
];

/// State changes the worker makes (`from`, `to`): the dispatcher's outcomes of a claim
/// and the tracker's terminal ones.
pub const WORKER_TRANSITIONS: [(JobState, JobState); 5] = [
    (JobState::Submitting, JobState::Running),
    (JobState::Submitting, JobState::Queued),
    (JobState::Submitting, JobState::Failed),
    (JobState::Running, JobState::Succeeded),
    (JobState::Running, JobState::Failed),
];

/// The `process_*` series (CPU, memory, file descriptors, threads, start time), read
/// from the operating system at each scrape.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Refresh what is sampled rather than counted (the `process_*` series); call before
/// rendering a scrape.
pub fn refresh() {
    process_collector().collect();
}

/// Histogram buckets for every `_seconds` histogram: 5 ms (a cloud call) to 1 day (a big
/// export), so the same buckets fit call latency, queue wait and job duration.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
];

/// The exporter configuration: `_seconds` histograms render as Prometheus histograms
/// (`_bucket` series), which aggregate across processes, unlike summaries.
pub fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .expect("static, non-empty bucket list")
}

/// `# HELP` lines, and zero values for the unlabelled counters and gauges so dashboards
/// and alerts see a series from the first scrape, not only after the first event.
pub fn describe_all() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        JOBS_ENQUEUED,
        "Jobs created, by source (api, cli, sql, schedule)."
    );
    describe_counter!(
        JOBS_FINISHED,
        "Jobs that reached a terminal state, by outcome."
    );
    describe_gauge!(JOBS, "Jobs per state, read from the database.");
    describe_gauge!(
        OLDEST_QUEUED_AGE,
        Unit::Seconds,
        "Wait of the longest-waiting due queued job."
    );
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Time from a job being due to being claimed."
    );
    describe_histogram!(
        JOB_DURATION,
        Unit::Seconds,
        "Time from enqueue to a terminal state, by outcome."
    );
    describe_counter!(
        CLOUD_CALLS,
        "HTTP attempts to the cloud API, by action, region and result."
    );
    describe_histogram!(
        CLOUD_CALL_DURATION,
        Unit::Seconds,
        "Latency of cloud API attempts, by action."
    );
    describe_counter!(
        CLOUD_THROTTLED,
        "Cloud API attempts answered with throttling, by region."
    );
    describe_counter!(
        EXPORTED_BYTES,
        Unit::Bytes,
        "ExportDataSize of succeeded downloads."
    );
    describe_gauge!(
        INSTANCES_BLOCKED,
        "Instances blocked by a failed remote task."
    );
    describe_gauge!(
        INSTANCE_BLOCKED_MAX_AGE,
        Unit::Seconds,
        "Age of the oldest instance block."
    );
    describe_counter!(
        LEASE_RESCUES,
        "Jobs whose lease expired and were handed back."
    );
    describe_counter!(
        JOB_TRANSITIONS,
        "Worker state changes, by from and to state."
    );
    describe_counter!(
        DISPATCH_ERRORS,
        "Failed CreateDownload attempts, by error kind."
    );
    describe_counter!(
        COLLECTOR_ERRORS,
        "Collector rounds that could not read the database."
    );
    describe_gauge!(
        COLLECTOR_ROUND,
        Unit::Seconds,
        "Duration of the collector's last round; the next waits at least 100 times that."
    );
    describe_counter!(
        API_REQUESTS,
        "Admin API requests, by method, route and status."
    );
    describe_histogram!(
        API_REQUEST_DURATION,
        Unit::Seconds,
        "Admin API latency, by method and route."
    );
    use crate::scheduler::metrics as sched;
    describe_histogram!(
        sched::FIRE_LAG,
        Unit::Seconds,
        "Schedule fire time to job enqueued."
    );
    describe_counter!(
        JOBS_QUARANTINED,
        "Rows the store could not read, quarantined as failed (Store.Quarantined)."
    );
    describe_counter!(
        PANICS,
        "Panics caught in a service (which restarts) or in a job's task, by service."
    );
    describe_counter!(sched::FIRES, "Schedule fire times fired.");
    describe_counter!(sched::SKIPS, "Skipped schedule fires, by reason.");
    describe_counter!(
        sched::MISFIRES,
        "Fire times found later than the misfire grace period."
    );
    describe_gauge!(BUILD_INFO, "1, labelled with the running version.");
    describe_gauge!(
        SCHEDULE_NEXT_FIRE,
        Unit::Seconds,
        "Next fire time of each schedule (UNIX seconds; 0 while paused), by schedule."
    );
    ::metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    process_collector().describe();
    refresh();
    for name in [
        EXPORTED_BYTES,
        LEASE_RESCUES,
        JOBS_QUARANTINED,
        COLLECTOR_ERRORS,
        sched::FIRES,
        sched::MISFIRES,
    ] {
        ::metrics::counter!(name).increment(0);
    }
    // Gauges the collector owns start at 0 until its first round.
    for state in JobState::ALL {
        ::metrics::gauge!(JOBS, "state" => state.as_str()).set(0.0);
    }
    for name in [
        OLDEST_QUEUED_AGE,
        INSTANCES_BLOCKED,
        INSTANCE_BLOCKED_MAX_AGE,
        COLLECTOR_ROUND,
    ] {
        ::metrics::gauge!(name).set(0.0);
    }
    // Histograms exist (with zero counts) once registered.
    for name in [QUEUE_WAIT, sched::FIRE_LAG] {
        let _ = ::metrics::histogram!(name);
    }
    for outcome in [JobState::Succeeded, JobState::Failed, JobState::Cancelled] {
        let _ = ::metrics::histogram!(JOB_DURATION, "outcome" => outcome.as_str());
    }
    for action in CLOUD_ACTIONS {
        let _ = ::metrics::histogram!(CLOUD_CALL_DURATION, "action" => action);
    }
    for kind in crate::dbs::DbsErrorKind::ALL {
        ::metrics::counter!(DISPATCH_ERRORS, "kind" => kind.as_str()).increment(0);
    }
    for (from, to) in WORKER_TRANSITIONS {
        ::metrics::counter!(JOB_TRANSITIONS, "from" => from.as_str(), "to" => to.as_str())
            .increment(0);
    }
    for reason in crate::scheduler::model::SkipReason::ALL {
        ::metrics::counter!(sched::SKIPS, "reason" => *reason).increment(0);
    }
    for service in SERVICES {
        ::metrics::counter!(PANICS, "service" => *service).increment(0);
    }
    for outcome in [JobState::Succeeded, JobState::Failed, JobState::Cancelled] {
        ::metrics::counter!(JOBS_FINISHED, "outcome" => outcome.as_str()).increment(0);
    }
    for source in [
        JobSource::Api,
        JobSource::Cli,
        JobSource::Sql,
        JobSource::Schedule,
    ] {
        ::metrics::counter!(JOBS_ENQUEUED, "source" => source.as_str()).increment(0);
    }
}

/// Zero-valued cloud series for `region` (every action and result), so throttling and
/// error-rate alerts see a series before the first call; the collector calls it for the
/// regions of the registered instances.
pub fn zero_cloud_series(region: &str) {
    let results = std::iter::once("ok").chain(crate::dbs::DbsErrorKind::ALL.map(|k| k.as_str()));
    for result in results {
        for action in CLOUD_ACTIONS {
            ::metrics::counter!(CLOUD_CALLS, "action" => action, "region" => region.to_string(), "result" => result)
                .increment(0);
        }
    }
    ::metrics::counter!(CLOUD_THROTTLED, "region" => region.to_string()).increment(0);
}

/// A job was created (the store calls this for api and schedule enqueues; the collector
/// adds cli and sql ones, which are usually made by other processes — docs/metrics.md).
pub fn job_enqueued(source: JobSource) {
    if matches!(source, JobSource::Api | JobSource::Schedule) {
        ::metrics::counter!(JOBS_ENQUEUED, "source" => source.as_str()).increment(1);
    }
}

/// Jobs of these sources are counted by the collector from the database.
pub fn counted_by_collector(source: JobSource) -> bool {
    matches!(source, JobSource::Cli | JobSource::Sql)
}

/// A dispatcher claimed `job` at `now`.
pub fn job_claimed(job: &Job, now: DateTime<Utc>) {
    let wait = (now - job.run_at).num_milliseconds().max(0) as f64 / 1000.0;
    ::metrics::histogram!(QUEUE_WAIT).record(wait);
}

/// The worker moved `job` to `to` at `now`; terminal states count as finished, and a
/// success adds its exported bytes.
pub fn job_transition(
    job: &Job,
    from: JobState,
    to: JobState,
    exported_bytes: Option<i64>,
    now: DateTime<Utc>,
) {
    ::metrics::counter!(JOB_TRANSITIONS, "from" => from.as_str(), "to" => to.as_str()).increment(1);
    if to.is_terminal() {
        job_finished(job, to, now);
        if to == JobState::Succeeded {
            if let Some(bytes) = exported_bytes.filter(|b| *b > 0) {
                ::metrics::counter!(EXPORTED_BYTES).increment(bytes as u64);
            }
        }
    }
}

/// A job ended in `outcome` (worker, or an operator's cancel through the API).
pub fn job_finished(job: &Job, outcome: JobState, now: DateTime<Utc>) {
    ::metrics::counter!(JOBS_FINISHED, "outcome" => outcome.as_str()).increment(1);
    let took = (now - job.created_at).num_milliseconds().max(0) as f64 / 1000.0;
    ::metrics::histogram!(JOB_DURATION, "outcome" => outcome.as_str()).record(took);
}

/// One HTTP attempt to the cloud ended: `result` is `ok` or an error class.
pub fn cloud_call(action: &'static str, region: &str, result: &'static str, seconds: f64) {
    ::metrics::counter!(CLOUD_CALLS, "action" => action, "region" => region.to_string(), "result" => result)
        .increment(1);
    ::metrics::histogram!(CLOUD_CALL_DURATION, "action" => action).record(seconds);
    if result == "throttled" {
        ::metrics::counter!(CLOUD_THROTTLED, "region" => region.to_string()).increment(1);
    }
}

/// Leases that expired and were handed back.
pub fn lease_rescues(n: usize) {
    ::metrics::counter!(LEASE_RESCUES).increment(n as u64);
}

/// The services `serve` runs, as the `service` label of [`PANICS`].
pub const SERVICES: &[&str] = &[
    "dispatcher",
    "tracker",
    "maintenance",
    "scheduler",
    "api",
    "collector",
    "dispatch_task",
];

/// The store quarantined a row it could not read.
pub fn job_quarantined() {
    ::metrics::counter!(JOBS_QUARANTINED).increment(1);
}

/// A panic was caught in `service`.
pub fn panic_caught(service: &'static str) {
    ::metrics::counter!(PANICS, "service" => service).increment(1);
}
