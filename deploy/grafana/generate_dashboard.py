#!/usr/bin/env python3
"""Regenerate deploy/grafana/dashboards/dbs-archiver.json (run from the repository root).

Every panel says what it shows and how to read it; docs/operations.md explains the same
panels for operators. A test checks that every metric named here is exposed by /metrics.

Database-derived gauges (jobs per state, backlog age, blocked instances, cli/sql enqueues)
are reported identically by every `serve` process, so they aggregate with max(); counters
of work done in a process (api/schedule enqueues, finished jobs, cloud calls) with sum().
"""
import json
import re

DS = {"type": "prometheus", "uid": "prometheus"}

PANELS = [
    ("Throughput: finished downloads / min by outcome", "timeseries", "short",
     "Downloads reaching a terminal state per minute (succeeded, failed, cancelled), summed over processes.",
     ["sum by (outcome) (rate(dbs_archiver_jobs_finished_total[5m])) * 60"]),
    ("Enqueued / min by source", "timeseries", "short",
     "New jobs per minute. api and schedule are counted by the process that enqueued them (sum); "
     "cli and sql come from the database and every process reports them (max).",
     ['sum by (source) (rate(dbs_archiver_jobs_enqueued_total{source=~"api|schedule"}[5m])) * 60',
      'max by (source) (rate(dbs_archiver_jobs_enqueued_total{source=~"cli|sql"}[5m])) * 60']),
    ("Jobs by state (backlog)", "timeseries", "short",
     "Jobs per state as the database counts them (queued = backlog).",
     ["max by (state) (dbs_archiver_jobs)"]),
    ("Oldest due queued job age", "stat", "s",
     "How long the longest-waiting due job has waited for a worker. Grows when workers are saturated, "
     "throttled, or its instance is blocked. Alert: DbsArchiverOldestQueuedJobTooOld.",
     ["max(dbs_archiver_oldest_queued_job_age_seconds)"]),
    ("Queue wait p50 / p99", "timeseries", "s",
     "Time from a job being due to a dispatcher claiming it.",
     ["histogram_quantile(0.5, sum by (le) (rate(dbs_archiver_queue_wait_seconds_bucket[10m])))",
      "histogram_quantile(0.99, sum by (le) (rate(dbs_archiver_queue_wait_seconds_bucket[10m])))"]),
    ("End-to-end duration p50 / p99", "timeseries", "s",
     "Enqueue to terminal state of succeeded downloads (includes queueing and the remote export).",
     ['histogram_quantile(0.5, sum by (le) (rate(dbs_archiver_job_duration_seconds_bucket{outcome="succeeded"}[30m])))',
      'histogram_quantile(0.99, sum by (le) (rate(dbs_archiver_job_duration_seconds_bucket{outcome="succeeded"}[30m])))']),
    ("Blocked instances", "stat", "short",
     "Instances held by a failed remote task (the cloud allows no new download until it is cleared). "
     "Metrics carry no instance ids: see which instances, the task and the reason on the status page (/) "
     "or with `dbs-archiver instances list`.",
     ["max(dbs_archiver_instances_blocked)"]),
    ("Longest instance block", "stat", "s",
     "Age of the oldest block. Per-instance detail is on the status page (metrics carry no instance ids). "
     "Alert: DbsArchiverInstanceBlocked (> 1 h).",
     ["max(dbs_archiver_instance_blocked_max_age_seconds)"]),
    ("Cloud calls / s by action and result", "timeseries", "reqps",
     "Every HTTP attempt to the DBS/RDS API; result is ok or the error class.",
     ["sum by (action, result) (rate(dbs_archiver_cloud_calls_total[5m]))"]),
    ("Cloud calls / s by region", "timeseries", "reqps",
     "Attempts per region; the per-region token bucket (dbs.calls_per_second_per_region) caps these.",
     ["sum by (region) (rate(dbs_archiver_cloud_calls_total[5m]))"]),
    ("Throttled calls / s by region", "timeseries", "reqps",
     "Attempts the cloud answered with Throttling*. Alert: DbsArchiverThrottlingSustained.",
     ["sum by (region) (rate(dbs_archiver_cloud_throttled_total[5m]))"]),
    ("Cloud call latency p50 / p99 by action", "timeseries", "s",
     "Latency of one HTTP attempt, by action.",
     ["histogram_quantile(0.5, sum by (le, action) (rate(dbs_archiver_cloud_call_duration_seconds_bucket[5m])))",
      "histogram_quantile(0.99, sum by (le, action) (rate(dbs_archiver_cloud_call_duration_seconds_bucket[5m])))"]),
    ("API calls per finished download", "stat", "short",
     "Cloud attempts per finished download over the last hour: the cost headline (design.md).",
     ["sum(increase(dbs_archiver_cloud_calls_total[1h])) / clamp_min(sum(increase(dbs_archiver_jobs_finished_total[1h])), 1)"]),
    ("Exported bytes / hour", "timeseries", "bytes",
     "ExportDataSize of downloads that succeeded.",
     ["sum(rate(dbs_archiver_exported_bytes_total[1h])) * 3600"]),
    ("Lease rescues / hour", "timeseries", "short",
     "Jobs whose worker lease expired (a process died or stalled) and were handed back.",
     ["sum(rate(dbs_archiver_lease_rescues_total[1h])) * 3600"]),
    ("Schedule fire lag p50 / p99", "timeseries", "s",
     "Fire time to job enqueued. Alert: DbsArchiverScheduleLag.",
     ["histogram_quantile(0.5, sum by (le) (rate(dbs_archiver_schedule_fire_lag_seconds_bucket[10m])))",
      "histogram_quantile(0.99, sum by (le) (rate(dbs_archiver_schedule_fire_lag_seconds_bucket[10m])))"]),
    ("Schedule fires, skips, misfires / hour", "timeseries", "short",
     "Fires, skipped fires by reason, and fire times found later than the misfire grace.",
     ["sum(rate(dbs_archiver_schedule_fires_total[1h])) * 3600",
      "sum by (reason) (rate(dbs_archiver_schedule_skips_total[1h])) * 3600",
      "sum(rate(dbs_archiver_schedule_misfires_total[1h])) * 3600"]),
    ("Seconds to each schedule's next fire", "timeseries", "s",
     "Next fire time minus now, per schedule (negative: overdue; the scheduler is behind or stopped). "
     "Paused schedules report 0 and are left out.",
     ["max by (schedule) (dbs_archiver_schedule_next_fire_timestamp_seconds > 0) - time()"]),
    ("Admin API requests / s by status", "timeseries", "reqps",
     "Requests to the admin API by HTTP status (route templates only, never raw paths).",
     ["sum by (status) (rate(dbs_archiver_api_requests_total[5m]))"]),
]


# Template variables: `instance` is the scrape target (one serve process), `region` the
# instance region of cloud calls, `schedule` the schedule name. Every selector filters by
# $instance; series that carry region or schedule also filter by those.
VARIABLES = [
    ("instance", "Process", "label_values(dbs_archiver_build_info, instance)"),
    ("region", "Region", "label_values(dbs_archiver_cloud_calls_total, region)"),
    ("schedule", "Schedule", "label_values(dbs_archiver_schedule_next_fire_timestamp_seconds, schedule)"),
]
LABELLED = {
    "region": ["dbs_archiver_cloud_calls_total", "dbs_archiver_cloud_throttled_total"],
    "schedule": ["dbs_archiver_schedule_next_fire_timestamp_seconds"],
}


def filtered(expr):
    """Add the variables' matchers to every dbs_archiver_* selector of expr."""
    def add(m):
        name, labels = m.group(1), m.group(2)
        matchers = ['instance=~"$instance"']
        matchers += [f'{var}=~"${var}"' for var, names in LABELLED.items()
                     if any(name == n or name.startswith(n + "_") for n in names)]
        inner = labels[1:-1] if labels else ""
        return name + "{" + ", ".join(matchers + ([inner] if inner else [])) + "}"
    return re.sub(r'(dbs_archiver_[a-z_]+)(\{[^}]*\})?', add, expr)


def variable(name, label, query):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": name},
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def panel(i, title, kind, unit, description, exprs):
    return {
        "id": i + 1,
        "title": title,
        "description": description,
        "type": kind,
        "datasource": DS,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
        "targets": [
            {"refId": chr(ord("A") + k), "expr": filtered(e), "datasource": DS}
            for k, e in enumerate(exprs)
        ],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }


dashboard = {
    "uid": "dbs-archiver",
    "title": "dbs-archiver",
    "schemaVersion": 39,
    "version": 3,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "tags": ["dbs-archiver"],
    "panels": [panel(i, *p) for i, p in enumerate(PANELS)],
    "templating": {"list": [variable(*v) for v in VARIABLES]},
    "annotations": {"list": []},
}

with open("deploy/grafana/dashboards/dbs-archiver.json", "w") as f:
    json.dump(dashboard, f, indent=2)
    f.write("\n")
