//! `/ui/instances` and `/ui/instances/{region}/{instance}`: freshness of each instance's
//! last archive against `console.freshness_hours`, size trend, block and tags.

use super::chart::{self, Bar};
use super::html::{self, esc, opt, opt_time, time, PageError};
use super::jobs::{instance_link, jobs_table, parse_query, PLAIN_HEADER};
use super::session::{CsrfForm, Viewer};
use crate::api::ApiState;
use crate::model::{normalize_tags, Instance, InstanceKey, JobState};
use crate::store::console::JobQuery;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// Succeeded jobs drawn in the size trend.
const TREND_JOBS: u32 = 20;
/// Recent jobs listed on an instance page.
const RECENT_JOBS: u32 = 20;

/// Where an instance stands against the freshness objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Stale,
    Never,
}

impl Freshness {
    pub fn of(
        last_success: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        objective: chrono::Duration,
    ) -> Self {
        match last_success {
            None => Freshness::Never,
            Some(t) if now - t > objective => Freshness::Stale,
            Some(_) => Freshness::Fresh,
        }
    }

    fn as_str(&self) -> &'static str {
        match self {
            Freshness::Fresh => "fresh",
            Freshness::Stale => "stale",
            Freshness::Never => "never",
        }
    }
}

fn freshness_cell(i: &Instance, now: DateTime<Utc>, objective: chrono::Duration) -> String {
    let f = Freshness::of(i.last_success_at, now, objective);
    let age = i
        .last_success_at
        .map(|t| format!("{} ago", html::span(now - t)))
        .unwrap_or_else(|| "never archived".into());
    format!("<span class=\"fresh-{}\">{age}</span>", f.as_str())
}

fn status_of(i: &Instance, now: DateTime<Utc>, objective: chrono::Duration) -> &'static str {
    if i.blocked {
        "blocked"
    } else {
        Freshness::of(i.last_success_at, now, objective).as_str()
    }
}

/// `GET /ui/instances?status=blocked|stale|fresh|never&q=prefix`.
pub async fn list(
    State(state): State<ApiState>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let q = parse_query(raw.as_deref(), &["status", "q"])?;
    let status = q.get("status").map(String::as_str);
    if let Some(s) = status {
        if !["blocked", "stale", "fresh", "never"].contains(&s) {
            return Err(PageError::invalid(
                "status",
                "must be one of blocked, stale, fresh, never",
            ));
        }
    }
    let now = state.clock.now();
    let objective = state.console.freshness;
    let all = state.store.instance_list().await?;
    let shown: Vec<&Instance> = all
        .iter()
        .filter(|i| status.is_none_or(|s| status_of(i, now, objective) == s))
        .filter(|i| {
            q.get("q")
                .is_none_or(|p| i.key.instance.starts_with(p.as_str()))
        })
        .collect();
    let count = |s: &str| {
        all.iter()
            .filter(|i| status_of(i, now, objective) == s)
            .count()
    };

    let mut h = String::new();
    let _ = write!(
        h,
        "<p class=\"muted\">Objective: every instance archived within {} h \
         (<code>console.freshness_hours</code>).</p><nav class=\"tabs\">\
         <a href=\"/ui/instances\">all {}</a>",
        objective.num_hours(),
        all.len()
    );
    for s in ["blocked", "stale", "never", "fresh"] {
        let _ = write!(
            h,
            "<a href=\"/ui/instances?status={s}\" id=\"tab-{s}\">{s} {}</a>",
            count(s)
        );
    }
    let _ = write!(
        h,
        "</nav><form method=\"get\" action=\"/ui/instances\" class=\"filters\">\
         <input type=\"hidden\" name=\"status\" value=\"{}\">\
         <label>instance prefix<input type=\"search\" name=\"q\" value=\"{}\"></label>\
         <button type=\"submit\">Search</button></form>",
        esc(status.unwrap_or("")),
        esc(q.get("q").map(String::as_str).unwrap_or(""))
    );
    h.push_str(
        "<section id=\"instance-list\" data-live><div class=\"scroll\"><table id=\"instances\"><thead><tr>\
         <th>instance</th><th>region</th><th>status</th><th>last success</th><th>age</th>\
         <th>tags</th><th>blocked reason</th></tr></thead><tbody>",
    );
    for i in &shown {
        let st = status_of(i, now, objective);
        let _ = write!(
            h,
            "<tr data-instance=\"{key}\" data-status=\"{st}\"><td>{link}</td><td>{region}</td>\
             <td><span class=\"badge st-{st}\">{st}</span></td><td>{last}</td><td>{age}</td>\
             <td>{tags}</td><td class=\"error-cell\"><span class=\"err\" title=\"{reason}\">{reason}</span></td></tr>",
            key = esc(&i.key.to_string()),
            link = instance_link(&i.key.region, &i.key.instance),
            region = esc(&i.key.region),
            last = opt_time(i.last_success_at),
            age = freshness_cell(i, now, objective),
            tags = tags_html(&i.tags),
            reason = esc(i.blocked_reason.as_deref().unwrap_or("")),
        );
    }
    h.push_str("</tbody></table></div>");
    if shown.is_empty() {
        h.push_str("<p class=\"empty\" id=\"instances-empty\">No instances match.</p>");
    }
    h.push_str("</section>");
    Ok(html::page(
        &state,
        Some(&viewer),
        "Instances",
        "Instances",
        &h,
        now,
    ))
}

fn tags_html(tags: &[String]) -> String {
    tags.iter()
        .map(|t| format!("<span class=\"tag\">{}</span>", esc(t)))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn load(state: &ApiState, region: &str, instance: &str) -> Result<Instance, PageError> {
    let key = InstanceKey::new(region, instance);
    state
        .store
        .instance_get(&key)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("instance {key} is not known")))
}

fn base(key: &InstanceKey) -> String {
    format!(
        "/ui/instances/{}/{}",
        html::url_encode(&key.region),
        html::url_encode(&key.instance)
    )
}

/// `GET /ui/instances/{region}/{instance}`.
pub async fn detail(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((region, instance)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let q = parse_query(raw.as_deref(), &["done"])?;
    let i = load(&state, &region, &instance).await?;
    let now = state.clock.now();
    let objective = state.console.freshness;
    let succeeded = state
        .store
        .console_jobs(&JobQuery {
            state: Some(JobState::Succeeded),
            region: Some(i.key.region.clone()),
            instance: Some(i.key.instance.clone()),
            limit: TREND_JOBS,
            ..JobQuery::default()
        })
        .await?
        .jobs;
    let recent = state
        .store
        .console_jobs(&JobQuery {
            region: Some(i.key.region.clone()),
            instance: Some(i.key.instance.clone()),
            limit: RECENT_JOBS,
            ..JobQuery::default()
        })
        .await?
        .jobs;
    let url = base(&i.key);

    let mut h = String::new();
    if let Some(done) = q.get("done") {
        let _ = write!(
            h,
            "<p class=\"flash ok\" role=\"status\" id=\"flash\">Instance {}.</p>",
            esc(done)
        );
    }
    let _ = write!(
        h,
        "<section id=\"state\" data-live><p class=\"summary\">Region <code>{region}</code> · \
         <span class=\"badge st-{st}\" id=\"status\">{st}</span> · last successful archive {last} \
         ({age}; objective {obj} h)</p>",
        region = esc(&i.key.region),
        st = status_of(&i, now, objective),
        last = opt_time(i.last_success_at),
        age = freshness_cell(&i, now, objective),
        obj = objective.num_hours(),
    );
    if i.blocked {
        let _ = write!(
            h,
            "<div class=\"errorbox\" id=\"block\"><strong>Blocked</strong> since {since} by task \
             <code>{task}</code>{until}<pre>{reason}</pre>{button}</div>",
            since = opt_time(i.blocked_at),
            task = opt(i.blocking_task_id.as_deref()),
            until = i
                .blocked_until
                .map(|t| format!("; re-probed after {}", time(t)))
                .unwrap_or_default(),
            reason = esc(i.blocked_reason.as_deref().unwrap_or("")),
            button = html::action_button(&viewer, &format!("{url}/unblock"), "Unblock", "primary"),
        );
    }
    h.push_str("</section>");

    // Tags: shown to everyone, editable by admins.
    h.push_str("<section><h2>Tags</h2>");
    if viewer.is_admin() {
        let _ = write!(
            h,
            "<form method=\"post\" action=\"{url}/tags\" class=\"filters\" id=\"tags-form\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label>tags (comma-separated)<input type=\"text\" name=\"tags\" id=\"tags\" value=\"{tags}\"></label>\
             <button type=\"submit\">Save tags</button></form>",
            url = esc(&url),
            csrf = esc(viewer.csrf()),
            tags = esc(&i.tags.join(", ")),
        );
    } else if i.tags.is_empty() {
        h.push_str("<p class=\"muted\">No tags.</p>");
    } else {
        let _ = write!(h, "<p id=\"tags\">{}</p>", tags_html(&i.tags));
    }
    h.push_str("</section>");

    // Size trend, oldest first.
    let bars: Vec<Bar> = succeeded
        .iter()
        .rev()
        .map(|j| Bar {
            label: format!(
                "#{} {}",
                j.id,
                j.finished_at.unwrap_or(j.created_at).format("%m-%d %H:%M")
            ),
            segments: vec![(j.remote.export_data_size.unwrap_or(0) as f64, "bytes")],
        })
        .collect();
    if bars.is_empty() {
        h.push_str(
            "<section><h2>Archive sizes</h2>\
             <p class=\"empty\" id=\"sizes-empty\">No successful archive yet.</p></section>",
        );
    } else {
        let _ = write!(
            h,
            "<section class=\"narrow\"><h2>Size of the last {} archives</h2>{}</section>",
            bars.len(),
            chart::bars(
                "chart-size",
                "Archive size per successful job",
                &bars,
                |v| { html::bytes(v as i64) }
            )
        );
    }
    let _ = write!(
        h,
        "<section id=\"recent\" data-live><h2>Recent jobs</h2>{}<p><a href=\"/ui/jobs{}\">All jobs of this instance</a></p></section>",
        jobs_table(&recent, PLAIN_HEADER),
        esc(&html::query(&[
            ("region", i.key.region.clone()),
            ("instance", i.key.instance.clone())
        ]))
    );
    Ok(html::page(
        &state,
        Some(&viewer),
        &i.key.instance,
        "Instances",
        &h,
        now,
    ))
}

/// `POST /ui/instances/{region}/{instance}/unblock` (the API's `instance_unblock`).
pub async fn unblock(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((region, instance)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    viewer.act(&f.csrf)?;
    let i = load(&state, &region, &instance).await?;
    let unblocked = state.store.instance_unblock(&i.key).await?;
    if unblocked {
        tracing::info!(instance = %i.key, "instance unblocked through the console");
    }
    let done = if unblocked {
        "unblocked"
    } else {
        "was not blocked"
    };
    Ok(Redirect::to(&format!("{}?done={}", base(&i.key), html::url_encode(done))).into_response())
}

#[derive(Debug, serde::Deserialize)]
pub struct TagsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tags: String,
}

/// `POST /ui/instances/{region}/{instance}/tags`: replace the tags (same rules as the API).
pub async fn set_tags(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((region, instance)): Path<(String, String)>,
    Form(f): Form<TagsForm>,
) -> Result<Response, PageError> {
    viewer.act(&f.csrf)?;
    let i = load(&state, &region, &instance).await?;
    let raw: Vec<String> = f
        .tags
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect();
    let tags = normalize_tags(&raw)?;
    state.store.instance_upsert(&i.key, Some(&tags)).await?;
    tracing::info!(instance = %i.key, ?tags, "instance tags set through the console");
    Ok(Redirect::to(&format!("{}?done=tags%20saved", base(&i.key))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_against_the_objective() {
        let now = Utc::now();
        let obj = chrono::Duration::hours(26);
        assert_eq!(Freshness::of(None, now, obj), Freshness::Never);
        assert_eq!(
            Freshness::of(Some(now - chrono::Duration::hours(25)), now, obj),
            Freshness::Fresh
        );
        assert_eq!(
            Freshness::of(Some(now - chrono::Duration::hours(27)), now, obj),
            Freshness::Stale
        );
    }
}
