//! The built-in status page at `/`: plain server-rendered HTML, no scripts, no build step.
//!
//! It shows what an operator checks first: how many jobs are in each state, which instances
//! are busy or blocked (and by which task), the most recent jobs with their progress, and
//! the schedules with their next fire. It reloads itself every [`REFRESH_SECONDS`] with a
//! meta refresh. Every value from the database is HTML-escaped, and a strict
//! Content-Security-Policy forbids scripts altogether. Download URLs are not shown: the
//! page may be open (`api.status_page_open`) while those URLs grant access to data.

use super::error::ApiError;
use super::instances::active_jobs;
use super::ApiState;
use crate::model::{Job, JobState};
use crate::store::JobFilter;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::fmt::Write;

/// Seconds between automatic reloads.
pub const REFRESH_SECONDS: u32 = 10;

/// How many recent jobs the page lists.
pub const RECENT_JOBS: u32 = 25;

/// Escape text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// DBS `Progress` is "tables done/total"; `None` when it is absent or not of that form.
pub fn parse_progress(s: &str) -> Option<(u64, u64)> {
    let (done, total) = s.trim().split_once('/')?;
    let done = done.trim().parse::<u64>().ok()?;
    let total = total.trim().parse::<u64>().ok()?;
    (total > 0 && done <= total).then_some((done, total))
}

/// Percent done of a job: from its progress while it runs, 100 once it succeeded.
fn percent(job: &Job) -> Option<(u64, String)> {
    if job.state == JobState::Succeeded {
        return Some((100, "done".into()));
    }
    let (done, total) = parse_progress(job.remote.progress.as_deref()?)?;
    Some((done * 100 / total, format!("{done}/{total}")))
}

fn opt(v: Option<impl ToString>) -> String {
    v.map(|v| escape(&v.to_string()))
        .unwrap_or_else(|| "—".into())
}

/// The page.
#[utoipa::path(
    get, path = "/", tag = "ui", security((), ("bearer" = [])),
    responses((status = 200, description = "The status page", content_type = "text/html", body = String))
)]
pub async fn page(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let counts = state.store.job_count_by_state().await?;
    let active = active_jobs(&state.store).await?;
    let instances = state.store.instance_list().await?;
    let recent = state
        .store
        .job_list(&JobFilter {
            limit: RECENT_JOBS,
            ..JobFilter::default()
        })
        .await?
        .jobs;
    let schedules = crate::scheduler::ops::list(state.store.as_ref()).await?;
    let now = state.clock.now();

    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dbs-archiver status</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}
table{{border-collapse:collapse;margin-bottom:1.5rem}}
th,td{{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left;font-size:.9rem}}
.counts td{{font-size:1.2rem;font-weight:600}}
.bar{{width:10rem;height:.8rem;background:#eee;border-radius:.4rem;overflow:hidden}}
.bar>div{{height:100%;background:#3a7}}
.blocked{{color:#b22;font-weight:600}}
.state-failed{{color:#b22}} .state-succeeded{{color:#282}} .state-running{{color:#147}}
</style></head><body>
<h1>dbs-archiver</h1>
<p>Updated <time id="updated">{now}</time>; refreshes every {REFRESH_SECONDS}s.</p>
"#,
        now = escape(&now.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
    );

    // Counts by state, every state shown even at zero.
    h.push_str("<h2>Jobs by state</h2>\n<table id=\"counts\" class=\"counts\"><tr>");
    for s in JobState::ALL {
        let _ = write!(h, "<th>{}</th>", s.as_str());
    }
    h.push_str("</tr><tr>");
    for s in JobState::ALL {
        let n = counts
            .iter()
            .find(|(st, _)| *st == s)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        let _ = write!(h, "<td data-state=\"{}\">{n}</td>", s.as_str());
    }
    h.push_str("</tr></table>\n");

    // Instances.
    h.push_str("<h2>Instances</h2>\n");
    if instances.is_empty() {
        h.push_str("<p id=\"instances-empty\">No instances yet.</p>\n");
    } else {
        h.push_str(
            "<table id=\"instances\"><tr><th>instance</th><th>active job</th><th>status</th>\
             <th>blocking task</th><th>reason</th><th>last success</th></tr>\n",
        );
        for i in &instances {
            let job = active.get(&i.key);
            let status = if i.blocked {
                "<span class=\"blocked\">blocked</span>"
            } else if job.is_some() {
                "active"
            } else {
                "idle"
            };
            let _ = writeln!(
                h,
                "<tr data-instance=\"{key}\"><td>{key}</td><td>{job}</td><td>{status}</td>\
                 <td>{task}</td><td>{reason}</td><td>{success}</td></tr>",
                key = escape(&i.key.to_string()),
                job = job.map(|id| format!("#{id}")).unwrap_or_else(|| "—".into()),
                task = opt(i.blocking_task_id.as_deref()),
                reason = opt(i.blocked_reason.as_deref()),
                success = opt(i.last_success_at.map(|t| t.format("%Y-%m-%d %H:%M UTC"))),
            );
        }
        h.push_str("</table>\n");
    }

    // Recent jobs.
    h.push_str("<h2>Recent jobs</h2>\n");
    if recent.is_empty() {
        h.push_str("<p id=\"jobs-empty\">No jobs yet.</p>\n");
    } else {
        h.push_str(
            "<table id=\"jobs\"><tr><th>id</th><th>instance</th><th>state</th><th>progress</th>\
             <th>task</th><th>attempts</th><th>created</th><th>last error</th></tr>\n",
        );
        for j in &recent {
            let progress = match percent(j) {
                Some((pct, label)) => format!(
                    "<div class=\"bar\" role=\"progressbar\" aria-valuenow=\"{pct}\" \
                     aria-valuemin=\"0\" aria-valuemax=\"100\" title=\"{label}\">\
                     <div style=\"width:{pct}%\"></div></div> {label}",
                    label = escape(&label)
                ),
                None => "—".into(),
            };
            let error = j
                .last_error
                .as_ref()
                .map(|e| escape(&format!("{}: {}", e.code, e.message)))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                h,
                "<tr data-job=\"{id}\"><td>{id}</td><td>{inst}</td>\
                 <td class=\"state-{state}\">{state}</td><td>{progress}</td><td>{task}</td>\
                 <td>{att}/{max}</td><td>{created}</td><td>{error}</td></tr>",
                id = j.id,
                inst = escape(&j.instance_key().to_string()),
                state = j.state.as_str(),
                task = opt(j.remote.task_id.as_deref()),
                att = j.attempts,
                max = j.max_attempts,
                created = escape(&j.created_at.format("%Y-%m-%d %H:%M:%S").to_string()),
            );
        }
        h.push_str("</table>\n");
    }

    // Schedules.
    h.push_str("<h2>Schedules</h2>\n");
    if schedules.is_empty() {
        h.push_str("<p id=\"schedules-empty\">No schedules.</p>\n");
    } else {
        h.push_str(
            "<table id=\"schedules\"><tr><th>name</th><th>cron</th><th>zone</th><th>status</th>\
             <th>next fire (UTC)</th><th>last fire (UTC)</th></tr>\n",
        );
        for sc in &schedules {
            let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| {
                opt(t.map(|t| t.format("%Y-%m-%d %H:%M:%S")))
            };
            let _ = writeln!(
                h,
                "<tr data-schedule=\"{name}\"><td>{name}</td><td><code>{cron}</code></td>\
                 <td>{tz}</td><td>{status}</td><td>{next}</td><td>{last}</td></tr>",
                name = escape(&sc.spec.name),
                cron = escape(&sc.spec.cron),
                tz = escape(&sc.spec.timezone),
                status = if sc.enabled { "active" } else { "paused" },
                next = if sc.enabled {
                    fmt(sc.next_fire_time)
                } else {
                    "—".into()
                },
                last = fmt(sc.last_fire_time),
            );
        }
        h.push_str("</table>\n");
    }

    h.push_str("</body></html>\n");
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        h,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn progress_forms() {
        assert_eq!(parse_progress("3/10"), Some((3, 10)));
        assert_eq!(parse_progress(" 0 / 4 "), Some((0, 4)));
        assert_eq!(parse_progress("5/0"), None);
        assert_eq!(parse_progress("11/10"), None);
        assert_eq!(parse_progress("abc"), None);
        assert_eq!(parse_progress(""), None);
    }
}
