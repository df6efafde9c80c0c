//! `/ui/`: what an operator checks first — jobs by state, throughput and bytes over the
//! last day, the oldest waiting job, failing and blocked instances, schedules whose last
//! fire skipped instances.

use super::chart::{self, Bar};
use super::html::{self, esc, time, PageError};
use super::jobs::instance_link;
use super::session::Viewer;
use crate::api::ApiState;
use crate::model::JobState;
use crate::scheduler::model::{RunOutcome, Schedule, ScheduleRun};
use axum::extract::State;
use axum::response::Response;
use chrono::DurationRound;
use std::fmt::Write;

/// Hours of history in the charts and the failing-instances list.
const WINDOW_HOURS: u32 = 24;
/// Rows in the failing and blocked lists.
const TOP: u32 = 10;
/// History rows read per schedule to find its last fire.
const LAST_FIRE_ROWS: u32 = 200;

/// The rows of a schedule's most recent fire (history is newest first).
pub(super) fn last_fire(runs: &[ScheduleRun]) -> Vec<&ScheduleRun> {
    let Some(t) = runs.first().map(|r| r.fire_time) else {
        return Vec::new();
    };
    runs.iter().filter(|r| r.fire_time == t).collect()
}

async fn skipped_last_fire(
    state: &ApiState,
    schedules: &[Schedule],
) -> Result<Vec<(Schedule, Vec<ScheduleRun>)>, PageError> {
    let mut out = Vec::new();
    for s in schedules {
        let runs = crate::scheduler::ops::history(state.store.as_ref(), s, LAST_FIRE_ROWS).await?;
        let skipped: Vec<ScheduleRun> = last_fire(&runs)
            .into_iter()
            .filter(|r| r.outcome == RunOutcome::Skipped)
            .cloned()
            .collect();
        if !skipped.is_empty() {
            out.push((s.clone(), skipped));
        }
    }
    Ok(out)
}

/// `GET /ui/`.
pub async fn page(State(state): State<ApiState>, viewer: Viewer) -> Result<Response, PageError> {
    let now = state.clock.now();
    let counts = state.store.job_count_by_state().await?;
    let snapshot = state.store.queue_snapshot(0).await?;
    let hour = chrono::Duration::hours(1);
    let since = now - hour * WINDOW_HOURS as i32;
    let since = since.duration_trunc(hour).unwrap_or(since);
    let throughput = state
        .store
        .console_throughput(since, hour, WINDOW_HOURS + 1)
        .await?;
    let failing = state.store.console_failing_instances(since, TOP).await?;
    let blocked: Vec<_> = state
        .store
        .instance_list()
        .await?
        .into_iter()
        .filter(|i| i.blocked)
        .collect();
    let schedules = crate::scheduler::ops::list(state.store.as_ref()).await?;
    let skipped = skipped_last_fire(&state, &schedules).await?;

    let mut h = String::from("<div id=\"overview\" data-live>");
    // Counts by state, each a link to the filtered list.
    h.push_str("<section class=\"cards\" id=\"counts\">");
    for s in JobState::ALL {
        let n = counts
            .iter()
            .find(|(st, _)| *st == s)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        let _ = write!(
            h,
            "<a class=\"card state-{s}\" href=\"/ui/jobs?state={s}\" data-state=\"{s}\">\
             <span class=\"n\">{n}</span><span class=\"label\">{s}</span></a>",
            s = s.as_str()
        );
    }
    let oldest = match snapshot.oldest_due(now) {
        Some(t) => format!(
            "<span class=\"n\">{}</span><span class=\"label\">oldest queued job waiting</span>",
            html::span(now - t)
        ),
        None => "<span class=\"n\">—</span><span class=\"label\">no job waiting</span>".into(),
    };
    let _ = write!(h, "<div class=\"card\" id=\"oldest-queued\">{oldest}</div>");
    h.push_str("</section>");

    // Charts.
    let label = |t: chrono::DateTime<chrono::Utc>| t.format("%m-%d %H:00").to_string();
    let jobs_bars: Vec<Bar> = throughput
        .iter()
        .map(|b| Bar {
            label: label(b.start),
            segments: vec![(b.succeeded as f64, "ok"), (b.failed as f64, "bad")],
        })
        .collect();
    let bytes_bars: Vec<Bar> = throughput
        .iter()
        .map(|b| Bar {
            label: label(b.start),
            segments: vec![(b.bytes as f64, "bytes")],
        })
        .collect();
    let done: i64 = throughput.iter().map(|b| b.succeeded).sum();
    let failed: i64 = throughput.iter().map(|b| b.failed).sum();
    let bytes: i64 = throughput.iter().map(|b| b.bytes).sum();
    let _ = write!(
        h,
        "<div class=\"grid2\"><section><h2>Finished per hour</h2>\
         <p class=\"muted\">last {WINDOW_HOURS} h: <span class=\"ok-text\">{done} succeeded</span>, \
         <span class=\"bad-text\">{failed} failed</span></p>{c1}</section>\
         <section><h2>Bytes archived per hour</h2><p class=\"muted\">last {WINDOW_HOURS} h: {b}</p>{c2}</section></div>",
        c1 = chart::bars("chart-jobs", "Jobs finished per hour", &jobs_bars, |v| format!("{v:.0}")),
        c2 = chart::bars("chart-bytes", "Bytes archived per hour", &bytes_bars, |v| html::bytes(v as i64)),
        b = html::bytes(bytes),
    );

    h.push_str("<div class=\"grid3\">");
    // Failing instances.
    h.push_str("<section><h2>Failing instances</h2>");
    if failing.is_empty() {
        let _ = write!(
            h,
            "<p class=\"empty\" id=\"failing-empty\">No failures in the last {WINDOW_HOURS} h.</p>"
        );
    } else {
        h.push_str(
            "<table id=\"failing\" class=\"fixed\"><tr><th>instance</th><th>failures</th><th>last</th></tr>",
        );
        for f in &failing {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"num\"><a href=\"/ui/jobs?state=failed&amp;region={}&amp;instance={}\">{}</a></td><td>{}</td></tr>",
                instance_link(&f.key.region, &f.key.instance),
                html::url_encode(&f.key.region),
                html::url_encode(&f.key.instance),
                f.failures,
                time(f.last_failed_at)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");

    // Blocked instances.
    h.push_str("<section><h2>Blocked instances</h2>");
    if blocked.is_empty() {
        h.push_str("<p class=\"empty\" id=\"blocked-empty\">None blocked.</p>");
    } else {
        h.push_str("<table id=\"blocked\" class=\"fixed\"><tr><th>instance</th><th>since</th><th>reason</th></tr>");
        for i in blocked.iter().take(TOP as usize) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"error-cell\"><span class=\"err\" title=\"{r}\">{r}</span></td></tr>",
                instance_link(&i.key.region, &i.key.instance),
                html::opt_time(i.blocked_at),
                r = esc(i.blocked_reason.as_deref().unwrap_or("")),
            );
        }
        h.push_str("</table>");
        if blocked.len() > TOP as usize {
            let _ = write!(
                h,
                "<p><a href=\"/ui/instances?status=blocked\">all {} blocked instances</a></p>",
                blocked.len()
            );
        }
    }
    h.push_str("</section>");

    // Schedules whose last fire skipped something.
    h.push_str("<section><h2>Schedules that skipped</h2>");
    if skipped.is_empty() {
        h.push_str(
            "<p class=\"empty\" id=\"skipped-empty\">Every last fire enqueued its instances.</p>",
        );
    } else {
        h.push_str("<table id=\"skipped\" class=\"fixed\"><tr><th>schedule</th><th>fire</th><th>skipped</th><th>why</th></tr>");
        for (s, runs) in &skipped {
            let reasons: Vec<String> = runs
                .iter()
                .filter_map(|r| r.reason.map(|x| x.as_str().to_string()))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let _ = write!(
                h,
                "<tr><td><a href=\"/ui/schedules/{}\">{}</a></td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                html::url_encode(&s.spec.name),
                esc(&s.spec.name),
                time(runs[0].fire_time),
                runs.len(),
                esc(&reasons.join(", "))
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section></div></div>");
    Ok(html::page(
        &state,
        Some(&viewer),
        "Overview",
        "Overview",
        &h,
        now,
    ))
}
