//! `/ui/schedules` and `/ui/schedules/{name}`: cron in words, the next fires in the
//! schedule's zone, every past fire with what it enqueued or why it skipped, and
//! pause / resume / run-now / preview through `scheduler::ops` (as the API does).

use super::cron_words::describe;
use super::html::{self, esc, opt_time, time, PageError};
use super::jobs::instance_link;
use super::overview::last_fire;
use super::session::{CsrfForm, Viewer};
use crate::api::ApiState;
use crate::scheduler::model::{RunOutcome, Schedule, ScheduleRun};
use crate::scheduler::ops;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// Fire times shown ahead.
const NEXT_FIRES: usize = 5;
/// History rows read for a schedule page (newest first).
const HISTORY_ROWS: u32 = 2000;
/// History rows read per schedule on the list page, to summarise its last fire.
const LAST_FIRE_ROWS: u32 = 200;

fn url(s: &Schedule) -> String {
    format!("/ui/schedules/{}", html::url_encode(&s.spec.name))
}

fn status(s: &Schedule) -> &'static str {
    if s.enabled {
        "active"
    } else {
        "paused"
    }
}

/// "3 enqueued, 1 skipped (overlap)" for the rows of one fire.
fn fire_summary(rows: &[&ScheduleRun]) -> String {
    let enqueued = rows
        .iter()
        .filter(|r| r.outcome == RunOutcome::Enqueued)
        .count();
    let skipped: Vec<&&ScheduleRun> = rows
        .iter()
        .filter(|r| r.outcome == RunOutcome::Skipped)
        .collect();
    let mut s = format!("{enqueued} enqueued");
    if !skipped.is_empty() {
        let reasons: std::collections::BTreeSet<&str> = skipped
            .iter()
            .filter_map(|r| r.reason.map(|x| x.as_str()))
            .collect();
        let _ = write!(
            s,
            ", <span class=\"bad-text\">{} skipped ({})</span>",
            skipped.len(),
            esc(&reasons.into_iter().collect::<Vec<_>>().join(", "))
        );
    }
    s
}

/// `GET /ui/schedules`.
pub async fn list(State(state): State<ApiState>, viewer: Viewer) -> Result<Response, PageError> {
    let now = state.clock.now();
    let schedules = ops::list(state.store.as_ref()).await?;
    let mut h = String::from(
        "<section id=\"schedule-list\" data-live><div class=\"scroll\"><table id=\"schedules\"><thead><tr>\
         <th>name</th><th>when</th><th>zone</th><th>status</th><th>next fire</th>\
         <th>last fire</th><th>last fire did</th></tr></thead><tbody>",
    );
    for s in &schedules {
        let runs = ops::history(state.store.as_ref(), s, LAST_FIRE_ROWS).await?;
        let last = last_fire(&runs);
        let next = if s.enabled {
            next_in_zone(s, now, 1)
                .into_iter()
                .next()
                .unwrap_or_else(|| "—".into())
        } else {
            "—".into()
        };
        let _ = write!(
            h,
            "<tr data-schedule=\"{name}\" data-status=\"{st}\"><td><a href=\"{url}\">{name}</a></td>\
             <td>{words}<div class=\"muted\"><code>{cron}</code></div></td><td>{tz}</td>\
             <td><span class=\"badge st-{st}\">{st}</span></td><td>{next}</td><td>{lastt}</td><td>{did}</td></tr>",
            name = esc(&s.spec.name),
            url = esc(&url(s)),
            st = status(s),
            words = esc(&describe(&s.spec.cron)),
            cron = esc(&s.spec.cron),
            tz = esc(&s.spec.timezone),
            lastt = opt_time(s.last_fire_time),
            did = if last.is_empty() {
                "—".into()
            } else {
                fire_summary(&last)
            },
        );
    }
    h.push_str("</tbody></table></div>");
    if schedules.is_empty() {
        h.push_str("<p class=\"empty\" id=\"schedules-empty\">No schedules. Add one with <code>dbs-archiver schedules add</code>, the API or <code>[[scheduler.schedules]]</code>.</p>");
    }
    h.push_str("</section>");
    Ok(html::page(
        &state,
        Some(&viewer),
        "Schedules",
        "Schedules",
        &h,
        now,
    ))
}

/// The next `n` fires after the cursor (or now), formatted in the schedule's zone.
fn next_in_zone(s: &Schedule, now: DateTime<Utc>, n: usize) -> Vec<String> {
    ops::next_fires(&s.spec, s.cursor().max(now), n)
        .map(|v| {
            v.into_iter()
                .map(|t| {
                    format!(
                        "<time datetime=\"{}\">{}</time>",
                        t.with_timezone(&Utc)
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        t.format("%a %Y-%m-%d %H:%M %Z")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn load(state: &ApiState, name: &str) -> Result<Schedule, PageError> {
    ops::get(state.store.as_ref(), name)
        .await
        .map_err(|e| match e {
            crate::scheduler::SchedulerError::NotFound(m) => PageError::NotFound(m),
            other => other.into(),
        })
}

/// `GET /ui/schedules/{name}`.
pub async fn detail(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let q = super::jobs::parse_query(raw.as_deref(), &["done"])?;
    let s = load(&state, &name).await?;
    let now = state.clock.now();
    let runs = ops::history(state.store.as_ref(), &s, HISTORY_ROWS).await?;
    let u = url(&s);

    let mut h = String::new();
    if let Some(done) = q.get("done") {
        let _ = write!(
            h,
            "<p class=\"flash ok\" role=\"status\" id=\"flash\">Schedule {}.</p>",
            esc(done)
        );
    }
    let _ = write!(
        h,
        "<section id=\"state\" data-live><p class=\"summary\"><span class=\"badge st-{st}\" id=\"status\">{st}</span> \
         {words} ({tz}) · <code>{cron}</code> · origin {origin}</p><div class=\"actions\" id=\"actions\">",
        st = status(&s),
        words = esc(&describe(&s.spec.cron)),
        tz = esc(&s.spec.timezone),
        cron = esc(&s.spec.cron),
        origin = s.origin.as_str(),
    );
    if s.enabled {
        h.push_str(&html::action_button(
            &viewer,
            &format!("{u}/pause"),
            "Pause",
            "",
        ));
    } else {
        h.push_str(&html::action_button(
            &viewer,
            &format!("{u}/resume"),
            "Resume",
            "primary",
        ));
    }
    h.push_str(&html::action_button(
        &viewer,
        &format!("{u}/run-now"),
        "Run now",
        "",
    ));
    let _ = write!(
        h,
        "<a class=\"button\" href=\"{u}/preview\" id=\"preview\">Preview next fire</a> \
         <a class=\"button\" href=\"/ui/jobs?schedule={n}\">Jobs of this schedule</a></div></section>",
        u = esc(&u),
        n = html::url_encode(&s.spec.name),
    );

    h.push_str("<div class=\"grid2\"><section><h2>Next fires</h2><ol id=\"next-fires\">");
    if s.enabled {
        for t in next_in_zone(&s, now, NEXT_FIRES) {
            let _ = write!(h, "<li>{t}</li>");
        }
    } else {
        h.push_str("<li class=\"muted\">paused: no fires until resumed</li>");
    }
    h.push_str("</ol></section><section><h2>Definition</h2><table class=\"kv\" id=\"spec\">");
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&s.spec) {
        for (k, v) in m {
            let text = match v {
                serde_json::Value::String(x) => x,
                other => other.to_string(),
            };
            let _ = write!(
                h,
                "<tr><th>{}</th><td><code>{}</code></td></tr>",
                esc(&k),
                esc(&text)
            );
        }
    }
    h.push_str("</table></section></div>");

    // Every past fire (newest first), grouped by fire time.
    h.push_str("<section id=\"fires\" data-live><h2>Past fires</h2>");
    if runs.is_empty() {
        h.push_str("<p class=\"empty\" id=\"fires-empty\">No fire yet.</p>");
    } else {
        h.push_str("<table id=\"history\"><thead><tr><th>fire time</th><th>outcome</th><th>instances</th></tr></thead><tbody>");
        let mut i = 0;
        while i < runs.len() {
            let t = runs[i].fire_time;
            let group: Vec<&ScheduleRun> =
                runs[i..].iter().take_while(|r| r.fire_time == t).collect();
            i += group.len();
            let mut detail = String::new();
            for r in &group {
                let who = r
                    .instance
                    .as_ref()
                    .map(|k| instance_link(&k.region, &k.instance))
                    .unwrap_or_else(|| "(whole schedule)".into());
                match r.outcome {
                    RunOutcome::Enqueued => {
                        let job = r
                            .job_id
                            .map(|id| format!(" → <a href=\"/ui/jobs/{id}\">#{id}</a>"))
                            .unwrap_or_default();
                        let _ = write!(detail, "<div>{who}{job}</div>");
                    }
                    RunOutcome::Skipped => {
                        let _ = write!(
                            detail,
                            "<div>{who}: <span class=\"bad-text\">skipped, {}</span> <span class=\"muted\">{}</span></div>",
                            r.reason.map(|x| x.as_str()).unwrap_or(""),
                            esc(r.detail.as_deref().unwrap_or(""))
                        );
                    }
                }
            }
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td><details><summary>{} row(s)</summary>{detail}</details></td></tr>",
                time(t),
                fire_summary(&group),
                group.len()
            );
        }
        h.push_str("</tbody></table>");
        if runs.len() as u32 >= HISTORY_ROWS {
            let _ = write!(
                h,
                "<p class=\"muted\">Showing the newest {HISTORY_ROWS} rows.</p>"
            );
        }
    }
    h.push_str("</section>");
    Ok(html::page(
        &state,
        Some(&viewer),
        &format!("Schedule {}", s.spec.name),
        "Schedules",
        &h,
        now,
    ))
}

/// `GET /ui/schedules/{name}/preview`: a dry run of the next fire; records nothing.
pub async fn preview(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let s = load(&state, &name).await?;
    let out = ops::preview(
        state.store.as_ref(),
        state.backups.as_deref(),
        state.clock.as_ref(),
        &s,
        None,
        state.backup_window,
    )
    .await?;
    let mut h = format!(
        "<p class=\"summary\">The fire at {} would do this (nothing was enqueued or recorded).</p>\
         <table id=\"preview-items\"><thead><tr><th>instance</th><th>outcome</th><th>request</th></tr></thead><tbody>",
        time(out.fire_time)
    );
    for item in &out.items {
        let outcome = match item.skipped {
            Some(r) => format!(
                "<span class=\"bad-text\">skip: {}</span> {}",
                r.as_str(),
                esc(item.detail.as_deref().unwrap_or(""))
            ),
            None => "enqueue".into(),
        };
        let request = item
            .request
            .as_ref()
            .and_then(|r| serde_json::to_string(r).ok())
            .map(|j| format!("<code>{}</code>", esc(&j)))
            .unwrap_or_else(|| "—".into());
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{outcome}</td><td class=\"error-cell\">{request}</td></tr>",
            instance_link(&item.instance.region, &item.instance.instance)
        );
    }
    h.push_str("</tbody></table>");
    if out.items.is_empty() {
        h.push_str("<p class=\"empty\">No instance matches the targets.</p>");
    }
    let _ = write!(
        h,
        "<p><a href=\"{}\">Back to the schedule</a></p>",
        esc(&url(&s))
    );
    Ok(html::page(
        &state,
        Some(&viewer),
        &format!("Preview of {}", s.spec.name),
        "Schedules",
        &h,
        state.clock.now(),
    ))
}

/// Pause (`enable = false`) or resume through `scheduler::ops`, as the API does.
async fn set_enabled(
    state: &ApiState,
    viewer: &Viewer,
    name: &str,
    csrf: &str,
    enable: bool,
) -> Result<Response, PageError> {
    viewer.act(csrf)?;
    let s = load(state, name).await?;
    let (store, id, now) = (state.store.as_ref(), s.id.to_string(), state.clock.now());
    let (s, done) = if enable {
        (ops::resume(store, &id, now).await?, "resumed")
    } else {
        (ops::pause(store, &id, now).await?, "paused")
    };
    tracing::info!(schedule = %s.spec.name, done, "schedule changed through the console");
    Ok(Redirect::to(&format!("{}?done={done}", url(&s))).into_response())
}

/// `POST /ui/schedules/{name}/pause`.
pub async fn pause(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    set_enabled(&state, &viewer, &name, &f.csrf, false).await
}

/// `POST /ui/schedules/{name}/resume`.
pub async fn resume(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    set_enabled(&state, &viewer, &name, &f.csrf, true).await
}

/// `POST /ui/schedules/{name}/run-now`: fire now, outside the cron (cursor unchanged).
pub async fn run_now(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    viewer.act(&f.csrf)?;
    let s = load(&state, &name).await?;
    let out = ops::run_now(
        state.store.as_ref(),
        state.backups.as_deref(),
        state.clock.as_ref(),
        &s,
        state.backup_window,
    )
    .await?;
    let created = out.items.iter().filter(|i| i.created).count();
    tracing::info!(schedule = %s.spec.name, jobs = created, "schedule run now through the console");
    let done = format!("ran now: {created} job(s) enqueued");
    Ok(Redirect::to(&format!("{}?done={}", url(&s), html::url_encode(&done))).into_response())
}
